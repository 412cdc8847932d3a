using Backprop.Onnx.Autodiff;
using static Backprop.Onnx.Ops.Elementwise;
using K = Backprop.Onnx.Ops.FloatPrimitive.Kind;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Elementwise math, comparison, logic, selection and cast ops (ONNX operator spec, sections of the same names). Binary
/// ops broadcast multidirectionally (ONNX docs/Broadcasting.md), or by the <c>broadcast</c>/<c>axis</c> attributes below
/// opset 7 (<see cref="LegacyBroadcast"/>). Kernels cover float, double and float16, and the integer and bool types the
/// spec allows for each op. Gradient rules follow PyTorch's tools/autograd/derivatives.yaml (g is the cotangent of the
/// output y, x the input).
/// </summary>
internal static partial class ElementwiseOps
{
    public static void Register(List<OpDefinition> ops)
    {
        RegisterUnary(ops);
        RegisterArithmetic(ops);
        RegisterLogic(ops);
        RegisterOthers(ops);
    }

    /// <summary>Unary math: Abs, Neg, Sign, Exp, Log, Sqrt, Reciprocal, the trigonometric and hyperbolic functions and their inverses, Ceil, Floor, Round, Erf.</summary>
    private static void RegisterUnary(List<OpDefinition> ops)
    {
        // Abs: dx = g * sign(x), so Abs'(0) = 0 (derivatives.yaml: abs, grad * self.sgn()).
        ops.Add(new OpDefinition("Abs", Unary(new AbsMap())) { Vjp = ctx => [E(ctx).Mul(G(ctx), SignOf(ctx, X(ctx)))] });
        // Neg: dx = -g.
        ops.Add(new OpDefinition("Neg", Unary(new NegMap())) { Vjp = ctx => [E(ctx).Neg(G(ctx))] });
        // Sign, Ceil, Floor, Round: the derivative is zero wherever it exists (derivatives.yaml: zeros_like(grad)).
        ops.Add(new OpDefinition("Sign", Unary(new SignMap()), minVersion: 9) { Vjp = ZeroGradient });
        ops.Add(new OpDefinition("Ceil", Unary(new FloatPrimitive(K.Ceil))) { Vjp = ZeroGradient });
        ops.Add(new OpDefinition("Floor", Unary(new FloatPrimitive(K.Floor))) { Vjp = ZeroGradient });
        // Round (version 11): half to even, as numpy.round.
        ops.Add(new OpDefinition("Round", Unary(new FloatPrimitive(K.Round)), minVersion: 11) { Vjp = ZeroGradient });
        // Exp: dx = g * y.
        ops.Add(new OpDefinition("Exp", Unary(new FloatPrimitive(K.Exp))) { Vjp = ctx => [E(ctx).Mul(G(ctx), Y(ctx))] });
        // Log: dx = g / x.
        ops.Add(new OpDefinition("Log", Unary(new FloatPrimitive(K.Log))) { Vjp = ctx => [E(ctx).Div(G(ctx), X(ctx))] });
        // Sqrt: dx = g / (2 y).
        ops.Add(new OpDefinition("Sqrt", Unary(new FloatPrimitive(K.Sqrt)))
        {
            Vjp = ctx => [E(ctx).Div(G(ctx), E(ctx).Mul(ctx.Scalar(2, X(ctx)), Y(ctx)))],
        });
        // Reciprocal: dx = -g * y^2.
        ops.Add(new OpDefinition("Reciprocal", Unary(new FloatPrimitive(K.Reciprocal)))
        {
            Vjp = ctx => [E(ctx).Neg(E(ctx).Mul(G(ctx), E(ctx).Square(Y(ctx))))],
        });
        // Sin: dx = g * cos(x). Cos: dx = -g * sin(x).
        ops.Add(new OpDefinition("Sin", Unary(new FloatPrimitive(K.Sin)), minVersion: 7) { Vjp = ctx => [E(ctx).Mul(G(ctx), E(ctx).Op("Cos", X(ctx)))] });
        ops.Add(new OpDefinition("Cos", Unary(new FloatPrimitive(K.Cos)), minVersion: 7)
        {
            Vjp = ctx => [E(ctx).Neg(E(ctx).Mul(G(ctx), E(ctx).Op("Sin", X(ctx))))],
        });
        // Tan: dx = g * (1 + y^2).
        ops.Add(new OpDefinition("Tan", Unary(new FloatPrimitive(K.Tan)), minVersion: 7)
        {
            Vjp = ctx => [E(ctx).Mul(G(ctx), E(ctx).Add(ctx.Scalar(1, X(ctx)), E(ctx).Square(Y(ctx))))],
        });
        // Asin: dx = g / sqrt(1 - x^2). Acos: dx = -g / sqrt(1 - x^2).
        ops.Add(new OpDefinition("Asin", Unary(new FloatPrimitive(K.Asin)), minVersion: 7)
        {
            Vjp = ctx => [E(ctx).Div(G(ctx), E(ctx).Sqrt(E(ctx).Sub(ctx.Scalar(1, X(ctx)), E(ctx).Square(X(ctx)))))],
        });
        ops.Add(new OpDefinition("Acos", Unary(new FloatPrimitive(K.Acos)), minVersion: 7)
        {
            Vjp = ctx => [E(ctx).Neg(E(ctx).Div(G(ctx), E(ctx).Sqrt(E(ctx).Sub(ctx.Scalar(1, X(ctx)), E(ctx).Square(X(ctx))))))],
        });
        // Atan: dx = g / (1 + x^2).
        ops.Add(new OpDefinition("Atan", Unary(new FloatPrimitive(K.Atan)), minVersion: 7)
        {
            Vjp = ctx => [E(ctx).Div(G(ctx), E(ctx).Add(ctx.Scalar(1, X(ctx)), E(ctx).Square(X(ctx))))],
        });
        // Sinh: dx = g * cosh(x). Cosh: dx = g * sinh(x).
        ops.Add(new OpDefinition("Sinh", Unary(new FloatPrimitive(K.Sinh)), minVersion: 9) { Vjp = ctx => [E(ctx).Mul(G(ctx), E(ctx).Op("Cosh", X(ctx)))] });
        ops.Add(new OpDefinition("Cosh", Unary(new FloatPrimitive(K.Cosh)), minVersion: 9) { Vjp = ctx => [E(ctx).Mul(G(ctx), E(ctx).Op("Sinh", X(ctx)))] });
        // Tanh: dx = g * (1 - y^2).
        ops.Add(new OpDefinition("Tanh", Unary(new FloatPrimitive(K.Tanh)))
        {
            Vjp = ctx => [E(ctx).Mul(G(ctx), E(ctx).Sub(ctx.Scalar(1, X(ctx)), E(ctx).Square(Y(ctx))))],
        });
        // Asinh: dx = g / sqrt(x^2 + 1). Acosh: dx = g / sqrt(x^2 - 1). Atanh: dx = g / (1 - x^2).
        ops.Add(new OpDefinition("Asinh", Unary(new FloatPrimitive(K.Asinh)), minVersion: 9)
        {
            Vjp = ctx => [E(ctx).Div(G(ctx), E(ctx).Sqrt(E(ctx).Add(E(ctx).Square(X(ctx)), ctx.Scalar(1, X(ctx)))))],
        });
        ops.Add(new OpDefinition("Acosh", Unary(new FloatPrimitive(K.Acosh)), minVersion: 9)
        {
            Vjp = ctx => [E(ctx).Div(G(ctx), E(ctx).Sqrt(E(ctx).Sub(E(ctx).Square(X(ctx)), ctx.Scalar(1, X(ctx)))))],
        });
        ops.Add(new OpDefinition("Atanh", Unary(new FloatPrimitive(K.Atanh)), minVersion: 9)
        {
            Vjp = ctx => [E(ctx).Div(G(ctx), E(ctx).Sub(ctx.Scalar(1, X(ctx)), E(ctx).Square(X(ctx))))],
        });
        // Erf: dx = g * 2/sqrt(pi) * exp(-x^2).
        ops.Add(new OpDefinition("Erf", Unary(new ErfMap()), minVersion: 9)
        {
            Vjp = ctx => [E(ctx).Mul(G(ctx), E(ctx).Mul(ctx.Scalar(2 / Math.Sqrt(Math.PI), X(ctx)), E(ctx).Exp(E(ctx).Neg(E(ctx).Square(X(ctx))))))],
        });
    }

