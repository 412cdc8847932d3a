namespace Backprop.Onnx.IR;

/// <summary>One dimension of a static shape: a number, a symbol (<c>dim_param</c>, e.g. <c>"N"</c>), or unknown.</summary>
/// <param name="Value">The size, when known.</param>
/// <param name="Param">The symbolic name, when the size is a named parameter.</param>
/// <param name="Denotation">The optional denotation string (e.g. <c>DATA_BATCH</c>).</param>
public readonly record struct Dim(long? Value, string? Param, string? Denotation = null)
{
    /// <summary>A dimension of known size.</summary>
    public static Dim Of(long value) => new(value, null);

    /// <summary>A symbolic dimension.</summary>
    public static Dim Symbol(string name) => new(null, name);

    /// <summary>An unknown dimension.</summary>
    public static Dim Unknown => new(null, null);

    /// <summary>The size, the symbol, or <c>?</c>.</summary>
    public override string ToString() => Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? Param ?? "?";
}

/// <summary>
/// A named value of a graph (an input, output or intermediate) with its type, as in <c>ValueInfoProto</c>:
/// element type and shape for tensors. <see cref="Shape"/> is null when the rank is unknown.
/// </summary>
public sealed class ValueInfo
{
    /// <summary>Creates a tensor value description.</summary>
    /// <param name="name">The value's name, unique in its graph.</param>
    /// <param name="elementType">Element type, or <see cref="DataType.Undefined"/> when not known.</param>
    /// <param name="shape">Dimensions; null for unknown rank.</param>
    public ValueInfo(string name, DataType elementType, IReadOnlyList<Dim>? shape)
    {
        Name = name;
        ElementType = elementType;
        Shape = shape;
    }

    /// <summary>The value's name.</summary>
    public string Name { get; set; }

    /// <summary>The element type; <see cref="DataType.Undefined"/> when unknown or not a tensor.</summary>
    public DataType ElementType { get; set; }

    /// <summary>The static shape; null when the rank is unknown.</summary>
    public IReadOnlyList<Dim>? Shape { get; set; }

    /// <summary>The documentation string.</summary>
    public string DocString { get; set; } = "";

    /// <summary>The type denotation (e.g. <c>IMAGE</c>), if any.</summary>
    public string? Denotation { get; set; }

    /// <summary>True when the shape and every dimension are known numbers.</summary>
    public bool HasStaticShape => Shape is not null && Shape.All(d => d.Value.HasValue);

    /// <summary>
    /// The full wire type when the value is not a plain tensor (sequence, map, optional, sparse tensor), kept so that
    /// export reproduces it; null for tensors.
    /// </summary>
    internal Protobuf.TypeProto? NonTensorType { get; set; }

    /// <summary>True when the wire type was set at all (a ValueInfoProto may omit it).</summary>
    internal bool HasType { get; set; } = true;

    /// <summary>True when the tensor type carried a shape field (even an empty one: a scalar).</summary>
    internal bool HasShapeField => Shape is not null;

    internal List<Protobuf.StringStringEntryProto> MetadataProps { get; } = [];

    /// <summary>Name, type and shape, e.g. <c>x: float[N,3]</c>.</summary>
    public override string ToString() =>
        $"{Name}: {(NonTensorType is null ? DataTypes.OnnxName(ElementType) : "non-tensor")}{(Shape is null ? "" : "[" + string.Join(',', Shape) + "]")}";
}
