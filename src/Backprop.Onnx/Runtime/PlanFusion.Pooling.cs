using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// PlanFusion's pooling rule, for the backward pass of Relu → MaxPool (LeNet's and VGG's blocks): the gradient graph
/// holds <c>g = MaxPoolGrad(dY, X)</c> and then <c>ReluGrad(g, X)</c>, both reading Relu's output X (MaxPoolGrad as the
/// pooled input, ReluGrad as the mask Y &gt; 0). When g is not a graph output and that ReluGrad is its only reader, the
/// pair becomes one MaxPoolGrad with <c>relu_mask</c> = 1 that writes ReluGrad's output: the kernel routes each window's
/// cotangent to its winner and keeps it only where X &gt; 0 (+0 elsewhere), bit for bit the two nodes' result, without
/// the intermediate tensor and its second pass (PyTorch's threshold_backward(max_pool2d_backward(…)) done in one).
/// </summary>
/// <remarks>
/// The rule needs no fact about Relu: whatever X is, ReluGrad(MaxPoolGrad(dY, X), X) = mask(X &gt; 0) ·
/// MaxPoolGrad(dY, X) element by element, and the masked kernel computes exactly that (ReluGrad keeps its input's
/// bits where X &gt; 0 and writes +0 elsewhere, a NaN X included). Only float and double fuse (MaxPoolGrad's types).
/// </remarks>
internal static partial class PlanFusion
{
    private static Node[] FusePoolGrads(Node[] order, Graph graph, IReadOnlyDictionary<string, DataType> types)
    {
        Dictionary<string, List<int>>? readers = null;
        Node?[]? fused = null;
        bool[]? dropped = null;
        for (int k = 0; k < order.Length; k++)
        {
            var pool = order[k];
            if (pool.Domain != OpRegistry.BackpropDomain || pool.OpType != "MaxPoolGrad" || pool.Inputs.Count != 2 || pool.Outputs.Count != 1
                || pool.Outputs[0].Length == 0 || pool.Attributes.Any(a => a.Name == PoolingOps.ReluMaskAttribute)) continue;
            string g = pool.Outputs[0], x = pool.Inputs[1];
            if (!IsFloat(types, g) || x == g || pool.Inputs[0] == g) continue;
            readers ??= ReadersOf(order, graph);
            if (SoleReader(readers, order, g) is not { } relu || relu.Domain != OpRegistry.BackpropDomain || relu.OpType != "ReluGrad"
                || relu.Inputs.Count != 2 || relu.Inputs[0] != g || relu.Inputs[1] != x || relu.Outputs.Count != 1 || relu.Outputs[0].Length == 0
                || relu.Attributes.Any(a => a.Name != "dtype")) continue;
            var node = new Node(pool.OpType, pool.Inputs, relu.Outputs, pool.Name, pool.Domain);
            node.Attributes.AddRange(pool.Attributes);
            node.Attributes.Add(OnnxAttribute.FromInt(PoolingOps.ReluMaskAttribute, 1));
            (fused ??= new Node?[order.Length])[k] = node;
            (dropped ??= new bool[order.Length])[readers[g][0]] = true;
        }
        return fused is null ? order : Rebuilt(order, fused, dropped!);
    }
}
