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
        Runtime.ChunkRunner.ForRanges(count, chunks, 0, threads, body);
    }

    /// <summary>
    /// As <see cref="ForChunks(int, int, Action{int, int})"/> with the same chunks, calling <paramref name="body"/>(state,
    /// start, end): with a static lambda and the arrays in <paramref name="state"/> a call allocates nothing.
    /// </summary>
    internal static void ForChunks<TState>(int count, int threads, TState state, Action<TState, int, int> body)
    {
        if (threads <= 1 || count < 2) { body(state, 0, count); return; }
        Runtime.ChunkRunner.ForRanges(count, Math.Min(count, threads), 0, threads, state, body);
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

    /// <summary>The int64 or int32 values of a 1-D (or scalar) tensor as longs, without allocating (int32 is converted into <paramref name="scratch"/>).</summary>
    internal static ReadOnlySpan<long> ReadInts(KernelContext ctx, OnnxTensor t, string what, Span<long> scratch)
    {
        if (t.ElementType == DataType.Int64) return t.AsSpan<long>();
        if (t.ElementType != DataType.Int32) throw ctx.Invalid($"{what} must be int64, got {DataTypes.OnnxName(t.ElementType)}");
        var ints = t.AsSpan<int>();
        var result = ints.Length <= scratch.Length ? scratch[..ints.Length] : new long[ints.Length];
        for (int i = 0; i < ints.Length; i++) result[i] = ints[i];
        return result;
    }

    /// <summary>The int64 or int32 values of a 1-D (or scalar) tensor, as longs (axes inputs, shapes).</summary>
    internal static long[] ReadInts(KernelContext ctx, OnnxTensor t, string what) => t.ElementType switch
    {
        DataType.Int64 => t.AsSpan<long>().ToArray(),
        DataType.Int32 => [.. t.ToArray<int>().Select(v => (long)v)],
        _ => throw ctx.Invalid($"{what} must be int64, got {DataTypes.OnnxName(t.ElementType)}"),
    };
}

/// <summary>
/// Which input elements each output of a reduction reads: output j reads x[Start(j) + Offsets[k]] for k &lt; Count
/// (row-major over the reduced dimensions). Adjacent dimensions that are both reduced or both kept are merged, so a
/// reduced trailing block is <see cref="Contiguous"/>: output j reads x[j·Count .. (j+1)·Count).
/// </summary>
internal sealed class ReductionLayout
{
    private readonly int[] _sizes;
    private readonly int[] _strides;
    private readonly bool[] _isReduced;
    private readonly int[] _offsets;

    public ReductionLayout(int[] shape, bool[] reduced)
    {
        var sizes = new List<int>();
        var isReduced = new List<bool>();
        long m = 1, r = 1;
        for (int d = 0; d < shape.Length; d++)
        {
            if (reduced[d]) r *= shape[d]; else m *= shape[d];
            if (shape[d] == 1) continue;
            if (sizes.Count > 0 && isReduced[^1] == reduced[d]) sizes[^1] *= shape[d];
            else { sizes.Add(shape[d]); isReduced.Add(reduced[d]); }
        }
        OutCount = checked((int)m);
        Count = checked((int)r);
        _sizes = [.. sizes];
        _isReduced = [.. isReduced];
        _strides = new int[_sizes.Length];
        for (int g = _sizes.Length - 1, s = 1; g >= 0; s *= _sizes[g], g--) _strides[g] = s;
        int reducedGroups = isReduced.Count(b => b);
        Contiguous = reducedGroups == 0 || (reducedGroups == 1 && isReduced[^1]);
        if (reducedGroups == 1 && !isReduced[^1])
        {
            int g = isReduced.IndexOf(true);
            if (g == _sizes.Length - 2) RowBlock = (g == 0 ? 1 : ReductionOps.Product(_sizes, 0, g), _sizes[g], _sizes[^1]);
        }
        _offsets = Contiguous || OutCount == 0 ? [] : [.. Enumerable.Range(0, Count).Select(k => Offset(k, true))];
    }

