using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// PlanFusion's pooling rule: MaxPoolGrad(dY, X) whose only reader is ReluGrad(·, X) runs as one MaxPoolGrad with
/// relu_mask = 1 and gives the two unfused nodes' result bit for bit (float and double, 1 and 2 threads, the 2×2
/// vector path and the general 2-D and N-D paths, ties, NaN/±∞ and ±0 in both inputs, negative and zero X); pairs
/// that must not fuse are left alone; LeNet's gradient plans give the same gradients fused and unfused.
/// </summary>
[TestClass]
public sealed class PoolGradFusionTests
{
    /// <summary>N, C, H, W, kh, kw, sh, sw, pad (all four sides); H = 0 marks a 1-D pool over W.</summary>
    private static readonly int[][] Cases =
    [
        [4, 6, 28, 28, 2, 2, 2, 2, 0],   // W2 pool1: 2×2 vector path, 14 windows a row
        [4, 16, 10, 10, 2, 2, 2, 2, 0],  // W2 pool2: 5 windows a row
        [2, 3, 9, 11, 2, 2, 2, 2, 0],    // odd sizes: a last row and column no window covers
        [2, 3, 6, 6, 2, 2, 2, 2, 0],     // 3 windows a row: narrower than a float vector step
        [2, 3, 4, 40, 2, 2, 2, 2, 0],    // 20 windows a row: whole vectors and a shifted last one
        [2, 3, 11, 9, 3, 3, 2, 2, 1],    // 3×3 stride 2, padded: general 2-D path, overlapping windows
        [2, 2, 7, 8, 3, 3, 1, 1, 0],     // 3×3 stride 1: heavy overlap (accumulated sums)
        [2, 2, 7, 7, 2, 2, 1, 1, 1],     // 2×2 stride 1 padded: not the 2×2 vector path
        [2, 3, 0, 13, 1, 3, 1, 2, 1],    // 1-D: the N-D path
    ];

    public static IEnumerable<object[]> Rows()
    {
        for (int c = 0; c < Cases.Length; c++)
            foreach (bool isDouble in new[] { false, true })
                foreach (int threads in new[] { 1, 2 })
                    yield return [c, isDouble, threads];
    }

    [TestMethod]
    [DynamicData(nameof(Rows))]
    public void MaxPoolGradReluGrad_IsFused_AndMatchesTheUnfusedPlanBitForBit(int index, bool isDouble, int threads)
    {
        int seed = 900 + index;
        var model = PoolGradModel(Cases[index], isDouble, seed, Variant.Plain, out var feeds);
        var fused = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
        var pool = fused.PlannedNodes.Single(n => n.OpType == "MaxPoolGrad");
        Assert.AreEqual(1, pool.GetInt(PoolingOps.ReluMaskAttribute, 0), "relu_mask set");
        Assert.AreEqual("dx", pool.Outputs[0], "the fused node writes ReluGrad's output");
        Assert.IsFalse(fused.PlannedNodes.Any(n => n.OpType == "ReluGrad"), "ReluGrad dropped");
        Assert.AreEqual(2, model.Graph.Nodes.Count, "the graph keeps its two nodes");
        var plain = Unfused(model, threads);
        Assert.IsTrue(plain.PlannedNodes.Any(n => n.OpType == "ReluGrad"), "the switch turns fusion off");
        var expected = plain.Run(feeds)["dx"];
        string what = $"case {index} double {isDouble} threads {threads} (seed {seed})";
        BitAssert.SameBits(expected, fused.Run(feeds)["dx"], what);
        // The general 2-D path with the mask, for the 2×2 cases too (against the unfused general path: it sums into +0,
        // so a −0 cotangent comes out +0 there, where the 2×2 path writes dY's bits).
        PoolingOps.UsePool2x2 = false;
        try
        {
            BitAssert.SameBits(plain.Run(feeds)["dx"], fused.Run(feeds)["dx"], what + " general path");
        }
        finally
        {
            PoolingOps.UsePool2x2 = true;
        }
        var values = BitAssert.ToDoubles(expected);
        Assert.IsTrue(values.Any(v => v != 0 && !double.IsNaN(v)), "some cotangent passes");
        Assert.IsTrue(values.Any(double.IsNaN) || values.Any(double.IsInfinity), "a NaN or ±∞ of dY reaches dX");
    }

