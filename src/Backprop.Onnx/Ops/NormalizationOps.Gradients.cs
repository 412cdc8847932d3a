using System.Numerics;
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
            int n = x.Dims[0], c = x.Dims[1], s = ReductionOps.Product(x.Shape, 2, x.Rank);
            if (x.ElementType == DataType.Float) Run<float>();
            else Run<double>();

            void Run<T>() where T : unmanaged, IFloatingPointIeee754<T>
            {
                T[]? Opt(int i) => ctx.Input(i) is { } t ? (T[])t.Buffer : null;
                var xs = (T[])x.Buffer;
                var dy = Opt(0);
                var scale = (T[])ctx.RequiredInput(2).Buffer;
                T[] mean = (T[])ctx.RequiredInput(3).Buffer, variance = (T[])ctx.RequiredInput(4).Buffer;
                var dRunMean = Opt(5);
                var dRunVar = Opt(6);
                if (training) (mean, variance) = ChannelStatistics(xs, n, c, s, 1);
                T m = T.CreateChecked(momentum), count = T.CreateChecked((long)n * s), half = T.CreateChecked(0.5);
                var dx = new T[x.ElementCount];
                var dScale = new T[c];
                var dB = new T[c];
                var dMean = new T[c];
                var dVar = new T[c];
                ReductionOps.ForChunks(c, ReductionOps.Parallelism(ctx, x.ElementCount), (from, to) =>
                {
                    for (int ch = from; ch < to; ch++) Channel(ch);
                });
                ctx.SetOutput(0, OnnxTensor.FromArray(dx, x.Dims));
                T[][] rest = [dScale, dB, dMean, dVar];
                for (int k = 0; k < 4; k++) ctx.SetOutput(k + 1, OnnxTensor.FromArray(rest[k], c));

                void Channel(int ch)
                {
                    T r = T.One / T.Sqrt(variance[ch] + T.CreateChecked(epsilon)), mu = mean[ch];
                    T sdy = T.Zero, sdyxc = T.Zero;
                    if (dy is not null)
                        for (int i = 0; i < n; i++)
                        {
                            var g = dy.AsSpan((i * c + ch) * s, s);
                            sdy += ReductionOps.Sum<T>(g);
                            sdyxc += SumOfProductsWithDeviations<T>(g, xs.AsSpan((i * c + ch) * s, s), mu);
                        }
                    dScale[ch] = sdyxc * r;
                    dB[ch] = sdy;
                    // dX = A·dY + B + C·(X − μ)
                    T a = scale[ch] * r, b = T.Zero, cc = T.Zero;
                    if (training)
                    {
                        b = -a * sdy / count;
                        cc = -a * r * r * sdyxc / count;
                        if (dRunMean is not null) { b += (T.One - m) * dRunMean[ch] / count; dMean[ch] = m * dRunMean[ch]; }
                        if (dRunVar is not null) { cc += (T.One - m) * (dRunVar[ch] + dRunVar[ch]) / count; dVar[ch] = m * dRunVar[ch]; }
                    }
                    else
                    {
                        dMean[ch] = -a * sdy;
                        dVar[ch] = -half * a * r * r * sdyxc;
                    }
                    for (int i = 0; i < n; i++)
                    {
                        var dst = dx.AsSpan((i * c + ch) * s, s);
                        TP.Subtract(xs.AsSpan((i * c + ch) * s, s), mu, dst);
                        TP.Multiply(dst, cc, dst);
                        TP.Add(dst, b, dst);
                        if (dy is not null) TP.MultiplyAdd(dy.AsSpan((i * c + ch) * s, s), a, dst, dst);
                    }
                }
            }
        });
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
