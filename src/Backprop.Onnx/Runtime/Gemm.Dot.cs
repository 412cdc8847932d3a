using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// C += A·Bᵀ as dot products, for a small C over a long shared dimension (a convolution's weight gradient: dY of one
/// image, out-channels × positions, times its im2col matrix, channels·kernel × positions). Both operands are read
/// along their rows as they are stored, so nothing is packed: the packed kernel would transpose all of B to feed a
/// C of a few rows.
/// </summary>
internal static partial class Gemm
{
    /// <summary>
    /// C[i, j] += Σ_q A[i·lda + q]·B[j·ldb + q] for i &lt; m, j &lt; n, q &lt; k. Each element is summed in vector lanes
    /// over q, the lanes added in a fixed order, then the tail of q, so the result depends only on the operands.
    /// </summary>
    /// <exception cref="ArgumentException">A span is too short for its dimensions.</exception>
    public static void MultiplyAddTransposed<T>(int m, int n, int k, ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb, Span<T> c, int ldc)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckOperand("A", a.Length, m, k, lda);
        CheckOperand("B", b.Length, n, k, ldb);
        CheckOperand("C", c.Length, m, n, ldc);
        if (m == 0 || n == 0 || k == 0) return;
        ref T ar = ref MemoryMarshal.GetReference(a);
        ref T br = ref MemoryMarshal.GetReference(b);
        int m4 = m - m % 4, n4 = n - n % 4;
        for (int i = 0; i < m4; i += 4)
            for (int j = 0; j < n4; j += 4)
                DotTile4x4(k, ref Unsafe.Add(ref ar, (nint)i * lda), lda, ref Unsafe.Add(ref br, (nint)j * ldb), ldb, c.Slice(i * ldc + j), ldc);
        // Edge rows against four columns at a time, edge columns against four rows at a time (a·b = b·a, so the 1 × 4
        // tile serves both with the operands swapped), then the corner one dot product each. Every element is summed
        // exactly as by Dot, whichever tile computes it.
        for (int i = m4; i < m; i++)
            for (int j = 0; j < n4; j += 4)
                DotTile1x4(k, ref Unsafe.Add(ref ar, (nint)i * lda), ref Unsafe.Add(ref br, (nint)j * ldb), ldb, c.Slice(i * ldc + j), 1);
        for (int j = n4; j < n; j++)
            for (int i = 0; i < m4; i += 4)
                DotTile1x4(k, ref Unsafe.Add(ref br, (nint)j * ldb), ref Unsafe.Add(ref ar, (nint)i * lda), lda, c.Slice(i * ldc + j), ldc);
        for (int i = m4; i < m; i++)
            for (int j = n4; j < n; j++)
                c[i * ldc + j] += Dot(k, ref Unsafe.Add(ref ar, (nint)i * lda), ref Unsafe.Add(ref br, (nint)j * ldb));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotTile4x4<T>(int k, ref T a, int lda, ref T b, int ldb, Span<T> c, int ldc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector256<T>.Count, q = 0;
        Vector256<T> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
        Vector256<T> c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default;
        ref T a1 = ref Unsafe.Add(ref a, lda), a2 = ref Unsafe.Add(ref a, 2 * lda), a3 = ref Unsafe.Add(ref a, 3 * lda);
        ref T b1 = ref Unsafe.Add(ref b, ldb), b2 = ref Unsafe.Add(ref b, 2 * ldb), b3 = ref Unsafe.Add(ref b, 3 * ldb);
        if (Vector256.IsHardwareAccelerated)
        {
            for (; q + w <= k; q += w)
            {
                var y0 = Vector256.LoadUnsafe(ref b, (nuint)q);
                var y1 = Vector256.LoadUnsafe(ref b1, (nuint)q);
                var y2 = Vector256.LoadUnsafe(ref b2, (nuint)q);
                var y3 = Vector256.LoadUnsafe(ref b3, (nuint)q);
                var x = Vector256.LoadUnsafe(ref a, (nuint)q);
                c00 = Fma(x, y0, c00); c01 = Fma(x, y1, c01); c02 = Fma(x, y2, c02); c03 = Fma(x, y3, c03);
                x = Vector256.LoadUnsafe(ref a1, (nuint)q);
                c10 = Fma(x, y0, c10); c11 = Fma(x, y1, c11); c12 = Fma(x, y2, c12); c13 = Fma(x, y3, c13);
                x = Vector256.LoadUnsafe(ref a2, (nuint)q);
                c20 = Fma(x, y0, c20); c21 = Fma(x, y1, c21); c22 = Fma(x, y2, c22); c23 = Fma(x, y3, c23);
                x = Vector256.LoadUnsafe(ref a3, (nuint)q);
                c30 = Fma(x, y0, c30); c31 = Fma(x, y1, c31); c32 = Fma(x, y2, c32); c33 = Fma(x, y3, c33);
            }
        }
        Finish(c, 0 * ldc, k, q, ref a, ref b, ref b1, ref b2, ref b3, c00, c01, c02, c03);
        Finish(c, 1 * ldc, k, q, ref a1, ref b, ref b1, ref b2, ref b3, c10, c11, c12, c13);
        Finish(c, 2 * ldc, k, q, ref a2, ref b, ref b1, ref b2, ref b3, c20, c21, c22, c23);
        Finish(c, 3 * ldc, k, q, ref a3, ref b, ref b1, ref b2, ref b3, c30, c31, c32, c33);
    }

