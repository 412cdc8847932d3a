using System.Buffers;
using System.Numerics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Conv forward by <see cref="DirectConv2D{T}"/> for 2-D, stride-1, ungrouped convolutions with few weights (LeNet's and
/// a small ResNet's convolutions): the weights are packed once per call, then every image's input planes are zero-padded
/// into a rented buffer and convolved directly into Y, images split over the threads.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>
    /// Most weights (M·C·kh·kw) a direct convolution takes; beyond it (many channels) the im2col GEMM reuses each loaded
    /// input across more output channels than a 4-channel register block does.
    /// </summary>
    private const int DirectMaxWeights = 1 << 14;

    /// <summary>Narrowest output row a direct convolution takes (narrower rows would leave most vector lanes idle).</summary>
    private const int DirectMinOutputWidth = 8;

    /// <summary>Work items per thread, so a thread slowed by other work on the machine leaves its share to the others.</summary>
    private const int DirectItemsPerThread = 4;

    /// <summary>Whether <see cref="ConvForwardDirect{T}"/> applies: see the type summary.</summary>
    internal static bool UseDirect(ConvShape s) =>
        s.Input.Length == 2 && s.Group == 1 && s.Strides[0] == 1 && s.Strides[1] == 1 && s.N > 0 && s.C > 0 && s.M > 0
        && s.Output[0] > 0 && s.Output[1] >= DirectMinOutputWidth && (long)s.M * s.C * s.KernelSize <= DirectMaxWeights
        && DirectConvAccelerated;

    /// <summary>Conv forward of X (N, C, H, W) by direct convolution; the caller checked <see cref="UseDirect"/>.</summary>
    private static void ConvForwardDirect<T>(T[] x, T[] w, T[]? bias, T[] y, ConvShape s, int threads, DirectConvPath path = DirectConvPath.Auto)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int taps = s.C * s.KernelSize;
        T[] packed = ArrayPool<T>.Shared.Rent(DirectPackedLength(s.M, taps));
        int[] offsets = ArrayPool<int>.Shared.Rent(taps);
        var job = DirectForwardJob<T>.Rent();
        try
        {
            PackDirectWeights<T>(w, s.M, taps, packed);
            int hp = s.Output[0] + (s.Kernel[0] - 1) * s.Dilations[0], wp = s.Output[1] + (s.Kernel[1] - 1) * s.Dilations[1];
            DirectOffsets(s.C, hp, wp, s.Kernel[0], s.Kernel[1], s.Dilations[0], s.Dilations[1], offsets);
            job.Set(x, packed, offsets, taps, bias, y, s, hp, wp, path);
            int chunks = threads <= 1 ? 1 : Math.Min(s.N, threads * DirectItemsPerThread);
            if (chunks == 1) job.Run(0, s.N);
            else ChunkRunner.ForRanges(s.N, chunks, 0, threads, job.Body);
        }
        finally
        {
            job.Release();
            ArrayPool<int>.Shared.Return(offsets);
            ArrayPool<T>.Shared.Return(packed);
        }
    }

    /// <summary>
    /// One direct Conv forward's arguments and its per-range body, kept in a one-slot cache so a steady-state call allocates
    /// neither a closure nor a delegate (a second concurrent call makes its own).
    /// </summary>
    private sealed class DirectForwardJob<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private static DirectForwardJob<T>? _cached;

        private T[] _x = [], _packed = [], _y = [];
        private T[]? _bias;
        private int[] _offsets = [];
        private int _taps, _hp, _wp;
        private ConvShape? _shape;
        private DirectConvPath _path;

        private DirectForwardJob() => Body = Run;

        /// <summary><see cref="Run"/> as a delegate, made once per job.</summary>
        public Action<int, int> Body { get; }

        public static DirectForwardJob<T> Rent() => Interlocked.Exchange(ref _cached, null) ?? new DirectForwardJob<T>();

        public void Set(T[] x, T[] packed, int[] offsets, int taps, T[]? bias, T[] y, ConvShape shape, int hp, int wp, DirectConvPath path)
        {
            (_x, _packed, _offsets, _taps, _bias, _y, _shape, _hp, _wp, _path) = (x, packed, offsets, taps, bias, y, shape, hp, wp, path);
        }

        /// <summary>Drops the references to the call's arrays and returns the job to the cache.</summary>
        public void Release()
        {
            (_x, _packed, _offsets, _bias, _y, _shape) = ([], [], [], null, [], null);
            Volatile.Write(ref _cached, this);
        }

        /// <summary>Images [first, end): pad each image's planes, then convolve them into its output planes.</summary>
        public void Run(int first, int end)
        {
            var s = _shape!;
            int inSize = s.InputSize, outSize = s.OutputSize, padLength = s.C * _hp * _wp;
            T[] pad = ArrayPool<T>.Shared.Rent(padLength + DirectSlack);
            try
            {
                pad.AsSpan(padLength, DirectSlack).Clear();
                for (int n = first; n < end; n++)
                {
                    PadPlanes(_x, (long)n * s.C * inSize, s.C, s.Input[0], s.Input[1], _hp, _wp, s.PadBegin[0], s.PadBegin[1], pad);
                    DirectConv2DPacked<T>(pad, _packed, _offsets.AsSpan(0, _taps), s.M, _bias, _y.AsSpan((int)((long)n * s.M * outSize), s.M * outSize),
                        s.Output[0], s.Output[1], _wp, accumulate: false, _path);
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(pad);
            }
        }
    }
}
