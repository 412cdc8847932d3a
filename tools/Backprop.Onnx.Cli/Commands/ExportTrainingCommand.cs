using System.CommandLine;
using Backprop.Onnx.Export;
using Backprop.Onnx.Import;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Cli.Commands;

/// <summary>
/// <c>backprop-onnx export-training MODEL --loss KIND --label NAME [--wrt NAME ...] [--freeze PATTERN] -o TRAIN.onnx [--optimizer K] [--eval]</c>:
/// writes the standard-ONNX training model (and the optimizer-step and inference models on request).
/// </summary>
internal static class ExportTrainingCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "The inference model (opset 13+)." };
        var loss = new Option<string>("--loss") { Description = "cross-entropy, nll, mse, l1, huber or bce-logits.", Required = true };
        loss.AcceptOnlyFromAmong("cross-entropy", "nll", "mse", "l1", "huber", "bce-logits");
        var label = new Option<string>("--label") { Description = "Name of the label/target input to add.", DefaultValueFactory = _ => "labels" };
        var wrt = new Option<string[]>("--wrt") { Description = "Parameters to differentiate (default: every float initializer).", Arity = ArgumentArity.ZeroOrMore };
        var freeze = new Option<string[]>("--freeze") { Description = "Glob of initializers not to train.", Arity = ArgumentArity.ZeroOrMore };
        var output = new Option<string>("-o", "--output") { Description = "The training model file.", Required = true };
        var optimizer = new Option<string?>("--optimizer") { Description = "Also write <output>.optimizer.onnx for sgd, momentum, nesterov, adam, adamw or adagrad." };
        optimizer.AcceptOnlyFromAmong("sgd", "momentum", "nesterov", "adam", "adamw", "adagrad");
        var lr = new Option<double>("--weight-decay") { Description = "Weight decay of the optimizer-step model.", DefaultValueFactory = _ => 0 };
        var eval = new Option<bool>("--eval") { Description = "Also write the inference model as <output>.eval.onnx." };
        var cmd = new Command("export-training", "Export a standard-ONNX training model: loss and parameter gradients, runnable by ONNX Runtime.")
            { model, loss, label, wrt, freeze, output, optimizer, lr, eval };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            var m = ModelImporter.Load(r.GetValue(model)!);
            var kind = r.GetValue(loss) switch
            {
                "cross-entropy" => LossKind.CrossEntropy,
                "nll" => LossKind.NegativeLogLikelihood,
                "mse" => LossKind.MeanSquaredError,
                "l1" => LossKind.L1,
                "huber" => LossKind.Huber,
                _ => LossKind.BinaryCrossEntropyWithLogits,
            };
            var training = TrainingModels.BuildTrainingModel(m, new LossOptions { Kind = kind, LabelName = r.GetValue(label)! }, r.GetValue(wrt), r.GetValue(freeze));
            string path = Path.GetFullPath(r.GetValue(output)!);
            ModelExporter.Save(training, path);
            Console.WriteLine($"training model: {path} ({training.Graph.Outputs.Count - 1} gradients)");
            string stem = path.EndsWith(".onnx", StringComparison.Ordinal) ? path[..^5] : path;
            if (r.GetValue(optimizer) is { } opt)
            {
                var names = training.Graph.Outputs.Skip(1).Select(o => o.Name[..^"_grad".Length]).ToList();
                if (names.FirstOrDefault(p => !m.Graph.Initializers.ContainsKey(p)) is { } notInitializer)
                    throw new ArgumentException($"'{notInitializer}' is not an initializer: the optimizer-step model updates initializers only");
                var parameters = names.Select(p => new KeyValuePair<string, IR.OnnxTensor>(p, m.Graph.Initializers[p])).ToList();
                var step = TrainingModels.BuildOptimizerModel(parameters, new OptimizerOptions { Kind = Enum.Parse<OptimizerKind>(opt, true), WeightDecay = r.GetValue(lr) }, m.DefaultOpsetVersion);
                ModelExporter.Save(step, stem + ".optimizer.onnx");
                Console.WriteLine($"optimizer-step model: {stem}.optimizer.onnx");
            }
            if (r.GetValue(eval))
            {
                ModelExporter.Save(m, stem + ".eval.onnx");
                Console.WriteLine($"inference model: {stem}.eval.onnx");
            }
            return 0;
        }));
        return cmd;
    }
}
