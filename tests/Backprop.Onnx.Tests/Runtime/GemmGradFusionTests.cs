using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// PlanFusion's Gemm-gradient rule: for a forward Gemm(X, W, b; transB = 1), the pair Gemm(G, W) → dX and
/// Gemm(G, X; transA = 1) → dW runs as one MatMulGrad(G, X, W; trans_b = 1, trans_db = 1) and gives the unfused plan's
/// results (float and double, 1 and 2 threads, odd sizes, NaN/±∞ in G); pairs that do not fit are left alone; W2's
/// gradient plan fuses its three Linear layers' pairs.
/// </summary>
[TestClass]
public sealed class GemmGradFusionTests
{
    public static IEnumerable<object[]> Rows()
    {
        foreach (var (m, k, n) in new[] { (7, 29, 13), (64, 400, 120), (1, 3, 2) })
            foreach (bool isDouble in new[] { false, true })
                foreach (int threads in new[] { 1, 2 })
                    yield return [m, k, n, isDouble, threads];
    }

    [TestMethod]
    [DynamicData(nameof(Rows))]
    public void GemmGradientPair_IsFused_AndMatchesTheUnfusedPlan(int m, int k, int n, bool isDouble, int threads)
    {
        var model = Model(m, k, n, isDouble, seed: m + k + n, alpha: 1f, otherX: false, out var feeds);
        var fused = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
        var grad = fused.PlannedNodes.Single(p => p.OpType == "MatMulGrad");
        CollectionAssert.AreEqual(new[] { "g", "x", "w" }, grad.Inputs.ToArray());
        CollectionAssert.AreEqual(new[] { "dx", "dw" }, grad.Outputs.ToArray());
        Assert.AreEqual(1, fused.PlannedNodes.Count(p => p.OpType == "Gemm"), "only the forward Gemm is left");
        var plain = Unfused(model, threads);
        var expected = plain.Run(feeds);
        var actual = fused.Run(feeds);
        foreach (var name in new[] { "dx", "dw" }) AssertClose(expected[name], actual[name], $"{name} m {m} k {k} n {n} double {isDouble} threads {threads}");
    }

