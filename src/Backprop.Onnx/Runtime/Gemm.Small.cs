using System.Numerics;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// The small-GEMM path for batches of little products (a Transformer's attention: 64 heads × 64×64×32 per call), where
/// the packed path's fixed costs (pooled buffers, region grid, packing both operands) are a large share of a few
/// microseconds of multiply-adds.
/// </summary>
/// <remarks>
/// op(B) is at most <see cref="SmallBBytes"/>, so it stays in L1 for the whole product: a row-major B with whole NR-wide
/// panels is read in place (its row stride is the kernel's panel stride), otherwise it is copied or transposed once
/// into the caller's scratch, zero-padded to whole panels. A transposed A (stored k × m) already holds each MR-high
/// panel's k-th column contiguously, so the kernels read it in place with the row stride as their A step; a row-major A
/// is packed one MR-row panel at a time (as <see cref="PackA{T}"/> does). The micro-kernels are the packed path's
/// (<see cref="Kernel512{T}"/> and its 8- and 4-row siblings), and k is one KC step, so every element is summed in the
/// same order as by <see cref="Multiply{T}"/> (BLIS: Van Zee and van de Geijn, "BLIS: A Framework for Rapidly
/// Instantiating BLAS Functionality", 2015, the macro-kernel with the pack of B skipped when it already fits L1).
/// </remarks>
internal static unsafe partial class Gemm
{
    /// <summary>The largest op(B), rounded up to whole panels, the small path keeps in L1 (half of Zen 4's 32 KiB L1d).</summary>
    private const int SmallBBytes = 16 * 1024;

    /// <summary>Whether <see cref="MultiplySmall{T}"/> takes an m × n × k product: the Vector512 kernels and op(B) fits L1.</summary>
    internal static bool SmallFits<T>(int m, int n, int k) where T : unmanaged =>
        Resolve(GemmPath.Auto) == GemmPath.Vector512 && m > 0 && n > 0 && k > 0
        && (long)k * RoundUp(n, 2 * Vector512<T>.Count) * sizeof(T) <= SmallBBytes;

    /// <summary>Elements of scratch <see cref="MultiplySmall{T}"/> needs for n × k (B copy, one A panel, one tile, alignment).</summary>
    internal static int SmallScratch<T>(int n, int k) where T : unmanaged
    {
        int nr = 2 * Vector512<T>.Count;
        return k * RoundUp(n, nr) + 12 * k + 12 * nr + 3 * (64 / sizeof(T));
    }

