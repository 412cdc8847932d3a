using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Conv's weight gradient with the vector along the output channels, for rows too narrow to fill a vector of positions
/// (LeNet's conv2: dY rows of 10, 16 channels; the wide dot products of <see cref="WeightGradDirect"/> keep 10 of every
/// 14 lanes busy and reduce every sum horizontally): dW[co, ci, i, j] = Σₙ Σ_{y, x} dY[n, co, y, x] · X_pad[n, ci, y + i·dh, x + j·dw]
/// (stride 1). A register block is one vector of 16 channels co at up to 12 taps (ci, i, j): per position it loads the
/// 16 dY values once (dY is transposed to channels-last per image) and multiplies them by each tap's broadcast X, the
/// "output-channel vectorized" loop of MLAS's NCHWc and oneDNN's direct convolutions (their weight-gradient kernels
/// vectorize over oc the same way). No horizontal sums: each tap's vector is added into a channels-last partial
/// dWᵀ[t, co] per image, transposed into dW at the end.
/// </summary>
/// <remarks>
/// Images are split into one contiguous range per thread, each summed in image order into its own partial, the partials
/// added in thread order: deterministic for a given thread count. Padding reads zeros, which add nothing for a finite dY
/// (as in the im2col path, where a non-finite dY times padding is NaN too); X is checked while it is padded and a
/// non-finite one declined, so the caller takes the exact path.
/// </remarks>
internal static partial class ConvOps
{
    /// <summary>Output channels per vector (float32, AVX-512).</summary>
    private const int GradChannelLanes = 16;

    /// <summary>
    /// Whether <see cref="WeightGradChannels"/> applies and pays: float32 2-D ungrouped stride-1 convolutions with a
    /// multiple of 16 output channels and output rows narrower than 16 (wider ones fill the wide kernel's vectors), on AVX-512.
    /// </summary>
    internal static bool UseWeightGradChannels(ConvShape s) =>
        CanUseWeightGradChannels(s) && s.Output[1] < GradChannelLanes;

    /// <summary>Whether <see cref="WeightGradChannels"/> can compute dW of <paramref name="s"/> (it may not pay).</summary>
    internal static bool CanUseWeightGradChannels(ConvShape s) =>
        Vector512.IsHardwareAccelerated && s.Input.Length == 2 && s.Group == 1 && s.N > 0 && s.C > 0 && s.M > 0 && s.M % GradChannelLanes == 0
        && s.Strides[0] == 1 && s.Strides[1] == 1 && s.Output[0] > 0 && s.Output[1] > 0
        && (long)s.C * (s.Output[0] + (s.Kernel[0] - 1) * s.Dilations[0]) * (s.Output[1] + (s.Kernel[1] - 1) * s.Dilations[1]) < 1 << 26
        && (long)s.M * s.Output[0] * s.Output[1] < 1 << 26 && (long)s.M * s.C * s.Kernel[0] * s.Kernel[1] < 1 << 26;

    /// <summary>
    /// dW (written) of a float32 Conv for X (N, C, H, W) and dY (N, M, outH, outW); the caller checked
    /// <see cref="CanUseWeightGradChannels"/>. Returns false, dW unspecified, when an element of X is not finite.
    /// </summary>
    internal static bool WeightGradChannels(float[] dy, float[] x, float[] dw, ConvShape s, int threads)
    {
        int taps = s.C * s.Kernel[0] * s.Kernel[1], size = taps * s.M, parts = Math.Max(1, Math.Min(threads, s.N));
        float[] partials = GradScratch.Get(ref GradScratch.Partials, parts * size);
        int[] nonFinite = GradScratch.Get(ref GradScratch.TapOffsets, parts);
        ItemJob<ChannelGradItem>.For(parts, threads, new ChannelGradItem(dy, x, partials, nonFinite, s, parts));
        for (int p = 0; p < parts; p++)
            if (nonFinite[p] != 0) return false;
        // dW[co, t] = Σ_part dWᵀ_part[t, co], in part order.
        for (int t = 0; t < taps; t++)
            for (int co = 0; co < s.M; co++)
            {
                float sum = partials[t * s.M + co];
                for (int p = 1; p < parts; p++) sum += partials[p * size + t * s.M + co];
                dw[co * taps + t] = sum;
            }
        return true;
    }