    /// <summary>Number of outputs (product of the kept dimensions).</summary>
    public int OutCount { get; }

    /// <summary>Elements per output (product of the reduced dimensions).</summary>
    public int Count { get; }

    /// <summary>
    /// Set when the input is [outer, rows, inner] with only the middle dimension reduced and inner &gt; 1: outputs are
    /// then [outer, inner] and can be accumulated row by row.
    /// </summary>
    public (int Outer, int Rows, int Inner)? RowBlock { get; }

    /// <summary>True when output j's elements are x[j·Count .. (j+1)·Count).</summary>
    public bool Contiguous { get; }

    /// <summary>The input index of output <paramref name="j"/>'s first element.</summary>
    public int Start(int j) => Contiguous ? j * Count : Offset(j, false);

    /// <summary>The input index of output j's k-th element, given <c>start = Start(j)</c>.</summary>
    public int Index(int start, int k) => Contiguous ? start + k : start + _offsets[k];

    /// <summary>Copies output j's elements (<c>start = Start(j)</c>) into <paramref name="buffer"/>.</summary>
    public void Gather<T>(ReadOnlySpan<T> x, int start, Span<T> buffer)
    {
        if (Contiguous) { x.Slice(start, Count).CopyTo(buffer); return; }
        for (int k = 0; k < buffer.Length; k++) buffer[k] = x[start + _offsets[k]];
    }

    /// <summary>Writes <paramref name="buffer"/> to output j's element positions (<c>start = Start(j)</c>).</summary>
    public void Scatter<T>(ReadOnlySpan<T> buffer, Span<T> x, int start)
    {
        if (Contiguous) { buffer.CopyTo(x.Slice(start, Count)); return; }
        for (int k = 0; k < buffer.Length; k++) x[start + _offsets[k]] = buffer[k];
    }

    /// <summary>The input offset of index <paramref name="flat"/> over the reduced (or kept) groups, row-major.</summary>
    private int Offset(int flat, bool ofReduced)
    {
        int offset = 0;
        for (int g = _sizes.Length - 1; g >= 0; g--)
        {
            if (_isReduced[g] != ofReduced) continue;
            offset += flat % _sizes[g] * _strides[g];
            flat /= _sizes[g];
        }
        return offset;
    }
}

/// <summary>
/// The shapes of one reduction: input dimensions, reduced flags, the <see cref="ReductionLayout"/> and the output
/// shape. Immutable, so a kernel keeps its last one and reuses it while the input shape and axes repeat (a training
/// step then builds no layout); concurrent runs at worst build their own.
/// </summary>
internal sealed class ReducePlan
{
    private readonly int[] _dims;
    private readonly bool[] _reduced;
    private readonly bool _keepDims;

    public ReducePlan(ReadOnlySpan<int> dims, ReadOnlySpan<bool> reduced, bool keepDims)
    {
        _dims = dims.ToArray();
        _reduced = reduced.ToArray();
        _keepDims = keepDims;
        Layout = new ReductionLayout(_dims, _reduced);
        OutShape = ReductionOps.ReducedShape(dims, _reduced, keepDims);
    }

    public ReductionLayout Layout { get; }

    public int[] OutShape { get; }

    /// <summary><paramref name="cache"/> when it describes these shapes, else a new plan stored there.</summary>
    public static ReducePlan For(ref ReducePlan? cache, ReadOnlySpan<int> dims, ReadOnlySpan<bool> reduced, bool keepDims)
    {
        var last = Volatile.Read(ref cache);
        if (last is not null && last._keepDims == keepDims && last._dims.AsSpan().SequenceEqual(dims) && last._reduced.AsSpan().SequenceEqual(reduced)) return last;
        var plan = new ReducePlan(dims, reduced, keepDims);
        Volatile.Write(ref cache, plan);
        return plan;
    }
}
