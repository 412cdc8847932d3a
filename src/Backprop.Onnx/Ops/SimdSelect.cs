using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Branch-free y[i] = c[i] ? x : z for 4- and 8-byte elements, where x and z are each a contiguous run or one broadcast
/// element. A data-dependent branch per element (a ReLU mask is a coin flip) costs a misprediction every other element;
/// this selects bit patterns with vector masks instead, so the result is bit-identical to the branchy loop.
/// </summary>
internal static class SimdSelect
{
    /// <summary>Whether <see cref="TryRun{T}"/> handles elements of type <typeparamref name="T"/>.</summary>
    public static bool Supports<T>() => !RuntimeHelpers.IsReferenceOrContainsReferences<T>() && (Unsafe.SizeOf<T>() == 4 || Unsafe.SizeOf<T>() == 8);

    /// <summary>
    /// y[i] = c[i] ? x[i·sx] : z[i·sz] for i in [0, y.Length), with strides sx, sz ∈ {0, 1}; false (nothing written) when
    /// the element type or strides are not handled.
    /// </summary>
    public static bool TryRun<T>(ReadOnlySpan<bool> c, ReadOnlySpan<T> x, int sx, ReadOnlySpan<T> z, int sz, Span<T> y)
    {
        if (!Supports<T>() || sx is not (0 or 1) || sz is not (0 or 1)) return false;
        var bytes = MemoryMarshal.AsBytes(c);
        if (Unsafe.SizeOf<T>() == 4) Run(bytes, Bits<T, uint>(x), sx, Bits<T, uint>(z), sz, Bits<T, uint>(y));
        else Run(bytes, Bits<T, ulong>(x), sx, Bits<T, ulong>(z), sz, Bits<T, ulong>(y));
        return true;
    }

    /// <summary>The elements' bit patterns (T has no references and the size of TBits, checked by <see cref="Supports{T}"/>).</summary>
    private static ReadOnlySpan<TBits> Bits<T, TBits>(ReadOnlySpan<T> s) =>
        MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<T, TBits>(ref MemoryMarshal.GetReference(s)), s.Length);

    private static Span<TBits> Bits<T, TBits>(Span<T> s) =>
        MemoryMarshal.CreateSpan(ref Unsafe.As<T, TBits>(ref MemoryMarshal.GetReference(s)), s.Length);

    private static void Run(ReadOnlySpan<byte> c, ReadOnlySpan<uint> x, int sx, ReadOnlySpan<uint> z, int sz, Span<uint> y)
    {
        int n = y.Length, i = 0;
        if (Vector128.IsHardwareAccelerated)
        {
            ref byte cRef = ref MemoryMarshal.GetReference(c);
            var xs = sx == 0 ? Vector128.Create(x[0]) : default;
            var zs = sz == 0 ? Vector128.Create(z[0]) : default;
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector128.Widen(Vector128.LoadUnsafe(ref cRef, (nuint)i));
                var (m0, m1) = Vector128.Widen(lo);
                var (m2, m3) = Vector128.Widen(hi);
                Step(m0, i, x, sx, xs, z, sz, zs, y);
                Step(m1, i + 4, x, sx, xs, z, sz, zs, y);
                Step(m2, i + 8, x, sx, xs, z, sz, zs, y);
                Step(m3, i + 12, x, sx, xs, z, sz, zs, y);
            }
        }
        for (; i < n; i++) y[i] = c[i] != 0 ? x[i * sx] : z[i * sz];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector128<uint> flags, int i, ReadOnlySpan<uint> x, int sx, Vector128<uint> xs, ReadOnlySpan<uint> z, int sz, Vector128<uint> zs, Span<uint> y)
    {
        var a = sx == 0 ? xs : Vector128.Create(x.Slice(i, 4));
        var b = sz == 0 ? zs : Vector128.Create(z.Slice(i, 4));
        Vector128.ConditionalSelect(Vector128.Equals(flags, Vector128<uint>.Zero), b, a).CopyTo(y.Slice(i, 4));
    }

    private static void Run(ReadOnlySpan<byte> c, ReadOnlySpan<ulong> x, int sx, ReadOnlySpan<ulong> z, int sz, Span<ulong> y)
    {
        int n = y.Length, i = 0;
        if (Vector128.IsHardwareAccelerated)
        {
            ref byte cRef = ref MemoryMarshal.GetReference(c);
            var xs = sx == 0 ? Vector128.Create(x[0]) : default;
            var zs = sz == 0 ? Vector128.Create(z[0]) : default;
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector128.Widen(Vector128.LoadUnsafe(ref cRef, (nuint)i));
                var (w0, w1) = Vector128.Widen(lo);
                var (w2, w3) = Vector128.Widen(hi);
                Quad(w0, i, x, sx, xs, z, sz, zs, y);
                Quad(w1, i + 4, x, sx, xs, z, sz, zs, y);
                Quad(w2, i + 8, x, sx, xs, z, sz, zs, y);
                Quad(w3, i + 12, x, sx, xs, z, sz, zs, y);
            }
        }
        for (; i < n; i++) y[i] = c[i] != 0 ? x[i * sx] : z[i * sz];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Quad(Vector128<uint> flags, int i, ReadOnlySpan<ulong> x, int sx, Vector128<ulong> xs, ReadOnlySpan<ulong> z, int sz, Vector128<ulong> zs, Span<ulong> y)
    {
        var (m0, m1) = Vector128.Widen(flags);
        Step(m0, i, x, sx, xs, z, sz, zs, y);
        Step(m1, i + 2, x, sx, xs, z, sz, zs, y);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector128<ulong> flags, int i, ReadOnlySpan<ulong> x, int sx, Vector128<ulong> xs, ReadOnlySpan<ulong> z, int sz, Vector128<ulong> zs, Span<ulong> y)
    {
        var a = sx == 0 ? xs : Vector128.Create(x.Slice(i, 2));
        var b = sz == 0 ? zs : Vector128.Create(z.Slice(i, 2));
        Vector128.ConditionalSelect(Vector128.Equals(flags, Vector128<ulong>.Zero), b, a).CopyTo(y.Slice(i, 2));
    }
}
