using System.Text;

namespace Backprop.Onnx.IR;

/// <summary>
/// One operator call (<c>NodeProto</c>): an op type in a domain, input and output value names (an empty input name is an
/// absent optional input), and attributes. Edges are by name, as in ONNX.
/// </summary>
public sealed class Node
{
    /// <summary>Creates a node.</summary>
    /// <param name="opType">The op type as the spec spells it (e.g. <c>MatMul</c>).</param>
    /// <param name="inputs">Input value names; "" for an absent optional input.</param>
    /// <param name="outputs">Output value names; "" for an unused optional output.</param>
    /// <param name="name">The node's name (may be empty).</param>
    /// <param name="domain">The operator-set domain; "" for the default ONNX domain.</param>
    public Node(string opType, IEnumerable<string> inputs, IEnumerable<string> outputs, string name = "", string domain = "")
    {
        OpType = opType;
        Inputs = [.. inputs];
        Outputs = [.. outputs];
        Name = name;
        Domain = domain;
    }

    /// <summary>The op type.</summary>
    public string OpType { get; set; }

    /// <summary>The operator-set domain; "" (or "ai.onnx") is the default ONNX domain.</summary>
    public string Domain { get; set; }

    /// <summary>The node's name.</summary>
    public string Name { get; set; }

    /// <summary>The function overload (IR version 10), usually empty.</summary>
    public string Overload { get; set; } = "";

    /// <summary>Input value names in operator order; "" marks an absent optional input.</summary>
    public List<string> Inputs { get; }

    /// <summary>Output value names in operator order.</summary>
    public List<string> Outputs { get; }

    /// <summary>The attributes in file order.</summary>
    public List<OnnxAttribute> Attributes { get; } = [];

    /// <summary>The documentation string.</summary>
    public string DocString { get; set; } = "";

    internal List<Protobuf.StringStringEntryProto> MetadataProps { get; } = [];

    /// <summary>True when the node is in the default ONNX domain.</summary>
    public bool IsDefaultDomain => Domain.Length == 0 || Domain == "ai.onnx";

    /// <summary>The attribute of that name, or null.</summary>
    public OnnxAttribute? FindAttribute(string name)
    {
        foreach (var a in Attributes) if (a.Name == name) return a;
        return null;
    }

    /// <summary>True when the node carries an attribute of that name.</summary>
    public bool HasAttribute(string name) => FindAttribute(name) is not null;

    /// <summary>The int attribute, or <paramref name="defaultValue"/> when absent.</summary>
    /// <exception cref="ModelFormatException">The attribute is present with another type.</exception>
    public long GetInt(string name, long defaultValue) => FindAttribute(name) is { } a ? Expect(a, AttributeType.Int).Int : defaultValue;

    /// <summary>The float attribute, or <paramref name="defaultValue"/> when absent.</summary>
    /// <exception cref="ModelFormatException">The attribute is present with another type.</exception>
    public float GetFloat(string name, float defaultValue) => FindAttribute(name) is { } a ? Expect(a, AttributeType.Float).Float : defaultValue;

    /// <summary>The string attribute (UTF-8), or <paramref name="defaultValue"/> when absent.</summary>
    /// <exception cref="ModelFormatException">The attribute is present with another type.</exception>
    public string GetString(string name, string defaultValue) => FindAttribute(name) is { } a ? Encoding.UTF8.GetString(Expect(a, AttributeType.String).String) : defaultValue;

    /// <summary>The ints attribute, or null when absent.</summary>
    /// <exception cref="ModelFormatException">The attribute is present with another type.</exception>
    public long[]? GetInts(string name) => FindAttribute(name) is { } a ? Expect(a, AttributeType.Ints).Ints : null;

    /// <summary>The floats attribute, or null when absent.</summary>
    /// <exception cref="ModelFormatException">The attribute is present with another type.</exception>
    public float[]? GetFloats(string name) => FindAttribute(name) is { } a ? Expect(a, AttributeType.Floats).Floats : null;

    /// <summary>The tensor attribute, or null when absent.</summary>
    /// <exception cref="ModelFormatException">The attribute is present with another type.</exception>
    public OnnxTensor? GetTensor(string name) => FindAttribute(name) is { } a ? Expect(a, AttributeType.Tensor).Tensor : null;

    /// <summary>Sets (replaces or adds) an attribute.</summary>
    public void SetAttribute(OnnxAttribute attribute)
    {
        for (int i = 0; i < Attributes.Count; i++)
        {
            if (Attributes[i].Name == attribute.Name) { Attributes[i] = attribute; return; }
        }
        Attributes.Add(attribute);
    }

    /// <summary>Input <paramref name="index"/>, or "" when the node has fewer inputs (absent optional input).</summary>
    public string InputOrEmpty(int index) => index < Inputs.Count ? Inputs[index] : "";

    /// <summary>A short description for messages: <c>OpType 'name'</c>.</summary>
    public string Describe() => $"{OpType} node '{Name}'";

    /// <summary>Op type, name and edges, for diagnostics.</summary>
    public override string ToString() => $"{OpType} '{Name}' ({string.Join(", ", Inputs)}) -> ({string.Join(", ", Outputs)})";

    private OnnxAttribute Expect(OnnxAttribute a, AttributeType type) =>
        a.Type == type ? a : throw new ModelFormatException("<graph>", Describe(), $"attribute '{a.Name}' is {a.Type}, expected {type}");
}
