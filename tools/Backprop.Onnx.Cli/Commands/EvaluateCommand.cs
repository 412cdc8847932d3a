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
    internal static double EngineAccuracy(Backprop.Onnx.IR.OnnxModel model, IDataSource data)
    {
        var input = model.Graph.RuntimeInputs.FirstOrDefault() ?? throw new ArgumentException("the model has no input");
        var output = model.Graph.Outputs.FirstOrDefault() ?? throw new ArgumentException("the model has no output");
        var plan = Runtime.ExecutionPlan.Compile(model);
        int batchSize = input.Shape is { Count: > 0 } s && s[0].Value is { } b ? checked((int)b) : 500;
        long correct = 0;
        var indices = new int[batchSize];
        for (int start = 0; start < data.Count; start += batchSize)
        {
            // A fixed batch size that does not divide the data: the last batch is filled up with copies of its last
            // image, and only its first n rows are counted.
            int n = Math.Min(batchSize, data.Count - start);
            for (int i = 0; i < batchSize; i++) indices[i] = start + Math.Min(i, n - 1);
            int rows = input.Shape is { Count: > 0 } && input.Shape[0].Value is not null ? batchSize : n;
            var (x, y) = data.GetBatch(indices.AsSpan(0, rows));
            var logits = plan.Run(new Dictionary<string, Backprop.Onnx.IR.OnnxTensor> { [input.Name] = x })[output.Name];
            if (logits.Rank != 2 || logits.Dims[0] != rows)
                throw new ArgumentException($"output '{output.Name}' has shape [{string.Join(',', logits.Dims)}]; a classifier returns logits [N, classes]");
            correct += Trainer.CountCorrect(FirstRows(logits, n), y);
        }
        return correct / (double)data.Count;
    }

    /// <summary>The first <paramref name="n"/> rows of a [rows, classes] tensor (the tensor itself when it has n rows).</summary>
    internal static Backprop.Onnx.IR.OnnxTensor FirstRows(Backprop.Onnx.IR.OnnxTensor t, int n)
    {
        if (t.Dims[0] == n) return t;
        var buffer = Array.CreateInstance(t.Buffer.GetType().GetElementType()!, n * t.Dims[1]);
        Array.Copy(t.Buffer, buffer, buffer.Length);
        return Backprop.Onnx.IR.OnnxTensor.FromBuffer(t.ElementType, buffer, n, t.Dims[1]);
    }
}
