using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Cli;

/// <summary><c>run</c>, <c>vjp</c>, <c>gradcheck</c> and <c>conformance</c> end to end, against PyTorch references and backend data.</summary>
[TestClass]
[DoNotParallelize]
public sealed class GradientCommandsTests
{
    [TestMethod]
    public void Vjp_Float64_WritesPyTorchsGradients()
    {
        var m = ReferenceModels.Get("mlp");
        string outDir = Directory.CreateTempSubdirectory("vjp").FullName;
        try
        {
            var (code, stdout, stderr) = CliRunner.Run("vjp", m.ModelPath, "--input", $"x={Path.Combine(m.Folder, "inputs/x.pb")}",
                "--cotangent", $"y={Path.Combine(m.Folder, "cotangents/y.pb")}", "--dtype", "float64", "--out", outDir);
            Assert.AreEqual(0, code, stderr + stdout);
            var expected = m.LoadGradients();
            foreach (var (name, reference) in expected)
            {
                var (tensor, pbName) = TensorFiles.Read(Path.Combine(outDir, "grad_" + TensorFiles.SafeFileName(name) + ".pb"));
                Assert.AreEqual(name, pbName);
                Assert.AreEqual(DataType.Double, tensor.ElementType);
                Assert.IsLessThanOrEqualTo(1e-6, ReferenceModels.RelativeError(tensor, reference), name);
            }
            var (y, _) = TensorFiles.Read(Path.Combine(outDir, "output_y.pb"));
            Assert.IsLessThanOrEqualTo(1e-6, ReferenceModels.RelativeError(y, m.LoadOutputs()["y"]));
        }
        finally { Directory.Delete(outDir, true); }
    }

    [TestMethod]
    public void Gradcheck_PassesOnAReferenceModel_AndPrintsTheReport()
    {
        var (code, stdout, stderr) = CliRunner.Run("gradcheck", ReferenceModels.Get("shared_weight").ModelPath, "--seed", "4");
        Assert.AreEqual(0, code, stderr + stdout);
        StringAssert.Contains(stdout, "seed=4 passed");
        StringAssert.Contains(stdout, "pass ");
    }

    [TestMethod]
    public void Run_WritesEachOutputAsATensorProtoNamedAfterIt()
    {
        var m = ReferenceModels.Get("reshape_ops");
        string outDir = Directory.CreateTempSubdirectory("run").FullName;
        try
        {
            var args = new List<string> { "run", m.ModelPath, "--out", outDir };
            foreach (var v in m.Manifest.Inputs) { args.Add("--input"); args.Add($"{v.Name}={Path.Combine(m.Folder, v.File!)}"); }
            var (code, stdout, stderr) = CliRunner.Run([.. args]);
            Assert.AreEqual(0, code, stderr + stdout);
            foreach (var (name, reference) in m.LoadOutputs())
            {
                var (tensor, pbName) = TensorFiles.Read(Path.Combine(outDir, TensorFiles.SafeFileName(name) + ".pb"));
                Assert.AreEqual(name, pbName);
                Assert.IsLessThanOrEqualTo(1e-5, ReferenceModels.RelativeError(tensor, reference), name);
            }
        }
        finally { Directory.Delete(outDir, true); }
    }

    [TestMethod]
    public void Conformance_EndsWithTheTotalsLine()
    {
        TestPaths.RequireOnnxTestData();
        var (code, stdout, _) = CliRunner.Run("conformance", Path.Combine(TestPaths.NodeTests), "--filter", "test_relu");
        Assert.AreEqual(0, code);
        var lines = stdout.TrimEnd().Split('\n');
        Assert.AreEqual("pass test_relu", lines[0].Trim());
        Assert.AreEqual("passed 1, wrong 0, unsupported 0, total 1", lines[^1].Trim());
    }

    [TestMethod]
    public void BadInput_OneLineOnStderr_ExitCode2()
    {
        var (code, _, stderr) = CliRunner.Run("vjp", "/nonexistent/model.onnx", "--cotangent", "y=/nonexistent/c.pb", "--out", Path.GetTempPath());
        Assert.AreEqual(2, code);
        Assert.AreEqual(1, stderr.TrimEnd().Split('\n').Length, stderr);
        StringAssert.StartsWith(stderr, "error: ");
    }

    [TestMethod]
    public void UsageErrors_AreOneLine_ExitCode2()
    {
        var (code, _, stderr) = CliRunner.Run("vjp", "model.onnx", "--out", "dir");
        Assert.AreEqual(2, code);
        Assert.AreEqual(1, stderr.TrimEnd().Split('\n').Length, stderr);
        StringAssert.Contains(stderr, "--cotangent");
        (code, _, stderr) = CliRunner.Run("no-such-command");
        Assert.AreEqual(2, code);
        StringAssert.StartsWith(stderr, "error: ");
    }

    [TestMethod]
    public void Vjp_RejectsACotangentOfTheWrongShape()
    {
        var m = ReferenceModels.Get("mlp");
        string dir = Directory.CreateTempSubdirectory("vjp-bad").FullName;
        try
        {
            string cot = Path.Combine(dir, "cot.pb");
            TensorFiles.Write(cot, OnnxTensor.FromArray(new double[4 * 3 * 4], 4, 3, 4), "y");
            var (code, _, stderr) = CliRunner.Run("vjp", m.ModelPath, "--input", $"x={Path.Combine(m.Folder, "inputs/x.pb")}", "--cotangent", $"y={cot}", "--out", dir);
            Assert.AreEqual(2, code, stderr);
            StringAssert.Contains(stderr, "'y_seed' has shape [4,3,4]");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void Train_ChecksTheOutputPathBeforeTraining()
    {
        string dir = Directory.CreateTempSubdirectory("train-out").FullName;
        try
        {
            var (code, _, stderr) = CliRunner.Run("train", ReferenceModels.Get("lenet_fashion").ModelPath, "--out", dir, "--limit", "64");
            Assert.AreEqual(2, code, stderr);
            StringAssert.Contains(stderr, "is a folder");
        }
        finally { Directory.Delete(dir, true); }
    }
}
