using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Autodiff;

/// <summary>
/// Appends nodes to a graph under construction, naming them after a prefix (the forward node's name) and a counter.
/// Helpers emit ONNX ops in the form valid at the graph's default operator-set version (e.g. ReduceSum's axes as an
/// attribute before opset 13 and as an input from 13 on), so rules need not know the version.
/// </summary>
internal sealed class GraphEmitter
{
    private readonly List<Node> _nodes;
    private readonly Dictionary<string, DataType> _types;
    private readonly HashSet<string> _names;
    private int _counter;

    internal GraphEmitter(List<Node> nodes, long opsetVersion, Dictionary<string, DataType> types, HashSet<string> names)
    {
        _nodes = nodes;
        OpsetVersion = opsetVersion;
        _types = types;
        _names = names;
    }

    /// <summary>The default-domain operator-set version nodes are emitted for.</summary>
    public long OpsetVersion { get; }

    /// <summary>Names of emitted nodes and values start with this (the forward node's name).</summary>
    public string Prefix { get; set; } = "grad";

    /// <summary>The nodes emitted so far.</summary>
    public IReadOnlyList<Node> Nodes => _nodes;

    /// <summary>A value name not yet used in the graph, based on <paramref name="hint"/>.</summary>
    public string FreshName(string hint)
    {
        string name = hint;
        while (!_names.Add(name)) name = $"{hint}_{++_counter}";
        return name;
    }

    /// <summary>Records the element type of an emitted value (constants, casts); others are inferred.</summary>
    public void SetType(string value, DataType type) => _types[value] = type;

    /// <summary>The element type of a value, if known.</summary>
    public DataType TypeOf(string value) => _types.GetValueOrDefault(value);

    /// <summary>Emits one node of the default domain with one output; returns the output's name.</summary>
    public string Op(string opType, string[] inputs, params OnnxAttribute[] attributes) => Ops(opType, inputs, 1, "", attributes)[0];

    /// <summary>Emits one node of the default domain with one output and no attributes.</summary>
    public string Op(string opType, params string[] inputs) => Ops(opType, inputs, 1, "", [])[0];

    /// <summary>Emits one node of <see cref="OpRegistry.BackpropDomain"/> (a gradient kernel of our own) with one output.</summary>
    public string Custom(string opType, string[] inputs, params OnnxAttribute[] attributes) => Ops(opType, inputs, 1, OpRegistry.BackpropDomain, attributes)[0];

    /// <summary>Emits one node with <paramref name="outputCount"/> outputs; returns their names.</summary>
    public string[] Ops(string opType, string[] inputs, int outputCount, string domain, params OnnxAttribute[] attributes)
    {
        var outputs = new string[outputCount];
        for (int i = 0; i < outputCount; i++) outputs[i] = FreshName($"{Prefix}/{opType}_out{(outputCount > 1 ? i.ToString(System.Globalization.CultureInfo.InvariantCulture) : "")}");
        string nodeName = FreshName($"{Prefix}/{opType}");
        var node = new Node(opType, inputs, outputs, nodeName, domain);
        node.Attributes.AddRange(attributes);
        _nodes.Add(node);
        var inputTypes = inputs.Select(i => i.Length == 0 ? DataType.Undefined : _types.GetValueOrDefault(i)).ToArray();
        long version = domain.Length == 0 ? OpsetVersion : 1;
        var def = OpRegistry.TryFind(node, version, out _);
        if (def is not null)
        {
            var ctx = new OpContext(node, version, inputTypes);
            var inferred = def.InferTypes is not null ? def.InferTypes(ctx) : TypeInferencePass.DefaultTypes(ctx);
            for (int i = 0; i < outputCount && i < inferred.Length; i++) if (inferred[i] != DataType.Undefined) _types[outputs[i]] = inferred[i];
        }
        return outputs;
    }

    // ---- constants ----

    /// <summary>A scalar constant of the given element type.</summary>
    public string Scalar(double value, DataType type) => Constant(ScalarTensor(value, type));

