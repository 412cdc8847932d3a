using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The direct convolution with the vector along the output channels instead of the output columns, for rows too narrow
/// to fill a vector (LeNet's conv2: 10 columns, 16 channels; a 16-float vector of columns would keep 10 lanes of 16).
/// A register block is one vector of L output channels at up to 12 consecutive positions of one output row: per tap
/// (ci, i, j) it loads the L weights w[co, ci, i, j] once and multiplies them by each position's broadcast input
/// xPad[ci, r + i·dh, c + j·dw], the "output-channel vectorized" inner loop of MLAS's NCHWc convolution and of oneDNN's
/// direct convolution (vector over oc, register block over ow). The sums are then stored transposed into the NCHW planes.
/// </summary>
/// <remarks>
/// Each output is the same chain of fused multiply-adds over the taps in the order (ci, i, j), from 0, as in the column
/// vectorized kernel, then + bias, then max(·, 0) for a fused Relu: the two kernels give the same bits.
/// </remarks>
internal static partial class ConvOps
{
    /// <summary>Most output positions of one register block of the channel-vectorized kernel (12 accumulators).</summary>
    private const int ChannelBlockColumns = 12;

    /// <summary>
    /// Whether the channel-vectorized kernel keeps more vector lanes busy than the column-vectorized one: the share of
    /// useful lanes is M / ⌈M⌉_L for the former and M / ⌈M⌉_4 (or _6) · outW / ⌈outW⌉_L for the latter; the transposing store
    /// costs the former about a tenth.
    /// </summary>
    internal static bool UseDirectChannels<T>(ConvShape s, DirectConvPath path = DirectConvPath.Auto) where T : unmanaged
    {
        int lanes = DirectLanes<T>(path), outW = s.Output[1];
        double columns = (double)s.M / RoundUp(s.M, DirectForwardBlockChannels(s.M, path)) * outW / RoundUp(outW, lanes);
        double channels = (double)s.M / RoundUp(s.M, lanes);
        return channels * 0.9 > columns;
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

    /// <summary>Lanes of the widest vector of <typeparamref name="T"/> on this path.</summary>
    private static int DirectLanes<T>(DirectConvPath path) where T : unmanaged
    {
        bool wide = path == DirectConvPath.Vector512 || (path == DirectConvPath.Auto && Vector512.IsHardwareAccelerated);
        return wide ? Vector512<T>.Count : Vector256<T>.Count;
    }

    /// <summary>Register blocks per output row of the channel-vectorized kernel (rows split into near-equal segments of at most 12).</summary>
    private static int ChannelSegments(int outW) => (outW + ChannelBlockColumns - 1) / ChannelBlockColumns;

    /// <summary>
    /// The channel-vectorized direct convolution of one image for the slots [slotBegin, slotEnd) (slot = row · segments +
    /// segment): weights packed by <see cref="PackDirectWeights{T}"/> in blocks of L channels, offsets as for
    /// <see cref="DirectConv2DPacked{T}"/>.
    /// </summary>
    private static void DirectChannelsPacked<T>(ReadOnlySpan<T> xPad, ReadOnlySpan<T> packed, ReadOnlySpan<int> offsets, int outChannels, ReadOnlySpan<T> bias,
        Span<T> y, int outH, int outW, int wp, DirectConvPath path, int slotBegin, int slotEnd, bool relu) where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool wide = path == DirectConvPath.Vector512 || (path == DirectConvPath.Auto && Vector512.IsHardwareAccelerated);
        if (wide) DirectChannelsRun<T, Vector512<T>, Simd512<T>>(xPad, packed, offsets, outChannels, bias, y, outH, outW, wp, slotBegin, slotEnd, relu);
        else DirectChannelsRun<T, Vector256<T>, Simd256<T>>(xPad, packed, offsets, outChannels, bias, y, outH, outW, wp, slotBegin, slotEnd, relu);
    }

