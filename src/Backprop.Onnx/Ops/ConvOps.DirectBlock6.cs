using System.Numerics;
using System.Runtime.CompilerServices;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Register blocks of 6 output channels for the column-vectorized direct convolution (<see cref="DirectConv2D{T}"/>):
/// a layer of 5 or 6 channels (LeNet's conv1 has 6) fills blocks of 4 only to 6/8, and 6 channels × 4 slots is 24
/// accumulators + 4 input vectors + 1 broadcast, which the 32 vector registers of AVX-512 hold.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>Output channels of the wider register block.</summary>
    private const int DirectBlockChannels6 = 6;

    /// <summary>
    /// Channels per register block of the column-vectorized forward: 6 when blocks of 6 pad fewer channels than blocks of 4
    /// (M = 5, 6, 17, 18, 29, 30, …), else 4; only with AVX-512's 32 vector registers.
    /// </summary>
    internal static int DirectForwardBlockChannels(int outChannels, DirectConvPath path = DirectConvPath.Auto)
    {
        bool wide = path == DirectConvPath.Vector512 || (path == DirectConvPath.Auto && System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated);
        return wide && RoundUp(outChannels, DirectBlockChannels6) < RoundUp(outChannels, DirectBlockChannels) ? DirectBlockChannels6 : DirectBlockChannels;
    }

    /// <summary>
    /// One block of 6 channels at four slots reading from x0..x3: 24 accumulators, 4 input loads and 6 weight broadcasts
    /// per tap; then + bias, max(·, 0) and the stores straight from the accumulators (no parking: the 25 taps of a
    /// one-channel 5×5 convolution leave the store a large share of the time).
    /// </summary>
    private static void DirectBlock6x4<T, TV, TOps>(ref T x0, ref T x1, ref T x2, ref T x3, ref int off, int taps, ref T w, in DirectBlockStore<T> store)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : struct where TOps : struct, IDirectSimd<TV, T>
    {
        TV a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        TV a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        TV a40 = default, a41 = default, a42 = default, a43 = default, a50 = default, a51 = default, a52 = default, a53 = default;
        for (int t = 0; t < taps; t++)
        {
            nint o = Unsafe.Add(ref off, t);
            TV v0 = TOps.Load(ref x0, o), v1 = TOps.Load(ref x1, o), v2 = TOps.Load(ref x2, o), v3 = TOps.Load(ref x3, o);
            ref T wt = ref Unsafe.Add(ref w, t * DirectBlockChannels6);
            TV b = TOps.Broadcast(wt);
            a00 = TOps.MultiplyAdd(b, v0, a00); a01 = TOps.MultiplyAdd(b, v1, a01); a02 = TOps.MultiplyAdd(b, v2, a02); a03 = TOps.MultiplyAdd(b, v3, a03);
            b = TOps.Broadcast(Unsafe.Add(ref wt, 1));
            a10 = TOps.MultiplyAdd(b, v0, a10); a11 = TOps.MultiplyAdd(b, v1, a11); a12 = TOps.MultiplyAdd(b, v2, a12); a13 = TOps.MultiplyAdd(b, v3, a13);
            b = TOps.Broadcast(Unsafe.Add(ref wt, 2));
            a20 = TOps.MultiplyAdd(b, v0, a20); a21 = TOps.MultiplyAdd(b, v1, a21); a22 = TOps.MultiplyAdd(b, v2, a22); a23 = TOps.MultiplyAdd(b, v3, a23);
            b = TOps.Broadcast(Unsafe.Add(ref wt, 3));
            a30 = TOps.MultiplyAdd(b, v0, a30); a31 = TOps.MultiplyAdd(b, v1, a31); a32 = TOps.MultiplyAdd(b, v2, a32); a33 = TOps.MultiplyAdd(b, v3, a33);
            b = TOps.Broadcast(Unsafe.Add(ref wt, 4));
            a40 = TOps.MultiplyAdd(b, v0, a40); a41 = TOps.MultiplyAdd(b, v1, a41); a42 = TOps.MultiplyAdd(b, v2, a42); a43 = TOps.MultiplyAdd(b, v3, a43);
            b = TOps.Broadcast(Unsafe.Add(ref wt, 5));
            a50 = TOps.MultiplyAdd(b, v0, a50); a51 = TOps.MultiplyAdd(b, v1, a51); a52 = TOps.MultiplyAdd(b, v2, a52); a53 = TOps.MultiplyAdd(b, v3, a53);
        }
        store.Channel<TV, TOps>(0, a00, a01, a02, a03);
        if (store.Channels > 1) store.Channel<TV, TOps>(1, a10, a11, a12, a13);
        if (store.Channels > 2) store.Channel<TV, TOps>(2, a20, a21, a22, a23);
        if (store.Channels > 3) store.Channel<TV, TOps>(3, a30, a31, a32, a33);
        if (store.Channels > 4) store.Channel<TV, TOps>(4, a40, a41, a42, a43);
        if (store.Channels > 5) store.Channel<TV, TOps>(5, a50, a51, a52, a53);
    }

    /// <summary>One block of 6 channels at one slot; sums parked at sums[k·L].</summary>
    private static void DirectBlock6x1<T, TV, TOps>(ref T x0, ref int off, int taps, ref T w, ref T sums)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : struct where TOps : struct, IDirectSimd<TV, T>
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        for (int t = 0; t < taps; t++)
        {
            TV v = TOps.Load(ref x0, Unsafe.Add(ref off, t));
            ref T wt = ref Unsafe.Add(ref w, t * DirectBlockChannels6);
            a0 = TOps.MultiplyAdd(TOps.Broadcast(wt), v, a0);
            a1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref wt, 1)), v, a1);
            a2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref wt, 2)), v, a2);
            a3 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref wt, 3)), v, a3);
            a4 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref wt, 4)), v, a4);
            a5 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref wt, 5)), v, a5);
        }
        int l = TOps.Count;
        TOps.Store(a0, ref sums, 0); TOps.Store(a1, ref sums, l); TOps.Store(a2, ref sums, 2 * l);
        TOps.Store(a3, ref sums, 3 * l); TOps.Store(a4, ref sums, 4 * l); TOps.Store(a5, ref sums, 5 * l);
    }
}
