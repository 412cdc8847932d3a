using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using static Backprop.Onnx.Ops.Elementwise;
using static Backprop.Onnx.Ops.ElementwiseOps;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Activation functions (ONNX operator spec, sections of the same names): Relu, LeakyRelu, PRelu, Elu, Selu, Celu,
/// Sigmoid, HardSigmoid, HardSwish, Softplus, Softsign, Shrink, ThresholdedRelu. Float attributes are binary32 in
/// ONNX; double kernels use the same values.
/// </summary>
internal static partial class ActivationOps
{
    public static void Register(List<OpDefinition> ops)
    {
        // Relu: dx = g where y > 0, else 0, so Relu'(0) = 0 (derivatives.yaml: relu, threshold_backward(grad, result, 0)),
        // as one ReluGrad node of our domain (ActivationOps.ReluGrad.cs).
        ops.Add(new OpDefinition("Relu", Unary(new ReluMap())) { Vjp = ReluVjp });
        ops.Add(ReluGradDefinition());
        // Sigmoid: dx = g * y * (1 - y) (derivatives.yaml: sigmoid_backward).
        ops.Add(new OpDefinition("Sigmoid", Unary(new FloatPrimitive(FloatPrimitive.Kind.Sigmoid))) { Vjp = ctx => [SigmoidSlope(ctx, G(ctx), Y(ctx))] });
        // LeakyRelu: dx = g where x > 0, else alpha * g (derivatives.yaml: leaky_relu_backward).
        ops.Add(new OpDefinition("LeakyRelu", op => Unary(new LeakyReluMap(Attr(op, "alpha", 0.01f)))(op))
        {
            Vjp = ctx => [Select(ctx, ctx.Emit.Greater(X(ctx), Zero(ctx)), G(ctx), ctx.Emit.Mul(G(ctx), ctx.Scalar(Param(ctx, "alpha", 0.01f), X(ctx))))],
        });
        // Elu: dx = g where x > 0, else g * alpha * exp(x) (derivatives.yaml: elu_backward, scale 1).
        ops.Add(new OpDefinition("Elu", op => Unary(new EluMap(Attr(op, "alpha", 1f)))(op))
        {
            Vjp = ctx => [EluSlope(ctx, Param(ctx, "alpha", 1f), 1, 1)],
        });
        // Selu: dx = gamma * g where x > 0, else g * gamma * alpha * exp(x) (derivatives.yaml: elu_backward, scale gamma).
        ops.Add(new OpDefinition("Selu", op => Unary(new SeluMap(Attr(op, "alpha", SeluAlpha), Attr(op, "gamma", SeluGamma)))(op))
        {
            Vjp = ctx => [EluSlope(ctx, Param(ctx, "alpha", SeluAlpha), Param(ctx, "gamma", SeluGamma), 1)],
        });
        // Celu: dx = g where x > 0, else g * exp(x / alpha) (derivatives.yaml: celu is elu with input_scale 1/alpha).
        ops.Add(new OpDefinition("Celu", op => Unary(new CeluMap(Attr(op, "alpha", 1f)))(op), minVersion: 12)
        {
            Vjp = ctx => [EluSlope(ctx, Param(ctx, "alpha", 1f), 1, 1 / Param(ctx, "alpha", 1f))],
        });
        // HardSigmoid: dx = alpha * g where 0 < alpha * x + beta < 1, else 0 (derivatives.yaml: hardsigmoid_backward).
        ops.Add(new OpDefinition("HardSigmoid", op => Unary(new HardSigmoidMap(Attr(op, "alpha", 0.2f), Attr(op, "beta", 0.5f), false))(op))
        {
            Vjp = ctx =>
            {
                var emit = ctx.Emit;
                string alpha = ctx.Scalar(Param(ctx, "alpha", 0.2f), X(ctx));
                string v = emit.Add(emit.Mul(alpha, X(ctx)), ctx.Scalar(Param(ctx, "beta", 0.5f), X(ctx)));
                string inside = emit.And(emit.Greater(v, Zero(ctx)), emit.Less(v, ctx.Scalar(1, X(ctx))));
                return [Select(ctx, inside, emit.Mul(G(ctx), alpha), Zero(ctx))];
            },
        });
        // HardSwish (version 14): x * HardSigmoid(x) with alpha = 1/6, beta = 0.5. dx = 0 for x < -3, g * (x / 3 + 1/2)
        // for -3 <= x <= 3, g above (derivatives.yaml: hardswish_backward).
        ops.Add(new OpDefinition("HardSwish", Unary(new HardSigmoidMap(1.0 / 6, 0.5, true)), minVersion: 14)
        {
            Vjp = ctx =>
            {
                var emit = ctx.Emit;
                string x = X(ctx), g = G(ctx);
                string middle = emit.Mul(g, emit.Add(emit.Div(x, ctx.Scalar(3, x)), ctx.Scalar(0.5, x)));
                return [Select(ctx, emit.Less(x, ctx.Scalar(-3, x)), Zero(ctx), Select(ctx, emit.LessOrEqual(x, ctx.Scalar(3, x)), middle, g))];
            },
        });
        // Softplus: dx = g * sigmoid(x) (derivatives.yaml: softplus_backward, beta 1).
        ops.Add(new OpDefinition("Softplus", Unary(new SoftplusMap())) { Vjp = ctx => [ctx.Emit.Mul(G(ctx), ctx.Emit.Sigmoid(X(ctx)))] });
        // Softsign: dx = g / (1 + |x|)^2 (d/dx of x / (1 + |x|)).
        ops.Add(new OpDefinition("Softsign", Unary(new SoftsignMap()))
        {
            Vjp = ctx => [ctx.Emit.Div(G(ctx), ctx.Emit.Square(ctx.Emit.Add(ctx.Scalar(1, X(ctx)), ctx.Emit.Abs(X(ctx)))))],
        });
        // Shrink: dx = g where x < -lambd or x > lambd, else 0 (derivatives.yaml: softshrink_backward, hardshrink_backward).
        ops.Add(new OpDefinition("Shrink", op => Unary(new ShrinkMap(Attr(op, "lambd", 0.5f), Attr(op, "bias", 0f)))(op), minVersion: 9)
        {
            Vjp = ctx =>
            {
                var emit = ctx.Emit;
                string lambd = ctx.Scalar(Param(ctx, "lambd", 0.5f), X(ctx));
                string outside = emit.Op("Or", emit.Less(X(ctx), emit.Neg(lambd)), emit.Greater(X(ctx), lambd));
                return [Select(ctx, outside, G(ctx), Zero(ctx))];
            },
        });
        // ThresholdedRelu: dx = g where x > alpha, else 0 (derivatives.yaml: threshold_backward).
        ops.Add(new OpDefinition("ThresholdedRelu", op => Unary(new ThresholdedReluMap(Attr(op, "alpha", 1f)))(op), minVersion: 10)
        {
            Vjp = ctx => [Select(ctx, ctx.Emit.Greater(X(ctx), ctx.Scalar(Param(ctx, "alpha", 1f), X(ctx))), G(ctx), Zero(ctx))],
        });
        ops.Add(new OpDefinition("PRelu", op =>
        {
            RequireTypes(op, 0, NumericTypes);
            RequireTypes(op, 1, NumericTypes);
            return new PReluKernel(op.OpsetVersion < 7);
        }) { Broadcasting = true, Vjp = PReluVjp });
    }

