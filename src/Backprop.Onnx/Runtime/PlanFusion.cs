using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// Plan-level fusion: when a graph is compiled, an op whose only reader is an elementwise activation becomes one node of
/// our domain that applies the activation where it writes its output (the "fused elementwise epilogue"; ONNX Runtime's
/// com.microsoft FusedConv, made by its ConvActivationFusion graph transformer, is the precedent). Only the compiled
/// plan runs the fused node: the model, its gradient graph and an export still see the original two nodes.
/// </summary>
/// <remarks>
/// A pair fuses when the producer's output is not a graph output and is read by exactly one node (subgraphs included):
/// the activation, through its only input. The fused node keeps the producer's name, inputs and attributes, adds
/// <c>activation</c> = the activation's op type, and writes the activation's output. Only float and double outputs
/// fuse (the fused kernels compute in those types). Gemm + Relu (ONNX Runtime's FusedGemm), as Gemm's kernel followed
/// by Relu's in place, was tried and measured 6-9% slower than the two nodes on W2's [64,400]·[400,120] (cause not
/// found), so it is not in the table. The MatMul rules (bias, activation, folded weight transposes; the Linear layer as
/// PyTorch exports it) are in PlanFusion.MatMul.cs and run after the pairs; the backward pass's MaxPoolGrad +
/// ReluGrad rule is in PlanFusion.Pooling.cs and runs between them.
/// </remarks>
internal static partial class PlanFusion
{
    /// <summary>The fusable pairs: (producer, activation) → fused op of <see cref="OpRegistry.BackpropDomain"/>. Adding a pair is one line here plus the fused op's registration.</summary>
    private static readonly (string Producer, string Activation, string Fused)[] Pairs =
    [
        ("Conv", "Relu", ConvOps.FusedConvOp),
    ];

    /// <summary>Turns the pass off for plans compiled on this thread (tests compare fused and unfused plans).</summary>
    internal static bool DisabledOnThisThread { get => t_disabled; set => t_disabled = value; }

    [ThreadStatic] private static bool t_disabled;

    /// <summary>Whether <paramref name="node"/> is a node this pass made (it runs at the default domain's opset version).</summary>
    public static bool IsFused(Node node)
    {
        if (node.Domain != OpRegistry.BackpropDomain) return false;
        if (node.OpType == MatMulOps.FusedMatMulOp) return true;
        foreach (var p in Pairs) if (p.Fused == node.OpType) return true;
        return false;
    }

    /// <summary>
    /// <paramref name="order"/> with every fusable pair replaced by its fused node (at the producer's position, which
    /// precedes every reader of the activation's output). <paramref name="types"/> are the graph's inferred element types.
    /// </summary>
    public static Node[] Apply(Node[] order, Graph graph, IReadOnlyDictionary<string, DataType> types)
    {
        if (DisabledOnThisThread) return order;
        return FuseMatMuls(FusePoolGrads(FusePairs(order, graph, types), graph, types), graph, types);
    }

    /// <summary>The (producer, activation) pairs of <see cref="Pairs"/>.</summary>
    private static Node[] FusePairs(Node[] order, Graph graph, IReadOnlyDictionary<string, DataType> types)
    {
        var readers = ReadersOf(order, graph);
        Node?[] fused = new Node?[order.Length];
        bool[] dropped = new bool[order.Length];
        bool any = false;
        for (int k = 0; k < order.Length; k++)
        {
            var producer = order[k];
            if (!producer.IsDefaultDomain || producer.Outputs.Count != 1 || producer.Outputs[0].Length == 0) continue;
            string value = producer.Outputs[0];
            if (SoleReader(readers, order, value) is not { } activation) continue;
            if (!activation.IsDefaultDomain || activation.Inputs.Count != 1 || activation.Inputs[0] != value
                || activation.Outputs.Count != 1 || activation.Outputs[0].Length == 0 || activation.Attributes.Count != 0) continue;
            if (!IsFloat(types, value)) continue;
            foreach (var pair in Pairs)
            {
                if (pair.Producer != producer.OpType || pair.Activation != activation.OpType) continue;
                var node = new Node(pair.Fused, producer.Inputs, activation.Outputs, producer.Name, OpRegistry.BackpropDomain);
                node.Attributes.AddRange(producer.Attributes);
                node.Attributes.Add(OnnxAttribute.FromString("activation", activation.OpType));
                fused[k] = node;
                dropped[readers[value][0]] = true;
                any = true;
                break;
            }
        }
        return any ? Rebuilt(order, fused, dropped) : order;
    }

    /// <summary><paramref name="order"/> with each fused node in its producer's place and the absorbed nodes left out.</summary>
    private static Node[] Rebuilt(Node[] order, Node?[] fused, bool[] dropped)
    {
        var result = new List<Node>(order.Length);
        for (int k = 0; k < order.Length; k++)
            if (!dropped[k]) result.Add(fused[k] ?? order[k]);
        return [.. result];
    }

    /// <summary>Readers of each value: one entry per node that reads it (in any input or subgraph), -1 for a graph output.</summary>
    private static Dictionary<string, List<int>> ReadersOf(Node[] order, Graph graph)
    {
        var readers = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        for (int k = 0; k < order.Length; k++)
            foreach (var input in ExecutionPlan.SubgraphAwareInputs(order[k]).Distinct(StringComparer.Ordinal))
                Readers(readers, input).Add(k);
        foreach (var o in graph.Outputs) Readers(readers, o.Name).Add(-1);
        return readers;
    }

    private static List<int> Readers(Dictionary<string, List<int>> readers, string value)
    {
        if (!readers.TryGetValue(value, out var list)) readers[value] = list = [];
        return list;
    }
}
