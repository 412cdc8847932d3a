using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

internal static partial class ShapeOps
{
    private static void RegisterLayout(List<OpDefinition> ops)
    {
        // Transpose (ONNX spec "Transpose", versions 1, 13): output dimension i is input dimension perm[i]; perm
        // defaults to the reversed dimensions.
        ops.Add(new OpDefinition("Transpose", op =>
        {
            DataMovement.RequireMovable(op, 0);
            long[]? permAttr = op.Node.GetInts("perm");
            int[]? perm = null;   // validated once per input rank
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                if (perm is null || perm.Length != x.Rank) perm = Permutation(ctx, permAttr, x.Rank);
                ctx.SetOutput(0, Transpose(ctx, x, perm));
            });
        })
        {
            // dX = Transpose(dY, inverse(perm)) (PyTorch derivatives.yaml permute: grad.permute(inverse dims)); the
            // default reversal is its own inverse.
            Vjp = ctx => [ctx.Node.GetInts("perm") is { } p
                ? ctx.Emit.Transpose(ctx.OutputGrad(0)!, InversePermutation(p))
                : ctx.Emit.Op("Transpose", ctx.OutputGrad(0)!)],
        });

        // DepthToSpace (ONNX spec "DepthToSpace", versions 1, 11, 13): moves blocks of the channel dimension into
        // blocksize x blocksize spatial blocks of an [N,C,H,W] tensor. DCR (the default, and the only mode before
        // opset 11): channel = (by*b + bx)*C' + c; CRD: channel = c*b*b + by*b + bx.
        ops.Add(new OpDefinition("DepthToSpace", op =>
        {
            DataMovement.RequireMovable(op, 0);
            int b = BlockSize(op);
            string mode = op.OpsetVersion >= 11 ? op.Node.GetString("mode", "DCR") : "DCR";
            if (mode is not ("DCR" or "CRD")) throw op.Unsupported($"mode '{mode}' (expected DCR or CRD)");
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                var (n, c, h, w) = Nchw(ctx, x);
                if (c % (b * b) != 0) throw ctx.Invalid($"channels {c} are not divisible by blocksize² {b * b}");
                int cOut = c / (b * b);
                // View the input as 6-D and permute it to [N, C', H, b, W, b].
                var y = mode == "DCR"
                    ? DataMovement.Permute(ctx, x, [n, b, b, cOut, h, w], [0, 3, 4, 1, 5, 2])
                    : DataMovement.Permute(ctx, x, [n, cOut, b, b, h, w], [0, 1, 4, 2, 5, 3]);
                ctx.SetOutput(0, y.Reshape([n, cOut, h * b, w * b]));
            });
        })
        {
            // DepthToSpace permutes elements, so dX is dY moved back: SpaceToDepth(dY) for DCR (its exact inverse, ONNX
            // spec); for CRD, SpaceToDepth gives the DCR channel order k*C'+c, which a channel transpose turns into c*b²+k.
            Vjp = DepthToSpaceVjp,
        });

        // SpaceToDepth (ONNX spec "SpaceToDepth", versions 1, 13): the inverse of DepthToSpace in DCR mode; each
        // blocksize x blocksize spatial block becomes b*b channels, channel = (by*b + bx)*C + c.
        ops.Add(new OpDefinition("SpaceToDepth", op =>
        {
            DataMovement.RequireMovable(op, 0);
            int b = BlockSize(op);
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                var (n, c, h, w) = Nchw(ctx, x);
                if (h % b != 0 || w % b != 0) throw ctx.Invalid($"spatial size {h}x{w} is not divisible by blocksize {b}");
                var y = DataMovement.Permute(ctx, x, [n, c, h / b, b, w / b, b], [0, 3, 5, 1, 2, 4]);
                ctx.SetOutput(0, y.Reshape([n, c * b * b, h / b, w / b]));
            });
        })
        {
            // dX = DepthToSpace(dY, blocksize, DCR): the inverse permutation (ONNX spec: SpaceToDepth is the reverse of
            // DepthToSpace in DCR mode).
            Vjp = ctx =>
            {
                var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("blocksize", ctx.Node.GetInt("blocksize", 0)) };
                if (ctx.Emit.OpsetVersion >= 11) attrs.Add(OnnxAttribute.FromString("mode", "DCR"));
                return [ctx.Emit.Op("DepthToSpace", [ctx.OutputGrad(0)!], [.. attrs])];
            },
        });
    }

    private static string?[] DepthToSpaceVjp(GradientContext ctx)
    {
        long b = ctx.Node.GetInt("blocksize", 0);
        var e = ctx.Emit;
        string s = e.Op("SpaceToDepth", [ctx.OutputGrad(0)!], OnnxAttribute.FromInt("blocksize", b));
        if (ctx.OpsetVersion < 11 || ctx.Node.GetString("mode", "DCR") == "DCR") return [s];
        // s: [N, b²C', H, W] with channel k*C' + c  →  [N, H, W, b², C']  →  [N, C', b², H, W]  →  Shape(X).
        string t = e.Reshape(e.Transpose(s, 0, 2, 3, 1), e.Int64s(0, 0, 0, b * b, -1));
        return [e.Reshape(e.Transpose(t, 0, 4, 3, 1, 2), e.Shape(ctx.Input(0)))];
    }

    /// <summary>The inverse of a permutation (negative entries count from the back, as the forward kernel accepts).</summary>
    internal static long[] InversePermutation(long[] perm)
    {
        var inverse = new long[perm.Length];
        for (int i = 0; i < perm.Length; i++) inverse[perm[i] < 0 ? perm[i] + perm.Length : perm[i]] = i;
        return inverse;
    }

    /// <summary>The permutation of Transpose: the attribute validated against the rank, or the reversed dimensions.</summary>
    internal static int[] Permutation(KernelContext ctx, long[]? perm, int rank)
    {
        if (perm is null) return [.. Enumerable.Range(0, rank).Reverse()];
        if (perm.Length != rank) throw ctx.Invalid($"perm [{string.Join(',', perm)}] does not match rank {rank}");
        var result = new int[rank];
        var seen = new bool[rank];
        for (int i = 0; i < rank; i++)
        {
            long p = perm[i] < 0 ? perm[i] + rank : perm[i];
            if (p < 0 || p >= rank || seen[p]) throw ctx.Invalid($"perm [{string.Join(',', perm)}] is not a permutation of 0..{rank - 1}");
            seen[p] = true;
            result[i] = (int)p;
        }
        return result;
    }

    private static int BlockSize(OpContext op)
    {
        long b = op.Node.GetInt("blocksize", 0);
        if (b < 1 || b > int.MaxValue) throw op.Unsupported($"blocksize {b} (must be a positive integer)");
        return (int)b;
    }

    private static (int N, int C, int H, int W) Nchw(KernelContext ctx, OnnxTensor x)
    {
        if (x.Rank != 4) throw ctx.Invalid($"expects a 4-D [N,C,H,W] input, got shape {OpArgs.Format(x.Dims)}");
        return (x.Dims[0], x.Dims[1], x.Dims[2], x.Dims[3]);
    }
}

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

    /// <summary>Transpose of <paramref name="x"/> by the validated permutation <paramref name="perm"/>; allocates nothing but the output.</summary>
    internal static OnnxTensor Transpose(KernelContext ctx, OnnxTensor x, int[] perm)
    {
        int rank = x.Rank;
        if (rank > MaxTransposeRank || x.ElementType == DataType.String) return DataMovement.Permute(ctx, x, x.Dims, perm);
        Span<int> outShape = stackalloc int[rank];
        for (int d = 0; d < rank; d++) outShape[d] = x.Dims[perm[d]];
        var y = ctx.AllocateUninitialized(x.ElementType, outShape);
        if (y.ElementCount == 0) return y;
        var action = TransposeAction.Create(x.Dims, perm);
        DataMovement.Dispatch(x, y, ref action);
        return y;
    }

    /// <summary>The collapsed transpose: output dimensions (sizes, source strides, destination strides), outermost first.</summary>
    private struct TransposeAction : DataMovement.IUnitAction
    {
        private Sizes8 _size, _src, _dst;
        private int _rank;

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
            return t;
        }

        public void Run<T>(Span<T> src, Span<T> dst)
        {
            int r = _rank;
            if (r == 0) { dst[0] = src[0]; return; }
            int last = r - 1, swap = last;
            // The output dimension that is the input's contiguous one (stride 1): innermost (row copies) or swapped (tiles).
            for (int d = 0; d < r; d++) if (_src[d] == 1) swap = d;
            long outer = 1;
            for (int d = 0; d < r; d++) if (d != last && d != swap) outer *= _size[d];
            Span<long> coord = stackalloc long[r];
            long so = 0, dOff = 0;
            ref T s0 = ref MemoryMarshal.GetReference(src);
            ref T d0 = ref MemoryMarshal.GetReference(dst);
            for (long o = 0; o < outer; o++)
            {
                if (swap == last) src.Slice((int)so, (int)_size[last]).CopyTo(dst.Slice((int)dOff, (int)_size[last]));
                else Tile(ref Unsafe.Add(ref s0, (nint)so), ref Unsafe.Add(ref d0, (nint)dOff), (int)_size[swap], (int)_dst[swap], (int)_size[last], (int)_src[last]);
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
