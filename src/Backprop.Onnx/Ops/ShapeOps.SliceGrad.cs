using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// SliceGrad, the adjoint of Slice, for one window or several: the cotangent of a tensor that several Slices read
/// (e.g. the q, k, v split of an attention in-projection) is the sum of their SliceGrads, which the autodiff pass
/// emits as one multi-window SliceGrad instead of k zero-filled tensors and a Sum.
/// </summary>
internal static partial class ShapeOps
{
    private static void RegisterSliceGrad(List<OpDefinition> ops)
    {
        // SliceGrad(dY, shape, starts, ends, axes?, steps?, [dY_j, starts_j, ends_j, axes_j, steps_j]…): zeros of
        // `shape` plus, for every window j, dY_j added at the elements Slice(starts_j, ends_j, axes_j, steps_j) selects
        // (the adjoint of Slice, PyTorch derivatives.yaml slice_backward; several windows are the sum of their adjoints,
        // so overlapping windows add). Window 0 is inputs 0 and 2-5; window j ≥ 1 is inputs 5j+1 to 5j+5.
        // Standard ops (export): per window, ScatterElements of dY_j into zeros at Slice(flat indices of the input);
        // the Sum of those when there are several.
        ops.Add(new OpDefinition("SliceGrad", op =>
        {
            int windows = SliceGradWindowCount(op.Node.Inputs.Count) ?? throw op.Unsupported($"{op.Node.Inputs.Count} inputs (expected 4-6, then 3-5 per further window)");
            SliceGradLayout? kept = null;
            return new LambdaKernel(ctx =>
            {
                // The arguments are read into stack spans; the windows' plans and their layout are kept, as one immutable
                // object read once per call (concurrent runs of a plan share this kernel), while the arguments repeat,
                // so a steady-state call allocates nothing but its output.
                Span<long> s1 = stackalloc long[OpArgs.StackRank], s2 = stackalloc long[OpArgs.StackRank], s3 = stackalloc long[OpArgs.StackRank];
                Span<long> s4 = stackalloc long[OpArgs.StackRank], s5 = stackalloc long[OpArgs.StackRank];
                var shape = OpArgs.Int64s(ctx, ctx.RequiredInput(1), "shape", s1);
                var type = ctx.RequiredInput(0).ElementType;
                var l = kept;
                SliceGradPlan[]? fresh = null;
                for (int j = 0; j < windows; j++)
                {
                    var cached = l?.Plans[j];
                    var p = SliceGradPlan.For(ctx, cached, shape, 5 * j + 2, s2, s3, s4, s5);
                    if (fresh is null && !ReferenceEquals(p, cached))
                    {
                        fresh = new SliceGradPlan[windows];
                        for (int k = 0; k < j; k++) fresh[k] = l!.Plans[k];
                    }
                    if (fresh is not null) fresh[j] = p;
                    var dy = ctx.RequiredInput(SliceGradDyIndex(j));
                    if (dy.ElementType != type) throw ctx.Invalid($"dY of window {j} is {DataTypes.OnnxName(dy.ElementType)}, window 0's is {DataTypes.OnnxName(type)}");
                    RequireShape(ctx, dy, p.Counts);
                }
                if (fresh is not null) kept = l = SliceGradLayout.Create(fresh);
                if (l!.Maps is not null && !NumericDispatch.Supports(type)) throw ctx.Invalid($"overlapping windows of element type {DataTypes.OnnxName(type)} cannot be added");
                // Disjoint windows that cover the tensor write every element once: no zero fill.
                var result = l.Covers ? ctx.AllocateUninitialized(type, l.Dims) : ctx.Allocate(type, l.Dims);
                for (int j = 0; j < windows; j++)
                {
                    var p = l.Plans[j];
                    var dy = ctx.RequiredInput(SliceGradDyIndex(j));
                    if (l.Maps is null) StridedScatter.Run(dy, result, p.Counts, p.Offset, p.Strides, ctx.Options.Threads);
                    else NumericDispatch.AddAt(result, dy, l.Maps[j]);
                }
                ctx.SetOutput(0, result);
            });
        }, OpRegistry.BackpropDomain)
        {
            StandardOps = SliceGradStandard,
        });
    }

    /// <summary>
    /// The number of windows of a SliceGrad node with <paramref name="inputs"/> inputs (the last window's absent axes
    /// and steps may be trimmed, as for one window), or null for a malformed count.
    /// </summary>
    internal static int? SliceGradWindowCount(int inputs) =>
        inputs is >= 4 and <= 6 ? 1 : inputs > 6 && (inputs - 6) % 5 is 0 or >= 3 ? 1 + (inputs - 2) / 5 : null;

    /// <summary>The input index of window <paramref name="j"/>'s dY (its starts, ends, axes, steps follow at 5j+2 to 5j+5).</summary>
    internal static int SliceGradDyIndex(int j) => j == 0 ? 0 : 5 * j + 1;

    /// <summary>
    /// The windows of one SliceGrad (their plans) and how they lie in dX: pairwise disjoint (each is then a plain
    /// strided copy), and if so whether they cover every element (then dX needs no zero fill). Overlapping windows are
    /// added through per-window index maps, built once here. Immutable.
    /// </summary>
    private sealed class SliceGradLayout
    {
        public SliceGradPlan[] Plans { get; private init; } = [];
        public int[] Dims { get; private init; } = [];
        public bool Covers { get; private init; }

        /// <summary>Per window, the flat dX index of each dY element; null when the windows are disjoint.</summary>
        public int[][]? Maps { get; private init; }

