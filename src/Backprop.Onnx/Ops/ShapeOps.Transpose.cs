using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Transpose as a blocked copy (the layout of ONNX spec "Transpose": output dimension i is input dimension perm[i]).
/// Size-1 dimensions are dropped and output dimensions that stay adjacent in the input merged, so e.g. [64,64,32] with
/// perm (1,0,2) is 4096 contiguous rows of 32 and a [128,512] matrix transpose is one 2-D transpose. When the input's
/// contiguous dimension stays innermost, each output row is one vectorized span copy; otherwise the two dimensions
/// that swap (the input's contiguous one and the output's) are copied in blocks — 8×8 in AVX registers for 4-byte
/// elements, 16×16 scalar tiles else — so that both the strided and the contiguous side stay in cache (the
/// cache-blocked transpose of e.g. Chatterjee &amp; Sen, "Cache-Efficient Matrix Transposition", HPCA 2000).
/// </summary>
internal static partial class ShapeOps
{
    /// <summary>Largest rank the blocked transpose takes (after collapsing); beyond it the general strided gather runs.</summary>
    private const int MaxTransposeRank = 8;

    [InlineArray(MaxTransposeRank)]
    private struct Sizes8 { private long _element; }

    /// <summary>Rows of the swapped dimension per work unit of a tile transpose (a multiple of 8, the AVX block).</summary>
    private const int TransposeRowBlock = 64;

    /// <summary>
    /// Transpose of <paramref name="x"/> by the validated permutation <paramref name="perm"/>; allocates nothing but the
    /// output. From 2 × <see cref="DataMovement.ParallelGrain"/> elements the work units (output rows, or row blocks of
    /// a tile transpose) are split into one contiguous range per thread: every element is written once whatever the
    /// split, so the result does not depend on the thread count.
    /// </summary>
    internal static OnnxTensor Transpose(KernelContext ctx, OnnxTensor x, int[] perm)
    {
        int rank = x.Rank;
        if (rank > MaxTransposeRank || x.ElementType == DataType.String) return DataMovement.Permute(ctx, x, x.Dims, perm);
        Span<int> outShape = stackalloc int[rank];
        for (int d = 0; d < rank; d++) outShape[d] = x.Dims[perm[d]];
        var y = ctx.AllocateUninitialized(x.ElementType, outShape);
        if (y.ElementCount == 0) return y;
        var action = TransposeAction.Create(x.Dims, perm);
        long units = action.Units;
        int chunks = (int)Math.Min(Math.Min(Math.Max(1, ctx.Options.Threads), units), Math.Max(1, y.ElementCount / DataMovement.ParallelGrain));
        if (chunks <= 1)
        {
            DataMovement.Dispatch(x, y, ref action);
            return y;
        }
        ChunkRunner.ForRanges((int)units, chunks, 0, chunks, (x, y, action), static (s, from, to) =>
        {
            var part = s.action.Range(from, to);
            DataMovement.Dispatch(s.x, s.y, ref part);
        });
        return y;
    }

    /// <summary>
    /// The collapsed transpose: output dimensions (sizes, source strides, destination strides), outermost first, and the
    /// range of work units to run. A unit is one output row when the input's contiguous dimension stays innermost,
    /// else one block of <see cref="TransposeRowBlock"/> rows of the 2-D tile between the swapped dimensions.
    /// </summary>
    private struct TransposeAction : DataMovement.IUnitAction
    {
        private Sizes8 _size, _src, _dst;
        private int _rank, _swap;
        private long _from, _to, _outer, _blocks;