    [TestMethod]
    [DataRow(Variant.GraphOutput)]
    [DataRow(Variant.SecondReader)]
    [DataRow(Variant.OtherMask)]
    public void PairsThatMustNotFuse_AreLeftAlone(Variant variant)
    {
        var model = PoolGradModel(Cases[0], isDouble: false, seed: 3, variant, out var feeds);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 2 });
        Assert.IsTrue(plan.PlannedNodes.Any(n => n.OpType == "ReluGrad"), "ReluGrad kept");
        Assert.IsFalse(plan.PlannedNodes.Any(n => n.GetInt(PoolingOps.ReluMaskAttribute, 0) != 0), "no relu_mask");
        var expected = Unfused(model, 2).Run(feeds);
        var actual = plan.Run(feeds);
        foreach (var (name, t) in expected) BitAssert.SameBits(t, actual[name], $"{variant}: {name}");
    }

    [TestMethod]
    [DataRow("bench/w2_lenet")]
    [DataRow("lenet")]
    public void GradientPlan_FusesEveryMaxPoolGrad_AndGivesTheUnfusedGradientsBitForBit(string id)
    {
        var model = ModelImporter.Load(Path.Combine(TestPaths.OnnxModels, id, "model.onnx"));
        var input = model.Graph.RuntimeInputs.First();
        var trainer = new Trainer(model, new TrainerOptions
        {
            Loss = new LossOptions { Kind = LossKind.CrossEntropy, LabelName = "labels" },
            Threads = 2,
            BatchSize = 4,
            Optimizer = new OptimizerOptions { Kind = OptimizerKind.Sgd, LearningRate = 1e-3 },
        });
        var gradientModel = trainer.GradientModel.Model;
        int pools = gradientModel.Graph.Nodes.Count(n => n.OpType == "MaxPoolGrad");
        Assert.IsTrue(pools >= 2, "LeNet pools twice");
        var fused = ExecutionPlan.Compile(gradientModel, new ExecutionOptions { Threads = 2, TrainingMode = true });
        var plain = Unfused(gradientModel, 2, training: true);
        Assert.AreEqual(pools, fused.PlannedNodes.Count(n => n.OpType == "MaxPoolGrad" && n.GetInt(PoolingOps.ReluMaskAttribute, 0) == 1), "every MaxPoolGrad fuses its ReluGrad");
        Assert.AreEqual(pools, gradientModel.Graph.Nodes.Count(n => n.OpType == "MaxPoolGrad"), "the gradient graph is unchanged");
        var random = new Random(11);
        int[] shape = [.. input.Shape!.Select((d, i) => d.Value is { } v ? checked((int)v) : 4)];
        int count = shape.Aggregate(1, (a, b) => a * b);
        var feeds = new Dictionary<string, OnnxTensor>
        {
            [input.Name] = OnnxTensor.FromArray(Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), shape),
            ["labels"] = OnnxTensor.FromArray(Enumerable.Range(0, shape[0]).Select(_ => (long)random.Next(10)).ToArray(), shape[0]),
        };
        var expected = plain.Run(feeds);
        var actual = fused.Run(feeds);
        Assert.AreEqual(expected.Count, actual.Count);
        foreach (var (name, t) in expected) BitAssert.SameBits(t, actual[name], $"{id}: {name}");
    }

    public enum Variant { Plain, GraphOutput, SecondReader, OtherMask }

    private static ExecutionPlan Unfused(OnnxModel model, int threads, bool training = false)
    {
        PlanFusion.DisabledOnThisThread = true;
        try
        {
            return ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads, TrainingMode = training });
        }
        finally
        {
            PlanFusion.DisabledOnThisThread = false;
        }
    }

    /// <summary>
    /// MaxPoolGrad(dy, x) → g, ReluGrad(g, x) → dx. X comes from a few values (ties in most windows: ±0, negatives, equal
    /// maxima) with NaN and ±∞ set; dY is random with NaN, ±∞ and −0. Variants: g also a graph output; Neg(g) → z reads g
    /// too; ReluGrad masks by another tensor m.
    /// </summary>
    private static OnnxModel PoolGradModel(int[] p, bool isDouble, int seed, Variant variant, out Dictionary<string, OnnxTensor> feeds)
    {
        int n = p[0], c = p[1], h = p[2], w = p[3], kh = p[4], kw = p[5], sh = p[6], sw = p[7], pad = p[8];
        bool oneD = h == 0;
        int outH = oneD ? 0 : (h + 2 * pad - kh) / sh + 1, outW = (w + 2 * pad - kw) / sw + 1;
        int[] xShape = oneD ? [n, c, w] : [n, c, h, w], yShape = oneD ? [n, c, outW] : [n, c, outH, outW];
        var random = new Random(seed);
        double[] pick = [-1, -0.0, 0, 0.5, 1, 1, 2, -2, 0.25];
        OnnxTensor Make(int[] shape, Func<double> next)
        {
            var values = Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => next()).ToArray();
            return isDouble ? OnnxTensor.FromArray(values, shape) : OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape);
        }
        var x = Make(xShape, () => pick[random.Next(pick.Length)]);
        var dy = Make(yShape, () => random.NextDouble() < 0.05 ? -0.0 : random.NextDouble() - 0.5);
        var m = Make(xShape, () => random.NextDouble() - 0.5);
        long xs = x.ElementCount, ys = dy.ElementCount;
        foreach (long i in new[] { 1L, xs / 3, xs / 2, xs - 2 }) BitAssert.SetElement(x, i, double.NaN);
        foreach (long i in new[] { 5L, xs / 4, xs - 7 }) BitAssert.SetElement(x, i, double.PositiveInfinity);
        foreach (long i in new[] { 9L, xs / 5 }) BitAssert.SetElement(x, i, double.NegativeInfinity);
        for (long i = 0; i < ys; i += 7) BitAssert.SetElement(dy, i, (i / 7 % 3) switch { 0 => double.NaN, 1 => double.PositiveInfinity, _ => double.NegativeInfinity });
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 17));
        model.OpsetImports.Add(new OpsetImport(OpRegistry.BackpropDomain, 1));
        var g = model.Graph;
        var type = isDouble ? DataType.Double : DataType.Float;
        g.Inputs.Add(new ValueInfo("dy", type, [.. yShape.Select(d => Dim.Of(d))]));
        g.Inputs.Add(new ValueInfo("x", type, [.. xShape.Select(d => Dim.Of(d))]));
        var pool = new Node("MaxPoolGrad", ["dy", "x"], ["g"], "pool_grad", OpRegistry.BackpropDomain);
        pool.Attributes.Add(OnnxAttribute.FromInts("kernel_shape", oneD ? [kw] : [kh, kw]));
        pool.Attributes.Add(OnnxAttribute.FromInts("strides", oneD ? [sw] : [sh, sw]));
        pool.Attributes.Add(OnnxAttribute.FromInts("pads", oneD ? [pad, pad] : [pad, pad, pad, pad]));
        g.Nodes.Add(pool);
        var relu = new Node("ReluGrad", ["g", variant == Variant.OtherMask ? "m" : "x"], ["dx"], "relu_grad", OpRegistry.BackpropDomain);
        relu.Attributes.Add(OnnxAttribute.FromInt("dtype", (long)type));
        g.Nodes.Add(relu);
        g.Outputs.Add(new ValueInfo("dx", type, null));
        feeds = new Dictionary<string, OnnxTensor> { ["dy"] = dy, ["x"] = x };
        if (variant == Variant.GraphOutput) g.Outputs.Add(new ValueInfo("g", type, null));
        if (variant == Variant.SecondReader)
        {
            g.Nodes.Add(new Node("Neg", ["g"], ["z"], "neg"));
            g.Outputs.Add(new ValueInfo("z", type, null));
        }
        if (variant == Variant.OtherMask)
        {
            g.Inputs.Add(new ValueInfo("m", type, [.. xShape.Select(d => Dim.Of(d))]));
            feeds["m"] = m;
        }
        return model;
    }
}
