using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Gradient kernels of our own domain (<see cref="OpRegistry.BackpropDomain"/>) for the gather ops, and the rules of
/// the indexing ops. Every gather kernel is the adjoint of its gather: zeros of the data shape, then
/// dData[source of element i] += dY[i], so repeated indices accumulate. Their standard-op forms (export) run the gather
/// on the flat indices of the data and scatter-add dY there (<see cref="ShapeOps.MovedAdjoint"/>).
/// </summary>
internal static partial class IndexingOps
{
    private static void RegisterGradientKernels(List<OpDefinition> ops)
    {
        // GatherGrad(dY, shape, indices) with attribute axis: the adjoint of Gather (PyTorch derivatives.yaml
        // index_select: index_add of grad into zeros). Standard-op equivalent: ScatterND with reduction add into
        // ConstantOfShape(shape), with the axis moved to the front by Transpose.
        ops.Add(new OpDefinition("GatherGrad", op => GatherAdjoint(op, (ctx, dims, indices) =>
        {
            int a = OpArgs.Axis(ctx, op.Node.GetInt("axis", 0), dims.Length);
            var idx = Indices(ctx, indices, dims[a], "indices");
            int outer = (int)OpArgs.Product(dims, 0, a), inner = (int)OpArgs.Product(dims, a + 1, dims.Length);
            var shape = dims[..a].Concat(indices.Dims).Concat(dims[(a + 1)..]).ToArray();
            return (shape, DataMovement.StridedMap([outer, idx.Length, inner], 0, [(long)dims[a] * inner, inner, 1], [null, idx, null]));
        }), OpRegistry.BackpropDomain)
        {
            StandardOps = (e, node) => [ShapeOps.MovedAdjoint(e, node.Inputs[0], node.Inputs[1],
                iota => e.Op("Gather", [iota, node.Inputs[2]], OnnxAttribute.FromInt("axis", node.GetInt("axis", 0))), distinct: false)],
        });

        // GatherElementsGrad(dY, shape, indices) with attribute axis: the adjoint of GatherElements (PyTorch
        // derivatives.yaml gather: scatter_add of grad into zeros). Standard-op equivalent (opset 16):
        // ScatterElements(ConstantOfShape(shape), indices, dY, axis, reduction='add').
        ops.Add(new OpDefinition("GatherElementsGrad", op => GatherAdjoint(op, (ctx, dims, indices) =>
            (indices.Dims, ElementsMap(ctx, dims, indices, OpArgs.Axis(ctx, op.Node.GetInt("axis", 0), dims.Length), "indices"))),
            OpRegistry.BackpropDomain)
        {
            StandardOps = (e, node) => [ShapeOps.MovedAdjoint(e, node.Inputs[0], node.Inputs[1],
                iota => e.Op("GatherElements", [iota, node.Inputs[2]], OnnxAttribute.FromInt("axis", node.GetInt("axis", 0))), distinct: false)],
        });

        // GatherNDGrad(dY, shape, indices) with attribute batch_dims: the adjoint of GatherND. Standard-op equivalent
        // (opset 16, batch_dims 0): ScatterND(ConstantOfShape(shape), indices, dY, reduction='add').
        ops.Add(new OpDefinition("GatherNDGrad", op => GatherAdjoint(op, (ctx, dims, indices) =>
        {
            var (shape, map) = NdMap(ctx, dims, indices, (int)op.Node.GetInt("batch_dims", 0), out _);
            return (shape, map);
        }), OpRegistry.BackpropDomain)
        {
            StandardOps = (e, node) => [ShapeOps.MovedAdjoint(e, node.Inputs[0], node.Inputs[1],
                iota => e.Op("GatherND", [iota, node.Inputs[2]], OnnxAttribute.FromInt("batch_dims", node.GetInt("batch_dims", 0))), distinct: false)],
        });
    }

