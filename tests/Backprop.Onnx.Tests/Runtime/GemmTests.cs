using System.Numerics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>Our packed GEMM against a naive triple loop in double precision, on every micro-kernel path.</summary>
[TestClass]
public sealed class GemmTests
{
    private static readonly GemmPath[] Paths = [GemmPath.Auto, GemmPath.Vector512, GemmPath.Vector256, GemmPath.Scalar];

    [TestMethod]
    [DataRow(1, 1, 1)]
    [DataRow(7, 17, 33)]
    [DataRow(17, 7, 100)]
    [DataRow(33, 33, 33)]
    [DataRow(100, 1, 100)]
    [DataRow(1, 100, 100)]
    [DataRow(100, 100, 7)]
    [DataRow(150, 40, 300)]
    [DataRow(13, 65, 257)]
    [DataRow(16, 64, 300)]   // 12 + 4 rows: the short 4-row kernel on full-width tiles, stored then added (k > KC)
    [DataRow(20, 32, 257)]   // 12 + 8 rows
    [DataRow(8, 96, 10)]     // only a short panel
    [DataRow(128, 10, 256)]  // one narrow column panel (the left half of the 12-row kernel)
    [DataRow(24, 48, 70)]    // a full and a narrow column panel
    [DataRow(6, 100, 300)]   // one row panel: B read in place over two KC steps, a ragged last panel packed
    public void MatchesNaiveLoop(int m, int n, int k)
    {
        foreach (var path in Paths)
            foreach (int threads in new[] { 1, 3 })
                foreach (bool ta in new[] { false, true })
                    foreach (bool tb in new[] { false, true })
                    {
                        Check<float>(m, n, k, ta, tb, 1, 0, path, threads, 1e-5);
                        Check<double>(m, n, k, ta, tb, 1, 0, path, threads, 1e-12);
                    }
    }

    [TestMethod]
    [DataRow(0.5, 2.0)]
    [DataRow(-1.5, 1.0)]
    [DataRow(2.0, 0.0)]
    [DataRow(1.0, -0.25)]
    public void AlphaAndBeta(double alpha, double beta)
    {
        foreach (var path in Paths)
        {
            Check<float>(33, 17, 100, false, true, alpha, beta, path, 2, 1e-5);
            Check<double>(33, 17, 100, true, false, alpha, beta, path, 1, 1e-12);
            Check<double>(5, 3, 4, false, false, alpha, beta, path, 1, 1e-12);
            Check<float>(36, 10, 50, true, true, alpha, beta, path, 1, 1e-5);
        }
    }

    [TestMethod]
    public void WideMatrixCrossesColumnBlocks()
    {
        foreach (var path in Paths) Check<float>(3, 4101, 2, false, false, 1, 1, path, 2, 1e-5);
    }

    [TestMethod]
    public void ZeroInnerDimensionScalesC()
    {
        var c = new double[] { 1, 2, 3, 4 };
        Gemm.Multiply(false, false, 2, 2, 0, 1.0, [], 0, [], 2, 3.0, c, 2);
        CollectionAssert.AreEqual(new double[] { 3, 6, 9, 12 }, c);
    }

    [TestMethod]
    public void BetaZeroIgnoresNaNInC()
    {
        foreach (var path in Paths)
        {
            int m = 20, n = 40, k = 30;
            var a = Enumerable.Repeat(1f, m * k).ToArray();
            var b = Enumerable.Repeat(2f, k * n).ToArray();
            var c = Enumerable.Repeat(float.NaN, m * n).ToArray();
            Gemm.Multiply(false, false, m, n, k, 1f, a, k, b, n, 0f, c, n, 1, path);
            Assert.IsTrue(c.All(v => v == 60f), $"path {path}");
        }
    }

