using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Gradient rules of BatchNormalization and InstanceNormalization, each through one dedicated kernel of
/// <see cref="OpRegistry.BackpropDomain"/> that computes every parameter's gradient in two passes over X.
/// </summary>
internal static partial class NormalizationOps
{
    /// <summary>
    /// BatchNormalization VJP (PyTorch derivatives.yaml: native_batch_norm → batchnorm_backward; r = 1/sqrt(σ² + ε),
    /// M = elements per channel, sums over all axes but 1):
    /// inference: dX = dY·scale·r, dscale = Σ dY·(X − mean)·r, dB = Σ dY, dmean = −scale·r·Σ dY,
    /// dvar = −½·scale·r³·Σ dY·(X − mean);
    /// training (batch μ, σ²): dX = scale·r/M·(M·dY − Σ dY − x̂·Σ dY·x̂), dscale = Σ dY·x̂, dB = Σ dY, plus the running
    /// outputs' cotangents: dX += (1 − momentum)·(d running_mean + 2(X − μ)·d running_var)/M, dmean = momentum·d running_mean,
    /// dvar = momentum·d running_var.
    /// </summary>
    private static readonly VjpRule BatchNormVjp = ctx =>
    {
        var a = ParseBatchNorm(new OpContext(ctx.Node, ctx.OpsetVersion, []));
        var outs = ctx.Emit.Ops("BatchNormalizationGrad",
            [ctx.OutputGrad(0) ?? "", ctx.Input(0), ctx.Input(1), ctx.Input(3), ctx.Input(4), ctx.OutputGrad(1) ?? "", ctx.OutputGrad(2) ?? ""],
            5, OpRegistry.BackpropDomain,
            OnnxAttribute.FromFloat("epsilon", (float)a.Epsilon), OnnxAttribute.FromFloat("momentum", (float)a.Momentum),
            OnnxAttribute.FromInt("training_mode", a.Training ? 1 : 0), ReductionOps.DTypeAttribute(ctx, ctx.Input(0)));
        bool statsFlow = !a.Training || ctx.OutputGrad(1) is not null || ctx.OutputGrad(2) is not null;
        return [.. Enumerable.Range(0, 5).Select(i => ctx.NeedsGrad(i) && (i < 3 || statsFlow) ? outs[i] : null)];
    };

    /// <summary>
    /// InstanceNormalization VJP: BatchNormalization's training-mode formula with statistics per (instance, channel)
    /// over the spatial axes (PyTorch: instance_norm is batch_norm on the reshaped input).
    /// </summary>
    private static readonly VjpRule InstanceNormVjp = ctx =>
    {
        var outs = ctx.Emit.Ops("InstanceNormalizationGrad", [ctx.OutputGrad(0)!, ctx.Input(0), ctx.Input(1)], 3, OpRegistry.BackpropDomain,
            OnnxAttribute.FromFloat("epsilon", ctx.Node.GetFloat("epsilon", 1e-5f)), ReductionOps.DTypeAttribute(ctx, ctx.Input(0)));
        return [.. Enumerable.Range(0, 3).Select(i => ctx.NeedsGrad(i) ? outs[i] : null)];
    };

    private static IEnumerable<OpDefinition> GradDefinitions() =>
    [
        // BatchNormalizationGrad(dY?, X, scale, mean, var, dRunningMean?, dRunningVar?) → dX, dscale, dB, dmean, dvar.
        new("BatchNormalizationGrad", CreateBatchNormGrad, OpRegistry.BackpropDomain)
        {
            InferTypes = op => [.. Enumerable.Repeat(op.InputType(1), 5)],
            StandardOps = BatchNormGradStandard,
        },
        // InstanceNormalizationGrad(dY, X, scale) → dX, dscale, dB.
        new("InstanceNormalizationGrad", CreateInstanceNormGrad, OpRegistry.BackpropDomain)
        {
            InferTypes = op => [.. Enumerable.Repeat(op.InputType(1), 3)],
            StandardOps = InstanceNormGradStandard,
        },
        // LayerNormalizationGrad(dY?, X, Scale, B?, dMean?, dInvStdDev?) → dX, dScale, dB.
        new("LayerNormalizationGrad", CreateLayerNormGrad, OpRegistry.BackpropDomain)
        {
            InferTypes = op => [.. Enumerable.Repeat(op.InputType(1), 3)],
            StandardOps = LayerNormGradStandard,
        },
    ];

