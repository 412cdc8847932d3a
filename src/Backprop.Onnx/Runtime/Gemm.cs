using System.Buffers;
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Runtime;

/// <summary>Which micro-kernel <see cref="Gemm"/> runs; <see cref="Auto"/> picks the widest the hardware accelerates.</summary>
internal enum GemmPath
{
    /// <summary>Vector512 when accelerated, else Vector256 when accelerated, else scalar; a plain loop for tiny problems.</summary>
    Auto,
    /// <summary>Register-blocked 12 × (2 · Vector512 width) micro-kernel.</summary>
    Vector512,
    /// <summary>Register-blocked 6 × (2 · Vector256 width) micro-kernel.</summary>
    Vector256,
    /// <summary>Portable 4 × 4 scalar micro-kernel.</summary>
    Scalar,
}

/// <summary>
/// Our packed, cache-blocked SIMD matrix multiply (the BLIS/GotoBLAS loop structure): C = alpha·op(A)·op(B) + beta·C for
/// float and double, row-major with leading dimensions and transpose flags.
/// </summary>
/// <remarks>
/// Loops, outermost first: NC columns of C (jc), KC of the shared dimension (pc; the KC×NC block of op(B) is packed
/// into NR-wide panels), MC rows (ic; the MC×KC block of op(A), scaled by alpha, is packed into MR-high panels), then
/// NR-wide (jr) and MR-high (ir) tiles computed by a register-blocked micro-kernel. Threads split C into regions, each
/// running the whole loop nest (Gemm.Blocked.cs); every element of C is computed by one thread with a fixed summation
/// order, so the result does not depend on the thread count. beta = 0 overwrites C without reading it (BLAS semantics: NaNs in C do not propagate).
/// </remarks>
internal static unsafe partial class Gemm
{
    /// <summary>Below this many multiply-adds a plain loop beats packing.</summary>
    private const long SmallProblem = 4096;

    /// <summary>
    /// Below this many multiply-adds (about 50 µs on one core) a second thread does not pay for waking it and joining:
    /// measured on 2 cores, 64×120×400 ran no faster on two threads and took twice the CPU, 128×256×512 ran 1.7× faster.
    /// The thread count never changes the result, so this only moves time.
    /// </summary>
    private const long ParallelProblem = 1L << 22;

