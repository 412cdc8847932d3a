using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The register-blocked dot products of the direct weight gradient (<see cref="ConvOps"/>.WeightGradDirect): a block of
/// output channels (rows of the wide dY) times a block of kernel taps (shifted windows of the padded X), each a dot
/// product over the wide positions p of several images, vectorised over p and reduced horizontally once at the end.
/// The block shapes follow the usual register budget of a dot-product micro-kernel (BLIS "gemv"/"dot" kernels):
/// 4 × 6 = 24 accumulators plus 4 dY vectors and one X vector fit the 32 vector registers of AVX-512.
/// </summary>
internal static partial class ConvOps
{
    /// <summary>The few vector operations the dot-product kernels need, for one vector width (a struct, so calls inline).</summary>
    internal interface IFloatVector<TV> where TV : struct
    {
        /// <summary>Lanes per vector.</summary>
        static abstract int Count { get; }

        /// <summary>Loads <see cref="Count"/> floats from <paramref name="source"/> + <paramref name="offset"/> (unchecked).</summary>
        static abstract TV Load(ref float source, nuint offset);

        /// <summary>a · b + c, fused where the hardware has FMA.</summary>
        static abstract TV MultiplyAdd(TV a, TV b, TV c);

        /// <summary>The sum of the lanes.</summary>
        static abstract float Sum(TV v);

        /// <summary>Every lane <paramref name="value"/>.</summary>
        static abstract TV Broadcast(float value);

        /// <summary>Stores <paramref name="v"/> at <paramref name="destination"/> + <paramref name="offset"/> (unchecked).</summary>
        static abstract void Store(TV v, ref float destination, nuint offset);
    }

    /// <summary>512-bit vectors (AVX-512; Zen 4 runs them as two 256-bit halves).</summary>
    internal readonly struct Float512 : IFloatVector<Vector512<float>>
    {
        public static int Count => Vector512<float>.Count;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load(ref float source, nuint offset) => Vector512.LoadUnsafe(ref source, offset);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);

