using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>The branch-free select behind Where: bit-identical to c ? x : z for every length, stride and 4/8-byte type.</summary>
[TestClass]
public sealed class SimdSelectTests
{
    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(7)]
    [DataRow(8)]
    [DataRow(15)]
    [DataRow(16)]
    [DataRow(17)]
    [DataRow(33)]
    [DataRow(1000)]
    public void MatchesTheScalarLoop(int n)
    {
        Check(n, i => (float)(i - 3.5), i => float.NaN);
        Check(n, i => -(double)i, i => i % 3 == 0 ? -0.0 : double.PositiveInfinity);
        Check(n, i => i, i => -i);
        Check(n, i => (long)i << 40, i => long.MinValue + i);
    }

    private static void Check<T>(int n, Func<int, T> fx, Func<int, T> fz)
    {
        var random = new Random(n);
        var c = Enumerable.Range(0, n).Select(_ => random.Next(2) == 1).ToArray();
        var x = Enumerable.Range(0, n).Select(fx).ToArray();
        var z = Enumerable.Range(0, n).Select(fz).ToArray();
        foreach (int sx in new[] { 0, 1 })
            foreach (int sz in new[] { 0, 1 })
            {
                if (n == 0 && (sx == 0 || sz == 0)) continue;
                var expected = new T[n];
                for (int i = 0; i < n; i++) expected[i] = c[i] ? x[i * sx] : z[i * sz];
                var y = new T[n];
                Assert.IsTrue(SimdSelect.TryRun<T>(c, x, sx, z, sz, y));
                CollectionAssert.AreEqual(expected, y, $"{typeof(T).Name} n={n} sx={sx} sz={sz} (seed {n})");
            }
    }

    [TestMethod]
    public void OtherSizesAndStridesAreLeftToTheCaller()
    {
        Assert.IsFalse(SimdSelect.TryRun<short>([true], new short[1], 1, new short[1], 1, new short[1]));
        Assert.IsFalse(SimdSelect.TryRun<float>([true, false], new float[4], 2, new float[2], 1, new float[2]));
    }

    [TestMethod]
    public void WhereOfAReluMaskMatchesByHand()
    {
        // The ReLU gradient's pattern: Where(x > 0, dy, 0) with a scalar zero, 37 elements (vector body and tail).
        var x = Enumerable.Range(0, 37).Select(i => (float)Math.Sin(i)).ToArray();
        var dy = Enumerable.Range(0, 37).Select(i => (float)i).ToArray();
        var result = SingleNode.Run("Where", [OnnxTensor.FromArray(x.Select(v => v > 0).ToArray(), 37), OnnxTensor.FromArray(dy, 37), OnnxTensor.Scalar(0f)]);
        CollectionAssert.AreEqual(x.Select((v, i) => v > 0 ? dy[i] : 0f).ToArray(), result[0].ToArray<float>());
    }
}