    /// <summary>A constant node holding <paramref name="tensor"/>.</summary>
    public string Constant(OnnxTensor tensor)
    {
        string name = Op("Constant", [], OnnxAttribute.FromTensor("value", tensor));
        _types[name] = tensor.ElementType;
        return name;
    }

    /// <summary>A 1-D int64 constant (axes, shapes, perms as tensors).</summary>
    public string Int64s(params long[] values) => Constant(OnnxTensor.FromArray(values, values.Length));

    internal static OnnxTensor ScalarTensor(double value, DataType type) => type switch
    {
        DataType.Double => OnnxTensor.Scalar(value),
        DataType.Float => OnnxTensor.Scalar((float)value),
        DataType.Float16 => OnnxTensor.Scalar((Half)value),
        DataType.Int64 => OnnxTensor.Scalar((long)value),
        DataType.Int32 => OnnxTensor.Scalar((int)value),
        DataType.Bool => OnnxTensor.Scalar(value != 0),
        _ => throw new NotSupportedException($"No scalar constants of type {DataTypes.OnnxName(type)}."),
    };

    // ---- elementwise ----

    /// <summary>a + b (broadcasting).</summary>
    public string Add(string a, string b) => Op("Add", a, b);
    /// <summary>a - b (broadcasting).</summary>
    public string Sub(string a, string b) => Op("Sub", a, b);
    /// <summary>a * b (broadcasting).</summary>
    public string Mul(string a, string b) => Op("Mul", a, b);
    /// <summary>a / b (broadcasting).</summary>
    public string Div(string a, string b) => Op("Div", a, b);
    /// <summary>-x.</summary>
    public string Neg(string x) => Op("Neg", x);
    /// <summary>exp(x).</summary>
    public string Exp(string x) => Op("Exp", x);
    /// <summary>ln(x).</summary>
    public string Log(string x) => Op("Log", x);
    /// <summary>sqrt(x).</summary>
    public string Sqrt(string x) => Op("Sqrt", x);
    /// <summary>1/x.</summary>
    public string Reciprocal(string x) => Op("Reciprocal", x);
    /// <summary>|x|.</summary>
    public string Abs(string x) => Op("Abs", x);
    /// <summary>sign(x).</summary>
    public string Sign(string x) => Op("Sign", x);
    /// <summary>logistic sigmoid.</summary>
    public string Sigmoid(string x) => Op("Sigmoid", x);
    /// <summary>tanh(x).</summary>
    public string Tanh(string x) => Op("Tanh", x);
    /// <summary>x*x.</summary>
    public string Square(string x) => Mul(x, x);
    /// <summary>cond ? a : b (broadcasting).</summary>
    public string Where(string cond, string a, string b) => Op("Where", cond, a, b);
    /// <summary>a == b (bool).</summary>
    public string Equal(string a, string b) => Op("Equal", a, b);
    /// <summary>a &gt; b (bool).</summary>
    public string Greater(string a, string b) => Op("Greater", a, b);
    /// <summary>a &lt; b (bool).</summary>
    public string Less(string a, string b) => Op("Less", a, b);
    /// <summary>a &gt;= b (bool), as Not(Less) before opset 12.</summary>
    public string GreaterOrEqual(string a, string b) => OpsetVersion >= 12 ? Op("GreaterOrEqual", a, b) : Op("Not", Less(a, b));
    /// <summary>a &lt;= b (bool), as Not(Greater) before opset 12.</summary>
    public string LessOrEqual(string a, string b) => OpsetVersion >= 12 ? Op("LessOrEqual", a, b) : Op("Not", Greater(a, b));
    /// <summary>logical not.</summary>
    public string Not(string x) => Op("Not", x);
    /// <summary>logical and.</summary>
    public string And(string a, string b) => Op("And", a, b);
    /// <summary>Cast to <paramref name="to"/>.</summary>
    public string Cast(string x, DataType to)
    {
        string y = Op("Cast", [x], OnnxAttribute.FromInt("to", (long)to));
        _types[y] = to;
        return y;
    }

    /// <summary>Matrix product with NumPy semantics.</summary>
    public string MatMul(string a, string b) => Op("MatMul", a, b);

    // ---- shapes ----

