using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// MaxPool and MaxPoolGrad for the commonest window, 2×2 with stride 2, no padding and no dilation, every window
/// inside the input (LeNet's and VGG's pooling; PyTorch <c>max_pool2d(x, 2)</c>). Each window is scanned in row-major
/// order (0,0), (0,1), (1,0), (1,1) with the general path's rule: a later element wins only when it is greater, or
/// NaN over a number; so the winner, and the element MaxPoolGrad routes the cotangent to, are exactly those of
/// <see cref="WindowArgMax{T}"/>. Windows do not overlap, so dX is written once per element (no accumulation, no
/// zero fill beyond the rows and columns no window covers). Rows of windows run eight (float) or four (double)
/// at a time: two rows of X are split into even and odd columns with AVX2 shuffles, the scan is three lane-wise
/// selects, and the winner masks pick dY back into place. With <c>relu</c> (PlanFusion's MaxPoolGrad + ReluGrad, see
/// PlanFusion.Pooling.cs) each winner mask is also ANDed with X &gt; 0, so dX = dY at a winner that is &gt; 0 and +0
/// elsewhere: bit for bit ReluGrad(MaxPoolGrad(dY, X), X), since ReluGrad keeps its input's bits where X &gt; 0 and
/// writes +0 elsewhere (a NaN X compares false).
/// </summary>
internal static partial class PoolingOps
{
    /// <summary>True (and done) when the pooling is the 2×2 stride-2 case above and T is float or double.</summary>
    private static bool TryPool2x2<T>(T[] x, T[]? y, (T[] Dy, T[] Dx)? grad, PoolGeometry g, int threads, bool relu = false)
    {
        if (!Is2x2(g) || (typeof(T) != typeof(float) && typeof(T) != typeof(double)) || !UsePool2x2) return false;
        var (input, output, _, _, _, _) = g.Windows.Shape;
        var job = t_pool2x2 ??= new Pool2x2Job();
        job.Set(x, y, grad?.Dy, grad?.Dx, input[0], input[1], output[0], output[1], relu);
        int rows = g.N * g.C * output[0];
        try
        {
            long work = (long)rows * output[1] * 4;
            if (threads > 1 && rows > 1 && work >= 1 << 15)
                ChunkRunner.ForRanges(rows, Math.Min(threads, rows), 0, threads, job.Body);
            else
                job.Body(0, rows);
        }
        finally
        {
            job.Clear();
        }
        return true;
    }

    /// <summary>Whether the windows are 2×2, stride 2, unpadded, undilated and all inside the input.</summary>
    private static bool Is2x2(PoolGeometry g)
    {
        var (input, output, kernel, strides, dilations, padBegin) = g.Windows.Shape;
        return input.Length == 2 && kernel[0] == 2 && kernel[1] == 2 && strides[0] == 2 && strides[1] == 2 && dilations[0] == 1 && dilations[1] == 1
            && padBegin[0] == 0 && padBegin[1] == 0 && 2 * output[0] <= input[0] && 2 * output[1] <= input[1] && output[0] > 0 && output[1] > 0;
    }

    /// <summary>False on a test thread that runs the general path for reference.</summary>
    internal static bool UsePool2x2
    {
        get => !t_generalOnly;
        set => t_generalOnly = !value;
    }

    [ThreadStatic] private static bool t_generalOnly;

    [ThreadStatic] private static Pool2x2Job? t_pool2x2;

    /// <summary>The arguments of one call, held in a reused object so that the parallel loop's delegate is made once per thread.</summary>
    private sealed class Pool2x2Job
    {
        private Array? _x, _y, _dy, _dx;
        private int _inH, _inW, _outH, _outW;
        private bool _relu;

        public readonly Action<int, int> Body;

        public Pool2x2Job() => Body = Run;

        public void Set(Array x, Array? y, Array? dy, Array? dx, int inH, int inW, int outH, int outW, bool relu) =>
            (_x, _y, _dy, _dx, _inH, _inW, _outH, _outW, _relu) = (x, y, dy, dx, inH, inW, outH, outW, relu);

        public void Clear() => (_x, _y, _dy, _dx) = (null, null, null, null);