    /// <summary>
    /// c[t·ldc] += Σ_q x[q]·y_t[q] for the four rows y_t = y + t·ldy: one row against four, five loads per four
    /// multiply-adds instead of two per one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotTile1x4<T>(int k, ref T x, ref T y, int ldy, Span<T> c, int ldc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector256<T>.Count, q = 0;
        Vector256<T> c0 = default, c1 = default, c2 = default, c3 = default;
        ref T y1 = ref Unsafe.Add(ref y, ldy), y2 = ref Unsafe.Add(ref y, 2 * ldy), y3 = ref Unsafe.Add(ref y, 3 * ldy);
        if (Vector256.IsHardwareAccelerated)
        {
            for (; q + w <= k; q += w)
            {
                var v = Vector256.LoadUnsafe(ref x, (nuint)q);
                c0 = Fma(v, Vector256.LoadUnsafe(ref y, (nuint)q), c0);
                c1 = Fma(v, Vector256.LoadUnsafe(ref y1, (nuint)q), c1);
                c2 = Fma(v, Vector256.LoadUnsafe(ref y2, (nuint)q), c2);
                c3 = Fma(v, Vector256.LoadUnsafe(ref y3, (nuint)q), c3);
            }
        }
        T s0 = Vector256.Sum(c0), s1 = Vector256.Sum(c1), s2 = Vector256.Sum(c2), s3 = Vector256.Sum(c3);
        for (; q < k; q++)
        {
            T v = Unsafe.Add(ref x, q);
            s0 += v * Unsafe.Add(ref y, q);
            s1 += v * Unsafe.Add(ref y1, q);
            s2 += v * Unsafe.Add(ref y2, q);
            s3 += v * Unsafe.Add(ref y3, q);
        }
        c[0] += s0;
        c[ldc] += s1;
        c[2 * ldc] += s2;
        c[3 * ldc] += s3;
    }

    /// <summary>Adds one row of a 4×4 tile to C: each lane sum, then the scalar tail q ∈ [from, k).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish<T>(Span<T> c, int row, int k, int from, ref T a, ref T b0, ref T b1, ref T b2, ref T b3,
        Vector256<T> v0, Vector256<T> v1, Vector256<T> v2, Vector256<T> v3) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T s0 = Vector256.Sum(v0), s1 = Vector256.Sum(v1), s2 = Vector256.Sum(v2), s3 = Vector256.Sum(v3);
        for (int q = from; q < k; q++)
        {
            T x = Unsafe.Add(ref a, q);
            s0 += x * Unsafe.Add(ref b0, q);
            s1 += x * Unsafe.Add(ref b1, q);
            s2 += x * Unsafe.Add(ref b2, q);
            s3 += x * Unsafe.Add(ref b3, q);
        }
        c[row] += s0;
        c[row + 1] += s1;
        c[row + 2] += s2;
        c[row + 3] += s3;
    }

    /// <summary>Σ_q a[q]·b[q] in the same order as one element of <see cref="DotTile4x4{T}"/>.</summary>
    private static T Dot<T>(int k, ref T a, ref T b) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector256<T>.Count, q = 0;
        var acc = Vector256<T>.Zero;
        if (Vector256.IsHardwareAccelerated)
            for (; q + w <= k; q += w) acc = Fma(Vector256.LoadUnsafe(ref a, (nuint)q), Vector256.LoadUnsafe(ref b, (nuint)q), acc);
        T s = Vector256.Sum(acc);
        for (; q < k; q++) s += Unsafe.Add(ref a, q) * Unsafe.Add(ref b, q);
        return s;
    }
}
