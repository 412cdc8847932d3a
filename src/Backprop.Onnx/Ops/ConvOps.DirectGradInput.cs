using System.Buffers;
using System.Numerics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Conv's input gradient, 2-D, stride 1, ungrouped, as a forward direct convolution (<see cref="DirectConv2D{T}"/>):
/// dX[ci, y, x] = Σ_{co, i, j} dY[co, y + ph − i·dh, x + pw − j·dw] · W[co, ci, i, j]. With i' = kh − 1 − i and dY
/// zero-padded by (kh − 1)·dh − ph rows on top and (kw − 1)·dw − pw columns on the left into planes of
/// (H + (kh − 1)·dh) × (W + (kw − 1)·dw), this is dX[ci, y, x] = Σ_{co, i', j'} W'[ci, co, i', j'] · dY_pad[co, y + i'·dh, x + j'·dw]
/// with W' = W transposed to [C, M, kh, kw] and flipped in (i, j): the "full" correlation of dY (PyTorch
/// <c>convolution_backward</c> computes grad_input as this transposed convolution). dY positions that fall outside the
/// padded planes (end pads beyond the kernel extent) read only padding of X, so they are dropped.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>Whether <see cref="ConvInputGradDirect{T}"/> applies: see the type summary; sizes as for the forward direct convolution.</summary>
    internal static bool UseDirectInputGrad(ConvShape s) =>
        s.Input.Length == 2 && s.Group == 1 && s.Strides[0] == 1 && s.Strides[1] == 1 && s.N > 0 && s.C > 0 && s.M > 0
        && s.Output[0] > 0 && s.Output[1] > 0 && s.Input[0] > 0 && s.Input[1] >= DirectMinOutputWidth
        && s.PadBegin[0] <= (s.Kernel[0] - 1) * s.Dilations[0] && s.PadBegin[1] <= (s.Kernel[1] - 1) * s.Dilations[1]
        && (long)s.M * s.C * s.Kernel[0] * s.Kernel[1] <= DirectMaxWeights && DirectConvAccelerated;

    /// <summary>dX (written) of Conv by direct convolution of the padded dY; the caller checked <see cref="UseDirectInputGrad"/>.</summary>
    internal static void ConvInputGradDirect<T>(T[] dy, T[] w, T[] dx, ConvShape s, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int kh = s.Kernel[0], kw = s.Kernel[1], k = kh * kw, taps = s.M * k;
        T[] flipped = ArrayPool<T>.Shared.Rent(s.C * taps);
        T[] packed = ArrayPool<T>.Shared.Rent(DirectPackedLength(s.C, taps));
        int[] offsets = ArrayPool<int>.Shared.Rent(taps);
        var job = DirectInputGradJob<T>.Rent();
        try
        {
            // W'[ci, co, i', j'] = W[co, ci, kh − 1 − i', kw − 1 − j'].
            for (int co = 0; co < s.M; co++)
                for (int ci = 0; ci < s.C; ci++)
                {
                    var src = w.AsSpan((co * s.C + ci) * k, k);
                    var dst = flipped.AsSpan((ci * s.M + co) * k, k);
                    for (int t = 0; t < k; t++) dst[k - 1 - t] = src[t];
                }
            PackDirectWeights<T>(flipped.AsSpan(0, s.C * taps), s.C, taps, packed);
            int hp = s.Input[0] + (kh - 1) * s.Dilations[0], wp = s.Input[1] + (kw - 1) * s.Dilations[1];
            DirectOffsets(s.M, hp, wp, kh, kw, s.Dilations[0], s.Dilations[1], offsets);
            job.Set(dy, packed, offsets, taps, dx, s, hp, wp);
            int chunks = threads <= 1 ? 1 : Math.Min(s.N, threads * DirectItemsPerThread);
            if (chunks == 1) job.Run(0, s.N);
            else ChunkRunner.ForRanges(s.N, chunks, 0, threads, job.Body);
        }
        finally
        {
            job.Release();
            ArrayPool<int>.Shared.Return(offsets);
            ArrayPool<T>.Shared.Return(packed);
            ArrayPool<T>.Shared.Return(flipped);
        }
    }

    /// <summary>One direct dX call's arguments and its per-range body, in a one-slot cache so a steady-state call allocates nothing.</summary>
    private sealed class DirectInputGradJob<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private static DirectInputGradJob<T>? _cached;

        private T[] _dy = [], _packed = [], _dx = [];
        private int[] _offsets = [];
        private int _taps, _hp, _wp;
        private ConvShape? _shape;

        private DirectInputGradJob() => Body = Run;

        /// <summary><see cref="Run"/> as a delegate, made once per job.</summary>
        public Action<int, int> Body { get; }

        public static DirectInputGradJob<T> Rent() => Interlocked.Exchange(ref _cached, null) ?? new DirectInputGradJob<T>();

        public void Set(T[] dy, T[] packed, int[] offsets, int taps, T[] dx, ConvShape shape, int hp, int wp) =>
            (_dy, _packed, _offsets, _taps, _dx, _shape, _hp, _wp) = (dy, packed, offsets, taps, dx, shape, hp, wp);

        /// <summary>Drops the references to the call's arrays and returns the job to the cache.</summary>
        public void Release()
        {
            (_dy, _packed, _offsets, _dx, _shape) = ([], [], [], [], null);
            Volatile.Write(ref _cached, this);
        }

        /// <summary>Images [first, end): pad each image's dY planes, then convolve them into its dX planes.</summary>
        public void Run(int first, int end)
        {
            var s = _shape!;
            int inSize = s.Input[0] * s.Input[1], outH = s.Output[0], outW = s.Output[1], padLength = s.M * _hp * _wp;
            int top = (s.Kernel[0] - 1) * s.Dilations[0] - s.PadBegin[0], left = (s.Kernel[1] - 1) * s.Dilations[1] - s.PadBegin[1];
            T[] pad = ArrayPool<T>.Shared.Rent(padLength + DirectSlack);
            try
            {
                pad.AsSpan(padLength, DirectSlack).Clear();
                for (int n = first; n < end; n++)
                {
                    PadPlanes(_dy, (long)n * s.M * outH * outW, s.M, outH, outW, _hp, _wp, top, left, pad);
                    DirectConv2DPacked<T>(pad, _packed, _offsets.AsSpan(0, _taps), s.C, [], _dx.AsSpan((int)((long)n * s.C * inSize), s.C * inSize),
                        s.Input[0], s.Input[1], _wp, accumulate: false, DirectConvPath.Auto);
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(pad);
            }
        }
    }
}
