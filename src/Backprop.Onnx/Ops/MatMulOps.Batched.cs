using System.Buffers;
using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>Batched matrix products of MatMul and MatMulGrad under numpy.matmul broadcasting, without per-call allocation.</summary>
internal static partial class MatMulOps
{
    /// <summary>
    /// The shapes of numpy.matmul(A, B) (ONNX spec "MatMul"): a 1-D A is a row (1×k), a 1-D B a column (k×1); the batch
    /// axes (all but the last two) broadcast. <see cref="Batches"/> counts the broadcast batches, <see cref="ACount"/> and
    /// <see cref="BCount"/> the operands' own; batch p reads A's matrix <c>ABatch(p)</c> and B's <c>BBatch(p)</c>.
    /// Holds the operands' dimension arrays, so resolving it allocates nothing.
    /// </summary>
    internal readonly struct MatMulShape
    {
        private readonly int[] _aDims, _bDims;
        private readonly int _aBatchRank, _bBatchRank;

        private MatMulShape(int[] aDims, int[] bDims)
        {
            _aDims = aDims;
            _bDims = bDims;
            _aBatchRank = Math.Max(0, aDims.Length - 2);
            _bBatchRank = Math.Max(0, bDims.Length - 2);
            M = aDims.Length == 1 ? 1 : aDims[^2];
            K = aDims[^1];
            N = bDims.Length == 1 ? 1 : bDims[^1];
            BatchRank = Math.Max(_aBatchRank, _bBatchRank);
            long batches = 1, ac = 1, bc = 1;
            for (int d = 0; d < BatchRank; d++) batches *= BatchDim(d);
            for (int d = 0; d < _aBatchRank; d++) ac *= aDims[d];
            for (int d = 0; d < _bBatchRank; d++) bc *= bDims[d];
            Batches = checked((int)batches);
            ACount = checked((int)ac);
            BCount = checked((int)bc);
        }

        public int M { get; }
        public int N { get; }
        public int K { get; }
        public int BatchRank { get; }
        public int Batches { get; }
        public int ACount { get; }
        public int BCount { get; }
        public bool AVector => _aDims.Length == 1;
        public bool BVector => _bDims.Length == 1;

        /// <summary>The shapes of A · B, checked: ranks ≥ 1, inner dimensions equal, batch axes broadcastable.</summary>
        public static MatMulShape Resolve(KernelContext ctx, OnnxTensor a, OnnxTensor b) => Resolve(ctx, a.Dims, b.Dims);

        /// <summary>As <see cref="Resolve(KernelContext, OnnxTensor, OnnxTensor)"/>, from the operands' dimensions (B's as the product reads it).</summary>
        public static MatMulShape Resolve(KernelContext ctx, int[] aDims, int[] bDims)
        {
            if (aDims.Length == 0 || bDims.Length == 0) throw ctx.Invalid("MatMul operands must have rank 1 or more");
            int kb = bDims.Length == 1 ? bDims[0] : bDims[^2];
            if (aDims[^1] != kb) throw ctx.Invalid($"MatMul inner dimensions differ: A [{string.Join(',', aDims)}], B [{string.Join(',', bDims)}]");
            var s = new MatMulShape(aDims, bDims);
            for (int d = 0; d < s.BatchRank; d++)
            {
                int x = s.OperandDim(s._aDims, s._aBatchRank, d), y = s.OperandDim(s._bDims, s._bBatchRank, d);
                if (x != y && x != 1 && y != 1) throw ctx.Invalid($"MatMul batch dimensions do not broadcast: A [{string.Join(',', aDims)}], B [{string.Join(',', bDims)}]");
            }
            return s;
        }

        /// <summary>Broadcast batch axis <paramref name="d"/> (0 ≤ d &lt; <see cref="BatchRank"/>).</summary>
        public int BatchDim(int d)
        {
            int x = OperandDim(_aDims, _aBatchRank, d), y = OperandDim(_bDims, _bBatchRank, d);
            return x == 1 ? y : x;
        }

        /// <summary>The operand's size along broadcast batch axis d (1 where it has fewer axes).</summary>
        private int OperandDim(int[] dims, int batchRank, int d)
        {
            int e = d - (BatchRank - batchRank);
            return e < 0 ? 1 : dims[e];
        }

        /// <summary>The rank of the product: the batch axes, then m unless A is 1-D, then n unless B is 1-D.</summary>
        public int OutputRank => BatchRank + (AVector ? 0 : 1) + (BVector ? 0 : 1);

        /// <summary>Writes the product's shape into <paramref name="shape"/> (length <see cref="OutputRank"/>).</summary>
        public void OutputShape(Span<int> shape)
        {
            for (int d = 0; d < BatchRank; d++) shape[d] = BatchDim(d);
            int r = BatchRank;
            if (!AVector) shape[r++] = M;
            if (!BVector) shape[r] = N;
        }

        /// <summary>The matrices of A and B that broadcast batch <paramref name="p"/> (row-major over the batch axes) reads.</summary>
        public (int A, int B) Operands(int p)
        {
            int pa = 0, pb = 0, sa = 1, sb = 1;
            for (int d = BatchRank - 1; d >= 0; d--)
            {
                int size = BatchDim(d), coord = p % size;
                p /= size;
                int x = OperandDim(_aDims, _aBatchRank, d), y = OperandDim(_bDims, _bBatchRank, d);
                if (x != 1) pa += coord * sa;
                if (y != 1) pb += coord * sb;
                sa *= x;
                sb *= y;
            }
            return (pa, pb);
        }
    }

