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
    /// Standard-op body: <see cref="NllScatterStandard"/>.
    /// </summary>
    private static readonly VjpRule NllVjp = ctx => [ctx.NeedsGrad(0)
        ? ctx.Emit.Custom("NegativeLogLikelihoodLossGrad", [ctx.OutputGrad(0)!, ctx.Input(0), ctx.Input(1), ctx.HasInput(2) ? ctx.Input(2) : ""], CopiedAttributes(ctx))
        : null];

    /// <summary>
    /// SoftmaxCrossEntropyLoss VJP (PyTorch: cross_entropy = nll_loss(log_softmax)): with P = softmax(scores) along
    /// axis 1 and G = the NLL VJP above plus the log_prob output's cotangent, dscores = G − P·Σ_class G
    /// (log_softmax backward). Standard-op body: <see cref="SceGradStandard"/>.
    /// </summary>
    private static readonly VjpRule SceVjp = ctx => [ctx.NeedsGrad(0)
        ? ctx.Emit.Custom("SoftmaxCrossEntropyLossGrad",
            [ctx.OutputGrad(0) ?? "", ctx.Input(0), ctx.Input(1), ctx.HasInput(2) ? ctx.Input(2) : "", ctx.OutputGrad(1) ?? ""], CopiedAttributes(ctx))
        : null];

    private static OnnxAttribute[] CopiedAttributes(GradientContext ctx) =>
        [.. new[] { "reduction", "ignore_index" }.Select(ctx.Node.FindAttribute).OfType<OnnxAttribute>(), ReductionOps.DTypeAttribute(ctx, ctx.Input(0))];

    /// <summary>
    /// The NLL part of both gradients in standard ops: OneHot(target, C, axis 1) ⊙ −Unsqueeze(w·dLoss, 1), with w the
    /// applied weight (weight[target] or 1; 0 at ignore_index), divided by Σ w for reduction "mean".
    /// </summary>
    private static string NllScatterStandard(GraphEmitter e, Node node, string dLoss, string x, string target, string weight)
    {
        var type = ReductionOps.DType(node);
        string t = e.Cast(target, DataType.Int64);
        string? valid = node.HasAttribute("ignore_index") ? e.Not(e.Equal(t, e.Constant(OnnxTensor.Scalar(node.GetInt("ignore_index", 0))))) : null;
        string index = valid is null ? t : e.Where(valid, t, e.Constant(OnnxTensor.Scalar(0L)));
        string applied = weight.Length > 0 ? e.Op("Gather", weight, index)
            : e.Op("ConstantOfShape", [e.Shape(t)], OnnxAttribute.FromTensor("value", GraphEmitter.ScalarTensor(1, type).Reshape([1])));
        if (valid is not null) applied = e.Where(valid, applied, e.Scalar(0, type));
        string coef = e.Mul(applied, dLoss);
        if (node.GetString("reduction", "mean") == "mean") coef = e.Div(coef, e.ReduceSum(applied, null, false));
        string depth = e.Op("Gather", e.Shape(x), e.Constant(OnnxTensor.Scalar(1L)));
        var values = type == DataType.Double ? OnnxTensor.FromArray(new double[] { 0, 1 }, 2) : OnnxTensor.FromArray(new float[] { 0, 1 }, 2);
        string hot = e.Op("OneHot", [index, depth, e.Constant(values)], OnnxAttribute.FromInt("axis", 1));
        return e.Mul(hot, e.Neg(e.Unsqueeze(coef, 1)));
    }

    /// <summary>SoftmaxCrossEntropyLossGrad in standard ops: G = NLL part + dLogProb, dscores = G − Exp(LogSoftmax(scores, 1))·ΣG.</summary>
    private static string[] SceGradStandard(GraphEmitter e, Node node)
    {
        string dLoss = node.Inputs[0], scores = node.Inputs[1], dLogProb = node.InputOrEmpty(4);
        string? g = dLoss.Length > 0 ? NllScatterStandard(e, node, dLoss, scores, node.Inputs[2], node.InputOrEmpty(3)) : null;
        if (dLogProb.Length > 0) g = g is null ? dLogProb : e.Add(g, dLogProb);
        if (g is null) throw new UnsupportedOperatorException(node.OpType, node.Domain, 1, node.Name, "neither dLoss nor dLogProb is given");
        string p = e.Exp(e.Op("LogSoftmax", [scores], OnnxAttribute.FromInt("axis", 1)));
        return [e.Sub(g, e.Mul(p, e.ReduceSum(g, [1], true)))];
    }

    private static IEnumerable<OpDefinition> GradDefinitions() =>
    [
        // NegativeLogLikelihoodLossGrad(dLoss, input, target, weight?) → dinput.
        new("NegativeLogLikelihoodLossGrad", op => CreateGrad(op, softmax: false), OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(1)],
            StandardOps = (e, node) => [NllScatterStandard(e, node, node.Inputs[0], node.Inputs[1], node.Inputs[2], node.InputOrEmpty(3))],
        },
        // SoftmaxCrossEntropyLossGrad(dLoss?, scores, labels, weights?, dLogProb?) → dscores.
        new("SoftmaxCrossEntropyLossGrad", op => CreateGrad(op, softmax: true), OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(1)],
            StandardOps = SceGradStandard,
        },
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
            RequireTargetType(ctx, target);
            if (x.ElementType == DataType.Float) Run<float>();
            else Run<double>();

            void Run<T>() where T : unmanaged, IFloatingPointIeee754<T>
            {
                var dLoss = ctx.Input(0);
                var dLogProb = softmax ? ctx.Input(4) : null;
                var w = weight is null ? null : (T[])weight.Buffer;
                int count = n * d;
                T scale = T.One;
                T[] dl = [];
                if (dLoss is not null)
                {
                    dl = (T[])dLoss.Buffer;
                    if (a.Reduction == Reduction.None ? dLoss.ElementCount != count : dLoss.ElementCount != 1) throw ctx.Invalid($"dLoss has {dLoss.ElementCount} elements");
                    if (a.Reduction == Reduction.Mean)
                    {
                        double weightSum = 0;
                        for (int i = 0; i < count; i++) weightSum += double.CreateChecked(AppliedWeight(ctx, target, i, w, a.IgnoreIndex, c));
                        scale = T.One / T.CreateChecked(weightSum);
                    }
                }
                // The NLL part of the cotangent of element i's target score: −weight·dLoss (scaled for "mean").
                T Nll(int i, T applied) => -(applied * (a.Reduction == Reduction.None ? dl[i] : dl[0] * scale));
                if (softmax && d == 1 && dLoss is not null && dLogProb is null)
                {
                    var dxTensor = ctx.AllocateUninitialized(x.ElementType, x.Dims);
                    var xs = (T[])x.Buffer;
                    var dxs = (T[])dxTensor.Buffer;
                    for (int i = 0; i < n; i++)
                    {
                        T applied = AppliedWeight(ctx, target, i, w, a.IgnoreIndex, c);
                        if (applied == T.Zero) dxs.AsSpan(i * c, c).Clear();   // an ignored row: G = 0
                        else ClassifierRowGrad<T>(xs.AsSpan(i * c, c), dxs.AsSpan(i * c, c), (int)TargetAt(target, i), Nll(i, applied));
                    }
                    ctx.SetOutput(0, dxTensor);
                    return;
                }
                // g, logProb and dx come from the plan's pool: g is only scratch when softmax (freed after the node).
                var gTensor = ctx.Allocate(x.ElementType, x.Dims);
                var g = gTensor.AsSpan<T>();
                dLogProb?.AsSpan<T>().CopyTo(g);
                if (dLoss is not null)
                    for (int i = 0; i < count; i++)
                    {
                        T applied = AppliedWeight(ctx, target, i, w, a.IgnoreIndex, c);
                        if (applied == T.Zero) continue;
                        g[ClassIndex(i, TargetAt(target, i), c, d)] += Nll(i, applied);
                    }
                if (!softmax)
                {
                    ctx.SetOutput(0, gTensor);
                    return;
                }
                var logProb = (T[])ctx.AllocateUninitialized(x.ElementType, x.Dims).Buffer;
                int threads = ReductionOps.Parallelism(ctx, x.ElementCount);
                SoftmaxOps.Lines((T[])x.Buffer, logProb, n, c, d, SoftmaxOps.Kind.LogSoftmax, threads);
                var dx = ctx.AllocateUninitialized(x.ElementType, x.Dims);
                SoftmaxOps.GradLines((T[])gTensor.Buffer, logProb, (T[])dx.Buffer, n, c, d, log: true, threads);
                ctx.SetOutput(0, dx);
            }
        });
    }

    /// <summary>
    /// One row of SoftmaxCrossEntropyLossGrad over [n, c] scores when the cotangent G of the log-probabilities has one
    /// nonzero, g at class t (the NLL part alone): Σ G = g, so the log-softmax VJP dx = G − softmax(x)·Σ G is −p·g, and
    /// g − p_t·g at t. The log-probabilities are computed in dx itself; the operations and their order are those of
    /// the general path (SoftmaxOps.GradLines), without the G buffer.
    /// </summary>
    private static void ClassifierRowGrad<T>(ReadOnlySpan<T> x, Span<T> dx, int t, T g) where T : unmanaged, IFloatingPointIeee754<T>
    {
        SoftmaxOps.Line<T>(x, dx, SoftmaxOps.Kind.LogSoftmax);
        System.Numerics.Tensors.TensorPrimitives.Exp(dx, dx);
        System.Numerics.Tensors.TensorPrimitives.Multiply(dx, g, dx);
        T pg = dx[t];
        System.Numerics.Tensors.TensorPrimitives.Subtract(T.Zero, dx, dx);
        dx[t] = g - pg;
    }
}
