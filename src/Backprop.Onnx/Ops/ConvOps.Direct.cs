using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Ops;

/// <summary>Which vector width <see cref="ConvOps.DirectConv2D{T}"/> runs; <see cref="Auto"/> picks the widest accelerated.</summary>
internal enum DirectConvPath
{
    /// <summary>Vector512 when accelerated, else Vector256.</summary>
    Auto,
    /// <summary>Vector512 (16 floats or 8 doubles per vector).</summary>
    Vector512,
    /// <summary>Vector256 (8 floats or 4 doubles per vector).</summary>
    Vector256,
}

/// <summary>
/// Direct 2-D convolution over zero-padded input planes, stride 1, for small channel counts (no im2col, no packing of
/// the input). With the input planes padded to hp × wp, output (r, c) of channel co is
/// y[co, r, c] = Σ_{ci, i, j} W[co, ci, i, j] · xPad[ci, r + i·dh, c + j·dw] (ONNX spec "Conv" with the padding already
/// applied), so a vector of consecutive output columns c..c+L−1 reads consecutive input columns for every tap
/// (ci, i, j). A register block of 4 output channels (6 in Conv's forward where that pads fewer channels,
/// ConvOps.DirectBlock6.cs) × 4 such vectors accumulates one broadcast weight times one loaded
/// input vector per tap and pair, the loop structure of MLAS's NCHWc direct convolution and of the "direct convolution"
/// of Zhang, Franchetti and Low, "High Performance Zero-Memory Overhead Direct Convolutions" (ICML 2018).
/// </summary>
/// <remarks>
/// Each output row is split into ⌈outW / L⌉ vector slots; the last slot of a row computes lanes past outW from the
/// input that follows (the rest of the padded row, the next row, or the slack after the last plane) and drops them on
/// the store. Every output element is the sum over taps in the order (ci, i, j), then + bias, then + y when
/// accumulating, whatever the block it falls in, so results do not depend on the vector width's blocking or on threads.
/// </remarks>
internal static partial class ConvOps
{
    /// <summary>Readable elements <see cref="DirectConv2D{T}"/> needs after the last padded plane (one vector of floats).</summary>
    internal const int DirectSlack = 16;

    /// <summary>Output channels per register block; the packed weights pad the channel count up to a multiple of it.</summary>
    private const int DirectBlockChannels = 4;

    /// <summary>Whether some vector width of <see cref="DirectConv2D{T}"/> is accelerated on this machine.</summary>
    internal static bool DirectConvAccelerated => Vector512.IsHardwareAccelerated || Vector256.IsHardwareAccelerated;

