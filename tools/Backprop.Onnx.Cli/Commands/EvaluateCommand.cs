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
            var m = ModelImporter.Load(modelPath);
            var trainer = new Trainer(m, new TrainerOptions());
            accuracy = trainer.Evaluate(test).Accuracy;
        }
        Console.WriteLine($"accuracy {accuracy:0.0000}");
        return 0;
    }
}
