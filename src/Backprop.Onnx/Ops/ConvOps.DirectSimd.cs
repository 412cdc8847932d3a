using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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

        /// <summary>max(a, 0) per lane with IEEE 754 maximum semantics (NaN stays NaN, −0 becomes +0), as TensorPrimitives.Max.</summary>
        static abstract TV Relu(TV a);

        /// <summary>The first <paramref name="count"/> (&lt; Count) elements at <paramref name="source"/>, zeros after; reads nothing past them.</summary>
        static abstract TV LoadPartial(ref T source, int count);

        /// <summary>Stores the first <paramref name="count"/> (&lt; Count) lanes; writes nothing past them.</summary>
        static abstract void StorePartial(TV value, ref T destination, int count);
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

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<T> Relu(Vector512<T> a) => Vector512.Max(a, Vector512<T>.Zero);

        // AVX-512 masked loads and stores suppress faults and writes in the masked-off lanes (Intel SDM, VMOVUPS with a mask).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static unsafe Vector512<T> LoadPartial(ref T source, int count)
        {
            fixed (T* p = &source)
            {
                if (Avx512F.IsSupported && typeof(T) == typeof(float))
                    return Avx512F.MaskLoad((float*)p, Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(count)).AsSingle(), Vector512<float>.Zero).As<float, T>();
                if (Avx512F.IsSupported && typeof(T) == typeof(double))
                    return Avx512F.MaskLoad((double*)p, Vector512.LessThan(Vector512<long>.Indices, Vector512.Create((long)count)).AsDouble(), Vector512<double>.Zero).As<double, T>();
                var lanes = Vector512<T>.Zero;
                for (int e = 0; e < count; e++) lanes = lanes.WithElement(e, p[e]);
                return lanes;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static unsafe void StorePartial(Vector512<T> value, ref T destination, int count)
        {
            fixed (T* p = &destination)
            {
                if (Avx512F.IsSupported && typeof(T) == typeof(float))
                    Avx512F.MaskStore((float*)p, Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(count)).AsSingle(), value.AsSingle());
                else if (Avx512F.IsSupported && typeof(T) == typeof(double))
                    Avx512F.MaskStore((double*)p, Vector512.LessThan(Vector512<long>.Indices, Vector512.Create((long)count)).AsDouble(), value.AsDouble());
                else
                    for (int e = 0; e < count; e++) p[e] = value.GetElement(e);
            }
        }
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

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> Relu(Vector256<T> a) => Vector256.Max(a, Vector256<T>.Zero);

        // VMASKMOVPS/PD leave masked-off lanes alone and do not fault on them (Intel SDM, VMASKMOV).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static unsafe Vector256<T> LoadPartial(ref T source, int count)
        {
            fixed (T* p = &source)
            {
                if (Avx.IsSupported && typeof(T) == typeof(float))
                    return Avx.MaskLoad((float*)p, Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(count)).AsSingle()).As<float, T>();
                if (Avx.IsSupported && typeof(T) == typeof(double))
                    return Avx.MaskLoad((double*)p, Vector256.LessThan(Vector256<long>.Indices, Vector256.Create((long)count)).AsDouble()).As<double, T>();
                var lanes = Vector256<T>.Zero;
                for (int e = 0; e < count; e++) lanes = lanes.WithElement(e, p[e]);
                return lanes;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static unsafe void StorePartial(Vector256<T> value, ref T destination, int count)
        {
            fixed (T* p = &destination)
            {
                if (Avx.IsSupported && typeof(T) == typeof(float))
                    Avx.MaskStore((float*)p, Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(count)).AsSingle(), value.AsSingle());
                else if (Avx.IsSupported && typeof(T) == typeof(double))
                    Avx.MaskStore((double*)p, Vector256.LessThan(Vector256<long>.Indices, Vector256.Create((long)count)).AsDouble(), value.AsDouble());
                else
                    for (int e = 0; e < count; e++) p[e] = value.GetElement(e);
            }
        }
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
        private readonly bool _accumulate, _relu;

        public DirectOutput(Span<T> y, ReadOnlySpan<T> bias, int outChannels, int outH, int outW, int wp, int lanes, bool accumulate, bool relu = false)
        {
            _relu = relu;
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

        /// <summary>
        /// Where a block of <paramref name="channels"/> channels from co0 at the four slots <paramref name="dest"/> stores
        /// (bounds checked here once, then written unchecked by the kernel); channels past the end are dropped.
        /// </summary>
        public readonly DirectBlockStore<T> Block(int co0, int channels, ReadOnlySpan<int> dest, ReadOnlySpan<int> count)
        {
            int channelsHere = Math.Min(channels, _outChannels - co0);
            if (_accumulate || dest.Length != 4 || channelsHere <= 0) throw new InvalidOperationException("A direct block store takes four slots of at least one channel, without accumulation.");
            long last = (long)(co0 + channelsHere - 1) * _plane;
            for (int v = 0; v < 4; v++)
                if (dest[v] < 0 || (uint)count[v] > (uint)_lanes || last + dest[v] + count[v] > _y.Length) throw new ArgumentOutOfRangeException(nameof(dest));
            ref T bias = ref _bias.IsEmpty ? ref Unsafe.NullRef<T>() : ref MemoryMarshal.GetReference(_bias.Slice(co0, channelsHere));
            return new DirectBlockStore<T>(ref Unsafe.Add(ref MemoryMarshal.GetReference(_y), co0 * _plane), ref bias, !_bias.IsEmpty, _relu, _plane, channelsHere,
                dest[0], dest[1], dest[2], dest[3], count[0], count[1], count[2], count[3]);
        }

        /// <summary>Slot s: where it starts in a padded input plane, where its lanes go in an output plane, how many are kept.</summary>
        public readonly void Slot(int s, out int source, out int dest, out int count)
        {
            int r = s / _slotsPerRow, c0 = (s - r * _slotsPerRow) * _lanes;
            source = r * _wp + c0;
            dest = r * _outW + c0;
            count = Math.Min(_lanes, _outW - c0);
        }

        /// <summary>
        /// Stores the parked sums of channels co0..co0+channels−1 (sums[(k·slots + v)·L] for channel k, slot v): + bias, + y when
        /// accumulating, then max(·, 0) for a fused Relu; lanes past each slot's count and channels past the end dropped.
        /// </summary>
        public readonly void Put<TV, TOps>(ref T sums, int co0, ReadOnlySpan<int> dest, ReadOnlySpan<int> count, int channels = DirectBlockChannels)
            where TV : struct where TOps : struct, IDirectSimd<TV, T>
        {
            int slots = dest.Length, channelsHere = Math.Min(channels, _outChannels - co0);
            if (channelsHere <= 0) return;
            // One bounds check for the whole block (the last channel's plane is the farthest), then unchecked stores.
            long last = (long)(co0 + channelsHere - 1) * _plane;
            for (int v = 0; v < slots; v++)
                if (dest[v] < 0 || (uint)count[v] > (uint)_lanes || last + dest[v] + count[v] > _y.Length) throw new ArgumentOutOfRangeException(nameof(dest));
            ref T y0 = ref MemoryMarshal.GetReference(_y);
            bool hasBias = !_bias.IsEmpty;
            for (int k = 0; k < channelsHere; k++)
            {
                TV b = hasBias ? TOps.Broadcast(_bias[co0 + k]) : default;
                ref T plane = ref Unsafe.Add(ref y0, (co0 + k) * _plane);
                ref T parked = ref Unsafe.Add(ref sums, k * slots * _lanes);
                for (int v = 0; v < slots; v++)
                {
                    TV sum = TOps.Load(ref parked, v * _lanes);
                    if (hasBias) sum = TOps.Add(sum, b);
                    ref T d = ref Unsafe.Add(ref plane, dest[v]);
                    int n = count[v];
                    if (n == _lanes)
                    {
                        if (_accumulate) sum = TOps.Add(TOps.Load(ref d, 0), sum);
                        if (_relu) sum = TOps.Relu(sum);
                        TOps.Store(sum, ref d, 0);
                    }
                    else
                    {
                        // Masked: the lanes past the row are neither read nor written (they may belong to another thread's band).
                        if (_accumulate) sum = TOps.Add(TOps.LoadPartial(ref d, n), sum);
                        if (_relu) sum = TOps.Relu(sum);
                        TOps.StorePartial(sum, ref d, n);
                    }
                }
            }
        }
    }

    /// <summary>
    /// The output of one register block of four slots, for a kernel that stores its accumulators itself: Y at the first
    /// channel's plane, that channel's bias (when present), the plane size, the channels kept, each slot's offset in a
    /// plane and lane count. Checked by <see cref="DirectOutput{T}.Block"/>.
    /// </summary>
    private readonly ref struct DirectBlockStore<T>(ref T y, ref T bias, bool hasBias, bool relu, int plane, int channels, int d0, int d1, int d2, int d3, int n0, int n1, int n2, int n3)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly ref T _y = ref y;
        private readonly ref T _bias = ref bias;

        public int Channels { get; } = channels;

        /// <summary>Stores channel k's four slots: + bias, then max(·, 0) for a fused Relu (the order of <see cref="DirectOutput{T}.Put"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Channel<TV, TOps>(int k, TV s0, TV s1, TV s2, TV s3) where TV : struct where TOps : struct, IDirectSimd<TV, T>
        {
            ref T p = ref Unsafe.Add(ref _y, k * plane);
            TV b = hasBias ? TOps.Broadcast(Unsafe.Add(ref _bias, k)) : default;
            Emit<TV, TOps>(s0, b, ref Unsafe.Add(ref p, d0), n0);
            Emit<TV, TOps>(s1, b, ref Unsafe.Add(ref p, d1), n1);
            Emit<TV, TOps>(s2, b, ref Unsafe.Add(ref p, d2), n2);
            Emit<TV, TOps>(s3, b, ref Unsafe.Add(ref p, d3), n3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Emit<TV, TOps>(TV sum, TV b, ref T d, int n) where TV : struct where TOps : struct, IDirectSimd<TV, T>
        {
            if (hasBias) sum = TOps.Add(sum, b);
            if (relu) sum = TOps.Relu(sum);
            // Masked: the lanes past the row are neither read nor written (they may belong to another thread's band).
            if (n == TOps.Count) TOps.Store(sum, ref d, 0);
            else TOps.StorePartial(sum, ref d, n);
        }
    }
}
