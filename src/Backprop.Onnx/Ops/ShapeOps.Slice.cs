using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

internal static partial class ShapeOps
{
    private static void RegisterSlicing(List<OpDefinition> ops)
    {
        // Slice (ONNX spec "Slice", versions 1, 10, 11, 13): starts, ends and axes are attributes in version 1 and
        // inputs (with steps) from 10. Negative starts/ends count from the back; then both are clamped to [0, dim] for
        // a positive step and to [0, dim-1] (start) and [-1, dim-1] (end) for a negative one.
        ops.Add(new OpDefinition("Slice", op =>
        {
            DataMovement.RequireMovable(op, 0);
            if (op.OpsetVersion < 10)
            {
                var attrStarts = op.Node.GetInts("starts") ?? throw op.Unsupported("Slice-1 needs the 'starts' attribute");
                var attrEnds = op.Node.GetInts("ends") ?? throw op.Unsupported("Slice-1 needs the 'ends' attribute");
                var attrAxes = op.Node.GetInts("axes");
                return new LambdaKernel(ctx => ctx.SetOutput(0, Slice(ctx, ctx.RequiredInput(0), attrStarts, attrEnds, attrAxes, null)));
            }
            SliceGradPlan? plan = null;
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                if (x.Rank > OpArgs.StackRank)
                {
                    var starts = OpArgs.Int64s(ctx, ctx.RequiredInput(1), "starts");
                    var ends = OpArgs.Int64s(ctx, ctx.RequiredInput(2), "ends");
                    var axes = OpArgs.OptionalInt64s(ctx, 3, "axes");
                    var steps = OpArgs.OptionalInt64s(ctx, 4, "steps");
                    ctx.SetOutput(0, Slice(ctx, x, starts, ends, axes, steps));
                    return;
                }
                // As SliceGrad: the arguments are read into stack spans, and the window (SliceGrad's, with X's shape) is
                // kept while they repeat.
                Span<long> s0 = stackalloc long[OpArgs.StackRank], s1 = stackalloc long[OpArgs.StackRank], s2 = stackalloc long[OpArgs.StackRank];
                Span<long> s3 = stackalloc long[OpArgs.StackRank], s4 = stackalloc long[OpArgs.StackRank];
                var shape = s0[..x.Rank];
                for (int d = 0; d < x.Rank; d++) shape[d] = x.Dims[d];
                var p = plan = SliceGradPlan.For(ctx, plan, shape, 1, s1, s2, s3, s4);
                // The strided gather (no index tables) writes every element: no zero fill.
                var result = ctx.AllocateUninitialized(x.ElementType, p.Counts);
                if (result.ElementCount > 0) DataMovement.GatherStrided(x, result, p.Counts, p.Offset, p.Strides, threads: ctx.Options.Threads);
                ctx.SetOutput(0, result);
            });
        })
        {
            DifferentiableInputs = [0],
            // dX = zeros of Shape(X) with dY at the sliced elements (PyTorch derivatives.yaml slice: slice_backward),
            // by our SliceGrad kernel.
            Vjp = ctx =>
            {
                string[] args = ctx.OpsetVersion < 10
                    ? [ctx.Emit.Int64s(ctx.Node.GetInts("starts")!), ctx.Emit.Int64s(ctx.Node.GetInts("ends")!), IntsOrAbsent(ctx, "axes"), ""]
                    : [ctx.Input(1), ctx.Input(2), InputOrAbsent(ctx, 3), InputOrAbsent(ctx, 4)];
                return [ctx.Emit.Custom("SliceGrad", [ctx.OutputGrad(0)!, ctx.Emit.Shape(ctx.Input(0)), .. args])];
            },
        });

        // Tile (ONNX spec "Tile", versions 6, 13): repeats the input repeats[d] times along each dimension d.
        ops.Add(new OpDefinition("Tile", op =>
        {
            DataMovement.RequireMovable(op, 0);
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                var repeats = OpArgs.Int64s(ctx, ctx.RequiredInput(1), "repeats");
                if (repeats.Length != x.Rank) throw ctx.Invalid($"repeats [{string.Join(',', repeats)}] do not match rank {x.Rank}");
                var outShape = OpArgs.Dims(ctx, [.. repeats.Select((r, d) => r * x.Dims[d])], "tiled shape");
                var tables = new int[]?[x.Rank];
                for (int d = 0; d < x.Rank; d++)
                {
                    if (repeats[d] == 1) continue;
                    int dim = x.Dims[d];
                    tables[d] = [.. Enumerable.Range(0, outShape[d]).Select(j => j % dim)];
                }
                var result = ctx.Allocate(x.ElementType, outShape);
                DataMovement.GatherStrided(x, result, outShape, 0, Broadcast.ContiguousStrides(x.Dims), tables, ctx.Options.Threads);
                ctx.SetOutput(0, result);
            });
        }, minVersion: 6)
        {
            DifferentiableInputs = [0],
            // Each input element appears once per tile, so dX is the sum of dY over the tiles (PyTorch
            // derivatives.yaml repeat: repeat_backward): dY viewed as [r0, d0, r1, d1, …] summed to [1, d0, 1, d1, …].
            Vjp = TileVjp,
        });

        // Pad (ONNX spec "Pad", versions 1, 2, 11, 13, 18): pads (begin values of every axis, then end values; negative
        // values crop) are the 'paddings' attribute in version 1, 'pads' in 2 and an input from 11, with an optional
        // axes input from 18; modes constant (value attribute before 11, constant_value input from 11), reflect
        // (mirror without repeating the edge) and edge (repeat the edge).
        ops.Add(new OpDefinition("Pad", op =>
        {
            DataMovement.RequireMovable(op, 0);
            string mode = op.Node.GetString("mode", "constant");
            if (mode is not ("constant" or "reflect" or "edge")) throw op.Unsupported($"mode '{mode}' (implemented: constant, reflect, edge)");
            long[]? attrPads = null;
            if (op.OpsetVersion < 11)
                attrPads = op.Node.GetInts(op.OpsetVersion < 2 ? "paddings" : "pads") ?? throw op.Unsupported("Pad before opset 11 needs the pads attribute");
            float attrValue = op.Node.GetFloat("value", 0f);
            var type = op.InputType(0);
            if (mode == "constant" && op.OpsetVersion < 11 && type != DataType.Undefined && !OpArgs.IsNumeric(type))
                throw op.Unsupported($"a constant pad value for element type {DataTypes.OnnxName(type)}");
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                var pads = attrPads ?? OpArgs.Int64s(ctx, ctx.RequiredInput(1), "pads");
                var axesArg = op.OpsetVersion >= 11 ? OpArgs.OptionalInt64s(ctx, 3, "axes") : null;
                OnnxTensor? value = null;
                if (mode == "constant")
                {
                    if (op.OpsetVersion >= 11 && ctx.Input(2) is { } v)
                    {
                        if (v.ElementType != x.ElementType || v.ElementCount != 1) throw ctx.Invalid($"constant_value must be one {DataTypes.OnnxName(x.ElementType)} element");
                        value = v;
                    }
                    else if (op.OpsetVersion < 11) value = OpArgs.ScalarOf(x.ElementType, attrValue);
                }
                ctx.SetOutput(0, Pad(ctx, x, pads, axesArg, mode, value));
            });
        })
        {
            DifferentiableInputs = [0],
            // dX[i] = Σ dY[j] over the outputs j copied from input i (constant padding takes none; PyTorch
            // derivatives.yaml constant_pad_nd / reflection_pad*d_backward / replication_pad*d_backward), by our
            // PadGrad kernel. constant_value takes no gradient, as in PyTorch.
            Vjp = ctx =>
            {
                string pads = ctx.OpsetVersion < 11 ? IntsOrAbsent(ctx, ctx.OpsetVersion < 2 ? "paddings" : "pads") : ctx.Input(1);
                string axes = ctx.OpsetVersion >= 11 ? InputOrAbsent(ctx, 3) : "";
                return [ctx.Emit.Custom("PadGrad", [ctx.OutputGrad(0)!, ctx.Emit.Shape(ctx.Input(0)), pads, axes],
                    OnnxAttribute.FromString("mode", ctx.Node.GetString("mode", "constant")))];
            },
        });
    }

    private static string?[] TileVjp(GradientContext ctx)
    {
        var e = ctx.Emit;
        string shape = e.Shape(ctx.Input(0));
        string repeats = ctx.Input(1);
        string Interleave(string first) =>
            e.Reshape(e.Op("Concat", [e.Unsqueeze(first, 1), e.Unsqueeze(shape, 1)], OnnxAttribute.FromInt("axis", 1)), e.Int64s(-1));
        string blocks = e.Reshape(ctx.OutputGrad(0)!, Interleave(repeats));
        string summed = e.Custom("SumToShape", [blocks, Interleave(e.OnesLike(repeats))]);
        return [e.Reshape(summed, shape)];
    }

    /// <summary>Normalized slice of one axis: first index, step and element count.</summary>
    internal readonly record struct SliceAxis(long Start, long Step, int Count);

    /// <summary>Start, step and count of each sliced axis, by the clamping rules of the ONNX Slice spec.</summary>
    internal static SliceAxis[] SliceAxes(KernelContext ctx, int[] dims, long[] starts, long[] ends, long[]? axesArg, long[]? steps)
    {
        int rank = dims.Length;
        if (ends.Length != starts.Length) throw ctx.Invalid($"starts ({starts.Length}) and ends ({ends.Length}) differ in length");
        var axes = axesArg is null ? [.. Enumerable.Range(0, starts.Length)] : OpArgs.Axes(ctx, axesArg, rank);
        if (axes.Length != starts.Length || (steps is not null && steps.Length != starts.Length))
            throw ctx.Invalid("starts, ends, axes and steps must have the same length");
        var result = new SliceAxis[rank];
        for (int d = 0; d < rank; d++) result[d] = new SliceAxis(0, 1, dims[d]);
        for (int i = 0; i < axes.Length; i++)
        {
            int a = axes[i];
            long dim = dims[a];
            long step = steps?[i] ?? 1;
            if (step == 0) throw ctx.Invalid($"step of axis {a} is 0");
            long s = starts[i], e = ends[i];
            if (s < 0) s += dim;
            if (e < 0) e += dim;
            if (step > 0) { s = Math.Clamp(s, 0, dim); e = Math.Clamp(e, 0, dim); }
            else { s = Math.Clamp(s, 0, dim - 1); e = Math.Clamp(e, -1, dim - 1); }
            long count = step > 0 ? (e - s + step - 1) / step : (s - e + (-step) - 1) / (-step);
            result[a] = new SliceAxis(s, step, (int)Math.Max(0, count));
        }
        return result;
    }

    internal static OnnxTensor Slice(KernelContext ctx, OnnxTensor x, long[] starts, long[] ends, long[]? axes, long[]? steps)
    {
        var sa = SliceAxes(ctx, x.Dims, starts, ends, axes, steps);
        var srcStrides = Broadcast.ContiguousStrides(x.Dims);
        var outShape = new int[x.Rank];
        var strides = new long[x.Rank];
        long offset = 0;
        for (int d = 0; d < x.Rank; d++)
        {
            outShape[d] = sa[d].Count;
            strides[d] = srcStrides[d] * sa[d].Step;
            if (sa[d].Count > 0) offset += srcStrides[d] * sa[d].Start;
        }
        var result = ctx.AllocateUninitialized(x.ElementType, outShape);
        if (result.ElementCount > 0) DataMovement.GatherStrided(x, result, outShape, offset, strides, threads: ctx.Options.Threads);
        return result;
    }

    /// <summary>Pads (or crops, for negative pads) <paramref name="x"/>; <paramref name="value"/> fills constant padding (zero when null).</summary>
    internal static OnnxTensor Pad(KernelContext ctx, OnnxTensor x, long[] pads, long[]? axesArg, string mode, OnnxTensor? value)
    {
        var (outShape, tables) = PadTables(ctx, x.Dims, pads, axesArg, mode);
        var result = ctx.Allocate(x.ElementType, outShape);
        if (mode == "constant" && value is not null) DataMovement.Fill(result, value);
        DataMovement.GatherStrided(x, result, outShape, 0, Broadcast.ContiguousStrides(x.Dims), tables, ctx.Options.Threads);
        return result;
    }

    /// <summary>The padded shape and, per padded axis, the source index of each output index (-1: constant padding).</summary>
    internal static (int[] Shape, int[]?[] Tables) PadTables(KernelContext ctx, int[] dims, long[] pads, long[]? axesArg, string mode)
    {
        int rank = dims.Length;
        var axes = axesArg is null ? [.. Enumerable.Range(0, rank)] : OpArgs.Axes(ctx, axesArg, rank);
        if (pads.Length != 2 * axes.Length) throw ctx.Invalid($"pads [{string.Join(',', pads)}] must hold 2 x {axes.Length} values");
        var begin = new long[rank];
        var end = new long[rank];
        for (int i = 0; i < axes.Length; i++) { begin[axes[i]] = pads[i]; end[axes[i]] = pads[i + axes.Length]; }
        var outShape = new int[rank];
        var tables = new int[]?[rank];
        for (int d = 0; d < rank; d++)
        {
            int dim = dims[d];
            long size = dim + begin[d] + end[d];
            if (size < 0 || size > int.MaxValue) throw ctx.Invalid($"pads [{string.Join(',', pads)}] give axis {d} of size {dim} the size {size}");
            outShape[d] = (int)size;
            if (begin[d] == 0 && end[d] == 0) continue;
            if (dim == 0 && size > 0 && mode != "constant") throw ctx.Invalid($"cannot {mode}-pad the empty axis {d}");
            var table = new int[size];
            for (int j = 0; j < size; j++)
            {
                long s = j - begin[d];
                if (s >= 0 && s < dim) { table[j] = (int)s; continue; }
                table[j] = mode switch
                {
                    "edge" => s < 0 ? 0 : dim - 1,
                    "reflect" => Reflect(s, dim),
                    _ => -1,
                };
            }
            tables[d] = table;
        }
        return (outShape, tables);
    }

    /// <summary>Index <paramref name="s"/> mirrored into [0, dim) without repeating the edge (NumPy "reflect", periodic beyond one reflection).</summary>
    private static int Reflect(long s, int dim)
    {
        if (dim == 1) return 0;
        long period = 2L * (dim - 1);
        long m = ((s % period) + period) % period;
        return (int)(m < dim ? m : period - m);
    }
}