    /// <summary>
    /// C = op(A)·op(B) + beta·C (alpha 1) for a product <see cref="SmallFits{T}"/> accepts, with <see cref="Multiply{T}"/>'s
    /// operand layout; beta = 0 overwrites C without reading it. <paramref name="scratch"/> holds
    /// <see cref="SmallScratch{T}"/>(n, k) elements. One thread; the caller splits a batch across threads.
    /// </summary>
    internal static void MultiplySmall<T>(bool transA, bool transB, int m, int n, int k, T* a, int lda, T* b, int ldb, T beta, T* c, int ldc, T* scratch)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int mr = 12;
        int nr = 2 * Vector512<T>.Count, nPad = RoundUp(n, nr);
        T* bs = Align(scratch);
        T* ap = Align(bs + (long)k * nPad);
        T* tile = Align(ap + mr * k);
        T* bPanels = b;
        long bStep = ldb;
        if (transB || n != nPad)
        {
            CopySmallB(transB, n, k, b, ldb, bs, nPad);
            bPanels = bs;
            bStep = nPad;
        }
        var update = FirstUpdate(beta);
        for (int i0 = 0; i0 < m; i0 += mr)
        {
            int rows = Math.Min(mr, m - i0), kernelRows = rows <= 4 ? 4 : rows <= 8 ? 8 : mr;
            T* aPanel = ap;
            long aStep = kernelRows;
            if (transA && rows == kernelRows)
            {
                aPanel = a + i0;
                aStep = lda;
            }
            else PackSmallA(transA, a, lda, i0, rows, kernelRows, k, ap);
            for (int j0 = 0; j0 < n; j0 += nr)
            {
                T* cTile = c + (long)i0 * ldc + j0;
                // Whole tiles go straight to C; a ragged one (and a short one under beta·C, as in the packed path's
                // Macro) goes through the tile, so the bits match the packed path.
                if (rows == kernelRows && j0 + nr <= n && (rows == mr || update != Update.ScaleAdd))
                    SmallKernel(kernelRows, k, aPanel, aStep, bPanels + j0, bStep, cTile, ldc, update, beta);
                else
                {
                    SmallKernel(kernelRows, k, aPanel, aStep, bPanels + j0, bStep, tile, nr, Update.Store, beta);
                    ApplyTile(tile, nr, cTile, ldc, rows, Math.Min(nr, n - j0), update, beta);
                }
            }
        }
    }

    private static void SmallKernel<T>(int rows, int k, T* a, long aStep, T* b, long ldb, T* c, int ldc, Update update, T beta)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (rows == 12) Kernel512(k, a, aStep, b, ldb, c, ldc, update, beta);
        else if (rows == 8) Kernel512Rows8(k, a, aStep, b, ldb, c, ldc, update, beta);
        else Kernel512Rows4(k, a, aStep, b, ldb, c, ldc, update, beta);
    }

    /// <summary>op(B) (k × n) into <paramref name="dst"/> row-major with row stride <paramref name="nPad"/>, columns n..nPad zero.</summary>
    private static void CopySmallB<T>(bool transB, int n, int k, T* b, int ldb, T* dst, int nPad) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!transB)
        {
            for (int q = 0; q < k; q++)
            {
                new ReadOnlySpan<T>(b + (long)q * ldb, n).CopyTo(new Span<T>(dst + (long)q * nPad, n));
                new Span<T>(dst + (long)q * nPad + n, nPad - n).Clear();
            }
            return;
        }
        // op(B)[q, j] = B[j, q]: B is stored n × k.
        if (typeof(T) == typeof(float) && TransposeAccelerated) TransposeBlock((float*)b, ldb, (float*)dst, nPad, n, k, 1f);
        else
        {
            for (int j = 0; j < n; j++)
                for (int q = 0; q < k; q++) dst[(long)q * nPad + j] = b[(long)j * ldb + q];
        }
        if (n != nPad)
            for (int q = 0; q < k; q++) new Span<T>(dst + (long)q * nPad + n, nPad - n).Clear();
    }

    /// <summary>
    /// Rows [i0, i0 + rows) of op(A) into one panel: dst[q·width + i] = op(A)[i0 + i, q], rows..width zero (op(A)[i, q] is
    /// A[q, i] when <paramref name="transA"/>, else A[i, q]).
    /// </summary>
    private static void PackSmallA<T>(bool transA, T* a, int lda, int i0, int rows, int width, int k, T* dst) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (transA)
        {
            for (int q = 0; q < k; q++)
            {
                T* src = a + (long)q * lda + i0;
                T* d = dst + q * width;
                for (int i = 0; i < rows; i++) d[i] = src[i];
                for (int i = rows; i < width; i++) d[i] = T.Zero;
            }
            return;
        }
        if (typeof(T) == typeof(float) && TransposeAccelerated) TransposeBlock((float*)(a + (long)i0 * lda), lda, (float*)dst, width, rows, k, 1f);
        else
        {
            for (int i = 0; i < rows; i++)
                for (int q = 0; q < k; q++) dst[q * width + i] = a[(long)(i0 + i) * lda + q];
        }
        if (rows != width)
            for (int q = 0; q < k; q++)
                for (int i = rows; i < width; i++) dst[q * width + i] = T.Zero;
    }
}
