using Backprop.Onnx.IR;
using Backprop.Onnx.Protobuf;
using Google.Protobuf;

namespace Backprop.Onnx.Import;

/// <summary>
/// Reads ONNX model files (IR versions 3–10) into the IR: the graph and its subgraphs, initializers (including those that
/// old IR versions also list as graph inputs), Constant nodes, every numeric data type, and external data confined to
/// the model's folder. The model is validated on the way: every problem is a <see cref="ModelFormatException"/>.
/// </summary>
public static class ModelImporter
{
    /// <summary>The highest IR version this importer understands.</summary>
    public const long MaxIrVersion = 10;

    /// <summary>Loads and validates a model file; external data is read from the file's folder.</summary>
    /// <param name="path">Path of a <c>.onnx</c> file.</param>
    /// <returns>The model in IR form, with <see cref="OnnxModel.SourcePath"/> set.</returns>
    /// <exception cref="ModelFormatException">The file is missing, unreadable, not an ONNX model, or violates the IR specification.</exception>
    public static OnnxModel Load(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ModelFormatException(path, "", e is FileNotFoundException or DirectoryNotFoundException ? "file not found" : $"cannot read the file ({e.Message})", e);
        }
        var model = Load(bytes, path, Path.GetDirectoryName(Path.GetFullPath(path)));
        model.SourcePath = Path.GetFullPath(path);
        return model;
    }

    /// <summary>Loads and validates a model from bytes.</summary>
    /// <param name="bytes">A serialized <c>ModelProto</c>.</param>
    /// <param name="sourceName">Name used in error messages (a file path, or "&lt;bytes&gt;").</param>
    /// <param name="baseDirectory">Folder that external-data locations are relative to; null forbids external data.</param>
    /// <exception cref="ModelFormatException">The bytes are not an ONNX model or violate the IR specification.</exception>
    public static OnnxModel Load(ReadOnlySpan<byte> bytes, string sourceName = "<bytes>", string? baseDirectory = null)
    {
        var proto = ParseModel(bytes, sourceName);
        return FromProto(proto, sourceName, baseDirectory);
    }

    internal static ModelProto ParseModel(ReadOnlySpan<byte> bytes, string sourceName)
    {
        ModelProto proto;
        try
        {
            proto = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ModelFormatException(sourceName, "", $"not a valid ONNX protobuf file ({e.Message.TrimEnd('.')})", e);
        }
        if (proto.Graph is null)
            throw new ModelFormatException(sourceName, "", "not an ONNX model: the file has no graph");
        if (!proto.HasIrVersion || proto.IrVersion < 1)
            throw new ModelFormatException(sourceName, "", "not an ONNX model: ir_version is missing");
        if (proto.IrVersion > MaxIrVersion)
            throw new ModelFormatException(sourceName, "", $"IR version {proto.IrVersion} is newer than the highest supported ({MaxIrVersion})");
        return proto;
    }

    internal static OnnxModel FromProto(ModelProto proto, string sourceName, string? baseDirectory)
    {
        var model = new OnnxModel
        {
            IrVersion = proto.IrVersion,
            ProducerName = proto.ProducerName,
            ProducerVersion = proto.ProducerVersion,
            Domain = proto.Domain,
            ModelVersion = proto.ModelVersion,
            DocString = proto.DocString,
        };
        foreach (var o in proto.OpsetImport)
            model.OpsetImports.Add(new OpsetImport(o.Domain, o.Version));
        foreach (var m in proto.MetadataProps)
            model.MetadataProps.Add(new(m.Key, m.Value));
        model.Functions.AddRange(proto.Functions);
        model.TrainingInfo.AddRange(proto.TrainingInfo);

        var reader = new GraphReader(sourceName, new TensorDecoder(sourceName, baseDirectory));
        model.Graph = reader.Read(proto.Graph, outerScope: null, path: "graph");
        return model;
    }

    private sealed class GraphReader(string source, TensorDecoder tensors)
    {
        public Graph Read(GraphProto g, Scope? outerScope, string path)
        {
            var graph = new Graph { Name = g.Name, DocString = g.DocString };
            string where = string.IsNullOrEmpty(g.Name) ? path : $"{path} '{g.Name}'";
            foreach (var t in g.Initializer)
            {
                string name = t.Name;
                if (string.IsNullOrEmpty(name)) throw Fail($"{where}: initializer #{graph.Initializers.Count}", "initializer has no name");
                if (graph.Initializers.ContainsKey(name)) throw Fail($"{where}: initializer '{name}'", "duplicate initializer name");
                graph.Initializers.Add(name, tensors.Decode(t, $"initializer '{name}'"));
                if (!string.IsNullOrEmpty(t.DocString)) graph.InitializerDocStrings[name] = t.DocString;
                if (t.MetadataProps.Count > 0) graph.InitializerMetadata[name] = [.. t.MetadataProps];
            }
            graph.SparseInitializers.AddRange(g.SparseInitializer);
            graph.QuantizationAnnotations.AddRange(g.QuantizationAnnotation);
            graph.MetadataProps.AddRange(g.MetadataProps);

            var defined = new HashSet<string>(StringComparer.Ordinal);
            var inputNames = new HashSet<string>(StringComparer.Ordinal);
            foreach (var v in g.Input)
            {
                var info = ReadValueInfo(v, $"{where}: input");
                if (!inputNames.Add(info.Name)) throw Fail($"{where}: input '{info.Name}'", "duplicate graph input name");
                graph.Inputs.Add(info);
                defined.Add(info.Name);
            }
            foreach (var name in graph.Initializers.Keys) defined.Add(name);
            foreach (var s in g.SparseInitializer)
            {
                string? name = s.Values?.Name;
                if (!string.IsNullOrEmpty(name)) defined.Add(name);
            }
            foreach (var v in g.Output) graph.Outputs.Add(ReadValueInfo(v, $"{where}: output"));
            foreach (var v in g.ValueInfo) graph.ValueInfos.Add(ReadValueInfo(v, $"{where}: value_info"));

            var names = new HashSet<string>(defined, StringComparer.Ordinal);
            var scope = new Scope(names, outerScope);
            var producedBy = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < g.Node.Count; i++)
            {
                var n = g.Node[i];
                foreach (var o in n.Output)
                {
                    if (o.Length == 0) continue;
                    if (defined.Contains(o) || producedBy.ContainsKey(o))
                        throw Fail($"{where}: {Describe(n, i)}", $"output '{o}' duplicates the name of another value");
                    producedBy[o] = i;
                }
            }
            names.UnionWith(producedBy.Keys);

            for (int i = 0; i < g.Node.Count; i++)
            {
                var n = g.Node[i];
                string nodeWhere = $"{where}: {Describe(n, i)}";
                if (string.IsNullOrEmpty(n.OpType)) throw Fail(nodeWhere, "node has no op_type");
                var node = new Node(n.OpType, n.Input, n.Output, n.Name, n.Domain) { DocString = n.DocString, Overload = n.Overload };
                node.MetadataProps.AddRange(n.MetadataProps);
                foreach (var input in n.Input)
                {
                    if (input.Length == 0) continue;
                    if (!scope.Contains(input)) throw Fail(nodeWhere, $"input '{input}' is not a graph input, initializer or output of any node");
                }
                var seenAttributes = new HashSet<string>(StringComparer.Ordinal);
                foreach (var a in n.Attribute)
                {
                    if (!seenAttributes.Add(a.Name)) throw Fail(nodeWhere, $"duplicate attribute '{a.Name}'");
                    node.Attributes.Add(ReadAttribute(a, nodeWhere, scope));
                }
                graph.Nodes.Add(node);
            }
            foreach (var output in graph.Outputs)
            {
                // A subgraph may output a value of an enclosing graph (ONNX IR spec, "Names Within a Graph").
                if (!scope.Contains(output.Name))
                    throw Fail($"{where}: output '{output.Name}'", "graph output is not a graph input, initializer or output of any node");
            }
            CheckAcyclic(g, producedBy, where);
            return graph;
        }

        /// <summary>
        /// The names visible in a graph: its own values, then those of the graphs around it. Linked rather than copied,
        /// so that a model with many subgraphs imports in linear time (each copy of the outer names made it quadratic).
        /// </summary>
        public sealed class Scope(HashSet<string> names, Scope? outer)
        {
            public bool Contains(string name) => names.Contains(name) || (outer is not null && outer.Contains(name));
        }

        private static string Describe(NodeProto n, int index) =>
            string.IsNullOrEmpty(n.Name) ? $"node #{index} ({n.OpType})" : $"node '{n.Name}' ({n.OpType})";

        /// <summary>Kahn's algorithm over node-to-node edges: any node left unvisited lies on a cycle.</summary>
        private void CheckAcyclic(GraphProto g, Dictionary<string, int> producedBy, string where)
        {
            int n = g.Node.Count;
            var indegree = new int[n];
            var consumers = new List<int>[n];
            for (int i = 0; i < n; i++) consumers[i] = [];
            for (int i = 0; i < n; i++)
            {
                foreach (var input in g.Node[i].Input)
                {
                    if (input.Length > 0 && producedBy.TryGetValue(input, out int p))
                    {
                        indegree[i]++;
                        consumers[p].Add(i);
                    }
                }
            }
            var ready = new Queue<int>();
            for (int i = 0; i < n; i++) if (indegree[i] == 0) ready.Enqueue(i);
            int visited = 0;
            while (ready.Count > 0)
            {
                int i = ready.Dequeue();
                visited++;
                foreach (int c in consumers[i]) if (--indegree[c] == 0) ready.Enqueue(c);
            }
            if (visited != n)
            {
                int first = Array.FindIndex(indegree, d => d > 0);
                throw Fail($"{where}: {Describe(g.Node[first], first)}", "the graph has a cycle through this node");
            }
        }

        private ValueInfo ReadValueInfo(ValueInfoProto v, string where)
        {
            if (string.IsNullOrEmpty(v.Name)) throw Fail(where, "value has no name");
            var info = new ValueInfo(v.Name, DataType.Undefined, null) { DocString = v.DocString, HasType = v.Type is not null };
            info.MetadataProps.AddRange(v.MetadataProps);
            if (v.Type is null) return info;
            if (v.Type.HasDenotation) info.Denotation = v.Type.Denotation;
            if (v.Type.ValueCase != TypeProto.ValueOneofCase.TensorType)
            {
                info.NonTensorType = v.Type;
                return info;
            }
            var tt = v.Type.TensorType;
            var type = (DataType)tt.ElemType;
            if (tt.ElemType != 0 && !DataTypes.IsDefined(type))
                throw Fail($"{where} '{v.Name}'", $"unknown data type {tt.ElemType}");
            info.ElementType = type;
            if (tt.Shape is not null)
                info.Shape = [.. tt.Shape.Dim.Select(d => new Dim(
                    d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : null,
                    d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? d.DimParam : null,
                    d.HasDenotation ? d.Denotation : null))];
            return info;
        }

        private OnnxAttribute ReadAttribute(AttributeProto a, string where, Scope scope)
        {
            if (string.IsNullOrEmpty(a.Name)) throw Fail(where, "attribute has no name");
            var type = a.HasType ? (AttributeType)a.Type : InferType(a);
            string at = $"{where}: attribute '{a.Name}'";
            var attribute = new OnnxAttribute(a.Name, type) { DocString = a.DocString, RefAttrName = a.RefAttrName };
            switch (type)
            {
                case AttributeType.Float: attribute.Float = a.F; break;
                case AttributeType.Int: attribute.Int = a.I; break;
                case AttributeType.String: attribute.String = a.S.ToByteArray(); break;
                case AttributeType.Tensor:
                    if (a.T is null) { if (a.RefAttrName.Length == 0) throw Fail(at, "tensor attribute has no tensor"); break; }
                    attribute.Tensor = tensors.Decode(a.T, at);
                    attribute.TensorName = a.T.HasName ? a.T.Name : null;
                    break;
                case AttributeType.Graph:
                    if (a.G is null) { if (a.RefAttrName.Length == 0) throw Fail(at, "graph attribute has no graph"); break; }
                    attribute.Graph = Read(a.G, scope, at);
                    break;
                case AttributeType.Floats: attribute.Floats = [.. a.Floats]; break;
                case AttributeType.Ints: attribute.Ints = [.. a.Ints]; break;
                case AttributeType.Strings: attribute.Strings = [.. a.Strings.Select(s => s.ToByteArray())]; break;
                case AttributeType.Tensors:
                    attribute.Tensors = [.. a.Tensors.Select((t, i) => tensors.Decode(t, $"{at}[{i}]"))];
                    attribute.TensorsNames = [.. a.Tensors.Select(t => t.Name)];
                    break;
                case AttributeType.Graphs: attribute.Graphs = [.. a.Graphs.Select((g, i) => Read(g, scope, $"{at}[{i}]"))]; break;
                case AttributeType.SparseTensor:
                case AttributeType.SparseTensors:
                case AttributeType.TypeProto:
                case AttributeType.TypeProtos:
                    attribute.Opaque = a;
                    break;
                default:
                    throw Fail(at, $"unknown attribute type {(int)a.Type}");
            }
            return attribute;
        }

        /// <summary>IR version 1 files may omit <c>type</c>: infer it from the one field that is set.</summary>
        private static AttributeType InferType(AttributeProto a) =>
            a.HasF ? AttributeType.Float : a.HasI ? AttributeType.Int : a.HasS ? AttributeType.String :
            a.T is not null ? AttributeType.Tensor : a.G is not null ? AttributeType.Graph :
            a.Floats.Count > 0 ? AttributeType.Floats : a.Ints.Count > 0 ? AttributeType.Ints :
            a.Strings.Count > 0 ? AttributeType.Strings : a.Tensors.Count > 0 ? AttributeType.Tensors :
            a.Graphs.Count > 0 ? AttributeType.Graphs : AttributeType.Undefined;

        private ModelFormatException Fail(string location, string reason) => new(source, location, reason);
    }
}
