using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>The Einsum operator.</summary>
internal static partial class MatMulOps
{
    /// <summary>
    /// Einsum (ONNX spec "Einsum", version 12; numpy.einsum semantics): explicit (<c>-&gt;</c>) and implicit output
    /// (ellipsis dimensions, then the labels used once in increasing character order), repeated labels in one operand
    /// (diagonals), ellipsis with broadcasting. Each operand becomes a strided view (a repeated label's strides add up,
    /// a broadcast dimension has stride 0); operands are contracted left to right, each pair as one batched GEMM after
    /// labels used by neither the output nor a later operand are summed out.
    /// </summary>
    private static Kernel CreateEinsum(OpContext op)
    {
        if (IsHalfType(op.InputType(0))) return Widened(op, CreateEinsum);
        for (int i = 0; i < op.Node.Inputs.Count; i++) op.RequireInputType(i, MatMulTypes);
        string equation = op.Node.GetString("equation", "");
        var parsed = ParseEquation(op, equation, op.Node.Inputs.Count);
        // The plan for the last input shapes seen (immutable; a training step repeats the same shapes every step).
        EinsumPlan? last = null;
        return new LambdaKernel(ctx =>
        {
            var inputs = new OnnxTensor[ctx.InputCount];
            for (int i = 0; i < inputs.Length; i++)
            {
                inputs[i] = ctx.RequiredInput(i);
                if (inputs[i].ElementType != inputs[0].ElementType) throw ctx.Invalid("Einsum inputs have different element types");
            }
            var plan = Volatile.Read(ref last);
            if (plan is null || !plan.Fits(inputs))
            {
                plan = PlanEinsum(ctx, parsed, inputs);
                Volatile.Write(ref last, plan);
            }
            ctx.SetOutput(0, plan.Run(ctx, inputs));
        });
    }

    /// <summary>An equation's terms: per input, its labels with <see cref="Ellipsis"/> for "..."; the output likewise (null when implicit).</summary>
    private sealed record EinsumEquation(List<int>[] Inputs, List<int>? Output);

    private const int Ellipsis = -1;

    /// <summary>Labels of ellipsis dimensions: EllipsisLabel + position within the broadcast ellipsis (right-aligned).</summary>
    private const int EllipsisLabel = 1000;

    private static EinsumEquation ParseEquation(OpContext op, string equation, int inputCount)
    {
        string eq = string.Concat(equation.Where(ch => !char.IsWhiteSpace(ch)));
        int arrow = eq.IndexOf("->", StringComparison.Ordinal);
        string lhs = arrow >= 0 ? eq[..arrow] : eq;
        var terms = lhs.Split(',');
        if (terms.Length != inputCount) throw op.Unsupported($"equation '{equation}' has {terms.Length} input terms for {inputCount} inputs");
        List<int> Parse(string term)
        {
            var labels = new List<int>();
            for (int i = 0; i < term.Length; i++)
            {
                if (term[i] == '.')
                {
                    if (i + 2 >= term.Length || term[i + 1] != '.' || term[i + 2] != '.' || labels.Contains(Ellipsis))
                        throw op.Unsupported($"malformed ellipsis in equation '{equation}'");
                    labels.Add(Ellipsis);
                    i += 2;
                }
                else if (char.IsAsciiLetter(term[i])) labels.Add(term[i]);
                else throw op.Unsupported($"character '{term[i]}' in equation '{equation}'");
            }
            return labels;
        }
        return new EinsumEquation([.. terms.Select(Parse)], arrow >= 0 ? Parse(eq[(arrow + 2)..]) : null);
    }

    /// <summary>
    /// A strided view of a tensor with one label per dimension (labels unique within the view), described by shape only:
    /// <paramref name="DataDims"/> and <paramref name="DataCount"/> are those of the tensor the view reads.
    /// </summary>
    private sealed record EinsumView(int[] Labels, int[] Dims, long[] Strides, int[] DataDims, long DataCount)
    {
        /// <summary>The view of a contiguous tensor of <paramref name="dims"/> over <paramref name="labels"/>.</summary>
        public static EinsumView Dense(int[] labels, int[] dims) =>
            new(labels, dims, Broadcast.ContiguousStrides(dims), dims, dims.Aggregate(1L, (p, d) => p * d));
    }

