using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>NormalizationOps.NormalizeRow (LayerNormalization's fused row pass) against the scalar loop of the same roundings.</summary>
[TestClass]
public sealed class LayerNormRowTests
{
    [TestMethod]
    [DataRow(1)]
    [DataRow(7)]
    [DataRow(8)]
    [DataRow(128)]
    [DataRow(131)]
    public void NormalizeRow_MatchesScalarLoop_BitForBit(int n)
    {
        var rng = new Random(n);
        var x = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var s = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() + 0.5)).ToArray();
        var b = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        x[0] = float.NaN;
        if (n > 2) x[2] = float.PositiveInfinity;
        float m = 0.3f, r = 1.7f;
        foreach (bool withBias in new[] { true, false })
        {
            var y = new float[n];
            NormalizationOps.NormalizeRow<float>(x, m, r, s, withBias ? b : default, y);
            var yd = new double[n];
            NormalizationOps.NormalizeRow<double>([.. x.Select(v => (double)v)], m, r, [.. s.Select(v => (double)v)], withBias ? [.. b.Select(v => (double)v)] : default, yd);
            for (int i = 0; i < n; i++)
            {
                float e = (x[i] - m) * r * s[i];
                if (withBias) e += b[i];
                Assert.AreEqual(BitConverter.SingleToInt32Bits(e), BitConverter.SingleToInt32Bits(y[i]), $"n={n} [{i}] bias {withBias}");
                double ed = ((double)x[i] - m) * r * s[i] + (withBias ? b[i] : 0.0);
                Assert.AreEqual(BitConverter.DoubleToInt64Bits(ed), BitConverter.DoubleToInt64Bits(yd[i]), $"double n={n} [{i}] bias {withBias}");
            }
        }
    }
}
