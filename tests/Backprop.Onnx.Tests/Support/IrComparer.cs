using Backprop.Onnx.IR;
using Google.Protobuf;

namespace Backprop.Onnx.Tests.Support;

/// <summary>
/// Structural equality of two IR models, field by field: model fields, opsets, metadata, functions and training info,
/// then the graph (name, doc, nodes with every attribute including subgraphs, inputs/outputs/value_info with types and
/// shapes, initializer names, element types and bytes) and what the IR carries in wire form. Floats compare by bit
/// pattern. <see cref="Differences"/> lists every difference with its path, so a failure says where the models part.
/// </summary>
internal static class IrComparer
{
    /// <summary>Every difference between <paramref name="expected"/> and <paramref name="actual"/>; empty when equal.</summary>
    public static List<string> Differences(OnnxModel expected, OnnxModel actual)
    {
        var d = new List<string>();
        Check(d, "model.ir_version", expected.IrVersion, actual.IrVersion);
        Check(d, "model.producer_name", expected.ProducerName, actual.ProducerName);
        Check(d, "model.producer_version", expected.ProducerVersion, actual.ProducerVersion);
        Check(d, "model.domain", expected.Domain, actual.Domain);
        Check(d, "model.model_version", expected.ModelVersion, actual.ModelVersion);
        Check(d, "model.doc_string", expected.DocString, actual.DocString);
        Sequence(d, "model.opset_import", expected.OpsetImports, actual.OpsetImports, (p, a, b) => Check(d, p, a, b));
        Sequence(d, "model.metadata_props", expected.MetadataProps, actual.MetadataProps, (p, a, b) => Check(d, p, a, b));
        Messages(d, "model.functions", expected.Functions, actual.Functions);
        Messages(d, "model.training_info", expected.TrainingInfo, actual.TrainingInfo);
        CompareGraph(d, "graph", expected.Graph, actual.Graph);
        return d;
    }

    private static void CompareGraph(List<string> d, string path, Graph a, Graph b)
    {
        Check(d, $"{path}.name", a.Name, b.Name);
        Check(d, $"{path}.doc_string", a.DocString, b.DocString);
        Sequence(d, $"{path}.node", a.Nodes, b.Nodes, (p, x, y) => CompareNode(d, p, x, y));
        Sequence(d, $"{path}.input", a.Inputs, b.Inputs, (p, x, y) => CompareValueInfo(d, p, x, y));
        Sequence(d, $"{path}.output", a.Outputs, b.Outputs, (p, x, y) => CompareValueInfo(d, p, x, y));
        Sequence(d, $"{path}.value_info", a.ValueInfos, b.ValueInfos, (p, x, y) => CompareValueInfo(d, p, x, y));
        Sequence(d, $"{path}.initializer", [.. a.Initializers], [.. b.Initializers], (p, x, y) =>
        {
            Check(d, $"{p}.name", x.Key, y.Key);
            CompareTensor(d, $"{p} '{x.Key}'", x.Value, y.Value);
        });
        Map(d, $"{path}.initializer doc_string", a.InitializerDocStrings, b.InitializerDocStrings, (p, x, y) => Check(d, p, x, y));
        Map(d, $"{path}.initializer metadata_props", a.InitializerMetadata, b.InitializerMetadata, (p, x, y) => Messages(d, p, x, y));
        Messages(d, $"{path}.sparse_initializer", a.SparseInitializers, b.SparseInitializers);
        Messages(d, $"{path}.quantization_annotation", a.QuantizationAnnotations, b.QuantizationAnnotations);
        Messages(d, $"{path}.metadata_props", a.MetadataProps, b.MetadataProps);
    }

    private static void CompareNode(List<string> d, string path, Node a, Node b)
    {
        path = $"{path} ({a.OpType} '{a.Name}')";
        Check(d, $"{path}.op_type", a.OpType, b.OpType);
        Check(d, $"{path}.domain", a.Domain, b.Domain);
        Check(d, $"{path}.name", a.Name, b.Name);
        Check(d, $"{path}.overload", a.Overload, b.Overload);
        Check(d, $"{path}.doc_string", a.DocString, b.DocString);
        Sequence(d, $"{path}.input", a.Inputs, b.Inputs, (p, x, y) => Check(d, p, x, y));
        Sequence(d, $"{path}.output", a.Outputs, b.Outputs, (p, x, y) => Check(d, p, x, y));
        Messages(d, $"{path}.metadata_props", a.MetadataProps, b.MetadataProps);
        Sequence(d, $"{path}.attribute", a.Attributes, b.Attributes, (p, x, y) => CompareAttribute(d, p, x, y));
    }

