using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;

namespace Backprop.Onnx.Ops;

/// <summary>Gradient rules of MatMul, Gemm and Einsum, in standard ONNX ops.</summary>
internal static partial class MatMulOps
{
    /// <summary>
    /// MatMul VJP (PyTorch derivatives.yaml <c>mm</c>/<c>bmm</c> as used by <c>matmul</c>): dA = dY·Bᵀ, dB = Aᵀ·dY, a 1-D
    /// operand promoted to a row (A) or column (B) and the added axis removed again; broadcast batch axes are summed by the
    /// pass (Broadcasting). With static ranks it emits MatMul/Transpose (every opset), else Einsum with ellipses (opset 12+).
    /// </summary>
    private static string?[] MatMulVjp(GradientContext ctx)
    {
        string a = ctx.Input(0), b = ctx.Input(1), dy = ctx.OutputGrad(0)!;
        var e = ctx.Emit;
        int? ra = ctx.Rank(a), rb = ctx.Rank(b);
        bool needA = ctx.NeedsGrad(0), needB = ctx.NeedsGrad(1);
        if (ra is int x && rb is int y)
        {
            if (x >= 2 && y >= 2)
                return [needA ? e.MatMul(dy, e.Transpose(b, SwapLast(y))) : null, needB ? e.MatMul(e.Transpose(a, SwapLast(x)), dy) : null];
            if (x == 1 && y >= 2)   // dY: (batch…, N)
                return [needA ? e.Squeeze(e.MatMul(b, e.Unsqueeze(dy, y - 1)), y - 1) : null,
                        needB ? e.MatMul(e.Unsqueeze(a, 1), e.Unsqueeze(dy, y - 2)) : null];
            if (x >= 2 && y == 1)   // dY: (batch…, M)
                return [needA ? e.MatMul(e.Unsqueeze(dy, x - 1), e.Unsqueeze(b, 0)) : null,
                        needB ? e.Squeeze(e.MatMul(e.Transpose(a, SwapLast(x)), e.Unsqueeze(dy, x - 1)), x - 1) : null];
            return [needA ? e.Mul(dy, b) : null, needB ? e.Mul(dy, a) : null];
        }
        if (e.OpsetVersion < 12) throw ctx.Unsupported("MatMul needs static input ranks below opset 12 (no Einsum)");
        bool a1 = ra == 1, b1 = rb == 1;
        string Einsum(string equation, string p, string q) => e.Op("Einsum", [p, q], OnnxAttribute.FromString("equation", equation));
        return (a1, b1) switch
        {
            (false, false) => [needA ? Einsum("...ij,...kj->...ik", dy, b) : null, needB ? Einsum("...ki,...kj->...ij", a, dy) : null],
            (true, false) => [needA ? Einsum("...j,...kj->...k", dy, b) : null, needB ? Einsum("k,...j->...kj", a, dy) : null],
            (false, true) => [needA ? Einsum("...i,k->...ik", dy, b) : null, needB ? Einsum("...ik,...i->...k", a, dy) : null],
            _ => [needA ? e.Mul(dy, b) : null, needB ? e.Mul(dy, a) : null],
        };
    }

    /// <summary>The permutation of a rank-<paramref name="rank"/> tensor that swaps its last two axes.</summary>
    private static long[] SwapLast(int rank)
    {
        var perm = Enumerable.Range(0, rank).Select(i => (long)i).ToArray();
        (perm[^1], perm[^2]) = (perm[^2], perm[^1]);
        return perm;
    }

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
