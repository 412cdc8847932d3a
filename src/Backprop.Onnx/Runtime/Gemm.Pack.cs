using System.Numerics;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Runtime;

/// <summary>Packing of op(A) and op(B) blocks into the contiguous panels the micro-kernels stream through.</summary>
internal static unsafe partial class Gemm
{
    /// <summary>
    /// Packs rows [ic, ic+mc) × columns [pc, pc+kc) of alpha·op(A) into MR-high panels: panel r holds, for each q in
    /// [0, kc), the MR values of column q (rows past mc are zero), at ap[r·MR·kc + q·MR + i].
    /// </summary>
    private static void PackA<T>(in Problem<T> p, T* ap, int ic, int mc, int pc, int kc, int mrStep)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T alpha = p.Alpha;
        if (p.TransA)
        {
            PackATransposed(p, ap, ic, mc, pc, kc, mrStep);
            return;
        }
        for (int ir = 0; ir < mc; ir += mrStep)
        {
            int mr = Math.Min(mrStep, mc - ir);
            T* dst = ap + (long)ir * kc;
            if (typeof(T) == typeof(float) && TransposeAccelerated)
            {
                // Row-major A: an mr × kc block read along its rows, transposed in registers.
                TransposeBlock((float*)(p.A + (long)(ic + ir) * p.Lda + pc), p.Lda, (float*)dst, mrStep, mr, kc, float.CreateTruncating(alpha));
                for (int q = 0; q < kc; q++)
                    for (int i = mr; i < mrStep; i++) dst[q * mrStep + i] = T.Zero;
            }
            else
            {
                for (int i = 0; i < mrStep; i++)
                {
                    T* d = dst + i;
                    if (i < mr)
                    {
                        T* src = p.A + (long)(ic + ir + i) * p.Lda + pc;
                        for (int q = 0; q < kc; q++) d[q * mrStep] = alpha * src[q];
                    }
                    else
                    {
                        for (int q = 0; q < kc; q++) d[q * mrStep] = T.Zero;
                    }
                }
            }
        }
    }

    /// <summary>
    /// <see cref="PackA{T}"/> for a transposed A (stored k × m): op(A)'s column q is row pc + q of A, so each panel's MR
    /// values per q are contiguous. Row by row across all panels, so each row of A is read once, front to back (as in
    /// <see cref="PackB{T}"/>; walking down one panel at a time strides through A, slow when it is not in cache).
    /// </summary>
    private static void PackATransposed<T>(in Problem<T> p, T* ap, int ic, int mc, int pc, int kc, int mrStep)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T alpha = p.Alpha;
        var va256 = Vector256.Create(alpha);
        var va128 = Vector128.Create(alpha);
        for (int q = 0; q < kc; q++)
        {
            T* row = p.A + (long)(pc + q) * p.Lda + ic;
            for (int ir = 0; ir < mc; ir += mrStep)
            {
                int mr = Math.Min(mrStep, mc - ir);
                T* src = row + ir;
                T* d = ap + (long)ir * kc + q * mrStep;
                int i = 0;
                if (Vector256.IsHardwareAccelerated)
                {
                    for (; i + Vector256<T>.Count <= mr; i += Vector256<T>.Count) Vector256.Store(va256 * Vector256.Load(src + i), d + i);
                    for (; i + Vector128<T>.Count <= mr; i += Vector128<T>.Count) Vector128.Store(va128 * Vector128.Load(src + i), d + i);
                }
                for (; i < mr; i++) d[i] = alpha * src[i];
                for (; i < mrStep; i++) d[i] = T.Zero;
            }
        }
    }

    /// <summary>
    /// Packs rows [pc, pc+kc) × columns [jc, jc+nc) of op(B) into NR-wide panels: panel j holds, for each q in [0, kc),
    /// the NR values of row q (columns past nc are zero), at bp[j·NR·kc + q·NR + c].
    /// </summary>
    private static void PackB<T>(in Problem<T> p, T* bp, int pc, int kc, int jc, int nc, int nrStep)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int panels = (nc + nrStep - 1) / nrStep;
        if (!p.TransB && panels > 1)
        {
            // Row by row across all panels: each row of B is read once, front to back. Walking down one panel at a
            // time reads 128 bytes per row at a stride of ldb, which the hardware prefetcher follows poorly when B
            // is not in cache (the 1024 × 512 operand of a weight gradient ran 20% slower cold than warm).
            int full = nc / nrStep, w = Vector256.IsHardwareAccelerated ? Vector256<T>.Count : int.MaxValue;
            for (int q = 0; q < kc; q++)
            {
                T* src = p.B + (long)(pc + q) * p.Ldb + jc;
                T* d = bp + (long)q * nrStep;
                for (int jp = 0; jp < full; jp++)
                {
                    T* s0 = src + jp * nrStep, d0 = d + (long)jp * nrStep * kc;
                    int j = 0;
                    for (; j + w <= nrStep; j += w) Vector256.Store(Vector256.Load(s0 + j), d0 + j);
                    for (; j < nrStep; j++) d0[j] = s0[j];
                }
                if (full < panels)
                {
                    T* s0 = src + full * nrStep, d0 = d + (long)full * nrStep * kc;
                    int nr = nc - full * nrStep;
                    for (int j = 0; j < nr; j++) d0[j] = s0[j];
                    for (int j = nr; j < nrStep; j++) d0[j] = T.Zero;
                }
            }
            return;
        }
        for (int jp = 0; jp < panels; jp++) PackBPanel(p, bp, pc, kc, jc, nc, nrStep, jp);
    }

    private static void PackBPanel<T>(in Problem<T> p, T* bp, int pc, int kc, int jc, int nc, int nrStep, int jp)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int jr = jp * nrStep, nr = Math.Min(nrStep, nc - jr);
        T* dst = bp + (long)jp * nrStep * kc;
        if (p.TransB)
        {
            // op(B)[row, col] = B[col, row]: a tiled transpose. Per block of 16 steps q, each of the nr rows of B is
            // read along one cache line and written into 16 panel rows that stay in L1 (walking all nr rows per
            // single q instead thrashes L1 when the rows are 4 KiB apart).
            const int qBlock = 16;
            long ldb = p.Ldb;
            T* src0 = p.B + (long)(jc + jr) * ldb + pc;
            if (typeof(T) == typeof(float) && TransposeAccelerated)
            {
                TransposeBlock((float*)src0, ldb, (float*)dst, nrStep, nr, kc, 1f);
                if (nr < nrStep)
                    for (int q = 0; q < kc; q++) new Span<T>(dst + (long)q * nrStep + nr, nrStep - nr).Clear();
                return;
            }
            for (int q0 = 0; q0 < kc; q0 += qBlock)
            {
                int qn = Math.Min(qBlock, kc - q0);
                for (int j = 0; j < nr; j++)
                {
                    T* src = src0 + j * ldb + q0;
                    T* d = dst + (long)q0 * nrStep + j;
                    for (int q = 0; q < qn; q++) d[q * nrStep] = src[q];
                }
                for (int j = nr; j < nrStep; j++)
                {
                    T* d = dst + (long)q0 * nrStep + j;
                    for (int q = 0; q < qn; q++) d[q * nrStep] = T.Zero;
                }
            }
        }
        else
        {
            // A row copy per q, inlined (a Span.CopyTo call per 32-float row cost as much as the copy).
            int w = Vector256.IsHardwareAccelerated ? Vector256<T>.Count : int.MaxValue;
            for (int q = 0; q < kc; q++)
            {
                T* src = p.B + (long)(pc + q) * p.Ldb + jc + jr;
                T* d = dst + q * nrStep;
                int j = 0;
                for (; j + w <= nr; j += w) Vector256.Store(Vector256.Load(src + j), d + j);
                for (; j < nr; j++) d[j] = src[j];
                for (; j < nrStep; j++) d[j] = T.Zero;
            }
        }
    }
}