    /// <summary>
    /// One GEMM per broadcast batch, for the forward product (Y[p] = A[pa]·B[pb]) or a gradient (dA[pa] += dY[p]·B[pb]ᵀ,
    /// dB[pb] += A[pa]ᵀ·dY[p]). Batches run in parallel (each GEMM on one thread) when each writes its own matrix and is
    /// too small to parallelize by itself; a broadcast operand's gradient accumulates in batch order (β = 1, from the
    /// zeros the caller provides). A pooled job per thread holds the arguments, so a call allocates nothing.
    /// Products whose op(B) fits L1 (attention's per-head 64×64×32) take <see cref="Gemm.MultiplySmall{T}"/>, which skips
    /// the packed path's buffers and packing, in a few contiguous runs of batches per thread.
    /// </summary>
    internal sealed unsafe class BatchedGemm<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public enum Target { Y, A, B }

        /// <summary>Below this many multiply-adds per batch, batches run in parallel rather than inside one GEMM.</summary>
        private const long SmallGemm = 1L << 22;

        [ThreadStatic] private static BatchedGemm<T>? t_idle;

        private readonly Action<int> _one;
        private MatMulShape _s;
        private Target _target;
        private T[]? _a, _b, _dy, _c;
        private T _beta;
        private int _gemmThreads;

        private BatchedGemm() => _one = One;

        public static void Run(MatMulShape s, Target target, T[]? dy, T[]? a, T[]? b, T[] c, int threads)
        {
            var job = t_idle ?? new BatchedGemm<T>();
            t_idle = null;
            bool distinct = target switch { Target.A => s.ACount == s.Batches, Target.B => s.BCount == s.Batches, _ => true };
            bool parallel = distinct && threads > 1 && s.Batches >= 2 && (long)s.M * s.N * s.K < SmallGemm;
            (job._s, job._target, job._a, job._b, job._dy, job._c) = (s, target, a, b, dy, c);
            job._beta = distinct ? T.Zero : T.One;
            job._gemmThreads = parallel ? 1 : threads;
            var (m, n, k) = job.Dims;
            try
            {
                if (Gemm.SmallFits<T>(m, n, k) && !ForceBlocked)
                {
                    // Small products: a few contiguous runs of batches per thread (claimed dynamically, so a core
                    // that another process holds takes fewer), each through the unpacked small-GEMM path.
                    int chunks = parallel ? Math.Min(s.Batches, 4 * threads) : 1;
                    ChunkRunner.ForRanges(s.Batches, chunks, 0, parallel ? threads : 1, job, static (j, start, end) => j.RunSmall(start, end));
                }
                else if (parallel) ChunkRunner.For(s.Batches, threads, job._one);
                else for (int p = 0; p < s.Batches; p++) job.One(p);
            }
            finally
            {
                job._a = job._b = job._dy = job._c = null;
                t_idle = job;
            }
        }

        /// <summary>Tests only: run every batch through the packed <see cref="Gemm.Multiply{T}"/> (the reference for the small path).</summary>
        internal static bool ForceBlocked { get; set; }

        /// <summary>The m × n × k of one batch's GEMM for the current target.</summary>
        private (int M, int N, int K) Dims => _target switch
        {
            Target.Y => (_s.M, _s.N, _s.K),
            Target.A => (_s.M, _s.K, _s.N),
            _ => (_s.K, _s.N, _s.M),
        };

        /// <summary>Batches [start, end) through <see cref="Gemm.MultiplySmall{T}"/>, with one scratch buffer for the run.</summary>
        private void RunSmall(int start, int end)
        {
            int m = _s.M, n = _s.N, k = _s.K;
            int mk = m * k, kn = k * n, mn = m * n;
            var (gn, gk) = _target switch { Target.Y => (n, k), Target.A => (k, n), _ => (n, m) };
            T[] scratch = ArrayPool<T>.Shared.Rent(Gemm.SmallScratch<T>(gn, gk));
            try
            {
                fixed (T* pa = _a, pb = _b, pdy = _dy, pc = _c, ps = scratch)
                {
                    for (int p = start; p < end; p++)
                    {
                        var (ia, ib) = _s.Operands(p);
                        switch (_target)
                        {
                            case Target.Y: Gemm.MultiplySmall(false, false, m, n, k, pa + (long)ia * mk, k, pb + (long)ib * kn, n, _beta, pc + (long)p * mn, n, ps); break;
                            case Target.A: Gemm.MultiplySmall(false, true, m, k, n, pdy + (long)p * mn, n, pb + (long)ib * kn, n, _beta, pc + (long)ia * mk, k, ps); break;
                            default: Gemm.MultiplySmall(true, false, k, n, m, pa + (long)ia * mk, k, pdy + (long)p * mn, n, _beta, pc + (long)ib * kn, n, ps); break;
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(scratch);
            }
        }

        private void One(int p)
        {
            int m = _s.M, n = _s.N, k = _s.K;
            var (pa, pb) = _s.Operands(p);
            int mk = m * k, kn = k * n, mn = m * n;
            switch (_target)
            {
                case Target.Y:
                    Gemm.Multiply(false, false, m, n, k, T.One, _a!.AsSpan(pa * mk, mk), k, _b!.AsSpan(pb * kn, kn), n, T.Zero, _c!.AsSpan(p * mn, mn), n, _gemmThreads);
                    break;
                case Target.A:
                    Gemm.Multiply(false, true, m, k, n, T.One, _dy!.AsSpan(p * mn, mn), n, _b!.AsSpan(pb * kn, kn), n, _beta, _c!.AsSpan(pa * mk, mk), k, _gemmThreads);
                    break;
                default:
                    Gemm.Multiply(true, false, k, n, m, T.One, _a!.AsSpan(pa * mk, mk), k, _dy!.AsSpan(p * mn, mn), n, _beta, _c!.AsSpan(pb * kn, kn), n, _gemmThreads);
                    break;
            }
        }
    }
}
