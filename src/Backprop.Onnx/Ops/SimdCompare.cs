using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Vectorized float/double comparisons into bool bytes for the compare kernels (a ReLU gradient's x &gt; 0 runs over every
/// activation): lanes compared with the IEEE ordered predicates (false with NaN, as the scalar operators), masks narrowed
/// to bytes and masked to 0/1.
/// </summary>
internal static class SimdCompare
{
    /// <summary>
    /// y[i] = a[i·sa] op b[i·sb] for i in [0, y.Length), strides ∈ {0, 1}; false (nothing written) when the element type,
    /// operator or strides are not handled.
    /// </summary>
    public static bool TryRun<T, TOp>(ReadOnlySpan<T> a, int sa, ReadOnlySpan<T> b, int sb, Span<bool> y) where TOp : ICompareOp
    {
        if (sa is not (0 or 1) || sb is not (0 or 1) || !Vector128.IsHardwareAccelerated || !Handles<TOp>()) return false;
        var bytes = MemoryMarshal.AsBytes(y);
        if (typeof(T) == typeof(float)) Run<TOp>(Cast<T, float>(a), sa, Cast<T, float>(b), sb, bytes);
        else if (typeof(T) == typeof(double)) Run<TOp>(Cast<T, double>(a), sa, Cast<T, double>(b), sb, bytes);
        else return false;
        return true;
    }

    private static bool Handles<TOp>() =>
        typeof(TOp) == typeof(GreaterOp) || typeof(TOp) == typeof(LessOp) || typeof(TOp) == typeof(EqualOp)
        || typeof(TOp) == typeof(GreaterOrEqualOp) || typeof(TOp) == typeof(LessOrEqualOp);

    private static ReadOnlySpan<TTo> Cast<TFrom, TTo>(ReadOnlySpan<TFrom> s) =>
        MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<TFrom, TTo>(ref MemoryMarshal.GetReference(s)), s.Length);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<TV> Mask<TOp, TV>(Vector128<TV> x, Vector128<TV> z)
    {
        if (typeof(TOp) == typeof(GreaterOp)) return Vector128.GreaterThan(x, z);
        if (typeof(TOp) == typeof(LessOp)) return Vector128.LessThan(x, z);
        if (typeof(TOp) == typeof(GreaterOrEqualOp)) return Vector128.GreaterThanOrEqual(x, z);
        if (typeof(TOp) == typeof(LessOrEqualOp)) return Vector128.LessThanOrEqual(x, z);
        return Vector128.Equals(x, z);
    }

    private static void Run<TOp>(ReadOnlySpan<float> a, int sa, ReadOnlySpan<float> b, int sb, Span<byte> y) where TOp : ICompareOp
    {
        int n = y.Length, i = 0;
        var aScalar = sa == 0 ? Vector128.Create(a[0]) : default;
        var bScalar = sb == 0 ? Vector128.Create(b[0]) : default;
        var one = Vector128.Create((byte)1);
        for (; i + 16 <= n; i += 16)
        {
            var m0 = Quad<TOp>(a, sa, aScalar, b, sb, bScalar, i).AsInt32();
            var m1 = Quad<TOp>(a, sa, aScalar, b, sb, bScalar, i + 4).AsInt32();
            var m2 = Quad<TOp>(a, sa, aScalar, b, sb, bScalar, i + 8).AsInt32();
            var m3 = Quad<TOp>(a, sa, aScalar, b, sb, bScalar, i + 12).AsInt32();
            var bytes = Vector128.Narrow(Vector128.Narrow(m0, m1), Vector128.Narrow(m2, m3)).AsByte();
            (bytes & one).CopyTo(y.Slice(i, 16));
        }
        for (; i < n; i++) y[i] = TOp.Test(a[i * sa], b[i * sb]) ? (byte)1 : (byte)0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Quad<TOp>(ReadOnlySpan<float> a, int sa, Vector128<float> aScalar, ReadOnlySpan<float> b, int sb, Vector128<float> bScalar, int i) =>
        Mask<TOp, float>(sa == 0 ? aScalar : Vector128.Create(a.Slice(i, 4)), sb == 0 ? bScalar : Vector128.Create(b.Slice(i, 4)));

    private static void Run<TOp>(ReadOnlySpan<double> a, int sa, ReadOnlySpan<double> b, int sb, Span<byte> y) where TOp : ICompareOp
    {
        int n = y.Length, i = 0;
        var aScalar = sa == 0 ? Vector128.Create(a[0]) : default;
        var bScalar = sb == 0 ? Vector128.Create(b[0]) : default;
        var one = Vector128.Create((byte)1);
        for (; i + 16 <= n; i += 16)
        {
            var q0 = Vector128.Narrow(Pair<TOp>(a, sa, aScalar, b, sb, bScalar, i), Pair<TOp>(a, sa, aScalar, b, sb, bScalar, i + 2));
            var q1 = Vector128.Narrow(Pair<TOp>(a, sa, aScalar, b, sb, bScalar, i + 4), Pair<TOp>(a, sa, aScalar, b, sb, bScalar, i + 6));
            var q2 = Vector128.Narrow(Pair<TOp>(a, sa, aScalar, b, sb, bScalar, i + 8), Pair<TOp>(a, sa, aScalar, b, sb, bScalar, i + 10));
            var q3 = Vector128.Narrow(Pair<TOp>(a, sa, aScalar, b, sb, bScalar, i + 12), Pair<TOp>(a, sa, aScalar, b, sb, bScalar, i + 14));
            var bytes = Vector128.Narrow(Vector128.Narrow(q0, q1), Vector128.Narrow(q2, q3)).AsByte();
            (bytes & one).CopyTo(y.Slice(i, 16));
        }
        for (; i < n; i++) y[i] = TOp.Test(a[i * sa], b[i * sb]) ? (byte)1 : (byte)0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<long> Pair<TOp>(ReadOnlySpan<double> a, int sa, Vector128<double> aScalar, ReadOnlySpan<double> b, int sb, Vector128<double> bScalar, int i) =>
        Mask<TOp, double>(sa == 0 ? aScalar : Vector128.Create(a.Slice(i, 2)), sb == 0 ? bScalar : Vector128.Create(b.Slice(i, 2))).AsInt64();
}
