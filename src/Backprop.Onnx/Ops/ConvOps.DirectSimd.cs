using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The pieces <see cref="ConvOps.DirectConv2D{T}"/> shares between its vector widths: the vector operations as static
/// members of a struct (so one generic kernel compiles once per width, every call inlined), and the output side (which
/// input position a vector slot reads, where its lanes go, bias and accumulation on the store).
/// </summary>
internal static partial class ConvOps
{
    /// <summary>The vector operations the direct convolution uses, for one vector type <typeparamref name="TV"/> of <typeparamref name="T"/>.</summary>
    private interface IDirectSimd<TV, T> where TV : struct where T : unmanaged
    {
        static abstract int Count { get; }

        static abstract TV Broadcast(T value);

        static abstract TV Load(ref T source, nint offset);

        static abstract void Store(TV value, ref T destination, nint offset);

        /// <summary>a·b + c, fused where the hardware has it.</summary>
        static abstract TV MultiplyAdd(TV a, TV b, TV c);

        static abstract TV Add(TV a, TV b);

        static abstract T Element(TV value, int index);
    }

    private readonly struct Simd512<T> : IDirectSimd<Vector512<T>, T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public static int Count => Vector512<T>.Count;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<T> Broadcast(T value) => Vector512.Create(value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<T> Load(ref T source, nint offset) => Vector512.LoadUnsafe(ref Unsafe.Add(ref source, offset));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Store(Vector512<T> value, ref T destination, nint offset) => value.StoreUnsafe(ref Unsafe.Add(ref destination, offset));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<T> MultiplyAdd(Vector512<T> a, Vector512<T> b, Vector512<T> c)
        {
            if (typeof(T) == typeof(float)) return Vector512.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
            if (typeof(T) == typeof(double)) return Vector512.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
            return a * b + c;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<T> Add(Vector512<T> a, Vector512<T> b) => a + b;

        public static T Element(Vector512<T> value, int index) => value.GetElement(index);
    }

    private readonly struct Simd256<T> : IDirectSimd<Vector256<T>, T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public static int Count => Vector256<T>.Count;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> Broadcast(T value) => Vector256.Create(value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> Load(ref T source, nint offset) => Vector256.LoadUnsafe(ref Unsafe.Add(ref source, offset));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Store(Vector256<T> value, ref T destination, nint offset) => value.StoreUnsafe(ref Unsafe.Add(ref destination, offset));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> MultiplyAdd(Vector256<T> a, Vector256<T> b, Vector256<T> c)
        {
            if (typeof(T) == typeof(float)) return Vector256.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
            if (typeof(T) == typeof(double)) return Vector256.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
            return a * b + c;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> Add(Vector256<T> a, Vector256<T> b) => a + b;

        public static T Element(Vector256<T> value, int index) => value.GetElement(index);
    }

    /// <summary>
    /// The output of one direct convolution: outChannels planes of outH × outW, each row split into ⌈outW / L⌉ slots of L
    /// columns. Slot s is row r = s / slotsPerRow, columns c0 = (s mod slotsPerRow)·L and up; it reads the padded input
    /// from r·wp + c0 and keeps min(L, outW − c0) lanes.
    /// </summary>
    private ref struct DirectOutput<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly Span<T> _y;
        private readonly ReadOnlySpan<T> _bias;
        private readonly int _outChannels, _plane, _outW, _wp, _lanes, _slotsPerRow;
        private readonly bool _accumulate;

        public DirectOutput(Span<T> y, ReadOnlySpan<T> bias, int outChannels, int outH, int outW, int wp, int lanes, bool accumulate)
        {
            _y = y;
            _bias = bias;
            _outChannels = outChannels;
            _plane = outH * outW;
            _outW = outW;
            _wp = wp;
            _lanes = lanes;
            _slotsPerRow = (outW + lanes - 1) / lanes;
            _accumulate = accumulate;
            Slots = outH * _slotsPerRow;
        }

        public int Slots { get; }

        /// <summary>Where slot s starts in a padded input plane.</summary>
        public readonly int Source(int s)
        {
            int r = s / _slotsPerRow;
            return r * _wp + (s - r * _slotsPerRow) * _lanes;
        }

        /// <summary>Stores the sums of channel co at slot s: + bias, + y when accumulating; lanes past outW and channels past the end are dropped.</summary>
        public readonly void Put<TV, TOps>(TV sums, int co, int s) where TV : struct where TOps : struct, IDirectSimd<TV, T>
        {
            if (co >= _outChannels) return;
            int r = s / _slotsPerRow, c0 = (s - r * _slotsPerRow) * _lanes, n = Math.Min(_lanes, _outW - c0);
            if (!_bias.IsEmpty) sums = TOps.Add(sums, TOps.Broadcast(_bias[co]));
            int index = co * _plane + r * _outW + c0;
            if (n == _lanes)
            {
                ref T dst = ref MemoryMarshal.GetReference(_y.Slice(index, n));
                if (_accumulate) sums = TOps.Add(TOps.Load(ref dst, 0), sums);
                TOps.Store(sums, ref dst, 0);
                return;
            }
            var row = _y.Slice(index, n);
            for (int e = 0; e < n; e++) row[e] = _accumulate ? row[e] + TOps.Element(sums, e) : TOps.Element(sums, e);
        }
    }
}