    private static void CompareAttribute(List<string> d, string path, OnnxAttribute a, OnnxAttribute b)
    {
        path = $"{path} '{a.Name}'";
        Check(d, $"{path}.name", a.Name, b.Name);
        Check(d, $"{path}.type", a.Type, b.Type);
        Check(d, $"{path}.doc_string", a.DocString, b.DocString);
        Check(d, $"{path}.ref_attr_name", a.RefAttrName, b.RefAttrName);
        Check(d, $"{path}.f", BitConverter.SingleToInt32Bits(a.Float), BitConverter.SingleToInt32Bits(b.Float));
        Check(d, $"{path}.i", a.Int, b.Int);
        Bytes(d, $"{path}.s", a.String, b.String);
        Sequence(d, $"{path}.floats", [.. a.Floats.Select(BitConverter.SingleToInt32Bits)], [.. b.Floats.Select(BitConverter.SingleToInt32Bits)], (p, x, y) => Check(d, p, x, y));
        Sequence(d, $"{path}.ints", a.Ints, b.Ints, (p, x, y) => Check(d, p, x, y));
        Sequence(d, $"{path}.strings", a.Strings, b.Strings, (p, x, y) => Bytes(d, p, x, y));
        Check(d, $"{path}.t is set", a.Tensor is null, b.Tensor is null);
        if (a.Tensor is not null && b.Tensor is not null) CompareTensor(d, $"{path}.t", a.Tensor, b.Tensor);
        Check(d, $"{path}.t.name", a.TensorName, b.TensorName);
        Sequence(d, $"{path}.tensors", a.Tensors, b.Tensors, (p, x, y) => CompareTensor(d, p, x, y));
        Sequence(d, $"{path}.tensors names", a.TensorsNames, b.TensorsNames, (p, x, y) => Check(d, p, x, y));
        Check(d, $"{path}.g is set", a.Graph is null, b.Graph is null);
        if (a.Graph is not null && b.Graph is not null) CompareGraph(d, $"{path}.g", a.Graph, b.Graph);
        Sequence(d, $"{path}.graphs", a.Graphs, b.Graphs, (p, x, y) => CompareGraph(d, p, x, y));
        Check(d, $"{path} (wire form)", a.Opaque, b.Opaque);
    }

    private static void CompareValueInfo(List<string> d, string path, ValueInfo a, ValueInfo b)
    {
        path = $"{path} '{a.Name}'";
        Check(d, $"{path}.name", a.Name, b.Name);
        Check(d, $"{path}.doc_string", a.DocString, b.DocString);
        Check(d, $"{path} has type", a.HasType, b.HasType);
        Check(d, $"{path}.elem_type", a.ElementType, b.ElementType);
        Check(d, $"{path}.denotation", a.Denotation, b.Denotation);
        Check(d, $"{path} has shape", a.Shape is null, b.Shape is null);
        if (a.Shape is not null && b.Shape is not null)
            Sequence(d, $"{path}.shape", [.. a.Shape], [.. b.Shape], (p, x, y) => Check(d, p, x, y));
        Check(d, $"{path}.type (non-tensor)", a.NonTensorType, b.NonTensorType);
        Messages(d, $"{path}.metadata_props", a.MetadataProps, b.MetadataProps);
    }

    private static void CompareTensor(List<string> d, string path, OnnxTensor a, OnnxTensor b)
    {
        Check(d, $"{path}.data_type", a.ElementType, b.ElementType);
        Sequence(d, $"{path}.dims", a.Dims, b.Dims, (p, x, y) => Check(d, p, x, y));
        if (a.ElementType != b.ElementType || !a.Shape.SequenceEqual(b.Shape)) return;
        if (a.ElementType == DataType.String)
            Sequence(d, $"{path}.string_data", (byte[][])a.Buffer, (byte[][])b.Buffer, (p, x, y) => Bytes(d, p, x, y));
        else
            Bytes(d, $"{path} bytes", a.ToRawBytes(), b.ToRawBytes());
    }

    private static void Check<T>(List<string> d, string path, T a, T b)
    {
        if (!EqualityComparer<T>.Default.Equals(a, b)) d.Add($"{path}: {Show(a)} != {Show(b)}");
    }

    private static void Bytes(List<string> d, string path, byte[] a, byte[] b)
    {
        if (a.AsSpan().SequenceEqual(b)) return;
        int at = a.AsSpan().CommonPrefixLength(b);
        d.Add($"{path}: {a.Length} bytes != {b.Length} bytes, first difference at byte {at}");
    }

    private static void Sequence<T>(List<string> d, string path, IReadOnlyList<T> a, IReadOnlyList<T> b, Action<string, T, T> compare)
    {
        if (a.Count != b.Count) d.Add($"{path}: {a.Count} items != {b.Count} items");
        for (int i = 0; i < Math.Min(a.Count, b.Count); i++) compare($"{path}[{i}]", a[i], b[i]);
    }

    private static void Map<T>(List<string> d, string path, Dictionary<string, T> a, Dictionary<string, T> b, Action<string, T, T> compare)
    {
        foreach (var key in a.Keys.Union(b.Keys).Order(StringComparer.Ordinal))
        {
            if (!a.TryGetValue(key, out var x)) d.Add($"{path}['{key}']: missing on the left");
            else if (!b.TryGetValue(key, out var y)) d.Add($"{path}['{key}']: missing on the right");
            else compare($"{path}['{key}']", x, y);
        }
    }

    private static void Messages<T>(List<string> d, string path, IReadOnlyList<T> a, IReadOnlyList<T> b) where T : IMessage =>
        Sequence(d, path, a, b, (p, x, y) => Check(d, p, x, y));

    private static string Show<T>(T value) => value switch
    {
        null => "null",
        string s => $"'{(s.Length > 60 ? s[..60] + "…" : s)}'",
        IMessage m => m.CalculateSize() > 200 ? $"<{m.GetType().Name} of {m.CalculateSize()} bytes>" : m.ToString() ?? "",
        _ => value.ToString() ?? "",
    };
}
