using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using static Backprop.Onnx.Ops.Elementwise;
using K = Backprop.Onnx.Ops.FloatPrimitive.Kind;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Elementwise math, comparison, logic, selection and cast ops (ONNX operator spec, sections of the same names). Binary
/// ops broadcast multidirectionally (ONNX docs/Broadcasting.md), or by the <c>broadcast</c>/<c>axis</c> attributes below
/// opset 7 (<see cref="LegacyBroadcast"/>). Kernels cover float, double and float16, and the integer and bool types the
/// spec allows for each op.
/// </summary>
internal static partial class ElementwiseOps
{
    public static void Register(List<OpDefinition> ops)
    {
        RegisterUnary(ops);
        RegisterBinary(ops);
        RegisterLogic(ops);
        RegisterOthers(ops);
    }

    /// <summary>Unary math: Abs, Neg, Sign, Exp, Log, Sqrt, Reciprocal, the trigonometric and hyperbolic functions and their inverses, Ceil, Floor, Round, Erf.</summary>
    private static void RegisterUnary(List<OpDefinition> ops)
    {
        ops.Add(new OpDefinition("Abs", Unary(new AbsMap())));
        ops.Add(new OpDefinition("Neg", Unary(new NegMap())));
        ops.Add(new OpDefinition("Sign", Unary(new SignMap()), minVersion: 9));
        ops.Add(new OpDefinition("Exp", Unary(new FloatPrimitive(K.Exp))));
        ops.Add(new OpDefinition("Log", Unary(new FloatPrimitive(K.Log))));
        ops.Add(new OpDefinition("Sqrt", Unary(new FloatPrimitive(K.Sqrt))));
        ops.Add(new OpDefinition("Reciprocal", Unary(new FloatPrimitive(K.Reciprocal))));
        ops.Add(new OpDefinition("Sin", Unary(new FloatPrimitive(K.Sin)), minVersion: 7));
        ops.Add(new OpDefinition("Cos", Unary(new FloatPrimitive(K.Cos)), minVersion: 7));
        ops.Add(new OpDefinition("Tan", Unary(new FloatPrimitive(K.Tan)), minVersion: 7));
        ops.Add(new OpDefinition("Asin", Unary(new FloatPrimitive(K.Asin)), minVersion: 7));
        ops.Add(new OpDefinition("Acos", Unary(new FloatPrimitive(K.Acos)), minVersion: 7));
        ops.Add(new OpDefinition("Atan", Unary(new FloatPrimitive(K.Atan)), minVersion: 7));
        ops.Add(new OpDefinition("Sinh", Unary(new FloatPrimitive(K.Sinh)), minVersion: 9));
        ops.Add(new OpDefinition("Cosh", Unary(new FloatPrimitive(K.Cosh)), minVersion: 9));
        ops.Add(new OpDefinition("Tanh", Unary(new FloatPrimitive(K.Tanh))));
        ops.Add(new OpDefinition("Asinh", Unary(new FloatPrimitive(K.Asinh)), minVersion: 9));
        ops.Add(new OpDefinition("Acosh", Unary(new FloatPrimitive(K.Acosh)), minVersion: 9));
        ops.Add(new OpDefinition("Atanh", Unary(new FloatPrimitive(K.Atanh)), minVersion: 9));
        ops.Add(new OpDefinition("Ceil", Unary(new FloatPrimitive(K.Ceil))));
        ops.Add(new OpDefinition("Floor", Unary(new FloatPrimitive(K.Floor))));
        // Round (version 11): half to even, as numpy.round.
        ops.Add(new OpDefinition("Round", Unary(new FloatPrimitive(K.Round)), minVersion: 11));
        ops.Add(new OpDefinition("Erf", Unary(new ErfMap()), minVersion: 9));
    }

    /// <summary>Arithmetic: Add, Sub, Mul, Div (versions 1, 6, 7, 13, 14), Pow (1, 7, 12, 13, 15), Mod (10, 13); Max, Min, Sum, Mean.</summary>
    private static void RegisterBinary(List<OpDefinition> ops)
    {
        ops.Add(new OpDefinition("Add", Binary<AddOp>()));
        ops.Add(new OpDefinition("Sub", Binary<SubOp>()));
        ops.Add(new OpDefinition("Mul", Binary<MulOp>()));
        ops.Add(new OpDefinition("Div", Binary<DivOp>()));
        ops.Add(new OpDefinition("Pow", op =>
        {
            RequireTypes(op, 0, NumericTypes);
            RequireTypes(op, 1, NumericTypes);
            return new PowKernel(LegacyBroadcast.Of(op));
        }));
        // Mod: fmod=1 is C fmod (sign of the dividend); fmod=0 is numpy.mod (sign of the divisor), as the reference does.
        ops.Add(new OpDefinition("Mod", op =>
        {
            RequireTypes(op, 0, NumericTypes);
            RequireTypes(op, 1, NumericTypes);
            long fmod = op.Node.GetInt("fmod", 0);
            if (fmod is not (0 or 1)) throw op.Unsupported($"fmod={fmod} (must be 0 or 1)");
            return fmod == 1 ? new BinaryKernel<FmodOp>() : new BinaryKernel<FloorModOp>();
        }, minVersion: 10));
        ops.Add(new OpDefinition("Max", Variadic<MaxOp>(false, NumericTypes)));
        ops.Add(new OpDefinition("Min", Variadic<MinOp>(false, NumericTypes)));
        ops.Add(new OpDefinition("Sum", Variadic<AddOp>(false, FloatTypes)));
        ops.Add(new OpDefinition("Mean", Variadic<AddOp>(true, FloatTypes)));
    }

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
    }

    /// <summary>Cast, CastLike, Where, Clip.</summary>
    private static void RegisterOthers(List<OpDefinition> ops)
    {
        ops.Add(new OpDefinition("Cast", op =>
        {
            var to = CastKernels.Target(op);
            CastKernels.Check(op, op.InputType(0), to);
            return new LambdaKernel(ctx => ctx.SetOutput(0, CastKernels.Cast(ctx, ctx.RequiredInput(0), to)));
        }) { InferTypes = op => [CastKernels.Target(op)] });
        // CastLike (version 15): Cast to the element type of the second input.
        ops.Add(new OpDefinition("CastLike", op =>
        {
            CastKernels.Check(op, op.InputType(0), op.InputType(1));
            return new LambdaKernel(ctx => ctx.SetOutput(0, CastKernels.Cast(ctx, ctx.RequiredInput(0), ctx.RequiredInput(1).ElementType)));
        }, minVersion: 15) { InferTypes = op => [op.InputType(1)] });
        ops.Add(new OpDefinition("Where", _ => new WhereKernel(), minVersion: 9)
        {
            InferTypes = op => [op.InputType(1) != DataType.Undefined ? op.InputType(1) : op.InputType(2)],
        });
        ops.Add(new OpDefinition("Clip", ClipKernel.Create));
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