    private static void DirectChannelsRun<T, TV, TOps>(ReadOnlySpan<T> xPad, ReadOnlySpan<T> packed, ReadOnlySpan<int> offsets, int outChannels, ReadOnlySpan<T> bias,
        Span<T> y, int outH, int outW, int wp, int slotBegin, int slotEnd, bool relu)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : struct where TOps : struct, IDirectSimd<TV, T>
    {
        int l = TOps.Count, taps = offsets.Length, blocks = (outChannels + l - 1) / l, segments = ChannelSegments(outW), plane = outH * outW;
        int slots = Math.Min(slotEnd, outH * segments);
        if (y.Length < outChannels * plane) throw new ArgumentException("y is too short for the output planes.");
        bool hasBias = !bias.IsEmpty;
        ref T x = ref MemoryMarshal.GetReference(xPad);
        ref int off = ref MemoryMarshal.GetReference(offsets);
        ref T w = ref MemoryMarshal.GetReference(packed);
        ref T dst0 = ref MemoryMarshal.GetReference(y);
        Span<T> parked = stackalloc T[ChannelBlockColumns * TOps.Count];
        Span<T> blockBias = stackalloc T[TOps.Count];
        ref T sums = ref MemoryMarshal.GetReference(parked);
        for (int cb = 0; cb < blocks; cb++)
        {
            int co0 = cb * l, kc = Math.Min(l, outChannels - co0);
            // The bias of the block's channels as one vector (zeros past the last channel, which are not stored).
            blockBias.Clear();
            if (hasBias) bias.Slice(co0, kc).CopyTo(blockBias);
            TV b = TOps.Load(ref MemoryMarshal.GetReference(blockBias), 0);
            ref T wb = ref Unsafe.Add(ref w, (nint)cb * taps * l);
            for (int s = slotBegin; s < slots; s++)
            {
                int r = s / segments, g = s - r * segments;
                int c0 = (int)((long)outW * g / segments), count = (int)((long)outW * (g + 1) / segments) - c0;
                // Lane k of position j goes to y[co0 + k, r, c0 + j].
                ChannelBlock<T, TV, TOps>(count, ref Unsafe.Add(ref x, r * wp + c0), ref off, taps, ref wb, ref sums,
                    new ChannelStore<T, TV>(b, hasBias, relu, kc, plane), ref Unsafe.Add(ref dst0, co0 * plane + r * outW + c0));
            }
        }
    }

    /// <summary>One register block of <paramref name="count"/> (1..12) positions: the accumulator count as a type, so every variant compiles to straight-line code.</summary>
    private static void ChannelBlock<T, TV, TOps>(int count, ref T x, ref int off, int taps, ref T w, ref T sums, in ChannelStore<T, TV> store, ref T dst)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : struct where TOps : struct, IDirectSimd<TV, T>
    {
        switch (count)
        {
            case 1: ChannelBlock<T, TV, TOps, Columns1>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 2: ChannelBlock<T, TV, TOps, Columns2>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 3: ChannelBlock<T, TV, TOps, Columns3>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 4: ChannelBlock<T, TV, TOps, Columns4>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 5: ChannelBlock<T, TV, TOps, Columns5>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 6: ChannelBlock<T, TV, TOps, Columns6>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 7: ChannelBlock<T, TV, TOps, Columns7>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 8: ChannelBlock<T, TV, TOps, Columns8>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 9: ChannelBlock<T, TV, TOps, Columns9>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 10: ChannelBlock<T, TV, TOps, Columns10>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 11: ChannelBlock<T, TV, TOps, Columns11>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            case 12: ChannelBlock<T, TV, TOps, Columns12>(ref x, ref off, taps, ref w, ref sums, store, ref dst); break;
            default: throw new ArgumentOutOfRangeException(nameof(count), count, "A channel block holds 1 to 12 positions.");
        }
    }

