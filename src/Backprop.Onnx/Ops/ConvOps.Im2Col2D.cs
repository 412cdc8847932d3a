using System.Numerics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The 2-D fast path of im2col and col2im for whole images (the usual case: an image's columns fit the column buffer):
/// per kernel column kw the valid output columns [lo, hi) are computed once, then each output row is one contiguous
/// copy (stride 1) or a strided gather, with the padding cleared. Same values as the general N-D walk, with no
/// per-segment coordinate arithmetic.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>Whether <see cref="Im2Col2D{T}"/>/<see cref="Col2Im2D{T}"/> apply: 2-D, and the columns are all of an image's positions.</summary>
    private static bool Is2DWhole(int[] positions, int first, int count) =>
        positions.Length == 2 && first == 0 && count == positions[0] * positions[1];

    /// <summary>im2col of <paramref name="channels"/> planes (H × W) at <paramref name="xBase"/> into col (channels·kh·kw rows × oh·ow columns).</summary>
    private static void Im2Col2D<T>(T[] x, long xBase, int channels, int[] input, int[] positions, int[] kernel, int[] strides, int[] dilations, int[] padBegin, T[] col)
        where T : INumber<T> =>
        Im2Col2DStrided(x, xBase, channels, input, positions, kernel, strides, dilations, padBegin, col, positions[0] * positions[1], 0);

    /// <summary>
    /// <see cref="Im2Col2D{T}"/> into the columns [<paramref name="offset"/>, offset + oh·ow) of a col matrix whose rows
    /// are <paramref name="ld"/> long (several images side by side).
    /// </summary>
    private static void Im2Col2DStrided<T>(T[] x, long xBase, int channels, int[] input, int[] positions, int[] kernel, int[] strides, int[] dilations, int[] padBegin,
        T[] col, int ld, int offset) where T : INumber<T>
    {
        int inH = input[0], inW = input[1], outH = positions[0], outW = positions[1], kh = kernel[0], kw = kernel[1];
        int sh = strides[0], sw = strides[1], dh = dilations[0], dw = dilations[1], ph = padBegin[0], pw = padBegin[1];
        int count = outH * outW, plane = inH * inW;
        for (int c = 0; c < channels; c++)
        {
            long cBase = xBase + (long)c * plane;
            for (int i = 0; i < kh; i++)
            {
                for (int j = 0; j < kw; j++)
                {
                    var dst = col.AsSpan(((c * kh + i) * kw + j) * ld + offset, count);
                    int colStart = j * dw - pw;
                    var (lo, hi) = ValidRange(colStart, sw, inW, outW);
                    for (int oh = 0; oh < outH; oh++)
                    {
                        var row = dst.Slice(oh * outW, outW);
                        int ih = oh * sh - ph + i * dh;
                        if ((uint)ih >= (uint)inH || hi <= lo)
                        {
                            row.Clear();
                            continue;
                        }
                        row[..lo].Clear();
                        row[hi..].Clear();
                        long src = cBase + (long)ih * inW + colStart;
                        if (sw == 1) x.AsSpan((int)(src + lo), hi - lo).CopyTo(row[lo..hi]);
                        else for (int o = lo; o < hi; o++) row[o] = x[src + (long)o * sw];
                    }
                }
            }
        }
    }

    /// <summary>The adjoint of <see cref="Im2Col2D{T}"/>: adds col (channels·kh·kw rows × oh·ow columns) into the planes of y at <paramref name="yBase"/>.</summary>
    private static void Col2Im2D<T>(T[] col, int channels, int[] positions, int[] output, int[] kernel, int[] strides, int[] dilations, int[] padBegin, T[] y, long yBase)
        where T : INumber<T>
    {
        int inH = output[0], inW = output[1], outH = positions[0], outW = positions[1], kh = kernel[0], kw = kernel[1];
        int sh = strides[0], sw = strides[1], dh = dilations[0], dw = dilations[1], ph = padBegin[0], pw = padBegin[1];
        int count = outH * outW, plane = inH * inW;
        for (int c = 0; c < channels; c++)
        {
            long cBase = yBase + (long)c * plane;
            for (int i = 0; i < kh; i++)
            {
                for (int j = 0; j < kw; j++)
                {
                    var src = col.AsSpan(((c * kh + i) * kw + j) * count, count);
                    int colStart = j * dw - pw;
                    var (lo, hi) = ValidRange(colStart, sw, inW, outW);
                    if (hi <= lo) continue;
                    for (int oh = 0; oh < outH; oh++)
                    {
                        int ih = oh * sh - ph + i * dh;
                        if ((uint)ih >= (uint)inH) continue;
                        var row = src.Slice(oh * outW, outW);
                        long dst = cBase + (long)ih * inW + colStart;
                        if (sw == 1)
                        {
                            var target = y.AsSpan((int)(dst + lo), hi - lo);
                            System.Numerics.Tensors.TensorPrimitives.Add(target, row[lo..hi], target);
                        }
                        else for (int o = lo; o < hi; o++) y[dst + (long)o * sw] += row[o];
                    }
                }
            }
        }
    }
}
