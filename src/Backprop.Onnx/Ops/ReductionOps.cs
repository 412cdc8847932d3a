using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Reductions over axes (ReduceSum, ReduceMean, ReduceMax, …, ONNX spec "Reduce*") and index reductions
/// (ArgMax, ArgMin). Kernels: ReductionOps.Kernels.cs; gradient rules: ReductionOps.Gradients.cs.
/// </summary>
internal static partial class ReductionOps
{
    /// <summary>The reduction a Reduce* op applies to each set of reduced elements.</summary>
    internal enum ReduceKind { Sum, Mean, SumSquare, L1, L2, LogSum, LogSumExp, Prod, Max, Min }

    public static void Register(List<OpDefinition> ops)
    {
        // ONNX spec "ReduceSum" (versions 1, 11, 13): Σ over axes. axes is an attribute before opset 13 and an optional
        // int64 input from 13, which also adds noop_with_empty_axes.
        ops.Add(Reduction("ReduceSum", ReduceKind.Sum, axesInputFrom: 13));
        // ONNX spec "ReduceMean" (1, 11, 13): Σx / count.
        ops.Add(Reduction("ReduceMean", ReduceKind.Mean));
        // ONNX spec "ReduceSumSquare" (1, 11, 13): Σ x².
        ops.Add(Reduction("ReduceSumSquare", ReduceKind.SumSquare));
        // ONNX spec "ReduceL1" (1, 11, 13): Σ |x|.
        ops.Add(Reduction("ReduceL1", ReduceKind.L1));
        // ONNX spec "ReduceL2" (1, 11, 13): sqrt(Σ x²).
        ops.Add(Reduction("ReduceL2", ReduceKind.L2));
        // ONNX spec "ReduceLogSum" (1, 11, 13): log(Σ x).
        ops.Add(Reduction("ReduceLogSum", ReduceKind.LogSum));
        // ONNX spec "ReduceLogSumExp" (1, 11, 13): log(Σ exp x), computed as m + log Σ exp(x - m) with m = max x.
        ops.Add(Reduction("ReduceLogSumExp", ReduceKind.LogSumExp));
        // ONNX spec "ReduceProd" (1, 11, 13): Π x.
        ops.Add(Reduction("ReduceProd", ReduceKind.Prod));
        // ONNX spec "ReduceMax" (1, 11, 12, 13): max x (-inf, or the type's minimum, over an empty set).
        ops.Add(Reduction("ReduceMax", ReduceKind.Max));
        // ONNX spec "ReduceMin" (1, 11, 12, 13): min x (+inf, or the type's maximum, over an empty set).
        ops.Add(Reduction("ReduceMin", ReduceKind.Min));

        // ONNX spec "ArgMax" / "ArgMin" (1, 11, 12, 13): int64 index of the first (or, with select_last_index, the
        // last) extreme element along axis; NaN counts as the extreme, as in NumPy.
        ops.Add(new OpDefinition("ArgMax", op => CreateArgExtreme(op, max: true))
        {
            InferTypes = TypeInferencePass.Fixed(DataType.Int64),
            NonDifferentiable = true,
        });
        ops.Add(new OpDefinition("ArgMin", op => CreateArgExtreme(op, max: false))
        {
            InferTypes = TypeInferencePass.Fixed(DataType.Int64),
            NonDifferentiable = true,
        });

        ops.Add(ReduceGradDefinition());
    }

    /// <summary>A Reduce* definition; <paramref name="axesInputFrom"/> is the opset where axes became an input.</summary>
    private static OpDefinition Reduction(string opType, ReduceKind kind, int axesInputFrom = 18) =>
        new(opType, op => CreateReduce(op, kind, axesInputFrom))
        {
            Vjp = ReduceVjp(kind),
            DifferentiableInputs = [0],
        };

    /// <summary>Attributes of a Reduce* node, parsed once.</summary>
    internal sealed record ReduceAttributes(long[]? Axes, bool AxesAsInput, bool KeepDims, bool NoopWithEmptyAxes);

