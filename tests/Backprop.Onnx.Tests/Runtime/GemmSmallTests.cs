using System.Numerics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// The unpacked small-GEMM path (<see cref="Gemm.MultiplySmall{T}"/>, used for batches of attention-sized products)
/// against a scalar triple loop in double precision and against the packed path, in float and double, with every
/// transpose, ragged row and column tiles, leading dimensions, beta and non-finite inputs (bit for bit against the
/// packed path where both run the same kernels).
/// </summary>
[TestClass]
public sealed unsafe class GemmSmallTests
{
    [TestMethod]
    [DataRow(64, 64, 32)]   // attention Q·Kᵀ per head
    [DataRow(64, 32, 64)]   // attention P·V per head
    [DataRow(32, 64, 64)]
    [DataRow(1, 1, 1)]
    [DataRow(5, 7, 3)]      // one short (4 → 8-row) panel, one ragged column panel
    [DataRow(13, 33, 17)]   // 12 + 1 rows, 32 + 1 columns
    [DataRow(16, 48, 9)]    // 12 + 4 rows, a full and a half panel
    [DataRow(20, 31, 40)]   // 12 + 8 rows
    [DataRow(37, 16, 100)]  // 3 · 12 + 1 rows, one half-width panel
    [DataRow(100, 64, 1)]
    public void MatchesTripleLoop(int m, int n, int k)
    {
        if (!Gemm.SmallFits<float>(m, n, k)) Assert.Inconclusive("no Vector512 on this machine");
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                foreach (double beta in new[] { 0.0, 1.0, -0.5 })
                {
                    Check<float>(m, n, k, ta, tb, beta, 1e-5);
                    if (Gemm.SmallFits<double>(m, n, k)) Check<double>(m, n, k, ta, tb, beta, 1e-12);
                }
    }

    [TestMethod]
    [DataRow(64, 64, 32)]
    [DataRow(64, 32, 64)]
    [DataRow(29, 45, 23)]
    public void MatchesPackedPathBitForBit(int m, int n, int k)
    {
        if (!Gemm.SmallFits<float>(m, n, k)) Assert.Inconclusive("no Vector512 on this machine");
        var rnd = new Random(3);
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                foreach (float beta in new[] { 0f, 1f })
                {
                    var a = Rand(rnd, m * k); var b = Rand(rnd, k * n); var c0 = Rand(rnd, m * n);
                    var (fa, fb) = (a.Select(v => (float)v).ToArray(), b.Select(v => (float)v).ToArray());
                    var packed = c0.Select(v => (float)v).ToArray();
                    var small = (float[])packed.Clone();
                    Gemm.Multiply(ta, tb, m, n, k, 1f, fa, ta ? m : k, fb, tb ? k : n, beta, packed, n, 1, GemmPath.Vector512);
                    Small(ta, tb, m, n, k, fa, ta ? m : k, fb, tb ? k : n, beta, small, n);
                    CollectionAssert.AreEqual(packed, small, $"m={m} n={n} k={k} transA={ta} transB={tb} beta={beta}");
                }
    }

    [TestMethod]
    public void LeadingDimensionsLargerThanRows()
    {
        if (!Gemm.SmallFits<double>(9, 13, 11)) Assert.Inconclusive("no Vector512 on this machine");
        // A is the left 9×11 block of a 9×20 buffer (transposed: 11×9 inside 11×14), B 11×13 inside 11×40, C 9×13 inside 9×30.
        var rnd = new Random(7);
        foreach (bool ta in new[] { false, true })
        {
            int lda = ta ? 14 : 20, ldb = 40, ldc = 30;
            var a = Rand(rnd, (ta ? 11 : 9) * lda); var b = Rand(rnd, 11 * ldb); var c = Rand(rnd, 9 * ldc);
            var expected = (double[])c.Clone();
            for (int i = 0; i < 9; i++)
                for (int j = 0; j < 13; j++)
                {
                    double s = 0;
                    for (int q = 0; q < 11; q++) s += (ta ? a[q * lda + i] : a[i * lda + q]) * b[q * ldb + j];
                    expected[i * ldc + j] = s + c[i * ldc + j];
                }
            var actual = (double[])c.Clone();
            Small(ta, false, 9, 13, 11, a, lda, b, ldb, 1.0, actual, ldc);
            for (int i = 0; i < actual.Length; i++) Assert.AreEqual(expected[i], actual[i], 1e-12, $"transA={ta} element {i}");
        }
    }

    [TestMethod]
    public void NonFiniteInputsPropagateAndBetaZeroIgnoresC()
    {
        if (!Gemm.SmallFits<float>(20, 40, 30)) Assert.Inconclusive("no Vector512 on this machine");
        const int m = 20, n = 40, k = 30;
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
            {
                var a = Enumerable.Repeat(1f, m * k).ToArray();
                var b = Enumerable.Repeat(2f, k * n).ToArray();
                a[ta ? 4 * m + 13 : 13 * k + 4] = float.NaN;                 // op(A)[13, 4]: row 13 of C is NaN
                b[tb ? 35 * k + 7 : 7 * n + 35] = float.PositiveInfinity;   // op(B)[7, 35]: column 35 is +∞ (NaN on row 13)
                var c = Enumerable.Repeat(float.NaN, m * n).ToArray();
                Small(ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, 0f, c, n);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        float v = c[i * n + j];
                        string at = $"transA={ta} transB={tb} C[{i},{j}] = {v}";
                        if (i == 13) Assert.IsTrue(float.IsNaN(v), at);
                        else if (j == 35) Assert.IsTrue(float.IsPositiveInfinity(v), at);
                        else Assert.AreEqual(60f, v, at);
                    }
            }
    }

    private static double[] Rand(Random rnd, int count) => [.. Enumerable.Range(0, count).Select(_ => rnd.NextDouble() * 2 - 1)];

    private static void Small<T>(bool ta, bool tb, int m, int n, int k, T[] a, int lda, T[] b, int ldb, T beta, T[] c, int ldc)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var scratch = new T[Gemm.SmallScratch<T>(n, k)];
        fixed (T* pa = a, pb = b, pc = c, ps = scratch) Gemm.MultiplySmall(ta, tb, m, n, k, pa, lda, pb, ldb, beta, pc, ldc, ps);
    }

    private static void Check<T>(int m, int n, int k, bool ta, bool tb, double beta, double tol) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rnd = new Random(m * 1000 + n * 10 + k);
        var a = Rand(rnd, m * k).Select(T.CreateTruncating).ToArray();
        var b = Rand(rnd, k * n).Select(T.CreateTruncating).ToArray();
        var c = Rand(rnd, m * n).Select(T.CreateTruncating).ToArray();
        int lda = ta ? m : k, ldb = tb ? k : n;
        var expected = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int q = 0; q < k; q++)
                    s += double.CreateTruncating(ta ? a[q * lda + i] : a[i * lda + q]) * double.CreateTruncating(tb ? b[j * ldb + q] : b[q * ldb + j]);
                expected[i * n + j] = s + (beta == 0 ? 0 : beta * double.CreateTruncating(c[i * n + j]));
            }
        Small(ta, tb, m, n, k, a, lda, b, ldb, T.CreateTruncating(beta), c, n);
        for (int i = 0; i < expected.Length; i++)
        {
            double actual = double.CreateTruncating(c[i]);
            Assert.IsTrue(Math.Abs(actual - expected[i]) <= tol * (1 + Math.Abs(expected[i])) * 10,
                $"{typeof(T).Name} m={m} n={n} k={k} transA={ta} transB={tb} beta={beta}: element {i} is {actual}, expected {expected[i]}");
        }
    }
}
