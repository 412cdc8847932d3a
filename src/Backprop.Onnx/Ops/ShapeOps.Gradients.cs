using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Gradient kernels of our own domain (<see cref="OpRegistry.BackpropDomain"/>) for the shape ops whose VJP has no
/// practical composite of standard ops, and small helpers the shape-op rules share.
/// </summary>
internal static partial class ShapeOps
{
    private static void RegisterGradientKernels(List<OpDefinition> ops)
    {
        RegisterSliceGrad(ops);

        // PadGrad(dY, shape, pads, axes?) with attribute mode: the adjoint of Pad: each element of dY is added to the
        // input element it was copied from (edge and reflect copy one input element to several outputs; constant
        // padding takes no gradient). Standard ops (export): Pad(dY, -pads) for constant mode; for reflect and edge a
        // scatter-add of dY at Pad(flat indices of the input).
        ops.Add(new OpDefinition("PadGrad", op =>
        {
            string mode = op.Node.GetString("mode", "constant");
            if (mode is not ("constant" or "reflect" or "edge")) throw op.Unsupported($"mode '{mode}'");
            NumericDispatch.Require(op, 0, "PadGrad");
            return new LambdaKernel(ctx =>
            {
                var dy = ctx.RequiredInput(0);
                var dims = OpArgs.Dims(ctx, OpArgs.Int64s(ctx, ctx.RequiredInput(1), "shape"), "shape");
                var (outShape, tables) = PadTables(ctx, dims, OpArgs.Int64s(ctx, ctx.RequiredInput(2), "pads"), OpArgs.OptionalInt64s(ctx, 3, "axes"), mode);
                RequireShape(ctx, dy, outShape);
                var result = ctx.Allocate(dy.ElementType, dims);
                NumericDispatch.AddAt(result, dy, DataMovement.StridedMap(outShape, 0, Broadcast.ContiguousStrides(dims), tables));
                ctx.SetOutput(0, result);
            });
        }, OpRegistry.BackpropDomain)
        {
            StandardOps = PadGradStandard,
        });

        // ResizeGrad(dY, shape, roi, scales, sizes) with Resize-11 attributes: the adjoint (transpose) of the linear
        // map Resize applies to its input: each axis pass y[j] = Σ_k w_jk x[i_jk] becomes x[i_jk] += w_jk dY[j], in
        // reverse axis order; extrapolated points take no gradient (PyTorch derivatives.yaml upsample_*_backward).
        // Standard ops (export): Resize of the identity basis gives the interpolation matrix A, and dX = A·dY.
        ops.Add(new OpDefinition("ResizeGrad", op =>
        {
            var attrs = ParseResize(op, ResizeForm.Resize11);
            return new LambdaKernel(ctx =>
            {
                var dy = ctx.RequiredInput(0);
                var dims = OpArgs.Dims(ctx, OpArgs.Int64s(ctx, ctx.RequiredInput(1), "shape"), "shape");
                var (scales, sizes, roi) = ResizeArgs(ctx, 2);
                var (outShape, taps) = PlanResize(ctx, dims, attrs, scales, sizes, roi);
                RequireShape(ctx, dy, outShape);
                ctx.SetOutput(0, ResizeAdjoint(ctx, dy, dims, taps));
            });
        }, OpRegistry.BackpropDomain)
        {
            StandardOps = ResizeGradStandard,
        });
    }

    private static void RequireShape(KernelContext ctx, OnnxTensor t, int[] shape)
    {
        if (!t.Dims.AsSpan().SequenceEqual(shape)) throw ctx.Invalid($"the gradient has shape {OpArgs.Format(t.Dims)}, the forward output had {OpArgs.Format(shape)}");
    }

    private static OnnxTensor ResizeAdjoint(KernelContext ctx, OnnxTensor dy, int[] inShape, AxisTaps[] taps)
    {
        if (dy.ElementType is not (DataType.Float or DataType.Double or DataType.Float16)) throw ctx.Invalid($"ResizeGrad of {DataTypes.OnnxName(dy.ElementType)}");
        var g = new double[dy.ElementCount];
        for (long i = 0; i < g.Length; i++) g[i] = dy.GetDouble(i);
        var shape = dy.Dims.ToArray();
        if (taps.Any(t => t.Outside.Any(o => o))) SetOutside(g, shape, taps, 0);
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            var t = taps[d];
            if (t.IsIdentity) continue;
            long outer = OpArgs.Product(shape, 0, d);
            int inner = (int)OpArgs.Product(shape, d + 1, shape.Length);
            int inLen = inShape[d];
            var prev = new double[outer * inLen * inner];
            for (long o = 0; o < outer; o++)
            {
                for (int j = 0; j < t.Count; j++)
                {
                    var src = g.AsSpan((int)((o * t.Count + j) * inner), inner);
                    for (int k = 0; k < t.Width; k++)
                    {
                        double w = t.Weight[j * t.Width + k];
                        if (w == 0) continue;
                        var dst = prev.AsSpan((int)((o * inLen + t.Index[j * t.Width + k]) * inner), inner);
                        System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(src, w, dst, dst);
                    }
                }
            }
            g = prev;
            shape[d] = inLen;
        }
        var result = ctx.Allocate(dy.ElementType, inShape);
        switch (dy.ElementType)
        {
            case DataType.Double: g.CopyTo(result.AsSpan<double>()); break;
            case DataType.Float: System.Numerics.Tensors.TensorPrimitives.ConvertTruncating<double, float>(g, result.AsSpan<float>()); break;
            default:
            {
                var h = result.AsSpan<Half>();
                for (int i = 0; i < g.Length; i++) h[i] = (Half)g[i];
                break;
            }
        }
        return result;
    }

    // ---- helpers of the shape-op rules ----

    /// <summary>dY reshaped to the runtime shape of <paramref name="like"/> (allowzero from opset 14, so empty dimensions survive).</summary>
    internal static string ReshapeLike(GradientContext ctx, string dy, string like) =>
        ctx.Emit.OpsetVersion >= 14
            ? ctx.Emit.Op("Reshape", [dy, ctx.Emit.Shape(like)], OnnxAttribute.FromInt("allowzero", 1))
            : ctx.Emit.Reshape(dy, ctx.Emit.Shape(like));

    /// <summary>The cotangent of output <paramref name="index"/>, or zeros shaped like that output when none reaches it.</summary>
    internal static string GradOrZeros(GradientContext ctx, int index)
    {
        if (ctx.OutputGrad(index) is { } g) return g;
        string output = ctx.Output(index);
        if (output.Length == 0) throw ctx.Unsupported($"output {index} is unnamed and has no cotangent, so its shape is unknown");
        return ctx.Emit.ZerosLike(output);
    }

    /// <summary>Forward input <paramref name="index"/> when the node has it, else "" (absent optional input).</summary>
    internal static string InputOrAbsent(GradientContext ctx, int index) => ctx.HasInput(index) ? ctx.Input(index) : "";

    /// <summary>An int64 constant of an ints attribute, or "" when the attribute is absent.</summary>
    internal static string IntsOrAbsent(GradientContext ctx, string attribute) =>
        ctx.Node.GetInts(attribute) is { } v ? ctx.Emit.Int64s(v) : "";
}
