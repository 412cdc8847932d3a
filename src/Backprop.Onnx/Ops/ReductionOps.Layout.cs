using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Helpers the reduction, softmax, normalization and loss families share: axis normalization, the
/// [outer, n, inner] view of a tensor around one axis, and float16 staging through float32.
/// </summary>
internal static partial class ReductionOps
{
    /// <summary>Maps an axis in [-rank, rank) to [0, rank); throws <see cref="InvalidInputException"/> otherwise.</summary>
    internal static int NormalizeAxis(KernelContext ctx, long axis, int rank, string what = "axis")
    {
        if (axis < -rank || axis >= rank) throw ctx.Invalid($"{what} {axis} is out of range for a tensor of rank {rank}");
        return (int)(axis < 0 ? axis + rank : axis);
    }

    /// <summary>Product of <paramref name="shape"/>[from..to).</summary>
    internal static int Product(ReadOnlySpan<int> shape, int from, int to)
    {
        long p = 1;
        for (int i = from; i < to; i++) p *= shape[i];
        return checked((int)p);
    }

    /// <summary>The tensor viewed as [outer, n, inner] around <paramref name="axis"/>: n = shape[axis].</summary>
    internal static (int Outer, int N, int Inner) AroundAxis(ReadOnlySpan<int> shape, int axis) =>
        shape.Length == 0 ? (1, 1, 1) : (Product(shape, 0, axis), shape[axis], Product(shape, axis + 1, shape.Length));

    /// <summary>Copies the strided line <c>src[start + k*stride]</c>, k &lt; dst.Length, into <paramref name="dst"/>.</summary>
    internal static void Gather<T>(ReadOnlySpan<T> src, int start, int stride, Span<T> dst)
    {
        if (stride == 1) { src.Slice(start, dst.Length).CopyTo(dst); return; }
        for (int k = 0, i = start; k < dst.Length; k++, i += stride) dst[k] = src[i];
    }

    /// <summary>Writes <paramref name="src"/> to the strided line <c>dst[start + k*stride]</c>.</summary>
    internal static void Scatter<T>(ReadOnlySpan<T> src, Span<T> dst, int start, int stride)
    {
        if (stride == 1) { src.CopyTo(dst.Slice(start, src.Length)); return; }
        for (int k = 0, i = start; k < src.Length; k++, i += stride) dst[i] = src[k];
    }

    /// <summary>Degree of parallelism for a kernel touching <paramref name="work"/> elements: 1 below 64K elements.</summary>
    internal static int Parallelism(KernelContext ctx, long work) =>
        work < (1 << 16) ? 1 : Math.Max(1, Math.Min(ctx.Options.Threads, (int)Math.Min(int.MaxValue, work >> 15)));

    /// <summary>
    /// Runs <paramref name="body"/> over [0, count) in contiguous chunks, in parallel when <paramref name="threads"/> &gt; 1.
    /// Each index is handled by exactly one call, so results do not depend on the thread count.
    /// </summary>
    internal static void ForChunks(int count, int threads, Action<int, int> body)
    {
        if (threads <= 1 || count < 2) { body(0, count); return; }
        int chunks = Math.Min(count, threads);
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, c =>
        {
            int from = (int)((long)count * c / chunks), to = (int)((long)count * (c + 1) / chunks);
            body(from, to);
        });
    }

    /// <summary>A float16 tensor widened to float32 (compute in float, round once at the end).</summary>
    internal static OnnxTensor HalfToSingle(OnnxTensor t)
    {
        var f = new float[t.ElementCount];
        TP.ConvertToSingle(t.AsSpan<Half>(), f);
        return OnnxTensor.FromArray(f, t.Dims);
    }

    /// <summary>A float32 tensor rounded to float16.</summary>
    internal static OnnxTensor SingleToHalf(OnnxTensor t)
    {
        var h = new Half[t.ElementCount];
        TP.ConvertToHalf(t.AsSpan<float>(), h);
        return OnnxTensor.FromArray(h, t.Dims);
    }

    /// <summary>The int64 or int32 values of a 1-D (or scalar) tensor, as longs (axes inputs, shapes).</summary>
    internal static long[] ReadInts(KernelContext ctx, OnnxTensor t, string what) => t.ElementType switch
    {
        DataType.Int64 => t.AsSpan<long>().ToArray(),
        DataType.Int32 => [.. t.ToArray<int>().Select(v => (long)v)],
        _ => throw ctx.Invalid($"{what} must be int64, got {DataTypes.OnnxName(t.ElementType)}"),
    };
}
