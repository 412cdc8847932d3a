using System.Buffers;
using System.Runtime.Intrinsics;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Conv's input gradient, float32, 2-D, stride 1, ungrouped, as a direct correlation:
/// dX[ci, y, x] = Σ_{co, i, j} dY[co, y + ph − i·dh, x + pw − j·dw] · W[co, ci, i, j]. With i' = kh − 1 − i and dY
/// zero-padded by (kh − 1)·dh − ph rows on top and (kw − 1)·dw − pw columns on the left into planes of
/// Hq × Wq = (H + (kh − 1)·dh) × (W + (kw − 1)·dw), this is
/// dX[ci, y, x] = Σ_{co, i', j'} W'[ci, co, i', j'] · dY_pad[co, y + i'·dh, x + j'·dw]
/// with W' = W transposed to [C, M, kh, kw] and flipped in (i, j): the "full" correlation of dY, i.e. the transposed
/// convolution PyTorch's <c>convolution_backward</c> runs for grad_input. dY positions beyond the padded planes (end pads
/// past the kernel extent) read only X's padding, so they are dropped.
/// Computed over the wide positions p = y·Wq + x (as the weight gradient): every tap is one shifted contiguous window of
/// dY_pad, register blocks of 4 channels × 6 vectors (<see cref="Correlate4x6{TV, TO}"/>) accumulate all taps, and the
/// Wq − W dropped columns are left behind when the block is copied into dX. Images are independent and split over the
/// threads, and every element sums its taps in the same order (co, i', j'), so results do not depend on the thread count.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>
    /// Whether <see cref="InputGradDirect"/> applies (see the type summary; at most DirectMaxWeights weights, as the
    /// forward direct convolution) and pays: at least 60% of the computed block elements are dX elements. The GEMM path
    /// ran 30-42 GFLOP/s on LeNet's and ResNet's shapes, the direct blocks 80-90 when full (ResNet 3×3: 89% useful) but
    /// slower than the GEMM on LeNet's conv2 (6 channels in blocks of 4, 14 × 18 wide positions in blocks of 96: 51%).
    /// </summary>
    internal static bool UseDirectInputGrad(ConvShape s)
    {
        if (!CanUseDirectInputGrad(s)) return false;
        var l = new WideInputLayout(s, Vector512.IsHardwareAccelerated ? Vector512<float>.Count : Vector256<float>.Count);
        return (double)s.C * s.Input[0] * s.Input[1] >= 0.6 * l.Blocks * 4 * l.Positions;
    }

    /// <summary>Whether <see cref="InputGradDirect"/> can compute dX of <paramref name="s"/> (it may not pay; see <see cref="UseDirectInputGrad"/>).</summary>
    internal static bool CanUseDirectInputGrad(ConvShape s)
    {
        if (s.Input.Length != 2 || s.Group != 1 || s.Strides[0] != 1 || s.Strides[1] != 1 || s.N < 1 || s.C < 1 || s.M < 1) return false;
        if (s.Output[0] < 1 || s.Output[1] < 1 || s.Input[0] < 1 || s.Input[1] < 1) return false;
        if (s.PadBegin[0] > (s.Kernel[0] - 1) * s.Dilations[0] || s.PadBegin[1] > (s.Kernel[1] - 1) * s.Dilations[1]) return false;
        if ((long)s.M * s.C * s.Kernel[0] * s.Kernel[1] > DirectMaxWeights) return false;
        return Vector512.IsHardwareAccelerated || Vector256.IsHardwareAccelerated;
    }

    /// <summary>The wide layout of one direct input gradient; see the type summary.</summary>
    private readonly struct WideInputLayout
    {
        public WideInputLayout(ConvShape s, int lanes)
        {
            int kh = s.Kernel[0], kw = s.Kernel[1], block = 6 * lanes;
            Taps = s.M * kh * kw;
            Blocks = (s.C + 3) / 4;
            Hq = s.Input[0] + (kh - 1) * s.Dilations[0];
            Wq = s.Input[1] + (kw - 1) * s.Dilations[1];
            Positions = (s.Input[0] * Wq + block - 1) / block * block;
            // A block's last tap reads up to Positions − 1 + (M − 1)·Hq·Wq + (kh − 1)·dh·Wq + (kw − 1)·dw < M·Hq·Wq + (kw − 1)·dw + block.
            PadLength = s.M * Hq * Wq + (kw - 1) * s.Dilations[1] + block;
        }

        public int Taps { get; }

        /// <summary>Blocks of 4 input channels (the packed weights are zero past C).</summary>
        public int Blocks { get; }

        public int Hq { get; }
        public int Wq { get; }

        /// <summary>Wide positions per channel, rounded up to whole register blocks.</summary>
        public int Positions { get; }

        /// <summary>Floats of one image's padded dY with its readable tail.</summary>
        public int PadLength { get; }
    }

    /// <summary>dX (written) of Conv by direct correlation of the padded dY; the caller checked <see cref="CanUseDirectInputGrad"/>.</summary>
    internal static void InputGradDirect(float[] dy, float[] w, float[] dx, ConvShape s, int threads)
    {
        bool wide512 = Vector512.IsHardwareAccelerated;
        var l = new WideInputLayout(s, wide512 ? Vector512<float>.Count : Vector256<float>.Count);
        int kh = s.Kernel[0], kw = s.Kernel[1], k = kh * kw;
        float[] packed = ArrayPool<float>.Shared.Rent(l.Blocks * 4 * l.Taps);
        int[] offsets = ArrayPool<int>.Shared.Rent(l.Taps);
        var job = Interlocked.Exchange(ref s_inputGradJob, null) ?? new InputGradJob();
        try
        {
            // packed[(b·Taps + t)·4 + q] = W'[4b + q, t], t = (co·kh + i')·kw + j', W'[ci, co, i', j'] = W[co, ci, kh − 1 − i', kw − 1 − j'].
            packed.AsSpan(0, l.Blocks * 4 * l.Taps).Clear();
            for (int ci = 0; ci < s.C; ci++)
                for (int co = 0; co < s.M; co++)
                {
                    var src = w.AsSpan((co * s.C + ci) * k, k);
                    int baseIndex = ((ci / 4) * l.Taps + co * k) * 4 + ci % 4;
                    for (int t = 0; t < k; t++) packed[baseIndex + (k - 1 - t) * 4] = src[t];
                }
            for (int co = 0, t = 0; co < s.M; co++)
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++)
                        offsets[t++] = co * l.Hq * l.Wq + i * s.Dilations[0] * l.Wq + j * s.Dilations[1];
            job.Set(wide512, dy, packed, offsets, dx, s, l);
            int chunks = threads <= 1 ? 1 : Math.Min(s.N, threads * DirectItemsPerThread);
            if (chunks == 1) job.Run(0, s.N);
            else ChunkRunner.ForRanges(s.N, chunks, 0, threads, job.Body);
        }
        finally
        {
            job.Clear();
            s_inputGradJob = job;
            ArrayPool<int>.Shared.Return(offsets);
            ArrayPool<float>.Shared.Return(packed);
        }
    }

    private static InputGradJob? s_inputGradJob;

    /// <summary>One <see cref="InputGradDirect"/> call's state and its per-range body; pooled, so a call allocates nothing.</summary>
    private sealed class InputGradJob
    {
        private bool _wide512;
        private float[] _dy = [], _packed = [], _dx = [];
        private int[] _offsets = [];
        private ConvShape? _shape;
        private WideInputLayout _layout;

        public InputGradJob() => Body = Run;

        /// <summary><see cref="Run"/> as a delegate, made once per job.</summary>
        public Action<int, int> Body { get; }

        public void Set(bool wide512, float[] dy, float[] packed, int[] offsets, float[] dx, ConvShape s, WideInputLayout layout) =>
            (_wide512, _dy, _packed, _offsets, _dx, _shape, _layout) = (wide512, dy, packed, offsets, dx, s, layout);

        public void Clear() => (_dy, _packed, _offsets, _dx, _shape) = ([], [], [], [], null);

        /// <summary>Images [first, end): pad each image's dY, correlate it into wide dX rows, copy those into dX.</summary>
        public void Run(int first, int end)
        {
            var s = _shape!;
            var l = _layout;
            int inH = s.Input[0], inW = s.Input[1], outH = s.Output[0], outW = s.Output[1];
            int top = (s.Kernel[0] - 1) * s.Dilations[0] - s.PadBegin[0], left = (s.Kernel[1] - 1) * s.Dilations[1] - s.PadBegin[1];
            int rows = Math.Min(outH, l.Hq - top), cols = Math.Min(outW, l.Wq - left);
            float[] pad = ArrayPool<float>.Shared.Rent(l.PadLength);
            float[] wide = ArrayPool<float>.Shared.Rent(l.Blocks * 4 * l.Positions);
            try
            {
                // The padding and the tail stay zero; each image overwrites only the interior.
                pad.AsSpan(0, l.PadLength).Clear();
                for (int n = first; n < end; n++)
                {
                    var image = _dy.AsSpan(n * s.M * outH * outW, s.M * outH * outW);
                    for (int co = 0; co < s.M; co++)
                        for (int r = 0; r < rows; r++)
                            image.Slice((co * outH + r) * outW, cols).CopyTo(pad.AsSpan((co * l.Hq + r + top) * l.Wq + left, cols));
                    if (_wide512) Correlate<Vector512<float>, Float512>(pad, _packed, _offsets.AsSpan(0, l.Taps), wide, l);
                    else Correlate<Vector256<float>, Float256>(pad, _packed, _offsets.AsSpan(0, l.Taps), wide, l);
                    var target = _dx.AsSpan(n * s.C * inH * inW, s.C * inH * inW);
                    for (int ci = 0; ci < s.C; ci++)
                        for (int y = 0; y < inH; y++)
                            wide.AsSpan(ci * l.Positions + y * l.Wq, inW).CopyTo(target.Slice((ci * inH + y) * inW, inW));
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(wide);
                ArrayPool<float>.Shared.Return(pad);
            }
        }
    }

    /// <summary>wide[c·Positions + p] = Σ_t W'[c, t] · pad[off[t] + p] for every block of 4 channels and 6 vectors of positions.</summary>
    private static void Correlate<TV, TO>(float[] pad, float[] packed, ReadOnlySpan<int> offsets, float[] wide, in WideInputLayout l)
        where TV : struct where TO : IFloatVector<TV>
    {
        int block = 6 * TO.Count;
        for (int p = 0; p < l.Positions; p += block)
            for (int b = 0; b < l.Blocks; b++)
                Correlate4x6<TV, TO>(ref pad[p], offsets, ref packed[b * l.Taps * 4], ref wide[b * 4 * l.Positions + p], (nuint)l.Positions);
    }
}