    /// <summary>
    /// cond ? a : b for rules: Where from opset 9; in older graphs (which have no Where) a * m + b * (1 - m) with m the
    /// condition cast to a's type, which agrees wherever a and b are finite.
    /// </summary>
    internal static string Select(GradientContext ctx, string cond, string a, string b)
    {
        var emit = ctx.Emit;
        if (emit.OpsetVersion >= 9) return emit.Where(cond, a, b);
        string m = emit.Cast(cond, ctx.ElementType(a));
        return emit.Add(emit.Mul(a, m), emit.Mul(b, emit.Sub(ctx.Scalar(1, a), m)));
    }

    /// <summary>sign(x) for rules: Sign from opset 9, else [x &gt; 0] - [x &lt; 0].</summary>
    internal static string SignOf(GradientContext ctx, string x)
    {
        var emit = ctx.Emit;
        if (emit.OpsetVersion >= 9) return emit.Sign(x);
        var type = ctx.ElementType(x);
        string zero = ctx.Scalar(0, x);
        return emit.Sub(emit.Cast(emit.Greater(x, zero), type), emit.Cast(emit.Less(x, zero), type));
    }

    /// <summary>No gradient flows (a symbolic zero): for ops whose derivative is zero almost everywhere.</summary>
    private static string?[] ZeroGradient(GradientContext ctx) => [null];

    // Shorthands for one-line rules of single-input, single-output ops.
    internal static GraphEmitter E(GradientContext ctx) => ctx.Emit;
    internal static string G(GradientContext ctx) => ctx.OutputGrad(0)!;
    internal static string X(GradientContext ctx) => ctx.Input(0);
    internal static string Y(GradientContext ctx) => ctx.Output(0);
}