    private const float SeluAlpha = 1.67326319217681884765625f, SeluGamma = 1.05070102214813232421875f;

    /// <summary>
    /// PRelu: dx = g where x > 0, else slope * g; dslope = g * x where x &lt;= 0, else 0 (derivatives.yaml:
    /// _prelu_kernel_backward). The pass sums dslope to the slope's shape; a per-channel slope of opset 6 is reshaped
    /// to [C, 1, …] for dx and summed over the other axes here.
    /// </summary>
    private static string?[] PReluVjp(GradientContext ctx)
    {
        var emit = ctx.Emit;
        string x = X(ctx), slope = ctx.Input(1), g = G(ctx);
        int? channelRank = null;
        if (ctx.OpsetVersion < 7 && ctx.StaticShape(slope) is [{ Value: long c }] && c != 1)
        {
            int rank = ctx.Rank(x) ?? throw ctx.Unsupported("a per-channel slope (before opset 7) needs the static rank of X");
            if (rank >= 2 && ctx.StaticShape(x)![1].Value == c) channelRank = rank;
        }
        string positive = emit.Greater(x, Zero(ctx));
        string? dx = null, dslope = null;
        if (ctx.NeedsGrad(0))
        {
            string s = channelRank is int r ? emit.Unsqueeze(slope, [.. Enumerable.Range(1, r - 2).Select(d => (long)d)]) : slope;
            dx = Select(ctx, positive, g, emit.Mul(g, s));
        }
        if (ctx.NeedsGrad(1))
        {
            dslope = Select(ctx, positive, Zero(ctx), emit.Mul(g, x));
            if (channelRank is int r) dslope = emit.ReduceSum(dslope, [0, .. Enumerable.Range(2, r - 2).Select(d => (long)d)], keepdims: false);
        }
        return [dx, dslope];
    }

    /// <summary>The ELU family's VJP: g * scale where x > 0, else g * scale * alpha * inputScale * exp(x * inputScale).</summary>
    private static string EluSlope(GradientContext ctx, double alpha, double scale, double inputScale)
    {
        var emit = ctx.Emit;
        string x = X(ctx), g = G(ctx);
        string scaled = scale == 1 ? g : emit.Mul(g, ctx.Scalar(scale, x));
        string xs = inputScale == 1 ? x : emit.Mul(x, ctx.Scalar(inputScale, x));
        string negative = emit.Mul(scaled, emit.Mul(ctx.Scalar(alpha * inputScale, x), emit.Exp(xs)));
        return Select(ctx, emit.Greater(x, Zero(ctx)), scaled, negative);
    }

    /// <summary>g * y * (1 - y).</summary>
    internal static string SigmoidSlope(GradientContext ctx, string g, string y) =>
        ctx.Emit.Mul(g, ctx.Emit.Mul(y, ctx.Emit.Sub(ctx.Scalar(1, y), y)));

    private static double Param(GradientContext ctx, string name, float defaultValue) => ctx.Node.GetFloat(name, defaultValue);

    private static string Zero(GradientContext ctx) => ctx.Scalar(0, X(ctx));

    private static string G(GradientContext ctx) => ctx.OutputGrad(0)!;

    private static string X(GradientContext ctx) => ctx.Input(0);

    private static string Y(GradientContext ctx) => ctx.Output(0);
}
