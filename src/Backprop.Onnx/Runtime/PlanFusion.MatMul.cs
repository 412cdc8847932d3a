using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// PlanFusion's MatMul rules (a Linear layer as PyTorch exports it: <c>Transpose(W)</c> → <c>MatMul(X, Wᵀ)</c> →
/// <c>Add(bias, ·)</c> [→ <c>Relu</c>]), each only in the compiled plan:
/// <list type="bullet">
/// <item>a <c>Transpose(W, perm=[1,0])</c> whose every reader takes it as B (MatMul's input 1, MatMulGrad's input 2) is
/// dropped and its readers read W with <c>trans_b</c> = 1 (Gemm and MatMulGrad's GEMMs read a transposed operand in place);</item>
/// <item>a MatMulGrad whose dB is read only by a <c>Transpose(·, perm=[1,0])</c> (W's gradient through that Transpose)
/// writes dBᵀ itself (<c>trans_db</c> = 1) under the Transpose's output name, and the Transpose is dropped;</item>
/// <item>a MatMul whose only reader is an Add of a bias of static shape [1, …, 1, d] (an initializer or a graph input
/// with a static shape, either operand) becomes FusedMatMul(A, B, bias), which adds it after the GEMM; when that Add's
/// only reader is a Relu, the Relu joins too (<c>activation</c> = "Relu"). The product may also have one plain Shape
/// reader (the gradient graph reads Shape(product) to un-broadcast Add's gradient): FusedMatMul's optional second
/// output is then the product's shape, and the Shape node is dropped.</item>
/// </list>
/// A MatMul with a folded transpose and nothing else becomes FusedMatMul(A, W) with <c>trans_b</c> = 1. Outputs that are
/// graph outputs or have another reader never fuse. Only float and double fuse. The gradient graph's MatMulGrad reads
/// MatMul's inputs, not its output, and ReluGrad reads Relu's output, so a training plan fuses like a forward plan.
/// </summary>
internal static partial class PlanFusion
{
    private static Node[] FuseMatMuls(Node[] order, Graph graph, IReadOnlyDictionary<string, DataType> types)
    {
        var readers = ReadersOf(order, graph);
        bool[] dropped = new bool[order.Length];
        Node?[] fused = new Node?[order.Length];
        bool any = false;

        // Transposes of W to fold: their output → W.
        var folded = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int k = 0; k < order.Length; k++)
        {
            var t = order[k];
            if (!IsTranspose2D(t) || !IsFloat(types, t.Outputs[0])) continue;
            string value = t.Outputs[0];
            if (!readers.TryGetValue(value, out var list) || list.Count == 0) continue;
            if (list.All(r => r >= 0 && ReadsAsB(order[r], value)))
            {
                folded[value] = t.Inputs[0];
                dropped[k] = any = true;
            }
        }

