using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Dropout (ONNX spec "Dropout", versions 1, 6, 7, 10, 12, 13), registered by <see cref="NormalizationOps"/>.
/// Inference mode: output = data, mask all true. Training mode: mask = (u ≥ ratio) with u uniform in [0, 1) from the
/// run's seeded random source, output = data · mask / (1 - ratio).
/// </summary>
internal static class DropoutOps
{
    public static OpDefinition Definition() => new("Dropout", Create)
    {
        // Before opset 10 the mask has the data's type; from 10 it is bool.
        InferTypes = op => op.Node.Outputs.Count > 1
            ? [op.InputType(0), op.OpsetVersion >= 10 ? DataType.Bool : op.InputType(0)]
            : [op.InputType(0)],
        DifferentiableInputs = [0],
        Vjp = DropoutVjp,
    };

    /// <summary>
    /// Dropout VJP: dX = dY in inference mode; dY ⊙ mask / (1 - ratio) in training mode (PyTorch derivatives.yaml:
    /// native_dropout → native_dropout_backward). The mode is decided at run time exactly as the forward kernel decides it,
    /// so the rule emits DropoutGrad(dY, mask, ratio, training_mode) with the forward's ratio and is_test attributes.
    /// Standard-op body: <see cref="GradStandard"/>.
    /// </summary>
    private static readonly Autodiff.VjpRule DropoutVjp = ctx =>
    {
        var attrs = new List<OnnxAttribute>();
        foreach (var name in new[] { "ratio", "is_test" }) if (ctx.Node.FindAttribute(name) is { } a) attrs.Add(a);
        bool inputs = ctx.OpsetVersion >= 12;
        string mask = ctx.Output(1);
        attrs.Add(ReductionOps.DTypeAttribute(ctx, ctx.Input(0)));
        return [ctx.Emit.Custom("DropoutGrad", [ctx.OutputGrad(0)!, mask, inputs && ctx.HasInput(1) ? ctx.Input(1) : "", inputs && ctx.HasInput(2) ? ctx.Input(2) : ""], [.. attrs])];
    };

    /// <summary>
    /// DropoutGrad in standard ops: Where(training_mode, dY·Cast(mask)/(1 − ratio), dY). Without a training_mode input a
    /// standard runtime runs Dropout in inference mode (the ONNX default), so the form is Identity(dY) there.
    /// </summary>
    private static string[] GradStandard(Autodiff.GraphEmitter e, Node node)
    {
        string dy = node.Inputs[0], mask = node.InputOrEmpty(1), ratio = node.InputOrEmpty(2), mode = node.InputOrEmpty(3);
        if (mode.Length == 0) return [e.Op("Identity", dy)];
        if (mask.Length == 0)
            throw new UnsupportedOperatorException(node.OpType, node.Domain, 1, node.Name, "a training-mode dropout gradient needs the forward node's mask output");
        var type = ReductionOps.DType(node);
        string one = e.Scalar(1, type);
        string r = ratio.Length > 0 ? e.Cast(ratio, type) : e.Scalar(node.GetFloat("ratio", 0.5f), type);
        string trained = e.Mul(e.Mul(dy, e.Cast(mask, type)), e.Div(one, e.Sub(one, r)));
        return [e.Where(mode, trained, dy)];
    }

    /// <summary>DropoutGrad(dY, mask?, ratio?, training_mode?) with attributes ratio and is_test → dX.</summary>
    public static OpDefinition GradDefinition() => new("DropoutGrad", CreateGrad, OpRegistry.BackpropDomain)
    {
        InferTypes = op => [op.InputType(0)],
        StandardOps = GradStandard,
    };

    private static Kernel CreateGrad(OpContext op)
    {
        double ratioAttribute = op.Node.GetFloat("ratio", 0.5f);
        bool isTest = op.Node.GetInt("is_test", 0) != 0;
        return new LambdaKernel(ctx =>
        {
            var dy = ctx.RequiredInput(0);
            double ratio = ctx.Input(2) is { } r ? r.GetDouble(0) : ratioAttribute;
            bool training = IsTraining(ctx, ctx.Input(3), isTest);
            if (!training || ratio == 0) { ctx.SetOutput(0, dy); return; }
            var mask = ctx.Input(1) ?? throw op.Unsupported("the gradient of training-mode dropout needs the forward node's mask output; give the Dropout node a second output");
            if (mask.ElementCount != dy.ElementCount) throw ctx.Invalid("mask and dY differ in size");
            var dx = ctx.Allocate(dy.ElementType, dy.Shape);
            double scale = 1 / (1 - ratio);
            switch (dy.ElementType)
            {
                case DataType.Float: MaskedScale(dy.AsSpan<float>(), mask, dx.AsSpan<float>(), (float)scale); break;
                case DataType.Double: MaskedScale(dy.AsSpan<double>(), mask, dx.AsSpan<double>(), scale); break;
                default: throw op.Unsupported($"dropout gradient of {DataTypes.OnnxName(dy.ElementType)}");
            }
            ctx.SetOutput(0, dx);
        });
    }

    /// <summary>
    /// Whether Dropout (and its gradient) runs in training mode at this call: the training_mode input (opset 12+) when
    /// present; else inference if is_test=1 (before opset 7); else <see cref="ExecutionOptions.TrainingMode"/>.
    /// </summary>
    internal static bool IsTraining(KernelContext ctx, OnnxTensor? trainingMode, bool isTest)
    {
        if (trainingMode is not null)
        {
            if (trainingMode.ElementType != DataType.Bool || trainingMode.ElementCount != 1) throw ctx.Invalid("training_mode must be a bool scalar");
            return trainingMode.AsSpan<bool>()[0];
        }
        return !isTest && ctx.Options.TrainingMode;
    }

