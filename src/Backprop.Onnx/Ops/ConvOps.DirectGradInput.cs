using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Conv's input gradient, float32, 2-D, ungrouped, as a direct correlation. In padded coordinates (py, px) = (y + ph, x + pw),
/// dX_pad[ci, py, px] = Σ over (co, i, j) with py = S_h·oy + i·dh, px = S_w·ox + j·dw of dY[co, oy, ox] · W[co, ci, i, j]
/// (the transposed convolution PyTorch's <c>convolution_backward</c> runs for grad_input). Split dX_pad into phases
/// (a, b) = (py mod S_h, px mod S_w) (the polyphase decomposition of a strided transposed convolution): tap (i, j) feeds
/// only phase ((i·dh) mod S_h, (j·dw) mod S_w), and there, with qi = ⌊i·dh / S_h⌋, qj = ⌊j·dw / S_w⌋ and phase position
/// (Y, X) = (⌊py / S_h⌋, ⌊px / S_w⌋), it reads dY[co, Y − qi, X − qj]: a stride-1 "full" correlation of dY with the
/// phase's taps. At stride 1 there is one phase and this is the familiar correlation of dY, padded by (kh − 1)·dh − ph,
/// with the flipped, transposed kernel.
/// dY is zero-padded so every tap is a shifted contiguous window over wide positions p = Y·Wq + X of the phase plane
/// (as the weight gradient's); register blocks of 4 channels × 6 vectors (<see cref="Correlate4x6{TV, TO}"/>) accumulate
/// a phase's taps, then the phase's valid positions are copied into dX. dY positions beyond the padded planes read only
/// X's padding and are dropped. Images are independent and split over the threads, and every element sums its taps in
/// the same order, so results do not depend on the thread count.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>
    /// Whether <see cref="InputGradDirect"/> applies (see the type summary; at most DirectMaxWeights weights, as the
    /// forward direct convolution) and pays: at least half the computed block elements are dX elements. The GEMM path
    /// ran 35-68 GFLOP/s on LeNet's and ResNet's shapes, the direct blocks 80-94 when full (ResNet 3×3/1: 89% useful),
    /// about as fast as the GEMM on LeNet's conv2 (6 channels as 4 + 2, 14 × 18 wide positions in blocks of 96: 68%).
    /// </summary>
    internal static bool UseDirectInputGrad(ConvShape s)
    {
        if (!CanUseDirectInputGrad(s)) return false;
        var l = new WideInputLayout(s, Vector512.IsHardwareAccelerated ? Vector512<float>.Count : Vector256<float>.Count);
        int computed = s.C % 4 is 1 or 2 ? (l.Blocks - 1) * 4 + 2 : l.Blocks * 4;
        return (double)s.C * s.Input[0] * s.Input[1] >= 0.5 * computed * l.Positions * s.Strides[0] * s.Strides[1];
    }

    /// <summary>Whether <see cref="InputGradDirect"/> can compute dX of <paramref name="s"/> (it may not pay; see <see cref="UseDirectInputGrad"/>).</summary>
    internal static bool CanUseDirectInputGrad(ConvShape s)
    {
        if (s.Input.Length != 2 || s.Group != 1 || s.N < 1 || s.C < 1 || s.M < 1) return false;
        if (s.Output[0] < 1 || s.Output[1] < 1 || s.Input[0] < 1 || s.Input[1] < 1) return false;
        if ((long)s.M * s.C * s.Kernel[0] * s.Kernel[1] > DirectMaxWeights) return false;
        var l = new WideInputLayout(s, 16);
        if (l.Top < 0 || l.Left < 0 || (long)s.M * l.Hq * l.Wq > 1 << 26) return false;
        return Vector512.IsHardwareAccelerated || Vector256.IsHardwareAccelerated;
    }

    /// <summary>The wide phase layout of one direct input gradient; see the type summary.</summary>
    private readonly struct WideInputLayout
    {
        public WideInputLayout(ConvShape s, int lanes)
        {
            int kh = s.Kernel[0], kw = s.Kernel[1], sh = s.Strides[0], sw = s.Strides[1], ph = s.PadBegin[0], pw = s.PadBegin[1];
            int block = 6 * lanes;
            Taps = s.M * kh * kw;
            Channels = s.C;
            Blocks = (s.C + 3) / 4;
            // Phase positions Y cover ⌊py / S_h⌋ for py in [ph, ph + H): from Y0 = ⌊ph / S_h⌋, Hph of them.
            Y0 = ph / sh;
            X0 = pw / sw;
            int hph = (ph + s.Input[0] + sh - 1) / sh - Y0, wph = (pw + s.Input[1] + sw - 1) / sw - X0;
            // Taps reach back up to Ta = ⌊(kh − 1)·dh / S_h⌋ rows (La columns): dY row oy sits at oy + Ta − Y0.
            Ta = (kh - 1) * s.Dilations[0] / sh;
            La = (kw - 1) * s.Dilations[1] / sw;
            Top = Ta - Y0;
            Left = La - X0;
            Hq = hph + Ta;
            Wq = wph + La;
            Positions = (hph * Wq + block - 1) / block * block;
            // A block's reads end before Positions − 1 + (M − 1)·Hq·Wq + Ta·Wq + La + 1 ≤ M·Hq·Wq + La + block.
            PadLength = s.M * Hq * Wq + La + block;
        }

        public int Taps { get; }

        /// <summary>Input channels C.</summary>
        public int Channels { get; }

        /// <summary>Blocks of 4 input channels (the packed weights are zero past C).</summary>
        public int Blocks { get; }

        public int Y0 { get; }
        public int X0 { get; }
        public int Ta { get; }
        public int La { get; }

        /// <summary>Where dY's first row and column sit in the padded plane (negative: the layout does not apply).</summary>
        public int Top { get; }

        public int Left { get; }
        public int Hq { get; }
        public int Wq { get; }

        /// <summary>Wide positions per channel and phase, rounded up to whole register blocks.</summary>
        public int Positions { get; }

        /// <summary>Floats of one image's padded dY with its readable tail.</summary>
        public int PadLength { get; }
    }

    /// <summary>dX (written) of Conv by direct correlation of the padded dY; the caller checked <see cref="CanUseDirectInputGrad"/>.</summary>
    internal static void InputGradDirect(float[] dy, float[] w, float[] dx, ConvShape s, int threads)
    {
        bool wide512 = Vector512.IsHardwareAccelerated;
        var l = new WideInputLayout(s, wide512 ? Vector512<float>.Count : Vector256<float>.Count);
        int kh = s.Kernel[0], kw = s.Kernel[1], sh = s.Strides[0], sw = s.Strides[1], dh = s.Dilations[0], dwl = s.Dilations[1];
        int phases = sh * sw;
        float[] packed = GradScratch.Get(ref GradScratch.Packed, l.Blocks * 4 * l.Taps);
        // offsets[t] for the taps in phase order, then offsets[Taps + φ] = the first tap of phase φ (and Taps at the end).
        int[] offsets = GradScratch.Get(ref GradScratch.PhaseOffsets, l.Taps + phases + 1);
        var job = Interlocked.Exchange(ref s_inputGradJob, null) ?? new InputGradJob();
        try
        {
            // packed[(b·Taps + t)·4 + q] = W[co, 4b + q, i, j] for tap t = (co, i, j), zero past C.
            packed.AsSpan(0, l.Blocks * 4 * l.Taps).Clear();
            int t = 0;
            for (int a = 0; a < sh; a++)
                for (int b = 0; b < sw; b++)
                {
                    offsets[l.Taps + a * sw + b] = t;
                    for (int co = 0; co < s.M; co++)
                        for (int i = 0; i < kh; i++)
                            for (int j = 0; j < kw; j++)
                            {
                                if (i * dh % sh != a || j * dwl % sw != b) continue;
                                offsets[t] = co * l.Hq * l.Wq + (l.Ta - i * dh / sh) * l.Wq + l.La - j * dwl / sw;
                                for (int ci = 0; ci < s.C; ci++) packed[((ci / 4) * l.Taps + t) * 4 + ci % 4] = w[((co * s.C + ci) * kh + i) * kw + j];
                                t++;
                            }
                }
            offsets[l.Taps + phases] = t;
            job.Set(wide512, dy, packed, offsets, dx, s, l);
            int chunks = threads <= 1 ? 1 : Math.Min(s.N, threads * DirectItemsPerThread);
            if (chunks == 1) job.Run(0, s.N);
            else ChunkRunner.ForRanges(s.N, chunks, 0, threads, job.Body);
        }
        finally
        {
            job.Clear();
            s_inputGradJob = job;
        }
    }

    private static InputGradJob? s_inputGradJob;

    /// <summary>One <see cref="InputGradDirect"/> call's state and its per-range body; pooled, so a call allocates nothing.</summary>
    private sealed class InputGradJob
    {
        private bool _wide512, _anyEmptyPhase;
        private float[] _dy = [], _packed = [], _dx = [];
        private int[] _offsets = [];
        private ConvShape? _shape;
        private WideInputLayout _layout;

        public InputGradJob() => Body = Run;

        /// <summary><see cref="Run"/> as a delegate, made once per job.</summary>
        public Action<int, int> Body { get; }

        public void Set(bool wide512, float[] dy, float[] packed, int[] offsets, float[] dx, ConvShape s, WideInputLayout layout)
        {
            (_wide512, _dy, _packed, _offsets, _dx, _shape, _layout) = (wide512, dy, packed, offsets, dx, s, layout);
            _anyEmptyPhase = false;
            for (int phase = 0; phase < s.Strides[0] * s.Strides[1]; phase++)
                _anyEmptyPhase |= offsets[layout.Taps + phase + 1] == offsets[layout.Taps + phase];
        }

        public void Clear() => (_dy, _packed, _offsets, _dx, _shape) = ([], [], [], [], null);

        /// <summary>Images [first, end): pad each image's dY, correlate it phase by phase into wide rows, copy those into dX.</summary>
        public void Run(int first, int end)
        {
            var s = _shape!;
            var l = _layout;
            int inH = s.Input[0], inW = s.Input[1], outH = s.Output[0], outW = s.Output[1], sh = s.Strides[0], sw = s.Strides[1];
            int rows = Math.Min(outH, l.Hq - l.Top), cols = Math.Min(outW, l.Wq - l.Left);
            float[] pad = GradScratch.Get(ref GradScratch.Pad, l.PadLength);
            // At column stride 2 both column phases of a phase row are kept, then written to dX interleaved.
            int phaseFloats = l.Blocks * 4 * l.Positions;
            float[] wide = GradScratch.Get(ref GradScratch.Wide, phaseFloats * (sw == 2 ? 2 : 1));
            // The padding and the tail stay zero; each image overwrites only the interior.
            pad.AsSpan(0, l.PadLength).Clear();
            for (int n = first; n < end; n++)
            {
                var image = _dy.AsSpan(n * s.M * outH * outW, s.M * outH * outW);
                if (rows > 0 && cols > 0)
                    for (int co = 0; co < s.M; co++)
                        for (int r = 0; r < rows; r++)
                            CopyShort(image.Slice((co * outH + r) * outW, cols), pad.AsSpan((co * l.Hq + r + l.Top) * l.Wq + l.Left, cols));
                var target = _dx.AsSpan(n * s.C * inH * inW, s.C * inH * inW);
                // Phases no tap feeds (1×1/2: three of four) are zero: one vectorised clear, not strided writes.
                if (_anyEmptyPhase) target.Clear();
                int block = 6 * (_wide512 ? Vector512<float>.Count : Vector256<float>.Count);
                for (int a = 0; a < sh; a++)
                {
                    // Only the phase's own rows: at stride 2 the phases' row ranges differ by one, and their union (17 rows of
                    // 18 for ResNet's 32 → 16) rounded up to whole blocks computed 384 positions for 256 pixels, not 288.
                    var (top, count) = PhaseRows(s, l, a);
                    if (count == 0) continue;
                    int start = top * l.Wq, positions = (count * l.Wq + block - 1) / block * block;
                    // Column stride 2: both column phases interleaved into whole rows, a phase without taps as zeros (1×1/2).
                    bool pair = sw == 2 && inW >= 2;
                    for (int b = 0; b < sw; b++)
                    {
                        int phase = a * sw + b, t0 = _offsets[l.Taps + phase], taps = Taps(phase);
                        if (taps == 0) continue;
                        int at = pair ? b * phaseFloats : 0;
                        if (_wide512) Correlate<Vector512<float>, Float512>(pad, _packed, _offsets.AsSpan(t0, taps), t0, wide, at, l, start, positions, count * l.Wq);
                        else Correlate<Vector256<float>, Float256>(pad, _packed, _offsets.AsSpan(t0, taps), t0, wide, at, l, start, positions, count * l.Wq);
                        if (!pair) ScatterPhase(wide, s, l, a, b, target);
                    }
                    if (pair && (Taps(a * sw) > 0 || Taps(a * sw + 1) > 0)) ScatterPhasePair(wide, phaseFloats, s, l, a, Taps(a * sw) > 0, Taps(a * sw + 1) > 0, target);
                }
            }
        }

        /// <summary>The taps feeding phase <paramref name="phase"/>.</summary>
        private int Taps(int phase) => _offsets[_layout.Taps + phase + 1] - _offsets[_layout.Taps + phase];
    }

    /// <summary>
    /// The phase rows (Y − Y0) holding pixels of phase row a: from <c>Top</c>, <c>Count</c> of them (y = y0, y0 + S_h, …
    /// with y0 = (a − ph) mod S_h, at Y = ⌊(y + ph) / S_h⌋).
    /// </summary>
    private static (int Top, int Count) PhaseRows(ConvShape s, in WideInputLayout l, int a)
    {
        int inH = s.Input[0], sh = s.Strides[0], ph = s.PadBegin[0];
        int y0 = ((a - ph) % sh + sh) % sh;
        return y0 >= inH ? (0, 0) : ((y0 + ph) / sh - l.Y0, (inH - y0 + sh - 1) / sh);
    }

    /// <summary>
    /// wide[at + c·Positions + p] = Σ over the phase's taps t of W[·, c, t] · pad[off[t] + first + p] for p &lt;
    /// <paramref name="needed"/> (at most <paramref name="positions"/>, whole blocks), block by block.
    /// </summary>
    private static void Correlate<TV, TO>(float[] pad, float[] packed, ReadOnlySpan<int> offsets, int t0, float[] wide, int at, in WideInputLayout l, int first, int positions, int needed)
        where TV : struct where TO : IFloatVector<TV>
    {
        // A last block of 1-2 channels takes the 2-channel kernel (LeNet's conv2: 6 channels as 4 + 2, not 4 + 4).
        int block = 6 * TO.Count, full = l.Channels % 4 is 1 or 2 ? l.Blocks - 1 : l.Blocks;
        for (int p = 0; p < positions; p += block)
        {
            // A last block with at most two vectors of needed positions takes the 2-vector kernel (ResNet 3×3/1 on 32×32:
            // 32 rows of 34 are 11 blocks of 96 and 32 positions, not 12 blocks).
            if (needed - p <= 2 * TO.Count && full == l.Blocks)
            {
                for (int b = 0; b < full; b++)
                    Correlate4x2<TV, TO>(ref pad[first + p], offsets, ref packed[(b * l.Taps + t0) * 4], ref wide[at + b * 4 * l.Positions + p], (nuint)l.Positions);
                break;
            }
            for (int b = 0; b < full; b++)
                Correlate4x6<TV, TO>(ref pad[first + p], offsets, ref packed[(b * l.Taps + t0) * 4], ref wide[at + b * 4 * l.Positions + p], (nuint)l.Positions);
            if (full < l.Blocks)
                Correlate2x6<TV, TO>(ref pad[first + p], offsets, ref packed[(full * l.Taps + t0) * 4], ref wide[at + full * 4 * l.Positions + p], (nuint)l.Positions);
        }
    }

    /// <summary>
    /// dX[c, y, x] = wide[c·Positions + k·Wq + X] for the pixels of phase (a, b): the k-th row y = y0 + k·S_h of the phase
    /// (its rows were computed from its first one on, <see cref="PhaseRows"/>), X = ⌊(x + pw) / S_w⌋ − X0.
    /// </summary>
    private static void ScatterPhase(float[] wide, ConvShape s, in WideInputLayout l, int a, int b, Span<float> target)
    {
        int inH = s.Input[0], inW = s.Input[1], sh = s.Strides[0], sw = s.Strides[1], ph = s.PadBegin[0], pw = s.PadBegin[1];
        int y0 = ((a - ph) % sh + sh) % sh, x0 = ((b - pw) % sw + sw) % sw;
        if (x0 >= inW) return;
        int count = (inW - x0 + sw - 1) / sw, xStart = (x0 + pw) / sw - l.X0;
        for (int c = 0; c < s.C; c++)
            for (int y = y0, k = 0; y < inH; y += sh, k++)
            {
                var dst = target.Slice((c * inH + y) * inW, inW);
                var src = wide.AsSpan(c * l.Positions + k * l.Wq + xStart, count);
                if (sw == 1)
                {
                    CopyShort(src, dst);
                    continue;
                }
                // A strided scatter, bounds checked once: x0 + (count − 1)·S_w < inW.
                ref float to = ref dst[x0];
                for (int e = 0; e < count; e++) Unsafe.Add(ref to, e * sw) = src[e];
            }
    }

    /// <summary>
    /// <see cref="ScatterPhase"/> for both column phases of phase row a at column stride 2 (phase b's wide rows at
    /// b·<paramref name="phaseFloats"/>): the phase holding even columns x = 2e (E) and the one holding odd columns (O) are
    /// interleaved, eight pairs per step (AVX unpack and 128-bit lane permute), into whole dX rows instead of two strided
    /// scalar scatters. A column phase no tap feeds (<paramref name="has0"/>, <paramref name="has1"/> false) is zero.
    /// </summary>
    private static void ScatterPhasePair(float[] wide, int phaseFloats, ConvShape s, in WideInputLayout l, int a, bool has0, bool has1, Span<float> target)
    {
        int inH = s.Input[0], inW = s.Input[1], sh = s.Strides[0], ph = s.PadBegin[0], pw = s.PadBegin[1];
        int y0 = ((a - ph) % sh + sh) % sh;
        // Column x = 2e + parity lies in column phase b = (x + pw) mod 2 at X = (x + pw) / 2 − X0 = e + (parity + pw) / 2 − X0.
        int evenB = pw % 2, oddB = (1 + pw) % 2;
        int evenAt = evenB * phaseFloats + pw / 2 - l.X0, oddAt = oddB * phaseFloats + (1 + pw) / 2 - l.X0;
        int pairs = inW / 2, vectorPairs = Avx.IsSupported ? pairs / 8 * 8 : 0;
        bool hasEven = evenB == 0 ? has0 : has1, hasOdd = oddB == 0 ? has0 : has1;
        for (int c = 0; c < s.C; c++)
            for (int y = y0, k = 0; y < inH; y += sh, k++)
            {
                var dst = target.Slice((c * inH + y) * inW, inW);
                int row = c * l.Positions + k * l.Wq;
                var even = wide.AsSpan(evenAt + row, (inW + 1) / 2);
                var odd = wide.AsSpan(oddAt + row, pairs);
                ref float d = ref MemoryMarshal.GetReference(dst);
                ref float e0 = ref MemoryMarshal.GetReference(even);
                ref float o0 = ref MemoryMarshal.GetReference(odd);
                int e = 0;
                for (; e < vectorPairs; e += 8)
                {
                    var ev = hasEven ? Vector256.LoadUnsafe(ref e0, (nuint)e) : Vector256<float>.Zero;
                    var ov = hasOdd ? Vector256.LoadUnsafe(ref o0, (nuint)e) : Vector256<float>.Zero;
                    // (e0 o0 e1 o1 | e4 o4 e5 o5) and (e2 o2 e3 o3 | e6 o6 e7 o7), then their low and high 128-bit halves.
                    var lo = Avx.UnpackLow(ev, ov);
                    var hi = Avx.UnpackHigh(ev, ov);
                    Avx.Permute2x128(lo, hi, 0x20).StoreUnsafe(ref d, (nuint)(2 * e));
                    Avx.Permute2x128(lo, hi, 0x31).StoreUnsafe(ref d, (nuint)(2 * e + 8));
                }
                for (; e < pairs; e++)
                {
                    dst[2 * e] = hasEven ? even[e] : 0;
                    dst[2 * e + 1] = hasOdd ? odd[e] : 0;
                }
                if (inW % 2 == 1) dst[inW - 1] = hasEven ? even[pairs] : 0;
            }
    }
}
