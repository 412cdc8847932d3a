using Backprop.Onnx.Protobuf;
using Google.Protobuf;

namespace Backprop.Onnx.Tests.Import;

/// <summary>Small hand-built ModelProtos for importer and exporter tests, and a temporary folder to write them in.</summary>
internal static class ModelProtos
{
    /// <summary>
    /// A valid model: graph <c>g</c> with input X float[2], initializer W float[2] = {1, 2}, node 'add' (Add X W → Y),
    /// node 'relu' (Relu Y → Z), output Z.
    /// </summary>
    public static ModelProto Valid()
    {
        var graph = new GraphProto { Name = "g" };
        graph.Input.Add(TensorValue("X", 1, 2));
        graph.Output.Add(TensorValue("Z", 1, 2));
        graph.Initializer.Add(FloatTensor("W", [2], 1f, 2f));
        graph.Node.Add(Node("add", "Add", ["X", "W"], ["Y"]));
        graph.Node.Add(Node("relu", "Relu", ["Y"], ["Z"]));
        var model = new ModelProto { IrVersion = 8, ProducerName = "tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model;
    }

    public static NodeProto Node(string name, string opType, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { Name = name, OpType = opType };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    public static ValueInfoProto TensorValue(string name, int elemType, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elemType, Shape = shape } } };
    }

    /// <summary>A float tensor with its values in raw_data.</summary>
    public static TensorProto FloatTensor(string name, long[] dims, params float[] values)
    {
        var t = new TensorProto { Name = name, DataType = 1 };
        t.Dims.AddRange(dims);
        var raw = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, raw, 0, raw.Length);
        t.RawData = ByteString.CopyFrom(raw);
        return t;
    }

    /// <summary>A float tensor whose data lives in an external file.</summary>
    public static TensorProto ExternalTensor(string name, long[] dims, string location, long? offset = null, long? length = null)
    {
        var t = new TensorProto { Name = name, DataType = 1, DataLocation = TensorProto.Types.DataLocation.External };
        t.Dims.AddRange(dims);
        t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        if (offset is { } o) t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = o.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        if (length is { } l) t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = l.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        return t;
    }

    /// <summary>The little-endian bytes of the floats.</summary>
    public static byte[] Bytes(params float[] values)
    {
        var raw = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, raw, 0, raw.Length);
        return raw;
    }
}

/// <summary>A fresh folder under the system temp folder, deleted (with everything in it) on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "backprop-onnx-tests-" + Guid.NewGuid().ToString("N"));

    /// <summary>The full path of a file in the folder.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Writes a model into the folder and returns its path.</summary>
    public string Write(ModelProto model, string name = "model.onnx")
    {
        string path = File(name);
        System.IO.File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }
}
