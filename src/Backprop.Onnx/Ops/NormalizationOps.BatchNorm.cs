using System.Numerics;
using System.Runtime.CompilerServices;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The BatchNormalization kernel (ONNX spec "BatchNormalization"; the formula is at its registration) and the per-channel
/// loops it shares with BatchNormalizationGrad. Channels are independent, so each runs start to finish on one thread:
/// its statistics (training mode: the mean, then the squared deviations, two vectorized passes over the channel's
/// slices while they sit in the core's L2), then y = (x − mean)·factor + B in one fused pass. Nothing is allocated
/// per call beyond the pooled outputs: arguments travel in a job object reused per thread.
/// </summary>
internal static partial class NormalizationOps
{
    private static Kernel CreateBatchNorm(OpContext op)
    {
        var a = ParseBatchNorm(op);
        RequireSameFloatTypes(op, 5);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            if (x.Rank < 2) throw ctx.Invalid($"X must have rank 2 or more (N x C x …), got [{string.Join(',', x.Dims)}]");
            int n = x.Dims[0], c = x.Dims[1], s = ReductionOps.Product(x.Shape, 2, x.Rank);
            for (int i = 1; i <= 4; i++)
            {
                var t = ctx.RequiredInput(i);
                if (t.ElementType != x.ElementType) throw op.Unsupported($"parameters of type {DataTypes.OnnxName(t.ElementType)} with X of type {DataTypes.OnnxName(x.ElementType)}");
                if (t.ElementCount != c || t.Rank != 1) throw ctx.Invalid($"scale, B, mean and var must have shape [{c}], got [{string.Join(',', t.Dims)}]");
            }
            var y = ctx.AllocateUninitialized(x.ElementType, x.Shape);
            OnnxTensor? runningMean = null, runningVar = null;
            if (a.Training)
            {
                runningMean = ctx.AllocateUninitialized(x.ElementType, [c]);
                runningVar = ctx.AllocateUninitialized(x.ElementType, [c]);
            }
            int threads = ReductionOps.Parallelism(ctx, x.ElementCount);
            if (x.ElementType == DataType.Float) BatchNormJob<float>.Run(ctx, a, x, y, runningMean, runningVar, n, c, s, threads);
            else BatchNormJob<double>.Run(ctx, a, x, y, runningMean, runningVar, n, c, s, threads);
            ctx.SetOutput(0, y);
            if (runningMean is not null) ctx.SetOutput(1, runningMean);
            if (runningVar is not null) ctx.SetOutput(2, runningVar);
        });
    }

    /// <summary>One BatchNormalization call, channel by channel.</summary>
    private sealed class BatchNormJob<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        [ThreadStatic] private static BatchNormJob<T>? t_job;

        private T[] _x = [], _y = [], _scale = [], _bias = [], _mean = [], _var = [];
        private T[]? _runningMean, _runningVar;
        private int _n, _c, _s;
        private T _epsilon, _momentum;
        private bool _training;
        private readonly Action<int, int> _body;

        private BatchNormJob() => _body = Channels;

        public static void Run(KernelContext ctx, BatchNormAttributes a, OnnxTensor x, OnnxTensor y, OnnxTensor? runningMean, OnnxTensor? runningVar, int n, int c, int s, int threads)
        {
            var job = t_job ??= new BatchNormJob<T>();
            job._x = (T[])x.Buffer;
            job._y = (T[])y.Buffer;
            job._scale = (T[])ctx.RequiredInput(1).Buffer;
            job._bias = (T[])ctx.RequiredInput(2).Buffer;
            job._mean = (T[])ctx.RequiredInput(3).Buffer;
            job._var = (T[])ctx.RequiredInput(4).Buffer;
            job._runningMean = (T[]?)runningMean?.Buffer;
            job._runningVar = (T[]?)runningVar?.Buffer;
            (job._n, job._c, job._s) = (n, c, s);
            (job._epsilon, job._momentum, job._training) = (T.CreateChecked(a.Epsilon), T.CreateChecked(a.Momentum), a.Training);
            try
            {
                ReductionOps.ForChunks(c, threads, job._body);
            }
            finally
            {
                job._x = job._y = job._scale = job._bias = job._mean = job._var = [];
                job._runningMean = job._runningVar = null;
            }
        }

        private void Channels(int from, int to)
        {
            for (int ch = from; ch < to; ch++)
            {
                T mean = _mean[ch], variance = _var[ch];
                if (_training)
                {
                    (mean, variance) = ChannelMoments(_x, _n, _c, _s, ch);
                    // running = input·momentum + batch·(1 − momentum) (ONNX spec; the variance is the biased one).
                    T keep = T.One - _momentum;
                    _runningMean![ch] = _mean[ch] * _momentum + mean * keep;
                    _runningVar![ch] = _var[ch] * _momentum + variance * keep;
                }
                T factor = _scale[ch] / T.Sqrt(variance + _epsilon), shift = _bias[ch];
                for (int i = 0; i < _n; i++)
                {
                    int at = (i * _c + ch) * _s;
                    ScaleShift(_x.AsSpan(at, _s), mean, factor, shift, _y.AsSpan(at, _s));
                }
            }
        }
    }

    /// <summary>
    /// The mean and biased variance of channel <paramref name="ch"/> of [n, c, s]: Σx/M, then Σ(x − mean)²/M (two passes,
    /// so no cancellation), each summed slice by slice in image order.
    /// </summary>
    internal static (T Mean, T Var) ChannelMoments<T>(T[] x, int n, int c, int s, int ch) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T count = T.CreateChecked((long)n * s), sum = T.Zero, sq = T.Zero;
        for (int i = 0; i < n; i++) sum += ReductionOps.Sum<T>(x.AsSpan((i * c + ch) * s, s));
        T mean = sum / count;
        for (int i = 0; i < n; i++) sq += SumOfSquaredDeviations<T>(x.AsSpan((i * c + ch) * s, s), mean);
        return (mean, sq / count);
    }

    /// <summary>y = (x − mean)·factor + shift, each step rounded as written (no fused multiply-add).</summary>
    internal static void ScaleShift<T>(ReadOnlySpan<T> x, T mean, T factor, T shift, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Length, i = 0;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported)
        {
            Vector<T> m = new(mean), f = new(factor), b = new(shift);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count) ((new Vector<T>(x[i..]) - m) * f + b).CopyTo(y[i..]);
        }
        for (; i < n; i++) y[i] = Step(x[i], mean, factor, shift);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T Step<T>(T x, T mean, T factor, T shift) where T : IFloatingPointIeee754<T> => (x - mean) * factor + shift;
}
