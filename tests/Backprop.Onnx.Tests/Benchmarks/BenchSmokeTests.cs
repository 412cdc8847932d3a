using System.Globalization;
using System.Text.RegularExpressions;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Benchmarks;

/// <summary>
/// CI smoke test of the benchmark commands that tools/bench/side_by_side.py parses: <c>bench</c> on W1 and
/// <c>bench-gemm</c> run in-process (<see cref="CliRunner"/>: console redirected, so not in parallel) on tiny settings and
/// print their machine-readable lines in the exact format, with positive numbers. Not timed: nothing asserts speed.
/// </summary>
[TestClass]
[DoNotParallelize]
public sealed partial class BenchSmokeTests
{
    private const string Number = @"[0-9]+(?:\.[0-9]+)?";

    [GeneratedRegex(@"^bench: forward_ms=(?<f>" + Number + ") forward_backward_ms=(?<b>" + Number + ") step_ms=(?<s>" + Number + @") allocated_bytes_per_step=(?<a>[0-9]+)$")]
    private static partial Regex BenchLine();

    [GeneratedRegex(@"^gemm: m=(?<m>[0-9]+) n=(?<n>[0-9]+) k=(?<k>[0-9]+) ms=(?<ms>" + Number + ") gflops=(?<g>" + Number + ")$")]
    private static partial Regex GemmLine();

    [TestMethod]
    public void Bench_OnW1_EndsWithTheMachineReadableLine()
    {
        string model = Path.Combine(TestPaths.OnnxModels, "bench", "w1_mlp", "model.onnx");
        var (code, stdout, stderr) = CliRunner.Run("bench", model, "--warmup", "1", "--steps", "2", "--threads", "1");
        Assert.AreEqual(0, code, stderr);

        string last = LastLine(stdout);
        var match = BenchLine().Match(last);
        Assert.IsTrue(match.Success, $"last line is not in the bench format: '{last}'");
        foreach (var group in new[] { "f", "b", "s" })
            Assert.IsGreaterThan(0.0, double.Parse(match.Groups[group].Value, CultureInfo.InvariantCulture), $"{group} in '{last}'");
        // A steady-state step may allocate nothing at all (TrainerAllocationTests holds it under 1 KB).
        Assert.IsGreaterThanOrEqualTo(0.0, double.Parse(match.Groups["a"].Value, CultureInfo.InvariantCulture), $"a in '{last}'");
    }

    [TestMethod]
    public void BenchGemm_PrintsOneLinePerSize()
    {
        var (code, stdout, stderr) = CliRunner.Run("bench-gemm", "--sizes", "64", "--repeat", "2");
        Assert.AreEqual(0, code, stderr);
        Assert.AreEqual("", stderr);

        string last = LastLine(stdout);
        var match = GemmLine().Match(last);
        Assert.IsTrue(match.Success, $"last line is not in the gemm format: '{last}'");
        foreach (var group in new[] { "m", "n", "k" }) Assert.AreEqual("64", match.Groups[group].Value, last);
        Assert.IsGreaterThan(0.0, double.Parse(match.Groups["ms"].Value, CultureInfo.InvariantCulture), last);
        Assert.IsGreaterThan(0.0, double.Parse(match.Groups["g"].Value, CultureInfo.InvariantCulture), last);
        Assert.HasCount(1, stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("gemm:", StringComparison.Ordinal)), stdout);
    }

    [TestMethod]
    public void BenchGemm_TransposedShapes_AreMarked()
    {
        var (code, stdout, stderr) = CliRunner.Run("bench-gemm", "--sizes", "", "--shapes", "3x5x7:tn,2x3x4", "--repeat", "1", "--threads", "2");
        Assert.AreEqual(0, code, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("gemm:", StringComparison.Ordinal)).ToArray();
        Assert.HasCount(2, lines, stdout);
        Assert.StartsWith("gemm: m=3 n=5 k=7 ms=", lines[0]);
        Assert.EndsWith(" trans=tn", lines[0].TrimEnd());
        Assert.IsTrue(GemmLine().IsMatch(lines[1].TrimEnd()), lines[1]);
    }

    [TestMethod]
    [DataRow("--sizes", "0")]
    [DataRow("--shapes", "3x4")]
    [DataRow("--shapes", "3x4x5:nx")]
    [DataRow("--repeat", "0")]
    public void BenchGemm_BadArguments_PrintOneLine_AndExitWith2(string option, string value)
    {
        string[] args = option == "--sizes" ? ["bench-gemm", option, value] : ["bench-gemm", "--sizes", "8", option, value];
        var (code, stdout, stderr) = CliRunner.Run(args);
        Assert.AreEqual(2, code, stdout);
        Assert.StartsWith("error: ", stderr);
        Assert.HasCount(1, stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), stderr);
    }

    private static string LastLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).LastOrDefault() ?? "";
}
