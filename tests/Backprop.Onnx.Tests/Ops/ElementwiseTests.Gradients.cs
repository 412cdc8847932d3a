using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>Gradient rules of the elementwise ops against central finite differences (float64), plus PyTorch's values at kinks and ties.</summary>
public sealed partial class ElementwiseTests
{
    [TestMethod]
    [DataRow("Abs", 0.2, 2.0, true)]
    [DataRow("Neg", -2.0, 2.0, false)]
    [DataRow("Exp", -2.0, 2.0, false)]
    [DataRow("Log", 0.5, 2.0, false)]
    [DataRow("Sqrt", 0.5, 2.0, false)]
    [DataRow("Reciprocal", 0.5, 2.0, true)]
    [DataRow("Sin", -3.0, 3.0, false)]
    [DataRow("Cos", -3.0, 3.0, false)]
    [DataRow("Tan", -1.2, 1.2, false)]
    [DataRow("Asin", -0.9, 0.9, false)]
    [DataRow("Acos", -0.9, 0.9, false)]
    [DataRow("Atan", -3.0, 3.0, false)]
    [DataRow("Sinh", -2.0, 2.0, false)]
    [DataRow("Cosh", -2.0, 2.0, false)]
    [DataRow("Tanh", -2.0, 2.0, false)]
    [DataRow("Asinh", -3.0, 3.0, false)]
    [DataRow("Acosh", 1.2, 3.0, false)]
    [DataRow("Atanh", -0.9, 0.9, false)]
    [DataRow("Erf", -2.5, 3.5, false)]
    [DataRow("Sigmoid", -4.0, 4.0, false)]
    [DataRow("Sign", 0.2, 2.0, true)]
    [DataRow("Ceil", 0.1, 0.9, true)]
    [DataRow("Floor", 0.1, 0.9, true)]
    [DataRow("Round", 0.1, 0.4, true)]
    public void UnaryMath_GradientMatchesFiniteDifferences(string opType, double lo, double hi, bool bothSigns)
    {
        foreach (int[] shape in new[] { new[] { 2, 3 }, [5, 17] })
        {
            var x = GradCheck.Random(shape.Sum(), shape, lo, hi);
            if (bothSigns)
            {
                // |x| in [lo, hi] with either sign: away from the kink at 0 (and, for Ceil/Floor/Round, from the jumps).
                var d = x.AsSpan<double>();
                for (int i = 0; i < d.Length; i += 2) d[i] = -d[i];
            }
            GradCheck.Op(opType, [x]);
        }
    }

    [TestMethod]
    [DataRow("2,3", "2,3")]
    [DataRow("2,3", "3")]
    [DataRow("3", "2,3")]
    [DataRow("2,1,4", "3,1")]
    [DataRow("", "5,13")]
    public void BinaryArithmetic_GradientsUnbroadcast(string a, string b)
    {
        int[] sa = Ref.Shape(a), sb = Ref.Shape(b);
        foreach (var op in new[] { "Add", "Sub", "Mul", "Div", "Max", "Min" })
        {
            double lo = op == "Div" ? 0.5 : -2;
            GradCheck.Op(op, [GradCheck.Random(1, sa, -2, 2), GradCheck.Random(2, sb, lo, 2)]);
        }
        // Pow: a positive base, any exponent; Mod: quotients kept away from integers (where it jumps).
        GradCheck.Op("Pow", [GradCheck.Random(3, sa, 0.5, 2), GradCheck.Random(4, sb, -1, 2)]);
        foreach (long fmod in new long[] { 0, 1 })
            GradCheck.Op("Mod", [GradCheck.Random(5, sa, 0.2, 2.2), GradCheck.Random(6, sb, 2.5, 3)], [OnnxAttribute.FromInt("fmod", fmod)]);
        GradCheck.Op("Mod", [GradCheck.Random(5, sa, -2.2, -0.2), GradCheck.Random(6, sb, 2.5, 3)], [OnnxAttribute.FromInt("fmod", 0)]);
    }

    [TestMethod]
    public void Pow_WithIntegerExponent_DifferentiatesTheBase()
    {
        GradCheck.Op("Pow", [GradCheck.Random(3, [2, 3], -2, 2), OnnxTensor.FromArray(new long[] { 0, 1, 3 }, 3)]);
    }

