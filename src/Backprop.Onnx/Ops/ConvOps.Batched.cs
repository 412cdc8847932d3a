using System.Buffers;
using System.Numerics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Conv forward over a batch of images at once, for small images (few output positions): one im2col of B images into a
/// [C/G·K, B·L] matrix and one GEMM [M/G, C/G·K] · [C/G·K, B·L] per batch and group, then a reorder of the
/// [M/G, B, L] product into Y's [B, M/G, L] layout with the bias added. Per-image GEMMs of LeNet's conv1
/// (6 × 576 × 25) spend most of their time packing and in partial tiles; one GEMM over 64 images runs near peak.
/// Every output element is the same dot product as in the per-image path (same summation order inside the GEMM).
/// </summary>
internal static partial class ConvOps
{
    /// <summary>Images whose output has at most this many positions are convolved in batches.</summary>
    private const int BatchedMaxPositions = 4096;

    /// <summary>Target size (elements) of a batch's column matrix: small enough to stay in the L2 cache while the GEMM packs it.</summary>
    private const long BatchedColumnTarget = 1 << 16;

    /// <summary>Whether <see cref="ConvForwardBatched{T}"/> applies: 2-D, more than one image, small output planes, a column block of one image fits the buffer.</summary>
    private static bool UseBatched(ConvShape s, int rows) =>
        s.Input.Length == 2 && s.N > 1 && rows > 0 && s.OutputSize > 0 && s.OutputSize <= BatchedMaxPositions
        && (long)rows * s.OutputSize * 2 <= BatchedColumnTarget;

    /// <summary>Conv forward of X (N, C, H, W) in batches of images; see the type summary.</summary>
    private static void ConvForwardBatched<T>(T[] x, T[] w, T[]? bias, T[] y, ConvShape s, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int cg = s.C / s.Group, mg = s.M / s.Group, inSize = s.InputSize, outSize = s.OutputSize, rows = cg * s.KernelSize;
        int outH = s.Output[0], outW = s.Output[1];
        // Stride 1: "wide" columns — an image's column block is outH × Wp positions of the (padded) plane, so each row
        // (c, i, j) of it is one contiguous copy; the Wp − outW extra columns per output row are computed and dropped.
        bool wide = s.Strides[0] == 1 && s.Strides[1] == 1;
        int hp = outH + (s.Kernel[0] - 1) * s.Dilations[0], wp = outW + (s.Kernel[1] - 1) * s.Dilations[1];
        bool padded = wide && (s.PadBegin[0] != 0 || s.PadBegin[1] != 0 || hp != s.Input[0] || wp != s.Input[1]);
        int width = wide ? outH * wp : outSize;
        int perBatch = (int)Math.Clamp(BatchedColumnTarget / ((long)rows * width), 1, s.N);
        int batches = (s.N + perBatch - 1) / perBatch;
        // With threads to spare, balance batch sizes so every thread gets the same number of whole batches.
        if (threads > 1 && batches % threads != 0 && s.N >= threads)
        {
            batches = Math.Min(s.N, threads * ((batches + threads - 1) / threads));
            perBatch = (s.N + batches - 1) / batches;
            batches = (s.N + perBatch - 1) / perBatch;
        }
        int items = batches * s.Group;
        bool parallelItems = threads > 1 && items >= threads;
        void Item(int item, int gemmThreads)
        {
            int batch = item / s.Group, g = item % s.Group;
            int first = batch * perBatch, count = Math.Min(perBatch, s.N - first);
            int ld = count * width;
            T[] col = ArrayPool<T>.Shared.Rent(rows * ld);
            T[] prod = ArrayPool<T>.Shared.Rent(mg * ld);
            T[]? pad = padded ? ArrayPool<T>.Shared.Rent(cg * hp * wp) : null;
            try
            {
                for (int b = 0; b < count; b++)
                {
                    long xBase = ((long)(first + b) * s.C + (long)g * cg) * inSize;
                    if (!wide) Im2Col2DStrided(x, xBase, cg, s.Input, s.Output, s.Kernel, s.Strides, s.Dilations, s.PadBegin, col, ld, b * outSize);
                    else if (pad is null) Im2ColWide(x, xBase, cg, hp, wp, outH, s, col, ld, b * width);
                    else
                    {
                        PadPlanes(x, xBase, cg, s.Input[0], s.Input[1], hp, wp, s.PadBegin[0], s.PadBegin[1], pad);
                        Im2ColWide(pad, 0, cg, hp, wp, outH, s, col, ld, b * width);
                    }
                }
                Gemm.Multiply(false, false, mg, ld, rows, T.One, w.AsSpan(g * mg * rows, mg * rows), rows, col.AsSpan(0, rows * ld), ld, T.Zero, prod.AsSpan(0, mg * ld), ld, gemmThreads);
                int rowCount = wide ? outH : 1, rowLength = wide ? outW : outSize, rowStride = wide ? wp : outSize;
                for (int j = 0; j < mg; j++)
                {
                    T bj = bias is null ? T.Zero : bias[g * mg + j];
                    for (int b = 0; b < count; b++)
                    {
                        long yBase = ((long)(first + b) * s.M + (long)g * mg + j) * outSize;
                        for (int r = 0; r < rowCount; r++)
                        {
                            var src = prod.AsSpan(j * ld + b * width + r * rowStride, rowLength);
                            var dst = y.AsSpan((int)(yBase + (long)r * rowLength), rowLength);
                            if (bias is null) src.CopyTo(dst);
                            else System.Numerics.Tensors.TensorPrimitives.Add(src, bj, dst);
                        }
                    }
                }
            }
            finally
            {
                if (pad is not null) ArrayPool<T>.Shared.Return(pad);
                ArrayPool<T>.Shared.Return(prod);
                ArrayPool<T>.Shared.Return(col);
            }
        }
        if (parallelItems) Parallel.For(0, items, new ParallelOptions { MaxDegreeOfParallelism = threads }, i => Item(i, 1));
        else for (int i = 0; i < items; i++) Item(i, threads);
    }