    internal static ReduceAttributes ParseReduce(OpContext op, int axesInputFrom)
    {
        bool axesAsInput = op.OpsetVersion >= axesInputFrom;
        var node = op.Node;
        long[]? axes = node.GetInts("axes");
        if (axesAsInput && axes is not null) throw op.Unsupported($"'axes' is an input from opset {axesInputFrom}, not an attribute");
        if (!axesAsInput && node.Inputs.Count > 1) throw op.Unsupported($"an axes input needs opset {axesInputFrom} or later");
        long keep = node.GetInt("keepdims", 1);
        long noop = node.GetInt("noop_with_empty_axes", 0);
        if (keep is not (0 or 1)) throw op.Unsupported($"keepdims={keep} (0 or 1)");
        if (noop is not (0 or 1)) throw op.Unsupported($"noop_with_empty_axes={noop} (0 or 1)");
        if (noop == 1 && !axesAsInput) throw op.Unsupported($"noop_with_empty_axes before opset {axesInputFrom}");
        return new ReduceAttributes(axes, axesAsInput, keep == 1, noop == 1);
    }

    /// <summary>
    /// The axes a Reduce* node reduces at run time, as flags per dimension; null means "no-op" (empty axes with
    /// noop_with_empty_axes). Empty or absent axes mean every axis.
    /// </summary>
    internal static bool[]? ReducedAxes(KernelContext ctx, ReduceAttributes a, int rank, int axesInput = 1)
    {
        var reduced = new bool[rank];
        return ReducedAxes(ctx, a, reduced, axesInput) ? reduced : null;
    }

    /// <summary>As <see cref="ReducedAxes(KernelContext, ReduceAttributes, int, int)"/> into <paramref name="reduced"/> (one flag per dimension); false for "no-op".</summary>
    internal static bool ReducedAxes(KernelContext ctx, ReduceAttributes a, Span<bool> reduced, int axesInput = 1)
    {
        Span<long> scratch = stackalloc long[OpArgs.StackRank];
        var input = a.AxesAsInput ? ctx.Input(axesInput) : null;
        ReadOnlySpan<long> axes = input is not null ? ReadInts(ctx, input, "axes", scratch) : a.AxesAsInput ? default : a.Axes;
        reduced.Clear();
        if (axes.IsEmpty)
        {
            if (a.NoopWithEmptyAxes) return false;
            reduced.Fill(true);
            return true;
        }
        foreach (long axis in axes)
        {
            int d = NormalizeAxis(ctx, axis, reduced.Length, "axes entry");
            if (reduced[d]) throw ctx.Invalid($"axes lists axis {axis} twice");
            reduced[d] = true;
        }
        return true;
    }

    /// <summary>The output shape: reduced dimensions become 1 (keepdims) or are dropped.</summary>
    internal static int[] ReducedShape(ReadOnlySpan<int> shape, bool[] reduced, bool keepDims)
    {
        var result = new List<int>(shape.Length);
        for (int d = 0; d < shape.Length; d++)
        {
            if (!reduced[d]) result.Add(shape[d]);
            else if (keepDims) result.Add(1);
        }
        return [.. result];
    }

    private static Kernel CreateReduce(OpContext op, ReduceKind kind, int axesInputFrom)
    {
        var attrs = ParseReduce(op, axesInputFrom);
        var type = op.InputType(0);
        if (type != DataType.Undefined && !Supports(kind, type))
            throw op.Unsupported($"{op.Node.OpType} of {DataTypes.OnnxName(type)}");
        ReducePlan? plan = null;
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            Span<bool> reduced = x.Rank <= OpArgs.StackRank ? stackalloc bool[OpArgs.StackRank] : new bool[x.Rank];
            reduced = reduced[..x.Rank];
            if (!ReducedAxes(ctx, attrs, reduced)) { ctx.SetOutput(0, x); return; }
            if (!Supports(kind, x.ElementType)) throw op.Unsupported($"{op.Node.OpType} of {DataTypes.OnnxName(x.ElementType)}");
            ctx.SetOutput(0, Reduce(ctx, x, ReducePlan.For(ref plan, x.Dims, reduced, attrs.KeepDims), kind));
        });
    }

    /// <summary>Element types each reduction runs on: float types for all; exact integer arithmetic where it is exact.</summary>
    private static bool Supports(ReduceKind kind, DataType type) => type switch
    {
        DataType.Float or DataType.Double or DataType.Float16 => true,
        DataType.Int32 or DataType.Int64 or DataType.UInt32 or DataType.UInt64 =>
            kind is ReduceKind.Sum or ReduceKind.Mean or ReduceKind.SumSquare or ReduceKind.L1 or ReduceKind.Prod or ReduceKind.Max or ReduceKind.Min,
        DataType.Int8 or DataType.UInt8 => kind is ReduceKind.Max or ReduceKind.Min,
        _ => false,
    };
}