    private static Kernel Create(OpContext op)
    {
        long v = op.OpsetVersion;
        float ratioAttribute = op.Node.GetFloat("ratio", 0.5f);
        if (v >= 12 && op.Node.HasAttribute("ratio")) throw op.Unsupported("'ratio' is an input from opset 12, not an attribute");
        bool hasSeed = op.Node.HasAttribute("seed");
        bool isTest = v < 7 && op.Node.GetInt("is_test", 0) != 0;
        var maskType = v >= 10 ? DataType.Bool : op.InputType(0);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            double ratio = ratioAttribute;
            if (v >= 12 && ctx.Input(1) is { } r)
            {
                if (r.ElementCount != 1 || !DataTypes.IsFloatingPoint(r.ElementType)) throw ctx.Invalid("ratio must be a floating-point scalar");
                ratio = r.GetDouble(0);
            }
            bool training = IsTraining(ctx, v >= 12 ? ctx.Input(2) : null, isTest);
            if (!training || ratio == 0)
            {
                ctx.SetOutput(0, x);
                if (ctx.IsOutputUsed(1)) ctx.SetOutput(1, Ones(ctx, v >= 10 ? DataType.Bool : x.ElementType, x.Dims));
                return;
            }
            if (!(ratio > 0 && ratio < 1)) throw ctx.Invalid($"ratio {ratio} is outside [0, 1)");
            // A seed asks for one particular random stream (the backend tests expect NumPy's); ours is not that one,
            // so rather than give results that only look right we refuse.
            if (hasSeed) throw op.Unsupported("training-mode dropout with a 'seed' attribute (the random stream of another runtime cannot be reproduced)");
            if (x.ElementType is not (DataType.Float or DataType.Double or DataType.Float16))
                throw op.Unsupported($"training-mode dropout of {DataTypes.OnnxName(x.ElementType)}");
            // The keep flags live in rented scratch (returned below), so a training step allocates no mask-sized array.
            int n = checked((int)x.ElementCount);
            var rented = System.Buffers.ArrayPool<bool>.Shared.Rent(n);
            try
            {
                var keep = rented.AsSpan(0, n);
                var random = ctx.Random;
                for (int i = 0; i < keep.Length; i++) keep[i] = random.NextDouble() >= ratio;
                double scale = 1 / (1 - ratio);
                var y = ctx.AllocateUninitialized(x.ElementType, x.Shape);
                switch (x.ElementType)
                {
                    case DataType.Float: Apply(x.AsSpan<float>(), y.AsSpan<float>(), keep, (float)scale); break;
                    case DataType.Double: Apply(x.AsSpan<double>(), y.AsSpan<double>(), keep, scale); break;
                    default: Apply(x.AsSpan<Half>(), y.AsSpan<Half>(), keep, (Half)scale); break;
                }
                ctx.SetOutput(0, y);
                if (ctx.IsOutputUsed(1)) ctx.SetOutput(1, Mask(ctx, keep, maskType == DataType.Bool ? DataType.Bool : x.ElementType, x.Dims));
            }
            finally
            {
                System.Buffers.ArrayPool<bool>.Shared.Return(rented);
            }
        });
    }

    private static void MaskedScale<T>(ReadOnlySpan<T> dy, OnnxTensor mask, Span<T> dx, T scale) where T : System.Numerics.INumber<T>
    {
        if (mask.ElementType == DataType.Bool)
        {
            var m = mask.AsSpan<bool>();
            for (int i = 0; i < dx.Length; i++) dx[i] = m[i] ? dy[i] * scale : T.Zero;
            return;
        }
        for (int i = 0; i < dx.Length; i++) dx[i] = mask.GetDouble(i) != 0 ? dy[i] * scale : T.Zero;
    }

    private static void Apply<T>(ReadOnlySpan<T> x, Span<T> y, ReadOnlySpan<bool> keep, T scale) where T : System.Numerics.INumber<T>
    {
        for (int i = 0; i < y.Length; i++) y[i] = keep[i] ? x[i] * scale : T.Zero;
    }

    private static void Fill<T>(Span<T> m, ReadOnlySpan<bool> keep) where T : System.Numerics.INumber<T>
    {
        for (int i = 0; i < m.Length; i++) m[i] = keep[i] ? T.One : T.Zero;
    }

    private static OnnxTensor Ones(KernelContext ctx, DataType type, int[] shape)
    {
        var m = ctx.AllocateUninitialized(type, shape);
        switch (type)
        {
            case DataType.Bool: m.AsSpan<bool>().Fill(true); break;
            case DataType.Float: m.AsSpan<float>().Fill(1f); break;
            case DataType.Double: m.AsSpan<double>().Fill(1.0); break;
            case DataType.Float16: m.AsSpan<Half>().Fill(Half.One); break;
            default: throw ctx.Invalid($"no dropout mask of type {DataTypes.OnnxName(type)}");
        }
        return m;
    }

    private static OnnxTensor Mask(KernelContext ctx, ReadOnlySpan<bool> keep, DataType type, int[] shape)
    {
        var m = ctx.AllocateUninitialized(type, shape);
        switch (type)
        {
            case DataType.Bool: keep.CopyTo(m.AsSpan<bool>()); break;
            case DataType.Float: Fill(m.AsSpan<float>(), keep); break;
            case DataType.Double: Fill(m.AsSpan<double>(), keep); break;
            case DataType.Float16: Fill(m.AsSpan<Half>(), keep); break;
            default: throw ctx.Invalid($"no dropout mask of type {DataTypes.OnnxName(type)}");
        }
        return m;
    }
}
