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
        int perBatch = (int)Math.Clamp(BatchedColumnTarget / ((long)rows * outSize), 1, s.N);
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
            int ld = count * outSize;
            T[] col = ArrayPool<T>.Shared.Rent(rows * ld);
            T[] prod = ArrayPool<T>.Shared.Rent(mg * ld);
            try
            {
                for (int b = 0; b < count; b++)
                {
                    long xBase = ((long)(first + b) * s.C + (long)g * cg) * inSize;
                    Im2Col2DStrided(x, xBase, cg, s.Input, s.Output, s.Kernel, s.Strides, s.Dilations, s.PadBegin, col, ld, b * outSize);
                }
                Gemm.Multiply(false, false, mg, ld, rows, T.One, w.AsSpan(g * mg * rows, mg * rows), rows, col.AsSpan(0, rows * ld), ld, T.Zero, prod.AsSpan(0, mg * ld), ld, gemmThreads);
                for (int j = 0; j < mg; j++)
                {
                    T bj = bias is null ? T.Zero : bias[g * mg + j];
                    for (int b = 0; b < count; b++)
                    {
                        var src = prod.AsSpan(j * ld + b * outSize, outSize);
                        var dst = y.AsSpan((int)(((long)(first + b) * s.M + (long)g * mg + j) * outSize), outSize);
                        if (bias is null) src.CopyTo(dst);
                        else System.Numerics.Tensors.TensorPrimitives.Add(src, bj, dst);
                    }
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(prod);
                ArrayPool<T>.Shared.Return(col);
            }
        }
        if (parallelItems) Parallel.For(0, items, new ParallelOptions { MaxDegreeOfParallelism = threads }, i => Item(i, 1));
        else for (int i = 0; i < items; i++) Item(i, threads);
    }
}
