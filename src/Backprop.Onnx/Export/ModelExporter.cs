using Backprop.Onnx.IR;
using Backprop.Onnx.Protobuf;
using Google.Protobuf;

namespace Backprop.Onnx.Export;

/// <summary>
/// Writes the IR back to ONNX (<c>ModelProto</c>). Export of an unchanged imported model keeps everything: IR version,
/// opsets, producer, metadata, doc strings, node order and names, value_info, initializer names, element types and
/// bytes. Numeric tensors are written as <c>raw_data</c>. Files are written to a temporary file and renamed.
/// Models whose tensors exceed the 2 GB protobuf limit are written with external data beside the file.
/// </summary>
public static class ModelExporter
{
    /// <summary>Serialized models larger than this are written with external data (protobuf's limit is 2 GiB).</summary>
    public const long ExternalDataThreshold = 2_000_000_000;

    private static readonly AsyncLocal<long?> s_externalDataThreshold = new();

    /// <summary>
    /// The threshold <see cref="Save"/> and <see cref="ToBytes"/> apply: <see cref="ExternalDataThreshold"/>, unless a test
    /// lowers it to exercise external data without writing 2 GB (the override holds for the current async flow only).
    /// </summary>
    internal static long EffectiveExternalDataThreshold
    {
        get => s_externalDataThreshold.Value ?? ExternalDataThreshold;
        set => s_externalDataThreshold.Value = value == ExternalDataThreshold ? null : value;
    }

    /// <summary>Tensors at least this large go to the external data file when external data is used.</summary>
    public const int ExternalTensorMinBytes = 1024;

    /// <summary>The model as a <c>ModelProto</c> message, all tensors inline.</summary>
    internal static ModelProto ToProto(OnnxModel model) => ToProto(model, externalSink: null);

    /// <summary>The serialized bytes of the model, all tensors inline.</summary>
    /// <exception cref="InvalidOperationException">The model is too large for one protobuf message; use <see cref="Save"/>.</exception>
    public static byte[] ToBytes(OnnxModel model)
    {
        var proto = ToProto(model);
        if (proto.CalculateSize() < 0 || EstimateTensorBytes(model.Graph) > EffectiveExternalDataThreshold)
            throw new InvalidOperationException("The model exceeds the 2 GB protobuf limit; save it to a file to use external data.");
        return proto.ToByteArray();
    }

    /// <summary>
    /// Writes the model to <paramref name="path"/> atomically: the bytes go to a temporary file in the same folder, which
    /// then replaces the target, so a crash never leaves a half-written model. Over 2 GB of tensors, tensors of at least
    /// <see cref="ExternalTensorMinBytes"/> bytes go to <c>&lt;file name&gt;.&lt;id&gt;.data</c> beside the model, written before the model
    /// and under a fresh name, so the previous model and its data stay intact until the model file is replaced.
    /// </summary>
    /// <param name="model">The model to write.</param>
    /// <param name="path">Target file; its folder must exist.</param>
    /// <exception cref="IOException">The file cannot be written.</exception>
    public static void Save(OnnxModel model, string path)
    {
        string full = Path.GetFullPath(path);
        if (EstimateTensorBytes(model.Graph) <= EffectiveExternalDataThreshold)
        {
            AtomicFile.Write(full, stream => ToProto(model).WriteTo(stream));
            return;
        }
        // The data goes to a file of a fresh name, so the previous model keeps pointing at its own data until the
        // model file itself is replaced; then the data files of earlier saves are removed.
        string dir = Path.GetDirectoryName(full)!;
        string dataName = $"{Path.GetFileName(full)}.{Guid.NewGuid().ToString("N")[..8]}.data";
        ModelProto? proto = null;
        AtomicFile.Write(Path.Combine(dir, dataName), dataStream =>
        {
            var sink = new ExternalSink(dataName, dataStream);
            proto = ToProto(model, sink);
        });
        try
        {
            AtomicFile.Write(full, stream => proto!.WriteTo(stream));
        }
        catch
        {
            File.Delete(Path.Combine(dir, dataName));
            throw;
        }
        foreach (var old in Directory.EnumerateFiles(dir, Path.GetFileName(full) + ".????????.data"))
            if (Path.GetFileName(old) != dataName) File.Delete(old);
    }

