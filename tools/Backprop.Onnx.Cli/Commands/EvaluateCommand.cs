using System.CommandLine;
using Backprop.Onnx.Import;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Cli.Commands;

/// <summary><c>backprop-onnx evaluate MODEL --data DIR [--runtime ort|engine]</c>: Fashion-MNIST test accuracy, printed as <c>accuracy 0.xxxx</c>.</summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A classifier: input [N,1,28,28] float, output logits [N,10]." };
        var data = new Option<string>("--data") { Description = "Fashion-MNIST folder.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
        var runtime = new Option<string>("--runtime") { Description = "ort (ONNX Runtime) or engine (ours).", DefaultValueFactory = _ => "engine" };
        runtime.AcceptOnlyFromAmong("ort", "engine");
        var cmd = new Command("evaluate", "Accuracy on the 10,000 Fashion-MNIST test images.") { model, data, runtime };
        cmd.SetAction(r => CliErrors.Guard(() => Run(r.GetValue(model)!, r.GetValue(data)!, r.GetValue(runtime)!)));
        return cmd;
    }

    internal static int Run(string modelPath, string dataDir, string runtime)
    {
        var test = FashionMnist.Load(dataDir, train: false);
        double accuracy;
        if (runtime == "ort")
        {
            if (!File.Exists(modelPath)) throw new FileNotFoundException($"model file not found: {modelPath}");
            accuracy = OrtEvaluation.Accuracy(modelPath, test);
        }
        else
        {
            accuracy = EngineAccuracy(ModelImporter.Load(modelPath), test);
        }
        Console.WriteLine($"accuracy {accuracy:0.0000}");
        return 0;
    }

    /// <summary>Accuracy with our executor in inference mode (no gradients needed).</summary>
    private static double EngineAccuracy(Backprop.Onnx.IR.OnnxModel model, IDataSource data)
    {
        var input = model.Graph.RuntimeInputs.FirstOrDefault() ?? throw new ArgumentException("the model has no input");
        var output = model.Graph.Outputs.FirstOrDefault() ?? throw new ArgumentException("the model has no output");
        var plan = Runtime.ExecutionPlan.Compile(model);
        int batchSize = input.Shape is { Count: > 0 } s && s[0].Value is { } b ? checked((int)b) : 500;
        if (data.Count % batchSize != 0 && batchSize != 500)
            throw new ArgumentException($"input '{input.Name}' has a fixed batch of {batchSize}, which does not divide the {data.Count} test images");
        long correct = 0;
        var indices = new int[batchSize];
        for (int start = 0; start < data.Count; start += batchSize)
        {
            int n = Math.Min(batchSize, data.Count - start);
            for (int i = 0; i < n; i++) indices[i] = start + i;
            var (x, y) = data.GetBatch(indices.AsSpan(0, n));
            var logits = plan.Run(new Dictionary<string, Backprop.Onnx.IR.OnnxTensor> { [input.Name] = x })[output.Name];
            if (logits.Rank != 2 || logits.Dims[0] != n)
                throw new ArgumentException($"output '{output.Name}' has shape [{string.Join(',', logits.Dims)}]; a classifier returns logits [N, classes]");
            correct += Trainer.CountCorrect(logits, y);
        }
        return correct / (double)data.Count;
    }
}
