using System.Runtime.InteropServices;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Element-type-agnostic data movement for the shape and indexing ops. An element is moved as one unit of its byte
/// size (1, 2, 4, 8 or 16 bytes, reinterpreting the storage array) or as a reference (strings), so one generic loop
/// serves float, double, float16, bfloat16, every integer, bool, string, complex and float8 tensors. The 4-bit types
/// (two elements per byte) cannot be moved element by element and are refused at factory time.
/// </summary>
internal static class DataMovement
{
    /// <summary>A loop over two same-typed element spans (source, destination), instantiated once per unit type.</summary>
    internal interface IUnitAction
    {
        void Run<T>(Span<T> src, Span<T> dst);
    }

    /// <summary>
    /// Elements per chunk below which the copy kernels (Transpose, the strided gather, SliceGrad's scatter) stay on the
    /// caller's thread: 1 MB of float32 per chunk. A copy is memory-bound and short (W4's 512 KB transposes take
    /// 25-100 µs), and split at 128 KB per chunk they ran slower in W4 on a loaded 2-core machine (the [512,128] weight
    /// transposes 10× slower in the profile: waiting for a worker that had to be scheduled cost more than the copy).
    /// </summary>
    internal static int ParallelGrain => t_parallelGrain > 0 ? t_parallelGrain : 1 << 18;

    /// <summary>A per-thread override of <see cref="ParallelGrain"/> (0: none), for tests that exercise the split on small tensors.</summary>
    [ThreadStatic] internal static int t_parallelGrain;

    /// <summary>True when elements of <paramref name="type"/> can be moved one by one.</summary>
    public static bool IsMovable(DataType type) =>
        type != DataType.Undefined && type is not (DataType.UInt4 or DataType.Int4 or DataType.Float4E2M1);

    /// <summary>Throws Unsupported at factory time when input <paramref name="index"/> has a 4-bit element type.</summary>
    public static void RequireMovable(OpContext op, int index)
    {
        var t = op.InputType(index);
        if (t != DataType.Undefined && !IsMovable(t))
            throw op.Unsupported($"input {index} has element type {DataTypes.OnnxName(t)} (packed 4-bit elements cannot be moved one by one)");
    }

    /// <summary>Runs <paramref name="action"/> on the elements of <paramref name="src"/> and <paramref name="dst"/> (same element type).</summary>
    public static void Dispatch<TAction>(OnnxTensor src, OnnxTensor dst, ref TAction action) where TAction : struct, IUnitAction
    {
        if (src.ElementType != dst.ElementType)
            throw new InvalidOperationException($"element types differ: {DataTypes.OnnxName(src.ElementType)} and {DataTypes.OnnxName(dst.ElementType)}");
        if (src.ElementType == DataType.String)
        {
            action.Run(Strings(src), Strings(dst));
            return;
        }
        switch (UnitSize(src.ElementType))
        {
            case 1: action.Run(Units<byte>(src), Units<byte>(dst)); break;
            case 2: action.Run(Units<ushort>(src), Units<ushort>(dst)); break;
            case 4: action.Run(Units<uint>(src), Units<uint>(dst)); break;
            case 8: action.Run(Units<ulong>(src), Units<ulong>(dst)); break;
            case 16: action.Run(Units<Int128>(src), Units<Int128>(dst)); break;
            default: throw new InvalidOperationException($"{DataTypes.OnnxName(src.ElementType)} elements cannot be moved one by one");
        }
    }

    private static int UnitSize(DataType type) => IsMovable(type) ? DataTypes.ElementSize(type) : 0;

    private static Span<byte[]> Strings(OnnxTensor t) => ((byte[][])t.Buffer).AsSpan(0, checked((int)t.ElementCount));

    private static Span<T> Units<T>(OnnxTensor t) where T : struct
    {
        int bytes = checked((int)(t.ElementCount * UnitSize(t.ElementType)));
        var raw = MemoryMarshal.CreateSpan(ref MemoryMarshal.GetArrayDataReference(t.Buffer), bytes);
        return MemoryMarshal.Cast<byte, T>(raw);
    }

    // ---- primitives ----

