namespace Backprop.Onnx.IR;

/// <summary>
/// A computation graph (<c>GraphProto</c>): nodes in topological order, constant initializers, typed inputs, outputs
/// and intermediate value descriptions. Values are named; a node input names a graph input, an initializer or an
/// earlier node's output (or an outer scope's value, in a subgraph).
/// </summary>
public sealed class Graph
{
    /// <summary>The graph's name.</summary>
    public string Name { get; set; } = "";

    /// <summary>The documentation string.</summary>
    public string DocString { get; set; } = "";

    /// <summary>The nodes, in topological order.</summary>
    public List<Node> Nodes { get; } = [];

    /// <summary>
    /// The graph inputs in declaration order. In IR versions below 4 initializers are also listed here; the importer keeps
    /// them (an input with an initializer of the same name is a parameter with a default value).
    /// </summary>
    public List<ValueInfo> Inputs { get; } = [];

    /// <summary>The graph outputs in declaration order.</summary>
    public List<ValueInfo> Outputs { get; } = [];

    /// <summary>Type and shape information for intermediate values (<c>value_info</c>).</summary>
    public List<ValueInfo> ValueInfos { get; } = [];

    /// <summary>The initializers (constant tensors: weights, biases, running statistics) by name, in file order.</summary>
    public OrderedDictionary<string, OnnxTensor> Initializers { get; } = new(StringComparer.Ordinal);

    /// <summary>Documentation strings of initializers that carried one.</summary>
    internal Dictionary<string, string> InitializerDocStrings { get; } = new(StringComparer.Ordinal);

    internal Dictionary<string, List<Protobuf.StringStringEntryProto>> InitializerMetadata { get; } = new(StringComparer.Ordinal);

    internal List<Protobuf.SparseTensorProto> SparseInitializers { get; } = [];

    internal List<Protobuf.TensorAnnotation> QuantizationAnnotations { get; } = [];

    internal List<Protobuf.StringStringEntryProto> MetadataProps { get; } = [];

    /// <summary>The graph input of that name, or null.</summary>
    public ValueInfo? FindInput(string name) => Inputs.Find(v => v.Name == name);

    /// <summary>The graph inputs that are not initializers: the values a caller must feed.</summary>
    public IEnumerable<ValueInfo> RuntimeInputs => Inputs.Where(v => !Initializers.ContainsKey(v.Name));

    /// <summary>The best known type of a value: graph input/output, value_info, or an initializer's own type.</summary>
    public ValueInfo? FindValueInfo(string name)
    {
        if (Initializers.TryGetValue(name, out var t))
            return new ValueInfo(name, t.ElementType, [.. t.Dims.Select(d => Dim.Of(d))]);
        return Inputs.Find(v => v.Name == name) ?? ValueInfos.Find(v => v.Name == name) ?? Outputs.Find(v => v.Name == name);
    }

    /// <summary>Every node by the name of each output it produces.</summary>
    public Dictionary<string, Node> ProducerMap()
    {
        var map = new Dictionary<string, Node>(StringComparer.Ordinal);
        foreach (var n in Nodes) foreach (var o in n.Outputs) if (o.Length > 0) map[o] = n;
        return map;
    }
}
