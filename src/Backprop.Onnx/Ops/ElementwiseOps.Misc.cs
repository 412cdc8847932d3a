using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using static Backprop.Onnx.Ops.Elementwise;

namespace Backprop.Onnx.Ops;

internal static partial class ElementwiseOps
{
    /// <summary>Comparisons (Equal, Greater, Less, GreaterOrEqual, LessOrEqual), logic (And, Or, Xor, Not), IsNaN, IsInf: bool outputs, no gradient.</summary>
    private static void RegisterLogic(List<OpDefinition> ops)
    {
        var toBool = TypeInferencePass.Fixed(DataType.Bool);
        ops.Add(new OpDefinition("Equal", Compare<EqualOp>([.. NumericTypes, DataType.Bool])) { InferTypes = toBool, NonDifferentiable = true });
        ops.Add(new OpDefinition("Greater", Compare<GreaterOp>(NumericTypes)) { InferTypes = toBool, NonDifferentiable = true });
        ops.Add(new OpDefinition("Less", Compare<LessOp>(NumericTypes)) { InferTypes = toBool, NonDifferentiable = true });
        ops.Add(new OpDefinition("GreaterOrEqual", Compare<GreaterOrEqualOp>(NumericTypes), minVersion: 12) { InferTypes = toBool, NonDifferentiable = true });
        ops.Add(new OpDefinition("LessOrEqual", Compare<LessOrEqualOp>(NumericTypes), minVersion: 12) { InferTypes = toBool, NonDifferentiable = true });
        ops.Add(new OpDefinition("And", Logic<AndOp>()) { InferTypes = toBool, NonDifferentiable = true });
        ops.Add(new OpDefinition("Or", Logic<OrOp>()) { InferTypes = toBool, NonDifferentiable = true });
        ops.Add(new OpDefinition("Xor", Logic<XorOp>()) { InferTypes = toBool, NonDifferentiable = true });
        ops.Add(new OpDefinition("Not", op =>
        {
            RequireTypes(op, 0, [DataType.Bool]);
            return new LambdaKernel(Predicates.Not);
        }) { InferTypes = toBool, NonDifferentiable = true });
        ops.Add(new OpDefinition("IsNaN", op =>
        {
            RequireTypes(op, 0, FloatTypes);
            return Predicates.FloatTest(double.IsNaN);
        }, minVersion: 9) { InferTypes = toBool, NonDifferentiable = true });
        // IsInf (version 10): detect_negative and detect_positive (default 1) choose which infinities count.
        ops.Add(new OpDefinition("IsInf", op =>
        {
            RequireTypes(op, 0, FloatTypes);
            bool negative = op.Node.GetInt("detect_negative", 1) != 0, positive = op.Node.GetInt("detect_positive", 1) != 0;
            return Predicates.FloatTest(v => (positive && double.IsPositiveInfinity(v)) || (negative && double.IsNegativeInfinity(v)));
        }, minVersion: 10) { InferTypes = toBool, NonDifferentiable = true });
        ops.Add(new OpDefinition("BitShift", BitShiftKernel.Create, minVersion: 11) { NonDifferentiable = true });
    }

