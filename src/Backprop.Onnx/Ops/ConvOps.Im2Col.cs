using System.Numerics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// im2col and its adjoint col2im over any number of spatial axes. A column is one window position p (an output
/// position of Conv); row (c, k) holds the input value at p·stride − pad_begin + k·dilation of channel c, or 0 in the
/// padding. Both walk a range of columns so large images can be processed in chunks.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>
    /// Fills col (channels·K rows × <paramref name="count"/> columns) with the windows of columns
    /// [<paramref name="first"/>, first + count) of the positions grid <paramref name="positions"/>, reading
    /// <paramref name="channels"/> planes of shape <paramref name="input"/> from x at <paramref name="xBase"/>.
    /// </summary>
    internal static void Im2Col<T>(T[] x, long xBase, int channels, int[] input, int[] positions, int[] kernel, int[] strides, int[] dilations, int[] padBegin,
        int first, int count, T[] col) where T : INumber<T>
    {
        if (Is2DWhole(positions, first, count))
        {
            Im2Col2D(x, xBase, channels, input, positions, kernel, strides, dilations, padBegin, col);
            return;
        }
        int rank = input.Length, last = rank - 1;
        var inStrides = Broadcast.ContiguousStrides(input);
        long inSize = rank == 0 ? 1 : inStrides[0] * input[0];
        int kSize = kernel.Aggregate(1, (p, d) => p * d);
        var kc = new int[rank];
        var pc = new int[rank];
        for (int c = 0; c < channels; c++)
        {
            for (int kidx = 0; kidx < kSize; kidx++)
            {
                Decompose(kidx, kernel, kc);
                var dst = col.AsSpan((c * kSize + kidx) * count, count);
                Decompose(first, positions, pc);
                long cBase = xBase + c * inSize;
                for (int l = 0; l < count;)
                {
                    int seg = Math.Min(positions[last] - pc[last], count - l);
                    var segment = dst.Slice(l, seg);
                    if (!RowOffset(pc, kc, input, inStrides, strides, dilations, padBegin, cBase, out long offset)) segment.Clear();
                    else
                    {
                        int st = strides[last], n = input[last];
                        long start = (long)pc[last] * st - padBegin[last] + (long)kc[last] * dilations[last];
                        var (lo, hi) = ValidRange(start, st, n, seg);
                        segment[..lo].Clear();
                        segment[hi..].Clear();
                        if (st == 1 && hi > lo) x.AsSpan((int)(offset + start + lo), hi - lo).CopyTo(segment[lo..hi]);
                        else for (int o = lo; o < hi; o++) segment[o] = x[offset + start + (long)o * st];
                    }
                    l += seg;
                    Advance(pc, positions, seg);
                }
            }
        }
    }

    /// <summary>
    /// The adjoint of <see cref="Im2Col{T}"/>: adds every entry of col (channels·K rows × <paramref name="count"/> columns)
    /// into the output planes (shape <paramref name="output"/>, at <paramref name="yBase"/> of y) at the position its
    /// window element reads. Used by ConvTranspose and the Conv input gradient.
    /// </summary>
    internal static void Col2Im<T>(T[] col, int channels, int[] positions, int[] output, int[] kernel, int[] strides, int[] dilations, int[] padBegin,
        int first, int count, T[] y, long yBase) where T : INumber<T>
    {
        if (Is2DWhole(positions, first, count))
        {
            Col2Im2D(col, channels, positions, output, kernel, strides, dilations, padBegin, y, yBase);
            return;
        }
        int rank = output.Length, last = rank - 1;
        var outStrides = Broadcast.ContiguousStrides(output);
        long outSize = rank == 0 ? 1 : outStrides[0] * output[0];
        int kSize = kernel.Aggregate(1, (p, d) => p * d);
        var kc = new int[rank];
        var pc = new int[rank];
        for (int c = 0; c < channels; c++)
        {
            for (int kidx = 0; kidx < kSize; kidx++)
            {
                Decompose(kidx, kernel, kc);
                var src = col.AsSpan((c * kSize + kidx) * count, count);
                Decompose(first, positions, pc);
                long cBase = yBase + c * outSize;
                for (int l = 0; l < count;)
                {
                    int seg = Math.Min(positions[last] - pc[last], count - l);
                    if (RowOffset(pc, kc, output, outStrides, strides, dilations, padBegin, cBase, out long offset))
                    {
                        int st = strides[last], n = output[last];
                        long start = (long)pc[last] * st - padBegin[last] + (long)kc[last] * dilations[last];
                        var (lo, hi) = ValidRange(start, st, n, seg);
                        var segment = src.Slice(l, seg);
                        if (st == 1 && hi > lo)
                        {
                            var target = y.AsSpan((int)(offset + start + lo), hi - lo);
                            System.Numerics.Tensors.TensorPrimitives.Add(target, segment[lo..hi], target);
                        }
                        else for (int o = lo; o < hi; o++) y[offset + start + (long)o * st] += segment[o];
                    }
                    l += seg;
                    Advance(pc, positions, seg);
                }
            }
        }
    }

    /// <summary>The window element's plane offset over all axes but the last; false when it falls in the padding.</summary>
    private static bool RowOffset(int[] pc, int[] kc, int[] plane, long[] planeStrides, int[] strides, int[] dilations, int[] padBegin, long baseOffset, out long offset)
    {
        offset = baseOffset;
        for (int d = 0; d < pc.Length - 1; d++)
        {
            long i = (long)pc[d] * strides[d] - padBegin[d] + (long)kc[d] * dilations[d];
            if (i < 0 || i >= plane[d]) return false;
            offset += i * planeStrides[d];
        }
        return true;
    }

    /// <summary>The positions o in [0, count) with 0 ≤ start + o·stride &lt; n.</summary>
    private static (int Lo, int Hi) ValidRange(long start, int stride, int n, int count)
    {
        long lo = start >= 0 ? 0 : (-start + stride - 1) / stride;
        long hi = start >= n ? 0 : Math.Min(count, (n - start + stride - 1) / stride);
        lo = Math.Min(lo, count);
        if (hi < lo) hi = lo;
        return ((int)lo, (int)hi);
    }

    /// <summary>The row-major coordinates of flat index <paramref name="index"/> in <paramref name="shape"/>.</summary>
    internal static void Decompose(long index, int[] shape, int[] coord)
    {
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            coord[d] = (int)(index % shape[d]);
            index /= shape[d];
        }
    }

    /// <summary>Moves row-major coordinates forward by <paramref name="steps"/> along the last axis (which must not pass its end), carrying over.</summary>
    private static void Advance(int[] coord, int[] shape, int steps)
    {
        int d = coord.Length - 1;
        coord[d] += steps;
        while (d > 0 && coord[d] >= shape[d])
        {
            coord[d] = 0;
            coord[--d]++;
        }
    }
}
