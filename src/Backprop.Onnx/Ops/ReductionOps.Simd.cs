using System.Numerics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Sums with a fixed association order. TensorPrimitives' aggregations peel to an aligned address, so their rounding
/// can depend on where the array happens to lie in memory; these use unaligned loads into four vector accumulators
/// in index order, so the same input always gives the same bits.
/// </summary>
internal static partial class ReductionOps
{
    /// <summary>Σ x (0 for an empty span).</summary>
    internal static T Sum<T>(ReadOnlySpan<T> x) where T : unmanaged, INumber<T> => Aggregate<T, Plain<T>>(x);

    /// <summary>Σ x² (0 for an empty span).</summary>
    internal static T SumOfSquares<T>(ReadOnlySpan<T> x) where T : unmanaged, INumber<T> => Aggregate<T, Square<T>>(x);

    /// <summary>Σ |x| (0 for an empty span).</summary>
    internal static T SumOfMagnitudes<T>(ReadOnlySpan<T> x) where T : unmanaged, INumber<T> => Aggregate<T, Magnitude<T>>(x);

    /// <summary>Σ x·y over two spans of equal length.</summary>
    internal static T Dot<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y) where T : unmanaged, INumber<T>
    {
        int n = x.Length, i = 0;
        T s = T.Zero;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported && n >= Vector<T>.Count)
        {
            var acc = Vector<T>.Zero;
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count) acc += new Vector<T>(x[i..]) * new Vector<T>(y[i..]);
            s = Vector.Sum(acc);
        }
        for (; i < n; i++) s += x[i] * y[i];
        return s;
    }

    /// <summary>Π x (1 for an empty span), left to right.</summary>
    internal static T Product<T>(ReadOnlySpan<T> x) where T : INumber<T>
    {
        T p = T.One;
        foreach (var v in x) p *= v;
        return p;
    }

    private interface IElementMap<T> where T : unmanaged, INumber<T>
    {
        static abstract T Map(T x);
        static abstract Vector<T> Map(Vector<T> x);
    }

    private readonly struct Plain<T> : IElementMap<T> where T : unmanaged, INumber<T>
    {
        public static T Map(T x) => x;
        public static Vector<T> Map(Vector<T> x) => x;
    }

    private readonly struct Square<T> : IElementMap<T> where T : unmanaged, INumber<T>
    {
        public static T Map(T x) => x * x;
        public static Vector<T> Map(Vector<T> x) => x * x;
    }

    private readonly struct Magnitude<T> : IElementMap<T> where T : unmanaged, INumber<T>
    {
        public static T Map(T x) => T.Abs(x);
        public static Vector<T> Map(Vector<T> x) => Vector.Abs(x);
    }

    private static T Aggregate<T, TMap>(ReadOnlySpan<T> x) where T : unmanaged, INumber<T> where TMap : IElementMap<T>
    {
        int n = x.Length, i = 0;
        T s = T.Zero;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported && n >= Vector<T>.Count)
        {
            int w = Vector<T>.Count;
            Vector<T> a0 = Vector<T>.Zero, a1 = a0, a2 = a0, a3 = a0;
            for (; i <= n - 4 * w; i += 4 * w)
            {
                a0 += TMap.Map(new Vector<T>(x[i..]));
                a1 += TMap.Map(new Vector<T>(x[(i + w)..]));
                a2 += TMap.Map(new Vector<T>(x[(i + 2 * w)..]));
                a3 += TMap.Map(new Vector<T>(x[(i + 3 * w)..]));
            }
            for (; i <= n - w; i += w) a0 += TMap.Map(new Vector<T>(x[i..]));
            s = Vector.Sum((a0 + a1) + (a2 + a3));
        }
        for (; i < n; i++) s += TMap.Map(x[i]);
        return s;
    }
}