        public static TransposeAction Create(int[] dims, int[] perm)
        {
            var t = new TransposeAction();
            Span<long> inStride = stackalloc long[dims.Length];
            long stride = 1;
            for (int d = dims.Length - 1; d >= 0; d--) { inStride[d] = stride; stride *= dims[d]; }
            // Output dimensions in order, size-1 ones dropped, merged with the previous one when adjacent in the input.
            int r = 0;
            foreach (int p in perm)
            {
                if (dims[p] == 1) continue;
                if (r > 0 && t._src[r - 1] == inStride[p] * dims[p]) { t._size[r - 1] *= dims[p]; t._src[r - 1] = inStride[p]; continue; }
                t._size[r] = dims[p];
                t._src[r] = inStride[p];
                r++;
            }
            stride = 1;
            for (int d = r - 1; d >= 0; d--) { t._dst[d] = stride; stride *= t._size[d]; }
            t._rank = r;
            // The output dimension that is the input's contiguous one (stride 1): innermost (row copies) or swapped (tiles).
            int last = r - 1;
            t._swap = last;
            for (int d = 0; d < r; d++) if (t._src[d] == 1) t._swap = d;
            t._outer = 1;
            for (int d = 0; d < r; d++) if (d != last && d != t._swap) t._outer *= t._size[d];
            t._blocks = r == 0 || t._swap == last ? 1 : (t._size[t._swap] + TransposeRowBlock - 1) / TransposeRowBlock;
            t._to = t._outer * t._blocks;
            return t;
        }

        /// <summary>Work units in all: outer rows times row blocks.</summary>
        public readonly long Units => _outer * _blocks;

        /// <summary>This transpose restricted to units [from, to).</summary>
        public readonly TransposeAction Range(long from, long to)
        {
            var t = this;
            t._from = from;
            t._to = to;
            return t;
        }

        public void Run<T>(Span<T> src, Span<T> dst)
        {
            int r = _rank;
            if (r == 0) { dst[0] = src[0]; return; }
            int last = r - 1, swap = _swap;
            // The coordinates of unit _from: outer index o (row-major over the dimensions other than last and swap)
            // and row block b.
            Span<long> coord = stackalloc long[r];
            long o = _from / _blocks, b = _from % _blocks;
            long so = 0, dOff = 0;
            for (int d = r - 1; d >= 0; d--)
            {
                if (d == last || d == swap) continue;
                coord[d] = o % _size[d];
                o /= _size[d];
                so += coord[d] * _src[d];
                dOff += coord[d] * _dst[d];
            }
            ref T s0 = ref MemoryMarshal.GetReference(src);
            ref T d0 = ref MemoryMarshal.GetReference(dst);
            int rows = (int)_size[swap], cols = (int)_size[last];
            for (long u = _from; u < _to; u++)
            {
                if (swap == last) CopyRow(ref Unsafe.Add(ref s0, (nint)so), ref Unsafe.Add(ref d0, (nint)dOff), cols);
                else
                {
                    int i0 = (int)b * TransposeRowBlock;
                    Tile(ref Unsafe.Add(ref s0, (nint)(so + i0)), ref Unsafe.Add(ref d0, (nint)(dOff + (long)i0 * _dst[swap])),
                        Math.Min(TransposeRowBlock, rows - i0), (int)_dst[swap], cols, (int)_src[last]);
                    if (++b < _blocks) continue;
                    b = 0;
                }
                for (int d = r - 1; d >= 0; d--)
                {
                    if (d == last || d == swap) continue;
                    if (++coord[d] < _size[d]) { so += _src[d]; dOff += _dst[d]; break; }
                    so -= _src[d] * (_size[d] - 1);
                    dOff -= _dst[d] * (_size[d] - 1);
                    coord[d] = 0;
                }
            }
        }

