namespace Backprop.Onnx.IR;

/// <summary>Copies of models that share tensors but not lists, so a transform can add nodes, inputs and outputs.</summary>
internal static class ModelCopy
{
    /// <summary>A model with <paramref name="model"/>'s versions, provenance, metadata and functions, and <paramref name="graph"/> as its graph.</summary>
    public static OnnxModel WithGraph(OnnxModel model, Graph graph)
    {
        var copy = new OnnxModel
        {
            IrVersion = model.IrVersion,
            ProducerName = model.ProducerName,
            ProducerVersion = model.ProducerVersion,
            Domain = model.Domain,
            ModelVersion = model.ModelVersion,
            DocString = model.DocString,
            SourcePath = model.SourcePath,
            Graph = graph,
        };
        copy.OpsetImports.AddRange(model.OpsetImports);
        copy.MetadataProps.AddRange(model.MetadataProps);
        copy.Functions.AddRange(model.Functions);
        copy.TrainingInfo.AddRange(model.TrainingInfo);
        return copy;
    }

    /// <summary>A copy whose graph lists (nodes, inputs, outputs, initializers) are new, sharing tensors and attributes.</summary>
    public static OnnxModel Shallow(OnnxModel model)
    {
        var g = model.Graph;
        var graph = new Graph { Name = g.Name, DocString = g.DocString };
        graph.Inputs.AddRange(g.Inputs);
        graph.Outputs.AddRange(g.Outputs);
        graph.ValueInfos.AddRange(g.ValueInfos);
        foreach (var (k, v) in g.Initializers) graph.Initializers.Add(k, v);
        foreach (var (k, v) in g.InitializerDocStrings) graph.InitializerDocStrings[k] = v;
        foreach (var (k, v) in g.InitializerMetadata) graph.InitializerMetadata[k] = v;
        graph.SparseInitializers.AddRange(g.SparseInitializers);
        graph.QuantizationAnnotations.AddRange(g.QuantizationAnnotations);
        graph.MetadataProps.AddRange(g.MetadataProps);
        foreach (var n in g.Nodes)
        {
            var c = new Node(n.OpType, n.Inputs, n.Outputs, n.Name, n.Domain) { DocString = n.DocString, Overload = n.Overload };
            c.Attributes.AddRange(n.Attributes);
            c.MetadataProps.AddRange(n.MetadataProps);
            graph.Nodes.Add(c);
        }
        return WithGraph(model, graph);
    }
}
