using Backprop.Onnx.IR;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Element-type inference over a graph: graph inputs, initializers and value_info give the known types; each node's
/// definition (<see cref="OpDefinition.InferTypes"/>) gives its outputs'. Unknown stays <see cref="DataType.Undefined"/>.
/// </summary>
internal static class TypeInferencePass
{
    public static Dictionary<string, DataType> Run(Graph graph, IReadOnlyDictionary<string, long> opsets, IReadOnlyDictionary<string, DataType>? outer = null)
    {
        var types = new Dictionary<string, DataType>(StringComparer.Ordinal);
        if (outer is not null) foreach (var (k, v) in outer) types[k] = v;
        foreach (var v in graph.Inputs) if (v.ElementType != DataType.Undefined) types[v.Name] = v.ElementType;
        foreach (var (name, t) in graph.Initializers) types[name] = t.ElementType;
        var declared = new Dictionary<string, DataType>(StringComparer.Ordinal);
        foreach (var v in graph.ValueInfos.Concat(graph.Outputs)) if (v.ElementType != DataType.Undefined) declared[v.Name] = v.ElementType;

        foreach (var node in Runtime.ExecutionPlan.TopologicalOrder(graph))
        {
            string domain = OpRegistry.NormalizeDomain(node.Domain);
            long version = opsets.TryGetValue(domain, out long v) ? v : 1;
            var inputTypes = node.Inputs.Select(i => i.Length == 0 ? DataType.Undefined : types.GetValueOrDefault(i)).ToArray();
            DataType[]? inferred = null;
            var def = OpRegistry.TryFind(node, version, out _);
            if (def is not null)
            {
                var ctx = new OpContext(node, version, inputTypes);
                inferred = def.InferTypes is not null ? def.InferTypes(ctx) : DefaultTypes(ctx);
            }
            for (int i = 0; i < node.Outputs.Count; i++)
            {
                string o = node.Outputs[i];
                if (o.Length == 0) continue;
                var t = inferred is not null && i < inferred.Length ? inferred[i] : DataType.Undefined;
                if (t == DataType.Undefined) t = declared.GetValueOrDefault(o);
                if (t != DataType.Undefined) types[o] = t;
            }
        }
        return types;
    }

    /// <summary>Every output has the type of the first present input (the common case: T in, T out).</summary>
    public static DataType[] DefaultTypes(OpContext op)
    {
        var t = op.InputTypes.FirstOrDefault(x => x != DataType.Undefined);
        return [.. op.Node.Outputs.Select(_ => t)];
    }

    /// <summary>Type inference for ops whose outputs all have one fixed type (Shape → int64, Equal → bool, …).</summary>
    public static TypeInference Fixed(DataType type) => op => [.. op.Node.Outputs.Select(_ => type)];
}
