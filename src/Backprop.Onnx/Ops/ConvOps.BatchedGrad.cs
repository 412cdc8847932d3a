using System.Buffers;
using System.Numerics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Conv's input gradient over a batch of small images at once, stride 1: dX = col2im(W[g]ᵀ·dY) with dY laid out in the
/// wide columns of <see cref="Im2ColWide{T}"/> (outH × Wp per image, zeros in the Wp − outW extra columns), one GEMM per
/// batch and group, then per kernel tap one contiguous add into a padded plane, and the plane's interior copied to dX.
/// Each dX element sums the same products in the same tap order as the per-image path.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>
    /// Whether <see cref="ConvInputGradBatched{T}"/> (and the wide dW path) apply: 2-D, stride 1, several images, the padded
    /// planes cover the input, one image's wide column block fits the column buffer. Larger images go one per batch: the
    /// gain there is one contiguous copy/add per kernel tap instead of one per output row (W3's 32×32 layers: −18% ConvGrad).
    /// </summary>
    private static bool UseBatchedInputGrad(ConvShape s, int rows)
    {
        if (s.Input.Length != 2 || s.N < 2 || rows == 0 || Product(s.Output) == 0 || s.Strides[0] != 1 || s.Strides[1] != 1) return false;
        int hp = s.Output[0] + (s.Kernel[0] - 1) * s.Dilations[0], wp = s.Output[1] + (s.Kernel[1] - 1) * s.Dilations[1];
        return hp - s.PadBegin[0] >= s.Input[0] && wp - s.PadBegin[1] >= s.Input[1] && Product(s.Output) <= BatchedMaxPositions
            && (long)rows * s.Output[0] * wp <= MaxColumnBuffer;
    }

    /// <summary>dX of Conv for X (N, C, H, W), stride 1, in batches of images; see the type summary.</summary>
    private static void ConvInputGradBatched<T>(T[] dy, T[] w, T[] dx, ConvShape s, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rows = s.C / s.Group * Product(s.Kernel), width = s.Output[0] * (s.Output[1] + (s.Kernel[1] - 1) * s.Dilations[1]);
        int perBatch = (int)Math.Clamp(BatchedColumnTarget / ((long)rows * width), 1, s.N);
        int batches = (s.N + perBatch - 1) / perBatch;
        if (threads > 1 && batches % threads != 0 && s.N >= threads)
        {
            batches = Math.Min(s.N, threads * ((batches + threads - 1) / threads));
            perBatch = (s.N + batches - 1) / batches;
            batches = (s.N + perBatch - 1) / perBatch;
        }
        int items = batches * s.Group;
        var item = new BatchedInputItem<T>(dy, w, dx, s, perBatch, 1);
        if (threads > 1 && items >= threads) ItemJob<BatchedInputItem<T>>.For(items, threads, item);
        else
        {
            item.GemmThreads = threads;
            for (int i = 0; i < items; i++) item.Run(i);
        }
    }

    /// <summary>One (batch of images, group) of <see cref="ConvInputGradBatched{T}"/>.</summary>
    private struct BatchedInputItem<T>(T[] dy, T[] w, T[] dx, ConvShape s, int perBatch, int gemmThreads) : IParallelItem where T : unmanaged, IFloatingPointIeee754<T>
    {
        public int GemmThreads = gemmThreads;

        public readonly void Run(int item)
        {
            int cg = s.C / s.Group, mg = s.M / s.Group, inSize = Product(s.Input), outSize = Product(s.Output), rows = cg * Product(s.Kernel);
            int outH = s.Output[0], outW = s.Output[1], inH = s.Input[0], inW = s.Input[1], ph = s.PadBegin[0], pw = s.PadBegin[1];
            int kh = s.Kernel[0], kw = s.Kernel[1], dh = s.Dilations[0], dw = s.Dilations[1];
            int hp = outH + (kh - 1) * dh, wp = outW + (kw - 1) * dw, width = outH * wp, plane = hp * wp;
            int batch = item / s.Group, g = item % s.Group;
            int first = batch * perBatch, count = Math.Min(perBatch, s.N - first);
            int ld = count * width;
            T[] dyw = ArrayPool<T>.Shared.Rent(mg * ld);
            T[] col = ArrayPool<T>.Shared.Rent(rows * ld);
            T[] pad = ArrayPool<T>.Shared.Rent(cg * plane);
            try
            {
                dyw.AsSpan(0, mg * ld).Clear();
                for (int j = 0; j < mg; j++)
                    for (int b = 0; b < count; b++)
                    {
                        long yBase = ((long)(first + b) * s.M + (long)g * mg + j) * outSize;
                        for (int r = 0; r < outH; r++)
                            dy.AsSpan((int)(yBase + (long)r * outW), outW).CopyTo(dyw.AsSpan(j * ld + b * width + r * wp, outW));
                    }
                Gemm.Multiply(true, false, rows, ld, mg, T.One, w.AsSpan(g * mg * rows, mg * rows), rows, dyw.AsSpan(0, mg * ld), ld, T.Zero, col.AsSpan(0, rows * ld), ld, GemmThreads);
                for (int b = 0; b < count; b++)
                {
                    pad.AsSpan(0, cg * plane).Clear();
                    for (int c = 0; c < cg; c++)
                        for (int i = 0; i < kh; i++)
                            for (int jj = 0; jj < kw; jj++)
                            {
                                // Entries past the plane's end are extra (zero) columns; see Im2ColWide.
                                int start = i * dh * wp + jj * dw, n = Math.Min(width, plane - start);
                                var target = pad.AsSpan(c * plane + start, n);
                                System.Numerics.Tensors.TensorPrimitives.Add(target, col.AsSpan(((c * kh + i) * kw + jj) * ld + b * width, n), target);
                            }
                    long xBase = ((long)(first + b) * s.C + (long)g * cg) * inSize;
                    for (int c = 0; c < cg; c++)
                        for (int r = 0; r < inH; r++)
                            pad.AsSpan(c * plane + (r + ph) * wp + pw, inW).CopyTo(dx.AsSpan((int)(xBase + ((long)c * inH + r) * inW), inW));
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(pad);
                ArrayPool<T>.Shared.Return(col);
                ArrayPool<T>.Shared.Return(dyw);
            }
        }
    }

    /// <summary>
    /// dW[g] += Σ over images [from, to) of dY[n, g]·im2col(X[n, g])ᵀ in batches of images on wide columns (stride 1): the
    /// extra columns of dY are zeros, so they add nothing as long as X is finite (the caller checks; 0·∞ would be NaN).
    /// </summary>
    private static void WeightImagesWide<T>(T[] dy, T[] x, ConvShape s, int g, int from, int to, Span<T> dwg) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int cg = s.C / s.Group, mg = s.M / s.Group, inSize = Product(s.Input), outSize = Product(s.Output), rows = cg * Product(s.Kernel);
        int outH = s.Output[0], outW = s.Output[1];
        int hp = outH + (s.Kernel[0] - 1) * s.Dilations[0], wp = outW + (s.Kernel[1] - 1) * s.Dilations[1], width = outH * wp;
        bool padded = s.PadBegin[0] != 0 || s.PadBegin[1] != 0 || hp != s.Input[0] || wp != s.Input[1];
        int perBatch = (int)Math.Clamp(BatchedColumnTarget / ((long)rows * width), 1, Math.Max(1, to - from));
        T[] dyw = ArrayPool<T>.Shared.Rent(mg * perBatch * width);
        T[] col = ArrayPool<T>.Shared.Rent(rows * perBatch * width);
        T[]? pad = padded ? ArrayPool<T>.Shared.Rent(cg * hp * wp) : null;
        try
        {
            for (int first = from; first < to; first += perBatch)
            {
                int count = Math.Min(perBatch, to - first), ld = count * width;
                dyw.AsSpan(0, mg * ld).Clear();
                for (int b = 0; b < count; b++)
                {
                    for (int j = 0; j < mg; j++)
                    {
                        long yBase = ((long)(first + b) * s.M + (long)g * mg + j) * outSize;
                        for (int r = 0; r < outH; r++)
                            dy.AsSpan((int)(yBase + (long)r * outW), outW).CopyTo(dyw.AsSpan(j * ld + b * width + r * wp, outW));
                    }
                    long xBase = ((long)(first + b) * s.C + (long)g * cg) * inSize;
                    if (pad is null) Im2ColWide(x, xBase, cg, hp, wp, outH, s, col, ld, b * width);
                    else
                    {
                        PadPlanes(x, xBase, cg, s.Input[0], s.Input[1], hp, wp, s.PadBegin[0], s.PadBegin[1], pad);
                        Im2ColWide(pad, 0, cg, hp, wp, outH, s, col, ld, b * width);
                    }
                }
                Gemm.MultiplyAddTransposed(mg, rows, ld, dyw.AsSpan(0, mg * ld), ld, col.AsSpan(0, rows * ld), ld, dwg, rows);
            }
        }
        finally
        {
            if (pad is not null) ArrayPool<T>.Shared.Return(pad);
            ArrayPool<T>.Shared.Return(col);
            ArrayPool<T>.Shared.Return(dyw);
        }
    }
}