    /// <summary>Plans Einsum for the shapes of <paramref name="inputs"/> (their data is not read).</summary>
    private static EinsumPlan PlanEinsum(KernelContext ctx, EinsumEquation eq, OnnxTensor[] inputs)
    {
        // Ellipsis rank and label sizes.
        int ellipsisRank = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            int named = eq.Inputs[i].Count(l => l != Ellipsis);
            bool hasEllipsis = eq.Inputs[i].Contains(Ellipsis);
            if (hasEllipsis ? inputs[i].Rank < named : inputs[i].Rank != named)
                throw ctx.Invalid($"input {i} of rank {inputs[i].Rank} does not fit its term of {named} labels");
            if (hasEllipsis) ellipsisRank = Math.Max(ellipsisRank, inputs[i].Rank - named);
        }
        var sizes = new Dictionary<int, int>();
        var expanded = new int[inputs.Length][];
        for (int i = 0; i < inputs.Length; i++)
        {
            expanded[i] = Expand(eq.Inputs[i], inputs[i].Rank, ellipsisRank);
            for (int d = 0; d < expanded[i].Length; d++)
            {
                int l = expanded[i][d], size = inputs[i].Dims[d];
                if (!sizes.TryGetValue(l, out int known) || known == 1) sizes[l] = size;
                else if (size != known && size != 1) throw ctx.Invalid($"label {LabelName(l)} has sizes {known} and {size}");
            }
        }
        int[] output;
        if (eq.Output is not null)
        {
            output = Expand(eq.Output, -1, ellipsisRank);
            foreach (int l in output)
                if (!sizes.ContainsKey(l)) throw ctx.Invalid($"output label {LabelName(l)} appears in no input");
            if (output.Distinct().Count() != output.Length) throw ctx.Invalid("an output label repeats");
        }
        else
        {
            var counts = expanded.SelectMany(e => e).Where(l => l < EllipsisLabel).GroupBy(l => l).Where(g => g.Count() == 1).Select(g => g.Key).Order();
            output = [.. Enumerable.Range(0, ellipsisRank).Select(j => EllipsisLabel + j), .. counts];
        }

