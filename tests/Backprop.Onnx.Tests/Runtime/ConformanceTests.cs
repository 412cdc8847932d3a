using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// The ONNX backend test suite (Debian libonnx-testdata) on the executor: no test may be wrong, and the pass counts
/// may not fall below the floors (raise them as ops land).
/// </summary>
[TestClass]
public sealed class ConformanceTests
{
    [TestMethod]
    [DataRow("node", 806)]
    [DataRow("simple", 9)]
    [DataRow("pytorch-converted", 82)]
    [DataRow("pytorch-operator", 35)]
    public void BackendSuite_HasNoWrongResults_AndMeetsPassFloor(string suite, int passFloor)
    {
        TestPaths.RequireOnnxTestData();
        var results = Conformance.FindTests([Path.Combine(TestPaths.OnnxTestData, suite)]).Select(Conformance.Run).ToList();
        var wrong = results.Where(r => r.Status == ConformanceStatus.Wrong).ToList();
        int passed = results.Count(r => r.Status == ConformanceStatus.Pass);
        Console.WriteLine($"{suite}: passed {passed}, wrong {wrong.Count}, unsupported {results.Count - passed - wrong.Count}, total {results.Count}");
        Assert.IsEmpty(wrong, string.Join("\n", wrong.Select(w => $"{w.Name}: {w.Reason}")));
        Assert.IsGreaterThanOrEqualTo(passFloor, passed, $"{suite}: {passed} passed, floor {passFloor}");
    }
}