        for (int k = 0; k < order.Length; k++)
        {
            var node = order[k];
            if (node.Domain == OpRegistry.BackpropDomain && node.OpType == "MatMulGrad" && node.Inputs.Count == 3 && node.Outputs.Count == 2)
            {
                bool transB = folded.TryGetValue(node.Inputs[2], out var w);
                string db = node.Outputs[1];
                int dbReader = db.Length > 0 && readers.TryGetValue(db, out var dl) && dl.Count == 1 ? dl[0] : -1;
                bool transDb = dbReader >= 0 && IsTranspose2D(order[dbReader]) && order[dbReader].Inputs[0] == db && IsFloat(types, db)
                    && !folded.ContainsKey(order[dbReader].Outputs[0]);
                if (!transB && !transDb) continue;
                var g = new Node(node.OpType, [node.Inputs[0], node.Inputs[1], transB ? w! : node.Inputs[2]],
                    [node.Outputs[0], transDb ? order[dbReader].Outputs[0] : db], node.Name, node.Domain);
                g.Attributes.AddRange(node.Attributes);
                if (transB) g.Attributes.Add(OnnxAttribute.FromInt("trans_b", 1));
                if (transDb)
                {
                    g.Attributes.Add(OnnxAttribute.FromInt("trans_db", 1));
                    dropped[dbReader] = true;
                }
                fused[k] = g;
                any = true;
                continue;
            }
            if (!node.IsDefaultDomain || node.OpType != "MatMul" || node.Inputs.Count != 2 || node.Outputs.Count != 1
                || node.Outputs[0].Length == 0 || !IsFloat(types, node.Outputs[0])) continue;
            bool foldB = folded.TryGetValue(node.Inputs[1], out var weight);
            string output = node.Outputs[0];
            string? bias = null, activation = null, shapeOutput = null;
            if (AddReader(readers, order, output, out int addIndex, out int shapeIndex) is { } add)
            {
                string other = add.Inputs[0] == output ? add.Inputs[1] : add.Inputs[0];
                if (IsRowBias(graph, other) && types.GetValueOrDefault(other) == types.GetValueOrDefault(output))
                {
                    bias = other;
                    dropped[addIndex] = true;
                    if (shapeIndex >= 0)
                    {
                        shapeOutput = order[shapeIndex].Outputs[0];
                        dropped[shapeIndex] = true;
                    }
                    output = add.Outputs[0];
                    if (SoleReader(readers, order, output) is { } relu && relu.IsDefaultDomain && relu.OpType == "Relu" && relu.Inputs.Count == 1
                        && relu.Outputs.Count == 1 && relu.Outputs[0].Length > 0 && relu.Attributes.Count == 0)
                    {
                        activation = "Relu";
                        dropped[readers[output][0]] = true;
                        output = relu.Outputs[0];
                    }
                }
            }
            if (!foldB && bias is null) continue;
            List<string> inputs = [node.Inputs[0], foldB ? weight! : node.Inputs[1]];
            if (bias is not null) inputs.Add(bias);
            var f = new Node(MatMulOps.FusedMatMulOp, inputs, shapeOutput is null ? [output] : [output, shapeOutput], node.Name, OpRegistry.BackpropDomain);
            if (foldB) f.Attributes.Add(OnnxAttribute.FromInt("trans_b", 1));
            if (activation is not null) f.Attributes.Add(OnnxAttribute.FromString("activation", activation));
            fused[k] = f;
            any = true;
        }
        return any ? Rebuilt(order, fused, dropped) : order;
    }

    private static bool IsFloat(IReadOnlyDictionary<string, DataType> types, string value) =>
        types.GetValueOrDefault(value) is DataType.Float or DataType.Double;

    /// <summary>A default-domain Transpose with perm = [1, 0] (so its input is 2-D).</summary>
    private static bool IsTranspose2D(Node t) =>
        t.IsDefaultDomain && t.OpType == "Transpose" && t.Inputs.Count == 1 && t.Outputs.Count == 1 && t.Outputs[0].Length > 0
        && t.Attributes.Count == 1 && t.GetInts("perm") is [1, 0];

    /// <summary>Whether <paramref name="node"/> reads <paramref name="value"/> only as B: MatMul's input 1 or MatMulGrad's input 2.</summary>
    private static bool ReadsAsB(Node node, string value) =>
        (node.IsDefaultDomain && node.OpType == "MatMul" && node.Inputs.Count == 2 && node.Inputs[1] == value && node.Inputs[0] != value)
        || (node.Domain == OpRegistry.BackpropDomain && node.OpType == "MatMulGrad" && node.Inputs.Count == 3 && node.Outputs.Count == 2
            && node.Inputs[2] == value && node.Inputs[0] != value && node.Inputs[1] != value);

    /// <summary>
    /// The Add that reads a MatMul's <paramref name="product"/>, when the product is not a graph output and its only other
    /// reader, if any, is one plain Shape (the gradient graph's Shape(product), for Add's un-broadcast; FusedMatMul then
    /// writes that shape as its second output). <paramref name="addIndex"/> and <paramref name="shapeIndex"/> (−1 for
    /// none) are their positions in the order.
    /// </summary>
    private static Node? AddReader(Dictionary<string, List<int>> readers, Node[] order, string product, out int addIndex, out int shapeIndex)
    {
        addIndex = shapeIndex = -1;
        if (!readers.TryGetValue(product, out var list) || list.Count is 0 or > 2 || list.Contains(-1)) return null;
        foreach (int r in list)
        {
            var n = order[r];
            if (n.IsDefaultDomain && n.OpType == "Add" && n.Inputs.Count == 2 && n.Outputs.Count == 1 && n.Outputs[0].Length > 0
                && n.Inputs[0] != n.Inputs[1] && addIndex < 0)
                addIndex = r;
            else if (n.IsDefaultDomain && n.OpType == "Shape" && n.Inputs.Count == 1 && n.Outputs.Count == 1 && n.Outputs[0].Length > 0
                && n.Attributes.Count == 0 && shapeIndex < 0)
                shapeIndex = r;
            else return null;
        }
        return addIndex < 0 ? null : order[addIndex];
    }

    /// <summary>The one node that reads <paramref name="value"/>, when it has exactly one reader and is not a graph output.</summary>
    private static Node? SoleReader(Dictionary<string, List<int>> readers, Node[] order, string value) =>
        readers.TryGetValue(value, out var list) && list.Count == 1 && list[0] >= 0 ? order[list[0]] : null;

    /// <summary>
    /// Whether <paramref name="name"/> has a static shape [1, …, 1, d] (rank ≥ 1): an initializer, or a graph input with a
    /// static shape. Added to a product, it broadcasts along the last axis only (ONNX Add's multidirectional broadcast);
    /// FusedMatMul checks the shapes again when it runs.
    /// </summary>
    private static bool IsRowBias(Graph graph, string name)
    {
        if (graph.Initializers.TryGetValue(name, out var t)) return t.Rank >= 1 && t.Dims[..^1].All(d => d == 1);
        var input = graph.Inputs.FirstOrDefault(v => v.Name == name);
        return input is { HasStaticShape: true, Shape: { Count: >= 1 } shape } && shape.Take(shape.Count - 1).All(d => d.Value == 1);
    }
}
