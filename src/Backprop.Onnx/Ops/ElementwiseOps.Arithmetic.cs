using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using static Backprop.Onnx.Ops.Elementwise;

namespace Backprop.Onnx.Ops;

internal static partial class ElementwiseOps
{
    /// <summary>Add, Sub, Mul, Div (versions 1, 6, 7, 13, 14), Pow (1, 7, 12, 13, 15), Mod (10, 13); Max, Min, Sum, Mean.</summary>
    private static void RegisterArithmetic(List<OpDefinition> ops)
    {
        // Add: dA = g, dB = g (derivatives.yaml: add).
        ops.Add(new OpDefinition("Add", Binary<AddOp>())
        {
            Broadcasting = true,
            Vjp = ctx => [ctx.NeedsGrad(0) ? G(ctx) : null, ctx.NeedsGrad(1) ? LegacyUnbroadcastB(ctx, G(ctx)) : null],
        });
        // Sub: dA = g, dB = -g (derivatives.yaml: sub).
        ops.Add(new OpDefinition("Sub", Binary<SubOp>())
        {
            Broadcasting = true,
            Vjp = ctx => [ctx.NeedsGrad(0) ? G(ctx) : null, ctx.NeedsGrad(1) ? LegacyUnbroadcastB(ctx, ctx.Emit.Neg(G(ctx))) : null],
        });
        // Mul: dA = g * B, dB = g * A (derivatives.yaml: mul).
        ops.Add(new OpDefinition("Mul", Binary<MulOp>())
        {
            Broadcasting = true,
            Vjp = ctx => [
                ctx.NeedsGrad(0) ? ctx.Emit.Mul(G(ctx), LegacyAlignedB(ctx)) : null,
                ctx.NeedsGrad(1) ? LegacyUnbroadcastB(ctx, ctx.Emit.Mul(G(ctx), ctx.Input(0))) : null,
            ],
        });
        // Div: dA = g / B, dB = -g * A / B^2 = -(g / B) * Y (derivatives.yaml: div).
        ops.Add(new OpDefinition("Div", Binary<DivOp>())
        {
            Broadcasting = true,
            Vjp = ctx =>
            {
                string gOverB = ctx.Emit.Div(G(ctx), LegacyAlignedB(ctx));
                return [ctx.NeedsGrad(0) ? gOverB : null, ctx.NeedsGrad(1) ? LegacyUnbroadcastB(ctx, ctx.Emit.Neg(ctx.Emit.Mul(gOverB, Y(ctx)))) : null];
            },
        });
        ops.Add(new OpDefinition("Pow", op =>
        {
            RequireTypes(op, 0, NumericTypes);
            RequireTypes(op, 1, NumericTypes);
            return new PowKernel(LegacyBroadcast.Of(op));
        }) { Broadcasting = true, Vjp = PowVjp });
        // Mod: fmod=1 is C fmod (sign of the dividend); fmod=0 is numpy.mod (sign of the divisor), as the reference does.
        ops.Add(new OpDefinition("Mod", op =>
        {
            RequireTypes(op, 0, NumericTypes);
            RequireTypes(op, 1, NumericTypes);
            long fmod = op.Node.GetInt("fmod", 0);
            if (fmod is not (0 or 1)) throw op.Unsupported($"fmod={fmod} (must be 0 or 1)");
            return fmod == 1 ? new BinaryKernel<FmodOp>() : new BinaryKernel<FloorModOp>();
        }, minVersion: 10) { Broadcasting = true, Vjp = ModVjp });
        ops.Add(new OpDefinition("Max", Variadic<MaxOp>(false, NumericTypes)) { Broadcasting = true, Vjp = MaxMinVjp });
        ops.Add(new OpDefinition("Min", Variadic<MinOp>(false, NumericTypes)) { Broadcasting = true, Vjp = MaxMinVjp });
        // Sum: every input's cotangent is g. Mean: g / n.
        ops.Add(new OpDefinition("Sum", Variadic<AddOp>(false, FloatTypes))
        {
            Broadcasting = true,
            Vjp = ctx => [.. Enumerable.Range(0, ctx.InputCount).Select(i => ctx.NeedsGrad(i) ? G(ctx) : null)],
        });
        ops.Add(new OpDefinition("Mean", Variadic<AddOp>(true, FloatTypes))
        {
            Broadcasting = true,
            Vjp = ctx =>
            {
                int n = Enumerable.Range(0, ctx.InputCount).Count(ctx.HasInput);
                string share = n == 1 ? G(ctx) : ctx.Emit.Div(G(ctx), ctx.Scalar(n, Y(ctx)));
                return [.. Enumerable.Range(0, ctx.InputCount).Select(i => ctx.NeedsGrad(i) ? share : null)];
            },
        });
    }