        var views = new EinsumView[inputs.Length];
        for (int i = 0; i < inputs.Length; i++) views[i] = MakeView(ctx, inputs[i], expanded[i], sizes);
        var current = views[0];
        var steps = new EinsumContraction[views.Length - 1];
        for (int i = 1; i < views.Length; i++)
        {
            var keep = new HashSet<int>(output);
            for (int j = i + 1; j < views.Length; j++) keep.UnionWith(views[j].Labels);
            (steps[i - 1], current) = Contract(current, views[i], keep);
        }
        var (final, _) = Gather(current, output);
        return new EinsumPlan([.. inputs.Select(x => (int[])x.Dims.Clone())], steps, final);
    }

    private static string LabelName(int l) => l >= EllipsisLabel ? $"...[{l - EllipsisLabel}]" : ((char)l).ToString();

    /// <summary>Replaces the ellipsis by its right-aligned ellipsis labels (<paramref name="rank"/> -1: the full ellipsis).</summary>
    private static int[] Expand(List<int> term, int rank, int ellipsisRank)
    {
        int named = term.Count(l => l != Ellipsis);
        int e = rank < 0 ? ellipsisRank : rank - named;
        var result = new List<int>();
        foreach (int l in term)
        {
            if (l == Ellipsis) for (int j = 0; j < e; j++) result.Add(EllipsisLabel + ellipsisRank - e + j);
            else result.Add(l);
        }
        return [.. result];
    }

    /// <summary>The strided view of an input: repeated labels become one dimension (the diagonal), size-1 dimensions broadcast.</summary>
    private static EinsumView MakeView(KernelContext ctx, OnnxTensor x, int[] labels, Dictionary<int, int> sizes)
    {
        var contiguous = Broadcast.ContiguousStrides(x.Dims);
        var order = new List<int>();
        var strides = new Dictionary<int, long>();
        for (int d = 0; d < labels.Length; d++)
        {
            int l = labels[d];
            long s = x.Dims[d] == 1 && sizes[l] != 1 ? 0 : contiguous[d];
            if (strides.TryGetValue(l, out long prior))
            {
                if (x.Dims[d] != x.Dims[labels.AsSpan(0, d).IndexOf(l)]) throw ctx.Invalid($"repeated label {LabelName(l)} has different sizes in one input");
                strides[l] = prior + s;
            }
            else
            {
                order.Add(l);
                strides[l] = s;
            }
        }
        return new EinsumView([.. order], [.. order.Select(l => sizes[l])], [.. order.Select(l => strides[l])], (int[])x.Dims.Clone(), x.ElementCount);
    }

    /// <summary>
    /// Plans the contraction of two views into a contiguous one whose labels are the kept ones: batch, then left-only,
    /// then right-only. An operand already laid out as (batch, contracted, kept) instead of (batch, kept, contracted)
    /// enters the GEMM transposed rather than copied.
    /// </summary>
    private static (EinsumContraction Step, EinsumView Result) Contract(EinsumView x, EinsumView y, HashSet<int> keep)
    {
        var batch = x.Labels.Where(l => y.Labels.Contains(l) && keep.Contains(l)).ToArray();
        var contracted = x.Labels.Where(l => y.Labels.Contains(l) && !keep.Contains(l)).ToArray();
        var xKept = x.Labels.Where(l => !y.Labels.Contains(l) && keep.Contains(l)).ToArray();
        var yKept = y.Labels.Where(l => !x.Labels.Contains(l) && keep.Contains(l)).ToArray();
        int Size(EinsumView v, int[] labels) => labels.Aggregate(1, (p, l) => checked(p * v.Dims[Array.IndexOf(v.Labels, l)]));
        // Gather sums out labels used by neither the other operand nor later (not listed in the target order).
        bool transA = IsContiguousAs(x, [.. batch, .. contracted, .. xKept]);
        bool transB = IsContiguousAs(y, [.. batch, .. yKept, .. contracted]);
        var (xGather, xs) = transA ? (null, x) : Gather(x, [.. batch, .. xKept, .. contracted]);
        var (yGather, ys) = transB ? (null, y) : Gather(y, [.. batch, .. contracted, .. yKept]);
        int b = Size(xs, batch), m = Size(xs, xKept), k = Size(xs, contracted), n = Size(ys, yKept);
        int[] dims = [.. batch.Select(l => xs.Dims[Array.IndexOf(xs.Labels, l)]), .. xKept.Select(l => xs.Dims[Array.IndexOf(xs.Labels, l)]),
            .. yKept.Select(l => ys.Dims[Array.IndexOf(ys.Labels, l)])];
        var aOff = Enumerable.Range(0, b).Select(p => (long)p * m * k).ToArray();
        var bOff = Enumerable.Range(0, b).Select(p => (long)p * k * n).ToArray();
        int[] labels = [.. batch, .. xKept, .. yKept];
        return (new EinsumContraction(xGather, yGather, transA, transB, m, n, k, dims, aOff, bOff), EinsumView.Dense(labels, dims));
    }

    /// <summary>True when the view is its tensor, densely stored in <paramref name="target"/> label order (no copy needed).</summary>
    private static bool IsContiguousAs(EinsumView v, int[] target)
    {
        if (!v.Labels.AsSpan().SequenceEqual(target)) return false;
        var dense = Broadcast.ContiguousStrides(v.Dims);
        long count = 1;
        for (int d = 0; d < v.Dims.Length; d++)
        {
            if (v.Dims[d] != 1 && v.Strides[d] != dense[d]) return false;
            count *= v.Dims[d];
        }
        return count == v.DataCount && v.DataDims.AsSpan().SequenceEqual(v.Dims);
    }

    /// <summary>
    /// Plans a contiguous tensor over <paramref name="target"/> labels (in that order), summing the view over its other
    /// labels; the plan is null when the view already is that tensor.
    /// </summary>
    private static (EinsumGather? Gather, EinsumView Result) Gather(EinsumView v, int[] target)
    {
        if (IsContiguousAs(v, target)) return (null, v);
        int At(int l) => Array.IndexOf(v.Labels, l);
        var dims = target.Select(l => v.Dims[At(l)]).ToArray();
        var summed = v.Labels.Where(l => !target.Contains(l)).ToArray();
        long[] tStrides = [.. target.Select(l => v.Strides[At(l)])];
        int[] sDims = [.. summed.Select(l => v.Dims[At(l)])];
        long[] sStrides = [.. summed.Select(l => v.Strides[At(l)])];
        return (new EinsumGather(dims, tStrides, sDims, sStrides), EinsumView.Dense(target, dims));
    }
}
