using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Ops that change a tensor's shape or layout without arithmetic: Reshape, Flatten, Squeeze, Unsqueeze, Shape, Size,
/// Expand (this file); Transpose, DepthToSpace, SpaceToDepth (<c>ShapeOps.Layout.cs</c>); Concat, Split
/// (<c>ShapeOps.Concat.cs</c>); Slice, Tile, Pad (<c>ShapeOps.Slice.cs</c>); Resize, Upsample (<c>ShapeOps.Resize.cs</c>).
/// Every kernel is generic over the element type (see <see cref="DataMovement"/>).
/// </summary>
internal static partial class ShapeOps
{
    public static void Register(List<OpDefinition> ops)
    {
        RegisterViews(ops);
        RegisterLayout(ops);
        RegisterConcat(ops);
        RegisterSlicing(ops);
        RegisterResize(ops);
        RegisterGradientKernels(ops);
    }

    private static void RegisterViews(List<OpDefinition> ops)
    {
        // Reshape (ONNX spec "Reshape", versions 1, 5, 13, 14): the shape is an attribute before opset 5 and an input
        // from 5; 0 copies the input dimension (an actual 0 when allowzero=1, opset 14), -1 is inferred. The output
        // shares the input's buffer.
        ops.Add(new OpDefinition("Reshape", op =>
        {
            bool allowZero = op.Node.GetInt("allowzero", 0) != 0;
            long[]? attrShape = null;
            if (op.OpsetVersion < 5) attrShape = op.Node.GetInts("shape") ?? throw op.Unsupported("Reshape-1 needs the 'shape' attribute");
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                Span<long> scratch = stackalloc long[OpArgs.StackRank];
                ReadOnlySpan<long> shape = attrShape is not null ? attrShape : OpArgs.Int64s(ctx, ctx.RequiredInput(1), "shape", scratch);
                Span<int> dims = shape.Length <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[shape.Length];
                dims = dims[..shape.Length];
                ReshapeTarget(ctx, x.Dims, shape, allowZero, dims);
                ctx.SetOutputView(0, x, dims);
            });
        })
        {
            DifferentiableInputs = [0],
            // dX = Reshape(dY, Shape(X)) (PyTorch derivatives.yaml: _reshape_alias / view: grad.reshape(self.sizes())).
            Vjp = ctx => [ReshapeLike(ctx, ctx.OutputGrad(0)!, ctx.Input(0))],
        });

        // Flatten (ONNX spec "Flatten", versions 1, 9, 11, 13): [d0..d(axis-1)] and [d(axis)..] each collapse into one
        // dimension; axis may be negative from opset 11 and equal to the rank.
        ops.Add(new OpDefinition("Flatten", op =>
        {
            long axis = op.Node.GetInt("axis", 1);
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                int rank = x.Rank;
                long a = axis < 0 ? axis + rank : axis;
                if (a < 0 || a > rank) throw ctx.Invalid($"axis {axis} is out of range for rank {rank}");
                int outer = checked((int)OpArgs.Product(x.Dims, 0, (int)a));
                int inner = checked((int)OpArgs.Product(x.Dims, (int)a, rank));
                ctx.SetOutputView(0, x, [outer, inner]);
            });
        })
        {
            // dX = Reshape(dY, Shape(X)) (PyTorch: flatten is a view; its backward reshapes).
            Vjp = ctx => [ReshapeLike(ctx, ctx.OutputGrad(0)!, ctx.Input(0))],
        });

        // Squeeze (ONNX spec "Squeeze", versions 1, 11, 13): removes the listed dimensions of size 1 (all of them when
        // axes are absent); axes are an attribute before opset 13 and an optional input from 13.
        ops.Add(new OpDefinition("Squeeze", op =>
        {
            long[]? attrAxes = op.OpsetVersion < 13 ? op.Node.GetInts("axes") : null;
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                var axesInput = op.OpsetVersion < 13 ? null : ctx.Input(1);
                Span<long> scratch = stackalloc long[OpArgs.StackRank];
                ReadOnlySpan<long> axesArg = axesInput is not null ? OpArgs.Int64s(ctx, axesInput, "axes", scratch) : attrAxes;
                bool all = axesInput is null && attrAxes is null;
                var dims = x.Dims;
                Span<bool> drop = dims.Length <= OpArgs.StackRank ? stackalloc bool[OpArgs.StackRank] : new bool[dims.Length];
                drop = drop[..dims.Length];
                drop.Clear();
                if (all) for (int d = 0; d < dims.Length; d++) drop[d] = dims[d] == 1;
                else
                {
                    Span<int> axes = axesArg.Length <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[axesArg.Length];
                    axes = axes[..axesArg.Length];
                    OpArgs.Axes(ctx, axesArg, dims.Length, axes);
                    foreach (int a in axes)
                    {
                        if (dims[a] != 1) throw ctx.Invalid($"cannot squeeze axis {a} of shape {OpArgs.Format(dims)}: its size is not 1");
                        drop[a] = true;
                    }
                }
                Span<int> shape = dims.Length <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[dims.Length];
                int rank = 0;
                for (int d = 0; d < dims.Length; d++) if (!drop[d]) shape[rank++] = dims[d];
                ctx.SetOutputView(0, x, shape[..rank]);
            });
        })
        {
            DifferentiableInputs = [0],
            // dX = Reshape(dY, Shape(X)) (PyTorch derivatives.yaml squeeze: unsqueeze_to(grad, sizes)).
            Vjp = ctx => [ReshapeLike(ctx, ctx.OutputGrad(0)!, ctx.Input(0))],
        });

        // Unsqueeze (ONNX spec "Unsqueeze", versions 1, 11, 13): inserts dimensions of size 1 at the listed positions of
        // the output (negative from opset 11, in any order); axes are an attribute before 13 and an input from 13.
        ops.Add(new OpDefinition("Unsqueeze", op =>
        {
            long[]? attrAxes = null;
            if (op.OpsetVersion < 13) attrAxes = op.Node.GetInts("axes") ?? throw op.Unsupported("Unsqueeze before opset 13 needs the 'axes' attribute");
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                Span<long> scratch = stackalloc long[OpArgs.StackRank];
                ReadOnlySpan<long> axesArg = attrAxes is not null ? attrAxes : OpArgs.Int64s(ctx, ctx.RequiredInput(1), "axes", scratch);
                int outRank = x.Rank + axesArg.Length;
                Span<int> axes = axesArg.Length <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[axesArg.Length];
                axes = axes[..axesArg.Length];
                OpArgs.Axes(ctx, axesArg, outRank, axes);
                // The output shape: 1 at every listed axis (marked with 0 first), the input's dimensions elsewhere in order.
                Span<int> shape = outRank <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[outRank];
                shape = shape[..outRank];
                shape.Fill(-1);
                foreach (int a in axes) shape[a] = 1;
                for (int d = 0, k = 0; d < outRank; d++) if (shape[d] < 0) shape[d] = x.Dims[k++];
                ctx.SetOutputView(0, x, shape);
            });
        })
        {
            DifferentiableInputs = [0],
            // dX = Reshape(dY, Shape(X)) (PyTorch derivatives.yaml unsqueeze: grad.squeeze(dim)).
            Vjp = ctx => [ReshapeLike(ctx, ctx.OutputGrad(0)!, ctx.Input(0))],
        });

        // Shape (ONNX spec "Shape", versions 1, 13, 15): the input's dimensions as int64; from opset 15 only those in
        // [start, end), negative values counting from the back and both clamped to [0, rank].
        ops.Add(new OpDefinition("Shape", op =>
        {
            long start = op.Node.GetInt("start", 0);
            long? end = op.Node.FindAttribute("end") is null ? null : op.Node.GetInt("end", 0);
            return new LambdaKernel(ctx =>
            {
                var dims = ctx.RequiredInput(0).Dims;
                int rank = dims.Length;
                int Clamp(long v) => (int)Math.Clamp(v < 0 ? v + rank : v, 0, rank);
                int s = Clamp(start), e = end is { } en ? Clamp(en) : rank;
                // From the plan's pool: its wrapper and buffer come back every run, so Shape allocates nothing in steady state.
                var result = ctx.AllocateUninitialized(DataType.Int64, [Math.Max(0, e - s)]);
                var r = result.AsSpan<long>();
                for (int i = 0; i < r.Length; i++) r[i] = dims[s + i];
                ctx.SetOutput(0, result);
            });
        })
        {
            InferTypes = TypeInferencePass.Fixed(DataType.Int64),
            NonDifferentiable = true,
        });

        // Size (ONNX spec "Size", versions 1, 13): the number of elements as an int64 scalar.
        ops.Add(new OpDefinition("Size", _ => new LambdaKernel(ctx =>
        {
            var size = ctx.AllocateUninitialized(DataType.Int64, []);
            size.AsSpan<long>()[0] = ctx.RequiredInput(0).ElementCount;
            ctx.SetOutput(0, size);
        }))
        {
            InferTypes = TypeInferencePass.Fixed(DataType.Int64),
            NonDifferentiable = true,
        });

        // Expand (ONNX spec "Expand", versions 8, 13): broadcasts the input and the given shape together
        // (multidirectional: the output shape is the broadcast of both).
        ops.Add(new OpDefinition("Expand", op =>
        {
            DataMovement.RequireMovable(op, 0);
            ExpandPlan? plan = null;
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                Span<long> scratch = stackalloc long[OpArgs.StackRank];
                var targetArg = OpArgs.Int64s(ctx, ctx.RequiredInput(1), "shape", scratch);
                int rank = Math.Max(x.Rank, targetArg.Length);
                Span<int> target = targetArg.Length <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[targetArg.Length];
                target = target[..targetArg.Length];
                OpArgs.Dims(ctx, targetArg, target, "shape");
                Span<int> outShape = rank <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[rank];
                outShape = outShape[..rank];
                if (!Broadcast.TryShape(x.Dims, target, outShape))
                    throw ctx.Invalid($"shapes {OpArgs.Format(x.Dims)} and {OpArgs.Format(target)} cannot be broadcast together");
                if (outShape.SequenceEqual(x.Dims)) { ctx.SetOutput(0, x); return; }
                // The output shape and the input's broadcast strides depend only on the shapes: kept while they repeat.
                var p = plan;
                if (p is null || !p.InDims.AsSpan().SequenceEqual(x.Dims) || !p.OutShape.AsSpan().SequenceEqual(outShape))
                    plan = p = new ExpandPlan(x.Dims.ToArray(), outShape.ToArray(), Broadcast.Strides(x.Dims, outShape), ExpandFillBlock(x.Dims, outShape));
                // Every element is written (no index tables), so the pooled buffer need not be cleared.
                var result = ctx.AllocateUninitialized(x.ElementType, p.OutShape);
                if (p.FillBlock > 0 && x.ElementType == DataType.Float) ExpandByFill(x.AsSpan<float>(), result.AsSpan<float>(), p.FillBlock);
                else if (p.FillBlock > 0 && x.ElementType == DataType.Double) ExpandByFill(x.AsSpan<double>(), result.AsSpan<double>(), p.FillBlock);
                else DataMovement.GatherStrided(x, result, p.OutShape, 0, p.Strides, threads: ctx.Options.Threads);
                ctx.SetOutput(0, result);
            });
        }, minVersion: 8)
        {
            DifferentiableInputs = [0],
            // dX = dY summed over the broadcast dimensions back to Shape(X) (PyTorch derivatives.yaml expand:
            // at::sum_to(grad, self.sizes())).
            Vjp = ctx => [ctx.Emit.SumToShapeOf(ctx.OutputGrad(0)!, ctx.Input(0))],
        });
    }

    /// <summary>
    /// Expand's shapes for one input shape: the output shape, the input's strides in it (0 where broadcast), and the
    /// block each input element fills when only trailing axes are broadcast (0 otherwise; see <see cref="ExpandFillBlock"/>).
    /// </summary>
    private sealed record ExpandPlan(int[] InDims, int[] OutShape, long[] Strides, int FillBlock);

    /// <summary>
    /// When X has the output's rank, equals it on leading axes and is 1 on every axis after them (e.g. [N, C, 1, 1] →
    /// [N, C, H, W], GlobalAveragePool's gradient), each input element fills one contiguous block of the output: its
    /// length. 0 when the broadcast is of another form.
    /// </summary>
    private static int ExpandFillBlock(ReadOnlySpan<int> x, ReadOnlySpan<int> output)
    {
        if (x.Length != output.Length) return 0;
        int k = x.Length;
        while (k > 0 && x[k - 1] == 1) k--;
        for (int d = 0; d < k; d++) if (x[d] != output[d]) return 0;
        long block = 1;
        for (int d = k; d < output.Length; d++) block *= output[d];
        return block is > 1 and <= int.MaxValue ? (int)block : 0;
    }

    /// <summary>y[i·block .. (i+1)·block) = x[i] for every element i of x (the trailing-axes Expand).</summary>
    private static void ExpandByFill<T>(ReadOnlySpan<T> x, Span<T> y, int block)
    {
        for (int i = 0; i < x.Length; i++) y.Slice(i * block, block).Fill(x[i]);
    }

    /// <summary>The output shape of Reshape into <paramref name="dims"/>: 0 copies the input dimension unless allowzero, one -1 is inferred.</summary>
    internal static void ReshapeTarget(KernelContext ctx, int[] input, ReadOnlySpan<long> shape, bool allowZero, Span<int> dims)
    {
        int inferred = -1;
        long known = 1;
        long count = OpArgs.Product(input, 0, input.Length);
        static string Text(int[] input, ReadOnlySpan<long> shape) => $"cannot reshape {OpArgs.Format(input)} to [{string.Join(',', shape.ToArray())}]";
        for (int i = 0; i < shape.Length; i++)
        {
            long s = shape[i];
            if (s == -1)
            {
                if (inferred >= 0) throw ctx.Invalid($"{Text(input, shape)}: more than one -1");
                inferred = i;
                continue;
            }
            if (s == 0 && !allowZero)
            {
                if (i >= input.Length) throw ctx.Invalid($"{Text(input, shape)}: a 0 at position {i} has no input dimension to copy");
                s = input[i];
            }
            if (s < 0 || s > int.MaxValue) throw ctx.Invalid($"{Text(input, shape)}: invalid dimension {shape[i]}");
            dims[i] = (int)s;
            known *= s;
        }
        if (inferred >= 0)
        {
            if (known == 0 || count % known != 0) throw ctx.Invalid($"{Text(input, shape)}: the -1 dimension cannot be inferred");
            dims[inferred] = checked((int)(count / known));
        }
        else if (known != count) throw ctx.Invalid($"{Text(input, shape)}: {count} elements do not fit");
    }
}
