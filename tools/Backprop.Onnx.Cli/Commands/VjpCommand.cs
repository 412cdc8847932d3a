using System.CommandLine;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Cli.Commands;

/// <summary>
/// <c>backprop-onnx vjp MODEL --input NAME=FILE.pb ... --cotangent OUTPUT=FILE.pb ... [--wrt NAME ...] [--dtype float64] --out DIR</c>:
/// the vector-Jacobian product of the named outputs' cotangents, written as <c>grad_&lt;name&gt;.pb</c>, plus every output as <c>output_&lt;name&gt;.pb</c>.
/// </summary>
internal static class VjpCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "The .onnx file." };
        var inputs = new Option<string[]>("--input") { Description = "NAME=FILE.pb for each graph input.", Arity = ArgumentArity.ZeroOrMore };
        var cotangents = new Option<string[]>("--cotangent") { Description = "OUTPUT=FILE.pb: the cotangent seeding that output (outputs not named get none).", Arity = ArgumentArity.OneOrMore, Required = true };
        var wrt = new Option<string[]>("--wrt") { Description = "Tensors to differentiate with respect to (default: every float input and initializer).", Arity = ArgumentArity.ZeroOrMore };
        var dtype = new Option<string>("--dtype") { Description = "float32 (as the model) or float64.", DefaultValueFactory = _ => "float32" };
        dtype.AcceptOnlyFromAmong("float32", "float64");
        var output = new Option<string>("--out") { Description = "Output folder.", Required = true };
        var cmd = new Command("vjp", "Vector-Jacobian product: gradients of the outputs' cotangents with respect to inputs and initializers.") { model, inputs, cotangents, wrt, dtype, output };
        cmd.SetAction(r => CliErrors.Guard(() => Run(r.GetValue(model)!, r.GetValue(inputs), r.GetValue(cotangents)!, r.GetValue(wrt), r.GetValue(dtype) == "float64", r.GetValue(output)!)));
        return cmd;
    }

    private static int Run(string modelPath, string[]? inputItems, string[] cotangentItems, string[]? wrt, bool float64, string outDir)
    {
        var model = ModelImporter.Load(modelPath);
        if (float64) model = Precision.ToDouble(model);
        var feeds = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var (name, file) in CliErrors.Pairs(inputItems, "--input"))
        {
            var t = TensorFiles.Read(file).Tensor;
            feeds[name] = float64 ? Precision.ToDouble(t) : t;
        }
        var options = new GradientOptions { SeedInputs = true };
        var seeds = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var (name, file) in CliErrors.Pairs(cotangentItems, "--cotangent"))
        {
            if (seeds.ContainsKey(name)) throw new ArgumentException($"--cotangent names output '{name}' twice");
            options.Outputs.Add(name);
            seeds[name] = TensorFiles.Read(file).Tensor;
        }
        foreach (var w in wrt ?? []) options.Wrt.Add(w);
        var gm = ReverseMode.Differentiate(model, options);
        foreach (var issue in gm.Report.Issues.Where(i => i.Kind == DifferentiabilityIssueKind.Unreachable)) Console.Error.WriteLine($"note: {issue.Detail}");
        foreach (var (output, seedInput) in gm.Seeds)
        {
            var type = gm.Model.Graph.FindInput(seedInput)!.ElementType;
            var seed = seeds[output];
            feeds[seedInput] = type == DataType.Double ? Precision.ToDouble(seed) : type == DataType.Float ? Precision.ToSingle(seed) : seed;
        }
        var results = ExecutionPlan.Compile(gm.Model).Run(feeds);
        foreach (var (output, seed) in seeds)
            if (!seed.Shape.SequenceEqual(results[output].Shape))
                throw new ArgumentException($"the cotangent of '{output}' has shape [{string.Join(',', seed.Dims)}], but the output has shape [{string.Join(',', results[output].Dims)}]");
        Directory.CreateDirectory(outDir);
        foreach (var o in model.Graph.Outputs)
        {
            string file = Path.Combine(outDir, "output_" + TensorFiles.SafeFileName(o.Name) + ".pb");
            TensorFiles.Write(file, results[o.Name], o.Name);
            Console.WriteLine($"output {o.Name}: {results[o.Name]} -> {file}");
        }
        foreach (var (value, gradOutput) in gm.Gradients)
        {
            string file = Path.Combine(outDir, "grad_" + TensorFiles.SafeFileName(value) + ".pb");
            TensorFiles.Write(file, results[gradOutput], value);
            Console.WriteLine($"grad {value}: {results[gradOutput]} -> {file}");
        }
        return 0;
    }
}
