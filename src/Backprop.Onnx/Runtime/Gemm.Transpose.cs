using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// In-register transposes for packing a float operand across its storage order (op(B) of a Linear forward, op(A) of a
/// plain row-major A): eight rows are read along their contiguous direction with one 8-float load each and written as
/// eight 8-float columns, instead of one scalar store per element.
/// </summary>
/// <remarks>
/// The 8 × 8 transpose is the usual AVX sequence (unpacklo/unpackhi pairs rows, shuffle makes 4 × 4 blocks,
/// vperm2f128 swaps the 128-bit halves), as in Intel's optimisation manual and Eigen's PacketMath ptranspose. Moves
/// only: the values, apart from the optional scale, are copied bit for bit.
/// </remarks>
internal static unsafe partial class Gemm
{
    /// <summary>Whether the float packers may use the AVX transposes.</summary>
    private static bool TransposeAccelerated => Avx.IsSupported;

    /// <summary>dst[t·ldd + r] = scale·src[r·lds + t] for r, t &lt; 8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, long lds, float* dst, long ldd, Vector256<float> scale)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + lds);
        var r2 = Avx.LoadVector256(src + 2 * lds);
        var r3 = Avx.LoadVector256(src + 3 * lds);
        var r4 = Avx.LoadVector256(src + 4 * lds);
        var r5 = Avx.LoadVector256(src + 5 * lds);
        var r6 = Avx.LoadVector256(src + 6 * lds);
        var r7 = Avx.LoadVector256(src + 7 * lds);
        // t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], and so on.
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        // u0 = column 0 of rows 0-3 | column 4 of rows 0-3; u1 columns 1|5, u2 2|6, u3 3|7; u4-u7 the same for rows 4-7.
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, scale * Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + ldd, scale * Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * ldd, scale * Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * ldd, scale * Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * ldd, scale * Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * ldd, scale * Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * ldd, scale * Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * ldd, scale * Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>dst[t·ldd + r] = scale·src[r·lds + t] for r &lt; 4, t &lt; 8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose4x8(float* src, long lds, float* dst, long ldd, Vector256<float> scale)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + lds);
        var r2 = Avx.LoadVector256(src + 2 * lds);
        var r3 = Avx.LoadVector256(src + 3 * lds);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        // u0 = column 0 | column 4 of the four rows, u1 = 1 | 5, u2 = 2 | 6, u3 = 3 | 7.
        var u0 = scale * Avx.Shuffle(t0, t2, 0x44); var u1 = scale * Avx.Shuffle(t0, t2, 0xEE);
        var u2 = scale * Avx.Shuffle(t1, t3, 0x44); var u3 = scale * Avx.Shuffle(t1, t3, 0xEE);
        Sse.Store(dst, u0.GetLower());
        Sse.Store(dst + ldd, u1.GetLower());
        Sse.Store(dst + 2 * ldd, u2.GetLower());
        Sse.Store(dst + 3 * ldd, u3.GetLower());
        Sse.Store(dst + 4 * ldd, u0.GetUpper());
        Sse.Store(dst + 5 * ldd, u1.GetUpper());
        Sse.Store(dst + 6 * ldd, u2.GetUpper());
        Sse.Store(dst + 7 * ldd, u3.GetUpper());
    }

    /// <summary>
    /// dst[t·ldd + r] = scale·src[r·lds + t] for r &lt; rows, t &lt; cols: 8 × 8 and 4 × 8 blocks, the rest scalar.
    /// Float only; the caller checks <see cref="TransposeAccelerated"/>.
    /// </summary>
    internal static void TransposeBlock(float* src, long lds, float* dst, long ldd, int rows, int cols, float scale)
    {
        var vs = Vector256.Create(scale);
        int t = 0;
        for (; t + 8 <= cols; t += 8)
        {
            int r = 0;
            for (; r + 8 <= rows; r += 8) Transpose8x8(src + r * lds + t, lds, dst + t * ldd + r, ldd, vs);
            for (; r + 4 <= rows; r += 4) Transpose4x8(src + r * lds + t, lds, dst + t * ldd + r, ldd, vs);
            for (; r < rows; r++)
                for (int u = t; u < t + 8; u++) dst[u * ldd + r] = scale * src[r * lds + u];
        }
        for (; t < cols; t++)
            for (int r = 0; r < rows; r++) dst[t * ldd + r] = scale * src[r * lds + t];
    }
}
