using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;

namespace Backprop.Onnx.Ops;

/// <summary>Gradient rules of Gemm and Einsum, in standard ONNX ops (MatMul's is in MatMulOps.MatMulGrad.cs).</summary>
internal static partial class MatMulOps
{
    /// <summary>
    /// Gemm VJP (PyTorch derivatives.yaml <c>addmm</c>, with transposes): for Y = α·A′·B′ + β·C, dA′ = α·dY·B′ᵀ,
    /// dB′ = α·A′ᵀ·dY (transposed back where A or B was), dC = β·dY summed to C's shape (C broadcasts unidirectionally,
    /// so the rule reduces it). Emitted as Gemm with the transpose flags folded in.
    /// </summary>
    private static string?[] GemmVjp(GradientContext ctx)
    {
        var node = ctx.Node;
        bool transA = node.GetInt("transA", 0) != 0, transB = node.GetInt("transB", 0) != 0;
        float alpha = node.GetFloat("alpha", 1f), beta = node.GetFloat("beta", 1f);
        string a = ctx.Input(0), b = ctx.Input(1), dy = ctx.OutputGrad(0)!;
        var e = ctx.Emit;
        string Product(string p, string q, bool tp, bool tq)
        {
            var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("transA", tp ? 1 : 0), OnnxAttribute.FromInt("transB", tq ? 1 : 0), OnnxAttribute.FromFloat("alpha", alpha) };
            if (e.OpsetVersion >= 11) return e.Op("Gemm", [p, q], [.. attrs]);
            // C is required before opset 11: a zero scalar with beta = 0 (broadcast explicitly before opset 7).
            attrs.Add(OnnxAttribute.FromFloat("beta", 0f));
            if (e.OpsetVersion < 7) attrs.Add(OnnxAttribute.FromInt("broadcast", 1));
            return e.Op("Gemm", [p, q, ctx.Scalar(0, dy)], [.. attrs]);
        }
        string? da = !ctx.NeedsGrad(0) ? null : transA ? Product(b, dy, transB, true) : Product(dy, b, false, !transB);
        string? db = !ctx.NeedsGrad(1) ? null : transB ? Product(dy, a, true, transA) : Product(a, dy, !transA, false);
        string? dc = null;
        if (ctx.HasInput(2) && ctx.NeedsGrad(2) && beta != 0)
            dc = e.SumToShapeOf(beta == 1 ? dy : e.Mul(dy, ctx.Scalar(beta, dy)), ctx.Input(2));
        return [da, db, dc];
    }

    /// <summary>
    /// Einsum VJP (PyTorch derives einsum through its contractions; here directly): the cotangent of operand i is the
    /// einsum of dY with every other operand, to operand i's labels — "out,others…→in_i". Labels of operand i found in no
    /// other term are re-inserted by broadcasting (Expand); broadcast ellipsis axes are summed by the pass. An operand
    /// with a repeated label (a diagonal) is not supported.
    /// </summary>
    private static string?[] EinsumVjp(GradientContext ctx)
    {
        var parsed = ParseEquation(new OpContext(ctx.Node, ctx.OpsetVersion, []), ctx.Node.GetString("equation", ""), ctx.InputCount);
        var output = parsed.Output ?? ImplicitOutput(parsed.Inputs);
        string dy = ctx.OutputGrad(0)!;
        var e = ctx.Emit;
        var grads = new string?[ctx.InputCount];
        for (int i = 0; i < grads.Length; i++)
        {
            if (!ctx.NeedsGrad(i)) continue;
            var term = parsed.Inputs[i];
            if (term.Distinct().Count() != term.Count) throw ctx.Unsupported($"operand {i} repeats a label (a diagonal)");
            var available = new HashSet<int>(output);
            for (int j = 0; j < grads.Length; j++) if (j != i) available.UnionWith(parsed.Inputs[j]);
            var kept = term.Where(available.Contains).ToList();
            var terms = new List<string> { Term(output) };
            var operands = new List<string> { dy };
            for (int j = 0; j < grads.Length; j++)
            {
                if (j == i) continue;
                terms.Add(Term(parsed.Inputs[j]));
                operands.Add(ctx.Input(j));
            }
            string g = e.Op("Einsum", [.. operands], OnnxAttribute.FromString("equation", $"{string.Join(",", terms)}->{Term(kept)}"));
            if (kept.Count != term.Count)
            {
                // Labels summed only within operand i: every element received the same cotangent.
                if (term.Contains(Ellipsis)) throw ctx.Unsupported($"operand {i} has an ellipsis and labels used nowhere else");
                var missing = Enumerable.Range(0, term.Count).Where(d => !available.Contains(term[d])).Select(d => (long)d).ToArray();
                g = e.Expand(e.Unsqueeze(g, missing), e.Shape(ctx.Input(i)));
            }
            grads[i] = g;
        }
        return grads;
    }

    private static string Term(IEnumerable<int> labels) => string.Concat(labels.Select(l => l == Ellipsis ? "..." : ((char)l).ToString()));

    /// <summary>The implicit output of an equation: the ellipsis if any term has one, then the labels used once, in increasing order.</summary>
    private static List<int> ImplicitOutput(List<int>[] inputs)
    {
        var once = inputs.SelectMany(t => t).Where(l => l != Ellipsis).GroupBy(l => l).Where(g => g.Count() == 1).Select(g => g.Key).Order();
        return [.. inputs.Any(t => t.Contains(Ellipsis)) ? [Ellipsis] : Array.Empty<int>(), .. once];
    }
}