    private static long EstimateTensorBytes(Graph g)
    {
        long total = 0;
        foreach (var t in g.Initializers.Values)
            total += t.ElementType == DataType.String ? 0 : DataTypes.RawByteLength(t.ElementType, t.ElementCount);
        foreach (var n in g.Nodes)
            foreach (var a in n.Attributes)
            {
                if (a.Tensor is { } t && t.ElementType != DataType.String) total += DataTypes.RawByteLength(t.ElementType, t.ElementCount);
                foreach (var sub in a.Graphs.Append(a.Graph)) if (sub is not null) total += EstimateTensorBytes(sub);
            }
        return total;
    }

    internal sealed class ExternalSink(string location, Stream stream)
    {
        public string Location { get; } = location;
        public Stream Stream { get; } = stream;
    }

    private static ModelProto ToProto(OnnxModel model, ExternalSink? externalSink)
    {
        var proto = new ModelProto { IrVersion = model.IrVersion, Graph = WriteGraph(model.Graph, externalSink) };
        if (model.ProducerName.Length > 0) proto.ProducerName = model.ProducerName;
        if (model.ProducerVersion.Length > 0) proto.ProducerVersion = model.ProducerVersion;
        if (model.Domain.Length > 0) proto.Domain = model.Domain;
        if (model.ModelVersion != 0) proto.ModelVersion = model.ModelVersion;
        if (model.DocString.Length > 0) proto.DocString = model.DocString;
        foreach (var o in model.OpsetImports)
        {
            var op = new OperatorSetIdProto { Version = o.Version };
            if (o.Domain.Length > 0) op.Domain = o.Domain;
            proto.OpsetImport.Add(op);
        }
        foreach (var kv in model.MetadataProps) proto.MetadataProps.Add(new StringStringEntryProto { Key = kv.Key, Value = kv.Value });
        proto.TrainingInfo.AddRange(model.TrainingInfo);
        proto.Functions.AddRange(model.Functions);
        return proto;
    }

    private static GraphProto WriteGraph(Graph g, ExternalSink? sink)
    {
        var proto = new GraphProto();
        if (g.Name.Length > 0) proto.Name = g.Name;
        if (g.DocString.Length > 0) proto.DocString = g.DocString;
        foreach (var n in g.Nodes) proto.Node.Add(WriteNode(n, sink));
        foreach (var (name, tensor) in g.Initializers)
        {
            var t = WriteTensor(tensor, name, sink);
            if (g.InitializerDocStrings.TryGetValue(name, out var doc)) t.DocString = doc;
            if (g.InitializerMetadata.TryGetValue(name, out var meta)) t.MetadataProps.AddRange(meta);
            proto.Initializer.Add(t);
        }
        proto.SparseInitializer.AddRange(g.SparseInitializers);
        foreach (var v in g.Inputs) proto.Input.Add(WriteValueInfo(v));
        foreach (var v in g.Outputs) proto.Output.Add(WriteValueInfo(v));
        foreach (var v in g.ValueInfos) proto.ValueInfo.Add(WriteValueInfo(v));
        proto.QuantizationAnnotation.AddRange(g.QuantizationAnnotations);
        proto.MetadataProps.AddRange(g.MetadataProps);
        return proto;
    }

    internal static NodeProto WriteNode(Node n, ExternalSink? sink)
    {
        var proto = new NodeProto { OpType = n.OpType };
        proto.Input.AddRange(n.Inputs);
        proto.Output.AddRange(n.Outputs);
        if (n.Name.Length > 0) proto.Name = n.Name;
        if (n.Domain.Length > 0) proto.Domain = n.Domain;
        if (n.Overload.Length > 0) proto.Overload = n.Overload;
        if (n.DocString.Length > 0) proto.DocString = n.DocString;
        foreach (var a in n.Attributes) proto.Attribute.Add(WriteAttribute(a, sink));
        proto.MetadataProps.AddRange(n.MetadataProps);
        return proto;
    }