    /// <summary>
    /// y[co, r, c] (+)= bias[co] + Σ_{ci, i, j} w[co, ci, i, j] · xPad[ci, r + i·dh, c + j·dw] for co &lt; outChannels,
    /// r &lt; outH, c &lt; outW: a stride-1 convolution of <paramref name="channels"/> zero-padded planes (hp × wp, one after
    /// the other, followed by <see cref="DirectSlack"/> readable elements of any value) with weights
    /// [outChannels, channels, kh, kw]. y holds outChannels planes of outH × outW. An empty <paramref name="bias"/> adds
    /// nothing; <paramref name="accumulate"/> adds the result to y instead of overwriting it. Ready for reuse: ConvGrad's dX
    /// is this convolution of the padded dY with the transposed, flipped weights.
    /// </summary>
    /// <exception cref="ArgumentException">A size does not fit: hp &lt; outH + (kh − 1)·dh, wp &lt; outW + (kw − 1)·dw, or a span is too short.</exception>
    internal static void DirectConv2D<T>(ReadOnlySpan<T> xPad, int channels, int hp, int wp, ReadOnlySpan<T> w, int outChannels, int kh, int kw, int dh, int dw,
        ReadOnlySpan<T> bias, Span<T> y, int outH, int outW, bool accumulate, DirectConvPath path = DirectConvPath.Auto)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (channels < 0 || outChannels < 0 || kh < 1 || kw < 1 || dh < 1 || dw < 1 || outH < 0 || outW < 0)
            throw new ArgumentException($"Invalid direct convolution sizes: channels {channels}, outChannels {outChannels}, kernel {kh}×{kw}, dilations {dh}×{dw}, output {outH}×{outW}.");
        if (hp < outH + (kh - 1) * dh || wp < outW + (kw - 1) * dw)
            throw new ArgumentException($"Padded planes of {hp}×{wp} are too small for {outH}×{outW} outputs of a {kh}×{kw} kernel dilated {dh}×{dw}.");
        int taps = channels * kh * kw;
        if (xPad.Length < (long)channels * hp * wp + DirectSlack) throw new ArgumentException($"xPad holds {xPad.Length} elements; {channels} planes of {hp}×{wp} and {DirectSlack} of slack are needed.");
        if (w.Length < (long)outChannels * taps) throw new ArgumentException($"w holds {w.Length} elements; {outChannels}×{taps} are needed.");
        if (y.Length < (long)outChannels * outH * outW) throw new ArgumentException($"y holds {y.Length} elements; {outChannels} planes of {outH}×{outW} are needed.");
        if (!bias.IsEmpty && bias.Length < outChannels) throw new ArgumentException($"bias holds {bias.Length} elements; {outChannels} are needed.");
        if (outChannels == 0 || outH == 0 || outW == 0) return;
        if (taps == 0)
        {
            // No input channels: the sum is empty, the output is the bias.
            for (int co = 0; co < outChannels; co++)
            {
                var plane = y.Slice(co * outH * outW, outH * outW);
                T b = bias.IsEmpty ? T.Zero : bias[co];
                for (int e = 0; e < plane.Length; e++) plane[e] = accumulate ? plane[e] + b : b;
            }
            return;
        }
        T[] packed = ArrayPool<T>.Shared.Rent(DirectPackedLength(outChannels, taps));
        int[] offsets = ArrayPool<int>.Shared.Rent(taps);
        try
        {
            PackDirectWeights(w, outChannels, taps, packed);
            DirectOffsets(channels, hp, wp, kh, kw, dh, dw, offsets);
            DirectConv2DPacked(xPad, packed, offsets.AsSpan(0, taps), outChannels, bias, y, outH, outW, wp, accumulate, path);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(offsets);
            ArrayPool<T>.Shared.Return(packed);
        }
    }

    /// <summary>
    /// Output slots of a direct convolution (rows × ⌈outW / L⌉ for the widest vector L of <typeparamref name="T"/> on
    /// this path): callers split [0, slots) to share one image among threads.
    /// </summary>
    private static int DirectSlots<T>(int outH, int outW, DirectConvPath path) where T : unmanaged
    {
        bool wide = path == DirectConvPath.Vector512 || (path == DirectConvPath.Auto && Vector512.IsHardwareAccelerated);
        int lanes = wide ? Vector512<T>.Count : Vector256<T>.Count;
        return outH * ((outW + lanes - 1) / lanes);
    }

    /// <summary>Length of the packed weights of <paramref name="outChannels"/> channels with <paramref name="taps"/> taps each, in blocks of <paramref name="block"/> channels.</summary>
    private static int DirectPackedLength(int outChannels, int taps, int block = DirectBlockChannels) =>
        (outChannels + block - 1) / block * block * taps;

    /// <summary>
    /// Packs w [outChannels, taps] into blocks of <paramref name="block"/> channels (4 for the column-vectorized kernel, a
    /// vector's lanes for the channel-vectorized one), tap-major: packed[(cb·taps + t)·block + k] = w[cb·block + k, t], zero
    /// for channels past the end, so a block's weights of one tap are adjacent.
    /// </summary>
    private static void PackDirectWeights<T>(ReadOnlySpan<T> w, int outChannels, int taps, Span<T> packed, int block = DirectBlockChannels) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int blocks = (outChannels + block - 1) / block;
        for (int cb = 0; cb < blocks; cb++)
            for (int k = 0; k < block; k++)
            {
                int co = cb * block + k;
                for (int t = 0; t < taps; t++)
                    packed[(cb * taps + t) * block + k] = co < outChannels ? w[co * taps + t] : T.Zero;
            }
    }

    /// <summary>offsets[(ci·kh + i)·kw + j] = ci·hp·wp + i·dh·wp + j·dw: where tap (ci, i, j) reads, relative to the output position.</summary>
    private static void DirectOffsets(int channels, int hp, int wp, int kh, int kw, int dh, int dw, Span<int> offsets)
    {
        for (int ci = 0; ci < channels; ci++)
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++)
                    offsets[(ci * kh + i) * kw + j] = ci * hp * wp + i * dh * wp + j * dw;
    }

    /// <summary>
    /// <see cref="DirectConv2D{T}"/> with the weights packed by <see cref="PackDirectWeights{T}"/> and the tap offsets
    /// given, for the output slots [<paramref name="slotBegin"/>, <paramref name="slotEnd"/>) only (see <see cref="DirectSlots"/>).
    /// </summary>
    private static void DirectConv2DPacked<T>(ReadOnlySpan<T> xPad, ReadOnlySpan<T> packed, ReadOnlySpan<int> offsets, int outChannels, ReadOnlySpan<T> bias,
        Span<T> y, int outH, int outW, int wp, bool accumulate, DirectConvPath path, int slotBegin = 0, int slotEnd = int.MaxValue, bool relu = false,
        int blockChannels = DirectBlockChannels) where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool wide = path == DirectConvPath.Vector512 || (path == DirectConvPath.Auto && Vector512.IsHardwareAccelerated);
        if (wide) DirectConv2DRun<T, Vector512<T>, Simd512<T>>(xPad, packed, offsets, outChannels, bias, y, outH, outW, wp, accumulate, slotBegin, slotEnd, relu, blockChannels);
        else DirectConv2DRun<T, Vector256<T>, Simd256<T>>(xPad, packed, offsets, outChannels, bias, y, outH, outW, wp, accumulate, slotBegin, slotEnd, relu, blockChannels);
    }

    private static void DirectConv2DRun<T, TV, TOps>(ReadOnlySpan<T> xPad, ReadOnlySpan<T> packed, ReadOnlySpan<int> offsets, int outChannels, ReadOnlySpan<T> bias,
        Span<T> y, int outH, int outW, int wp, bool accumulate, int slotBegin, int slotEnd, bool relu, int blockChannels)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : struct where TOps : struct, IDirectSimd<TV, T>
    {
        var output = new DirectOutput<T>(y, bias, outChannels, outH, outW, wp, TOps.Count, accumulate, relu);
        int bc = blockChannels, taps = offsets.Length, blocks = (outChannels + bc - 1) / bc, slots = Math.Min(slotEnd, output.Slots);
        bool six = bc == DirectBlockChannels6;
        if (!six && bc != DirectBlockChannels) throw new ArgumentOutOfRangeException(nameof(blockChannels), bc, "Blocks of 4 or 6 channels.");
        if (six && accumulate) throw new ArgumentException("Blocks of 6 channels store without accumulating.", nameof(accumulate));
        ref T x = ref MemoryMarshal.GetReference(xPad);
        ref int off = ref MemoryMarshal.GetReference(offsets);
        ref T w = ref MemoryMarshal.GetReference(packed);
        Span<T> parked = stackalloc T[4 * DirectBlockChannels6 * TOps.Count];
        ref T sums = ref MemoryMarshal.GetReference(parked);
        Span<int> source = stackalloc int[4], dest = stackalloc int[4], count = stackalloc int[4];
        int s = slotBegin;
        // Four slots at a time (the input rows they read stay in L1 while every channel block passes over them), then one.
        for (; s + 4 <= slots; s += 4)
        {
            for (int v = 0; v < 4; v++) output.Slot(s + v, out source[v], out dest[v], out count[v]);
            for (int cb = 0; cb < blocks; cb++)
            {
                if (six)
                {
                    // Stores from the accumulators itself (Conv's forward, never accumulating).
                    var store = output.Block(cb * bc, bc, dest, count);
                    DirectBlock6x4<T, TV, TOps>(ref Unsafe.Add(ref x, source[0]), ref Unsafe.Add(ref x, source[1]), ref Unsafe.Add(ref x, source[2]), ref Unsafe.Add(ref x, source[3]),
                        ref off, taps, ref Unsafe.Add(ref w, cb * taps * bc), in store);
                    continue;
                }
                DirectBlock4x4<T, TV, TOps>(ref Unsafe.Add(ref x, source[0]), ref Unsafe.Add(ref x, source[1]), ref Unsafe.Add(ref x, source[2]), ref Unsafe.Add(ref x, source[3]),
                    ref off, taps, ref Unsafe.Add(ref w, cb * taps * bc), ref sums);
                output.Put<TV, TOps>(ref sums, cb * bc, dest, count, bc);
            }
        }
        for (; s < slots; s++)
        {
            output.Slot(s, out source[0], out dest[0], out count[0]);
            for (int cb = 0; cb < blocks; cb++)
            {
                if (six) DirectBlock6x1<T, TV, TOps>(ref Unsafe.Add(ref x, source[0]), ref off, taps, ref Unsafe.Add(ref w, cb * taps * bc), ref sums);
                else DirectBlock4x1<T, TV, TOps>(ref Unsafe.Add(ref x, source[0]), ref off, taps, ref Unsafe.Add(ref w, cb * taps * bc), ref sums);
                output.Put<TV, TOps>(ref sums, cb * bc, dest[..1], count[..1], bc);
            }
        }
    }

    /// <summary>
    /// One channel block at four slots reading from x0..x3: 16 accumulators, 4 input loads and 4 weight broadcasts per
    /// tap; the sums are parked at sums[(k·4 + v)·L] for channel k, slot v (no call while they are in registers).
    /// </summary>
    private static void DirectBlock4x4<T, TV, TOps>(ref T x0, ref T x1, ref T x2, ref T x3, ref int off, int taps, ref T w, ref T sums)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : struct where TOps : struct, IDirectSimd<TV, T>
    {
        TV a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        TV a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        for (int t = 0; t < taps; t++)
        {
            nint o = Unsafe.Add(ref off, t);
            TV v0 = TOps.Load(ref x0, o), v1 = TOps.Load(ref x1, o), v2 = TOps.Load(ref x2, o), v3 = TOps.Load(ref x3, o);
            ref T wt = ref Unsafe.Add(ref w, t * DirectBlockChannels);
            TV b = TOps.Broadcast(wt);
            a00 = TOps.MultiplyAdd(b, v0, a00); a01 = TOps.MultiplyAdd(b, v1, a01); a02 = TOps.MultiplyAdd(b, v2, a02); a03 = TOps.MultiplyAdd(b, v3, a03);
            b = TOps.Broadcast(Unsafe.Add(ref wt, 1));
            a10 = TOps.MultiplyAdd(b, v0, a10); a11 = TOps.MultiplyAdd(b, v1, a11); a12 = TOps.MultiplyAdd(b, v2, a12); a13 = TOps.MultiplyAdd(b, v3, a13);
            b = TOps.Broadcast(Unsafe.Add(ref wt, 2));
            a20 = TOps.MultiplyAdd(b, v0, a20); a21 = TOps.MultiplyAdd(b, v1, a21); a22 = TOps.MultiplyAdd(b, v2, a22); a23 = TOps.MultiplyAdd(b, v3, a23);
            b = TOps.Broadcast(Unsafe.Add(ref wt, 3));
            a30 = TOps.MultiplyAdd(b, v0, a30); a31 = TOps.MultiplyAdd(b, v1, a31); a32 = TOps.MultiplyAdd(b, v2, a32); a33 = TOps.MultiplyAdd(b, v3, a33);
        }
        // Park the sums for the caller's store: a call made here with 16 vectors live makes the JIT spill them inside the loop.
        int l = TOps.Count;
        TOps.Store(a00, ref sums, 0); TOps.Store(a01, ref sums, l); TOps.Store(a02, ref sums, 2 * l); TOps.Store(a03, ref sums, 3 * l);
        TOps.Store(a10, ref sums, 4 * l); TOps.Store(a11, ref sums, 5 * l); TOps.Store(a12, ref sums, 6 * l); TOps.Store(a13, ref sums, 7 * l);
        TOps.Store(a20, ref sums, 8 * l); TOps.Store(a21, ref sums, 9 * l); TOps.Store(a22, ref sums, 10 * l); TOps.Store(a23, ref sums, 11 * l);
        TOps.Store(a30, ref sums, 12 * l); TOps.Store(a31, ref sums, 13 * l); TOps.Store(a32, ref sums, 14 * l); TOps.Store(a33, ref sums, 15 * l);
    }

    /// <summary>One channel block at one slot (those left after the groups of four); sums parked at sums[k·L].</summary>
    private static void DirectBlock4x1<T, TV, TOps>(ref T x0, ref int off, int taps, ref T w, ref T sums)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : struct where TOps : struct, IDirectSimd<TV, T>
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default;
        for (int t = 0; t < taps; t++)
        {
            TV v = TOps.Load(ref x0, Unsafe.Add(ref off, t));
            ref T wt = ref Unsafe.Add(ref w, t * DirectBlockChannels);
            a0 = TOps.MultiplyAdd(TOps.Broadcast(wt), v, a0);
            a1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref wt, 1)), v, a1);
            a2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref wt, 2)), v, a2);
            a3 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref wt, 3)), v, a3);
        }
        int l = TOps.Count;
        TOps.Store(a0, ref sums, 0); TOps.Store(a1, ref sums, l); TOps.Store(a2, ref sums, 2 * l); TOps.Store(a3, ref sums, 3 * l);
    }
}
