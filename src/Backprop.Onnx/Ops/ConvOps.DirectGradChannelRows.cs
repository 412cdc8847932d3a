using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The row-blocked variant of the channel-vectorized weight gradient (<see cref="ConvOps"/>.WeightGradChannels) for
/// undilated kernels up to 6 wide: a register block is 2 whole kernel rows (ci, i) of kw taps each (at most 12
/// accumulators), reading X at one base offset per row plus the constant tap displacement j, so the loop needs 2 base
/// registers instead of 2·kw tap offsets.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>Widest kernel row the row-blocked kernel takes.</summary>
    private const int MaxGradRowTaps = 6;

    /// <summary>Kernel rows per register block (2 rows of at most 6 taps: 12 accumulators).</summary>
    private static int GradRowsPerBlock(int kw) => 2;

    /// <summary>Dispatches (kw, rows) to a straight-line instantiation; rows is 1 or 2.</summary>
    private static void ChannelGradRows(int kw, int rows, ref float dyt, int ld, ref float xs, ref int off, int rowStride, int outH, int outW, int wp, ref float target)
    {
        nint b0 = off, b1 = rows > 1 ? Unsafe.Add(ref off, rowStride) : 0;
        switch (kw, rows)
        {
            case (1, 1): ChannelGradRows<Columns1, Columns1>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (1, 2): ChannelGradRows<Columns1, Columns2>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (2, 1): ChannelGradRows<Columns2, Columns1>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (2, 2): ChannelGradRows<Columns2, Columns2>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (3, 1): ChannelGradRows<Columns3, Columns1>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (3, 2): ChannelGradRows<Columns3, Columns2>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (4, 1): ChannelGradRows<Columns4, Columns1>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (4, 2): ChannelGradRows<Columns4, Columns2>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (5, 1): ChannelGradRows<Columns5, Columns1>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (5, 2): ChannelGradRows<Columns5, Columns2>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (6, 1): ChannelGradRows<Columns6, Columns1>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            case (6, 2): ChannelGradRows<Columns6, Columns2>(ref dyt, ld, ref xs, b0, b1, outH, outW, wp, ref target); break;
            default: throw new ArgumentOutOfRangeException(nameof(kw), (kw, rows), "Kernel rows of 1 to 6 taps, 1 or 2 rows.");
        }
    }

    /// <summary>
    /// target[(r·kw + j)·ld + lane] += Σ_{y, x} dyt[(y·outW + x)·ld + lane] · xs[b_r + y·wp + x + j] for rows r &lt; R
    /// (<typeparamref name="TR"/>, 1 or 2), taps j &lt; kw (<typeparamref name="TK"/>) and the 16 lanes: accumulators
    /// a0..a5 for row 0, a6..a11 for row 1, every loop over j unrolled.
    /// </summary>
    private static void ChannelGradRows<TK, TR>(ref float dyt, int ld, ref float xs, nint b0, nint b1, int outH, int outW, int wp, ref float target)
        where TK : struct, IColumnCount where TR : struct, IColumnCount
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        Vector512<float> a6 = default, a7 = default, a8 = default, a9 = default, a10 = default, a11 = default;
        int k = TK.Count;
        bool two = TR.Count > 1;
        nuint p = 0;
        for (int y = 0; y < outH; y++)
        {
            ref float line = ref Unsafe.Add(ref xs, y * wp);
            for (int x = 0; x < outW; x++, p += (nuint)ld)
            {
                var d = Vector512.LoadUnsafe(ref dyt, p);
                ref float x0 = ref Unsafe.Add(ref line, b0 + x);
                a0 = Vector512.MultiplyAddEstimate(d, Vector512.Create(x0), a0);
                if (k > 1) a1 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref x0, 1)), a1);
                if (k > 2) a2 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref x0, 2)), a2);
                if (k > 3) a3 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref x0, 3)), a3);
                if (k > 4) a4 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref x0, 4)), a4);
                if (k > 5) a5 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref x0, 5)), a5);
                if (two)
                {
                    ref float x1 = ref Unsafe.Add(ref line, b1 + x);
                    a6 = Vector512.MultiplyAddEstimate(d, Vector512.Create(x1), a6);
                    if (k > 1) a7 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref x1, 1)), a7);
                    if (k > 2) a8 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref x1, 2)), a8);
                    if (k > 3) a9 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref x1, 3)), a9);
                    if (k > 4) a10 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref x1, 4)), a10);
                    if (k > 5) a11 = Vector512.MultiplyAddEstimate(d, Vector512.Create(Unsafe.Add(ref x1, 5)), a11);
                }
            }
        }
        nuint l = (nuint)ld, second = (nuint)k * l;
        Add(a0, ref target, 0);
        if (k > 1) Add(a1, ref target, l);
        if (k > 2) Add(a2, ref target, 2 * l);
        if (k > 3) Add(a3, ref target, 3 * l);
        if (k > 4) Add(a4, ref target, 4 * l);
        if (k > 5) Add(a5, ref target, 5 * l);
        if (!two) return;
        Add(a6, ref target, second);
        if (k > 1) Add(a7, ref target, second + l);
        if (k > 2) Add(a8, ref target, second + 2 * l);
        if (k > 3) Add(a9, ref target, second + 3 * l);
        if (k > 4) Add(a10, ref target, second + 4 * l);
        if (k > 5) Add(a11, ref target, second + 5 * l);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Add(Vector512<float> v, ref float to, nuint at) => (Vector512.LoadUnsafe(ref to, at) + v).StoreUnsafe(ref to, at);
    }
}
