using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Conv's weight gradient as direct dot products, float32, 2-D (LeNet's and the small ResNet's convolutions, whose 6-32
/// output channels leave the 12 × 32 GEMM tiles mostly empty). At stride 1:
/// dW[co, ci, i, j] = Σₙ Σₚ dY_wide[n, co, p] · X_pad[n, ci, p + i·dh·Wp + j·dw]
/// over the "wide" positions p = r·Wp + q of the zero-padded Hp × Wp plane (as in <see cref="Im2ColWide{T}"/>): dY is
/// spread into rows of length Wp with zeros in the Wp − outW dropped columns, so every tap (ci, i, j) is one shifted,
/// contiguous window of X_pad and no column matrix is built. A zero dY column times a finite X adds nothing; X is checked
/// while it is spread and a non-finite one declined (0·∞ would be NaN). Register blocks of 4 output channels × 6 taps accumulate over the
/// positions of a batch of images (<see cref="Dot4x6{TV, TO}"/>), then add into the thread's partial dW.
/// Images are split into one contiguous range per thread, each summed in image order into its own partial, the
/// partials then added in thread order: deterministic for a given thread count. Strides go through phase planes; see
/// <see cref="WideGradLayout"/>.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>Floats of padded X and wide dY per batch of images (384 KiB, within a Zen 4 core's 1 MiB L2; 192 KiB ran 2-7% slower: more horizontal sums per image).</summary>
    private const int DirectGradBatchFloats = 96 * 1024;

    /// <summary>Largest column stride <see cref="WeightGradDirect"/> takes (its per-phase column table lives on the stack).</summary>
    private const int MaxDirectGradStride = 16;

    /// <summary>
    /// The wide layout of one convolution's weight gradient; see the type summary. Strides S > 1 split each padded plane
    /// into S_h·S_w phase planes, phase (a, b) holding padded pixels (S_h·R + a, S_w·C + b) at (R, C): tap (i, j) then reads
    /// phase ((i·dh) mod S_h, (j·dw) mod S_w) at (oy + ⌊i·dh / S_h⌋, ox + ⌊j·dw / S_w⌋), a stride-1 window again (the
    /// polyphase decomposition of a strided convolution).
    /// </summary>
    private readonly struct WideGradLayout
    {
        public WideGradLayout(ConvShape s, int lanes)
        {
            int kh = s.Kernel[0], kw = s.Kernel[1];
            Cg = s.C / s.Group;
            Mg = s.M / s.Group;
            Rows = Cg * kh * kw;
            Phases = s.Strides[0] * s.Strides[1];
            Hp = s.Output[0] + (kh - 1) * s.Dilations[0] / s.Strides[0];
            Wp = s.Output[1] + (kw - 1) * s.Dilations[1] / s.Strides[1];
            Plane = Hp * Wp;
            Width = (s.Output[0] * Wp + lanes - 1) / lanes * lanes;
            // The last tap's window of the last group runs ⌊(kw − 1)·dw / S_w⌋ + lanes past the planes (dropped columns only).
            XImage = s.C * Phases * Plane + (kw - 1) * s.Dilations[1] / s.Strides[1] + lanes;
            DyImage = s.M * Width;
            Batch = Math.Clamp(DirectGradBatchFloats / (XImage + DyImage), 1, Math.Max(1, s.N));
        }

        public int Cg { get; }
        public int Mg { get; }
        public int Rows { get; }

        /// <summary>Phase planes per channel (S_h·S_w; 1 at stride 1).</summary>
        public int Phases { get; }

        public int Hp { get; }
        public int Wp { get; }
        public int Plane { get; }

        /// <summary>Wide positions per dY row, rounded up to whole vectors (the extra ones are zero).</summary>
        public int Width { get; }

        /// <summary>Floats of one image's padded X (all channels and phases, then a zero tail).</summary>
        public int XImage { get; }

        /// <summary>Floats of one image's wide dY.</summary>
        public int DyImage { get; }

        /// <summary>Images per batch.</summary>
        public int Batch { get; }
    }

    /// <summary>Whether <see cref="WeightGradDirect"/> applies (it also needs a finite X, which it checks itself).</summary>
    internal static bool UseDirectWeightGrad(ConvShape s)
    {
        if (s.Input.Length != 2 || s.N < 1 || s.C < 1 || s.M < 1 || s.Output[0] < 1 || s.Output[1] < 1) return false;
        if (!Vector512.IsHardwareAccelerated && !Vector256.IsHardwareAccelerated) return false;
        if (s.Strides[1] > MaxDirectGradStride) return false;
        // A kernel narrower than its stride reads only some phases (1×1/2: one of four): the GEMM path is faster there
        // (ResNet's 1×1/2 shortcut: 0.23 ms against 0.78 ms spreading every phase).
        if ((s.Kernel[0] - 1) * s.Dilations[0] + 1 < s.Strides[0] || (s.Kernel[1] - 1) * s.Dilations[1] + 1 < s.Strides[1]) return false;
        // Every window must fit in int offsets.
        long plane = (long)(s.Output[0] + (s.Kernel[0] - 1) * s.Dilations[0] / s.Strides[0]) * (s.Output[1] + (s.Kernel[1] - 1) * s.Dilations[1] / s.Strides[1]);
        return plane * s.C * s.Strides[0] * s.Strides[1] < 1 << 26 && (long)s.M * plane < 1 << 26;
    }

    /// <summary>
    /// dW (written, not accumulated) of Conv for float32 X (N, C, H, W) and dY (N, M, outH, outW); see the type
    /// summary. Uses up to <paramref name="threads"/> threads. Returns false, dW unspecified, when an element of X the
    /// dot products read is not finite (checked while X is spread, not in a pass of its own on the calling thread: that
    /// pass had cost 0.05 ms per 2 MB X); the caller then takes the exact path.
    /// </summary>
    internal static bool WeightGradDirect(float[] dy, float[] x, float[] dw, ConvShape s, int threads)
    {
        bool wide512 = Vector512.IsHardwareAccelerated;
        var layout = new WideGradLayout(s, wide512 ? Vector512<float>.Count : Vector256<float>.Count);
        int size = s.M * layout.Rows, parts = Math.Max(1, Math.Min(threads, s.N));
        if (parts == 1) return WeightGradPart(wide512, dy, x, s, layout, 0, s.N, dw.AsSpan(0, size));
        float[] partials = GradScratch.Get(ref GradScratch.Partials, (parts - 1) * size);
        var job = Interlocked.Exchange(ref s_weightGradJob, null) ?? new WeightGradJob();
        try
        {
            job.Set(wide512, dy, x, dw, partials, s, layout, parts);
            Runtime.ChunkRunner.For(parts, threads, job.Body);
            if (!job.Finite) return false;
            var sum = dw.AsSpan(0, size);
            for (int p = 1; p < parts; p++) System.Numerics.Tensors.TensorPrimitives.Add(sum, partials.AsSpan((p - 1) * size, size), sum);
            return true;
        }
        finally
        {
            job.Clear();
            s_weightGradJob = job;
        }
    }

    private static WeightGradJob? s_weightGradJob;

    /// <summary>One <see cref="WeightGradDirect"/> call's state for its thread parts; pooled, so a call allocates nothing.</summary>
    private sealed class WeightGradJob
    {
        private bool _wide512;
        private float[] _dy = [], _x = [], _dw = [], _partials = [];
        private ConvShape? _shape;
        private WideGradLayout _layout;
        private int _parts, _nonFinite;

        public WeightGradJob() => Body = Run;

        /// <summary>The per-part body, created once.</summary>
        public Action<int> Body { get; }

        public void Set(bool wide512, float[] dy, float[] x, float[] dw, float[] partials, ConvShape s, WideGradLayout layout, int parts)
        {
            (_wide512, _dy, _x, _dw, _partials, _shape, _layout, _parts, _nonFinite) = (wide512, dy, x, dw, partials, s, layout, parts, 0);
        }

        /// <summary>Whether every part found its images' X finite.</summary>
        public bool Finite => Volatile.Read(ref _nonFinite) == 0;

        public void Clear() => (_dy, _x, _dw, _partials, _shape) = ([], [], [], [], null);

        private void Run(int part)
        {
            var s = _shape!;
            int size = s.M * _layout.Rows;
            var target = part == 0 ? _dw.AsSpan(0, size) : _partials.AsSpan((part - 1) * size, size);
            if (!WeightGradPart(_wide512, _dy, _x, s, _layout, (int)((long)s.N * part / _parts), (int)((long)s.N * (part + 1) / _parts), target))
                Volatile.Write(ref _nonFinite, 1);
        }
    }

    /// <summary>
    /// target = Σ over images [from, to) of their weight gradient, in image order (batch by batch); false (and stops) when
    /// a spread X element is not finite.
    /// </summary>
    private static bool WeightGradPart(bool wide512, float[] dy, float[] x, ConvShape s, in WideGradLayout l, int from, int to, Span<float> target)
    {
        target.Clear();
        if (to <= from) return true;
        int batch = Math.Min(l.Batch, to - from);
        float[] xs = GradScratch.Get(ref GradScratch.X, batch * l.XImage);
        float[] ds = GradScratch.Get(ref GradScratch.Dy, batch * l.DyImage);
        int[] off = GradScratch.Get(ref GradScratch.TapOffsets, l.Rows);
        // The pads, dropped columns and tails are zero once; each image overwrites only its interior.
        xs.AsSpan(0, batch * l.XImage).Clear();
        ds.AsSpan(0, batch * l.DyImage).Clear();
        int kh = s.Kernel[0], kw = s.Kernel[1];
        int sh = s.Strides[0], sw = s.Strides[1];
        for (int c = 0, t = 0; c < l.Cg; c++)
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++)
                {
                    int di = i * s.Dilations[0], dj = j * s.Dilations[1];
                    off[t++] = (c * l.Phases + di % sh * sw + dj % sw) * l.Plane + di / sh * l.Wp + dj / sw;
                }
        for (int first = from; first < to; first += batch)
        {
            int count = Math.Min(batch, to - first);
            // v − v is 0 for a finite v, NaN otherwise, and NaN stays NaN through the sum (as FiniteCheck.All).
            var check = Vector256<float>.Zero;
            for (int b = 0; b < count; b++) SpreadImage(dy, x, s, l, first + b, xs.AsSpan(b * l.XImage, l.XImage), ds.AsSpan(b * l.DyImage, l.DyImage), ref check);
            if (check != Vector256<float>.Zero) return false;
            if (wide512) WeightGradBlocks<Vector512<float>, Float512>(xs, ds, s, l, count, off, target);
            else WeightGradBlocks<Vector256<float>, Float256>(xs, ds, s, l, count, off, target);
        }
        return true;
    }

    /// <summary>
    /// Copies image <paramref name="n"/> of X into its padded (phase) planes and of dY into its wide rows (interiors only;
    /// pixels no tap reads, past the planes' ends, are skipped), adding v − v of every X element copied to <paramref name="check"/>.
    /// </summary>
    private static void SpreadImage(float[] dy, float[] x, ConvShape s, in WideGradLayout l, int n, Span<float> xs, Span<float> ds, ref Vector256<float> check)
    {
        int inH = s.Input[0], inW = s.Input[1], outH = s.Output[0], outW = s.Output[1], ph = s.PadBegin[0], pw = s.PadBegin[1];
        int sh = s.Strides[0], sw = s.Strides[1];
        var xi = x.AsSpan(n * s.C * inH * inW, s.C * inH * inW);
        // Rows at most Hp; the phase row (pr mod S_h, pr / S_h) of padded row pr = r + ph is stepped, not divided (two
        // integer divisions per 32-float row had cost more than the copy). Column phase b of a padded row starts at input
        // column q = (b − pw) mod S_w and column col = (q + pw) / S_w of its plane, count of them.
        int rows = Math.Min(inH, l.Hp * sh - ph);
        Span<int> q = stackalloc int[MaxDirectGradStride], col = stackalloc int[MaxDirectGradStride], count = stackalloc int[MaxDirectGradStride];
        for (int b = 0; b < sw; b++)
        {
            q[b] = ((b - pw) % sw + sw) % sw;
            col[b] = (q[b] + pw) / sw;
            count[b] = Math.Min((inW - q[b] + sw - 1) / sw, l.Wp - col[b]);
        }
        if (sh == 1 && sw == 1)
        {
            // Stride 1: one plane per channel, row r at padded row r + ph.
            int width = count[0], plane = l.Plane, wp = l.Wp;
            if (width > 0)
                for (int c = 0; c < s.C; c++)
                    for (int r = 0; r < rows; r++)
                        CopyChecked(xi.Slice((c * inH + r) * inW, width), xs.Slice(c * plane + (r + ph) * wp + pw, width), ref check);
        }
        else
        for (int c = 0; c < s.C; c++)
        {
            int a = ph % sh, row = ph / sh;
            for (int r = 0; r < rows; r++)
            {
                var src = xi.Slice((c * inH + r) * inW, inW);
                var phases = xs.Slice((c * l.Phases + a * sw) * l.Plane + row * l.Wp);
                if (++a == sh) (a, row) = (0, row + 1);
                if (sw == 1)
                {
                    if (count[0] > 0) CopyChecked(src[..count[0]], phases.Slice(pw, count[0]), ref check);
                    continue;
                }
                if (sw == 2)
                {
                    // Even input columns (q = 0) go to column phase pw mod 2, odd ones to the other, in one pass over the row.
                    int be = pw % 2, bo = 1 - be;
                    var even = count[be] > 0 ? phases.Slice(be * l.Plane + col[be], count[be]) : Span<float>.Empty;
                    var odd = count[bo] > 0 ? phases.Slice(bo * l.Plane + col[bo], count[bo]) : Span<float>.Empty;
                    Deinterleave(src, even, odd, ref check);
                    continue;
                }
                for (int b = 0; b < sw; b++)
                {
                    if (count[b] <= 0) continue;
                    // A strided gather: q + (count − 1)·S_w < inW and col + count ≤ Wp.
                    var to = phases.Slice(b * l.Plane + col[b], count[b]);
                    {
                        _ = src[q[b] + (count[b] - 1) * sw];
                        ref float from = ref src[q[b]];
                        for (int e = 0; e < to.Length; e++)
                        {
                            float v = Unsafe.Add(ref from, e * sw);
                            Unsafe.Add(ref to[0], e) = v;
                            check += Vector256.CreateScalar(v - v);
                        }
                    }
                }
            }
        }
        var di = dy.AsSpan(n * s.M * outH * outW, s.M * outH * outW);
        for (int m = 0; m < s.M; m++)
            for (int r = 0; r < outH; r++)
                CopyShort(di.Slice((m * outH + r) * outW, outW), ds.Slice(m * l.Width + r * l.Wp, outW));
    }

    /// <summary>
    /// even[e] = row[2e], odd[e] = row[2e + 1] (the two column phases of one input row at column stride 2), adding v − v of
    /// every value copied to <paramref name="check"/>: 16 floats deinterleaved per step (two 256-bit shuffles and two
    /// lane permutes, AVX2), the rest one by one.
    /// </summary>
    private static void Deinterleave(ReadOnlySpan<float> row, Span<float> even, Span<float> odd, ref Vector256<float> check)
    {
        if (2 * even.Length > row.Length + 1 || 2 * odd.Length > row.Length) throw new ArgumentException("The phases are longer than the row.", nameof(row));
        int n = Math.Min(even.Length, odd.Length), e = 0;
        ref float src = ref MemoryMarshal.GetReference(row);
        var acc = check;
        if (Avx2.IsSupported)
            for (; e + 8 <= n && 2 * e + 16 <= row.Length; e += 8)
            {
                var lo = Vector256.LoadUnsafe(ref src, (nuint)(2 * e));
                var hi = Vector256.LoadUnsafe(ref src, (nuint)(2 * e + 8));
                // shufps picks lanes (lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6) (0b10_00_10_00) or the odd ones (0b11_01_11_01);
                // vpermpd 0b11_01_10_00 puts the 64-bit pairs in order.
                var ev = Avx2.Permute4x64(Avx.Shuffle(lo, hi, 0b10_00_10_00).AsDouble(), 0b11_01_10_00).AsSingle();
                var od = Avx2.Permute4x64(Avx.Shuffle(lo, hi, 0b11_01_11_01).AsDouble(), 0b11_01_10_00).AsSingle();
                ev.StoreUnsafe(ref MemoryMarshal.GetReference(even), (nuint)e);
                od.StoreUnsafe(ref MemoryMarshal.GetReference(odd), (nuint)e);
                acc += (ev - ev) + (od - od);
            }
        for (int k = e; k < even.Length; k++)
        {
            float v = row[2 * k];
            even[k] = v;
            acc += Vector256.CreateScalar(v - v);
        }
        for (int k = e; k < odd.Length; k++)
        {
            float v = row[2 * k + 1];
            odd[k] = v;
            acc += Vector256.CreateScalar(v - v);
        }
        check = acc;
    }

    /// <summary>target[(g·Mg + co)·Rows + t] += the dot products of one batch, block by block.</summary>
    private static void WeightGradBlocks<TV, TO>(float[] xs, float[] ds, ConvShape s, in WideGradLayout l, int count, int[] off, Span<float> target)
        where TV : struct where TO : IFloatVector<TV>
    {
        int rows = l.Rows, mg = l.Mg;
        nuint width = (nuint)l.Width, dyImage = (nuint)l.DyImage, xImage = (nuint)l.XImage;
        var offsets = off.AsSpan(0, rows);
        for (int g = 0; g < s.Group; g++)
        {
            ref float xg = ref xs[g * l.Cg * l.Phases * l.Plane];
            int co = 0;
            // Six channels in one block where blocks of 4 would leave two single rows (M = 6, 18, …: LeNet's conv1).
            if (TO.Count == 16 && mg % 4 != 0 && mg % 6 == 0)
                for (; co + 6 <= mg; co += 6)
                {
                    ref float d = ref ds[(g * mg + co) * l.Width];
                    var rowsOut = target[((g * mg + co) * rows)..];
                    int t = 0;
                    for (; t + 4 <= rows; t += 4) Dot6x4<TV, TO>(ref d, width, ref xg, offsets.Slice(t, 4), width, count, dyImage, xImage, rowsOut[t..], rows);
                    for (; t < rows; t++)
                    {
                        Dot4x1<TV, TO>(ref d, width, ref xg, offsets[t], width, count, dyImage, xImage, rowsOut[t..], rows);
                        for (int a = 4; a < 6; a++)
                            rowsOut[a * rows + t] += Dot1x1<TV, TO>(ref Unsafe.Add(ref d, a * l.Width), ref xg, offsets[t], width, count, dyImage, xImage);
                    }
                }
            for (; co + 4 <= mg; co += 4)
            {
                ref float d = ref ds[(g * mg + co) * l.Width];
                var rowsOut = target[((g * mg + co) * rows)..];
                int t = 0;
                for (; t + 6 <= rows; t += 6) Dot4x6<TV, TO>(ref d, width, ref xg, offsets.Slice(t, 6), width, count, dyImage, xImage, rowsOut[t..], rows);
                for (; t < rows; t++) Dot4x1<TV, TO>(ref d, width, ref xg, offsets[t], width, count, dyImage, xImage, rowsOut[t..], rows);
            }
            for (; co < mg; co++)
            {
                ref float d = ref ds[(g * mg + co) * l.Width];
                var rowOut = target.Slice((g * mg + co) * rows, rows);
                int t = 0;
                for (; t + 6 <= rows; t += 6) Dot1x6<TV, TO>(ref d, ref xg, offsets.Slice(t, 6), width, count, dyImage, xImage, rowOut[t..]);
                for (; t < rows; t++) rowOut[t] += Dot1x1<TV, TO>(ref d, ref xg, offsets[t], width, count, dyImage, xImage);
            }
        }
    }

}