    /// <summary>One thread part of <see cref="WeightGradChannels"/>: images [N·part / parts, N·(part + 1) / parts).</summary>
    private readonly struct ChannelGradItem(float[] dy, float[] x, float[] partials, int[] nonFinite, ConvShape s, int parts) : IParallelItem
    {
        public void Run(int part)
        {
            int kh = s.Kernel[0], kw = s.Kernel[1], dh = s.Dilations[0], dwl = s.Dilations[1];
            int outH = s.Output[0], outW = s.Output[1], inH = s.Input[0], inW = s.Input[1], ph = s.PadBegin[0], pw = s.PadBegin[1];
            int hp = outH + (kh - 1) * dh, wp = outW + (kw - 1) * dwl, plane = hp * wp, taps = s.C * kh * kw, positions = outH * outW;
            var target = partials.AsSpan(part * taps * s.M, taps * s.M);
            target.Clear();
            nonFinite[part] = 0;
            float[] xs = GradScratch.Get(ref GradScratch.Pad, s.C * plane);
            float[] dyt = GradScratch.Get(ref GradScratch.Wide, positions * s.M);
            int[] offsets = GradScratch.Get(ref GradScratch.PhaseOffsets, taps);
            for (int c = 0, t = 0; c < s.C; c++)
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++)
                        offsets[t++] = (c * hp + i * dh) * wp + j * dwl;
            // The border is zero once; each image overwrites the interior (rows and columns clipped to the plane).
            xs.AsSpan(0, s.C * plane).Clear();
            int rows = Math.Min(inH, hp - ph), r0 = Math.Max(0, -ph), c0 = Math.Max(0, -pw), width = Math.Min(inW, wp - pw) - c0;
            int from = (int)((long)s.N * part / parts), to = (int)((long)s.N * (part + 1) / parts);
            for (int n = from; n < to; n++)
            {
                var check = Vector256<float>.Zero;
                if (width > 0)
                    for (int c = 0; c < s.C; c++)
                        for (int r = r0; r < rows; r++)
                            CopyChecked(x.AsSpan(((n * s.C + c) * inH + r) * inW + c0, width), xs.AsSpan(c * plane + (r + ph) * wp + pw + c0, width), ref check);
                if (check != Vector256<float>.Zero)
                {
                    nonFinite[part] = 1;
                    return;
                }
                // dYᵀ[p, co] = dY[n, co, p].
                TransposeToChannelsLast(dy.AsSpan(n * s.M * positions, s.M * positions), s.M, positions, dyt);
                for (int cb = 0; cb < s.M; cb += GradChannelLanes)
                {
                    if (dwl == 1 && kw <= MaxGradRowTaps)
                    {
                        // Blocks of whole kernel rows: one base offset per row, the row's taps at displacements 0..kw−1
                        // (12 loose tap offsets had not fit the 16 general registers).
                        int perBlock = GradRowsPerBlock(kw), kernelRows = s.C * kh, kr = 0;
                        for (; kr + perBlock <= kernelRows; kr += perBlock)
                            ChannelGradRows(kw, perBlock, ref dyt[cb], s.M, ref xs[0], ref offsets[kr * kw], kw, outH, outW, wp, ref target[kr * kw * s.M + cb]);
                        for (; kr < kernelRows; kr++)
                            ChannelGradRows(kw, 1, ref dyt[cb], s.M, ref xs[0], ref offsets[kr * kw], kw, outH, outW, wp, ref target[kr * kw * s.M + cb]);
                        continue;
                    }
                    for (int t = 0; t < taps; t += ChannelBlockColumns)
                        ChannelGradBlock(Math.Min(ChannelBlockColumns, taps - t), ref dyt[cb], s.M, ref xs[0], ref offsets[t], outH, outW, wp, ref target[t * s.M + cb]);
                }
            }
        }
    }

    /// <summary>
    /// to[p·m + co] = from[co·positions + p]: 16 channels at a time, each position's 16 values gathered from the 16
    /// channel rows and stored as one vector (contiguous stores; the strided reads stay within 16 rows in L1).
    /// </summary>
    private static void TransposeToChannelsLast(ReadOnlySpan<float> from, int m, int positions, float[] to)
    {
        if (from.Length < m * positions || to.Length < m * positions || m % GradChannelLanes != 0) throw new ArgumentException("Sizes do not fit.");
        ref float src = ref MemoryMarshal.GetReference(from);
        ref float dst = ref to[0];
        for (int cb = 0; cb < m; cb += GradChannelLanes)
        {
            ref float rows = ref Unsafe.Add(ref src, cb * positions);
            for (int p = 0; p < positions; p++)
            {
                ref float c0 = ref Unsafe.Add(ref rows, p);
                nint q = positions;
                Vector512.Create(Vector256.Create(c0, Unsafe.Add(ref c0, q), Unsafe.Add(ref c0, 2 * q), Unsafe.Add(ref c0, 3 * q),
                        Unsafe.Add(ref c0, 4 * q), Unsafe.Add(ref c0, 5 * q), Unsafe.Add(ref c0, 6 * q), Unsafe.Add(ref c0, 7 * q)),
                    Vector256.Create(Unsafe.Add(ref c0, 8 * q), Unsafe.Add(ref c0, 9 * q), Unsafe.Add(ref c0, 10 * q), Unsafe.Add(ref c0, 11 * q),
                        Unsafe.Add(ref c0, 12 * q), Unsafe.Add(ref c0, 13 * q), Unsafe.Add(ref c0, 14 * q), Unsafe.Add(ref c0, 15 * q)))
                    .StoreUnsafe(ref dst, (nuint)(p * m + cb));
            }
        }
    }

    /// <summary>One register block of <paramref name="count"/> (1..12) taps: the count as a type, so every variant is straight-line code.</summary>
    private static void ChannelGradBlock(int count, ref float dyt, int ld, ref float xs, ref int off, int outH, int outW, int wp, ref float target)
    {
        switch (count)
        {
            case 1: ChannelGradBlock<Columns1>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 2: ChannelGradBlock<Columns2>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 3: ChannelGradBlock<Columns3>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 4: ChannelGradBlock<Columns4>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 5: ChannelGradBlock<Columns5>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 6: ChannelGradBlock<Columns6>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 7: ChannelGradBlock<Columns7>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 8: ChannelGradBlock<Columns8>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 9: ChannelGradBlock<Columns9>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 10: ChannelGradBlock<Columns10>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 11: ChannelGradBlock<Columns11>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            case 12: ChannelGradBlock<Columns12>(ref dyt, ld, ref xs, ref off, outH, outW, wp, ref target); break;
            default: throw new ArgumentOutOfRangeException(nameof(count), count, "A block holds 1 to 12 taps.");
        }
    }

    /// <summary>
    /// target[r·ld + lane] += Σ_{y, x} dyt[(y·outW + x)·ld + lane] · xs[off[r] + y·wp + x] for taps r &lt; R and the 16
    /// lanes: R accumulators, one dY vector load and R broadcast multiply-adds per position.
    /// </summary>
    private static void ChannelGradBlock<TR>(ref float dyt, int ld, ref float xs, ref int off, int outH, int outW, int wp, ref float target) where TR : struct, IColumnCount
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        Vector512<float> a6 = default, a7 = default, a8 = default, a9 = default, a10 = default, a11 = default;
        int n = TR.Count;
        nint o0 = off, o1 = n > 1 ? Unsafe.Add(ref off, 1) : 0, o2 = n > 2 ? Unsafe.Add(ref off, 2) : 0, o3 = n > 3 ? Unsafe.Add(ref off, 3) : 0;
        nint o4 = n > 4 ? Unsafe.Add(ref off, 4) : 0, o5 = n > 5 ? Unsafe.Add(ref off, 5) : 0, o6 = n > 6 ? Unsafe.Add(ref off, 6) : 0, o7 = n > 7 ? Unsafe.Add(ref off, 7) : 0;
        nint o8 = n > 8 ? Unsafe.Add(ref off, 8) : 0, o9 = n > 9 ? Unsafe.Add(ref off, 9) : 0, o10 = n > 10 ? Unsafe.Add(ref off, 10) : 0, o11 = n > 11 ? Unsafe.Add(ref off, 11) : 0;
        nuint p = 0;
        for (int y = 0; y < outH; y++)
        {
            ref float row = ref Unsafe.Add(ref xs, y * wp);
            for (int x = 0; x < outW; x++, p += (nuint)ld)
            {
                var d = Vector512.LoadUnsafe(ref dyt, p);
                ref float xv = ref Unsafe.Add(ref row, x);
                a0 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o0)), a0);
                if (n > 1) a1 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o1)), a1);
                if (n > 2) a2 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o2)), a2);
                if (n > 3) a3 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o3)), a3);
                if (n > 4) a4 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o4)), a4);
                if (n > 5) a5 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o5)), a5);
                if (n > 6) a6 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o6)), a6);
                if (n > 7) a7 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o7)), a7);
                if (n > 8) a8 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o8)), a8);
                if (n > 9) a9 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o9)), a9);
                if (n > 10) a10 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o10)), a10);
                if (n > 11) a11 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref xv, o11)), a11);
            }
        }
        nuint l = (nuint)ld;
        Add(a0, ref target, 0);
        if (n > 1) Add(a1, ref target, l);
        if (n > 2) Add(a2, ref target, 2 * l);
        if (n > 3) Add(a3, ref target, 3 * l);
        if (n > 4) Add(a4, ref target, 4 * l);
        if (n > 5) Add(a5, ref target, 5 * l);
        if (n > 6) Add(a6, ref target, 6 * l);
        if (n > 7) Add(a7, ref target, 7 * l);
        if (n > 8) Add(a8, ref target, 8 * l);
        if (n > 9) Add(a9, ref target, 9 * l);
        if (n > 10) Add(a10, ref target, 10 * l);
        if (n > 11) Add(a11, ref target, 11 * l);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Add(Vector512<float> v, ref float to, nuint at) => (Vector512.LoadUnsafe(ref to, at) + v).StoreUnsafe(ref to, at);
    }
}
