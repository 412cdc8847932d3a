using System.CommandLine;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Cli.Commands;

/// <summary><c>backprop-onnx run MODEL --input NAME=FILE.pb ... --out DIR</c>: runs the forward pass, writes each output as a TensorProto.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "The .onnx file." };
        var inputs = new Option<string[]>("--input") { Description = "NAME=FILE.pb, one per graph input.", AllowMultipleArgumentsPerToken = false, Arity = ArgumentArity.ZeroOrMore };
        var output = new Option<string>("--out") { Description = "Folder for <output>.pb files.", Required = true };
        var cmd = new Command("run", "Run a model's forward pass on TensorProto inputs.") { model, inputs, output };
        cmd.SetAction(r => CliErrors.Guard(() => Run(r.GetValue(model)!, r.GetValue(inputs), r.GetValue(output)!)));
        return cmd;
    }

    private static int Run(string modelPath, string[]? inputItems, string outDir)
    {
        var model = ModelImporter.Load(modelPath);
        var feeds = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var (name, file) in CliErrors.Pairs(inputItems, "--input")) feeds[name] = TensorFiles.Read(file).Tensor;
        var plan = ExecutionPlan.Compile(model);
        var outputs = plan.Run(feeds);
        Directory.CreateDirectory(outDir);
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in outputs)
        {
            // Two names can map to one file name (a/b and a_b): the later one gets a numbered suffix.
            string stem = TensorFiles.SafeFileName(name);
            for (int k = 2; !used.Add(stem); k++) stem = $"{TensorFiles.SafeFileName(name)}_{k}";
            string file = Path.Combine(outDir, stem + ".pb");
            TensorFiles.Write(file, tensor, name);
            Console.WriteLine($"{name}: {tensor} -> {file}");
        }
        return 0;
    }
}
