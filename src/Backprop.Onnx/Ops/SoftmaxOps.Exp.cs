using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Backprop.Onnx.Ops;

/// <summary>
/// A fast vectorized float32 exp for Softmax and LogSoftmax (their inputs x − max are ≤ 0), after Cephes expf
/// (S. L. Moshier, Cephes Math Library, expf.c) as the SLEEF and oneDNN eltwise exp kernels also do:
/// <list type="bullet">
/// <item>range reduction x = n·ln 2 + r, n = round(x·log₂e), |r| ≤ ln 2 / 2, with ln 2 split in two constants
/// (Cody and Waite) so n·C1 is exact: r = (x − n·C1) − n·C2, both by fused multiply-add;</item>
/// <item>exp(r) ≈ 1 + r + r²·P(r), P the degree-5 minimax polynomial of Cephes expf (relative error about 1.2e-7
/// on the interval, within 2 ulp of the correctly rounded result);</item>
/// <item>the scale 2ⁿ built through the exponent bits, as two factors 2^(n/2)·2^(n − n/2) so every factor stays a
/// normal float: results in the subnormal range (x below −87.34) round once, in the second product, and x below
/// about −103.97 gives 0, as MathF.Exp does; above 88.72 the product overflows to +∞.</item>
/// </list>
/// x is clamped to [−110, 89] first, which maps −∞ to 0 and +∞ to +∞; NaN is passed through by a final select.
/// .NET's Vector256.Exp is accurate to about 1 ulp but three times slower (see ExpShifted's remarks).
/// </summary>
internal static partial class SoftmaxOps
{
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2Hi = 0.693359375f;       // 355/512: 9 significant bits, so n·Ln2Hi is exact for |n| < 2¹⁵
    private const float Ln2Lo = -2.12194440e-4f;    // ln 2 − Ln2Hi
    private const float P0 = 1.9875691500e-4f;      // Cephes expf's P, highest degree first
    private const float P1 = 1.3981999507e-3f;
    private const float P2 = 8.3334519073e-3f;
    private const float P3 = 4.1665795894e-2f;
    private const float P4 = 1.6666665459e-1f;
    private const float P5 = 5.0000001201e-1f;
    private const float ClampLow = -110f;           // n = −159: 2^−79·2^−80, both normal; the result rounds to 0
    private const float ClampHigh = 89f;            // n = 128: 2^64·2^64 overflows to +∞

    /// <summary>exp(x) per element, within 2 ulp of MathF.Exp (see the class remarks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> FastExp(Vector256<float> x)
    {
        var c = Vector256.MinNative(Vector256.MaxNative(x, Vector256.Create(ClampLow)), Vector256.Create(ClampHigh));
        var n = Vector256.Round(c * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Hi), c);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Lo), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(P0), r, Vector256.Create(P1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P5));
        p = Vector256.FusedMultiplyAdd(p, r * r, r) + Vector256<float>.One;
        Vector256<float> e;
        if (Avx512F.VL.IsSupported)
        {
            // vscalefps: p·2ⁿ rounded once, subnormal and overflow included (oneDNN's AVX-512 exp does the same),
            // the same value as the two exact-then-rounding products below.
            e = Avx512F.VL.Scale(p, n);
        }
        else
        {
            var k = Vector256.ConvertToInt32Native(n);
            var k1 = Vector256.ShiftRightArithmetic(k, 1);
            var s1 = Vector256.ShiftLeft(k1 + Vector256.Create(127), 23).AsSingle();
            var s2 = Vector256.ShiftLeft(k - k1 + Vector256.Create(127), 23).AsSingle();
            e = p * s1 * s2;
        }
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), e, x);
    }

    /// <summary>The 512-bit form of <see cref="FastExp(Vector256{float})"/> (AVX-512 only: vscalefps), the same operations per lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> FastExp(Vector512<float> x)
    {
        var c = Vector512.MinNative(Vector512.MaxNative(x, Vector512.Create(ClampLow)), Vector512.Create(ClampHigh));
        var n = Vector512.Round(c * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), c);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(P0), r, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P5));
        p = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512<float>.One;
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), Avx512F.Scale(p, n), x);
    }

    /// <summary>Scalar twin of <see cref="FastExp(Vector256{float})"/> for the tails: the same operations, so a
    /// value gives the same bits wherever it sits in a line.</summary>
    internal static float FastExp(float x)
    {
        if (float.IsNaN(x)) return x;
        float c = Math.Min(Math.Max(x, ClampLow), ClampHigh);
        float n = MathF.Round(c * Log2E);
        float r = MathF.FusedMultiplyAdd(n, -Ln2Hi, c);
        r = MathF.FusedMultiplyAdd(n, -Ln2Lo, r);
        float p = MathF.FusedMultiplyAdd(P0, r, P1);
        p = MathF.FusedMultiplyAdd(p, r, P2);
        p = MathF.FusedMultiplyAdd(p, r, P3);
        p = MathF.FusedMultiplyAdd(p, r, P4);
        p = MathF.FusedMultiplyAdd(p, r, P5);
        p = MathF.FusedMultiplyAdd(p, r * r, r) + 1f;
        int k = (int)n, k1 = k >> 1;
        float s1 = BitConverter.Int32BitsToSingle((k1 + 127) << 23);
        float s2 = BitConverter.Int32BitsToSingle((k - k1 + 127) << 23);
        return p * s1 * s2;
    }

    /// <summary>y = exp(x) element by element with <see cref="FastExp(Vector256{float})"/>; x and y may be the same span.</summary>
    internal static void FastExp(ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        if (Vector256.IsHardwareAccelerated)
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
                FastExp(Vector256.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        for (; i < n; i++) y[i] = FastExp(x[i]);
    }
}