    [TestMethod]
    [DataRow("Sum")]
    [DataRow("Mean")]
    [DataRow("Max")]
    [DataRow("Min")]
    public void Variadic_GradientsUnbroadcast(string opType)
    {
        GradCheck.Op(opType, [GradCheck.Random(1, [2, 1, 3]), GradCheck.Random(2, [4, 1]), GradCheck.Random(3, [3])]);
        GradCheck.Op(opType, [GradCheck.Random(4, [3, 2])]);
    }

    [TestMethod]
    public void Where_Clip_Cast_Gradients()
    {
        var cond = OnnxTensor.FromArray(new[] { true, false, true }, 3);
        GradCheck.Op("Where", [cond, GradCheck.Random(1, [2, 3]), GradCheck.Random(2, [2, 1])]);
        // x away from the bounds ±0.5; the bounds are inputs from version 11, attributes before.
        var x = GradCheck.Random(3, [4, 5], -1, 1);
        var d = x.AsSpan<double>();
        for (int i = 0; i < d.Length; i++) if (Math.Abs(Math.Abs(d[i]) - 0.5) < 0.05) d[i] += 0.1;
        GradCheck.Op("Clip", [x, OnnxTensor.Scalar(-0.5), OnnxTensor.Scalar(0.5)]);
        GradCheck.Op("Clip", [x, OnnxTensor.Scalar(-0.5)]);
        GradCheck.Op("Clip", [x, null, OnnxTensor.Scalar(0.5)]);
        GradCheck.Op("Clip", [x], [OnnxAttribute.FromFloat("min", -0.5f), OnnxAttribute.FromFloat("max", 0.5f)], opset: 6);
        GradCheck.Op("Cast", [x], [OnnxAttribute.FromInt("to", (long)DataType.Double)]);
    }

    [TestMethod]
    public void LegacyBroadcast_AtAnAxis_Gradient()
    {
        var attrs = new[] { OnnxAttribute.FromInt("broadcast", 1), OnnxAttribute.FromInt("axis", 1) };
        foreach (var op in new[] { "Add", "Sub", "Mul", "Div", "Pow" })
            GradCheck.Op(op, [GradCheck.Random(1, [2, 3, 4], 0.5, 2), GradCheck.Random(2, [3], 0.5, 2)], attrs, opset: 6);
        GradCheck.Op("Mul", [GradCheck.Random(1, [2, 3, 4]), GradCheck.Random(2, [2, 1])], [OnnxAttribute.FromInt("broadcast", 1), OnnxAttribute.FromInt("axis", 0)], opset: 6);
    }

    [TestMethod]
    public void InputUsedTwice_AccumulatesBothContributions()
    {
        // y = x * x: dy/dx = 2x, reached through both operands of one node.
        var x = GradCheck.Random(7, [3, 4]);
        var model = SingleNode.Model("Mul", [x]);
        model.Graph.Nodes[0].Inputs.Add("x0");
        var report = GradientCheck.Run(model, new Dictionary<string, OnnxTensor> { ["x0"] = x }, new GradientCheckOptions { Seed = 7 });
        Assert.IsTrue(report.Passed, report.ToString());
    }

    /// <summary>The VJP of a single-node model for input <paramref name="wrt"/> with cotangent <paramref name="seed"/>.</summary>
    internal static double[] Vjp(string opType, OnnxTensor?[] inputs, double[] seed, int wrt, long opset = 17, params OnnxAttribute[] attributes)
    {
        var model = SingleNode.Model(opType, inputs, 1, opset, "", attributes);
        model.Graph.Outputs[0] = new ValueInfo("y0", DataType.Double, null);
        var options = new GradientOptions { SeedInputs = true, Wrt = { $"x{wrt}" } };
        var gm = ReverseMode.Differentiate(model, options);
        var feeds = new Dictionary<string, OnnxTensor>();
        for (int i = 0; i < inputs.Length; i++) if (inputs[i] is { } t) feeds[$"x{i}"] = t;
        var y = ExecutionPlan.Compile(model).Run(feeds)["y0"];
        feeds[gm.Seeds["y0"]] = OnnxTensor.FromArray(seed, y.Dims);
        return ExecutionPlan.Compile(gm.Model).Run(feeds)[gm.Gradients[$"x{wrt}"]].ToArray<double>();
    }

