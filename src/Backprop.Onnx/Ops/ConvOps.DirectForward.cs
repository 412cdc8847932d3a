using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Conv forward by <see cref="DirectConv2D{T}"/> for 2-D ungrouped convolutions with few weights (LeNet's and a small
/// ResNet's convolutions): the weights are packed once per call, then every image's input planes are zero-padded into a
/// rented buffer and convolved directly into Y, images split over the threads.
/// </summary>
/// <remarks>
/// A stride (sh, sw) &gt; 1 becomes a stride-1 convolution by the polyphase split of the padded input: phase (a, b) is
/// the plane q[r, c] = xPad[r·sh + a, c·sw + b], so tap (i, j) of output (r, c) reads phase ((i·dh) mod sh, (j·dw) mod sw)
/// at (r + ⌊i·dh / sh⌋, c + ⌊j·dw / sw⌋): consecutive outputs read consecutive elements again, and the kernel only sees
/// a different table of tap offsets (the input-side decomposition of strided convolution used for FFT and Winograd
/// convolutions, e.g. Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
/// </remarks>
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
        s.Input.Length == 2 && s.Group == 1 && s.N > 0 && s.C > 0 && s.M > 0
        && s.Output[0] > 0 && s.Output[1] >= DirectMinOutputWidth && (long)s.M * s.C * s.KernelSize <= DirectMaxWeights
        && DirectConvAccelerated
        // The (phase) planes of one image and its output planes are indexed with int.
        && (long)s.C * s.Strides[0] * s.Strides[1] * (s.Output[0] + (s.Kernel[0] - 1) * s.Dilations[0] + 1) * (s.Output[1] + (s.Kernel[1] - 1) * s.Dilations[1] + 1) <= int.MaxValue / 2
        && (long)s.M * s.OutputSize <= int.MaxValue / 2;

    /// <summary>Conv forward of X (N, C, H, W) by direct convolution; the caller checked <see cref="UseDirect"/>.</summary>
    private static void ConvForwardDirect<T>(T[] x, T[] w, T[]? bias, T[] y, ConvShape s, int threads, DirectConvPath path = DirectConvPath.Auto, bool relu = false)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int taps = s.C * s.KernelSize;
        // Rows narrower than a vector: the vector runs along the output channels instead (ConvOps.DirectChannels.cs).
        bool channels = UseDirectChannels<T>(s, path);
        int block = channels ? DirectLanes<T>(path) : DirectForwardBlockChannels(s.M, path);
        T[] packed = ArrayPool<T>.Shared.Rent(DirectPackedLength(s.M, taps, block));
        int[] offsets = ArrayPool<int>.Shared.Rent(taps);
        var job = DirectForwardJob<T>.Rent();
        try
        {
            PackDirectWeights<T>(w, s.M, taps, packed, block);
            var phases = new DirectPhases(s);
            phases.Offsets(s.C, s.Kernel[0], s.Kernel[1], s.Dilations[0], s.Dilations[1], offsets);
            // Work items are (image, band of output slots); an image is split into bands only when there are too few images
            // to give every thread several. Each output is computed the same way whatever the split.
            int slots = channels ? s.Output[0] * ChannelSegments(s.Output[1]) : DirectSlots<T>(s.Output[0], s.Output[1], path);
            int bands = threads <= 1 || s.N >= threads * DirectItemsPerThread ? 1 : Math.Clamp(threads * DirectItemsPerThread / s.N, 1, Math.Max(1, slots / 4));
            job.Set(x, packed, offsets, taps, bias, y, s, phases, path, slots, bands, relu, channels, block);
            int items = s.N * bands, chunks = threads <= 1 ? 1 : Math.Min(items, threads * DirectItemsPerThread);
            if (chunks == 1) job.Run(0, items);
            else ChunkRunner.ForRanges(items, chunks, 0, threads, job.Body);
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
        private int _taps, _slots, _bands, _block;
        private DirectPhases _phases;
        private ConvShape? _shape;
        private DirectConvPath _path;
        private bool _relu, _channels;

        private DirectForwardJob() => Body = Run;

        /// <summary><see cref="Run"/> as a delegate, made once per job.</summary>
        public Action<int, int> Body { get; }

        public static DirectForwardJob<T> Rent() => Interlocked.Exchange(ref _cached, null) ?? new DirectForwardJob<T>();

        public void Set(T[] x, T[] packed, int[] offsets, int taps, T[]? bias, T[] y, ConvShape shape, DirectPhases phases, DirectConvPath path, int slots, int bands, bool relu,
            bool channels, int block)
        {
            (_x, _packed, _offsets, _taps, _bias, _y, _shape, _phases, _path, _slots, _bands) = (x, packed, offsets, taps, bias, y, shape, phases, path, slots, bands);
            (_relu, _channels, _block) = (relu, channels, block);
        }

        /// <summary>Drops the references to the call's arrays and returns the job to the cache.</summary>
        public void Release()
        {
            (_x, _packed, _offsets, _bias, _y, _shape) = ([], [], [], null, [], null);
            Volatile.Write(ref _cached, this);
        }

        /// <summary>
        /// Items [first, end), item = image · bands + band: pad the image's planes (once for its consecutive bands), then
        /// convolve the band's slots into its output planes.
        /// </summary>
        public void Run(int first, int end)
        {
            var s = _shape!;
            int inSize = s.InputSize, outSize = s.OutputSize, padLength = _phases.Length(s.C);
            T[] pad = ArrayPool<T>.Shared.Rent(padLength + DirectSlack);
            try
            {
                pad.AsSpan(padLength, DirectSlack).Clear();
                int padded = -1;
                for (int item = first; item < end; item++)
                {
                    int n = item / _bands, band = item - n * _bands;
                    if (n != padded) _phases.Fill(_x, (long)n * s.C * inSize, s, pad);
                    padded = n;
                    // Band boundaries on multiples of 4 slots, so the register blocks are the same as in one pass.
                    int groups = (_slots + 3) / 4, slotBegin = (int)((long)groups * band / _bands) * 4, slotEnd = (int)((long)groups * (band + 1) / _bands) * 4;
                    var yn = _y.AsSpan((int)((long)n * s.M * outSize), s.M * outSize);
                    if (_channels)
                        DirectChannelsPacked<T>(pad, _packed, _offsets.AsSpan(0, _taps), s.M, _bias, yn, s.Output[0], s.Output[1], _phases.Width, _path, slotBegin, Math.Min(slotEnd, _slots), _relu);
                    else
                        DirectConv2DPacked<T>(pad, _packed, _offsets.AsSpan(0, _taps), s.M, _bias, yn, s.Output[0], s.Output[1], _phases.Width, accumulate: false, _path, slotBegin, slotEnd, _relu, _block);
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(pad);
            }
        }
    }

    /// <summary>
    /// The padded input planes of a direct convolution: for stride 1 the zero-padded planes (hp × wp), else the polyphase
    /// planes (see the type's remarks), phase (a, b) of channel ci at ((a·PhaseCols + b)·C + ci)·Height·Width.
    /// </summary>
    internal readonly struct DirectPhases
    {
        private readonly int _sh, _sw, _phaseRows, _phaseCols;

        public DirectPhases(ConvShape s)
        {
            (_sh, _sw) = (s.Strides[0], s.Strides[1]);
            int spanH = (s.Kernel[0] - 1) * s.Dilations[0], spanW = (s.Kernel[1] - 1) * s.Dilations[1];
            // Only the phases some tap reads: (i·dh) mod sh takes at most min(sh, span + 1) values.
            _phaseRows = Math.Min(_sh, spanH + 1);
            _phaseCols = Math.Min(_sw, spanW + 1);
            Height = s.Output[0] + spanH / _sh;
            Width = s.Output[1] + spanW / _sw;
        }

        /// <summary>Rows of one (phase) plane.</summary>
        public int Height { get; }

        /// <summary>Columns of one (phase) plane: the row stride of the direct convolution.</summary>
        public int Width { get; }

        /// <summary>Elements of the planes of <paramref name="channels"/> channels, slack not included.</summary>
        public int Length(int channels) => _phaseRows * _phaseCols * channels * Height * Width;

        /// <summary>offsets[(ci·kh + i)·kw + j]: where tap (ci, i, j) of output (0, 0) reads.</summary>
        public void Offsets(int channels, int kh, int kw, int dh, int dw, Span<int> offsets)
        {
            int plane = Height * Width;
            for (int ci = 0; ci < channels; ci++)
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++)
                    {
                        int phase = (i * dh % _sh) * _phaseCols + j * dw % _sw;
                        offsets[(ci * kh + i) * kw + j] = (phase * channels + ci) * plane + i * dh / _sh * Width + j * dw / _sw;
                    }
        }

        /// <summary>
        /// Fills the planes from the C input planes (H × W) at <paramref name="xBase"/>, zero where they read padding: every
        /// element is written once, row by row (a cleared border, then a copy of the input row or, with a column stride, a
        /// gather of every sw-th element).
        /// </summary>
        public void Fill<T>(T[] x, long xBase, ConvShape s, T[] pad) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int h = s.Input[0], w = s.Input[1], ph = s.PadBegin[0], pw = s.PadBegin[1], plane = Height * Width;
            _ = pad[Length(s.C) - 1];
            if (s.C > 0) _ = x[xBase + (long)s.C * h * w - 1];
            ref T input = ref MemoryMarshal.GetArrayDataReference(x);
            ref T output = ref MemoryMarshal.GetArrayDataReference(pad);
            for (int b = 0; b < _phaseCols; b++)
            {
                // Columns c of the phase whose input column c·sw + b − pw lies in [0, w).
                int c0 = Math.Clamp((pw - b + _sw - 1) / _sw, 0, Width), c1 = w - 1 + pw - b < 0 ? 0 : Math.Min(Width, (w - 1 + pw - b) / _sw + 1);
                if (c1 < c0) c1 = c0;
                for (int a = 0; a < _phaseRows; a++)
                    for (int ci = 0; ci < s.C; ci++)
                    {
                        ref T phase = ref Unsafe.Add(ref output, ((a * _phaseCols + b) * s.C + ci) * plane);
                        for (int r = 0; r < Height; r++)
                        {
                            ref T dst = ref Unsafe.Add(ref phase, r * Width);
                            int ih = r * _sh + a - ph;
                            if ((uint)ih >= (uint)h)
                            {
                                MemoryMarshal.CreateSpan(ref dst, Width).Clear();
                                continue;
                            }
                            for (int c = 0; c < c0; c++) Unsafe.Add(ref dst, c) = T.Zero;
                            for (int c = c1; c < Width; c++) Unsafe.Add(ref dst, c) = T.Zero;
                            if (c1 == c0) continue;
                            ref T from = ref Unsafe.Add(ref input, (nint)(xBase + ((long)ci * h + ih) * w + c0 * _sw + b - pw));
                            if (_sw == 1) CopyRow(ref from, ref Unsafe.Add(ref dst, c0), c1 - c0);
                            else Gather(ref from, ref Unsafe.Add(ref dst, c0), c1 - c0, _sw);
                        }
                    }
            }
        }

        /// <summary>to[c] = from[c·stride] for c &lt; n, four at a time.</summary>
        private static void Gather<T>(ref T from, ref T to, int n, int stride) where T : unmanaged
        {
            int c = 0;
            for (; c + 4 <= n; c += 4)
            {
                T v0 = from, v1 = Unsafe.Add(ref from, stride), v2 = Unsafe.Add(ref from, 2 * stride), v3 = Unsafe.Add(ref from, 3 * stride);
                Unsafe.Add(ref to, c) = v0;
                Unsafe.Add(ref to, c + 1) = v1;
                Unsafe.Add(ref to, c + 2) = v2;
                Unsafe.Add(ref to, c + 3) = v3;
                from = ref Unsafe.Add(ref from, 4 * stride);
            }
            for (; c < n; c++)
            {
                Unsafe.Add(ref to, c) = from;
                from = ref Unsafe.Add(ref from, stride);
            }
        }

        /// <summary>Copies n elements with 256-bit vectors (the last one overlapping), without a call per short row.</summary>
        private static void CopyRow<T>(ref T from, ref T to, int n) where T : unmanaged
        {
            int l = Vector256<T>.Count;
            if (!Vector256.IsHardwareAccelerated || n < l)
            {
                for (int e = 0; e < n; e++) Unsafe.Add(ref to, e) = Unsafe.Add(ref from, e);
                return;
            }
            int i = 0;
            for (; i <= n - l; i += l) Vector256.LoadUnsafe(ref from, (nuint)i).StoreUnsafe(ref to, (nuint)i);
            if (i < n) Vector256.LoadUnsafe(ref from, (nuint)(n - l)).StoreUnsafe(ref to, (nuint)(n - l));
        }
    }
}