    /// <summary>
    /// C = alpha·op(A)·op(B) + beta·C where op(A) is m×k and op(B) is k×n. A is stored row-major as m×k (k×m when
    /// <paramref name="transA"/>) with row stride <paramref name="lda"/>; likewise B as k×n (n×k) with <paramref name="ldb"/>,
    /// and C as m×n with <paramref name="ldc"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A dimension is negative, a leading dimension too small or a span too short.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float or double.</exception>
    public static void Multiply<T>(bool transA, bool transB, int m, int n, int k, T alpha, ReadOnlySpan<T> a, int lda,
        ReadOnlySpan<T> b, int ldb, T beta, Span<T> c, int ldc, int threads = 1, GemmPath path = GemmPath.Auto)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double)) throw new NotSupportedException($"GEMM of {typeof(T).Name} is not supported.");
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"Negative GEMM dimensions m={m}, n={n}, k={k}.");
        CheckOperand("A", a.Length, transA ? k : m, transA ? m : k, lda);
        CheckOperand("B", b.Length, transB ? n : k, transB ? k : n, ldb);
        CheckOperand("C", c.Length, m, n, ldc);
        if (m == 0 || n == 0) return;
        fixed (T* pc = c)
        {
            if (k == 0 || alpha == T.Zero)
            {
                ScaleC(pc, m, n, ldc, beta);
                return;
            }
            fixed (T* pa = a, pb = b)
            {
                var p = new Problem<T>(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
                if (path == GemmPath.Auto && (long)m * n * k <= SmallProblem) Naive(p);
                else Blocked(p, Resolve(path), (long)m * n * k < ParallelProblem ? 1 : Math.Max(1, threads));
            }
        }
    }

    /// <summary>The path <see cref="GemmPath.Auto"/> resolves to on this machine.</summary>
    public static GemmPath Resolve(GemmPath path) => path switch
    {
        GemmPath.Auto when Vector512.IsHardwareAccelerated => GemmPath.Vector512,
        GemmPath.Auto when Vector256.IsHardwareAccelerated => GemmPath.Vector256,
        GemmPath.Auto => GemmPath.Scalar,
        GemmPath.Vector512 when !Vector512.IsHardwareAccelerated => Resolve(GemmPath.Auto),
        GemmPath.Vector256 when !Vector256.IsHardwareAccelerated => GemmPath.Scalar,
        _ => path,
    };

    private static void CheckOperand(string name, int length, int rows, int cols, int ld)
    {
        if (rows == 0 || cols == 0) return;
        if (ld < cols) throw new ArgumentException($"GEMM leading dimension of {name} ({ld}) is below its row length {cols}.");
        if ((long)(rows - 1) * ld + cols > length) throw new ArgumentException($"GEMM operand {name} needs {(long)(rows - 1) * ld + cols} elements, has {length}.");
    }

    /// <summary>The operands of one call, as raw pointers (pinned by the caller).</summary>
    private readonly struct Problem<T>(bool transA, bool transB, int m, int n, int k, T alpha, T* a, int lda, T* b, int ldb, T beta, T* c, int ldc)
        where T : unmanaged
    {
        public readonly bool TransA = transA, TransB = transB;
        public readonly int M = m, N = n, K = k, Lda = lda, Ldb = ldb, Ldc = ldc;
        public readonly T Alpha = alpha, Beta = beta;
        public readonly T* A = a, B = b, C = c;
    }

    /// <summary>How C is updated with a computed tile: overwrite, accumulate, or beta·C + tile.</summary>
    private enum Update { Store, Add, ScaleAdd }

    private static Update FirstUpdate<T>(T beta) where T : IFloatingPointIeee754<T> =>
        beta == T.Zero ? Update.Store : beta == T.One ? Update.Add : Update.ScaleAdd;

    private static void ScaleC<T>(T* c, int m, int n, int ldc, T beta) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
        {
            var row = new Span<T>(c + (long)i * ldc, n);
            if (beta == T.Zero) row.Clear();
            else if (beta != T.One) System.Numerics.Tensors.TensorPrimitives.Multiply(row, beta, row);
        }
    }

    /// <summary>The reference loop for small problems: C = beta·C, then C[i,:] += (alpha·A[i,p])·B[p,:].</summary>
    private static void Naive<T>(in Problem<T> p) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ScaleC(p.C, p.M, p.N, p.Ldc, p.Beta);
        for (int i = 0; i < p.M; i++)
        {
            T* crow = p.C + (long)i * p.Ldc;
            for (int q = 0; q < p.K; q++)
            {
                T av = p.Alpha * (p.TransA ? p.A[(long)q * p.Lda + i] : p.A[(long)i * p.Lda + q]);
                if (p.TransB)
                {
                    T* bcol = p.B + q;
                    for (int j = 0; j < p.N; j++) crow[j] += av * bcol[(long)j * p.Ldb];
                }
                else
                {
                    T* brow = p.B + (long)q * p.Ldb;
                    for (int j = 0; j < p.N; j++) crow[j] += av * brow[j];
                }
            }
        }
    }

    /// <summary>Register and cache block sizes of one micro-kernel and element type.</summary>
    private readonly record struct Blocking(int MR, int NR, int MC, int KC, int NC);

    private static Blocking BlockingFor<T>(GemmPath path) where T : unmanaged
    {
        int w512 = Vector512<T>.Count, w256 = Vector256<T>.Count;
        return path switch
        {
            GemmPath.Vector512 => new(12, 2 * w512, 144, 256, 4096),
            GemmPath.Vector256 => new(6, 2 * w256, 120, 256, 4096),
            _ => new(4, 4, 128, 256, 2048),
        };
    }

    /// <summary>One full MR × NR tile; <paramref name="ldb"/> is the B panel's row stride (NR except on the Vector512 path).</summary>
    private static void MicroKernel<T>(GemmPath path, int kc, T* a, T* b, long ldb, T* c, int ldc, Update update, T beta)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (path)
        {
            case GemmPath.Vector512: Kernel512(kc, a, 12, b, ldb, c, ldc, update, beta); break;
            case GemmPath.Vector256: Kernel256(kc, a, b, c, ldc, update, beta); break;
            default: KernelScalar(kc, a, b, c, ldc, update, beta); break;
        }
    }

    private static void ShortKernel<T>(int rows, int kc, T* a, T* b, long ldb, T* c, int ldc, Update update, T beta)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (rows == 4) Kernel512Rows4(kc, a, 12, b, ldb, c, ldc, update, beta);
        else Kernel512Rows8(kc, a, 12, b, ldb, c, ldc, update, beta);
    }

    /// <summary>
    /// Adds the valid mr×nr part of a computed tile into C: 8-wide vector moves, then a scalar tail. beta·C + tile is a
    /// multiply then an add in both, never fused, so the bits do not depend on the column.
    /// </summary>
    private static void ApplyTile<T>(T* tile, int ldt, T* c, int ldc, int mr, int nr, Update update, T beta)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector256.IsHardwareAccelerated ? Vector256<T>.Count : int.MaxValue;
        var vb = Vector256.Create(beta);
        for (int i = 0; i < mr; i++)
        {
            T* src = tile + i * ldt;
            T* dst = c + (long)i * ldc;
            int j = 0;
            switch (update)
            {
                case Update.Store:
                    for (; j + w <= nr; j += w) Vector256.Store(Vector256.Load(src + j), dst + j);
                    for (; j < nr; j++) dst[j] = src[j];
                    break;
                case Update.Add:
                    for (; j + w <= nr; j += w) Vector256.Store(Vector256.Load(dst + j) + Vector256.Load(src + j), dst + j);
                    for (; j < nr; j++) dst[j] += src[j];
                    break;
                default:
                    for (; j + w <= nr; j += w) Vector256.Store(vb * Vector256.Load(dst + j) + Vector256.Load(src + j), dst + j);
                    for (; j < nr; j++) dst[j] = beta * dst[j] + src[j];
                    break;
            }
        }
    }
}