    /// <summary>
    /// Copies <paramref name="channels"/> planes (h × w) at <paramref name="xBase"/> into zero-padded planes (hp × wp) of
    /// <paramref name="pad"/>, the input pixel (r, c) landing at (r + ph, c + pw); pixels beyond hp × wp are not needed.
    /// </summary>
    private static void PadPlanes<T>(T[] x, long xBase, int channels, int h, int w, int hp, int wp, int ph, int pw, T[] pad) where T : INumber<T>
    {
        pad.AsSpan(0, channels * hp * wp).Clear();
        int c0 = Math.Max(0, -pw), c1 = Math.Min(w, wp - pw);
        if (c1 <= c0) return;
        for (int c = 0; c < channels; c++)
            for (int r = Math.Max(0, -ph); r < Math.Min(h, hp - ph); r++)
                x.AsSpan((int)(xBase + ((long)c * h + r) * w + c0), c1 - c0).CopyTo(pad.AsSpan((c * hp + r + ph) * wp + pw + c0, c1 - c0));
    }

    /// <summary>
    /// Stride-1 im2col into wide columns: row (c, i, j) of the block at <paramref name="offset"/> (rows
    /// <paramref name="ld"/> long) is the contiguous run of outH·wp plane elements from (i·dh, j·dw) of the hp × wp plane c,
    /// zero past the plane's end (those land only in dropped columns).
    /// </summary>
    private static void Im2ColWide<T>(T[] x, long xBase, int channels, int hp, int wp, int outH, ConvShape s, T[] col, int ld, int offset) where T : INumber<T>
    {
        int kh = s.Kernel[0], kw = s.Kernel[1], dh = s.Dilations[0], dw = s.Dilations[1], width = outH * wp, plane = hp * wp;
        for (int c = 0; c < channels; c++)
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++)
                {
                    var dst = col.AsSpan(((c * kh + i) * kw + j) * ld + offset, width);
                    int start = i * dh * wp + j * dw, n = Math.Min(width, plane - start);
                    x.AsSpan((int)(xBase + (long)c * plane + start), n).CopyTo(dst);
                    dst[n..].Clear();
                }
    }
}
