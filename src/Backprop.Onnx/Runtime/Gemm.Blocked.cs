using System.Buffers;
using System.Numerics;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// The blocked loops and how threads share them: C is cut once into a grid of rectangular regions, one per thread, and
/// each region runs the whole BLIS loop nest on its own (packing its own op(B) columns and op(A) rows), so a call waits
/// for its threads once, not once or twice per KC step.
/// </summary>
/// <remarks>
/// Region edges fall on the MR × NR tile grid of the whole C (rows at multiples of MR, columns at multiples of NR), and
/// the KC steps depend only on k, so every element of C is computed by the same kernel in the same summation order
/// whatever the thread count. The grid is chosen to minimise the busiest region's time: its multiply-adds plus the
/// elements it packs (a 1 × 2 grid packs all of op(A) twice, a 2 × 1 grid all of op(B) twice).
/// </remarks>
internal static unsafe partial class Gemm
{
    /// <summary>Packing one element costs about as much as this many multiply-adds (one cycle against 16 FMA lanes).</summary>
    private const int PackCost = 16;

    private static void Blocked<T>(in Problem<T> p, GemmPath path, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var bl = BlockingFor<T>(path);
        // Balanced KC steps: 784 runs as 4 × 196 rather than 3 × 256 + 16 (a thin last step costs a full C update).
        int kSteps = (p.K + bl.KC - 1) / bl.KC;
        int kc = (p.K + kSteps - 1) / kSteps;
        var (tm, tn) = Grid(p.M, p.N, bl, threads);
        if (tm * tn == 1)
        {
            RunRegion(p, bl, path, kc, 0, p.M, 0, p.N);
            return;
        }
        var job = RegionJob<T>.Rent();
        job.Set(p, bl, path, kc, tm, tn);
        try
        {
            ChunkRunner.For(tm * tn, threads, job.Body);
        }
        finally
        {
            job.Return();
        }
    }

    /// <summary>The tm × tn grid of regions (tm · tn ≤ threads) whose busiest region is cheapest.</summary>
    internal static (int Tm, int Tn) Grid(int m, int n, int mr, int nr, int threads)
    {
        int rowTiles = (m + mr - 1) / mr, colPanels = (n + nr - 1) / nr;
        (int, int) best = (1, 1);
        long bestCost = long.MaxValue;
        for (int t = Math.Max(1, threads); t >= 1 && bestCost == long.MaxValue; t--)
        {
            for (int tm = 1; tm <= t; tm++)
            {
                if (t % tm != 0) continue;
                int tn = t / tm;
                if (tm > rowTiles || tn > colPanels) continue;
                long rows = (long)((rowTiles + tm - 1) / tm) * mr, cols = (long)((colPanels + tn - 1) / tn) * nr;
                long cost = rows * cols + PackCost * (rows + cols);
                if (cost < bestCost) (best, bestCost) = ((tm, tn), cost);
            }
        }
        return best;
    }

    private static (int Tm, int Tn) Grid(int m, int n, Blocking bl, int threads) => Grid(m, n, bl.MR, bl.NR, threads);

    /// <summary>Rows [r0, r1) or columns of region <paramref name="index"/> of <paramref name="parts"/>, cut on whole tiles.</summary>
    private static (int Start, int End) Cut(int size, int tileSize, int parts, int index)
    {
        int tiles = (size + tileSize - 1) / tileSize;
        int t0 = (int)((long)tiles * index / parts), t1 = (int)((long)tiles * (index + 1) / parts);
        return (Math.Min(size, t0 * tileSize), Math.Min(size, t1 * tileSize));
    }

