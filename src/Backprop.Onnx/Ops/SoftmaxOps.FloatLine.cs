using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The float Softmax / LogSoftmax line in three register-level passes (ONNX spec "Softmax", "LogSoftmax" 13:
/// y = exp(x − max) / Σ exp(x − max), y = x − max − log Σ exp(x − max)): max; exp(x − max) with
/// <see cref="FastExp(Vector256{float})"/>, stored and summed; the scale. Attention rows are short (W4: 64 floats), so
/// three TensorPrimitives calls per line cost as much as the arithmetic; here a line stays in L1 between passes.
/// NaN: the max pass uses the native max (which may drop a NaN), but exp(NaN − max) is NaN, so Σ and with it every
/// output of the line is NaN, as the spec's formula gives.
/// </summary>
internal static partial class SoftmaxOps
{
    private static void FloatLine(ReadOnlySpan<float> x, Span<float> y, Kind kind)
    {
        int n = x.Length, i;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        const int W = 8;    // Vector256<float>.Count
        float max;
        if (n >= W)
        {
            var m = Vector256.LoadUnsafe(ref xr);
            for (i = W; i <= n - W; i += W) m = Vector256.MaxNative(m, Vector256.LoadUnsafe(ref xr, (nuint)i));
            m = Vector256.MaxNative(m, Vector256.LoadUnsafe(ref xr, (nuint)(n - W)));
            max = MathF.Max(MathF.Max(MathF.Max(m[0], m[1]), MathF.Max(m[2], m[3])), MathF.Max(MathF.Max(m[4], m[5]), MathF.Max(m[6], m[7])));
        }
        else
        {
            max = x[0];
            for (i = 1; i < n; i++) max = MathF.Max(max, x[i]);
        }
        float sum = ExpShifted(x, max, y);
        if (kind == Kind.Softmax)
        {
            float inv = 1f / sum;
            var s = Vector256.Create(inv);
            for (i = 0; i <= n - W; i += W) (Vector256.LoadUnsafe(ref yr, (nuint)i) * s).StoreUnsafe(ref yr, (nuint)i);
            for (; i < n; i++) y[i] *= inv;
        }
        else
        {
            // (x − max) − log Σ in two roundings, as the general path: x − max is exact near the max (Sterbenz).
            float logSum = MathF.Log(sum);
            Vector256<float> m = Vector256.Create(max), l = Vector256.Create(logSum);
            for (i = 0; i <= n - W; i += W) (Vector256.LoadUnsafe(ref xr, (nuint)i) - m - l).StoreUnsafe(ref yr, (nuint)i);
            for (; i < n; i++) y[i] = x[i] - max - logSum;
        }
    }
}
