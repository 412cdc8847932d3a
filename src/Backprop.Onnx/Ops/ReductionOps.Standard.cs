using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Standard-op forms (<see cref="OpDefinition.StandardOps"/>) of the family's gradient kernels, for export as
/// model-local functions, and the helpers they share. Function bodies are type-polymorphic but constants are not, so
/// the rules give each gradient node a <c>dtype</c> attribute (the element type of its float values).
/// </summary>
internal static partial class ReductionOps
{
    /// <summary>The <c>dtype</c> attribute a rule puts on a gradient node: the element type of <paramref name="value"/>.</summary>
    internal static OnnxAttribute DTypeAttribute(GradientContext ctx, string value) =>
        OnnxAttribute.FromInt("dtype", (long)(ctx.ElementType(value) is var t && t != DataType.Undefined ? t : DataType.Float));

    /// <summary>The node's <c>dtype</c> attribute.</summary>
    internal static DataType DType(Node node) => (DataType)node.GetInt("dtype", (long)DataType.Float);

    /// <summary>The rank of <paramref name="x"/> as a 1-D int64 tensor [rank].</summary>
    internal static string RankVector(GraphEmitter e, string x) => e.Shape(e.Shape(x));

    /// <summary>A 1-D int64 tensor as a scalar.</summary>
    internal static string ToScalar(GraphEmitter e, string v) => e.Reshape(v, e.Int64s());

    /// <summary>[from, from+1, …, rank-1] as int64 (from ≥ 0, a 1-D [1] tensor or a constant).</summary>
    internal static string AxesFrom(GraphEmitter e, string from, string x) =>
        e.Op("Range", ToScalar(e, from), ToScalar(e, RankVector(e, x)), e.Constant(OnnxTensor.Scalar(1L)));

    /// <summary>Every axis of x but 1: [0, 2, 3, …, rank-1].</summary>
    internal static string AxesButChannel(GraphEmitter e, string x) =>
        e.Op("Concat", [e.Int64s(0), AxesFrom(e, e.Int64s(2), x)], OnnxAttribute.FromInt("axis", 0));

    /// <summary>A [C] vector reshaped to [C, 1, …, 1] so it broadcasts along dimension 1 of x.</summary>
    internal static string AlongChannel(GraphEmitter e, string v, string x)
    {
        string ones = e.Op("ConstantOfShape", [e.Sub(RankVector(e, x), e.Int64s(2))], OnnxAttribute.FromTensor("value", OnnxTensor.FromArray(new long[] { 1 }, 1)));
        return e.Reshape(v, e.Op("Concat", [e.Int64s(-1), ones], OnnxAttribute.FromInt("axis", 0)));
    }

    /// <summary>ReduceSum over an axes tensor (opset 13+ input form).</summary>
    internal static string SumOver(GraphEmitter e, string x, string axes, bool keepdims) =>
        e.Op("ReduceSum", [x, axes], OnnxAttribute.FromInt("keepdims", keepdims ? 1 : 0));

    /// <summary>Size(a) / Size(b) as a scalar of <paramref name="type"/>.</summary>
    internal static string SizeRatio(GraphEmitter e, string a, string b, DataType type) => e.Cast(e.Div(e.Op("Size", a), e.Op("Size", b)), type);

    /// <summary>Zeros shaped like <paramref name="like"/>, of <paramref name="type"/>.</summary>
    internal static string ZerosOf(GraphEmitter e, string like, DataType type) =>
        e.Op("ConstantOfShape", [e.Shape(like)], OnnxAttribute.FromTensor("value", GraphEmitter.ScalarTensor(0, type).Reshape([1])));

    /// <summary>Sums <paramref name="g"/> down to the shape tensor <paramref name="shape"/> with SumToShape's standard form.</summary>
    internal static string SumTo(GraphEmitter e, string g, string shape)
    {
        var node = new Node("SumToShape", [g, shape], ["out"], "SumToShape", OpRegistry.BackpropDomain);
        return OpRegistry.Find(node, 1).StandardOps!(e, node)[0];
    }