    /// <summary>
    /// Positions 0..R−1 (R = <typeparamref name="TR"/>.Count) reading from x + j: per tap one weight vector load and R
    /// broadcast multiply-adds. Then + bias and max(·, 0) on the accumulators, parked at sums[j·L], and stored transposed:
    /// dst[k·plane + j] = sums[j·L + k] for the block's channels k, every loop over j unrolled.
    /// </summary>
    private static void ChannelBlock<T, TV, TOps, TR>(ref T x, ref int off, int taps, ref T w, ref T sums, in ChannelStore<T, TV> store, ref T dst)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : struct where TOps : struct, IDirectSimd<TV, T> where TR : struct, IColumnCount
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        TV a6 = default, a7 = default, a8 = default, a9 = default, a10 = default, a11 = default;
        int l = TOps.Count, n = TR.Count;
        for (int t = 0; t < taps; t++)
        {
            ref T xt = ref Unsafe.Add(ref x, Unsafe.Add(ref off, t));
            TV wv = TOps.Load(ref w, (nint)t * l);
            a0 = TOps.MultiplyAdd(wv, TOps.Broadcast(xt), a0);
            if (n > 1) a1 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 1)), a1);
            if (n > 2) a2 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 2)), a2);
            if (n > 3) a3 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 3)), a3);
            if (n > 4) a4 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 4)), a4);
            if (n > 5) a5 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 5)), a5);
            if (n > 6) a6 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 6)), a6);
            if (n > 7) a7 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 7)), a7);
            if (n > 8) a8 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 8)), a8);
            if (n > 9) a9 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 9)), a9);
            if (n > 10) a10 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 10)), a10);
            if (n > 11) a11 = TOps.MultiplyAdd(wv, TOps.Broadcast(Unsafe.Add(ref xt, 11)), a11);
        }
        TOps.Store(store.Finish<TOps>(a0), ref sums, 0);
        if (n > 1) TOps.Store(store.Finish<TOps>(a1), ref sums, 1 * l);
        if (n > 2) TOps.Store(store.Finish<TOps>(a2), ref sums, 2 * l);
        if (n > 3) TOps.Store(store.Finish<TOps>(a3), ref sums, 3 * l);
        if (n > 4) TOps.Store(store.Finish<TOps>(a4), ref sums, 4 * l);
        if (n > 5) TOps.Store(store.Finish<TOps>(a5), ref sums, 5 * l);
        if (n > 6) TOps.Store(store.Finish<TOps>(a6), ref sums, 6 * l);
        if (n > 7) TOps.Store(store.Finish<TOps>(a7), ref sums, 7 * l);
        if (n > 8) TOps.Store(store.Finish<TOps>(a8), ref sums, 8 * l);
        if (n > 9) TOps.Store(store.Finish<TOps>(a9), ref sums, 9 * l);
        if (n > 10) TOps.Store(store.Finish<TOps>(a10), ref sums, 10 * l);
        if (n > 11) TOps.Store(store.Finish<TOps>(a11), ref sums, 11 * l);
        for (int k = 0; k < store.Channels; k++)
        {
            ref T row = ref Unsafe.Add(ref dst, k * store.Plane);
            ref T lane = ref Unsafe.Add(ref sums, k);
            row = lane;
            if (n > 1) Unsafe.Add(ref row, 1) = Unsafe.Add(ref lane, 1 * l);
            if (n > 2) Unsafe.Add(ref row, 2) = Unsafe.Add(ref lane, 2 * l);
            if (n > 3) Unsafe.Add(ref row, 3) = Unsafe.Add(ref lane, 3 * l);
            if (n > 4) Unsafe.Add(ref row, 4) = Unsafe.Add(ref lane, 4 * l);
            if (n > 5) Unsafe.Add(ref row, 5) = Unsafe.Add(ref lane, 5 * l);
            if (n > 6) Unsafe.Add(ref row, 6) = Unsafe.Add(ref lane, 6 * l);
            if (n > 7) Unsafe.Add(ref row, 7) = Unsafe.Add(ref lane, 7 * l);
            if (n > 8) Unsafe.Add(ref row, 8) = Unsafe.Add(ref lane, 8 * l);
            if (n > 9) Unsafe.Add(ref row, 9) = Unsafe.Add(ref lane, 9 * l);
            if (n > 10) Unsafe.Add(ref row, 10) = Unsafe.Add(ref lane, 10 * l);
            if (n > 11) Unsafe.Add(ref row, 11) = Unsafe.Add(ref lane, 11 * l);
        }
    }

    /// <summary>The output side of a channel block: bias vector, fused Relu, channels kept, output plane size.</summary>
    private readonly struct ChannelStore<T, TV>(TV bias, bool hasBias, bool relu, int channels, int plane) where T : unmanaged where TV : struct
    {
        public int Channels { get; } = channels;

        public int Plane { get; } = plane;

        /// <summary>sum + bias, then max(·, 0) for a fused Relu (the order of the column kernel's store).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Finish<TOps>(TV sum) where TOps : struct, IDirectSimd<TV, T>
        {
            if (hasBias) sum = TOps.Add(sum, bias);
            if (relu) sum = TOps.Relu(sum);
            return sum;
        }
    }

    /// <summary>A register block's position count as a type (the JIT folds <see cref="Count"/> per instantiation).</summary>
    private interface IColumnCount
    {
        static abstract int Count { get; }
    }

    private readonly struct Columns1 : IColumnCount { public static int Count => 1; }
    private readonly struct Columns2 : IColumnCount { public static int Count => 2; }
    private readonly struct Columns3 : IColumnCount { public static int Count => 3; }
    private readonly struct Columns4 : IColumnCount { public static int Count => 4; }
    private readonly struct Columns5 : IColumnCount { public static int Count => 5; }
    private readonly struct Columns6 : IColumnCount { public static int Count => 6; }
    private readonly struct Columns7 : IColumnCount { public static int Count => 7; }
    private readonly struct Columns8 : IColumnCount { public static int Count => 8; }
    private readonly struct Columns9 : IColumnCount { public static int Count => 9; }
    private readonly struct Columns10 : IColumnCount { public static int Count => 10; }
    private readonly struct Columns11 : IColumnCount { public static int Count => 11; }
    private readonly struct Columns12 : IColumnCount { public static int Count => 12; }
}
