using System.Runtime.Intrinsics;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// SoftmaxOps.FastExp (the Cephes-style float exp of Softmax and LogSoftmax) against MathF.Exp, and the float
/// Softmax / LogSoftmax lines that use it against a double-precision reference.
/// </summary>
[TestClass]
public sealed class FastExpTests
{
    /// <summary>Distance in units in the last place between two non-negative finite or infinite floats.</summary>
    private static long Ulps(float a, float b) => Math.Abs((long)BitConverter.SingleToInt32Bits(a) - BitConverter.SingleToInt32Bits(b));

    private static void AssertWithin2Ulp(float x)
    {
        float expected = MathF.Exp(x), actual = SoftmaxOps.FastExp(x);
        Assert.IsTrue(Ulps(expected, actual) <= 2, $"exp({x:R}) = {actual:R}, MathF.Exp {expected:R}");
    }

    [TestMethod]
    public void Scalar_DenseSweepOfTheSoftmaxRange_IsWithin2Ulp()
    {
        // [−104, 0] in steps of 2⁻¹⁰ (106K points, subnormal results included), then every 7th float of [−1, 0].
        for (int i = 0; i <= 104 * 1024; i++) AssertWithin2Ulp(-i / 1024f);
        for (int bits = 0; bits <= BitConverter.SingleToInt32Bits(1f); bits += 7) AssertWithin2Ulp(-BitConverter.Int32BitsToSingle(bits));
    }

    [TestMethod]
    public void Scalar_RandomFloats_AreWithin2Ulp()
    {
        var rng = new Random(11);
        for (int i = 0; i < 400_000; i++)
        {
            float x = BitConverter.Int32BitsToSingle(rng.Next(int.MinValue, int.MaxValue));
            if (float.IsNaN(x)) continue;
            AssertWithin2Ulp(x);
        }
        for (int i = 0; i < 200_000; i++) AssertWithin2Ulp((float)(rng.NextDouble() * 220 - 110));
    }

    [TestMethod]
    public void SpecialValues()
    {
        Assert.AreEqual(0f, SoftmaxOps.FastExp(float.NegativeInfinity));
        Assert.AreEqual(float.PositiveInfinity, SoftmaxOps.FastExp(float.PositiveInfinity));
        Assert.IsTrue(float.IsNaN(SoftmaxOps.FastExp(float.NaN)));
        Assert.AreEqual(1f, SoftmaxOps.FastExp(0f));
        Assert.AreEqual(1f, SoftmaxOps.FastExp(-0f));
        Assert.AreEqual(0f, SoftmaxOps.FastExp(-104f));
        Assert.AreEqual(0f, SoftmaxOps.FastExp(-1e30f));
        Assert.AreEqual(float.PositiveInfinity, SoftmaxOps.FastExp(89f));
        Assert.AreEqual(MathF.Exp(88.7f), SoftmaxOps.FastExp(88.7f), MathF.Exp(88.7f) * 3e-7f);
    }