    /// <summary>The shape of x as a 1-D int64 tensor.</summary>
    public string Shape(string x) => Op("Shape", x);
    /// <summary>x reshaped to the int64 shape tensor <paramref name="shape"/>.</summary>
    public string Reshape(string x, string shape) => Op("Reshape", x, shape);
    /// <summary>x broadcast to the int64 shape tensor <paramref name="shape"/>.</summary>
    public string Expand(string x, string shape) => Op("Expand", x, shape);
    /// <summary>Transpose with permutation <paramref name="perm"/>.</summary>
    public string Transpose(string x, params long[] perm) => Op("Transpose", [x], OnnxAttribute.FromInts("perm", perm));
    /// <summary>Zeros shaped like <paramref name="x"/>, of its element type.</summary>
    public string ZerosLike(string x) => Filled(x, 0);
    /// <summary>Ones shaped like <paramref name="x"/>, of its element type.</summary>
    public string OnesLike(string x) => Filled(x, 1);

    /// <summary>
    /// A tensor shaped like <paramref name="x"/> filled with <paramref name="value"/>: ConstantOfShape from opset 9,
    /// Expand of a scalar at opset 8, and x·0 + value below (where the old op sets offer nothing shape-driven; NaN where
    /// x is infinite or NaN).
    /// </summary>
    private string Filled(string x, double value)
    {
        var type = TypeOf(x) == DataType.Undefined ? DataType.Float : TypeOf(x);
        if (OpsetVersion >= 9) return Op("ConstantOfShape", [Shape(x)], OnnxAttribute.FromTensor("value", OnnxTensorOf(value, type)));
        if (OpsetVersion >= 8) return Expand(Scalar(value, type), Shape(x));
        string zeros = Mul(x, Scalar(0, type));
        return value == 0 ? zeros : Add(zeros, Scalar(value, type));
    }

    private static OnnxTensor OnnxTensorOf(double v, DataType type)
    {
        var s = ScalarTensor(v, type == DataType.Undefined ? DataType.Float : type);
        return s.Reshape([1]);
    }

    /// <summary>Unsqueeze (axes attribute before opset 13, input from 13).</summary>
    public string Unsqueeze(string x, params long[] axes) =>
        OpsetVersion >= 13 ? Op("Unsqueeze", x, Int64s(axes)) : Op("Unsqueeze", [x], OnnxAttribute.FromInts("axes", axes));

    /// <summary>Squeeze (axes attribute before opset 13, input from 13).</summary>
    public string Squeeze(string x, params long[] axes) =>
        OpsetVersion >= 13 ? Op("Squeeze", x, Int64s(axes)) : Op("Squeeze", [x], OnnxAttribute.FromInts("axes", axes));

    /// <summary>ReduceSum over <paramref name="axes"/> (all when null), in the form of the graph's opset.</summary>
    public string ReduceSum(string x, long[]? axes, bool keepdims)
    {
        var keep = OnnxAttribute.FromInt("keepdims", keepdims ? 1 : 0);
        if (axes is null) return Op("ReduceSum", [x], keep);
        return OpsetVersion >= 13 ? Op("ReduceSum", [x, Int64s(axes)], keep) : Op("ReduceSum", [x], OnnxAttribute.FromInts("axes", axes), keep);
    }

    /// <summary>A reduction other than ReduceSum (axes attribute up to opset 17).</summary>
    public string Reduce(string opType, string x, long[]? axes, bool keepdims)
    {
        var keep = OnnxAttribute.FromInt("keepdims", keepdims ? 1 : 0);
        if (axes is null) return Op(opType, [x], keep);
        return OpsetVersion >= 18 ? Op(opType, [x, Int64s(axes)], keep) : Op(opType, [x], OnnxAttribute.FromInts("axes", axes), keep);
    }

    /// <summary>
    /// Sums <paramref name="grad"/> down to the runtime shape of <paramref name="like"/>, undoing broadcasting
    /// (our <c>SumToShape</c> op; a no-op when the shapes already agree).
    /// </summary>
    public string SumToShapeOf(string grad, string like) => Custom("SumToShape", [grad, Shape(like)]);
}