    /// <summary>The BLIS loop nest over rows [r0, r1) × columns [c0, c1) of C, with KC steps of <paramref name="kcStep"/>.</summary>
    private static void RunRegion<T>(in Problem<T> p, Blocking bl, GemmPath path, int kcStep, int r0, int r1, int c0, int c1)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (r0 >= r1 || c0 >= c1) return;
        int align = 64 / sizeof(T);
        int ncMax = Math.Min(bl.NC, RoundUp(c1 - c0, bl.NR)), mcMax = Math.Min(bl.MC, RoundUp(r1 - r0, bl.MR));
        T[] bArray = ArrayPool<T>.Shared.Rent(ncMax * kcStep + align);
        T[] aArray = ArrayPool<T>.Shared.Rent(mcMax * kcStep + align);
        try
        {
            fixed (T* bRaw = bArray, aRaw = aArray)
            {
                T* bp = Align(bRaw), ap = Align(aRaw);
                T* tile = stackalloc T[bl.MR * bl.NR];
                var first = FirstUpdate(p.Beta);
                // One row panel: each B panel would be packed to be read once, so the kernel reads a plain B in place
                // (full panels only; a ragged last panel is still packed, as the kernel reads NR columns).
                bool directB = path == GemmPath.Vector512 && !p.TransB && r1 - r0 <= bl.MR;
                for (int jc = c0; jc < c1; jc += bl.NC)
                {
                    int nc = Math.Min(bl.NC, c1 - jc);
                    for (int pc = 0; pc < p.K; pc += kcStep)
                    {
                        int kc = Math.Min(kcStep, p.K - pc);
                        if (!directB) PackB(p, bp, pc, kc, jc, nc, bl.NR);
                        else if (nc % bl.NR != 0) PackBPanel(p, bp, pc, kc, jc, nc, bl.NR, nc / bl.NR);
                        var update = pc == 0 ? first : Update.Add;
                        for (int ic = r0; ic < r1; ic += bl.MC)
                        {
                            int mc = Math.Min(bl.MC, r1 - ic);
                            PackA(p, ap, ic, mc, pc, kc, bl.MR);
                            Macro(p, bl, path, ap, bp, ic, mc, jc, nc, pc, kc, update, tile, directB);
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(aArray);
            ArrayPool<T>.Shared.Return(bArray);
        }
    }

    /// <summary>The macro-kernel: every MR × NR tile of the packed mc × kc block of A times the packed kc × nc block of B.</summary>
    private static void Macro<T>(in Problem<T> p, Blocking bl, GemmPath path, T* ap, T* bp, int ic, int mc, int jc, int nc, int pc, int kc,
        Update update, T* tile, bool directB) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int jr = 0; jr < nc; jr += bl.NR)
        {
            int nr = Math.Min(bl.NR, nc - jr);
            bool direct = directB && nr == bl.NR;
            T* bPanel = direct ? p.B + (long)pc * p.Ldb + jc + jr : bp + (long)jr * kc;
            long ldb = direct ? p.Ldb : bl.NR;
            for (int ir = 0; ir < mc; ir += bl.MR)
            {
                int mr = Math.Min(bl.MR, mc - ir);
                T* aPanel = ap + (long)ir * kc;
                T* c = p.C + (long)(ic + ir) * p.Ldc + jc + jr;
                if (mr == bl.MR && nr == bl.NR)
                {
                    MicroKernel(path, kc, aPanel, bPanel, ldb, c, p.Ldc, update, p.Beta);
                }
                else if (path == GemmPath.Vector512 && mr <= 8)
                {
                    // A short last panel: compute only the rows it has (rounded up to 4 or 8). beta·C + tile
                    // goes through ApplyTile as before, so the bits do not depend on which kernel ran.
                    int rows = mr <= 4 ? 4 : 8;
                    if (mr == rows && nr == bl.NR && update != Update.ScaleAdd) ShortKernel(rows, kc, aPanel, bPanel, ldb, c, p.Ldc, update, p.Beta);
                    else
                    {
                        ShortKernel(rows, kc, aPanel, bPanel, ldb, tile, bl.NR, Update.Store, p.Beta);
                        ApplyTile(tile, bl.NR, c, p.Ldc, mr, nr, update, p.Beta);
                    }
                }
                else if (path == GemmPath.Vector512 && nr <= bl.NR / 2)
                {
                    // A narrow last column panel: only its left vector, stored to the tile and applied as before.
                    Kernel512Narrow(kc, aPanel, bPanel, ldb, tile, bl.NR);
                    ApplyTile(tile, bl.NR, c, p.Ldc, mr, nr, update, p.Beta);
                }
                else
                {
                    MicroKernel(path, kc, aPanel, bPanel, ldb, tile, bl.NR, Update.Store, p.Beta);
                    ApplyTile(tile, bl.NR, c, p.Ldc, mr, nr, update, p.Beta);
                }
            }
        }
    }

    private static int RoundUp(int x, int multiple) => (x + multiple - 1) / multiple * multiple;

    private static T* Align<T>(T* p) where T : unmanaged => (T*)(((nint)p + 63) & ~(nint)63);

    /// <summary>
    /// One call's regions as a work item for <see cref="ChunkRunner"/>. Each thread keeps one (and its <see cref="Body"/>
    /// delegate, made once), so a call allocates nothing; a nested call while it is in use makes a fresh one.
    /// </summary>
    private sealed class RegionJob<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        [ThreadStatic] private static RegionJob<T>? t_free;

        private Problem<T> _p;
        private Blocking _bl;
        private GemmPath _path;
        private int _kc, _tm, _tn;

        private RegionJob() => Body = Run;

        /// <summary>Runs region i: row band i / tn, column band i % tn.</summary>
        public Action<int> Body { get; }

        public static RegionJob<T> Rent()
        {
            var job = t_free ?? new RegionJob<T>();
            t_free = null;
            return job;
        }

        public void Set(in Problem<T> p, Blocking bl, GemmPath path, int kc, int tm, int tn) =>
            (_p, _bl, _path, _kc, _tm, _tn) = (p, bl, path, kc, tm, tn);

        public void Return()
        {
            _p = default;
            t_free = this;
        }

        private void Run(int index)
        {
            var (r0, r1) = Cut(_p.M, _bl.MR, _tm, index / _tn);
            var (c0, c1) = Cut(_p.N, _bl.NR, _tn, index % _tn);
            RunRegion(_p, _bl, _path, _kc, r0, r1, c0, c1);
        }
    }
}
