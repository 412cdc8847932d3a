using System.Numerics;
using System.Runtime.InteropServices;

namespace Backprop.Onnx.Training;

/// <summary>
/// The parameter updates of ONNX's <c>ai.onnx.preview.training</c> operators (Adagrad, Momentum, Adam; ONNX operator
/// spec, "ai.onnx.preview.training" section), written once and used both by the executor's kernels for those ops and
/// by the library's optimizers. All hyper-parameters are per step; <c>t</c> is the number of updates already applied
/// (0 for the first, as the spec's <c>T</c>).
/// </summary>
internal static class OptimizerMath
{
    /// <summary>
    /// Adagrad: r = R / (1 + T·decay_factor); g = norm_coefficient·X + G; H' = H + g²; X' = X − r·g / (√H' + ε).
    /// </summary>
    public static void Adagrad<T>(double learningRate, long t, double decayFactor, double epsilon, double normCoefficient,
        ReadOnlySpan<T> x, ReadOnlySpan<T> grad, ReadOnlySpan<T> h, Span<T> xNew, Span<T> hNew)
        where T : struct, IFloatingPointIeee754<T>
    {
        T r = T.CreateChecked(learningRate / (1 + t * decayFactor));
        T eps = T.CreateChecked(epsilon), norm = T.CreateChecked(normCoefficient);
        for (int i = 0; i < x.Length; i++)
        {
            T g = norm * x[i] + grad[i];
            T hn = h[i] + g * g;
            hNew[i] = hn;
            xNew[i] = x[i] - r * g / (T.Sqrt(hn) + eps);
        }
    }

    /// <summary>
    /// Momentum: g = norm_coefficient·X + G; β' = T &gt; 0 ? β : 1; V' = α·V + β'·g;
    /// standard: X' = X − R·V'; Nesterov: X' = X − R·(g + α·V').
    /// </summary>
    public static void Momentum<T>(double learningRate, long t, double alpha, double beta, bool nesterov, double normCoefficient,
        ReadOnlySpan<T> x, ReadOnlySpan<T> grad, ReadOnlySpan<T> v, Span<T> xNew, Span<T> vNew)
        where T : struct, IFloatingPointIeee754<T>
    {
        T r = T.CreateChecked(learningRate), a = T.CreateChecked(alpha), norm = T.CreateChecked(normCoefficient);
        T b = T.CreateChecked(t > 0 ? beta : 1);
        int i = 0;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported)
        {
            // The scalar loop's operations in the same order, a vector at a time (the JIT contracts nothing into FMA),
            // so every element gets the same bits. In-place updates (xNew = x, vNew = v) read each vector before writing it.
            var vr = new Vector<T>(r); var va = new Vector<T>(a); var vb = new Vector<T>(b); var vnorm = new Vector<T>(norm);
            ref T px = ref MemoryMarshal.GetReference(x), pg = ref MemoryMarshal.GetReference(grad), pv = ref MemoryMarshal.GetReference(v);
            ref T pxn = ref MemoryMarshal.GetReference(xNew), pvn = ref MemoryMarshal.GetReference(vNew);
            for (; i <= x.Length - Vector<T>.Count; i += Vector<T>.Count)
            {
                var xi = Vector.LoadUnsafe(ref px, (nuint)i);
                var g = vnorm * xi + Vector.LoadUnsafe(ref pg, (nuint)i);
                var vn = va * Vector.LoadUnsafe(ref pv, (nuint)i) + vb * g;
                vn.StoreUnsafe(ref pvn, (nuint)i);
                (nesterov ? xi - vr * (g + va * vn) : xi - vr * vn).StoreUnsafe(ref pxn, (nuint)i);
            }
        }
        for (; i < x.Length; i++)
        {
            T g = norm * x[i] + grad[i];
            T vn = a * v[i] + b * g;
            vNew[i] = vn;
            xNew[i] = nesterov ? x[i] - r * (g + a * vn) : x[i] - r * vn;
        }
    }

    /// <summary>
    /// Adam: g = norm_coefficient·X + G; V' = α·V + (1−α)·g; H' = β·H + (1−β)·g²;
    /// R' = T &gt; 0 ? R·√(1−β^T)/(1−α^T) : R; X' = (1 − norm_coefficient_post)·(X − R'·V'/(√H' + ε)).
    /// With norm_coefficient_post = lr·weight_decay this is AdamW's decoupled weight decay (Loshchilov &amp; Hutter, 2019).
    /// </summary>
    public static void Adam<T>(double learningRate, long t, double alpha, double beta, double epsilon, double normCoefficient, double normCoefficientPost,
        ReadOnlySpan<T> x, ReadOnlySpan<T> grad, ReadOnlySpan<T> v, ReadOnlySpan<T> h, Span<T> xNew, Span<T> vNew, Span<T> hNew)
        where T : struct, IFloatingPointIeee754<T>
    {
        double rAdjusted = t > 0 ? learningRate * Math.Sqrt(1 - Math.Pow(beta, t)) / (1 - Math.Pow(alpha, t)) : learningRate;
        T r = T.CreateChecked(rAdjusted), a = T.CreateChecked(alpha), b = T.CreateChecked(beta), eps = T.CreateChecked(epsilon);
        T norm = T.CreateChecked(normCoefficient), post = T.CreateChecked(1 - normCoefficientPost);
        T oneMinusA = T.One - a, oneMinusB = T.One - b;
        int i = 0;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported)
        {
            // As in Momentum: the scalar loop's operations in the same order, a vector at a time (same bits).
            var vr = new Vector<T>(r); var va = new Vector<T>(a); var vb = new Vector<T>(b); var veps = new Vector<T>(eps);
            var vnorm = new Vector<T>(norm); var vpost = new Vector<T>(post); var v1a = new Vector<T>(oneMinusA); var v1b = new Vector<T>(oneMinusB);
            ref T px = ref MemoryMarshal.GetReference(x), pg = ref MemoryMarshal.GetReference(grad);
            ref T pv = ref MemoryMarshal.GetReference(v), ph = ref MemoryMarshal.GetReference(h);
            ref T pxn = ref MemoryMarshal.GetReference(xNew), pvn = ref MemoryMarshal.GetReference(vNew), phn = ref MemoryMarshal.GetReference(hNew);
            for (; i <= x.Length - Vector<T>.Count; i += Vector<T>.Count)
            {
                var xi = Vector.LoadUnsafe(ref px, (nuint)i);
                var g = vnorm * xi + Vector.LoadUnsafe(ref pg, (nuint)i);
                var vn = va * Vector.LoadUnsafe(ref pv, (nuint)i) + v1a * g;
                var hn = vb * Vector.LoadUnsafe(ref ph, (nuint)i) + v1b * g * g;
                vn.StoreUnsafe(ref pvn, (nuint)i);
                hn.StoreUnsafe(ref phn, (nuint)i);
                (vpost * (xi - vr * vn / (Vector.SquareRoot(hn) + veps))).StoreUnsafe(ref pxn, (nuint)i);
            }
        }
        for (; i < x.Length; i++)
        {
            T g = norm * x[i] + grad[i];
            T vn = a * v[i] + oneMinusA * g;
            T hn = b * h[i] + oneMinusB * g * g;
            vNew[i] = vn;
            hNew[i] = hn;
            xNew[i] = post * (x[i] - r * vn / (T.Sqrt(hn) + eps));
        }
    }
}
