using System.Numerics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// The multi-threaded GEMM (problems above the parallel threshold): the same bits on any thread count, agreement with
/// a triple loop, how C is cut into regions, and no allocation per call once warm.
/// </summary>
[TestClass]
public sealed class GemmThreadingTests
{
    public static IEnumerable<object[]> Shapes =>
    [
        [128, 512, 100],   // few rows: columns split
        [1030, 40, 120],   // few columns: rows split, a short last row panel
        [200, 300, 301],   // two balanced KC steps
        [131, 10, 3100],   // one column panel, long k
        [10, 4010, 120],   // one row panel (B read in place), columns split, a ragged last panel
    ];

    [TestMethod]
    [DynamicData(nameof(Shapes))]
    public void SameBitsOnAnyThreadCount(int m, int n, int k)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
            {
                SameBits<float>(m, n, k, ta, tb, 0.0);
                SameBits<double>(m, n, k, ta, tb, 0.5);
            }
    }

    [TestMethod]
    [DynamicData(nameof(Shapes))]
    public void ParallelMatchesNaiveLoop(int m, int n, int k)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
            {
                Compare<float>(m, n, k, ta, tb, 1.5, 0.5, 1e-5);
                Compare<double>(m, n, k, ta, tb, 1.0, 0.0, 1e-12);
            }
    }

    [TestMethod]
    [DataRow(128, 512, 2, 1, 2)]    // Linear forward on batch 128: split the columns, A is packed twice
    [DataRow(1024, 128, 2, 2, 1)]   // tall C: split the rows, B is packed twice
    [DataRow(1024, 1024, 4, 2, 2)]
    [DataRow(10, 10, 4, 1, 1)]      // one tile
    [DataRow(13, 10, 4, 2, 1)]      // two row tiles, one column panel
    [DataRow(500, 500, 1, 1, 1)]
    public void GridSplitsTheLongerSide(int m, int n, int threads, int tm, int tn) =>
        Assert.AreEqual((tm, tn), Gemm.Grid(m, n, 12, 32, threads));

    /// <summary>Runs alone: the packing buffers come from ArrayPool&lt;T&gt;.Shared, whose per-core stacks concurrent tests share.</summary>
    [TestMethod]
    [DoNotParallelize]
    public void NoAllocationPerCallOnceWarm()
    {
        Allocation<float>(128, 512, 300, false, true);
        Allocation<float>(512, 300, 128, true, false);
        Allocation<double>(300, 200, 100, false, false);
    }

    private static void Allocation<T>(int m, int n, int k, bool ta, bool tb) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var a = new T[m * k]; var b = new T[k * n]; var c = new T[m * n];
        a.AsSpan().Fill(T.One); b.AsSpan().Fill(T.One);
        void Run() => Gemm.Multiply(ta, tb, m, n, k, T.One, a, ta ? m : k, b, tb ? k : n, T.Zero, c, n, 2);
        for (int i = 0; i < 5; i++) Run();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++) Run();
        long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.AreEqual(0, bytes, $"{typeof(T).Name} {m}x{n}x{k} allocated {bytes} bytes in 20 calls");
        Assert.AreEqual(T.CreateChecked(k), c[^1]);
    }

    private static T[] Rand<T>(Random rnd, int count) where T : IFloatingPointIeee754<T> =>
        [.. Enumerable.Range(0, count).Select(_ => T.CreateChecked(rnd.NextDouble() * 2 - 1))];

    private static void SameBits<T>(int m, int n, int k, bool ta, bool tb, double beta) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int seed = HashCode.Combine(m, n, k, ta, tb) & 0xffff;
        var rnd = new Random(seed);
        var a = Rand<T>(rnd, m * k); var b = Rand<T>(rnd, k * n); var c0 = Rand<T>(rnd, m * n);
        T[]? reference = null;
        foreach (int threads in new[] { 1, 2, 3, 4 })
        {
            var c = (T[])c0.Clone();
            Gemm.Multiply(ta, tb, m, n, k, T.One, a, ta ? m : k, b, tb ? k : n, T.CreateChecked(beta), c, n, threads);
            if (reference is null) reference = c;
            else CollectionAssert.AreEqual(reference, c, $"{typeof(T).Name} {m}x{n}x{k} transA={ta} transB={tb} threads={threads} seed={seed}");
        }
    }

    private static void Compare<T>(int m, int n, int k, bool ta, bool tb, double alpha, double beta, double tol) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int seed = HashCode.Combine(m, n, k, ta, tb, alpha) & 0xffff;
        var rnd = new Random(seed);
        var a = Rand<double>(rnd, m * k); var b = Rand<double>(rnd, k * n); var c = Rand<double>(rnd, m * n);
        var actual = c.Select(T.CreateChecked).ToArray();
        Gemm.Multiply(ta, tb, m, n, k, T.CreateChecked(alpha), a.Select(T.CreateChecked).ToArray(), ta ? m : k,
            b.Select(T.CreateChecked).ToArray(), tb ? k : n, T.CreateChecked(beta), actual, n, 2);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0, scale = 0;
                for (int q = 0; q < k; q++)
                {
                    double v = (ta ? a[q * m + i] : a[i * k + q]) * (tb ? b[j * k + q] : b[q * n + j]);
                    s += v;
                    scale += Math.Abs(v);
                }
                double expected = alpha * s + beta * c[i * n + j];
                Assert.AreEqual(expected, double.CreateChecked(actual[i * n + j]), tol * (scale + 1),
                    $"{typeof(T).Name} {m}x{n}x{k} transA={ta} transB={tb} seed={seed}: C[{i},{j}]");
            }
    }
}
