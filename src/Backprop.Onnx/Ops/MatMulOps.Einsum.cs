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
        return new LambdaKernel(ctx =>
        {
            var inputs = Enumerable.Range(0, ctx.InputCount).Select(ctx.RequiredInput).ToArray();
            if (inputs.Any(x => x.ElementType != inputs[0].ElementType)) throw ctx.Invalid("Einsum inputs have different element types");
            ctx.SetOutput(0, Einsum(ctx, parsed, inputs));
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

    /// <summary>A strided view of a tensor with one label per dimension (labels unique within the view).</summary>
    private sealed record EinsumView(OnnxTensor Data, int[] Labels, int[] Dims, long[] Strides);

    private static OnnxTensor Einsum(KernelContext ctx, EinsumEquation eq, OnnxTensor[] inputs)
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
        for (int i = 1; i < views.Length; i++)
        {
            var keep = new HashSet<int>(output);
            for (int j = i + 1; j < views.Length; j++) keep.UnionWith(views[j].Labels);
            current = Contract(ctx, current, views[i], keep);
        }
        return Gather(ctx, current, output).Data;
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
        return new EinsumView(x, [.. order], [.. order.Select(l => sizes[l])], [.. order.Select(l => strides[l])]);
    }

    /// <summary>
    /// Contracts two views into a contiguous one whose labels are the kept ones: batch, then left-only, then right-only.
    /// An operand already laid out as (batch, contracted, kept) instead of (batch, kept, contracted) enters the GEMM
    /// transposed rather than copied.
    /// </summary>
    private static EinsumView Contract(KernelContext ctx, EinsumView x, EinsumView y, HashSet<int> keep)
    {
        var batch = x.Labels.Where(l => y.Labels.Contains(l) && keep.Contains(l)).ToArray();
        var contracted = x.Labels.Where(l => y.Labels.Contains(l) && !keep.Contains(l)).ToArray();
        var xKept = x.Labels.Where(l => !y.Labels.Contains(l) && keep.Contains(l)).ToArray();
        var yKept = y.Labels.Where(l => !x.Labels.Contains(l) && keep.Contains(l)).ToArray();
        int Size(EinsumView v, int[] labels) => labels.Aggregate(1, (p, l) => checked(p * v.Dims[Array.IndexOf(v.Labels, l)]));
        // Gather sums out labels used by neither the other operand nor later (not listed in the target order).
        bool transA = IsContiguousAs(x, [.. batch, .. contracted, .. xKept]);
        bool transB = IsContiguousAs(y, [.. batch, .. yKept, .. contracted]);
        var xs = transA ? x : Gather(ctx, x, [.. batch, .. xKept, .. contracted]);
        var ys = transB ? y : Gather(ctx, y, [.. batch, .. contracted, .. yKept]);
        int b = Size(xs, batch), m = Size(xs, xKept), k = Size(xs, contracted), n = Size(ys, yKept);
        int[] dims = [.. batch.Select(l => xs.Dims[Array.IndexOf(xs.Labels, l)]), .. xKept.Select(l => xs.Dims[Array.IndexOf(xs.Labels, l)]),
            .. yKept.Select(l => ys.Dims[Array.IndexOf(ys.Labels, l)])];
        // The product overwrites every element (k = 0 clears it).
        var result = ctx.AllocateUninitialized(x.Data.ElementType, dims);
        var aOff = Enumerable.Range(0, b).Select(p => (long)p * m * k).ToArray();
        var bOff = Enumerable.Range(0, b).Select(p => (long)p * k * n).ToArray();
        BatchedMultiply(xs.Data, aOff, ys.Data, bOff, result, m, n, k, transA, transB, ctx.Options.Threads);
        int[] labels = [.. batch, .. xKept, .. yKept];
        return new EinsumView(result, labels, dims, Broadcast.ContiguousStrides(dims));
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
        return count == v.Data.ElementCount && v.Data.Dims.AsSpan().SequenceEqual(v.Dims);
    }

    /// <summary>A contiguous tensor over <paramref name="target"/> labels (in that order), summing the view over its other labels.</summary>
    private static EinsumView Gather(KernelContext ctx, EinsumView v, int[] target)
    {
        if (IsContiguousAs(v, target)) return v;
        var dims = target.Select(l => v.Dims[Array.IndexOf(v.Labels, l)]).ToArray();
        bool sums = v.Labels.Any(l => !target.Contains(l));
        // A permutation writes every element; a sum accumulates into zeros.
        var result = sums ? ctx.Allocate(v.Data.ElementType, dims) : ctx.AllocateUninitialized(v.Data.ElementType, dims);
        switch (v.Data.ElementType)
        {
            case DataType.Float: GatherSum<float>(v, target, result); break;
            case DataType.Double: GatherSum<double>(v, target, result); break;
            case DataType.Int32: GatherSum<int>(v, target, result); break;
            case DataType.Int64: GatherSum<long>(v, target, result); break;
            case DataType.UInt32: GatherSum<uint>(v, target, result); break;
            case DataType.UInt64: GatherSum<ulong>(v, target, result); break;
            default: throw new InvalidOperationException($"Einsum does not support {DataTypes.OnnxName(v.Data.ElementType)}");
        }
        return new EinsumView(result, target, dims, Broadcast.ContiguousStrides(dims));
    }

    /// <summary>
    /// dst[t] = Σ_s src[t, s] over the summed labels s in row-major order (dst is zero when anything is summed),
    /// walking the last target label in an inner loop.
    /// </summary>
    private static void GatherSum<T>(EinsumView v, int[] target, OnnxTensor result) where T : INumber<T>
    {
        var src = v.Data.AsSpan<T>();
        var dst = result.AsSpan<T>();
        if (dst.Length == 0) return;
        var summed = v.Labels.Where(l => !target.Contains(l)).ToArray();
        int[] tDims = [.. target.Select(l => v.Dims[Array.IndexOf(v.Labels, l)])];
        long[] tStrides = [.. target.Select(l => v.Strides[Array.IndexOf(v.Labels, l)])];
        int[] sDims = [.. summed.Select(l => v.Dims[Array.IndexOf(v.Labels, l)])];
        long[] sStrides = [.. summed.Select(l => v.Strides[Array.IndexOf(v.Labels, l)])];
        long sCount = sDims.Aggregate(1L, (p, d) => p * d);
        // Inner loop: the last target label (a scalar output is one run of length 1).
        int inner = tDims.Length == 0 ? 1 : tDims[^1];
        long innerStride = tDims.Length == 0 ? 0 : tStrides[^1];
        int[] oDims = tDims.Length == 0 ? [] : tDims[..^1];
        long[] oStrides = tDims.Length == 0 ? [] : tStrides[..^1];
        var oCoord = new int[oDims.Length];
        var sCoord = new int[sDims.Length];
        long oOffset = 0;
        for (int o = 0; o < dst.Length; o += inner)
        {
            var row = dst.Slice(o, inner);
            if (summed.Length == 0)
            {
                if (innerStride == 1) src.Slice((int)oOffset, inner).CopyTo(row);
                else for (int j = 0; j < inner; j++) row[j] = src[(int)(oOffset + j * innerStride)];
            }
            else
            {
                long sOffset = 0;
                for (long s = 0; s < sCount; s++)
                {
                    long at = oOffset + sOffset;
                    for (int j = 0; j < inner; j++) row[j] += src[(int)(at + j * innerStride)];
                    Step(sCoord, sDims, sStrides, ref sOffset);
                }
            }
            Step(oCoord, oDims, oStrides, ref oOffset);
        }
    }

    /// <summary>Advances a row-major odometer and its strided offset by one position (wrapping to zero at the end).</summary>
    private static void Step(int[] coord, int[] dims, long[] strides, ref long offset)
    {
        for (int d = dims.Length - 1; d >= 0; d--)
        {
            coord[d]++;
            offset += strides[d];
            if (coord[d] < dims[d]) return;
            offset -= strides[d] * coord[d];
            coord[d] = 0;
        }
    }
}
