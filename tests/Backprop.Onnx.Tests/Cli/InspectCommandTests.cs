using System.Diagnostics;
using System.Text.Json;
using Backprop.Onnx.Tests.Import;
using Backprop.Onnx.Tests.Support;
using Google.Protobuf;

namespace Backprop.Onnx.Tests.Cli;

/// <summary>
/// <c>backprop-onnx inspect</c>: the JSON form parses and carries every field; the table form names inputs, outputs and
/// ops; a corrupt or missing model prints one line on stderr and exits with code 2. Runs <c>Program.Main</c> in-process
/// (console redirected, so not in parallel) and once as a real process.
/// </summary>
[TestClass]
[DoNotParallelize]
public sealed class InspectCommandTests
{
    private static (int ExitCode, string Out, string Err) RunCli(params string[] args) => CliRunner.Run(args);

    [TestMethod]
    public void Json_Parses_AndHasTheFields()
    {
        using var folder = new TempFolder();
        string path = folder.Write(ModelProtos.Valid());
        var (code, stdout, stderr) = RunCli("inspect", path, "--json");
        Assert.AreEqual(0, code, stderr);
        Assert.AreEqual("", stderr);

        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.AreEqual(path, root.GetProperty("file").GetString());
        Assert.AreEqual(8, root.GetProperty("ir_version").GetInt64());
        var opset = root.GetProperty("opsets").EnumerateArray().Single();
        Assert.AreEqual("ai.onnx", opset.GetProperty("domain").GetString());
        Assert.AreEqual(17, opset.GetProperty("version").GetInt64());
        Assert.AreEqual("tests", root.GetProperty("producer").GetProperty("name").GetString());
        Assert.AreEqual("", root.GetProperty("producer").GetProperty("version").GetString());
        Assert.AreEqual("g", root.GetProperty("graph").GetString());
        var input = root.GetProperty("inputs").EnumerateArray().Single();
        Assert.AreEqual("X", input.GetProperty("name").GetString());
        Assert.AreEqual("float", input.GetProperty("dtype").GetString());
        CollectionAssert.AreEqual(new long[] { 2 }, input.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray());
        Assert.AreEqual("Z", root.GetProperty("outputs").EnumerateArray().Single().GetProperty("name").GetString());
        Assert.AreEqual(1, root.GetProperty("initializers").GetInt32());
        Assert.AreEqual(2, root.GetProperty("parameter_count").GetInt64());
        Assert.AreEqual(8, root.GetProperty("parameter_bytes").GetInt64());
        Assert.AreEqual(2, root.GetProperty("nodes").GetInt32());
        var ops = root.GetProperty("ops");
        Assert.AreEqual(1, ops.GetProperty("Add").GetInt32());
        Assert.AreEqual(1, ops.GetProperty("Relu").GetInt32());
    }

    [TestMethod]
    public void Json_WritesASymbolicDimensionByName_AndAnUnknownOneAsNull()
    {
        using var folder = new TempFolder();
        var model = ModelProtos.Valid();
        var dims = model.Graph.Input[0].Type.TensorType.Shape.Dim;
        dims.Clear();
        dims.Add(new Backprop.Onnx.Protobuf.TensorShapeProto.Types.Dimension { DimParam = "batch" });
        dims.Add(new Backprop.Onnx.Protobuf.TensorShapeProto.Types.Dimension());
        dims.Add(new Backprop.Onnx.Protobuf.TensorShapeProto.Types.Dimension { DimValue = 2 });
        string path = folder.Write(model);
        var (code, stdout, stderr) = RunCli("inspect", path, "--json");
        Assert.AreEqual(0, code, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var shape = doc.RootElement.GetProperty("inputs").EnumerateArray().Single().GetProperty("shape").EnumerateArray().ToArray();
        Assert.HasCount(3, shape);
        Assert.AreEqual("batch", shape[0].GetString());
        Assert.AreEqual(JsonValueKind.Null, shape[1].ValueKind);
        Assert.AreEqual(2, shape[2].GetInt64());
    }

    [TestMethod]
    public void Json_OfEveryBackendSuiteSample_Parses()
    {
        TestPaths.RequireOnnxTestData();
        foreach (var test in new[] { "node/test_if", "node/test_loop11", "simple/test_sequence_model1", "pytorch-converted/test_Conv2d" })
        {
            string path = Path.Combine(TestPaths.OnnxTestData, test, "model.onnx");
            var (code, stdout, stderr) = RunCli("inspect", path, "--json");
            Assert.AreEqual(0, code, $"{test}: {stderr}");
            using var doc = JsonDocument.Parse(stdout);
            Assert.IsGreaterThanOrEqualTo(1, doc.RootElement.GetProperty("nodes").GetInt32(), test);
        }
    }

    [TestMethod]
    public void Table_NamesTheInputsOutputsAndOps()
    {
        using var folder = new TempFolder();
        string path = folder.Write(ModelProtos.Valid());
        var (code, stdout, stderr) = RunCli("inspect", path);
        Assert.AreEqual(0, code, stderr);
        foreach (var text in new[] { "IR version 8", "ai.onnx 17", "X", "Z", "float", "Add", "Relu", "nodes: 2" })
            Assert.Contains(text, stdout);
    }

    [TestMethod]
    [DataRow("truncated")]
    [DataRow("garbage")]
    [DataRow("cycle")]
    [DataRow("missing")]
    public void ABadModel_PrintsOneLineOnStderr_AndExitsWith2(string kind)
    {
        using var folder = new TempFolder();
        string path = BadModel(folder, kind);
        var (code, stdout, stderr) = RunCli("inspect", path, "--json");
        Assert.AreEqual(2, code);
        Assert.AreEqual("", stdout);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.HasCount(1, lines, stderr);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(path, lines[0], "the line names the file");
    }

    [TestMethod]
    public void ACorruptModel_AsARealProcess_PrintsOneLineOnStderr_AndExitsWith2()
    {
        using var folder = new TempFolder();
        string path = BadModel(folder, "truncated");
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "backprop-onnx.dll"), "inspect", path])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.IsTrue(process.WaitForExit(TimeSpan.FromSeconds(60)), "backprop-onnx did not finish");
        Assert.AreEqual(2, process.ExitCode, stderr.Result);
        Assert.AreEqual("", stdout.Result);
        var lines = stderr.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.HasCount(1, lines, stderr.Result);
        Assert.Contains(path, lines[0]);
    }

    private static string BadModel(TempFolder folder, string kind)
    {
        string path = folder.File("model.onnx");
        byte[] valid = ModelProtos.Valid().ToByteArray();
        switch (kind)
        {
            case "truncated": File.WriteAllBytes(path, valid[..(valid.Length / 2)]); break;
            case "garbage": File.WriteAllText(path, "not a model at all\n"); break;
            case "cycle":
                var model = ModelProtos.Valid();
                model.Graph.Node[0].Input[1] = "Z";
                path = folder.Write(model);
                break;
            case "missing": path = folder.File("absent.onnx"); break;
        }
        return path;
    }
}
