using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// SumToShape(dY, shape) (GradientOps.cs), the adjoint of broadcasting, against a scalar loop written here: every
/// element of dY added into the target element it was broadcast from; float32 and float64; bias-like, leading, middle,
/// trailing and all-axes reductions; incompatible shapes rejected.
/// </summary>
[TestClass]
public sealed class SumToShapeTests
{
    [TestMethod]
    [DataRow("2,3,4", "4")]
    [DataRow("2,3,4", "3,1")]
    [DataRow("2,3,4", "2,1,4")]
    [DataRow("2,3,4", "1")]
    [DataRow("2,3,4", "")]
    [DataRow("64,10", "10")]
    [DataRow("5,7", "5,7")]
    [DataRow("3,1,5", "1,5")]
    public void MatchesScalarLoop(string from, string to)
    {
        int[] Dims(string text) => text.Length == 0 ? [] : [.. text.Split(',').Select(int.Parse)];
        var g = Dims(from);
        var t = Dims(to);
        int count = g.Aggregate(1, (p, d) => p * d), targetCount = t.Aggregate(1, (p, d) => p * d);
        var random = new Random(count + targetCount);
        var dy = Enumerable.Range(0, count).Select(_ => random.NextDouble() - 0.5).ToArray();
        var expected = new double[targetCount];
        var coord = new int[g.Length];
        for (int i = 0; i < count; i++)
        {
            for (int d = g.Length - 1, r = i; d >= 0; d--) { coord[d] = r % g[d]; r /= g[d]; }
            int at = 0;
            for (int d = 0; d < t.Length; d++) at = at * t[d] + (t[d] == 1 ? 0 : coord[g.Length - t.Length + d]);
            expected[at] += dy[i];
        }
        foreach (bool isDouble in new[] { false, true })
        {
            var dyt = isDouble ? OnnxTensor.FromArray(dy, g) : OnnxTensor.FromArray(dy.Select(v => (float)v).ToArray(), g);
            var shape = OnnxTensor.FromArray(t.Select(v => (long)v).ToArray(), t.Length);
            var y = Run(dyt, shape);
            CollectionAssert.AreEqual(t, y.Dims, $"{from} → {to}");
            var actual = isDouble ? y.ToArray<double>() : [.. y.ToArray<float>().Select(v => (double)v)];
            for (int k = 0; k < targetCount; k++) Assert.AreEqual(expected[k], actual[k], isDouble ? 1e-12 : 1e-5, $"{from} → {to} [{k}]");
        }
    }

    [TestMethod]
    [DataRow("2,3", "2")]
    [DataRow("3", "1,3")]
    [DataRow("2,3", "4,3")]
    public void RejectsShapesThatDoNotBroadcastToDY(string from, string to)
    {
        var dy = OnnxTensor.FromArray(new float[from.Split(',').Select(int.Parse).Aggregate(1, (p, d) => p * d)], [.. from.Split(',').Select(int.Parse)]);
        var t = to.Split(',').Select(long.Parse).ToArray();
        Assert.ThrowsExactly<InvalidInputException>(() => Run(dy, OnnxTensor.FromArray(t, t.Length)));
    }

    private static OnnxTensor Run(OnnxTensor dy, OnnxTensor shape) =>
        ExecutionPlan.Compile(SingleNode.Model("SumToShape", [dy, shape], 1, 17, OpRegistry.BackpropDomain))
            .Run(new Dictionary<string, OnnxTensor> { ["x0"] = dy, ["x1"] = shape })["y0"];
}