        public static SliceGradLayout Create(SliceGradPlan[] plans)
        {
            var dims = plans[0].Dims;
            bool disjoint = true;
            for (int a = 0; a < plans.Length && disjoint; a++)
                for (int b = a + 1; b < plans.Length && disjoint; b++)
                    disjoint = Disjoint(plans[a], plans[b], dims);
            long total = 1, covered = 0;
            foreach (int d in dims) total *= d;
            foreach (var p in plans)
            {
                long n = 1;
                foreach (int c in p.Counts) n *= c;
                covered += n;
            }
            return new SliceGradLayout
            {
                Plans = plans,
                Dims = dims,
                Covers = disjoint && covered == total,
                Maps = disjoint ? null : [.. plans.Select(p => DataMovement.StridedMap(p.Counts, p.Offset, p.Strides))],
            };
        }

        /// <summary>
        /// Two windows (Cartesian products of one arithmetic progression of indices per axis) share no element exactly
        /// when, on some axis, their progressions share no index (or one of them is empty).
        /// </summary>
        private static bool Disjoint(SliceGradPlan a, SliceGradPlan b, int[] dims)
        {
            for (int d = 0; d < dims.Length; d++)
            {
                var (x, y) = (a.Axes[d], b.Axes[d]);
                if (x.Count == 0 || y.Count == 0) return true;
                var hit = new bool[dims[d]];
                for (int k = 0; k < x.Count; k++) hit[x.Start + k * x.Step] = true;
                bool shared = false;
                for (int k = 0; k < y.Count && !shared; k++) shared = hit[y.Start + k * y.Step];
                if (!shared) return true;
            }
            return false;
        }
    }

    /// <summary>
    /// SliceGrad's window for one set of arguments: the input shape, the slice's counts per axis, and where dY's elements
    /// go in the zero-filled dX (offset and strides). Immutable; a kernel keeps its last one.
    /// </summary>
    private sealed class SliceGradPlan
    {
        private long[] _shape = [], _starts = [], _ends = [];
        private long[]? _axes, _steps;

        public int[] Dims { get; private init; } = [];
        public int[] Counts { get; private init; } = [];
        public long Offset { get; private init; }
        public long[] Strides { get; private init; } = [];

        /// <summary>Per axis of dX, the first index, step and count of the window.</summary>
        public SliceAxis[] Axes { get; private init; } = [];

        /// <summary>
        /// The window that Slice's arguments (starts, ends, axes?, steps? at inputs <paramref name="first"/> to
        /// first + 3) select in <paramref name="shape"/>: <paramref name="cached"/> while they repeat, else a new plan.
        /// The arguments are read into the caller's stack scratch (each <see cref="OpArgs.StackRank"/> long), so a
        /// steady-state call allocates nothing. Shared by Slice (shape of X) and SliceGrad (its shape input).
        /// </summary>
        public static SliceGradPlan For(KernelContext ctx, SliceGradPlan? cached, ReadOnlySpan<long> shape, int first,
            Span<long> startsScratch, Span<long> endsScratch, Span<long> axesScratch, Span<long> stepsScratch)
        {
            var starts = OpArgs.Int64s(ctx, ctx.RequiredInput(first), "starts", startsScratch);
            var ends = OpArgs.Int64s(ctx, ctx.RequiredInput(first + 1), "ends", endsScratch);
            var axesInput = ctx.Input(first + 2);
            var stepsInput = ctx.Input(first + 3);
            var axes = axesInput is null ? default : OpArgs.Int64s(ctx, axesInput, "axes", axesScratch);
            var steps = stepsInput is null ? default : OpArgs.Int64s(ctx, stepsInput, "steps", stepsScratch);
            if (cached is not null && cached.Matches(shape, starts, ends, axesInput is not null, axes, stepsInput is not null, steps)) return cached;
            return Create(ctx, shape.ToArray(), starts.ToArray(), ends.ToArray(), axesInput is null ? null : axes.ToArray(), stepsInput is null ? null : steps.ToArray());
        }

        public static SliceGradPlan Create(KernelContext ctx, long[] shape, long[] starts, long[] ends, long[]? axes, long[]? steps)
        {
            var dims = OpArgs.Dims(ctx, shape, "shape");
            var sa = SliceAxes(ctx, dims, starts, ends, axes, steps);
            var strides = Broadcast.ContiguousStrides(dims);
            var counts = new int[dims.Length];
            var sliceStrides = new long[dims.Length];
            long offset = 0;
            for (int d = 0; d < dims.Length; d++)
            {
                counts[d] = sa[d].Count;
                sliceStrides[d] = strides[d] * sa[d].Step;
                if (counts[d] > 0) offset += strides[d] * sa[d].Start;
            }
            return new SliceGradPlan
            {
                _shape = shape, _starts = starts, _ends = ends, _axes = axes, _steps = steps,
                Dims = dims, Counts = counts, Offset = offset, Strides = sliceStrides, Axes = sa,
            };
        }

        public bool Matches(ReadOnlySpan<long> shape, ReadOnlySpan<long> starts, ReadOnlySpan<long> ends, bool hasAxes, ReadOnlySpan<long> axes, bool hasSteps, ReadOnlySpan<long> steps) =>
            shape.SequenceEqual(_shape) && starts.SequenceEqual(_starts) && ends.SequenceEqual(_ends)
            && hasAxes == _axes is not null && (!hasAxes || axes.SequenceEqual(_axes))
            && hasSteps == _steps is not null && (!hasSteps || steps.SequenceEqual(_steps));
    }
}