    /// <summary>A gather adjoint kernel: <paramref name="mapOf"/> gives the forward output shape and, per output element, its data index.</summary>
    private static Kernel GatherAdjoint(OpContext op, Func<KernelContext, int[], OnnxTensor, (int[] Shape, int[] Map)> mapOf)
    {
        NumericDispatch.Require(op, 0, op.Node.OpType);
        return new LambdaKernel(ctx =>
        {
            var dy = ctx.RequiredInput(0);
            var dims = OpArgs.Dims(ctx, OpArgs.Int64s(ctx, ctx.RequiredInput(1), "shape"), "shape");
            var (shape, map) = mapOf(ctx, dims, ctx.RequiredInput(2));
            if (!dy.Dims.AsSpan().SequenceEqual(shape)) throw ctx.Invalid($"the gradient has shape {OpArgs.Format(dy.Dims)}, the forward output had {OpArgs.Format(shape)}");
            var result = ctx.Allocate(dy.ElementType, dims);
            NumericDispatch.AddAt(result, dy, map);
            ctx.SetOutput(0, result);
        });
    }

    // ---- rules ----

    /// <summary>dData of a gather: our adjoint kernel, or the standard ScatterElements/ScatterND with reduction add from opset 16.</summary>
    private static string GatherVjp(GradientContext ctx, string grad, string standardScatter, OnnxAttribute attribute)
    {
        var e = ctx.Emit;
        if (standardScatter.Length > 0 && e.OpsetVersion >= 16)
        {
            var attrs = new List<OnnxAttribute> { OnnxAttribute.FromString("reduction", "add") };
            if (standardScatter == "ScatterElements") attrs.Add(attribute);
            return e.Op(standardScatter, [e.ZerosLike(ctx.Input(0)), ctx.Input(1), ctx.OutputGrad(0)!], [.. attrs]);
        }
        return e.Custom(grad, [ctx.OutputGrad(0)!, e.Shape(ctx.Input(0)), ctx.Input(1)], attribute);
    }

    /// <summary>
    /// ScatterElements/ScatterND: dData = dY with the overwritten elements zeroed (reduction none) or dY itself (add);
    /// dUpdates = the matching gather of dY (PyTorch derivatives.yaml scatter / scatter_add:
    /// grad.scatter(dim, index, 0) and grad.gather(dim, index)). mul, max and min have no rule.
    /// </summary>
    private static string?[] ScatterVjp(GradientContext ctx, bool nd)
    {
        string reduction = ctx.Node.GetString("reduction", "none");
        if (reduction is not ("none" or "add")) throw ctx.Unsupported($"reduction '{reduction}' (implemented: none, add)");
        var e = ctx.Emit;
        string dy = ctx.OutputGrad(0)!;
        var axis = nd ? [] : new[] { OnnxAttribute.FromInt("axis", ctx.Node.GetInt("axis", 0)) };
        string? dData = null, dUpdates = null;
        if (ctx.NeedsGrad(0))
            dData = reduction == "add" ? dy : e.Op(nd ? "ScatterND" : "ScatterElements", [dy, ctx.Input(1), e.ZerosLike(ctx.Input(2))], axis);
        if (ctx.NeedsGrad(2))
            dUpdates = e.Op(nd ? "GatherND" : "GatherElements", [dy, ctx.Input(1)], axis);
        return [dData, null, dUpdates];
    }

    /// <summary>TopK: dX = zeros with dValues scattered back at Indices along axis (PyTorch derivatives.yaml topk: value_selecting_reduction_backward).</summary>
    private static string?[] TopKVjp(GradientContext ctx)
    {
        var e = ctx.Emit;
        if (ctx.Output(1).Length == 0) throw ctx.Unsupported("the gradient needs the Indices output, which the node leaves unnamed");
        if (e.OpsetVersion < 9) throw ctx.Unsupported("the gradient scatters with ScatterElements/Scatter, which need opset 9");
        string scatter = e.OpsetVersion >= 11 ? "ScatterElements" : "Scatter";
        return [e.Op(scatter, [e.ZerosLike(ctx.Input(0)), ctx.Output(1), ctx.OutputGrad(0)!], OnnxAttribute.FromInt("axis", ctx.Node.GetInt("axis", -1)))];
    }
}
