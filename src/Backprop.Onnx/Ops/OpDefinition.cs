using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>Builds the kernel of one node; throws <see cref="UnsupportedOperatorException"/> (via <see cref="OpContext.Unsupported"/>) for anything it cannot run.</summary>
internal delegate Kernel KernelFactory(OpContext op);

/// <summary>Infers the element types of a node's outputs from its inputs' (entries may be Undefined when unknown).</summary>
internal delegate DataType[] TypeInference(OpContext op);

/// <summary>
/// One operator as the engine knows it: its forward kernel factory, output type inference and gradient rule, in the
/// three states of PyTorch's derivatives.yaml: a formula (<see cref="Vjp"/>), <see cref="GradientState.NonDifferentiable"/>
/// (no gradient flows, e.g. Shape, ArgMax) or <see cref="GradientState.NotImplemented"/>.
/// </summary>
internal sealed class OpDefinition
{
    public OpDefinition(string opType, KernelFactory create, string domain = "", int minVersion = 1, int maxVersion = OpRegistry.MaxKnownOpset)
    {
        OpType = opType;
        Create = create;
        Domain = domain;
        MinVersion = minVersion;
        MaxVersion = maxVersion;
    }

    public string OpType { get; }

    /// <summary>"" for the default ONNX domain.</summary>
    public string Domain { get; }

    /// <summary>Lowest operator-set version implemented (inclusive).</summary>
    public int MinVersion { get; }

    /// <summary>Highest operator-set version implemented (inclusive): set it below <see cref="OpRegistry.MaxKnownOpset"/> where a later version changed the op.</summary>
    public int MaxVersion { get; }

    public KernelFactory Create { get; }

    /// <summary>Output element types; default: every output has the type of the first present input.</summary>
    public TypeInference? InferTypes { get; init; }

    /// <summary>The vector-Jacobian product, when <see cref="Gradient"/> is <see cref="GradientState.Formula"/>.</summary>
    public VjpRule? Vjp { get; init; }

    /// <summary>Which of the three gradient states the op is in.</summary>
    public GradientState Gradient => Vjp is not null ? GradientState.Formula : _nonDifferentiable ? GradientState.NonDifferentiable : GradientState.NotImplemented;

    /// <summary>Marks the op as having no gradient by definition (integer outputs, shapes, indices, comparisons).</summary>
    public bool NonDifferentiable { get => _nonDifferentiable; init => _nonDifferentiable = value; }

    private readonly bool _nonDifferentiable;

    /// <summary>
    /// Input positions gradients may flow into (null: all). The pass already stops gradients at integer and bool inputs;
    /// list here the float inputs that are not differentiable by definition (e.g. Resize's scales, Dropout's ratio).
    /// </summary>
    public int[]? DifferentiableInputs { get; init; }

    /// <summary>
    /// True for ops with ONNX multidirectional broadcasting of their inputs (Add, Mul, Where, PRelu, Max, Sum…): the
    /// autodiff pass then sums each input's cotangent back to that input's shape, so the rule need not.
    /// </summary>
    public bool Broadcasting { get; init; }

    /// <summary>
    /// For ops of our own domain: emits standard ONNX nodes that compute the node's outputs from its inputs and returns
    /// the output value names in order. Export uses it to write the op as a model-local function (FunctionProto) so that an
    /// exported graph runs on any ONNX runtime. The emitter speaks the target opset (13 or later).
    /// </summary>
    public Func<Autodiff.GraphEmitter, Node, string[]>? StandardOps { get; init; }

    public bool IsInputDifferentiable(int index) => DifferentiableInputs is null || Array.IndexOf(DifferentiableInputs, index) >= 0;
}

/// <summary>The three gradient states of an op (as in PyTorch's derivatives.yaml).</summary>
internal enum GradientState
{
    /// <summary>A vector-Jacobian product rule exists.</summary>
    Formula,
    /// <summary>No gradient flows through the op by definition.</summary>
    NonDifferentiable,
    /// <summary>The op is differentiable in principle but has no rule yet.</summary>
    NotImplemented,
}

/// <summary>What a kernel factory and type inference see of a node: the node, the resolved opset version, input types.</summary>
internal sealed class OpContext
{
    public OpContext(Node node, long opsetVersion, IReadOnlyList<DataType> inputTypes)
    {
        Node = node;
        OpsetVersion = opsetVersion;
        InputTypes = inputTypes;
    }

    public Node Node { get; }

    /// <summary>The version of the node's domain the graph imports.</summary>
    public long OpsetVersion { get; }

    /// <summary>Element types of the inputs (Undefined where unknown or absent).</summary>
    public IReadOnlyList<DataType> InputTypes { get; }

    public DataType InputType(int index) => index < InputTypes.Count ? InputTypes[index] : DataType.Undefined;

    public bool HasInput(int index) => index < Node.Inputs.Count && Node.Inputs[index].Length > 0;

    /// <summary>An exception that names the op, its opset, the node and what is missing.</summary>
    public UnsupportedOperatorException Unsupported(string what) =>
        new(Node.OpType, Node.Domain, OpsetVersion, Node.Name, what);

    /// <summary>Throws <see cref="UnsupportedOperatorException"/> when input <paramref name="index"/>'s known type is not one of <paramref name="allowed"/>.</summary>
    public void RequireInputType(int index, params DataType[] allowed)
    {
        var t = InputType(index);
        if (t != DataType.Undefined && Array.IndexOf(allowed, t) < 0)
            throw Unsupported($"input {index} has element type {DataTypes.OnnxName(t)}; supported: {string.Join(", ", allowed.Select(DataTypes.OnnxName))}");
    }
}
