using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

internal static partial class ShapeOps
{
    private static void RegisterConcat(List<OpDefinition> ops)
    {
        // Concat (ONNX spec "Concat", versions 1, 4, 11, 13): joins the inputs along axis (default 1 in version 1,
        // required from 4, negative from 11); every other dimension must agree. Empty inputs take part.
        ops.Add(new OpDefinition("Concat", op =>
        {
            for (int i = 0; i < op.Node.Inputs.Count; i++) DataMovement.RequireMovable(op, i);
            if (op.OpsetVersion >= 4 && !op.Node.HasAttribute("axis")) throw op.Unsupported("Concat needs the 'axis' attribute");
            long axis = op.Node.GetInt("axis", 1);
            return new LambdaKernel(ctx => ctx.SetOutput(0, Concat(ctx, axis)));
        })
        {
            // dX_i = the i-th piece of dY cut along axis at the inputs' lengths (PyTorch derivatives.yaml cat:
            // cat_tensors_backward): Split with the lengths Gather(Shape(X_i), axis) as an input from opset 13, with
            // static lengths as an attribute before.
            Vjp = ConcatVjp,
        });

        // Split (ONNX spec "Split", versions 1, 2, 11, 13): cuts the input along axis into one part per output, of the
        // sizes in 'split' (an attribute in versions 2 and 11, an input in 1 and from 13) or equal parts.
        ops.Add(new OpDefinition("Split", op =>
        {
            DataMovement.RequireMovable(op, 0);
            long axis = op.Node.GetInt("axis", 0);
            long[]? attrSplit = op.OpsetVersion < 13 ? op.Node.GetInts("split") : null;
            bool splitInput = op.OpsetVersion >= 13 || op.OpsetVersion == 1;
            if (op.Node.HasAttribute("num_outputs")) throw op.Unsupported("attribute 'num_outputs' (opset 18) is not implemented");
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                var split = attrSplit ?? (splitInput ? OpArgs.OptionalInt64s(ctx, 1, "split") : null);
                Split(ctx, x, OpArgs.Axis(ctx, axis, x.Rank), split, ctx.OutputCount);
            });
        })
        {
            DifferentiableInputs = [0],
            // dX = Concat(dY_0, …, dY_n-1) along axis, zeros for outputs no gradient reaches (PyTorch derivatives.yaml
            // split_with_sizes: split_with_sizes_backward).
            Vjp = ctx =>
            {
                var parts = Enumerable.Range(0, ctx.Node.Outputs.Count).Select(k => GradOrZeros(ctx, k)).ToArray();
                return [ctx.Emit.Op("Concat", parts, OnnxAttribute.FromInt("axis", ctx.Node.GetInt("axis", 0)))];
            },
        });
    }

    private static string?[] ConcatVjp(GradientContext ctx)
    {
        var e = ctx.Emit;
        long axis = ctx.Node.GetInt("axis", 1);
        int n = ctx.InputCount;
        string sizes;
        OnnxAttribute? splitAttr = null;
        if (e.OpsetVersion >= 13)
        {
            var lengths = Enumerable.Range(0, n).Select(i => e.Op("Gather", e.Shape(ctx.Input(i)), e.Int64s(axis))).ToArray();
            sizes = n == 1 ? lengths[0] : e.Op("Concat", lengths, OnnxAttribute.FromInt("axis", 0));
        }
        else
        {
            var lengths = new long[n];
            for (int i = 0; i < n; i++)
            {
                var shape = ctx.StaticShape(ctx.Input(i));
                int a = shape is null ? -1 : (int)(axis < 0 ? axis + shape.Count : axis);
                if (shape is null || a < 0 || a >= shape.Count || shape[a].Value is not { } len)
                    throw ctx.Unsupported($"before opset 13 Split takes static sizes, and input {i}'s length along axis {axis} is not known");
                lengths[i] = len;
            }
            sizes = "";
            splitAttr = OnnxAttribute.FromInts("split", lengths);
        }
        var axisAttr = OnnxAttribute.FromInt("axis", axis);
        var pieces = splitAttr is null
            ? e.Ops("Split", [ctx.OutputGrad(0)!, sizes], n, "", axisAttr)
            : e.Ops("Split", [ctx.OutputGrad(0)!], n, "", axisAttr, splitAttr);
        return [.. pieces.Select((p, i) => ctx.NeedsGrad(i) ? p : null)];
    }

    /// <summary>
    /// Concat of the present inputs along axis: output row o (of the outer dimensions) is input 0's row o, then input 1's,
    /// and so on. Walks the inputs by index and keeps the output shape on the stack, so a call allocates nothing besides
    /// the (pooled) output.
    /// </summary>
    private static OnnxTensor Concat(KernelContext ctx, long axisAttr)
    {
        OnnxTensor? first = null;
        for (int i = 0; i < ctx.InputCount && first is null; i++) first = ctx.Input(i);
        if (first is null) throw ctx.Invalid("Concat needs at least one input");
        int rank = first.Rank;
        int axis = OpArgs.Axis(ctx, axisAttr, rank);
        Span<int> outShape = rank <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[rank];
        outShape = outShape[..rank];
        first.Shape.CopyTo(outShape);
        outShape[axis] = 0;
        for (int i = 0; i < ctx.InputCount; i++)
        {
            if (ctx.Input(i) is not { } t) continue;
            if (t.ElementType != first.ElementType) throw ctx.Invalid($"inputs have element types {DataTypes.OnnxName(first.ElementType)} and {DataTypes.OnnxName(t.ElementType)}");
            bool fits = t.Rank == rank;
            for (int d = 0; fits && d < rank; d++) fits = d == axis || t.Dims[d] == first.Dims[d];
            if (!fits) throw ctx.Invalid($"cannot concatenate shapes {OpArgs.Format(first.Dims)} and {OpArgs.Format(t.Dims)} on axis {axis}");
            outShape[axis] = checked(outShape[axis] + t.Dims[axis]);
        }
        // Every output element is written below (the inputs' pieces tile the axis), so the buffer need not be cleared.
        var result = ctx.AllocateUninitialized(first.ElementType, outShape);
        long outer = OpArgs.Product(outShape, 0, axis);
        long inner = OpArgs.Product(outShape, axis + 1, rank);
        long outRow = outShape[axis] * inner;
        long dstStart = 0;
        for (int i = 0; i < ctx.InputCount; i++)
        {
            if (ctx.Input(i) is not { } t) continue;
            long chunk = t.Dims[axis] * inner;
            if (chunk == 0) continue;
            for (long o = 0; o < outer; o++) DataMovement.Copy(t, o * chunk, result, o * outRow + dstStart, chunk);
            dstStart += chunk;
        }
        return result;
    }

    private static void Split(KernelContext ctx, OnnxTensor x, int axis, long[]? split, int outputs)
    {
        int dim = x.Dims[axis];
        if (split is null)
        {
            if (outputs == 0 || dim % outputs != 0) throw ctx.Invalid($"dimension {dim} of axis {axis} cannot be split into {outputs} equal parts");
            split = [.. Enumerable.Repeat((long)(dim / outputs), outputs)];
        }
        if (split.Length != outputs) throw ctx.Invalid($"split [{string.Join(',', split)}] has {split.Length} sizes for {outputs} outputs");
        if (split.Any(s => s < 0) || split.Sum() != dim) throw ctx.Invalid($"split [{string.Join(',', split)}] does not add up to dimension {dim} of axis {axis}");
        long outer = OpArgs.Product(x.Dims, 0, axis);
        long inner = OpArgs.Product(x.Dims, axis + 1, x.Rank);
        long row = dim * inner;
        long start = 0;
        for (int k = 0; k < outputs; k++)
        {
            var shape = x.Dims.ToArray();
            shape[axis] = (int)split[k];
            long chunk = split[k] * inner;
            if (ctx.IsOutputUsed(k))
            {
                var part = ctx.Allocate(x.ElementType, shape);
                for (long o = 0; o < outer && chunk > 0; o++) DataMovement.Copy(x, o * row + start, part, o * chunk, chunk);
                ctx.SetOutput(k, part);
            }
            start += chunk;
        }
    }
}
