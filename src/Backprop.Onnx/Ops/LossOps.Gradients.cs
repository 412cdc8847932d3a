using System.Numerics;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>Gradient rules of the two losses, through dedicated scatter kernels of <see cref="OpRegistry.BackpropDomain"/>.</summary>
internal static partial class LossOps
{
    /// <summary>
    /// NegativeLogLikelihoodLoss VJP (PyTorch derivatives.yaml: nll_loss_forward → nll_loss_backward):
    /// dinput[n, target, d…] = −weight[target]·g[n, d…], 0 elsewhere and where target = ignore_index, with
    /// g = dLoss (none), dLoss broadcast (sum) or dLoss / Σ applied weights (mean).
    /// Standard-op body: ScatterElements of the scaled weights into zeros along axis 1.
    /// </summary>
    private static readonly VjpRule NllVjp = ctx => [ctx.NeedsGrad(0)
        ? ctx.Emit.Custom("NegativeLogLikelihoodLossGrad", [ctx.OutputGrad(0)!, ctx.Input(0), ctx.Input(1), ctx.HasInput(2) ? ctx.Input(2) : ""], CopiedAttributes(ctx))
        : null];

    /// <summary>
    /// SoftmaxCrossEntropyLoss VJP (PyTorch: cross_entropy = nll_loss(log_softmax)): with P = softmax(scores) along
    /// axis 1 and G = the NLL VJP above plus the log_prob output's cotangent, dscores = G − P·Σ_class G
    /// (log_softmax backward). Standard-op body: the NLL scatter, Add, then LogSoftmax's VJP.
    /// </summary>
    private static readonly VjpRule SceVjp = ctx => [ctx.NeedsGrad(0)
        ? ctx.Emit.Custom("SoftmaxCrossEntropyLossGrad",
            [ctx.OutputGrad(0) ?? "", ctx.Input(0), ctx.Input(1), ctx.HasInput(2) ? ctx.Input(2) : "", ctx.OutputGrad(1) ?? ""], CopiedAttributes(ctx))
        : null];

    private static OnnxAttribute[] CopiedAttributes(GradientContext ctx) =>
        [.. new[] { "reduction", "ignore_index" }.Select(ctx.Node.FindAttribute).OfType<OnnxAttribute>()];

    private static IEnumerable<OpDefinition> GradDefinitions() =>
    [
        // NegativeLogLikelihoodLossGrad(dLoss, input, target, weight?) → dinput.
        new("NegativeLogLikelihoodLossGrad", op => CreateGrad(op, softmax: false), OpRegistry.BackpropDomain) { InferTypes = op => [op.InputType(1)] },
        // SoftmaxCrossEntropyLossGrad(dLoss?, scores, labels, weights?, dLogProb?) → dscores.
        new("SoftmaxCrossEntropyLossGrad", op => CreateGrad(op, softmax: true), OpRegistry.BackpropDomain) { InferTypes = op => [op.InputType(1)] },
    ];

    private static Kernel CreateGrad(OpContext op, bool softmax)
    {
        var a = ParseLoss(op);
        op.RequireInputType(1, DataType.Float, DataType.Double);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(1);
            var target = ctx.RequiredInput(2);
            var weight = ctx.Input(3);
            var (n, c, d) = CheckShapes(ctx, x, target, weight);
            var targets = ReductionOps.ReadInts(ctx, target, "target");
            if (x.ElementType == DataType.Float) Run<float>();
            else Run<double>();

            void Run<T>() where T : unmanaged, IFloatingPointIeee754<T>
            {
                var dLoss = ctx.Input(0);
                var g = new T[x.ElementCount];
                if (softmax && ctx.Input(4) is { } dLogProb) dLogProb.AsSpan<T>().CopyTo(g);
                if (dLoss is not null)
                {
                    var dl = dLoss.AsSpan<T>();
                    if (a.Reduction == Reduction.None ? dl.Length != targets.Length : dl.Length != 1) throw ctx.Invalid($"dLoss has {dl.Length} elements");
                    var (applied, weightSum) = AppliedWeights<T>(ctx, targets, weight, a.IgnoreIndex, c);
                    T scale = a.Reduction == Reduction.Mean ? T.One / T.CreateChecked(weightSum) : T.One;
                    for (int i = 0; i < targets.Length; i++)
                    {
                        if (applied[i] == T.Zero) continue;
                        T gi = a.Reduction == Reduction.None ? dl[i] : dl[0] * scale;
                        g[ClassIndex(i, targets[i], c, d)] -= applied[i] * gi;
                    }
                }
                if (!softmax)
                {
                    ctx.SetOutput(0, OnnxTensor.FromArray(g, x.Dims));
                    return;
                }
                var logProb = new T[x.ElementCount];
                int threads = ReductionOps.Parallelism(ctx, x.ElementCount);
                SoftmaxOps.Lines((T[])x.Buffer, logProb, n, c, d, SoftmaxOps.Kind.LogSoftmax, threads);
                var dx = new T[x.ElementCount];
                SoftmaxOps.GradLines(g, logProb, dx, n, c, d, log: true, threads);
                ctx.SetOutput(0, OnnxTensor.FromArray(dx, x.Dims));
            }
        });
    }
}