    [TestMethod]
    public void Vector_MatchesScalar_BitForBit()
    {
        var rng = new Random(12);
        var x = new float[4099];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 230 - 120);
        x[3] = float.NegativeInfinity; x[9] = float.NaN; x[17] = float.PositiveInfinity; x[20] = -0f; x[4098] = float.NaN;
        var y = new float[x.Length];
        SoftmaxOps.FastExp(x, y);
        for (int i = 0; i < x.Length; i++)
        {
            float s = SoftmaxOps.FastExp(x[i]);
            Assert.AreEqual(BitConverter.SingleToInt32Bits(s), BitConverter.SingleToInt32Bits(y[i]), $"x[{i}] = {x[i]:R}: vector {y[i]:R}, scalar {s:R}");
        }
        // The 512-bit form (AVX-512 machines: Softmax's main loop), lane by lane against the scalar.
        if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported)
            for (int at = 0; at + 16 <= x.Length; at += 16)
            {
                var w = SoftmaxOps.FastExp(Vector512.Create(x.AsSpan(at, 16)));
                for (int k = 0; k < 16; k++) Assert.AreEqual(BitConverter.SingleToInt32Bits(y[at + k]), BitConverter.SingleToInt32Bits(w[k]), $"512-bit x[{at + k}] = {x[at + k]:R}");
            }
        // One vector directly, too.
        var v = SoftmaxOps.FastExp(Vector256.Create(x, 0));
        for (int i = 0; i < Vector256<float>.Count; i++) Assert.AreEqual(BitConverter.SingleToInt32Bits(y[i]), BitConverter.SingleToInt32Bits(v[i]));
    }

    /// <summary>Double reference of a line: Softmax or LogSoftmax with the ONNX formula (NaN and −∞ as IEEE gives them).</summary>
    private static double[] Reference(float[] x, int n, SoftmaxOps.Kind kind)
    {
        var y = new double[x.Length];
        for (int l = 0; l < x.Length / n; l++)
        {
            double max = double.NegativeInfinity, sum = 0;
            bool nan = false;
            for (int j = 0; j < n; j++) { nan |= float.IsNaN(x[l * n + j]); max = Math.Max(max, x[l * n + j]); }
            if (nan) max = double.NaN;
            for (int j = 0; j < n; j++) sum += Math.Exp(x[l * n + j] - max);
            for (int j = 0; j < n; j++)
                y[l * n + j] = kind == SoftmaxOps.Kind.Softmax ? Math.Exp(x[l * n + j] - max) / sum : x[l * n + j] - max - Math.Log(sum);
        }
        return y;
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(7)]
    [DataRow(8)]
    [DataRow(64)]
    [DataRow(100)]
    [DataRow(1027)]
    public void SoftmaxLines_Float_MatchDoubleReference(int n)
    {
        int lines = 40000 / n + 5;
        var rng = new Random(n);
        var x = new float[lines * n];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 60 - 30);
        // Special lines: one −∞ entry, one NaN entry, all −∞, a +∞ entry, a huge spread (underflow to 0).
        x[0] = float.NegativeInfinity;
        if (lines > 4)
        {
            x[n + n / 2] = float.NaN;
            for (int j = 0; j < n; j++) x[2 * n + j] = float.NegativeInfinity;
            x[3 * n] = float.PositiveInfinity;
            x[4 * n] = 500f;
        }
        foreach (var kind in new[] { SoftmaxOps.Kind.Softmax, SoftmaxOps.Kind.LogSoftmax })
        {
            var expected = Reference(x, n, kind);
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[x.Length];
                SoftmaxOps.Lines(x, y, lines, n, 1, kind, threads);
                for (int i = 0; i < y.Length; i++)
                {
                    double e = expected[i];
                    string what = $"{kind} n={n} threads {threads} [{i / n},{i % n}] x={x[i]:R}: {y[i]:R}, expected {e:R}";
                    if (double.IsNaN(e)) Assert.IsTrue(float.IsNaN(y[i]), what);
                    else if (double.IsInfinity(e)) Assert.AreEqual(e, (double)y[i], what);
                    else Assert.IsTrue(Math.Abs(y[i] - e) <= 1e-6 + 2e-6 * Math.Abs(e), what);
                }
            }
        }
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(7)]
    [DataRow(64)]
    [DataRow(100)]
    public void SoftmaxGradLine_MatchesScalarLoop_BitForBit(int n)
    {
        var rng = new Random(n + 100);
        var g = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var y = Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble()).ToArray();
        float s = 0.37f;
        var r = new float[n];
        SoftmaxOps.ScaleCentered<float>(g, s, y, r);
        var rd = new double[n];
        SoftmaxOps.ScaleCentered<double>([.. g.Select(v => (double)v)], s, [.. y.Select(v => (double)v)], rd);
        for (int i = 0; i < n; i++)
        {
            Assert.AreEqual(BitConverter.SingleToInt32Bits((g[i] - s) * y[i]), BitConverter.SingleToInt32Bits(r[i]), $"float [{i}]");
            Assert.AreEqual(BitConverter.DoubleToInt64Bits(((double)g[i] - s) * y[i]), BitConverter.DoubleToInt64Bits(rd[i]), $"double [{i}]");
        }
    }
}
