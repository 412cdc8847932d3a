using Backprop.Onnx.Runtime;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Training;

/// <summary>
/// The vectorized Momentum and Adam updates give, bit for bit, what the ONNX preview-training formulas give evaluated
/// one element at a time (loops written here), including in place, at lengths around the vector width; and the finite
/// check finds a NaN or ±∞ at any position.
/// </summary>
[TestClass]
public sealed class OptimizerMathVectorTests
{
    private static float[] Random(int n, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
    }

    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(7)]
    [DataRow(16)]
    [DataRow(17)]
    [DataRow(37)]
    public void Momentum_InPlace_MatchesTheScalarFormula(int n)
    {
        foreach (bool nesterov in new[] { false, true })
        {
            float[] x = Random(n, 1), g = Random(n, 2), v = Random(n, 3);
            float[] xs = (float[])x.Clone(), vs = (float[])v.Clone();
            float r = 0.01f, a = 0.9f, b = 1f, norm = 0.001f;
            for (int i = 0; i < n; i++)
            {
                float gi = norm * xs[i] + g[i];
                float vn = a * vs[i] + b * gi;
                vs[i] = vn;
                xs[i] = nesterov ? xs[i] - r * (gi + a * vn) : xs[i] - r * vn;
            }
            OptimizerMath.Momentum<float>(0.01, 3, 0.9, 1, nesterov, 0.001, x, g, v, x, v);
            CollectionAssert.AreEqual(xs, x, $"x, nesterov {nesterov}");
            CollectionAssert.AreEqual(vs, v, $"v, nesterov {nesterov}");
        }
    }

    [TestMethod]
    [DataRow(0)]
    [DataRow(5)]
    [DataRow(8)]
    [DataRow(33)]
    public void Adam_InPlace_MatchesTheScalarFormula(int n)
    {
        var r = new Random(4);
        double[] x = Enumerable.Range(0, n).Select(_ => r.NextDouble() - 0.5).ToArray();
        double[] g = Enumerable.Range(0, n).Select(_ => r.NextDouble() - 0.5).ToArray();
        double[] v = Enumerable.Range(0, n).Select(_ => r.NextDouble() - 0.5).ToArray();
        double[] h = Enumerable.Range(0, n).Select(_ => r.NextDouble()).ToArray();
        double[] xs = (double[])x.Clone(), vs = (double[])v.Clone(), hs = (double[])h.Clone();
        double lr = 0.002, alpha = 0.9, beta = 0.999, eps = 1e-8, norm = 0.01, post = 0.0001;
        long t = 5;
        double rAdj = lr * Math.Sqrt(1 - Math.Pow(beta, t)) / (1 - Math.Pow(alpha, t));
        for (int i = 0; i < n; i++)
        {
            double gi = norm * xs[i] + g[i];
            double vn = alpha * vs[i] + (1 - alpha) * gi;
            double hn = beta * hs[i] + (1 - beta) * gi * gi;
            vs[i] = vn;
            hs[i] = hn;
            xs[i] = (1 - post) * (xs[i] - rAdj * vn / (Math.Sqrt(hn) + eps));
        }
        OptimizerMath.Adam<double>(lr, t, alpha, beta, eps, norm, post, x, g, v, h, x, v, h);
        CollectionAssert.AreEqual(xs, x, "x");
        CollectionAssert.AreEqual(vs, v, "v");
        CollectionAssert.AreEqual(hs, h, "h");
    }

    [TestMethod]
    public void FiniteCheck_FindsANonFiniteValueAtEveryPosition()
    {
        foreach (int n in new[] { 1, 15, 16, 17, 40 })
        {
            Assert.IsTrue(FiniteCheck.All<float>(new float[n]), $"zeros, n {n}");
            Assert.IsTrue(FiniteCheck.All<float>(Enumerable.Repeat(float.MaxValue, n).ToArray()), $"max values, n {n}");
            foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
                for (int i = 0; i < n; i++)
                {
                    var values = new float[n];
                    values[i] = bad;
                    Assert.IsFalse(FiniteCheck.All<float>(values), $"{bad} at {i} of {n}");
                    Assert.IsFalse(FiniteCheck.All<double>(values.Select(f => (double)f).ToArray()), $"double {bad} at {i} of {n}");
                }
        }
    }
}
