namespace Backprop.Onnx.IR;

/// <summary>The type of an attribute's value, numbered as <c>AttributeProto.AttributeType</c>.</summary>
public enum AttributeType
{
    /// <summary>Not set.</summary>
    Undefined = 0,
    /// <summary>One float.</summary>
    Float = 1,
    /// <summary>One 64-bit integer.</summary>
    Int = 2,
    /// <summary>One byte string.</summary>
    String = 3,
    /// <summary>One tensor.</summary>
    Tensor = 4,
    /// <summary>One graph (a subgraph, e.g. a branch of <c>If</c>).</summary>
    Graph = 5,
    /// <summary>A list of floats.</summary>
    Floats = 6,
    /// <summary>A list of 64-bit integers.</summary>
    Ints = 7,
    /// <summary>A list of byte strings.</summary>
    Strings = 8,
    /// <summary>A list of tensors.</summary>
    Tensors = 9,
    /// <summary>A list of graphs.</summary>
    Graphs = 10,
    /// <summary>One sparse tensor (held in wire form).</summary>
    SparseTensor = 11,
    /// <summary>A list of sparse tensors (held in wire form).</summary>
    SparseTensors = 12,
    /// <summary>One type (held in wire form).</summary>
    TypeProto = 13,
    /// <summary>A list of types (held in wire form).</summary>
    TypeProtos = 14,
}

/// <summary>
/// A named attribute of a node (<c>AttributeProto</c>): exactly one of the value properties is meaningful, the one
/// <see cref="Type"/> names. Inside a function body, <see cref="RefAttrName"/> refers to an attribute of the caller.
/// </summary>
public sealed class OnnxAttribute
{
    /// <summary>Creates an attribute of the given name and type with no value yet.</summary>
    public OnnxAttribute(string name, AttributeType type)
    {
        Name = name;
        Type = type;
    }

    /// <summary>The attribute's name, as the operator spec spells it (e.g. <c>transB</c>).</summary>
    public string Name { get; set; }

    /// <summary>Which value property holds the value.</summary>
    public AttributeType Type { get; set; }

    /// <summary>The value of a <see cref="AttributeType.Float"/> attribute.</summary>
    public float Float { get; set; }

    /// <summary>The value of an <see cref="AttributeType.Int"/> attribute.</summary>
    public long Int { get; set; }

    /// <summary>The value of a <see cref="AttributeType.String"/> attribute (bytes, usually UTF-8).</summary>
    public byte[] String { get; set; } = [];

    /// <summary>The value of a <see cref="AttributeType.Tensor"/> attribute.</summary>
    public OnnxTensor? Tensor { get; set; }

    /// <summary>The value of a <see cref="AttributeType.Graph"/> attribute.</summary>
    public Graph? Graph { get; set; }

    /// <summary>The value of a <see cref="AttributeType.Floats"/> attribute.</summary>
    public float[] Floats { get; set; } = [];

    /// <summary>The value of an <see cref="AttributeType.Ints"/> attribute.</summary>
    public long[] Ints { get; set; } = [];

    /// <summary>The value of a <see cref="AttributeType.Strings"/> attribute.</summary>
    public byte[][] Strings { get; set; } = [];

    /// <summary>The value of a <see cref="AttributeType.Tensors"/> attribute.</summary>
    public OnnxTensor[] Tensors { get; set; } = [];

    /// <summary>The value of a <see cref="AttributeType.Graphs"/> attribute.</summary>
    public Graph[] Graphs { get; set; } = [];

    /// <summary>In a function body: the caller's attribute this one takes its value from.</summary>
    public string RefAttrName { get; set; } = "";

    /// <summary>The documentation string.</summary>
    public string DocString { get; set; } = "";

    /// <summary>The tensor's name, for a tensor-valued attribute that carried one.</summary>
    internal string? TensorName { get; set; }

    internal string[] TensorsNames { get; set; } = [];

    /// <summary>Sparse-tensor and type values, held in wire form.</summary>
    internal Protobuf.AttributeProto? Opaque { get; set; }

    /// <summary>The string value decoded as UTF-8.</summary>
    public string StringValue => System.Text.Encoding.UTF8.GetString(String);

    /// <summary>An int attribute.</summary>
    public static OnnxAttribute FromInt(string name, long value) => new(name, AttributeType.Int) { Int = value };

    /// <summary>A float attribute.</summary>
    public static OnnxAttribute FromFloat(string name, float value) => new(name, AttributeType.Float) { Float = value };

    /// <summary>A list-of-ints attribute.</summary>
    public static OnnxAttribute FromInts(string name, params long[] value) => new(name, AttributeType.Ints) { Ints = value };

    /// <summary>A list-of-floats attribute.</summary>
    public static OnnxAttribute FromFloats(string name, params float[] value) => new(name, AttributeType.Floats) { Floats = value };

    /// <summary>A string attribute (UTF-8).</summary>
    public static OnnxAttribute FromString(string name, string value) => new(name, AttributeType.String) { String = System.Text.Encoding.UTF8.GetBytes(value) };

    /// <summary>A tensor attribute.</summary>
    public static OnnxAttribute FromTensor(string name, OnnxTensor value) => new(name, AttributeType.Tensor) { Tensor = value };

    /// <summary>The value in short text form, for messages and inspection.</summary>
    public override string ToString() => Type switch
    {
        AttributeType.Float => $"{Name}={Float}",
        AttributeType.Int => $"{Name}={Int}",
        AttributeType.String => $"{Name}='{StringValue}'",
        AttributeType.Ints => $"{Name}=[{string.Join(',', Ints)}]",
        AttributeType.Floats => $"{Name}=[{string.Join(',', Floats)}]",
        _ => $"{Name}:{Type}",
    };
}