    /// <summary>
    /// Pow: dX = g * E * X^(E-1), zero where E = 0; dE = g * Y * ln(X), zero where X = 0 and E &gt;= 0
    /// (derivatives.yaml: pow.Tensor_Tensor, pow_backward_self and pow_backward_exponent). An integer exponent is cast to
    /// X's type; it takes no gradient itself.
    /// </summary>
    private static string?[] PowVjp(GradientContext ctx)
    {
        var emit = ctx.Emit;
        string x = ctx.Input(0), e = LegacyAlignedB(ctx), g = G(ctx);
        string? dx = null, de = null;
        if (ctx.NeedsGrad(0))
        {
            string ex = ctx.ElementType(e) == ctx.ElementType(x) ? e : emit.Cast(e, ctx.ElementType(x));
            string zero = ctx.Scalar(0, x);
            string slope = emit.Mul(ex, emit.Op("Pow", x, emit.Sub(ex, ctx.Scalar(1, x))));
            dx = Select(ctx, emit.Equal(ex, zero), zero, emit.Mul(g, slope));
        }
        if (ctx.NeedsGrad(1))
        {
            string zero = ctx.Scalar(0, x);
            string atZero = emit.And(emit.Equal(x, zero), emit.GreaterOrEqual(e, ctx.Scalar(0, e)));
            de = Select(ctx, atZero, zero, emit.Mul(g, emit.Mul(Y(ctx), emit.Log(x))));
            if (ctx.ElementType(e) != ctx.ElementType(x)) de = emit.Cast(de, ctx.ElementType(e));
            de = LegacyUnbroadcastB(ctx, de);
        }
        return [dx, de];
    }

    /// <summary>
    /// Mod: dA = g; dB = -g * q with q = trunc(A / B) for fmod=1 and floor(A / B) for fmod=0 (derivatives.yaml: fmod and
    /// remainder). The derivative does not exist where the quotient jumps.
    /// </summary>
    private static string?[] ModVjp(GradientContext ctx)
    {
        var emit = ctx.Emit;
        string? db = null;
        if (ctx.NeedsGrad(1))
        {
            string q = emit.Div(ctx.Input(0), ctx.Input(1));
            string whole = ctx.Node.GetInt("fmod", 0) == 1 ? emit.Mul(emit.Sign(q), emit.Op("Floor", emit.Abs(q))) : emit.Op("Floor", q);
            db = emit.Neg(emit.Mul(G(ctx), whole));
        }
        return [ctx.NeedsGrad(0) ? G(ctx) : null, db];
    }

    /// <summary>
    /// Max, Min: the cotangent goes to the inputs equal to the result, split equally among ties: dX_i = g * [X_i == Y] / #ties
    /// (derivatives.yaml: maximum and minimum give grad / 2 to each of two equal inputs).
    /// </summary>
    private static string?[] MaxMinVjp(GradientContext ctx)
    {
        var present = Enumerable.Range(0, ctx.InputCount).Where(ctx.HasInput).ToList();
        if (present.Count == 1) return [.. Enumerable.Range(0, ctx.InputCount).Select(i => ctx.NeedsGrad(i) ? G(ctx) : null)];
        var emit = ctx.Emit;
        var type = ctx.ElementType(Y(ctx));
        var masks = present.ToDictionary(i => i, i => emit.Cast(emit.Equal(ctx.Input(i), Y(ctx)), type));
        string ties = emit.Op("Sum", [.. masks.Values]);
        string share = emit.Div(G(ctx), ties);
        return [.. Enumerable.Range(0, ctx.InputCount).Select(i => ctx.NeedsGrad(i) ? emit.Mul(share, masks[i]) : null)];
    }

    /// <summary>
    /// Before opset 7, B may be broadcast from an <c>axis</c> with implied trailing dimensions of 1, which trailing
    /// alignment (the backward nodes' and the pass's) cannot express. Null unless the node does that; else A's rank, the
    /// axis and B's rank.
    /// </summary>
    private static (int RankA, int Axis, int RankB)? LegacyAxisLayout(GradientContext ctx)
    {
        if (ctx.OpsetVersion >= 7 || ctx.Node.GetInt("broadcast", 0) == 0 || ctx.Node.FindAttribute("axis") is not { } axisAttribute) return null;
        int? rankA = ctx.Rank(ctx.Input(0)), rankB = ctx.Rank(ctx.Input(1));
        if (rankA is not int ra || rankB is not int rb) throw ctx.Unsupported("broadcast with an axis (before opset 7) needs the static ranks of A and B");
        int axis = (int)(axisAttribute.Int < 0 ? axisAttribute.Int + ra : axisAttribute.Int);
        return ra - axis - rb > 0 ? (ra, axis, rb) : null;
    }

    /// <summary>B as the rule should combine it with A-shaped values: with the implied trailing 1s of a legacy axis made explicit.</summary>
    internal static string LegacyAlignedB(GradientContext ctx) => LegacyAxisLayout(ctx) is (int ra, int axis, int rb)
        ? ctx.Emit.Unsqueeze(ctx.Input(1), [.. Enumerable.Range(rb, ra - axis - rb).Select(d => (long)d)])
        : ctx.Input(1);

    /// <summary>B's cotangent summed over the leading and implied trailing axes of a legacy axis broadcast (the pass then reduces B's own size-1 dimensions).</summary>
    internal static string LegacyUnbroadcastB(GradientContext ctx, string grad)
    {
        if (LegacyAxisLayout(ctx) is not (int ra, int axis, int rb)) return grad;
        long[] axes = [.. Enumerable.Range(0, ra).Where(d => d < axis || d >= axis + rb).Select(d => (long)d)];
        return ctx.Emit.ReduceSum(grad, axes, keepdims: false);
    }

    private static KernelFactory Binary<TOp>() where TOp : IBinaryOp => op =>
    {
        RequireTypes(op, 0, NumericTypes);
        RequireTypes(op, 1, NumericTypes);
        return new BinaryKernel<TOp>(LegacyBroadcast.Of(op));
    };

    private static KernelFactory Variadic<TOp>(bool mean, DataType[] types) where TOp : IBinaryOp => op =>
    {
        for (int i = 0; i < op.Node.Inputs.Count; i++) RequireTypes(op, i, types);
        return new VariadicKernel<TOp>(mean);
    };
}
