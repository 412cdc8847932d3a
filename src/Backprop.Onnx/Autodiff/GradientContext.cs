using Backprop.Onnx.IR;

namespace Backprop.Onnx.Autodiff;

/// <summary>
/// A vector-Jacobian product rule: given the forward node and the cotangents of its outputs, emit nodes that compute
/// the cotangent of each input, and return their value names in input order (null: no gradient flows to that input,
/// a symbolic zero). The pass reduces each returned cotangent to its input's shape (un-broadcasting) and accumulates
/// cotangents of values used more than once; rules do neither.
/// </summary>
internal delegate string?[] VjpRule(GradientContext ctx);

/// <summary>
/// What a gradient rule sees: the forward node's inputs and outputs (value names), the cotangents of the outputs
/// (null where no gradient reaches an output: a symbolic zero), which inputs need a cotangent, element types, and the
/// <see cref="GraphEmitter"/> that appends backward nodes (named after the forward node).
/// </summary>
internal sealed class GradientContext
{
    private readonly string?[] _outputGrads;
    private readonly bool[] _needsGrad;
    private readonly Func<string, DataType> _typeOf;
    private readonly Func<string, IReadOnlyList<Dim>?> _shapeOf;

    internal GradientContext(Node node, long opsetVersion, string?[] outputGrads, bool[] needsGrad, GraphEmitter emit,
        Func<string, DataType> typeOf, Func<string, IReadOnlyList<Dim>?> shapeOf)
    {
        Node = node;
        OpsetVersion = opsetVersion;
        _outputGrads = outputGrads;
        _needsGrad = needsGrad;
        Emit = emit;
        _typeOf = typeOf;
        _shapeOf = shapeOf;
    }

    /// <summary>The forward node.</summary>
    public Node Node { get; }

    /// <summary>The version of the node's domain the graph imports.</summary>
    public long OpsetVersion { get; }

    /// <summary>Appends backward nodes.</summary>
    public GraphEmitter Emit { get; }

    /// <summary>The name of forward input <paramref name="index"/>; "" when absent.</summary>
    public string Input(int index) => Node.InputOrEmpty(index);

    /// <summary>True when forward input <paramref name="index"/> is present.</summary>
    public bool HasInput(int index) => Input(index).Length > 0;

    /// <summary>Number of forward inputs (including empty optional ones).</summary>
    public int InputCount => Node.Inputs.Count;

    /// <summary>The name of forward output <paramref name="index"/>.</summary>
    public string Output(int index) => index < Node.Outputs.Count ? Node.Outputs[index] : "";

    /// <summary>The cotangent of output <paramref name="index"/>, or null when it is zero (no gradient reaches it).</summary>
    public string? OutputGrad(int index) => index < _outputGrads.Length ? _outputGrads[index] : null;

    /// <summary>True when some requested gradient depends on input <paramref name="index"/>'s cotangent.</summary>
    public bool NeedsGrad(int index) => index < _needsGrad.Length && _needsGrad[index];

    /// <summary>The element type of a value (float or double for differentiable values).</summary>
    public DataType ElementType(string value) => _typeOf(value);

    /// <summary>The static shape of a value when known from the graph (value_info, inputs, initializers); else null.</summary>
    public IReadOnlyList<Dim>? StaticShape(string value) => _shapeOf(value);

    /// <summary>The static rank of a value, when known.</summary>
    public int? Rank(string value) => _shapeOf(value)?.Count;

    /// <summary>A scalar constant of the element type of <paramref name="like"/>.</summary>
    public string Scalar(double value, string like) => Emit.Scalar(value, ElementType(like));

    /// <summary>An exception naming the node, for attribute values a rule does not handle.</summary>
    public UnsupportedOperatorException Unsupported(string what) =>
        new(Node.OpType, Node.Domain, OpsetVersion, Node.Name, $"no gradient: {what}");
}
