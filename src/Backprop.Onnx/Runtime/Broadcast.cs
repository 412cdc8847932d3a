using Backprop.Onnx.IR;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// ONNX multidirectional (NumPy-style) broadcasting (ONNX spec, docs/Broadcasting.md): shapes align at the trailing
/// dimension; each pair of dimensions must be equal or one of them 1.
/// </summary>
internal static class Broadcast
{
    /// <summary>The broadcast shape of the given shapes, or null when they are incompatible.</summary>
    public static int[]? TryShape(params ReadOnlySpan<int[]> shapes)
    {
        int rank = 0;
        foreach (var s in shapes) rank = Math.Max(rank, s.Length);
        var result = new int[rank];
        for (int i = 0; i < rank; i++) result[i] = 1;
        foreach (var s in shapes)
        {
            int offset = rank - s.Length;
            for (int i = 0; i < s.Length; i++)
            {
                int d = s[i], r = result[offset + i];
                if (d == r || d == 1) continue;
                if (r == 1) { result[offset + i] = d; continue; }
                return null;
            }
        }
        return result;
    }

    /// <summary>
    /// The broadcast shape of two shapes into <paramref name="result"/> (as long as the longer one), without allocating;
    /// false when they are incompatible.
    /// </summary>
    public static bool TryShape(ReadOnlySpan<int> a, ReadOnlySpan<int> b, Span<int> result)
    {
        int rank = result.Length;
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) is var ia and >= 0 ? a[ia] : 1;
            int db = i - (rank - b.Length) is var ib and >= 0 ? b[ib] : 1;
            if (da == db || db == 1) result[i] = da;
            else if (da == 1) result[i] = db;
            else return false;
        }
        return true;
    }

    /// <summary>The broadcast shape; throws <see cref="InvalidInputException"/> naming the node when incompatible.</summary>
    /// <remarks>The shapes are a params span, so a call with a few shapes allocates only the result.</remarks>
    public static int[] Shape(KernelContext ctx, params ReadOnlySpan<int[]> shapes) =>
        TryShape(shapes) ?? throw ctx.Invalid($"shapes {string.Join(" and ", shapes.ToArray().Select(s => "[" + string.Join(',', s) + "]"))} cannot be broadcast together");

    /// <summary>
    /// Element strides of <paramref name="shape"/> viewed in <paramref name="outShape"/>: 0 on broadcast dimensions, so that
    /// the source index of an output coordinate is the dot product of the coordinate with these strides.
    /// </summary>
    public static long[] Strides(ReadOnlySpan<int> shape, ReadOnlySpan<int> outShape)
    {
        var strides = new long[outShape.Length];
        long stride = 1;
        int offset = outShape.Length - shape.Length;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            strides[offset + i] = shape[i] == 1 && outShape[offset + i] != 1 ? 0 : stride;
            stride *= shape[i];
        }
        return strides;
    }

    /// <summary>Row-major element strides of a shape.</summary>
    public static long[] ContiguousStrides(ReadOnlySpan<int> shape)
    {
        var strides = new long[shape.Length];
        long s = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { strides[i] = s; s *= shape[i]; }
        return strides;
    }

    /// <summary>
    /// For every output element in row-major order, the flat source index into each input (broadcast strides).
    /// Fills <paramref name="indices"/>[k][i] for input k. Used by the general (non-fast-path) elementwise loops.
    /// </summary>
    public static void SourceIndices(int[] outShape, long[][] strides, int[][] indices)
    {
        long total = 1;
        foreach (int d in outShape) total *= d;
        int rank = outShape.Length;
        var coord = new int[rank];
        var offsets = new long[strides.Length];
        for (long i = 0; i < total; i++)
        {
            for (int k = 0; k < strides.Length; k++) indices[k][i] = (int)offsets[k];
            for (int d = rank - 1; d >= 0; d--)
            {
                coord[d]++;
                for (int k = 0; k < strides.Length; k++) offsets[k] += strides[k][d];
                if (coord[d] < outShape[d]) break;
                for (int k = 0; k < strides.Length; k++) offsets[k] -= strides[k][d] * coord[d];
                coord[d] = 0;
            }
        }
    }

    /// <summary>
    /// Calls <paramref name="body"/> once per run of the innermost dimension: (output offset, source offsets, run length,
    /// source inner strides). Lets kernels use span primitives along the inner dimension while broadcasting outer ones.
    /// </summary>
    public static void ForEachInnerRun(int[] outShape, long[][] strides, Action<long, long[], int, long[]> body)
    {
        int rank = outShape.Length;
        if (rank == 0)
        {
            body(0, new long[strides.Length], 1, new long[strides.Length]);
            return;
        }
        int inner = outShape[rank - 1];
        var innerStrides = new long[strides.Length];
        for (int k = 0; k < strides.Length; k++) innerStrides[k] = strides[k][rank - 1];
        long outer = 1;
        for (int d = 0; d < rank - 1; d++) outer *= outShape[d];
        if (inner == 0 || outer == 0) return;
        var coord = new int[rank - 1];
        var offsets = new long[strides.Length];
        for (long o = 0; o < outer; o++)
        {
            body(o * inner, offsets, inner, innerStrides);
            for (int d = rank - 2; d >= 0; d--)
            {
                coord[d]++;
                for (int k = 0; k < strides.Length; k++) offsets[k] += strides[k][d];
                if (coord[d] < outShape[d]) break;
                for (int k = 0; k < strides.Length; k++) offsets[k] -= strides[k][d] * coord[d];
                coord[d] = 0;
            }
        }
    }
}