        /// <summary>Halves added down to 128 bits, then that vector's sum (fewer shuffles than Vector512.Sum's four 128-bit sums).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Sum(Vector512<float> v)
        {
            var half = v.GetLower() + v.GetUpper();
            return Vector128.Sum(half.GetLower() + half.GetUpper());
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Broadcast(float value) => Vector512.Create(value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Store(Vector512<float> v, ref float destination, nuint offset) => v.StoreUnsafe(ref destination, offset);
    }

    /// <summary>256-bit vectors (AVX2), the fallback where 512-bit vectors are not accelerated.</summary>
    internal readonly struct Float256 : IFloatVector<Vector256<float>>
    {
        public static int Count => Vector256<float>.Count;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load(ref float source, nuint offset) => Vector256.LoadUnsafe(ref source, offset);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Sum(Vector256<float> v) => Vector128.Sum(v.GetLower() + v.GetUpper());

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Broadcast(float value) => Vector256.Create(value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Store(Vector256<float> v, ref float destination, nuint offset) => v.StoreUnsafe(ref destination, offset);
    }

    /// <summary>
    /// to[..from.Length] = from for the short rows the gradient kernels copy (16-34 floats): inlined vector moves, the last
    /// one overlapping, where Span.CopyTo's call into memmove cost more than the copy (W3's dW spread: 19% of dW).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyShort(ReadOnlySpan<float> from, Span<float> to)
    {
        int n = from.Length;
        if (to.Length < n) throw new ArgumentException("The destination is shorter than the source.", nameof(to));
        ref float src = ref MemoryMarshal.GetReference(from);
        ref float dst = ref MemoryMarshal.GetReference(to);
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
                for (; i + 16 <= n; i += 16) Vector512.LoadUnsafe(ref src, (nuint)i).StoreUnsafe(ref dst, (nuint)i);
            for (; i + 8 <= n; i += 8) Vector256.LoadUnsafe(ref src, (nuint)i).StoreUnsafe(ref dst, (nuint)i);
            if (i < n) Vector256.LoadUnsafe(ref src, (nuint)(n - 8)).StoreUnsafe(ref dst, (nuint)(n - 8));
            return;
        }
        for (int i = 0; i < n; i++) Unsafe.Add(ref dst, i) = Unsafe.Add(ref src, i);
    }

    /// <summary>
    /// <see cref="CopyShort"/> adding v − v of every value copied to <paramref name="check"/> (0 for finite values, NaN
    /// otherwise: the weight gradient's finiteness check of X, made while X is copied anyway).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyChecked(ReadOnlySpan<float> from, Span<float> to, ref Vector256<float> check)
    {
        int n = from.Length;
        if (to.Length < n) throw new ArgumentException("The destination is shorter than the source.", nameof(to));
        ref float src = ref MemoryMarshal.GetReference(from);
        ref float dst = ref MemoryMarshal.GetReference(to);
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = check;
            int i = 0;
            for (; i + 8 <= n; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref src, (nuint)i);
                v.StoreUnsafe(ref dst, (nuint)i);
                acc += v - v;
            }
            if (i < n)
            {
                var v = Vector256.LoadUnsafe(ref src, (nuint)(n - 8));
                v.StoreUnsafe(ref dst, (nuint)(n - 8));
                acc += v - v;
            }
            check = acc;
            return;
        }
        for (int i = 0; i < n; i++)
        {
            float v = Unsafe.Add(ref src, i);
            Unsafe.Add(ref dst, i) = v;
            check += Vector256.CreateScalar(v - v);
        }
    }

    /// <summary>
    /// sums[a·ld + t] += Σ over images b &lt; <paramref name="images"/>, positions p &lt; <paramref name="length"/> of
    /// dy[b·dyImage + a·ldy + p] · x[b·xImage + off[t] + p], for a &lt; 4 and t &lt; 6. <paramref name="length"/> is a
    /// multiple of the vector width, and the caller sized both buffers for every read.
    /// </summary>
    private static void Dot4x6<TV, TO>(ref float dy, nuint ldy, ref float x, ReadOnlySpan<int> off, nuint length, int images, nuint dyImage, nuint xImage, Span<float> sums, int ld)
        where TV : struct where TO : IFloatVector<TV>
    {
        nuint o0 = (nuint)off[0], o1 = (nuint)off[1], o2 = (nuint)off[2], o3 = (nuint)off[3], o4 = (nuint)off[4], o5 = (nuint)off[5];
        TV a00 = default, a01 = default, a02 = default, a03 = default, a04 = default, a05 = default;
        TV a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default;
        TV a20 = default, a21 = default, a22 = default, a23 = default, a24 = default, a25 = default;
        TV a30 = default, a31 = default, a32 = default, a33 = default, a34 = default, a35 = default;
        nuint step = (nuint)TO.Count;
        for (int b = 0; b < images; b++)
        {
            ref float d = ref Unsafe.Add(ref dy, (nint)((nuint)b * dyImage));
            ref float xb = ref Unsafe.Add(ref x, (nint)((nuint)b * xImage));
            for (nuint p = 0; p < length; p += step)
            {
                TV d0 = TO.Load(ref d, p), d1 = TO.Load(ref d, p + ldy), d2 = TO.Load(ref d, p + 2 * ldy), d3 = TO.Load(ref d, p + 3 * ldy);
                TV v = TO.Load(ref xb, p + o0);
                a00 = TO.MultiplyAdd(d0, v, a00); a10 = TO.MultiplyAdd(d1, v, a10); a20 = TO.MultiplyAdd(d2, v, a20); a30 = TO.MultiplyAdd(d3, v, a30);
                v = TO.Load(ref xb, p + o1);
                a01 = TO.MultiplyAdd(d0, v, a01); a11 = TO.MultiplyAdd(d1, v, a11); a21 = TO.MultiplyAdd(d2, v, a21); a31 = TO.MultiplyAdd(d3, v, a31);
                v = TO.Load(ref xb, p + o2);
                a02 = TO.MultiplyAdd(d0, v, a02); a12 = TO.MultiplyAdd(d1, v, a12); a22 = TO.MultiplyAdd(d2, v, a22); a32 = TO.MultiplyAdd(d3, v, a32);
                v = TO.Load(ref xb, p + o3);
                a03 = TO.MultiplyAdd(d0, v, a03); a13 = TO.MultiplyAdd(d1, v, a13); a23 = TO.MultiplyAdd(d2, v, a23); a33 = TO.MultiplyAdd(d3, v, a33);
                v = TO.Load(ref xb, p + o4);
                a04 = TO.MultiplyAdd(d0, v, a04); a14 = TO.MultiplyAdd(d1, v, a14); a24 = TO.MultiplyAdd(d2, v, a24); a34 = TO.MultiplyAdd(d3, v, a34);
                v = TO.Load(ref xb, p + o5);
                a05 = TO.MultiplyAdd(d0, v, a05); a15 = TO.MultiplyAdd(d1, v, a15); a25 = TO.MultiplyAdd(d2, v, a25); a35 = TO.MultiplyAdd(d3, v, a35);
            }
        }
        var s0 = sums[..6];
        s0[0] += TO.Sum(a00); s0[1] += TO.Sum(a01); s0[2] += TO.Sum(a02); s0[3] += TO.Sum(a03); s0[4] += TO.Sum(a04); s0[5] += TO.Sum(a05);
        var s1 = sums.Slice(ld, 6);
        s1[0] += TO.Sum(a10); s1[1] += TO.Sum(a11); s1[2] += TO.Sum(a12); s1[3] += TO.Sum(a13); s1[4] += TO.Sum(a14); s1[5] += TO.Sum(a15);
        var s2 = sums.Slice(2 * ld, 6);
        s2[0] += TO.Sum(a20); s2[1] += TO.Sum(a21); s2[2] += TO.Sum(a22); s2[3] += TO.Sum(a23); s2[4] += TO.Sum(a24); s2[5] += TO.Sum(a25);
        var s3 = sums.Slice(3 * ld, 6);
        s3[0] += TO.Sum(a30); s3[1] += TO.Sum(a31); s3[2] += TO.Sum(a32); s3[3] += TO.Sum(a33); s3[4] += TO.Sum(a34); s3[5] += TO.Sum(a35);
    }

    /// <summary>As <see cref="Dot4x6{TV, TO}"/> for one dY row and six taps: sums[t] += Σ dy[b·dyImage + p] · x[b·xImage + off[t] + p].</summary>
    private static void Dot1x6<TV, TO>(ref float dy, ref float x, ReadOnlySpan<int> off, nuint length, int images, nuint dyImage, nuint xImage, Span<float> sums)
        where TV : struct where TO : IFloatVector<TV>
    {
        nuint o0 = (nuint)off[0], o1 = (nuint)off[1], o2 = (nuint)off[2], o3 = (nuint)off[3], o4 = (nuint)off[4], o5 = (nuint)off[5];
        TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        nuint step = (nuint)TO.Count;
        for (int b = 0; b < images; b++)
        {
            ref float d = ref Unsafe.Add(ref dy, (nint)((nuint)b * dyImage));
            ref float xb = ref Unsafe.Add(ref x, (nint)((nuint)b * xImage));
            for (nuint p = 0; p < length; p += step)
            {
                TV d0 = TO.Load(ref d, p);
                a0 = TO.MultiplyAdd(d0, TO.Load(ref xb, p + o0), a0);
                a1 = TO.MultiplyAdd(d0, TO.Load(ref xb, p + o1), a1);
                a2 = TO.MultiplyAdd(d0, TO.Load(ref xb, p + o2), a2);
                a3 = TO.MultiplyAdd(d0, TO.Load(ref xb, p + o3), a3);
                a4 = TO.MultiplyAdd(d0, TO.Load(ref xb, p + o4), a4);
                a5 = TO.MultiplyAdd(d0, TO.Load(ref xb, p + o5), a5);
            }
        }
        sums[0] += TO.Sum(a0); sums[1] += TO.Sum(a1); sums[2] += TO.Sum(a2); sums[3] += TO.Sum(a3); sums[4] += TO.Sum(a4); sums[5] += TO.Sum(a5);
    }

    /// <summary>As <see cref="Dot4x6{TV, TO}"/> for four dY rows and one tap: sums[a·stride] += Σ dy[b·dyImage + a·ldy + p] · x[b·xImage + off + p].</summary>
    private static void Dot4x1<TV, TO>(ref float dy, nuint ldy, ref float x, int off, nuint length, int images, nuint dyImage, nuint xImage, Span<float> sums, int stride)
        where TV : struct where TO : IFloatVector<TV>
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default;
        nuint step = (nuint)TO.Count, o = (nuint)off;
        for (int b = 0; b < images; b++)
        {
            ref float d = ref Unsafe.Add(ref dy, (nint)((nuint)b * dyImage));
            ref float xb = ref Unsafe.Add(ref x, (nint)((nuint)b * xImage));
            for (nuint p = 0; p < length; p += step)
            {
                TV v = TO.Load(ref xb, p + o);
                a0 = TO.MultiplyAdd(TO.Load(ref d, p), v, a0);
                a1 = TO.MultiplyAdd(TO.Load(ref d, p + ldy), v, a1);
                a2 = TO.MultiplyAdd(TO.Load(ref d, p + 2 * ldy), v, a2);
                a3 = TO.MultiplyAdd(TO.Load(ref d, p + 3 * ldy), v, a3);
            }
        }
        sums[0] += TO.Sum(a0); sums[stride] += TO.Sum(a1); sums[2 * stride] += TO.Sum(a2); sums[3 * stride] += TO.Sum(a3);
    }

    /// <summary>One dY row and one tap: Σ dy[b·dyImage + p] · x[b·xImage + off + p].</summary>
    private static float Dot1x1<TV, TO>(ref float dy, ref float x, int off, nuint length, int images, nuint dyImage, nuint xImage)
        where TV : struct where TO : IFloatVector<TV>
    {
        TV a = default;
        nuint step = (nuint)TO.Count, o = (nuint)off;
        for (int b = 0; b < images; b++)
        {
            ref float d = ref Unsafe.Add(ref dy, (nint)((nuint)b * dyImage));
            ref float xb = ref Unsafe.Add(ref x, (nint)((nuint)b * xImage));
            for (nuint p = 0; p < length; p += step) a = TO.MultiplyAdd(TO.Load(ref d, p), TO.Load(ref xb, p + o), a);
        }
        return TO.Sum(a);
    }

    /// <summary>
    /// One register block of the direct input gradient: dst[k·ld + v·L + lane] = Σ_t w[4t + k] · src[off[t] + v·L + lane]
    /// for 4 channels k and 6 vectors v of L lanes (24 accumulators, 4 weight broadcasts and one input vector live: 29 of
    /// the 32 AVX-512 registers). The accumulators are stored by inlined stores only, so none lives across a call (the JIT
    /// would spill them inside the loop).
    /// </summary>
    private static void Correlate4x6<TV, TO>(ref float src, ReadOnlySpan<int> off, ref float w, ref float dst, nuint ld)
        where TV : struct where TO : IFloatVector<TV>
    {
        TV a00 = default, a01 = default, a02 = default, a03 = default, a04 = default, a05 = default;
        TV a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default;
        TV a20 = default, a21 = default, a22 = default, a23 = default, a24 = default, a25 = default;
        TV a30 = default, a31 = default, a32 = default, a33 = default, a34 = default, a35 = default;
        nuint c = (nuint)TO.Count;
        for (int t = 0; t < off.Length; t++)
        {
            ref float x = ref Unsafe.Add(ref src, off[t]);
            ref float wt = ref Unsafe.Add(ref w, 4 * t);
            TV b0 = TO.Broadcast(wt), b1 = TO.Broadcast(Unsafe.Add(ref wt, 1)), b2 = TO.Broadcast(Unsafe.Add(ref wt, 2)), b3 = TO.Broadcast(Unsafe.Add(ref wt, 3));
            TV v = TO.Load(ref x, 0);
            a00 = TO.MultiplyAdd(b0, v, a00); a10 = TO.MultiplyAdd(b1, v, a10); a20 = TO.MultiplyAdd(b2, v, a20); a30 = TO.MultiplyAdd(b3, v, a30);
            v = TO.Load(ref x, c);
            a01 = TO.MultiplyAdd(b0, v, a01); a11 = TO.MultiplyAdd(b1, v, a11); a21 = TO.MultiplyAdd(b2, v, a21); a31 = TO.MultiplyAdd(b3, v, a31);
            v = TO.Load(ref x, 2 * c);
            a02 = TO.MultiplyAdd(b0, v, a02); a12 = TO.MultiplyAdd(b1, v, a12); a22 = TO.MultiplyAdd(b2, v, a22); a32 = TO.MultiplyAdd(b3, v, a32);
            v = TO.Load(ref x, 3 * c);
            a03 = TO.MultiplyAdd(b0, v, a03); a13 = TO.MultiplyAdd(b1, v, a13); a23 = TO.MultiplyAdd(b2, v, a23); a33 = TO.MultiplyAdd(b3, v, a33);
            v = TO.Load(ref x, 4 * c);
            a04 = TO.MultiplyAdd(b0, v, a04); a14 = TO.MultiplyAdd(b1, v, a14); a24 = TO.MultiplyAdd(b2, v, a24); a34 = TO.MultiplyAdd(b3, v, a34);
            v = TO.Load(ref x, 5 * c);
            a05 = TO.MultiplyAdd(b0, v, a05); a15 = TO.MultiplyAdd(b1, v, a15); a25 = TO.MultiplyAdd(b2, v, a25); a35 = TO.MultiplyAdd(b3, v, a35);
        }
        TO.Store(a00, ref dst, 0); TO.Store(a01, ref dst, c); TO.Store(a02, ref dst, 2 * c); TO.Store(a03, ref dst, 3 * c); TO.Store(a04, ref dst, 4 * c); TO.Store(a05, ref dst, 5 * c);
        TO.Store(a10, ref dst, ld); TO.Store(a11, ref dst, ld + c); TO.Store(a12, ref dst, ld + 2 * c); TO.Store(a13, ref dst, ld + 3 * c); TO.Store(a14, ref dst, ld + 4 * c); TO.Store(a15, ref dst, ld + 5 * c);
        nuint l2 = 2 * ld, l3 = 3 * ld;
        TO.Store(a20, ref dst, l2); TO.Store(a21, ref dst, l2 + c); TO.Store(a22, ref dst, l2 + 2 * c); TO.Store(a23, ref dst, l2 + 3 * c); TO.Store(a24, ref dst, l2 + 4 * c); TO.Store(a25, ref dst, l2 + 5 * c);
        TO.Store(a30, ref dst, l3); TO.Store(a31, ref dst, l3 + c); TO.Store(a32, ref dst, l3 + 2 * c); TO.Store(a33, ref dst, l3 + 3 * c); TO.Store(a34, ref dst, l3 + 4 * c); TO.Store(a35, ref dst, l3 + 5 * c);
    }

    /// <summary>
    /// <see cref="Correlate4x6{TV, TO}"/> for a last block of at most two vectors of positions: dst[k·ld + v·L + lane] =
    /// Σ_t w[4t + k] · src[off[t] + v·L + lane] for 4 channels k and 2 vectors v, 8 accumulators.
    /// </summary>
    private static void Correlate4x2<TV, TO>(ref float src, ReadOnlySpan<int> off, ref float w, ref float dst, nuint ld)
        where TV : struct where TO : IFloatVector<TV>
    {
        TV a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        nuint c = (nuint)TO.Count;
        for (int t = 0; t < off.Length; t++)
        {
            ref float x = ref Unsafe.Add(ref src, off[t]);
            ref float wt = ref Unsafe.Add(ref w, 4 * t);
            TV b0 = TO.Broadcast(wt), b1 = TO.Broadcast(Unsafe.Add(ref wt, 1)), b2 = TO.Broadcast(Unsafe.Add(ref wt, 2)), b3 = TO.Broadcast(Unsafe.Add(ref wt, 3));
            TV v = TO.Load(ref x, 0);
            a00 = TO.MultiplyAdd(b0, v, a00); a10 = TO.MultiplyAdd(b1, v, a10); a20 = TO.MultiplyAdd(b2, v, a20); a30 = TO.MultiplyAdd(b3, v, a30);
            v = TO.Load(ref x, c);
            a01 = TO.MultiplyAdd(b0, v, a01); a11 = TO.MultiplyAdd(b1, v, a11); a21 = TO.MultiplyAdd(b2, v, a21); a31 = TO.MultiplyAdd(b3, v, a31);
        }
        nuint l2 = 2 * ld, l3 = 3 * ld;
        TO.Store(a00, ref dst, 0); TO.Store(a01, ref dst, c);
        TO.Store(a10, ref dst, ld); TO.Store(a11, ref dst, ld + c);
        TO.Store(a20, ref dst, l2); TO.Store(a21, ref dst, l2 + c);
        TO.Store(a30, ref dst, l3); TO.Store(a31, ref dst, l3 + c);
    }

    /// <summary>
    /// <see cref="Correlate4x6{TV, TO}"/> for the last 1-2 channels of C (reading the first two weights of each packed
    /// quadruple): dst[k·ld + v·L + lane] = Σ_t w[4t + k] · src[off[t] + v·L + lane] for k &lt; 2, 12 accumulators.
    /// </summary>
    private static void Correlate2x6<TV, TO>(ref float src, ReadOnlySpan<int> off, ref float w, ref float dst, nuint ld)
        where TV : struct where TO : IFloatVector<TV>
    {
        TV a00 = default, a01 = default, a02 = default, a03 = default, a04 = default, a05 = default;
        TV a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default;
        nuint c = (nuint)TO.Count;
        for (int t = 0; t < off.Length; t++)
        {
            ref float x = ref Unsafe.Add(ref src, off[t]);
            ref float wt = ref Unsafe.Add(ref w, 4 * t);
            TV b0 = TO.Broadcast(wt), b1 = TO.Broadcast(Unsafe.Add(ref wt, 1));
            TV v = TO.Load(ref x, 0);
            a00 = TO.MultiplyAdd(b0, v, a00); a10 = TO.MultiplyAdd(b1, v, a10);
            v = TO.Load(ref x, c);
            a01 = TO.MultiplyAdd(b0, v, a01); a11 = TO.MultiplyAdd(b1, v, a11);
            v = TO.Load(ref x, 2 * c);
            a02 = TO.MultiplyAdd(b0, v, a02); a12 = TO.MultiplyAdd(b1, v, a12);
            v = TO.Load(ref x, 3 * c);
            a03 = TO.MultiplyAdd(b0, v, a03); a13 = TO.MultiplyAdd(b1, v, a13);
            v = TO.Load(ref x, 4 * c);
            a04 = TO.MultiplyAdd(b0, v, a04); a14 = TO.MultiplyAdd(b1, v, a14);
            v = TO.Load(ref x, 5 * c);
            a05 = TO.MultiplyAdd(b0, v, a05); a15 = TO.MultiplyAdd(b1, v, a15);
        }
        TO.Store(a00, ref dst, 0); TO.Store(a01, ref dst, c); TO.Store(a02, ref dst, 2 * c); TO.Store(a03, ref dst, 3 * c); TO.Store(a04, ref dst, 4 * c); TO.Store(a05, ref dst, 5 * c);
        TO.Store(a10, ref dst, ld); TO.Store(a11, ref dst, ld + c); TO.Store(a12, ref dst, ld + 2 * c); TO.Store(a13, ref dst, ld + 3 * c); TO.Store(a14, ref dst, ld + 4 * c); TO.Store(a15, ref dst, ld + 5 * c);
    }
}
