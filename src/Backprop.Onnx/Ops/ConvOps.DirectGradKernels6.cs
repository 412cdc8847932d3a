using System.Runtime.CompilerServices;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The 6-channel register block of the direct weight gradient (<see cref="ConvOps"/>.WeightGradDirect): for 6 output
/// channels (LeNet's conv1), blocks of 4 leave two single rows whose dot products load 7 vectors per 6 multiply-adds;
/// 6 channels × 4 taps is 24 accumulators + 6 dY vectors + 1 X vector, within the 32 AVX-512 registers, and loads
/// 10 vectors per 24 multiply-adds.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>
    /// sums[a·ld + t] += Σ over images b, positions p of dy[b·dyImage + a·ldy + p] · x[b·xImage + off[t] + p], for a &lt; 6
    /// and t &lt; 4 (as <see cref="Dot4x6{TV, TO}"/> with the roles of the block's sides swapped).
    /// </summary>
    private static void Dot6x4<TV, TO>(ref float dy, nuint ldy, ref float x, ReadOnlySpan<int> off, nuint length, int images, nuint dyImage, nuint xImage, Span<float> sums, int ld)
        where TV : struct where TO : IFloatVector<TV>
    {
        nuint o0 = (nuint)off[0], o1 = (nuint)off[1], o2 = (nuint)off[2], o3 = (nuint)off[3];
        TV a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        TV a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        TV a40 = default, a41 = default, a42 = default, a43 = default, a50 = default, a51 = default, a52 = default, a53 = default;
        nuint step = (nuint)TO.Count;
        for (int b = 0; b < images; b++)
        {
            ref float d = ref Unsafe.Add(ref dy, (nint)((nuint)b * dyImage));
            ref float xb = ref Unsafe.Add(ref x, (nint)((nuint)b * xImage));
            for (nuint p = 0; p < length; p += step)
            {
                TV d0 = TO.Load(ref d, p), d1 = TO.Load(ref d, p + ldy), d2 = TO.Load(ref d, p + 2 * ldy);
                TV d3 = TO.Load(ref d, p + 3 * ldy), d4 = TO.Load(ref d, p + 4 * ldy), d5 = TO.Load(ref d, p + 5 * ldy);
                TV v = TO.Load(ref xb, p + o0);
                a00 = TO.MultiplyAdd(d0, v, a00); a10 = TO.MultiplyAdd(d1, v, a10); a20 = TO.MultiplyAdd(d2, v, a20);
                a30 = TO.MultiplyAdd(d3, v, a30); a40 = TO.MultiplyAdd(d4, v, a40); a50 = TO.MultiplyAdd(d5, v, a50);
                v = TO.Load(ref xb, p + o1);
                a01 = TO.MultiplyAdd(d0, v, a01); a11 = TO.MultiplyAdd(d1, v, a11); a21 = TO.MultiplyAdd(d2, v, a21);
                a31 = TO.MultiplyAdd(d3, v, a31); a41 = TO.MultiplyAdd(d4, v, a41); a51 = TO.MultiplyAdd(d5, v, a51);
                v = TO.Load(ref xb, p + o2);
                a02 = TO.MultiplyAdd(d0, v, a02); a12 = TO.MultiplyAdd(d1, v, a12); a22 = TO.MultiplyAdd(d2, v, a22);
                a32 = TO.MultiplyAdd(d3, v, a32); a42 = TO.MultiplyAdd(d4, v, a42); a52 = TO.MultiplyAdd(d5, v, a52);
                v = TO.Load(ref xb, p + o3);
                a03 = TO.MultiplyAdd(d0, v, a03); a13 = TO.MultiplyAdd(d1, v, a13); a23 = TO.MultiplyAdd(d2, v, a23);
                a33 = TO.MultiplyAdd(d3, v, a33); a43 = TO.MultiplyAdd(d4, v, a43); a53 = TO.MultiplyAdd(d5, v, a53);
            }
        }
        Add4(sums[..4], a00, a01, a02, a03);
        Add4(sums.Slice(ld, 4), a10, a11, a12, a13);
        Add4(sums.Slice(2 * ld, 4), a20, a21, a22, a23);
        Add4(sums.Slice(3 * ld, 4), a30, a31, a32, a33);
        Add4(sums.Slice(4 * ld, 4), a40, a41, a42, a43);
        Add4(sums.Slice(5 * ld, 4), a50, a51, a52, a53);

        static void Add4(Span<float> s, TV v0, TV v1, TV v2, TV v3)
        {
            s[0] += TO.Sum(v0); s[1] += TO.Sum(v1); s[2] += TO.Sum(v2); s[3] += TO.Sum(v3);
        }
    }
}