        /// <summary>
        /// Copies <paramref name="count"/> elements. Short rows (a head's 32 floats) are copied with inline 32-byte
        /// vectors (the last one overlapping the previous when the length is not a multiple of 32 bytes): a call of
        /// Buffer.Memmove per 128-byte row cost about as much as the copy itself.
        /// </summary>
        private static void CopyRow<T>(ref T src, ref T dst, int count)
        {
            int bytes = count * Unsafe.SizeOf<T>();
            if (RuntimeHelpers.IsReferenceOrContainsReferences<T>() || bytes > 512 || bytes < 32)
            {
                MemoryMarshal.CreateReadOnlySpan(ref src, count).CopyTo(MemoryMarshal.CreateSpan(ref dst, count));
                return;
            }
            ref byte s = ref Unsafe.As<T, byte>(ref src);
            ref byte d = ref Unsafe.As<T, byte>(ref dst);
            nuint i = 0, n = (nuint)bytes;
            for (; i + 32 <= n; i += 32) Vector256.LoadUnsafe(ref s, i).StoreUnsafe(ref d, i);
            if (i < n) Vector256.LoadUnsafe(ref s, n - 32).StoreUnsafe(ref d, n - 32);
        }

        /// <summary>
        /// dst[i·dstRow + j] = src[i + j·srcCol] for i &lt; rows, j &lt; cols, in 16×16 tiles. The caller's extents bound
        /// every index (rows·dstRow and cols·srcCol stay within the spans the offsets were taken from). Within a tile the
        /// inner loop runs along the side with the larger stride, so each of its lines is used whole at once: 16 lines
        /// 8 KB apart share one L1 set (8 ways), and reading them element by element in turn cost 3-4× (a [64, 2048]
        /// float transpose took 242 µs that way, against 36 µs for a plain copy of the same size).
        /// </summary>
        private static void Tile<T>(ref T src, ref T dst, int rows, int dstRow, int cols, int srcCol)
        {
            if (Unsafe.SizeOf<T>() == 4 && Avx.IsSupported && !RuntimeHelpers.IsReferenceOrContainsReferences<T>() && rows >= 8 && cols >= 8)
            {
                int rows8 = rows & ~7, cols8 = cols & ~7;
                Tile8x8(ref Unsafe.As<T, float>(ref src), ref Unsafe.As<T, float>(ref dst), rows8, dstRow, cols8, srcCol);
                // The edges that do not fill an 8×8 block: the last rows (every column), the last columns (the other rows).
                if (rows8 < rows) Tile(ref Unsafe.Add(ref src, rows8), ref Unsafe.Add(ref dst, (nint)rows8 * dstRow), rows - rows8, dstRow, cols, srcCol);
                if (cols8 < cols) Tile(ref Unsafe.Add(ref src, (nint)cols8 * srcCol), ref Unsafe.Add(ref dst, cols8), rows8, dstRow, cols - cols8, srcCol);
                return;
            }
            const int B = 16;
            for (int i0 = 0; i0 < rows; i0 += B)
            {
                int i1 = Math.Min(rows, i0 + B);
                for (int j0 = 0; j0 < cols; j0 += B)
                {
                    int j1 = Math.Min(cols, j0 + B);
                    if (srcCol > dstRow)
                    {
                        for (int j = j0; j < j1; j++)
                        {
                            ref T srow = ref Unsafe.Add(ref src, (nint)j * srcCol);
                            ref T dcol = ref Unsafe.Add(ref dst, j);
                            for (int i = i0; i < i1; i++) Unsafe.Add(ref dcol, (nint)i * dstRow) = Unsafe.Add(ref srow, i);
                        }
                    }
                    else
                    {
                        for (int i = i0; i < i1; i++)
                        {
                            ref T drow = ref Unsafe.Add(ref dst, (nint)i * dstRow);
                            ref T scol = ref Unsafe.Add(ref src, i);
                            for (int j = j0; j < j1; j++) Unsafe.Add(ref drow, j) = Unsafe.Add(ref scol, (nint)j * srcCol);
                        }
                    }
                }
            }
        }

