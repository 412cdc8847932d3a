using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// PlanFusion's Gemm-gradient rule. For a forward <c>Y = Gemm(X, W, b; transB = 1)</c> (a Linear layer as Gemm), Gemm's
/// VJP (PyTorch derivatives.yaml <c>addmm</c>) emits two products of the cotangent G = dY: <c>dX = Gemm(G, W)</c> and
/// <c>dW = Gemm(G, X; transA = 1)</c>. They are MatMul's gradient of X · Wᵀ, so in the compiled plan the pair becomes
/// one <c>MatMulGrad(G, X, W; trans_b = 1, trans_db = 1)</c> (B = Wᵀ read in place, dB written as dBᵀ = dW), whose
/// kernel runs dA and dB side by side, each on half the threads: two GEMMs of W2's fc1 size are too small to use both
/// cores each.
/// </summary>
/// <remarks>
/// Both Gemms must have no C, alpha = 1 and the flags above; X and W must be the inputs of a forward Gemm with
/// transA = 0, transB = 1 in the same plan (so their shapes fit the MatMulGrad), and the plan must already hold a node
/// of our domain (the model then imports it). The fused node takes the earlier Gemm's place when every input of the
/// later one is produced before it; otherwise the pair is left alone. Products may sum in another order than Gemm's
/// kernel (float tolerance, as MatMulGrad's own results).
/// </remarks>
internal static partial class PlanFusion
{
    private static Node[] FuseGemmGrads(Node[] order, Graph graph, IReadOnlyDictionary<string, DataType> types)
    {
        if (!order.Any(n => n.Domain == OpRegistry.BackpropDomain)) return order;
        var forward = new HashSet<(string X, string W)>();
        foreach (var n in order)
            if (IsPlainGemm(n, transA: 0, transB: 1, allowC: true)) forward.Add((n.Inputs[0], n.Inputs[1]));
        if (forward.Count == 0) return order;
        var producer = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int k = 0; k < order.Length; k++)
            foreach (var o in order[k].Outputs)
                if (o.Length > 0) producer[o] = k;
        Node?[]? fused = null;
        bool[]? dropped = null;
        for (int k = 0; k < order.Length; k++)
        {
            var dx = order[k];
            if (dropped?[k] == true || !IsPlainGemm(dx, transA: 0, transB: 0, allowC: false) || !IsFloat(types, dx.Outputs[0])) continue;
            string g = dx.Inputs[0], w = dx.Inputs[1];
            for (int j = 0; j < order.Length; j++)
            {
                var dw = order[j];
                if (j == k || dropped?[j] == true || (fused?[j] is not null) || !IsPlainGemm(dw, transA: 1, transB: 0, allowC: false) || dw.Inputs[0] != g) continue;
                string x = dw.Inputs[1];
                if (!forward.Contains((x, w)) || types.GetValueOrDefault(x) != types.GetValueOrDefault(g)) continue;
                int at = Math.Min(j, k);
                var later = order[Math.Max(j, k)];
                if (later.Inputs.Any(i => producer.TryGetValue(i, out int p) && p >= at)) continue;
                var node = new Node("MatMulGrad", [g, x, w], [dx.Outputs[0], dw.Outputs[0]], dx.Name, OpRegistry.BackpropDomain);
                node.Attributes.Add(OnnxAttribute.FromInt("trans_b", 1));
                node.Attributes.Add(OnnxAttribute.FromInt("trans_db", 1));
                (fused ??= new Node?[order.Length])[at] = node;
                (dropped ??= new bool[order.Length])[Math.Max(j, k)] = true;
                break;
            }
        }
        if (fused is null) return order;
        var result = new List<Node>(order.Length);
        for (int k = 0; k < order.Length; k++)
            if (!dropped![k]) result.Add(fused[k] ?? order[k]);
        return [.. result];
    }

    /// <summary>A default-domain Gemm with these flags, alpha = 1, two inputs (or a C when allowed) and one output.</summary>
    private static bool IsPlainGemm(Node n, int transA, int transB, bool allowC) =>
        n.IsDefaultDomain && n.OpType == "Gemm" && (n.Inputs.Count == 2 || (allowC && n.Inputs.Count == 3)) && n.Outputs.Count == 1
        && n.Outputs[0].Length > 0 && n.Inputs[0] != n.Inputs[1] && n.GetInt("transA", 0) == transA && n.GetInt("transB", 0) == transB
        && n.GetFloat("alpha", 1f) == 1f;
}