    [TestMethod]
    public void NonDifferentiablePoints_FollowPyTorch()
    {
        double[] seed = [1, 2, 3];
        // Abs'(0) = 0.
        CollectionAssert.AreEqual(new[] { -1.0, 0, 3 }, Vjp("Abs", [OnnxTensor.FromArray(new[] { -1.0, 0, 1 }, 3)], seed, 0));
        // Clip passes the gradient at the bounds (min <= x <= max).
        var x = OnnxTensor.FromArray(new[] { -1.0, 0.5, 2 }, 3);
        CollectionAssert.AreEqual(new[] { 1.0, 2, 0 }, Vjp("Clip", [x, OnnxTensor.Scalar(-1.0), OnnxTensor.Scalar(0.5)], seed, 0));
        // Max and Min split ties equally: torch.maximum gives grad / 2 to each of two equal inputs.
        var a = OnnxTensor.FromArray(new[] { 1.0, 2, 3 }, 3);
        var b = OnnxTensor.FromArray(new[] { 1.0, 5, 0 }, 3);
        CollectionAssert.AreEqual(new[] { 0.5, 0, 3 }, Vjp("Max", [a, b], seed, 0));
        CollectionAssert.AreEqual(new[] { 0.5, 2, 0 }, Vjp("Max", [a, b], seed, 1));
        CollectionAssert.AreEqual(new[] { 0.5, 2, 0 }, Vjp("Min", [a, b], seed, 0));
        CollectionAssert.AreEqual(new[] { 1.0 / 3, 0, 0 }, Vjp("Max", [a, b, OnnxTensor.FromArray(new[] { 1.0, 0, 0 }, 3)], seed, 2));
        // Pow: d/dx x^0 = 0 even at x = 0; d/de 0^e = 0 for e >= 0.
        CollectionAssert.AreEqual(new[] { 0.0, 0, 0 }, Vjp("Pow", [OnnxTensor.FromArray(new[] { 0.0, 0, 2 }, 3), OnnxTensor.Scalar(0.0)], seed, 0));
        CollectionAssert.AreEqual(new[] { 0.0, 0, 0 }, Vjp("Pow", [OnnxTensor.FromArray(new[] { 0.0, 0, 0 }, 3), OnnxTensor.FromArray(new[] { 0.0, 1, 2 }, 3)], seed, 1));
    }

    [TestMethod]
    public void CastFromFloat_GradientIsCastBack()
    {
        var model = SingleNode.Model("Cast", [OnnxTensor.FromArray(new[] { 1f, 2f }, 2)], attributes: OnnxAttribute.FromInt("to", (long)DataType.Double));
        model.Graph.Outputs[0] = new ValueInfo("y0", DataType.Double, null);
        var gm = ReverseMode.Differentiate(model, new GradientOptions { SeedInputs = true });
        var outs = ExecutionPlan.Compile(gm.Model).Run(new Dictionary<string, OnnxTensor>
        {
            ["x0"] = OnnxTensor.FromArray(new[] { 1f, 2f }, 2),
            [gm.Seeds["y0"]] = OnnxTensor.FromArray(new[] { 0.25, -3 }, 2),
        });
        var g = outs[gm.Gradients["x0"]];
        Assert.AreEqual(DataType.Float, g.ElementType);
        CollectionAssert.AreEqual(new[] { 0.25f, -3f }, g.ToArray<float>());
    }

    [TestMethod]
    public void Comparisons_AreNotDifferentiable_AndZeroGradientOpsGiveZeros()
    {
        foreach (var op in new[] { "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Not", "IsNaN", "IsInf", "BitShift" })
            Assert.AreEqual(Backprop.Onnx.Ops.GradientState.NonDifferentiable, Backprop.Onnx.Ops.OpRegistry.All.First(d => d.OpType == op).Gradient, op);
        CollectionAssert.AreEqual(new[] { 0.0, 0 }, Vjp("Floor", [OnnxTensor.FromArray(new[] { 0.5, 1.5 }, 2)], [1, 1], 0));
    }
}