    /// <summary>
    /// Fills the contiguous tensor <paramref name="dst"/> (shape <paramref name="shape"/>) from a strided view of
    /// <paramref name="src"/>: element at coordinate c comes from
    /// <c>baseOffset + Σ_d strides[d] · t_d(c_d)</c>, where t_d is <paramref name="tables"/>[d] (identity when null).
    /// A negative table entry leaves the destination element untouched (padding). Covers Transpose (permuted strides),
    /// Slice (offset and stepped strides), Expand (zero strides), Tile, Pad, Gather and nearest Resize (index tables).
    /// </summary>
    /// <remarks>
    /// With <paramref name="threads"/> &gt; 1 and at least 2 × <see cref="ParallelGrain"/> elements the
    /// destination rows are split into one contiguous range per thread (each element is written once, so the result does
    /// not depend on the split).
    /// </remarks>
    public static void GatherStrided(OnnxTensor src, OnnxTensor dst, int[] shape, long baseOffset, long[] strides, int[]?[]? tables = null, int threads = 1)
    {
        long total = 1;
        foreach (int d in shape) total *= d;
        long rows = shape.Length == 0 || total == 0 ? 1 : total / shape[^1];
        int chunks = (int)Math.Min(Math.Min(Math.Max(1, threads), rows), Math.Max(1, total / ParallelGrain));
        if (chunks <= 1 || src.ElementType == DataType.String)
        {
            var action = new StridedAction(shape, baseOffset, strides, tables, 0, rows);
            Dispatch(src, dst, ref action);
            return;
        }
        ChunkRunner.ForRanges((int)rows, chunks, 0, chunks, (src, dst, shape, baseOffset, strides, tables), static (s, from, to) =>
        {
            var action = new StridedAction(s.shape, s.baseOffset, s.strides, s.tables, from, to);
            Dispatch(s.src, s.dst, ref action);
        });
    }

    /// <summary>
    /// The source offsets <see cref="GatherStrided"/> reads, one per destination element in row-major order (-1 where
    /// a table entry is negative): the index map of a strided view, for the gradient kernels that scatter back.
    /// </summary>
    public static int[] StridedMap(int[] shape, long baseOffset, long[] strides, int[]?[]? tables = null)
    {
        int rank = shape.Length;
        long total = 1;
        foreach (int d in shape) total *= d;
        var map = new int[total];
        if (total == 0) return map;
        var coord = new int[rank];
        for (long i = 0; i < total; i++)
        {
            long offset = baseOffset;
            for (int d = 0; d < rank; d++)
            {
                int t = tables?[d] is { } table ? table[coord[d]] : coord[d];
                if (t < 0) { offset = -1; break; }
                offset += strides[d] * t;
            }
            map[i] = (int)offset;
            for (int d = rank - 1; d >= 0; d--)
            {
                if (++coord[d] < shape[d]) break;
                coord[d] = 0;
            }
        }
        return map;
    }

    /// <summary>dst[i] = src[map[i]] for every i (a negative entry leaves dst[i] untouched).</summary>
    public static void GatherMap(OnnxTensor src, OnnxTensor dst, int[] map)
    {
        var action = new MapAction(map, scatter: false);
        Dispatch(src, dst, ref action);
    }

    /// <summary>dst[map[i]] = src[i] for every i, in increasing i (later writes win).</summary>
    public static void ScatterMap(OnnxTensor src, OnnxTensor dst, int[] map)
    {
        var action = new MapAction(map, scatter: true);
        Dispatch(src, dst, ref action);
    }

    /// <summary>Copies <paramref name="count"/> elements from src[srcIndex..] to dst[dstIndex..].</summary>
    public static void Copy(OnnxTensor src, long srcIndex, OnnxTensor dst, long dstIndex, long count)
    {
        if (count == 0) return;
        var action = new CopyAction(checked((int)srcIndex), checked((int)dstIndex), checked((int)count));
        Dispatch(src, dst, ref action);
    }

    /// <summary>Sets every element of <paramref name="dst"/> to element <paramref name="index"/> of <paramref name="value"/>.</summary>
    public static void Fill(OnnxTensor dst, OnnxTensor value, long index = 0)
    {
        if (dst.ElementCount == 0) return;
        var action = new FillAction(checked((int)index));
        Dispatch(value, dst, ref action);
    }

    /// <summary>A tensor of <paramref name="shape"/> filled with element 0 of <paramref name="value"/>.</summary>
    public static OnnxTensor Filled(KernelContext ctx, OnnxTensor value, ReadOnlySpan<int> shape)
    {
        var result = ctx.AllocateUninitialized(value.ElementType, shape);
        Fill(result, value);
        return result;
    }