    /// <summary>Cast, CastLike, Where, Clip.</summary>
    private static void RegisterOthers(List<OpDefinition> ops)
    {
        // Cast: dx = g cast back to x's type (derivatives.yaml: _to_copy). Only float-to-float casts carry a gradient:
        // the pass stops at integer and bool values.
        ops.Add(new OpDefinition("Cast", op =>
        {
            var to = CastKernels.Target(op);
            CastKernels.Check(op, op.InputType(0), to);
            return new LambdaKernel(ctx => ctx.SetOutput(0, CastKernels.Cast(ctx, ctx.RequiredInput(0), to)));
        })
        {
            InferTypes = op => [CastKernels.Target(op)],
            Vjp = ctx => [CastBack(ctx)],
        });
        // CastLike (version 15): Cast to the element type of the second input; its gradient is Cast's, none to the second input.
        ops.Add(new OpDefinition("CastLike", op =>
        {
            CastKernels.Check(op, op.InputType(0), op.InputType(1));
            return new LambdaKernel(ctx => ctx.SetOutput(0, CastKernels.Cast(ctx, ctx.RequiredInput(0), ctx.RequiredInput(1).ElementType)));
        }, minVersion: 15)
        {
            InferTypes = op => [op.InputType(1)],
            DifferentiableInputs = [0],
            Vjp = ctx => [CastBack(ctx), null],
        });
        // Where: dX = where(c, g, 0), dY = where(c, 0, g) (derivatives.yaml: where.self).
        ops.Add(new OpDefinition("Where", _ => new WhereKernel(), minVersion: 9)
        {
            InferTypes = op => [op.InputType(1) != DataType.Undefined ? op.InputType(1) : op.InputType(2)],
            Broadcasting = true,
            Vjp = ctx =>
            {
                string zero = ctx.Scalar(0, Y(ctx));
                return [null, ctx.NeedsGrad(1) ? Select(ctx, X(ctx), G(ctx), zero) : null, ctx.NeedsGrad(2) ? Select(ctx, X(ctx), zero, G(ctx)) : null];
            },
        });
        ops.Add(new OpDefinition("Clip", ClipKernel.Create) { Broadcasting = true, Vjp = ClipVjp });
    }

    private static string CastBack(GradientContext ctx)
    {
        var type = ctx.ElementType(X(ctx));
        return type == ctx.ElementType(Y(ctx)) ? G(ctx) : ctx.Emit.Cast(G(ctx), type);
    }

    /// <summary>
    /// Clip: dx = g where min &lt;= x &lt;= max (the gradient passes at the bounds), else 0; from version 11 the bounds
    /// are inputs: dmin = g where x &lt; min (and min &lt; max), dmax = g where x &gt; max (or max &lt; min), summed to
    /// their scalar shape by the pass (derivatives.yaml: clamp.Tensor, clamp_backward and clamp_backward_min_max).
    /// </summary>
    private static string?[] ClipVjp(GradientContext ctx)
    {
        var emit = ctx.Emit;
        string x = X(ctx), g = G(ctx), zero = ctx.Scalar(0, x);
        string? min = null, max = null;
        if (ctx.OpsetVersion >= 11)
        {
            if (ctx.HasInput(1)) min = ctx.Input(1);
            if (ctx.HasInput(2)) max = ctx.Input(2);
        }
        else
        {
            double? fallback = ctx.OpsetVersion >= 6 ? float.MaxValue : null;
            double? lo = ctx.Node.FindAttribute("min") is { } a ? a.Float : -fallback;
            double? hi = ctx.Node.FindAttribute("max") is { } b ? b.Float : fallback;
            if (lo is double l) min = ctx.Scalar(l, x);
            if (hi is double h) max = ctx.Scalar(h, x);
        }
        string? inside = min is null ? null : emit.GreaterOrEqual(x, min);
        if (max is not null) inside = inside is null ? emit.LessOrEqual(x, max) : emit.And(inside, emit.LessOrEqual(x, max));
        string dx = inside is null ? g : Select(ctx, inside, g, zero);
        string? dmin = null, dmax = null;
        if (ctx.NeedsGrad(1) && min is not null)
        {
            string below = emit.Less(x, min);
            if (max is not null) below = emit.And(below, emit.Less(min, max));
            dmin = Select(ctx, below, g, zero);
        }
        if (ctx.NeedsGrad(2) && max is not null)
        {
            string above = emit.Greater(x, max);
            if (min is not null) above = emit.Op("Or", above, emit.Less(max, min));
            dmax = Select(ctx, above, g, zero);
        }
        return [ctx.NeedsGrad(0) ? dx : null, dmin, dmax];
    }

    private static KernelFactory Compare<TOp>(DataType[] types) where TOp : ICompareOp => op =>
    {
        RequireTypes(op, 0, types);
        RequireTypes(op, 1, types);
        return new CompareKernel<TOp>(LegacyBroadcast.Of(op));
    };

    private static KernelFactory Logic<TOp>() where TOp : ILogicOp => op =>
    {
        RequireTypes(op, 0, [DataType.Bool]);
        RequireTypes(op, 1, [DataType.Bool]);
        return new LogicKernel<TOp>(LegacyBroadcast.Of(op));
    };
}