    /// <summary>
    /// ReduceGrad in standard ops: with K(op, v) the forward reduction op applied to v in keepdims form and
    /// U(v) = Reshape(v, Shape(K)): Sum: Expand(U(dY), Shape(X)); Mean: that / (Size(X)/Size(dY)); SumSquare: (X+X)·U(dY);
    /// L1: Sign(X)·U(dY); L2: X·Where(Y = 0, 0, U(dY)/Y); LogSum: Expand(U(dY)/K(ReduceSum, X)); LogSumExp: U(dY)·Exp(X − Y);
    /// Prod: U(dY)·(no zero: Π/X; one zero: Π of the others at the zero; else 0); Max/Min: Where(X = Y, U(dY)/ties, 0).
    /// </summary>
    private static string[] ReduceGradStandard(GraphEmitter e, Node node)
    {
        string dy = node.Inputs[0], x = node.Inputs[1], axesInput = node.InputOrEmpty(2);
        var kind = Enum.Parse<ReduceKind>(node.GetString("reduction", ""));
        long[]? axes = node.GetInts("axes") is { Length: > 0 } a ? a : null;
        long noop = node.GetInt("noop_with_empty_axes", 0);
        var type = DType(node);
        string Keep(string op, string v)
        {
            if (axesInput.Length == 0) return op == "ReduceSum" ? e.ReduceSum(v, axes, true) : e.Reduce(op, v, axes, true);
            if (op != "ReduceSum") throw new UnsupportedOperatorException("ReduceGrad", OpRegistry.BackpropDomain, 1, node.Name, $"{op} with an axes input");
            return e.Op("ReduceSum", [v, axesInput], OnnxAttribute.FromInt("keepdims", 1), OnnxAttribute.FromInt("noop_with_empty_axes", noop));
        }
        string U(string v, string keepShaped) => e.Reshape(v, e.Shape(keepShaped));
        string zero = e.Scalar(0, type), one = e.Scalar(1, type);
        string dx;
        switch (kind)
        {
            case ReduceKind.Sum: dx = e.Expand(U(dy, Keep("ReduceSum", x)), e.Shape(x)); break;
            case ReduceKind.Mean: dx = e.Div(e.Expand(U(dy, Keep("ReduceSum", x)), e.Shape(x)), SizeRatio(e, x, dy, type)); break;
            case ReduceKind.SumSquare: dx = e.Mul(e.Add(x, x), U(dy, Keep("ReduceSum", x))); break;
            case ReduceKind.L1: dx = e.Mul(e.Sign(x), U(dy, Keep("ReduceSum", x))); break;
            case ReduceKind.L2:
                {
                    string y = Keep("ReduceL2", x);
                    dx = e.Mul(x, e.Where(e.Equal(y, zero), zero, e.Div(U(dy, y), y)));
                    break;
                }
            case ReduceKind.LogSum:
                {
                    string s = Keep("ReduceSum", x);
                    dx = e.Expand(e.Div(U(dy, s), s), e.Shape(x));
                    break;
                }
            case ReduceKind.LogSumExp:
                {
                    string y = Keep("ReduceLogSumExp", x);
                    dx = e.Mul(U(dy, y), e.Exp(e.Sub(x, y)));
                    break;
                }
            case ReduceKind.Prod:
                {
                    string isZero = e.Equal(x, zero);
                    string zeros = Keep("ReduceSum", e.Cast(isZero, type));
                    string others = Keep("ReduceProd", e.Where(isZero, one, x));
                    string oneZero = e.Where(e.And(isZero, e.Equal(zeros, one)), others, zero);
                    dx = e.Mul(e.Where(e.Equal(zeros, zero), e.Div(others, x), oneZero), U(dy, zeros));
                    break;
                }
            default:
                {
                    string y = Keep(kind == ReduceKind.Max ? "ReduceMax" : "ReduceMin", x);
                    string isExtreme = e.Equal(x, y);
                    string ties = Keep("ReduceSum", e.Cast(isExtreme, type));
                    dx = e.Where(isExtreme, e.Div(U(dy, y), ties), zero);
                    break;
                }
        }
        return [dx];
    }
}
