using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Tests.Autodiff;

[TestClass]
public sealed class ReverseModeTests
{
    /// <summary>x → Identity → y, plus an unrelated initializer w. A model small enough to reason about by hand.</summary>
    private static OnnxModel Chain(params (string Op, string In, string Out)[] nodes)
    {
        var m = new OnnxModel { IrVersion = 8 };
        m.OpsetImports.Add(new OpsetImport("", 17));
        m.Graph.Inputs.Add(new ValueInfo("x", DataType.Double, [Dim.Of(3)]));
        m.Graph.Initializers.Add("w", OnnxTensor.FromArray(new double[] { 1, 2, 3 }, 3));
        foreach (var (op, i, o) in nodes) m.Graph.Nodes.Add(new Node(op, [i], [o], $"{op}_{o}"));
        m.Graph.Outputs.Add(new ValueInfo(nodes[^1].Out, DataType.Double, [Dim.Of(3)]));
        return m;
    }

    [TestMethod]
    public void Identity_GradientIsTheSeed_AndUnusedInitializerIsReportedUnreachableWithZeroGradient()
    {
        var gm = ReverseMode.Differentiate(Chain(("Identity", "x", "y")), new GradientOptions { SeedInputs = true });
        Assert.AreEqual("y_seed", gm.Seeds["y"]);
        Assert.AreEqual("x_grad", gm.Gradients["x"]);
        Assert.AreEqual("w_grad", gm.Gradients["w"]);
        var issue = gm.Report.Issues.Single();
        Assert.AreEqual(DifferentiabilityIssueKind.Unreachable, issue.Kind);
        Assert.AreEqual("w", issue.Value);

        var plan = Backprop.Onnx.Runtime.ExecutionPlan.Compile(gm.Model);
        var seed = OnnxTensor.FromArray(new double[] { 0.5, -2, 7 }, 3);
        var outs = plan.Run(new Dictionary<string, OnnxTensor> { ["x"] = OnnxTensor.FromArray(new double[] { 1, 1, 1 }, 3), ["y_seed"] = seed });
        CollectionAssert.AreEqual(new double[] { 0.5, -2, 7 }, outs["x_grad"].ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 0, 0, 0 }, outs["w_grad"].ToArray<double>());
    }

    [TestMethod]
    public void Analyze_ListsEveryProblemAtOnce()
    {
        var m = Chain(("Identity", "x", "a"), ("NoSuchOpA", "a", "b"), ("NoSuchOpB", "b", "y"));
        var report = ReverseMode.Analyze(m, new GradientOptions { Wrt = { "x", "nope" } });
        Assert.IsFalse(report.IsDifferentiable);
        var kinds = report.Issues.Select(i => (i.Kind, i.Value)).ToList();
        CollectionAssert.Contains(kinds, (DifferentiabilityIssueKind.UnknownOp, "a"));
        CollectionAssert.Contains(kinds, (DifferentiabilityIssueKind.UnknownOp, "b"));
        CollectionAssert.Contains(kinds, (DifferentiabilityIssueKind.InvalidRequest, "nope"));
        var e = Assert.ThrowsExactly<DifferentiationException>(() => ReverseMode.Differentiate(m, new GradientOptions { Wrt = { "x" } }));
        StringAssert.Contains(e.Message, "NoSuchOpA");
        StringAssert.Contains(e.Message, "NoSuchOpB");
    }

    [TestMethod]
    public void ShapeOfValue_IsNotDifferentiable_AndNoGradientFlowsThroughIt()
    {
        // y = Identity(x); s = Shape(x) is integer, so a request for gradients of a float output only sees Identity.
        var m = Chain(("Identity", "x", "y"));
        var report = ReverseMode.Analyze(m, new GradientOptions { Wrt = { "x" } });
        Assert.IsTrue(report.IsDifferentiable, report.ToString());
    }

    [TestMethod]
    public void FanOutAndResidual_AccumulateEveryPath()
    {
        // y = x·x + sin(x) + x, with x also broadcast against w: four uses of x, three of them in different nodes.
        var m = new OnnxModel { IrVersion = 8 };
        m.OpsetImports.Add(new OpsetImport("", 17));
        var g = m.Graph;
        g.Inputs.Add(new ValueInfo("x", DataType.Double, [Dim.Of(2), Dim.Of(3)]));
        g.Initializers.Add("w", OnnxTensor.FromArray(new double[] { 0.5, -1.5, 2.0 }, 3));
        g.Nodes.Add(new Node("Mul", ["x", "x"], ["sq"], "square"));
        g.Nodes.Add(new Node("Sin", ["x"], ["s"], "sin"));
        g.Nodes.Add(new Node("Add", ["sq", "s"], ["t"], "add1"));
        g.Nodes.Add(new Node("Add", ["t", "x"], ["r"], "residual"));
        g.Nodes.Add(new Node("Mul", ["r", "w"], ["y"], "scale"));
        g.Outputs.Add(new ValueInfo("y", DataType.Double, [Dim.Of(2), Dim.Of(3)]));
        var x = GradCheck.Random(5, [2, 3]);
        var report = GradientCheck.Run(m, new Dictionary<string, OnnxTensor> { ["x"] = x }, new GradientCheckOptions { Seed = 2 });
        Assert.IsTrue(report.Passed, report.ToString());
        Assert.HasCount(2, report.Tensors);
        var gm = ReverseMode.Differentiate(m);
        Assert.IsTrue(gm.Model.Graph.Nodes.Any(n => n.OpType == "Sum"), "fan-out is accumulated with one Sum node");
    }

    [TestMethod]
    public void GradientCheck_OnIdentity_Passes()
    {
        var report = GradCheck.Op("Identity", [GradCheck.Random(3, [2, 3])]);
        Assert.AreEqual(1, report.Tensors.Count);
        Assert.AreEqual("elementwise", report.Tensors[0].Method);
    }

    [TestMethod]
    public void GradientCheck_CanFail_AndReportsItsSeed()
    {
        // At Relu's kink the rule gives 0 (PyTorch's convention) while a central difference sees slope 1/2: the checker
        // must report that element as a failure, with its seed.
        var x = OnnxTensor.FromArray(new double[] { 0, 0.5, -0.5 }, 3);
        var model = SingleNode.Model("Relu", [x]);
        var report = GradientCheck.Run(model, new Dictionary<string, OnnxTensor> { ["x0"] = x }, new GradientCheckOptions { Seed = 9 });
        Assert.IsFalse(report.Passed, report.ToString());
        Assert.AreEqual(0.5, report.Tensors.Single().MaxRelError, 0.5, report.ToString());
        StringAssert.Contains(report.ToString(), "seed=9 FAILED");
        Assert.ThrowsExactly<ArgumentException>(() => GradientCheck.Run(model, new Dictionary<string, OnnxTensor> { ["x0"] = x }, new GradientCheckOptions { Step = 0 }));
    }
}