        /// <summary>Window rows [from, to) of all planes (row r: plane r / outH, output row r % outH).</summary>
        private void Run(int from, int to)
        {
            if (_x is float[] xf) Rows<float>(xf, (float[]?)_y, (float[]?)_dy, (float[]?)_dx, from, to);
            else Rows<double>((double[])_x!, (double[]?)_y, (double[]?)_dy, (double[]?)_dx, from, to);
        }

        private void Rows<T>(T[] x, T[]? y, T[]? dy, T[]? dx, int from, int to) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int inW = _inW, outW = _outW, outH = _outH, inSize = _inH * _inW;
            bool coveredColumns = 2 * outW == inW;
            // Row r is output row r % outH of plane r / outH: one division per range, then counted.
            int plane = from / outH, oh = from % outH - 1;
            for (int r = from; r < to; r++)
            {
                if (++oh == outH) (plane, oh) = (plane + 1, 0);
                int row0 = plane * inSize + 2 * oh * inW;
                var x0 = x.AsSpan(row0, inW);
                var x1 = x.AsSpan(row0 + inW, inW);
                int o = r * outW;
                if (dx is null)
                {
                    Forward2x2<T>(x0, x1, y!.AsSpan(o, outW));
                    continue;
                }
                var d0 = dx.AsSpan(row0, inW);
                var d1 = dx.AsSpan(row0 + inW, inW);
                Backward2x2<T>(x0, x1, dy!.AsSpan(o, outW), d0, d1, _relu);
                if (!coveredColumns)
                {
                    d0[(2 * outW)..].Clear();
                    d1[(2 * outW)..].Clear();
                }
                // The input rows below the last window row get no cotangent.
                if (oh == outH - 1 && 2 * outH < _inH) dx.AsSpan(row0 + 2 * inW, inSize - (2 * oh + 2) * inW).Clear();
            }
        }
    }

    /// <summary>c beats the best so far: greater, or NaN over a number.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Beats<T>(T c, T best) where T : IFloatingPointIeee754<T> => c > best || (T.IsNaN(c) && !T.IsNaN(best));

    /// <summary>The winner (0…3, row-major) of the window whose rows are (a, b) and (c, d).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Winner<T>(T a, T b, T c, T d) where T : IFloatingPointIeee754<T>
    {
        int k = 0;
        T best = a;
        if (Beats(b, best)) { best = b; k = 1; }
        if (Beats(c, best)) { best = c; k = 2; }
        if (Beats(d, best)) k = 3;
        return k;
    }

    /// <summary>y[j] = the winner of the window over columns 2j, 2j+1 of rows x0 and x1.</summary>
    /// <remarks>
    /// Vector steps cover a row in whole vectors, the last one shifted back to end at the row's end (recomputing a few
    /// windows, which writes the same values again); rows narrower than the narrowest vector are scalar.
    /// </remarks>
    internal static void Forward2x2<T>(ReadOnlySpan<T> x0, ReadOnlySpan<T> x1, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int outW = y.Length;
        if (Avx2.IsSupported && typeof(T) == typeof(float) && outW >= 4)
        {
            ref float r0 = ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(x0)), r1 = ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(x1));
            ref float dst = ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(y));
            if (outW < 8)
            {
                Max4(ref r0, ref r1, ref dst, 0);
                Max4(ref r0, ref r1, ref dst, outW - 4);
                return;
            }
            for (int j = 0; j < outW; j += 8) Max8(ref r0, ref r1, ref dst, Math.Min(j, outW - 8));
            return;
        }
        if (Avx2.IsSupported && typeof(T) == typeof(double) && outW >= 2)
        {
            ref double r0 = ref Unsafe.As<T, double>(ref MemoryMarshal.GetReference(x0)), r1 = ref Unsafe.As<T, double>(ref MemoryMarshal.GetReference(x1));
            ref double dst = ref Unsafe.As<T, double>(ref MemoryMarshal.GetReference(y));
            if (outW < 4)
            {
                Max2(ref r0, ref r1, ref dst, 0);
                Max2(ref r0, ref r1, ref dst, outW - 2);
                return;
            }
            for (int j = 0; j < outW; j += 4) Max4(ref r0, ref r1, ref dst, Math.Min(j, outW - 4));
            return;
        }
        for (int j = 0; j < outW; j++)
        {
            T a = x0[2 * j], b = x0[2 * j + 1], c = x1[2 * j], d = x1[2 * j + 1];
            y[j] = Winner(a, b, c, d) switch { 0 => a, 1 => b, 2 => c, _ => d };
        }
    }

    /// <summary>
    /// d0, d1 (columns 0 … 2·dy.Length − 1 of two rows of dX) = dy[j] at the winner of window j, 0 at its other three
    /// elements (vector steps as in <see cref="Forward2x2{T}"/>: a recomputed window writes the same values again).
    /// With <paramref name="relu"/>, only where that winner is also &gt; 0 (ReluGrad's mask by X fused in).
    /// </summary>
    internal static void Backward2x2<T>(ReadOnlySpan<T> x0, ReadOnlySpan<T> x1, ReadOnlySpan<T> dy, Span<T> d0, Span<T> d1, bool relu = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int outW = dy.Length;
        if (Avx2.IsSupported && typeof(T) == typeof(float) && outW >= 4)
        {
            ref float r0 = ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(x0)), r1 = ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(x1));
            ref float g = ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(dy));
            ref float o0 = ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(d0)), o1 = ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(d1));
            if (outW < 8)
            {
                Route4(ref r0, ref r1, ref g, ref o0, ref o1, 0, relu);
                Route4(ref r0, ref r1, ref g, ref o0, ref o1, outW - 4, relu);
                return;
            }
            for (int j = 0; j < outW; j += 8) Route8(ref r0, ref r1, ref g, ref o0, ref o1, Math.Min(j, outW - 8), relu);
            return;
        }
        if (Avx2.IsSupported && typeof(T) == typeof(double) && outW >= 2)
        {
            ref double r0 = ref Unsafe.As<T, double>(ref MemoryMarshal.GetReference(x0)), r1 = ref Unsafe.As<T, double>(ref MemoryMarshal.GetReference(x1));
            ref double g = ref Unsafe.As<T, double>(ref MemoryMarshal.GetReference(dy));
            ref double o0 = ref Unsafe.As<T, double>(ref MemoryMarshal.GetReference(d0)), o1 = ref Unsafe.As<T, double>(ref MemoryMarshal.GetReference(d1));
            if (outW < 4)
            {
                Route2(ref r0, ref r1, ref g, ref o0, ref o1, 0, relu);
                Route2(ref r0, ref r1, ref g, ref o0, ref o1, outW - 2, relu);
                return;
            }
            for (int j = 0; j < outW; j += 4) Route4(ref r0, ref r1, ref g, ref o0, ref o1, Math.Min(j, outW - 4), relu);
            return;
        }
        for (int j = 0; j < outW; j++)
        {
            int k = Winner(x0[2 * j], x0[2 * j + 1], x1[2 * j], x1[2 * j + 1]);
            T gj = dy[j];
            if (relu && !((k switch { 0 => x0[2 * j], 1 => x0[2 * j + 1], 2 => x1[2 * j], _ => x1[2 * j + 1] }) > T.Zero)) k = -1;
            d0[2 * j] = k == 0 ? gj : T.Zero;
            d0[2 * j + 1] = k == 1 ? gj : T.Zero;
            d1[2 * j] = k == 2 ? gj : T.Zero;
            d1[2 * j + 1] = k == 3 ? gj : T.Zero;
        }
    }

    // One vector step at window j: Max* stores the winners, Route* the routed cotangents.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Max8(ref float r0, ref float r1, ref float y, int j)
    {
        var (a, b) = SplitColumns(Vector256.LoadUnsafe(ref r0, (nuint)(2 * j)), Vector256.LoadUnsafe(ref r0, (nuint)(2 * j + 8)));
        var (c, d) = SplitColumns(Vector256.LoadUnsafe(ref r1, (nuint)(2 * j)), Vector256.LoadUnsafe(ref r1, (nuint)(2 * j + 8)));
        Best(a, b, c, d).StoreUnsafe(ref y, (nuint)j);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Max4(ref double r0, ref double r1, ref double y, int j)
    {
        var (a, b) = SplitColumns(Vector256.LoadUnsafe(ref r0, (nuint)(2 * j)), Vector256.LoadUnsafe(ref r0, (nuint)(2 * j + 4)));
        var (c, d) = SplitColumns(Vector256.LoadUnsafe(ref r1, (nuint)(2 * j)), Vector256.LoadUnsafe(ref r1, (nuint)(2 * j + 4)));
        Best(a, b, c, d).StoreUnsafe(ref y, (nuint)j);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Max4(ref float r0, ref float r1, ref float y, int j)
    {
        var (a, b) = SplitColumns(Vector128.LoadUnsafe(ref r0, (nuint)(2 * j)), Vector128.LoadUnsafe(ref r0, (nuint)(2 * j + 4)));
        var (c, d) = SplitColumns(Vector128.LoadUnsafe(ref r1, (nuint)(2 * j)), Vector128.LoadUnsafe(ref r1, (nuint)(2 * j + 4)));
        Best(a.ToVector256Unsafe(), b.ToVector256Unsafe(), c.ToVector256Unsafe(), d.ToVector256Unsafe()).GetLower().StoreUnsafe(ref y, (nuint)j);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Max2(ref double r0, ref double r1, ref double y, int j)
    {
        var (a, b) = SplitColumns(Vector128.LoadUnsafe(ref r0, (nuint)(2 * j)), Vector128.LoadUnsafe(ref r0, (nuint)(2 * j + 2)));
        var (c, d) = SplitColumns(Vector128.LoadUnsafe(ref r1, (nuint)(2 * j)), Vector128.LoadUnsafe(ref r1, (nuint)(2 * j + 2)));
        Best(a.ToVector256Unsafe(), b.ToVector256Unsafe(), c.ToVector256Unsafe(), d.ToVector256Unsafe()).GetLower().StoreUnsafe(ref y, (nuint)j);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Route8(ref float r0, ref float r1, ref float dy, ref float d0, ref float d1, int j, bool relu)
    {
        var (a, b) = SplitColumns(Vector256.LoadUnsafe(ref r0, (nuint)(2 * j)), Vector256.LoadUnsafe(ref r0, (nuint)(2 * j + 8)));
        var (c, d) = SplitColumns(Vector256.LoadUnsafe(ref r1, (nuint)(2 * j)), Vector256.LoadUnsafe(ref r1, (nuint)(2 * j + 8)));
        var (m0, m1, m2, m3) = WinnerMasks(a, b, c, d);
        if (relu) (m0, m1, m2, m3) = PositiveWinners(a, b, c, d, m0, m1, m2, m3);
        var g = Vector256.LoadUnsafe(ref dy, (nuint)j);
        var (lo0, hi0) = MergeColumns(g & m0, g & m1);
        var (lo1, hi1) = MergeColumns(g & m2, g & m3);
        lo0.StoreUnsafe(ref d0, (nuint)(2 * j));
        hi0.StoreUnsafe(ref d0, (nuint)(2 * j + 8));
        lo1.StoreUnsafe(ref d1, (nuint)(2 * j));
        hi1.StoreUnsafe(ref d1, (nuint)(2 * j + 8));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Route4(ref double r0, ref double r1, ref double dy, ref double d0, ref double d1, int j, bool relu)
    {
        var (a, b) = SplitColumns(Vector256.LoadUnsafe(ref r0, (nuint)(2 * j)), Vector256.LoadUnsafe(ref r0, (nuint)(2 * j + 4)));
        var (c, d) = SplitColumns(Vector256.LoadUnsafe(ref r1, (nuint)(2 * j)), Vector256.LoadUnsafe(ref r1, (nuint)(2 * j + 4)));
        var (m0, m1, m2, m3) = WinnerMasks(a, b, c, d);
        if (relu) (m0, m1, m2, m3) = PositiveWinners(a, b, c, d, m0, m1, m2, m3);
        var g = Vector256.LoadUnsafe(ref dy, (nuint)j);
        var (lo0, hi0) = MergeColumns(g & m0, g & m1);
        var (lo1, hi1) = MergeColumns(g & m2, g & m3);
        lo0.StoreUnsafe(ref d0, (nuint)(2 * j));
        hi0.StoreUnsafe(ref d0, (nuint)(2 * j + 4));
        lo1.StoreUnsafe(ref d1, (nuint)(2 * j));
        hi1.StoreUnsafe(ref d1, (nuint)(2 * j + 4));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Route4(ref float r0, ref float r1, ref float dy, ref float d0, ref float d1, int j, bool relu)
    {
        var (a, b) = SplitColumns(Vector128.LoadUnsafe(ref r0, (nuint)(2 * j)), Vector128.LoadUnsafe(ref r0, (nuint)(2 * j + 4)));
        var (c, d) = SplitColumns(Vector128.LoadUnsafe(ref r1, (nuint)(2 * j)), Vector128.LoadUnsafe(ref r1, (nuint)(2 * j + 4)));
        var (m0, m1, m2, m3) = WinnerMasks(a.ToVector256Unsafe(), b.ToVector256Unsafe(), c.ToVector256Unsafe(), d.ToVector256Unsafe());
        if (relu) (m0, m1, m2, m3) = PositiveWinners(a.ToVector256Unsafe(), b.ToVector256Unsafe(), c.ToVector256Unsafe(), d.ToVector256Unsafe(), m0, m1, m2, m3);
        var g = Vector128.LoadUnsafe(ref dy, (nuint)j);
        var (lo0, hi0) = MergeColumns(g & m0.GetLower(), g & m1.GetLower());
        var (lo1, hi1) = MergeColumns(g & m2.GetLower(), g & m3.GetLower());
        lo0.StoreUnsafe(ref d0, (nuint)(2 * j));
        hi0.StoreUnsafe(ref d0, (nuint)(2 * j + 4));
        lo1.StoreUnsafe(ref d1, (nuint)(2 * j));
        hi1.StoreUnsafe(ref d1, (nuint)(2 * j + 4));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Route2(ref double r0, ref double r1, ref double dy, ref double d0, ref double d1, int j, bool relu)
    {
        var (a, b) = SplitColumns(Vector128.LoadUnsafe(ref r0, (nuint)(2 * j)), Vector128.LoadUnsafe(ref r0, (nuint)(2 * j + 2)));
        var (c, d) = SplitColumns(Vector128.LoadUnsafe(ref r1, (nuint)(2 * j)), Vector128.LoadUnsafe(ref r1, (nuint)(2 * j + 2)));
        var (m0, m1, m2, m3) = WinnerMasks(a.ToVector256Unsafe(), b.ToVector256Unsafe(), c.ToVector256Unsafe(), d.ToVector256Unsafe());
        if (relu) (m0, m1, m2, m3) = PositiveWinners(a.ToVector256Unsafe(), b.ToVector256Unsafe(), c.ToVector256Unsafe(), d.ToVector256Unsafe(), m0, m1, m2, m3);
        var g = Vector128.LoadUnsafe(ref dy, (nuint)j);
        var (lo0, hi0) = MergeColumns(g & m0.GetLower(), g & m1.GetLower());
        var (lo1, hi1) = MergeColumns(g & m2.GetLower(), g & m3.GetLower());
        lo0.StoreUnsafe(ref d0, (nuint)(2 * j));
        hi0.StoreUnsafe(ref d0, (nuint)(2 * j + 2));
        lo1.StoreUnsafe(ref d1, (nuint)(2 * j));
        hi1.StoreUnsafe(ref d1, (nuint)(2 * j + 2));
    }

    /// <summary>The winning values of four window elements, lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> Best<T>(Vector256<T> a, Vector256<T> b, Vector256<T> c, Vector256<T> d)
    {
        var best = Vector256.ConditionalSelect(BeatsLanes(b, a), b, a);
        best = Vector256.ConditionalSelect(BeatsLanes(c, best), c, best);
        return Vector256.ConditionalSelect(BeatsLanes(d, best), d, best);
    }

    /// <summary>Lane-wise <see cref="Beats{T}"/>: all ones where c beats best.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> BeatsLanes<T>(Vector256<T> c, Vector256<T> best) =>
        Vector256.GreaterThan(c, best) | Vector256.AndNot(Vector256.Equals(best, best), Vector256.Equals(c, c));

    /// <summary>One mask per window element, all ones in the lanes whose window that element wins.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<T>, Vector256<T>, Vector256<T>, Vector256<T>) WinnerMasks<T>(Vector256<T> a, Vector256<T> b, Vector256<T> c, Vector256<T> d)
    {
        var t1 = BeatsLanes(b, a);
        var best = Vector256.ConditionalSelect(t1, b, a);
        var t2 = BeatsLanes(c, best);
        best = Vector256.ConditionalSelect(t2, c, best);
        var t3 = BeatsLanes(d, best);
        var later3 = t3;
        var later2 = t2 | t3;
        var later1 = t1 | later2;
        return (~later1, Vector256.AndNot(t1, later2), Vector256.AndNot(t2, later3), t3);
    }

    /// <summary>The winner masks kept only in the lanes where the winning element is &gt; 0 (false for NaN): ReluGrad's mask.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<T>, Vector256<T>, Vector256<T>, Vector256<T>) PositiveWinners<T>(Vector256<T> a, Vector256<T> b, Vector256<T> c, Vector256<T> d,
        Vector256<T> m0, Vector256<T> m1, Vector256<T> m2, Vector256<T> m3) =>
        (m0 & Vector256.GreaterThan(a, Vector256<T>.Zero), m1 & Vector256.GreaterThan(b, Vector256<T>.Zero),
         m2 & Vector256.GreaterThan(c, Vector256<T>.Zero), m3 & Vector256.GreaterThan(d, Vector256<T>.Zero));

    /// <summary>Even and odd elements of the 16 floats (lo, hi): [x0, x2, …, x14] and [x1, x3, …, x15].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Even, Vector256<float> Odd) SplitColumns(Vector256<float> lo, Vector256<float> hi)
    {
        // Per 128-bit lane: [lo0, lo2, hi0, hi2 | lo4, lo6, hi4, hi6]; the 64-bit permute restores the order.
        var even = Avx.Shuffle(lo, hi, 0b10_00_10_00);
        var odd = Avx.Shuffle(lo, hi, 0b11_01_11_01);
        return (Avx2.Permute4x64(even.AsDouble(), 0b11_01_10_00).AsSingle(), Avx2.Permute4x64(odd.AsDouble(), 0b11_01_10_00).AsSingle());
    }

    /// <summary>Even and odd elements of the 8 doubles (lo, hi).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<double> Even, Vector256<double> Odd) SplitColumns(Vector256<double> lo, Vector256<double> hi) =>
        (Avx2.Permute4x64(Avx.UnpackLow(lo, hi), 0b11_01_10_00), Avx2.Permute4x64(Avx.UnpackHigh(lo, hi), 0b11_01_10_00));

    /// <summary>The inverse of <see cref="SplitColumns(Vector256{float}, Vector256{float})"/>: interleaves p and q into 16 floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Lo, Vector256<float> Hi) MergeColumns(Vector256<float> p, Vector256<float> q)
    {
        var lo = Avx.UnpackLow(p, q);
        var hi = Avx.UnpackHigh(p, q);
        return (Avx.Permute2x128(lo, hi, 0x20), Avx.Permute2x128(lo, hi, 0x31));
    }

    /// <summary>The inverse of <see cref="SplitColumns(Vector256{double}, Vector256{double})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<double> Lo, Vector256<double> Hi) MergeColumns(Vector256<double> p, Vector256<double> q)
    {
        var lo = Avx.UnpackLow(p, q);
        var hi = Avx.UnpackHigh(p, q);
        return (Avx.Permute2x128(lo, hi, 0x20), Avx.Permute2x128(lo, hi, 0x31));
    }

    /// <summary>Even and odd elements of the 8 floats (lo, hi).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector128<float> Even, Vector128<float> Odd) SplitColumns(Vector128<float> lo, Vector128<float> hi) =>
        (Sse.Shuffle(lo, hi, 0b10_00_10_00), Sse.Shuffle(lo, hi, 0b11_01_11_01));

    /// <summary>Even and odd elements of the 4 doubles (lo, hi).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector128<double> Even, Vector128<double> Odd) SplitColumns(Vector128<double> lo, Vector128<double> hi) =>
        (Sse2.UnpackLow(lo, hi), Sse2.UnpackHigh(lo, hi));

    /// <summary>Interleaves p and q into 8 floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector128<float> Lo, Vector128<float> Hi) MergeColumns(Vector128<float> p, Vector128<float> q) =>
        (Sse.UnpackLow(p, q), Sse.UnpackHigh(p, q));

    /// <summary>Interleaves p and q into 4 doubles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector128<double> Lo, Vector128<double> Hi) MergeColumns(Vector128<double> p, Vector128<double> q) =>
        (Sse2.UnpackLow(p, q), Sse2.UnpackHigh(p, q));
}
