using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// The register-blocked micro-kernels: each computes one MR×NR tile of C from an MR-high panel of packed A and an
/// NR-wide panel of B (kc steps of a rank-1 update held in registers; the Vector512 kernels take the panel's row stride,
/// NR when packed, the leading dimension when they read a plain B in place) and the A panel's step per k (MR when
/// packed, the leading dimension when the small-GEMM path reads a transposed A in place), then writes the tile
/// to C as the <see cref="Update"/> says. (The 12-row and 6-row kernels are written out so the JIT keeps every
/// accumulator in a register: 24 of the 32 zmm registers, 12 of the 16 ymm registers.)
/// </summary>
internal static unsafe partial class Gemm
{
    /// <summary>12 × (2 · Vector512&lt;T&gt;.Count) micro-kernel: 24 accumulators, two B loads and one A broadcast per row step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512<T>(int kc, T* a, long aStep, T* b, long ldb, T* c, int ldc, Update update, T beta) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector512<T>.Count;
        Vector512<T> c00 = Vector512<T>.Zero, c01 = Vector512<T>.Zero, c10 = Vector512<T>.Zero, c11 = Vector512<T>.Zero, c20 = Vector512<T>.Zero, c21 = Vector512<T>.Zero;
        Vector512<T> c30 = Vector512<T>.Zero, c31 = Vector512<T>.Zero, c40 = Vector512<T>.Zero, c41 = Vector512<T>.Zero, c50 = Vector512<T>.Zero, c51 = Vector512<T>.Zero;
        Vector512<T> c60 = Vector512<T>.Zero, c61 = Vector512<T>.Zero, c70 = Vector512<T>.Zero, c71 = Vector512<T>.Zero, c80 = Vector512<T>.Zero, c81 = Vector512<T>.Zero;
        Vector512<T> c90 = Vector512<T>.Zero, c91 = Vector512<T>.Zero, c100 = Vector512<T>.Zero, c101 = Vector512<T>.Zero, c110 = Vector512<T>.Zero, c111 = Vector512<T>.Zero;
        for (int q = 0; q < kc; q++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + w);
            var a0 = Vector512.Create(a[0]); c00 = Fma(a0, b0, c00); c01 = Fma(a0, b1, c01);
            var a1 = Vector512.Create(a[1]); c10 = Fma(a1, b0, c10); c11 = Fma(a1, b1, c11);
            var a2 = Vector512.Create(a[2]); c20 = Fma(a2, b0, c20); c21 = Fma(a2, b1, c21);
            var a3 = Vector512.Create(a[3]); c30 = Fma(a3, b0, c30); c31 = Fma(a3, b1, c31);
            var a4 = Vector512.Create(a[4]); c40 = Fma(a4, b0, c40); c41 = Fma(a4, b1, c41);
            var a5 = Vector512.Create(a[5]); c50 = Fma(a5, b0, c50); c51 = Fma(a5, b1, c51);
            var a6 = Vector512.Create(a[6]); c60 = Fma(a6, b0, c60); c61 = Fma(a6, b1, c61);
            var a7 = Vector512.Create(a[7]); c70 = Fma(a7, b0, c70); c71 = Fma(a7, b1, c71);
            var a8 = Vector512.Create(a[8]); c80 = Fma(a8, b0, c80); c81 = Fma(a8, b1, c81);
            var a9 = Vector512.Create(a[9]); c90 = Fma(a9, b0, c90); c91 = Fma(a9, b1, c91);
            var a10 = Vector512.Create(a[10]); c100 = Fma(a10, b0, c100); c101 = Fma(a10, b1, c101);
            var a11 = Vector512.Create(a[11]); c110 = Fma(a11, b0, c110); c111 = Fma(a11, b1, c111);
            a += aStep;
            b += ldb;
        }
        var vb = Vector512.Create(beta);
        Put(c + 0 * (long)ldc, c00, c01, w, update, vb);
        Put(c + 1 * (long)ldc, c10, c11, w, update, vb);
        Put(c + 2 * (long)ldc, c20, c21, w, update, vb);
        Put(c + 3 * (long)ldc, c30, c31, w, update, vb);
        Put(c + 4 * (long)ldc, c40, c41, w, update, vb);
        Put(c + 5 * (long)ldc, c50, c51, w, update, vb);
        Put(c + 6 * (long)ldc, c60, c61, w, update, vb);
        Put(c + 7 * (long)ldc, c70, c71, w, update, vb);
        Put(c + 8 * (long)ldc, c80, c81, w, update, vb);
        Put(c + 9 * (long)ldc, c90, c91, w, update, vb);
        Put(c + 10 * (long)ldc, c100, c101, w, update, vb);
        Put(c + 11 * (long)ldc, c110, c111, w, update, vb);
    }

    /// <summary>
    /// The 12-row kernel's short siblings for the last panel of a block whose height is not a multiple of 12 (a
    /// 16-channel convolution is 12 + 4 rows): 8 or 4 × (2 · Vector512&lt;T&gt;.Count) from the same 12-row packed A
    /// panel, so the padding rows are not computed. Every element is summed in the same order as by the 12-row kernel.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512Rows8<T>(int kc, T* a, long aStep, T* b, long ldb, T* c, int ldc, Update update, T beta) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector512<T>.Count;
        Vector512<T> c00 = Vector512<T>.Zero, c01 = Vector512<T>.Zero, c10 = Vector512<T>.Zero, c11 = Vector512<T>.Zero, c20 = Vector512<T>.Zero, c21 = Vector512<T>.Zero;
        Vector512<T> c30 = Vector512<T>.Zero, c31 = Vector512<T>.Zero, c40 = Vector512<T>.Zero, c41 = Vector512<T>.Zero, c50 = Vector512<T>.Zero, c51 = Vector512<T>.Zero;
        Vector512<T> c60 = Vector512<T>.Zero, c61 = Vector512<T>.Zero, c70 = Vector512<T>.Zero, c71 = Vector512<T>.Zero;
        for (int q = 0; q < kc; q++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + w);
            var a0 = Vector512.Create(a[0]); c00 = Fma(a0, b0, c00); c01 = Fma(a0, b1, c01);
            var a1 = Vector512.Create(a[1]); c10 = Fma(a1, b0, c10); c11 = Fma(a1, b1, c11);
            var a2 = Vector512.Create(a[2]); c20 = Fma(a2, b0, c20); c21 = Fma(a2, b1, c21);
            var a3 = Vector512.Create(a[3]); c30 = Fma(a3, b0, c30); c31 = Fma(a3, b1, c31);
            var a4 = Vector512.Create(a[4]); c40 = Fma(a4, b0, c40); c41 = Fma(a4, b1, c41);
            var a5 = Vector512.Create(a[5]); c50 = Fma(a5, b0, c50); c51 = Fma(a5, b1, c51);
            var a6 = Vector512.Create(a[6]); c60 = Fma(a6, b0, c60); c61 = Fma(a6, b1, c61);
            var a7 = Vector512.Create(a[7]); c70 = Fma(a7, b0, c70); c71 = Fma(a7, b1, c71);
            a += aStep;
            b += ldb;
        }
        var vb = Vector512.Create(beta);
        Put(c + 0 * (long)ldc, c00, c01, w, update, vb);
        Put(c + 1 * (long)ldc, c10, c11, w, update, vb);
        Put(c + 2 * (long)ldc, c20, c21, w, update, vb);
        Put(c + 3 * (long)ldc, c30, c31, w, update, vb);
        Put(c + 4 * (long)ldc, c40, c41, w, update, vb);
        Put(c + 5 * (long)ldc, c50, c51, w, update, vb);
        Put(c + 6 * (long)ldc, c60, c61, w, update, vb);
        Put(c + 7 * (long)ldc, c70, c71, w, update, vb);
    }

    /// <summary>4 × (2 · Vector512&lt;T&gt;.Count) rows of the 12-row packed A panel (see <see cref="Kernel512Rows8{T}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512Rows4<T>(int kc, T* a, long aStep, T* b, long ldb, T* c, int ldc, Update update, T beta) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector512<T>.Count;
        Vector512<T> c00 = Vector512<T>.Zero, c01 = Vector512<T>.Zero, c10 = Vector512<T>.Zero, c11 = Vector512<T>.Zero;
        Vector512<T> c20 = Vector512<T>.Zero, c21 = Vector512<T>.Zero, c30 = Vector512<T>.Zero, c31 = Vector512<T>.Zero;
        for (int q = 0; q < kc; q++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + w);
            var a0 = Vector512.Create(a[0]); c00 = Fma(a0, b0, c00); c01 = Fma(a0, b1, c01);
            var a1 = Vector512.Create(a[1]); c10 = Fma(a1, b0, c10); c11 = Fma(a1, b1, c11);
            var a2 = Vector512.Create(a[2]); c20 = Fma(a2, b0, c20); c21 = Fma(a2, b1, c21);
            var a3 = Vector512.Create(a[3]); c30 = Fma(a3, b0, c30); c31 = Fma(a3, b1, c31);
            a += aStep;
            b += ldb;
        }
        var vb = Vector512.Create(beta);
        Put(c + 0 * (long)ldc, c00, c01, w, update, vb);
        Put(c + 1 * (long)ldc, c10, c11, w, update, vb);
        Put(c + 2 * (long)ldc, c20, c21, w, update, vb);
        Put(c + 3 * (long)ldc, c30, c31, w, update, vb);
    }

    /// <summary>
    /// 12 × Vector512&lt;T&gt;.Count: the left half of the 12-row kernel on the same packed panels, for a last column panel
    /// of at most one vector (n = 10 of a classifier, 784 = 24 · 32 + 16), half the multiply-adds of the full tile.
    /// Every element is summed in the same order as by <see cref="Kernel512{T}"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512Narrow<T>(int kc, T* a, T* b, long ldb, T* c, int ldc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector512<T>.Count;
        Vector512<T> c0 = Vector512<T>.Zero, c1 = Vector512<T>.Zero, c2 = Vector512<T>.Zero, c3 = Vector512<T>.Zero, c4 = Vector512<T>.Zero, c5 = Vector512<T>.Zero;
        Vector512<T> c6 = Vector512<T>.Zero, c7 = Vector512<T>.Zero, c8 = Vector512<T>.Zero, c9 = Vector512<T>.Zero, c10 = Vector512<T>.Zero, c11 = Vector512<T>.Zero;
        for (int q = 0; q < kc; q++)
        {
            var b0 = Vector512.Load(b);
            c0 = Fma(Vector512.Create(a[0]), b0, c0);
            c1 = Fma(Vector512.Create(a[1]), b0, c1);
            c2 = Fma(Vector512.Create(a[2]), b0, c2);
            c3 = Fma(Vector512.Create(a[3]), b0, c3);
            c4 = Fma(Vector512.Create(a[4]), b0, c4);
            c5 = Fma(Vector512.Create(a[5]), b0, c5);
            c6 = Fma(Vector512.Create(a[6]), b0, c6);
            c7 = Fma(Vector512.Create(a[7]), b0, c7);
            c8 = Fma(Vector512.Create(a[8]), b0, c8);
            c9 = Fma(Vector512.Create(a[9]), b0, c9);
            c10 = Fma(Vector512.Create(a[10]), b0, c10);
            c11 = Fma(Vector512.Create(a[11]), b0, c11);
            a += 12;
            b += ldb;
        }
        Vector512.Store(c0, c); Vector512.Store(c1, c + ldc); Vector512.Store(c2, c + 2 * ldc); Vector512.Store(c3, c + 3 * ldc);
        Vector512.Store(c4, c + 4 * ldc); Vector512.Store(c5, c + 5 * ldc); Vector512.Store(c6, c + 6 * ldc); Vector512.Store(c7, c + 7 * ldc);
        Vector512.Store(c8, c + 8 * ldc); Vector512.Store(c9, c + 9 * ldc); Vector512.Store(c10, c + 10 * ldc); Vector512.Store(c11, c + 11 * ldc);
    }

    /// <summary>6 × (2 · Vector256&lt;T&gt;.Count) micro-kernel: 12 accumulators, two B loads and one A broadcast per row step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel256<T>(int kc, T* a, T* b, T* c, int ldc, Update update, T beta) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector256<T>.Count;
        Vector256<T> c00 = Vector256<T>.Zero, c01 = Vector256<T>.Zero, c10 = Vector256<T>.Zero, c11 = Vector256<T>.Zero, c20 = Vector256<T>.Zero, c21 = Vector256<T>.Zero;
        Vector256<T> c30 = Vector256<T>.Zero, c31 = Vector256<T>.Zero, c40 = Vector256<T>.Zero, c41 = Vector256<T>.Zero, c50 = Vector256<T>.Zero, c51 = Vector256<T>.Zero;
        for (int q = 0; q < kc; q++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + w);
            var a0 = Vector256.Create(a[0]); c00 = Fma(a0, b0, c00); c01 = Fma(a0, b1, c01);
            var a1 = Vector256.Create(a[1]); c10 = Fma(a1, b0, c10); c11 = Fma(a1, b1, c11);
            var a2 = Vector256.Create(a[2]); c20 = Fma(a2, b0, c20); c21 = Fma(a2, b1, c21);
            var a3 = Vector256.Create(a[3]); c30 = Fma(a3, b0, c30); c31 = Fma(a3, b1, c31);
            var a4 = Vector256.Create(a[4]); c40 = Fma(a4, b0, c40); c41 = Fma(a4, b1, c41);
            var a5 = Vector256.Create(a[5]); c50 = Fma(a5, b0, c50); c51 = Fma(a5, b1, c51);
            a += 6;
            b += 2 * w;
        }
        var vb = Vector256.Create(beta);
        Put(c + 0 * (long)ldc, c00, c01, w, update, vb);
        Put(c + 1 * (long)ldc, c10, c11, w, update, vb);
        Put(c + 2 * (long)ldc, c20, c21, w, update, vb);
        Put(c + 3 * (long)ldc, c30, c31, w, update, vb);
        Put(c + 4 * (long)ldc, c40, c41, w, update, vb);
        Put(c + 5 * (long)ldc, c50, c51, w, update, vb);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put<T>(T* c, Vector512<T> v0, Vector512<T> v1, int w, Update update, Vector512<T> beta) where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (update)
        {
            case Update.Store: Vector512.Store(v0, c); Vector512.Store(v1, c + w); break;
            case Update.Add: Vector512.Store(Vector512.Load(c) + v0, c); Vector512.Store(Vector512.Load(c + w) + v1, c + w); break;
            default: Vector512.Store(Fma(Vector512.Load(c), beta, v0), c); Vector512.Store(Fma(Vector512.Load(c + w), beta, v1), c + w); break;
        }
    }

    /// <summary>a·b + c, fused where the hardware has FMA.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<T> Fma<T>(Vector512<T> a, Vector512<T> b, Vector512<T> c) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Vector512.MultiplyAddEstimate(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double)) return Vector512.MultiplyAddEstimate(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
        throw new NotSupportedException();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put<T>(T* c, Vector256<T> v0, Vector256<T> v1, int w, Update update, Vector256<T> beta) where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (update)
        {
            case Update.Store: Vector256.Store(v0, c); Vector256.Store(v1, c + w); break;
            case Update.Add: Vector256.Store(Vector256.Load(c) + v0, c); Vector256.Store(Vector256.Load(c + w) + v1, c + w); break;
            default: Vector256.Store(Fma(Vector256.Load(c), beta, v0), c); Vector256.Store(Fma(Vector256.Load(c + w), beta, v1), c + w); break;
        }
    }

    /// <summary>a·b + c, fused where the hardware has FMA.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> Fma<T>(Vector256<T> a, Vector256<T> b, Vector256<T> c) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Vector256.MultiplyAddEstimate(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double)) return Vector256.MultiplyAddEstimate(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
        throw new NotSupportedException();
    }

    /// <summary>Portable 4 × 4 micro-kernel for hardware without SIMD acceleration.</summary>
    private static void KernelScalar<T>(int kc, T* a, T* b, T* c, int ldc, Update update, T beta) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T* acc = stackalloc T[16];
        for (int i = 0; i < 16; i++) acc[i] = T.Zero;
        for (int q = 0; q < kc; q++)
        {
            for (int i = 0; i < 4; i++)
            {
                T ai = a[i];
                acc[i * 4] += ai * b[0];
                acc[i * 4 + 1] += ai * b[1];
                acc[i * 4 + 2] += ai * b[2];
                acc[i * 4 + 3] += ai * b[3];
            }
            a += 4;
            b += 4;
        }
        ApplyTile(acc, 4, c, ldc, 4, 4, update, beta);
    }
}
