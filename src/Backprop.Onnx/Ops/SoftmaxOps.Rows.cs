using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The contiguous-line case of Softmax, LogSoftmax and their gradients (the axis is the last one, as in attention):
/// three passes per line — max; exp(x − max) stored and summed in one vectorized pass; the scale — and one pass for a
/// gradient line. Lines are split into contiguous chunks, one per thread, so each line is computed the same way for any
/// thread count. A pooled job per thread carries the arguments, so a call allocates nothing.
/// </summary>
internal static partial class SoftmaxOps
{
    /// <summary>
    /// y = exp(x − shift) element by element; returns Σ y (vector partial sums, then the tail). 256-bit vectors: on the
    /// Zen 4 we measured, Vector512.Exp of 262K floats took 0.47 ms, Vector256.Exp 0.16 ms and TensorPrimitives.Exp
    /// 0.22-0.42 ms (best of 40, tiered compilation off, as the benchmarks run). Float uses <see cref="FastExp(Vector256{float})"/>
    /// (SoftmaxOps.Exp.cs); double keeps Vector256.Exp.
    /// </summary>
    internal static T ExpShifted<T>(ReadOnlySpan<T> x, T shift, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
            return T.CreateTruncating(ExpShifted(MemoryMarshal.Cast<T, float>(x), float.CreateTruncating(shift), MemoryMarshal.Cast<T, float>(y)));
        if (typeof(T) == typeof(double))
            return T.CreateTruncating(ExpShifted(MemoryMarshal.Cast<T, double>(x), double.CreateTruncating(shift), MemoryMarshal.Cast<T, double>(y)));
        TP.Subtract(x, shift, y);
        TP.Exp(y, y);
        return ReductionOps.Sum<T>(y);
    }

    private static float ExpShifted(ReadOnlySpan<float> x, float shift, Span<float> y)
    {
        int n = x.Length, i = 0;
        float sum = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        // 512-bit vectors where AVX-512 is there (Zen 4 halves them, but decodes half the instructions: 0.23 -> 0.175 ms
        // for Softmax [64,64,64] on one thread), then at most one 256-bit vector, then scalars; the split depends on n only.
        if (Avx512F.IsSupported && n >= Vector512<float>.Count)
        {
            var m = Vector512.Create(shift);
            var acc = Vector512<float>.Zero;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var e = FastExp(Vector512.LoadUnsafe(ref xr, (nuint)i) - m);
                e.StoreUnsafe(ref yr, (nuint)i);
                acc += e;
            }
            sum = Vector512.Sum(acc);
        }
        if (Vector256.IsHardwareAccelerated && n - i >= Vector256<float>.Count)
        {
            var m = Vector256.Create(shift);
            var acc = Vector256<float>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var e = FastExp(Vector256.LoadUnsafe(ref xr, (nuint)i) - m);
                e.StoreUnsafe(ref yr, (nuint)i);
                acc += e;
            }
            sum += Vector256.Sum(acc);
        }
        for (; i < n; i++) sum += y[i] = FastExp(x[i] - shift);
        return sum;
    }

    private static double ExpShifted(ReadOnlySpan<double> x, double shift, Span<double> y)
    {
        int n = x.Length, i = 0;
        double sum = 0;
        ref double xr = ref MemoryMarshal.GetReference(x);
        ref double yr = ref MemoryMarshal.GetReference(y);
        if (Vector256.IsHardwareAccelerated && n >= Vector256<double>.Count)
        {
            var m = Vector256.Create(shift);
            var acc = Vector256<double>.Zero;
            for (; i <= n - Vector256<double>.Count; i += Vector256<double>.Count)
            {
                var e = Vector256.Exp(Vector256.LoadUnsafe(ref xr, (nuint)i) - m);
                e.StoreUnsafe(ref yr, (nuint)i);
                acc += e;
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++) sum += y[i] = Math.Exp(x[i] - shift);
        return sum;
    }

    /// <summary>
    /// r = (g − s)·y, one line of the Softmax gradient, in one vector loop: the roundings of TensorPrimitives.AddMultiply(g, −s, y)
    /// it replaces (g + (−s) is g − s), without a library call per 64-element line.
    /// </summary>
    internal static void ScaleCentered<T>(ReadOnlySpan<T> g, T s, ReadOnlySpan<T> y, Span<T> r) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = g.Length, i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            ref T gr = ref MemoryMarshal.GetReference(g), yr = ref MemoryMarshal.GetReference(y), rr = ref MemoryMarshal.GetReference(r);
            var vs = Vector256.Create(s);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
                ((Vector256.LoadUnsafe(ref gr, (nuint)i) - vs) * Vector256.LoadUnsafe(ref yr, (nuint)i)).StoreUnsafe(ref rr, (nuint)i);
        }
        for (; i < n; i++) r[i] = (g[i] - s) * y[i];
    }

    /// <summary>
    /// Runs contiguous lines of length n: forward (<c>dy</c> null: y = op(x)) or gradient (x holds Y, result dX):
    /// Softmax dX = (dY − Σ dY·Y)·Y, LogSoftmax dX = dY − exp(Y)·Σ dY.
    /// </summary>
    private sealed class RowJob<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        [ThreadStatic] private static RowJob<T>? t_idle;

        private readonly Action<int, int> _body;
        private T[]? _x, _dy, _result;
        private int _n;
        private Kind _kind;

        private RowJob() => _body = Lines;

        public static void Run(T[] x, T[]? dy, T[] result, int lines, int n, Kind kind, int threads)
        {
            var job = t_idle ?? new RowJob<T>();
            t_idle = null;
            (job._x, job._dy, job._result, job._n, job._kind) = (x, dy, result, n, kind);
            try
            {
                ReductionOps.ForChunks(lines, threads, job._body);
            }
            finally
            {
                job._x = job._dy = job._result = null;
                t_idle = job;
            }
        }

        private void Lines(int from, int to)
        {
            int n = _n;
            for (int l = from; l < to; l++)
            {
                var x = _x.AsSpan(l * n, n);
                var r = _result.AsSpan(l * n, n);
                if (_dy is null) { Line<T>(x, r, _kind); continue; }
                ReadOnlySpan<T> g = _dy.AsSpan(l * n, n);
                if (_kind == Kind.LogSoftmax)
                {
                    T s = ReductionOps.Sum(g);
                    TP.Exp(x, r); // not FastExp: LossOps.ClassifierRowGrad repeats this path's operations bit for bit
                    TP.Multiply(r, s, r);
                    TP.Subtract(g, r, r);
                }
                else
                {
                    ScaleCentered(g, ReductionOps.Dot(g, (ReadOnlySpan<T>)x), x, r);
                }
            }
        }
    }
}
