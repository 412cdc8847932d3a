using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// ReluGrad(dY, Y) (ActivationOps.ReluGrad.cs) against a scalar loop written here, its standard-op form (Greater and
/// Where) run on our executor, and Relu's VJP: bit for bit, with NaN, ±∞ and ±0 in both inputs, lengths around the
/// vector width, float32, float64 and float16, one and two threads.
/// </summary>
[TestClass]
public sealed class ReluGradTests
{
    private static readonly double[] Specials = [double.NaN, 0.0, -0.0, double.PositiveInfinity, double.NegativeInfinity, 1e-30, -1e-30];

    /// <summary>Lengths below, at and around the float and double vector widths, and one long enough to run on two threads.</summary>
    public static IEnumerable<object[]> Lengths => [[0], [1], [3], [4], [7], [8], [9], [17], [33], [100_003]];

    private static (double[] Dy, double[] Y) Inputs(int n)
    {
        var random = new Random(n);
        var dy = Enumerable.Range(0, n).Select(i => i % 11 == 5 ? Specials[i % Specials.Length] : random.NextDouble() - 0.5).ToArray();
        var y = Enumerable.Range(0, n).Select(i => i % 13 == 3 ? Specials[(i / 13) % Specials.Length] : random.Next(-2, 3) * 0.5).ToArray();
        return (dy, y);
    }

    /// <summary>The rule: dY where Y &gt; 0, else +0 (a NaN Y compares false).</summary>
    private static double Expected(double dy, double y) => y > 0 ? dy : 0.0;

    [TestMethod]
    [DynamicData(nameof(Lengths))]
    public void MatchesScalarLoop(int n)
    {
        var (dy, y) = Inputs(n);
        var expected = dy.Zip(y, Expected).ToArray();
        foreach (int threads in new[] { 1, 2 })
        {
            var d64 = Run(threads, OnnxTensor.FromArray(dy, n), OnnxTensor.FromArray(y, n)).ToArray<double>();
            CollectionAssert.AreEqual(expected.Select(BitConverter.DoubleToInt64Bits).ToArray(), d64.Select(BitConverter.DoubleToInt64Bits).ToArray(), $"float64 n={n} threads={threads}");
            var d32 = Run(threads, OnnxTensor.FromArray(dy.Select(v => (float)v).ToArray(), n), OnnxTensor.FromArray(y.Select(v => (float)v).ToArray(), n)).ToArray<float>();
            var e32 = dy.Zip(y, (a, b) => (float)b > 0 ? (float)a : 0f);
            CollectionAssert.AreEqual(e32.Select(BitConverter.SingleToInt32Bits).ToArray(), d32.Select(BitConverter.SingleToInt32Bits).ToArray(), $"float32 n={n} threads={threads}");
        }
        if (n < 1000)
        {
            var d16 = Run(1, OnnxTensor.FromArray(dy.Select(v => (Half)v).ToArray(), n), OnnxTensor.FromArray(y.Select(v => (Half)v).ToArray(), n)).ToArray<Half>();
            var e16 = dy.Zip(y, (a, b) => (Half)b > Half.Zero ? (Half)a : Half.Zero);
            CollectionAssert.AreEqual(e16.Select(BitConverter.HalfToInt16Bits).ToArray(), d16.Select(BitConverter.HalfToInt16Bits).ToArray(), $"float16 n={n}");
        }
    }

    [TestMethod]
    [DataRow(17L)]
    [DataRow(8L)]
    public void StandardFormMatchesKernel(long opset)
    {
        // The standard-op form, built by the registry's emitter and run on our executor, against the kernel. Below
        // opset 9 the form multiplies by the cast mask, which agrees wherever dY is finite (up to the sign of zero).
        int n = 37;
        var (dy, y) = Inputs(n);
        if (opset < 9) dy = [.. dy.Select(v => double.IsFinite(v) ? v : 0.25)];
        var node = new Node("ReluGrad", ["dy", "y"], ["dx"], "rg", OpRegistry.BackpropDomain);
        node.Attributes.Add(OnnxAttribute.FromInt("dtype", (long)DataType.Double));
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", opset));
        var g = model.Graph;
        g.Inputs.Add(new ValueInfo("dy", DataType.Double, [Dim.Of(n)]));
        g.Inputs.Add(new ValueInfo("y", DataType.Double, [Dim.Of(n)]));
        var body = new List<Node>();
        var emitter = new GraphEmitter(body, opset, [], new HashSet<string> { "dy", "y" }) { Prefix = "standard" };
        string standard = OpRegistry.Find(node, 1).StandardOps!(emitter, node)[0];
        g.Nodes.AddRange(body);
        g.Outputs.Add(new ValueInfo(standard, DataType.Undefined, null));
        var feeds = new Dictionary<string, OnnxTensor> { ["dy"] = OnnxTensor.FromArray(dy, n), ["y"] = OnnxTensor.FromArray(y, n) };
        var viaStandard = ExecutionPlan.Compile(model).Run(feeds)[standard].ToArray<double>();
        var viaKernel = Run(1, feeds["dy"], feeds["y"]).ToArray<double>();
        // Where gives the kernel's bits; the opset-8 product may give −0 for +0 (double.Equals treats them as equal).
        if (opset >= 9)
            CollectionAssert.AreEqual(viaKernel.Select(BitConverter.DoubleToInt64Bits).ToArray(), viaStandard.Select(BitConverter.DoubleToInt64Bits).ToArray(), $"opset {opset}");
        else
            CollectionAssert.AreEqual(viaKernel, viaStandard, $"opset {opset}");
    }

    [TestMethod]
    public void ReluVjpEmitsReluGrad()
    {
        // Relu'(0) = 0: the gradient at x = 0 (and x < 0) is zero, at x > 0 the cotangent.
        var x = OnnxTensor.FromArray(new[] { -1.5, 0.0, -0.0, 2.0, double.NaN, 0.5 }, 2, 3);
        var model = SingleNode.Model("Relu", [x]);
        var options = new GradientOptions { SeedInputs = true };
        options.Wrt.Add("x0");
        var gm = ReverseMode.Differentiate(model, options);
        Assert.AreEqual(1, gm.Model.Graph.Nodes.Count(n => n.OpType == "ReluGrad"));
        Assert.IsFalse(gm.Model.Graph.Nodes.Any(n => n.OpType is "Greater" or "Where"));
        var seed = OnnxTensor.FromArray(new[] { 1.0, 2.0, 3.0, 4.0, 5.0, 6.0 }, 2, 3);
        var outs = ExecutionPlan.Compile(gm.Model).Run(new Dictionary<string, OnnxTensor> { ["x0"] = x, [gm.Seeds["y0"]] = seed });
        CollectionAssert.AreEqual(new[] { 0.0, 0.0, 0.0, 4.0, 0.0, 6.0 }, outs[gm.Gradients["x0"]].ToArray<double>());
    }

    private static OnnxTensor Run(int threads, OnnxTensor dy, OnnxTensor y)
    {
        var model = SingleNode.Model("ReluGrad", [dy, y], 1, 17, OpRegistry.BackpropDomain);
        return ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads })
            .Run(new Dictionary<string, OnnxTensor> { ["x0"] = dy, ["x1"] = y })["y0"];
    }
}
