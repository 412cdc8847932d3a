using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>What the executor accepts as inputs and hands back as outputs.</summary>
[TestClass]
public sealed class ExecutionPlanInputTests
{
    /// <summary>y = Relu(x) with x: float[batch,3]; w = Identity(W) of an initializer; c = a Constant; z = Add(x, b) with b: float[batch,3].</summary>
    private static OnnxModel Model()
    {
        var m = new OnnxModel { IrVersion = 8 };
        m.OpsetImports.Add(new OpsetImport("", 17));
        var g = m.Graph;
        g.Inputs.Add(new ValueInfo("x", DataType.Float, [Dim.Symbol("batch"), Dim.Of(3)]));
        g.Inputs.Add(new ValueInfo("b", DataType.Float, [Dim.Symbol("batch"), Dim.Of(3)]));
        g.Initializers.Add("W", OnnxTensor.FromArray(new float[] { 1, 2 }, 2));
        g.Nodes.Add(new Node("Relu", ["x"], ["y"], "relu"));
        g.Nodes.Add(new Node("Identity", ["W"], ["w"], "id"));
        var c = new Node("Constant", [], ["c"], "const");
        c.Attributes.Add(OnnxAttribute.FromTensor("value", OnnxTensor.FromArray(new float[] { 7 }, 1)));
        g.Nodes.Add(c);
        g.Nodes.Add(new Node("Identity", ["x"], ["xi"], "passthrough"));
        g.Nodes.Add(new Node("Add", ["x", "b"], ["z"], "add"));
        foreach (var o in new[] { "y", "w", "c", "xi", "z" }) g.Outputs.Add(new ValueInfo(o, DataType.Float, null));
        return m;
    }

    private static Dictionary<string, OnnxTensor> Feeds(int batchX = 2, int batchB = 2) => new()
    {
        ["x"] = OnnxTensor.FromArray(new float[batchX * 3], batchX, 3),
        ["b"] = OnnxTensor.FromArray(new float[batchB * 3], batchB, 3),
    };

    [TestMethod]
    public void InputsThatContradictTheirDeclaration_AreRejected_NamingTheInput()
    {
        var plan = ExecutionPlan.Compile(Model());
        var wrongType = Feeds();
        wrongType["x"] = OnnxTensor.FromArray(new double[6], 2, 3);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidInputException>(() => plan.Run(wrongType)).Message, "input 'x' is double");
        var wrongFixedDim = Feeds();
        wrongFixedDim["x"] = OnnxTensor.FromArray(new float[8], 2, 4);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidInputException>(() => plan.Run(wrongFixedDim)).Message, "declares [batch,3]");
        var wrongRank = Feeds();
        wrongRank["x"] = OnnxTensor.FromArray(new float[6], 6);
        Assert.ThrowsExactly<InvalidInputException>(() => plan.Run(wrongRank));
        // One symbol, two sizes: b would otherwise broadcast silently against x.
        StringAssert.Contains(Assert.ThrowsExactly<InvalidInputException>(() => plan.Run(Feeds(batchX: 2, batchB: 1))).Message, "batch = 1");
        Assert.ThrowsExactly<ArgumentNullException>(() => plan.Run(null!));
    }

    [TestMethod]
    public void OutputsNeverAliasTheModelOrTheCallersInputs()
    {
        var model = Model();
        var plan = ExecutionPlan.Compile(model);
        var feeds = Feeds();
        var first = plan.Run(feeds);
        first["w"].AsSpan<float>()[0] = -999;
        first["c"].AsSpan<float>()[0] = 42;
        first["xi"].AsSpan<float>()[0] = 5;
        Assert.AreEqual(1f, model.Graph.Initializers["W"].AsSpan<float>()[0], "the initializer is unchanged");
        Assert.AreEqual(0f, feeds["x"].AsSpan<float>()[0], "the caller's input is unchanged");
        var second = plan.Run(feeds);
        Assert.AreEqual(1f, second["w"].AsSpan<float>()[0]);
        Assert.AreEqual(7f, second["c"].AsSpan<float>()[0]);
        Assert.AreNotSame(first["y"], second["y"]);
    }
}