    private static Kernel CreateBatchNormGrad(OpContext op)
    {
        double epsilon = op.Node.GetFloat("epsilon", 1e-5f), momentum = op.Node.GetFloat("momentum", 0.9f);
        bool training = op.Node.GetInt("training_mode", 0) != 0;
        op.RequireInputType(1, DataType.Float, DataType.Double);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(1);
            int c = x.Dims[1];
            // Every element of dX is written (channel by channel, image by image); dmean and dvar stay 0 in training
            // mode unless the running statistics have cotangents.
            var dx = ctx.AllocateUninitialized(x.ElementType, x.Dims);
            var rest = (ctx.Allocate(x.ElementType, [c]), ctx.Allocate(x.ElementType, [c]), ctx.Allocate(x.ElementType, [c]), ctx.Allocate(x.ElementType, [c]));
            if (x.ElementType == DataType.Float) BatchNormGradJob<float>.Run(ctx, x, dx, rest, epsilon, momentum, training);
            else BatchNormGradJob<double>.Run(ctx, x, dx, rest, epsilon, momentum, training);
            ctx.SetOutput(0, dx);
            ctx.SetOutput(1, rest.Item1);
            ctx.SetOutput(2, rest.Item2);
            ctx.SetOutput(3, rest.Item3);
            ctx.SetOutput(4, rest.Item4);
        });
    }

    /// <summary>
    /// One BatchNormalizationGrad call, channel by channel: (training mode) the batch statistics, Σ dY and Σ dY·(X − μ)
    /// in one pass over the channel's image slices (<see cref="TrainingSums"/>), then dX = A·dY + B + C·(X − μ) in a
    /// second. Arguments travel in a job object reused per thread.
    /// </summary>
    private sealed class BatchNormGradJob<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        [ThreadStatic] private static BatchNormGradJob<T>? t_job;

        private T[] _x = [], _dx = [], _scale = [], _mean = [], _var = [], _dScale = [], _dB = [], _dMean = [], _dVar = [];
        private T[]? _dy, _dRunMean, _dRunVar;
        private int _n, _c, _s;
        private T _epsilon, _momentum;
        private bool _training;
        private readonly Action<int, int> _body;

        private BatchNormGradJob() => _body = Channels;

        public static void Run(KernelContext ctx, OnnxTensor x, OnnxTensor dx, (OnnxTensor, OnnxTensor, OnnxTensor, OnnxTensor) rest, double epsilon, double momentum, bool training)
        {
            var job = t_job ??= new BatchNormGradJob<T>();
            T[]? Opt(int i) => ctx.Input(i) is { } t ? (T[])t.Buffer : null;
            job._x = (T[])x.Buffer;
            job._dx = (T[])dx.Buffer;
            job._dy = Opt(0);
            job._scale = (T[])ctx.RequiredInput(2).Buffer;
            job._mean = (T[])ctx.RequiredInput(3).Buffer;
            job._var = (T[])ctx.RequiredInput(4).Buffer;
            job._dRunMean = Opt(5);
            job._dRunVar = Opt(6);
            (job._dScale, job._dB, job._dMean, job._dVar) = ((T[])rest.Item1.Buffer, (T[])rest.Item2.Buffer, (T[])rest.Item3.Buffer, (T[])rest.Item4.Buffer);
            (job._n, job._c, job._s) = (x.Dims[0], x.Dims[1], ReductionOps.Product(x.Shape, 2, x.Rank));
            (job._epsilon, job._momentum, job._training) = (T.CreateChecked(epsilon), T.CreateChecked(momentum), training);
            try
            {
                ReductionOps.ForChunks(job._c, ReductionOps.Parallelism(ctx, x.ElementCount), job._body);
            }
            finally
            {
                job._x = job._dx = job._scale = job._mean = job._var = job._dScale = job._dB = job._dMean = job._dVar = [];
                job._dy = job._dRunMean = job._dRunVar = null;
            }
        }

        private void Channels(int from, int to)
        {
            for (int ch = from; ch < to; ch++) Channel(ch);
        }

        private void Channel(int ch)
        {
            int n = _n, c = _c, s = _s;
            T[] xs = _x, dx = _dx;
            T[]? dy = _dy;
            T mu = _mean[ch], variance = _var[ch], count = T.CreateChecked((long)n * s);
            T sdy = T.Zero, sdyxc = T.Zero;
            if (_training) (mu, variance, sdy, sdyxc) = TrainingSums(xs, dy, n, c, s, ch);
            else if (dy is not null)
                for (int i = 0; i < n; i++)
                {
                    var (_, a1, a2) = DeviationSums<T>(dy.AsSpan((i * c + ch) * s, s), xs.AsSpan((i * c + ch) * s, s), mu);
                    sdy += a1;
                    sdyxc += a2;
                }
            T r = T.One / T.Sqrt(variance + _epsilon), m = _momentum;
            _dScale[ch] = sdyxc * r;
            _dB[ch] = sdy;
            // dX = A·dY + B + C·(X − μ)
            T a = _scale[ch] * r, b = T.Zero, cc = T.Zero;
            if (_training)
            {
                b = -a * sdy / count;
                cc = -a * r * r * sdyxc / count;
                if (_dRunMean is { } drm) { b += (T.One - m) * drm[ch] / count; _dMean[ch] = m * drm[ch]; }
                if (_dRunVar is { } drv) { cc += (T.One - m) * (drv[ch] + drv[ch]) / count; _dVar[ch] = m * drv[ch]; }
            }
            else
            {
                _dMean[ch] = -a * sdy;
                _dVar[ch] = -T.CreateChecked(0.5) * a * r * r * sdyxc;
            }
            for (int i = 0; i < n; i++)
            {
                int at = (i * c + ch) * s;
                BatchNormInputGrad(dy is null ? default : dy.AsSpan(at, s), xs.AsSpan(at, s), mu, a, b, cc, dx.AsSpan(at, s));
            }
        }

        /// <summary>
        /// Training mode: the batch mean μ (Σ X / M, as the forward pass computes it), the batch variance, Σ dY and
        /// Σ dY·(X − μ) of one channel, reading each image's slice of X and dY once (a slice stays in L1 between its two
        /// short passes; the channel's slices, 64 KiB apart, map to few L2 sets and would not stay in L2 between passes
        /// over the whole channel). Per slice i (s elements): μᵢ, qᵢ = Σ (x − μᵢ)², aᵢ = Σ dy, pᵢ = Σ dy·(x − μᵢ); then
        /// the pairwise combination of Chan, Golub and LeVeque ("Algorithms for computing the sample variance", 1983):
        /// Σ (x − μ)² = Σ qᵢ + s·Σ (μᵢ − μ)², Σ dy·(x − μ) = Σ pᵢ + Σ aᵢ·(μᵢ − μ), exact identities without cancellation.
        /// </summary>
        private static (T Mean, T Variance, T SumDy, T SumDyDev) TrainingSums(T[] xs, T[]? dy, int n, int c, int s, int ch)
        {
            T count = T.CreateChecked((long)n * s), size = T.CreateChecked(s);
            T[]? rented = n > 64 ? ArrayPool<T>.Shared.Rent(2 * n) : null;
            Span<T> slice = rented is null ? stackalloc T[2 * n] : rented.AsSpan(0, 2 * n);
            try
            {
                T sum = T.Zero, q = T.Zero, sdy = T.Zero, p = T.Zero;
                for (int i = 0; i < n; i++)
                {
                    var x = xs.AsSpan((i * c + ch) * s, s);
                    T sumi = ReductionOps.Sum<T>(x), mui = sumi / size;
                    sum += sumi;
                    slice[2 * i] = mui;
                    if (dy is null)
                    {
                        q += SumOfSquaredDeviations<T>(x, mui);
                        continue;
                    }
                    var (qi, ai, pi) = DeviationSums<T>(dy.AsSpan((i * c + ch) * s, s), x, mui);
                    q += qi;
                    sdy += ai;
                    p += pi;
                    slice[2 * i + 1] = ai;
                }
                T mu = sum / count, spread = T.Zero, shift = T.Zero;
                for (int i = 0; i < n; i++)
                {
                    T d = slice[2 * i] - mu;
                    spread += d * d;
                    if (dy is not null) shift += slice[2 * i + 1] * d;
                }
                return (mu, (q + size * spread) / count, sdy, p + shift);
            }
            finally
            {
                if (rented is not null) ArrayPool<T>.Shared.Return(rented);
            }
        }
    }

    /// <summary>
    /// (Σ (x − m)², Σ g, Σ g·(x − m)) over one slice in one pass. Four independent 256-bit accumulator chains per sum
    /// (a single chain waits out the add latency on every vector), added pairwise at the end.
    /// </summary>
    internal static (T Squares, T Sum, T SumWithDeviations) DeviationSums<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, T m) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Length, i = 0;
        T s0 = T.Zero, s1 = T.Zero, s2 = T.Zero;
        int l = Vector256<T>.Count;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported && n >= 4 * l)
        {
            ref T gr = ref MemoryMarshal.GetReference(g[..n]);
            ref T xr = ref MemoryMarshal.GetReference(x);
            var mv = Vector256.Create(m);
            Vector256<T> q0 = default, q1 = default, q2 = default, q3 = default;
            Vector256<T> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<T> p0 = default, p1 = default, p2 = default, p3 = default;
            for (; i <= n - 4 * l; i += 4 * l)
            {
                nuint at = (nuint)i;
                Vector256<T> d0 = Vector256.LoadUnsafe(ref xr, at) - mv, d1 = Vector256.LoadUnsafe(ref xr, at + (nuint)l) - mv;
                Vector256<T> d2 = Vector256.LoadUnsafe(ref xr, at + (nuint)(2 * l)) - mv, d3 = Vector256.LoadUnsafe(ref xr, at + (nuint)(3 * l)) - mv;
                Vector256<T> g0 = Vector256.LoadUnsafe(ref gr, at), g1 = Vector256.LoadUnsafe(ref gr, at + (nuint)l);
                Vector256<T> g2 = Vector256.LoadUnsafe(ref gr, at + (nuint)(2 * l)), g3 = Vector256.LoadUnsafe(ref gr, at + (nuint)(3 * l));
                q0 += d0 * d0; q1 += d1 * d1; q2 += d2 * d2; q3 += d3 * d3;
                a0 += g0; a1 += g1; a2 += g2; a3 += g3;
                p0 += g0 * d0; p1 += g1 * d1; p2 += g2 * d2; p3 += g3 * d3;
            }
            s0 = Vector256.Sum((q0 + q1) + (q2 + q3));
            s1 = Vector256.Sum((a0 + a1) + (a2 + a3));
            s2 = Vector256.Sum((p0 + p1) + (p2 + p3));
        }
        for (; i < n; i++)
        {
            T d = x[i] - m;
            s0 += d * d;
            s1 += g[i];
            s2 += g[i] * d;
        }
        return (s0, s1, s2);
    }

    /// <summary>
    /// dx = a·dy + ((x − μ)·cc + b) (without dy when it is empty), in one vectorized pass: two 256-bit vectors per step
    /// through references (the Vector&lt;T&gt; loop over sliced spans it replaces ran 20-28% slower on W3's slices).
    /// </summary>
    internal static void BatchNormInputGrad<T>(ReadOnlySpan<T> dy, ReadOnlySpan<T> x, T mu, T a, T b, T cc, Span<T> dx) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Length, i = 0;
        bool hasDy = !dy.IsEmpty;
        if (hasDy && dy.Length < n) throw new ArgumentException("dY is shorter than X.", nameof(dy));
        ref T xr = ref MemoryMarshal.GetReference(x);
        ref T o = ref MemoryMarshal.GetReference(dx[..n]);
        int l = Vector256<T>.Count;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            Vector256<T> mv = Vector256.Create(mu), av = Vector256.Create(a), bv = Vector256.Create(b), cv = Vector256.Create(cc);
            if (hasDy)
            {
                ref T d = ref MemoryMarshal.GetReference(dy);
                for (; i <= n - 2 * l; i += 2 * l)
                {
                    nuint at = (nuint)i, next = (nuint)(i + l);
                    (Vector256.LoadUnsafe(ref d, at) * av + ((Vector256.LoadUnsafe(ref xr, at) - mv) * cv + bv)).StoreUnsafe(ref o, at);
                    (Vector256.LoadUnsafe(ref d, next) * av + ((Vector256.LoadUnsafe(ref xr, next) - mv) * cv + bv)).StoreUnsafe(ref o, next);
                }
            }
            else
                for (; i <= n - l; i += l)
                    ((Vector256.LoadUnsafe(ref xr, (nuint)i) - mv) * cv + bv).StoreUnsafe(ref o, (nuint)i);
        }
        for (; i < n; i++)
        {
            T v = (x[i] - mu) * cc + b;
            dx[i] = hasDy ? dy[i] * a + v : v;
        }
    }

    private static Kernel CreateInstanceNormGrad(OpContext op)
    {
        double epsilon = op.Node.GetFloat("epsilon", 1e-5f);
        op.RequireInputType(1, DataType.Float, DataType.Double);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(1);
            int n = x.Dims[0], c = x.Dims[1], s = ReductionOps.Product(x.Shape, 2, x.Rank);
            if (x.ElementType == DataType.Float) Run<float>();
            else Run<double>();

            void Run<T>() where T : unmanaged, IFloatingPointIeee754<T>
            {
                var xs = (T[])x.Buffer;
                var dy = (T[])ctx.RequiredInput(0).Buffer;
                var scale = (T[])ctx.RequiredInput(2).Buffer;
                var dx = new T[x.ElementCount];
                var partScale = new T[n * c];
                var partB = new T[n * c];
                T count = T.CreateChecked(s), eps = T.CreateChecked(epsilon);
                ReductionOps.ForChunks(n * c, ReductionOps.Parallelism(ctx, x.ElementCount), (from, to) =>
                {
                    for (int block = from; block < to && s > 0; block++)
                    {
                        int ch = block % c;
                        var xb = xs.AsSpan(block * s, s);
                        var g = dy.AsSpan(block * s, s);
                        T mu = ReductionOps.Sum<T>(xb) / count;
                        T r = T.One / T.Sqrt(SumOfSquaredDeviations<T>(xb, mu) / count + eps);
                        T sdy = ReductionOps.Sum<T>(g), sdyxc = SumOfProductsWithDeviations<T>(g, xb, mu);
                        partScale[block] = sdyxc * r;
                        partB[block] = sdy;
                        T a = scale[ch] * r;
                        var dst = dx.AsSpan(block * s, s);
                        TP.Subtract(xb, mu, dst);
                        TP.Multiply(dst, -a * r * r * sdyxc / count, dst);
                        TP.Add(dst, -a * sdy / count, dst);
                        TP.MultiplyAdd(g, a, dst, dst);
                    }
                });
                var dScale = new T[c];
                var dB = new T[c];
                for (int block = 0; block < n * c; block++) { dScale[block % c] += partScale[block]; dB[block % c] += partB[block]; }
                ctx.SetOutput(0, OnnxTensor.FromArray(dx, x.Dims));
                ctx.SetOutput(1, OnnxTensor.FromArray(dScale, c));
                ctx.SetOutput(2, OnnxTensor.FromArray(dB, c));
            }
        });
    }

    /// <summary>Σ a·(x − m), vectorized with a fixed association order.</summary>
    internal static T SumOfProductsWithDeviations<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> x, T m) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Length, i = 0;
        T s = T.Zero;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported && n >= Vector<T>.Count)
        {
            var acc = Vector<T>.Zero;
            var mv = new Vector<T>(m);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count) acc += new Vector<T>(a[i..]) * (new Vector<T>(x[i..]) - mv);
            s = Vector.Sum(acc);
        }
        for (; i < n; i++) s += a[i] * (x[i] - m);
        return s;
    }
}