        /// <summary>
        /// The 4-byte tile path: 8×8 blocks transposed in AVX registers (unpack pairs, shuffle quads, swap 128-bit halves;
        /// the sequence of Intel's optimization manual, "8x8 matrix transpose"). rows and cols are multiples of 8. The side
        /// with the larger stride is swept in the inner loop, so its 8 current lines are consumed whole before the next
        /// ones (with 8 KB strides, 16 lines in flight share one L1 set).
        /// </summary>
        private static void Tile8x8(ref float src, ref float dst, int rows, int dstRow, int cols, int srcCol)
        {
            if (srcCol >= dstRow)
            {
                for (int j0 = 0; j0 < cols; j0 += 8)
                    for (int i0 = 0; i0 < rows; i0 += 8)
                        Block8x8(ref Unsafe.Add(ref src, i0 + (nint)j0 * srcCol), srcCol, ref Unsafe.Add(ref dst, (nint)i0 * dstRow + j0), dstRow);
            }
            else
            {
                for (int i0 = 0; i0 < rows; i0 += 8)
                    for (int j0 = 0; j0 < cols; j0 += 8)
                        Block8x8(ref Unsafe.Add(ref src, i0 + (nint)j0 * srcCol), srcCol, ref Unsafe.Add(ref dst, (nint)i0 * dstRow + j0), dstRow);
            }
        }

        /// <summary>dst[i·dstRow + j] = src[j·srcCol + i] for i, j &lt; 8.</summary>
        private static void Block8x8(ref float src, int srcCol, ref float dst, int dstRow)
        {
            var r0 = Vector256.LoadUnsafe(ref src);
            var r1 = Vector256.LoadUnsafe(ref src, (nuint)srcCol);
            var r2 = Vector256.LoadUnsafe(ref src, (nuint)(2 * srcCol));
            var r3 = Vector256.LoadUnsafe(ref src, (nuint)(3 * srcCol));
            var r4 = Vector256.LoadUnsafe(ref src, (nuint)(4 * srcCol));
            var r5 = Vector256.LoadUnsafe(ref src, (nuint)(5 * srcCol));
            var r6 = Vector256.LoadUnsafe(ref src, (nuint)(6 * srcCol));
            var r7 = Vector256.LoadUnsafe(ref src, (nuint)(7 * srcCol));
            var t0 = Avx.UnpackLow(r0, r1);
            var t1 = Avx.UnpackHigh(r0, r1);
            var t2 = Avx.UnpackLow(r2, r3);
            var t3 = Avx.UnpackHigh(r2, r3);
            var t4 = Avx.UnpackLow(r4, r5);
            var t5 = Avx.UnpackHigh(r4, r5);
            var t6 = Avx.UnpackLow(r6, r7);
            var t7 = Avx.UnpackHigh(r6, r7);
            var s0 = Avx.Shuffle(t0, t2, 0x44);
            var s1 = Avx.Shuffle(t0, t2, 0xEE);
            var s2 = Avx.Shuffle(t1, t3, 0x44);
            var s3 = Avx.Shuffle(t1, t3, 0xEE);
            var s4 = Avx.Shuffle(t4, t6, 0x44);
            var s5 = Avx.Shuffle(t4, t6, 0xEE);
            var s6 = Avx.Shuffle(t5, t7, 0x44);
            var s7 = Avx.Shuffle(t5, t7, 0xEE);
            Avx.Permute2x128(s0, s4, 0x20).StoreUnsafe(ref dst);
            Avx.Permute2x128(s1, s5, 0x20).StoreUnsafe(ref dst, (nuint)dstRow);
            Avx.Permute2x128(s2, s6, 0x20).StoreUnsafe(ref dst, (nuint)(2 * dstRow));
            Avx.Permute2x128(s3, s7, 0x20).StoreUnsafe(ref dst, (nuint)(3 * dstRow));
            Avx.Permute2x128(s0, s4, 0x31).StoreUnsafe(ref dst, (nuint)(4 * dstRow));
            Avx.Permute2x128(s1, s5, 0x31).StoreUnsafe(ref dst, (nuint)(5 * dstRow));
            Avx.Permute2x128(s2, s6, 0x31).StoreUnsafe(ref dst, (nuint)(6 * dstRow));
            Avx.Permute2x128(s3, s7, 0x31).StoreUnsafe(ref dst, (nuint)(7 * dstRow));
        }
    }
}
