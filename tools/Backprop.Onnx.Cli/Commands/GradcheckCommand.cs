using System.CommandLine;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Cli.Commands;

/// <summary>
/// <c>backprop-onnx gradcheck MODEL [--input NAME=FILE.pb ...] [--seed N]</c>: checks every gradient against central finite
/// differences in float64, prints the report, exits 1 if any tensor fails.
/// </summary>
internal static class GradcheckCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "The .onnx file." };
        var inputs = new Option<string[]>("--input") { Description = "NAME=FILE.pb (random inputs are drawn for the others).", Arity = ArgumentArity.ZeroOrMore };
        var seed = new Option<int>("--seed") { Description = "Seed of random inputs, cotangents and directions.", DefaultValueFactory = _ => 0 };
        var cmd = new Command("gradcheck", "Check gradients against finite differences in float64.") { model, inputs, seed };
        cmd.SetAction(r => CliErrors.Guard(() => Run(r.GetValue(model)!, r.GetValue(inputs), r.GetValue(seed))));
        return cmd;
    }

    private static int Run(string modelPath, string[]? inputItems, int seed)
    {
        var model = ModelImporter.Load(modelPath);
        var feeds = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var (name, file) in CliErrors.Pairs(inputItems, "--input")) feeds[name] = TensorFiles.Read(file).Tensor;
        var random = new Random(seed);
        foreach (var v in model.Graph.RuntimeInputs)
        {
            if (feeds.ContainsKey(v.Name)) continue;
            if (v.Shape is null) throw new ArgumentException($"input '{v.Name}' has no static rank; give it with --input {v.Name}=FILE.pb");
            int[] shape = [.. v.Shape.Select(d => d.Value is { } n ? checked((int)n) : 2)];
            feeds[v.Name] = RandomTensor(v.ElementType, shape, random) ?? throw new ArgumentException($"input '{v.Name}' is {DataTypes.OnnxName(v.ElementType)}; give it with --input {v.Name}=FILE.pb");
        }
        var report = GradientCheck.Run(model, feeds, new GradientCheckOptions { Seed = seed });
        Console.WriteLine(report);
        return report.Passed ? 0 : 1;
    }

    private static OnnxTensor? RandomTensor(DataType type, int[] shape, Random random)
    {
        long n = 1;
        foreach (int d in shape) n *= d;
        switch (type)
        {
            case DataType.Float: { var a = new float[n]; for (long i = 0; i < n; i++) a[i] = (float)(random.NextDouble() * 2 - 1); return OnnxTensor.FromArray(a, shape); }
            case DataType.Double: { var a = new double[n]; for (long i = 0; i < n; i++) a[i] = random.NextDouble() * 2 - 1; return OnnxTensor.FromArray(a, shape); }
            case DataType.Int64: return OnnxTensor.FromArray(new long[n], shape);
            case DataType.Int32: return OnnxTensor.FromArray(new int[n], shape);
            case DataType.Bool: return OnnxTensor.FromArray(new bool[n], shape);
            default: return null;
        }
    }
}