    private static AttributeProto WriteAttribute(OnnxAttribute a, ExternalSink? sink)
    {
        if (a.Opaque is not null) return a.Opaque;
        var proto = new AttributeProto { Name = a.Name, Type = (AttributeProto.Types.AttributeType)a.Type };
        if (a.DocString.Length > 0) proto.DocString = a.DocString;
        if (a.RefAttrName.Length > 0) proto.RefAttrName = a.RefAttrName;
        switch (a.Type)
        {
            case AttributeType.Float: proto.F = a.Float; break;
            case AttributeType.Int: proto.I = a.Int; break;
            case AttributeType.String: proto.S = ByteString.CopyFrom(a.String); break;
            case AttributeType.Tensor: if (a.Tensor is not null) proto.T = WriteTensor(a.Tensor, a.TensorName, sink); break;
            case AttributeType.Graph: if (a.Graph is not null) proto.G = WriteGraph(a.Graph, sink); break;
            case AttributeType.Floats: proto.Floats.AddRange(a.Floats); break;
            case AttributeType.Ints: proto.Ints.AddRange(a.Ints); break;
            case AttributeType.Strings: proto.Strings.AddRange(a.Strings.Select(ByteString.CopyFrom)); break;
            case AttributeType.Tensors:
                for (int i = 0; i < a.Tensors.Length; i++)
                    proto.Tensors.Add(WriteTensor(a.Tensors[i], i < a.TensorsNames.Length && a.TensorsNames[i].Length > 0 ? a.TensorsNames[i] : null, sink));
                break;
            case AttributeType.Graphs: proto.Graphs.AddRange(a.Graphs.Select(g => WriteGraph(g, sink))); break;
        }
        return proto;
    }

    /// <summary>One tensor as a <c>TensorProto</c>: numeric data in <c>raw_data</c>, strings in <c>string_data</c>.</summary>
    internal static TensorProto WriteTensor(OnnxTensor t, string? name, ExternalSink? sink = null)
    {
        var proto = new TensorProto { DataType = (int)t.ElementType };
        if (name is not null) proto.Name = name;
        foreach (int d in t.Shape) proto.Dims.Add(d);
        if (t.ElementType == DataType.String)
        {
            var strings = (byte[][])t.Buffer;
            for (long i = 0; i < t.ElementCount; i++) proto.StringData.Add(ByteString.CopyFrom(strings[i]));
            return proto;
        }
        byte[] raw = t.ToRawBytes();
        if (sink is not null && raw.Length >= ExternalTensorMinBytes)
        {
            // Align each tensor to 4 KiB so that readers can map it directly.
            long offset = (sink.Stream.Position + 4095) / 4096 * 4096;
            while (sink.Stream.Position < offset) sink.Stream.WriteByte(0);
            sink.Stream.Write(raw);
            proto.DataLocation = TensorProto.Types.DataLocation.External;
            proto.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = sink.Location });
            proto.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            proto.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = raw.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            return proto;
        }
        proto.RawData = ByteString.CopyFrom(raw);
        return proto;
    }

    private static ValueInfoProto WriteValueInfo(ValueInfo v)
    {
        var proto = new ValueInfoProto { Name = v.Name };
        if (v.DocString.Length > 0) proto.DocString = v.DocString;
        proto.MetadataProps.AddRange(v.MetadataProps);
        if (v.NonTensorType is not null) { proto.Type = v.NonTensorType; return proto; }
        if (!v.HasType) return proto;
        var tt = new TypeProto.Types.Tensor();
        if (v.ElementType != DataType.Undefined) tt.ElemType = (int)v.ElementType;
        if (v.Shape is not null)
        {
            tt.Shape = new TensorShapeProto();
            foreach (var d in v.Shape)
            {
                var dim = new TensorShapeProto.Types.Dimension();
                if (d.Value.HasValue) dim.DimValue = d.Value.Value;
                else if (d.Param is not null) dim.DimParam = d.Param;
                if (d.Denotation is not null) dim.Denotation = d.Denotation;
                tt.Shape.Dim.Add(dim);
            }
        }
        proto.Type = new TypeProto { TensorType = tt };
        if (v.Denotation is not null) proto.Type.Denotation = v.Denotation;
        return proto;
    }
}

/// <summary>Writes a file through a temporary file in the same folder and an atomic rename.</summary>
internal static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