    [TestMethod]
    public void LeadingDimensionsLargerThanRows()
    {
        // A is the left 9×11 block of a 9×20 buffer, B the top-left 11×13 of 15×16, C the 9×13 inside 9×30.
        var rnd = new Random(7);
        var a = Rand(rnd, 9 * 20); var b = Rand(rnd, 15 * 16); var c = Rand(rnd, 9 * 30);
        var expected = (double[])c.Clone();
        for (int i = 0; i < 9; i++)
            for (int j = 0; j < 13; j++)
            {
                double s = 0;
                for (int q = 0; q < 11; q++) s += a[i * 20 + q] * b[q * 16 + j];
                expected[i * 30 + j] = s + 0.5 * c[i * 30 + j];
            }
        foreach (var path in Paths)
        {
            var actual = (double[])c.Clone();
            Gemm.Multiply(false, false, 9, 13, 11, 1.0, a, 20, b, 16, 0.5, actual, 30, 1, path);
            for (int i = 0; i < actual.Length; i++) Assert.AreEqual(expected[i], actual[i], 1e-12, $"path {path}, element {i}");
        }
    }

    [TestMethod]
    public void OneRowPanelReadsBInPlaceWithLeadingDimensions()
    {
        // m ≤ 12 with B not transposed: the kernel reads B in place at stride ldb (and packs only the ragged last panel).
        const int m = 10, n = 70, k = 300, lda = 310, ldb = 75, ldc = 80;
        var rnd = new Random(11);
        var a = Rand(rnd, m * lda); var b = Rand(rnd, k * ldb); var c = Rand(rnd, m * ldc);
        var expected = (double[])c.Clone();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int q = 0; q < k; q++) s += a[i * lda + q] * b[q * ldb + j];
                expected[i * ldc + j] = 2 * s - 0.5 * c[i * ldc + j];
            }
        foreach (var path in Paths)
        {
            var actual = (double[])c.Clone();
            Gemm.Multiply(false, false, m, n, k, 2.0, a, lda, b, ldb, -0.5, actual, ldc, 1, path);
            for (int i = 0; i < actual.Length; i++) Assert.AreEqual(expected[i], actual[i], 1e-11, $"path {path}, element {i}");
            var single = c.Select(v => (float)v).ToArray();
            Gemm.Multiply(false, false, m, n, k, 2f, a.Select(v => (float)v).ToArray(), lda, b.Select(v => (float)v).ToArray(), ldb, -0.5f, single, ldc, 1, path);
            for (int i = 0; i < single.Length; i++) Assert.AreEqual(expected[i], single[i], 1e-3, $"float path {path}, element {i}");
        }
    }

    [TestMethod]
    public void ShortSpanThrows() =>
        Assert.ThrowsExactly<ArgumentException>(() => Gemm.Multiply(false, false, 2, 2, 2, 1f, new float[3], 2, new float[4], 2, 0f, new float[4], 2));

    private static double[] Rand(Random rnd, int count) => [.. Enumerable.Range(0, count).Select(_ => rnd.NextDouble() * 2 - 1)];

    private static void Check<T>(int m, int n, int k, bool ta, bool tb, double alpha, double beta, GemmPath path, int threads, double tol)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int seed = HashCode.Combine(m, n, k, ta, tb, path, threads) & 0xffff;
        var rnd = new Random(seed);
        var a = Rand(rnd, m * k); var b = Rand(rnd, k * n); var c = Rand(rnd, m * n);
        var expected = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0, scale = 0;
                for (int q = 0; q < k; q++)
                {
                    double av = ta ? a[q * m + i] : a[i * k + q];
                    double bv = tb ? b[j * k + q] : b[q * n + j];
                    s += av * bv;
                    scale += Math.Abs(av * bv);
                }
                expected[i * n + j] = alpha * s + beta * c[i * n + j];
            }
        T[] Cast(double[] x) => [.. x.Select(T.CreateChecked)];
        var actual = Cast(c);
        Gemm.Multiply(ta, tb, m, n, k, T.CreateChecked(alpha), Cast(a), ta ? m : k, Cast(b), tb ? k : n, T.CreateChecked(beta), actual, n, threads, path);
        for (int i = 0; i < expected.Length; i++)
        {
            double bound = tol * (k + 1) * (1 + Math.Abs(expected[i]));
            Assert.AreEqual(expected[i], double.CreateChecked(actual[i]), bound,
                $"{typeof(T).Name} m={m} n={n} k={k} transA={ta} transB={tb} alpha={alpha} beta={beta} path={path} threads={threads} seed={seed}: element {i}");
        }
    }
}