    [TestMethod]
    [DataRow(0.5f, false)]
    [DataRow(1f, true)]
    public void PairsThatDoNotFit_AreLeftAlone(float alpha, bool otherX)
    {
        var model = Model(5, 6, 4, isDouble: false, seed: 1, alpha, otherX, out var feeds);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 2 });
        Assert.IsFalse(plan.PlannedNodes.Any(p => p.OpType == "MatMulGrad"), "not fused");
        var expected = Unfused(model, 2).Run(feeds);
        var actual = plan.Run(feeds);
        foreach (var name in new[] { "dx", "dw" }) AssertClose(expected[name], actual[name], name);
    }

    [TestMethod]
    public void W2GradientPlan_FusesItsThreeLinearLayers()
    {
        var model = ModelImporter.Load(Path.Combine(TestPaths.OnnxModels, "bench/w2_lenet", "model.onnx"));
        var trainer = new Trainer(model, new TrainerOptions
        {
            Loss = new LossOptions { Kind = LossKind.CrossEntropy, LabelName = "labels" },
            Threads = 2,
            BatchSize = 4,
            Optimizer = new OptimizerOptions { Kind = OptimizerKind.Sgd, LearningRate = 1e-3 },
        });
        var plan = ExecutionPlan.Compile(trainer.GradientModel.Model, new ExecutionOptions { Threads = 2, TrainingMode = true });
        Assert.AreEqual(3, plan.PlannedNodes.Count(p => p.OpType == "MatMulGrad" && p.GetInt("trans_b", 0) == 1 && p.GetInt("trans_db", 0) == 1));
        Assert.AreEqual(3, plan.PlannedNodes.Count(p => p.OpType == "Gemm"), "the forward Gemms stay");
        // Fused and unfused gradients agree bit for bit: PoolGradFusionTests.GradientPlan_FusesEveryMaxPoolGrad_….
    }

    private static ExecutionPlan Unfused(OnnxModel model, int threads)
    {
        PlanFusion.DisabledOnThisThread = true;
        try
        {
            return ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
        }
        finally
        {
            PlanFusion.DisabledOnThisThread = false;
        }
    }

    /// <summary>
    /// y = Gemm(x, w, b; transB = 1), g = ReluGrad(dy, y), dx = Gemm(g, w; alpha), dw = Gemm(g, x or x2; transA = 1).
    /// dy holds a NaN, +∞ and −∞.
    /// </summary>
    private static OnnxModel Model(int m, int k, int n, bool isDouble, int seed, float alpha, bool otherX, out Dictionary<string, OnnxTensor> feeds)
    {
        var random = new Random(seed);
        OnnxTensor Random(params int[] shape)
        {
            var values = Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => random.NextDouble() - 0.5).ToArray();
            return isDouble ? OnnxTensor.FromArray(values, shape) : OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape);
        }
        var dy = Random(m, n);
        if (dy.ElementCount >= 3)
        {
            SetElement(dy, 0, double.NaN);
            SetElement(dy, 1, double.PositiveInfinity);
            SetElement(dy, dy.ElementCount - 1, double.NegativeInfinity);
        }
        feeds = new Dictionary<string, OnnxTensor> { ["x"] = Random(m, k), ["x2"] = Random(m, k), ["dy"] = dy };
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 17));
        model.OpsetImports.Add(new OpsetImport(OpRegistry.BackpropDomain, 1));
        var g = model.Graph;
        var type = isDouble ? DataType.Double : DataType.Float;
        g.Inputs.Add(new ValueInfo("x", type, [Dim.Of(m), Dim.Of(k)]));
        g.Inputs.Add(new ValueInfo("x2", type, [Dim.Of(m), Dim.Of(k)]));
        g.Inputs.Add(new ValueInfo("dy", type, [Dim.Of(m), Dim.Of(n)]));
        g.Initializers["w"] = Random(n, k);
        g.Initializers["b"] = Random(n);
        var forward = new Node("Gemm", ["x", "w", "b"], ["y"], "fc");
        forward.Attributes.Add(OnnxAttribute.FromInt("transB", 1));
        g.Nodes.Add(forward);
        var relu = new Node("ReluGrad", ["dy", "y"], ["g"], "relu_grad", OpRegistry.BackpropDomain);
        relu.Attributes.Add(OnnxAttribute.FromInt("dtype", (long)type));
        g.Nodes.Add(relu);
        var dx = new Node("Gemm", ["g", "w"], ["dx"], "fc_dx");
        dx.Attributes.Add(OnnxAttribute.FromInt("transA", 0));
        dx.Attributes.Add(OnnxAttribute.FromInt("transB", 0));
        dx.Attributes.Add(OnnxAttribute.FromFloat("alpha", alpha));
        g.Nodes.Add(dx);
        var dw = new Node("Gemm", ["g", otherX ? "x2" : "x"], ["dw"], "fc_dw");
        dw.Attributes.Add(OnnxAttribute.FromInt("transA", 1));
        dw.Attributes.Add(OnnxAttribute.FromInt("transB", 0));
        dw.Attributes.Add(OnnxAttribute.FromFloat("alpha", 1f));
        g.Nodes.Add(dw);
        g.Outputs.Add(new ValueInfo("dx", type, null));
        g.Outputs.Add(new ValueInfo("dw", type, null));
        return model;
    }

    private static void SetElement(OnnxTensor t, long index, double value)
    {
        if (t.Buffer is double[] d) d[index] = value;
        else ((float[])t.Buffer)[index] = (float)value;
    }

    private static double[] ToDoubles(OnnxTensor t) => t.Buffer switch
    {
        double[] d => d[..checked((int)t.ElementCount)],
        float[] f => [.. f.Take(checked((int)t.ElementCount)).Select(v => (double)v)],
        _ => throw new InvalidOperationException($"unexpected buffer {t.Buffer.GetType()}"),
    };

    /// <summary>Same shape; each element equal within float tolerance (NaN where NaN, the same infinities).</summary>
    private static void AssertClose(OnnxTensor expected, OnnxTensor actual, string what)
    {
        CollectionAssert.AreEqual(expected.Dims.ToArray(), actual.Dims.ToArray(), $"{what}: shape");
        var e = ToDoubles(expected);
        var a = ToDoubles(actual);
        double tol = expected.ElementType == DataType.Double ? 1e-12 : 1e-5;
        for (int i = 0; i < e.Length; i++)
        {
            if (double.IsNaN(e[i]) || double.IsInfinity(e[i]))
            {
                Assert.AreEqual(e[i], a[i], $"{what}: element {i}");
                continue;
            }
            Assert.IsTrue(Math.Abs(e[i] - a[i]) <= tol * (1 + Math.Abs(e[i])), $"{what}: element {i}: expected {e[i]}, got {a[i]}");
        }
    }
}