    /// <summary>A contiguous copy of <paramref name="src"/> with its dimensions permuted (output dim d = input dim perm[d]).</summary>
    public static OnnxTensor Permute(KernelContext ctx, OnnxTensor src, int[] srcShape, int[] perm)
    {
        var srcStrides = Broadcast.ContiguousStrides(srcShape);
        var outShape = new int[perm.Length];
        var strides = new long[perm.Length];
        for (int d = 0; d < perm.Length; d++) { outShape[d] = srcShape[perm[d]]; strides[d] = srcStrides[perm[d]]; }
        var result = ctx.Allocate(src.ElementType, outShape);
        GatherStrided(src, result, outShape, 0, strides, threads: ctx.Options.Threads);
        return result;
    }

    /// <summary>The strided gather of destination rows [rowFrom, rowTo) (a row is a run of the last dimension).</summary>
    private readonly struct StridedAction(int[] shape, long baseOffset, long[] strides, int[]?[]? tables, long rowFrom, long rowTo) : IUnitAction
    {
        public void Run<T>(Span<T> src, Span<T> dst)
        {
            int rank = shape.Length;
            long total = 1;
            foreach (int d in shape) total *= d;
            if (total == 0) return;
            if (rank == 0) { dst[0] = src[(int)baseOffset]; return; }
            int inner = shape[rank - 1];
            long innerStride = strides[rank - 1];
            int[]? innerTable = tables?[rank - 1];
            // Per outer dimension: its coordinate, what it adds to the source offset, and whether its table entry is
            // negative (the row is padding). On the stack for the usual ranks, so a call allocates nothing.
            int outerRank = rank - 1;
            Span<int> coord = outerRank <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[outerRank];
            Span<long> contrib = outerRank <= OpArgs.StackRank ? stackalloc long[OpArgs.StackRank] : new long[outerRank];
            Span<bool> skip = outerRank <= OpArgs.StackRank ? stackalloc bool[OpArgs.StackRank] : new bool[outerRank];
            coord = coord[..outerRank];
            contrib = contrib[..outerRank];
            skip = skip[..outerRank];
            coord.Clear();
            contrib.Clear();
            skip.Clear();
            int skipped = 0;
            long offset = baseOffset;
            // The coordinates of row rowFrom.
            for (long d = outerRank - 1, r = rowFrom; d >= 0; d--)
            {
                coord[(int)d] = (int)(r % shape[d]);
                r /= shape[d];
            }
            for (int d = 0; d < outerRank; d++) Set(d, coord[d], contrib, skip, ref skipped, ref offset);
            for (long o = rowFrom; o < rowTo; o++)
            {
                var row = dst.Slice((int)(o * inner), inner);
                if (skipped == 0)
                {
                    if (innerTable is null)
                    {
                        if (innerStride == 1) src.Slice((int)offset, inner).CopyTo(row);
                        else for (int j = 0; j < inner; j++) row[j] = src[(int)(offset + j * innerStride)];
                    }
                    else
                    {
                        for (int j = 0; j < inner; j++)
                        {
                            int t = innerTable[j];
                            if (t >= 0) row[j] = src[(int)(offset + t * innerStride)];
                        }
                    }
                }
                for (int d = outerRank - 1; d >= 0; d--)
                {
                    if (++coord[d] < shape[d]) { Set(d, coord[d], contrib, skip, ref skipped, ref offset); break; }
                    coord[d] = 0;
                    Set(d, 0, contrib, skip, ref skipped, ref offset);
                }
            }
        }

        /// <summary>Moves outer dimension <paramref name="d"/> to coordinate <paramref name="c"/>: updates the offset and the padding count.</summary>
        private void Set(int d, int c, Span<long> contrib, Span<bool> skip, ref int skipped, ref long offset)
        {
            offset -= contrib[d];
            if (skip[d]) { skip[d] = false; skipped--; }
            int t = tables?[d] is { } table ? table[c] : c;
            if (t < 0) { skip[d] = true; skipped++; contrib[d] = 0; }
            else contrib[d] = strides[d] * t;
            offset += contrib[d];
        }
    }

    private readonly struct MapAction(int[] map, bool scatter) : IUnitAction
    {
        public void Run<T>(Span<T> src, Span<T> dst)
        {
            if (scatter) for (int i = 0; i < map.Length; i++) dst[map[i]] = src[i];
            else for (int i = 0; i < map.Length; i++) { int m = map[i]; if (m >= 0) dst[i] = src[m]; }
        }
    }

    private readonly struct CopyAction(int srcIndex, int dstIndex, int count) : IUnitAction
    {
        public void Run<T>(Span<T> src, Span<T> dst) => src.Slice(srcIndex, count).CopyTo(dst.Slice(dstIndex, count));
    }

    private readonly struct FillAction(int index) : IUnitAction
    {
        public void Run<T>(Span<T> value, Span<T> dst) => dst.Fill(value[index]);
    }
}
