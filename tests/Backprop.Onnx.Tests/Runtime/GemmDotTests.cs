using System.Numerics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>C += A·Bᵀ by dot products (the convolution weight gradient's kernel) against a double-precision loop.</summary>
[TestClass]
public sealed class GemmDotTests
{
    [TestMethod]
    [DataRow(1, 1, 1)]
    [DataRow(4, 4, 8)]
    [DataRow(4, 4, 7)]
    [DataRow(5, 7, 33)]
    [DataRow(16, 144, 1024)]
    [DataRow(6, 25, 784)]
    [DataRow(3, 9, 0)]
    [DataRow(8, 3, 17)]
    public void MatchesTheLoop(int m, int n, int k)
    {
        Check<float>(m, n, k, 1e-5);
        Check<double>(m, n, k, 1e-12);
    }

    private static void Check<T>(int m, int n, int k, double tolerance) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(m * 1000 + n * 10 + k);
        // Row strides above the row lengths, as for a convolution's dY planes.
        int lda = k + 3, ldb = k + 1, ldc = n + 2;
        var a = Enumerable.Range(0, m * lda).Select(_ => T.CreateChecked(random.NextDouble() * 2 - 1)).ToArray();
        var b = Enumerable.Range(0, n * ldb).Select(_ => T.CreateChecked(random.NextDouble() * 2 - 1)).ToArray();
        var c = Enumerable.Range(0, m * ldc).Select(_ => T.CreateChecked(random.NextDouble())).ToArray();
        var expected = c.Select(v => double.CreateChecked(v)).ToArray();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                for (int q = 0; q < k; q++)
                    expected[i * ldc + j] += double.CreateChecked(a[i * lda + q]) * double.CreateChecked(b[j * ldb + q]);
        Gemm.MultiplyAddTransposed<T>(m, n, k, a, lda, b, ldb, c, ldc);
        for (int i = 0; i < c.Length; i++)
            Assert.AreEqual(expected[i], double.CreateChecked(c[i]), tolerance * Math.Max(1, Math.Sqrt(k)), $"{typeof(T).Name} m={m} n={n} k={k} element {i} (seed {m * 1000 + n * 10 + k})");
    }

    [TestMethod]
    [DataRow(6, 25, 779)]
    [DataRow(7, 10, 64)]
    [DataRow(3, 5, 9)]
    public void EveryTileSumsLikeOneDotProduct(int m, int n, int k)
    {
        // The 4×4 tiles, the 1×4 edge tiles (both ways round) and the corner must give each element the bits of a
        // lone 1×1 call: a vector-lane sum over q in the same order, then the tail.
        var random = new Random(m * 100 + n);
        var a = Enumerable.Range(0, m * k).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var b = Enumerable.Range(0, n * k).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var c = new float[m * n];
        Gemm.MultiplyAddTransposed<float>(m, n, k, a, k, b, k, c, n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                var one = new float[1];
                Gemm.MultiplyAddTransposed<float>(1, 1, k, a.AsSpan(i * k, k), k, b.AsSpan(j * k, k), k, one, 1);
                Assert.AreEqual(BitConverter.SingleToInt32Bits(one[0]), BitConverter.SingleToInt32Bits(c[i * n + j]), $"m={m} n={n} k={k}: C[{i},{j}]");
            }
    }

    [TestMethod]
    public void SameOperandsGiveTheSameBits()
    {
        var random = new Random(5);
        var a = Enumerable.Range(0, 16 * 100).Select(_ => (float)random.NextDouble()).ToArray();
        var b = Enumerable.Range(0, 9 * 100).Select(_ => (float)random.NextDouble()).ToArray();
        var c1 = new float[16 * 9];
        var c2 = new float[16 * 9];
        Gemm.MultiplyAddTransposed<float>(16, 9, 100, a, 100, b, 100, c1, 9);
        Gemm.MultiplyAddTransposed<float>(16, 9, 100, a, 100, b, 100, c2, 9);
        CollectionAssert.AreEqual(c1, c2);
    }
}

/// <summary>Our packed GEMM above the size where it uses threads: the same bits for every thread count, and right.</summary>
[TestClass]
public sealed class GemmThreadsTests
{
    [TestMethod]
    [DataRow(false, false)]
    [DataRow(true, true)]
    public void ThreadCountDoesNotChangeTheBits(bool transA, bool transB)
    {
        int m = 150, n = 200, k = 160;   // 4.8M multiply-adds: above the single-thread cutoff
        var random = new Random(7);
        var a = Enumerable.Range(0, m * k).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var b = Enumerable.Range(0, k * n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        float[] Run(int threads)
        {
            var c = new float[m * n];
            Gemm.Multiply(transA, transB, m, n, k, 1f, a, transA ? m : k, b, transB ? k : n, 0f, c, n, threads);
            return c;
        }
        var one = Run(1);
        CollectionAssert.AreEqual(one, Run(2));
        CollectionAssert.AreEqual(one, Run(3));
        for (int i = 0; i < m; i += 37)
            for (int j = 0; j < n; j += 41)
            {
                double sum = 0;
                for (int q = 0; q < k; q++) sum += (double)a[transA ? q * m + i : i * k + q] * b[transB ? j * k + q : q * n + j];
                Assert.AreEqual(sum, one[i * n + j], 1e-4, $"C[{i},{j}] (seed 7)");
            }
    }
}
