using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// <see cref="PlanFusion"/>: a Conv whose only reader is a Relu runs as one FusedConv node and gives the unfused plan's
/// outputs bit for bit (float and double, direct and im2col paths, NaN and ±∞ inputs); a Conv whose output is also a
/// graph output or has a second reader is left alone; the bench models' gradient plans give the same gradients fused and
/// unfused, and the graph itself is never changed.
/// </summary>
[TestClass]
public sealed class PlanFusionTests
{
    /// <summary>N, C, M, kh, kw, H, W, pad, stride, group.</summary>
    private static readonly int[][] Cases =
    [
        [3, 1, 6, 5, 5, 28, 28, 2, 1, 1],     // W2 conv1: direct, blocks of 6 channels
        [3, 6, 16, 5, 5, 14, 14, 0, 1, 1],    // W2 conv2: direct, channel-vectorized
        [2, 3, 16, 3, 3, 17, 19, 1, 2, 1],    // direct, strided, odd sizes
        [2, 4, 6, 3, 3, 9, 9, 1, 1, 2],       // grouped: im2col
        [2, 3, 5, 3, 3, 5, 5, 0, 1, 1],       // rows narrower than the direct path takes: im2col
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
    public void ConvRelu_IsFused_AndMatchesTheUnfusedPlanBitForBit(int index, bool isDouble, int threads)
    {
        var p = Cases[index];
        int seed = 500 + index;
        var model = ConvReluModel(p, isDouble, seed, extraOutput: false, secondReader: false, out var feeds);
        var fused = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
        Assert.AreEqual(1, fused.PlannedNodes.Count(n => n.OpType == ConvOps.FusedConvOp && n.Domain == OpRegistry.BackpropDomain), "one FusedConv");
        Assert.IsFalse(fused.PlannedNodes.Any(n => n.OpType is "Conv" or "Relu"), "Conv and Relu replaced");
        Assert.AreEqual(2, model.Graph.Nodes.Count, "the graph keeps its two nodes");
        ExecutionPlan plain;
        PlanFusion.DisabledOnThisThread = true;
        try
        {
            plain = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
        }
        finally
        {
            PlanFusion.DisabledOnThisThread = false;
        }
        Assert.IsTrue(plain.PlannedNodes.Any(n => n.OpType == "Relu"), "the switch turns fusion off");
        var expected = plain.Run(feeds)["y"];
        var actual = fused.Run(feeds)["y"];
        BitAssert.SameBits(expected, actual, $"case {index} double {isDouble} threads {threads} (seed {seed})");
        Assert.IsTrue(BitAssert.ToDoubles(actual).Any(double.IsNaN), "a NaN input reaches the output through max(·, 0)");
        Assert.IsTrue(BitAssert.ToDoubles(actual).Any(v => v == 0), "Relu zeroes negative sums");
    }

    [TestMethod]
    public void ConvWhoseOutputIsAGraphOutput_IsNotFused()
    {
        var model = ConvReluModel(Cases[1], isDouble: false, seed: 1, extraOutput: true, secondReader: false, out var feeds);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 });
        CollectionAssert.AreEqual(new[] { "Conv", "Relu" }, plan.PlannedNodes.Select(n => n.OpType).ToArray());
        var result = plan.Run(feeds);
        var conv = result["c"].AsSpan<float>().ToArray();
        CollectionAssert.AreEqual(conv.Select(v => Math.Max(v, 0f)).ToArray(), result["y"].AsSpan<float>().ToArray());
    }

    [TestMethod]
    public void ConvWithASecondReader_IsNotFused()
    {
        var model = ConvReluModel(Cases[1], isDouble: false, seed: 2, extraOutput: false, secondReader: true, out var feeds);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 });
        Assert.IsTrue(plan.PlannedNodes.Any(n => n.OpType == "Conv") && plan.PlannedNodes.Any(n => n.OpType == "Relu"), "not fused");
        Assert.IsFalse(plan.PlannedNodes.Any(n => n.OpType == ConvOps.FusedConvOp));
        var result = plan.Run(feeds);
        var y = result["y"].AsSpan<float>().ToArray();
        CollectionAssert.AreEqual(result["z"].AsSpan<float>().ToArray().Select(v => Math.Max(-v, 0f)).ToArray(), y, "y = max(c, 0) with c = −z");
    }

    [TestMethod]
    [DataRow("bench/w2_lenet")]
    [DataRow("lenet")]
    public void GradientPlan_FusedAndUnfused_GiveTheSameGradientsBitForBit(string id)
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
        int nodes = gradientModel.Graph.Nodes.Count;
        var fused = ExecutionPlan.Compile(gradientModel, new ExecutionOptions { Threads = 2, TrainingMode = true });
        ExecutionPlan plain;
        PlanFusion.DisabledOnThisThread = true;
        try
        {
            plain = ExecutionPlan.Compile(gradientModel, new ExecutionOptions { Threads = 2, TrainingMode = true });
        }
        finally
        {
            PlanFusion.DisabledOnThisThread = false;
        }
        Assert.AreEqual(2, fused.PlannedNodes.Count(n => n.OpType == ConvOps.FusedConvOp), "both LeNet convolutions fuse in the gradient plan");
        Assert.AreEqual(nodes, gradientModel.Graph.Nodes.Count, "compiling does not change the gradient graph");
        Assert.IsTrue(gradientModel.Graph.Nodes.All(n => n.OpType != ConvOps.FusedConvOp), "the gradient graph has no fused node");
        var random = new Random(7);
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

    /// <summary>Conv(x, w, b) → c, Relu(c) → y; optionally c is also a graph output, or Neg(c) → z reads it too. x holds a NaN, +∞ and −∞.</summary>
    private static OnnxModel ConvReluModel(int[] p, bool isDouble, int seed, bool extraOutput, bool secondReader, out Dictionary<string, OnnxTensor> feeds)
    {
        int n = p[0], c = p[1], m = p[2], kh = p[3], kw = p[4], h = p[5], wd = p[6], pad = p[7], stride = p[8], group = p[9];
        var random = new Random(seed);
        OnnxTensor Random(params int[] shape)
        {
            var values = Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => random.NextDouble() - 0.5).ToArray();
            return isDouble ? OnnxTensor.FromArray(values, shape) : OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape);
        }
        var x = Random(n, c, h, wd);
        BitAssert.SetElement(x, 3, double.NaN);
        BitAssert.SetElement(x, x.ElementCount / 2, double.PositiveInfinity);
        BitAssert.SetElement(x, x.ElementCount - 5, double.NegativeInfinity);
        var w = Random(m, c / group, kh, kw);
        var b = Random(m);
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 17));
        var g = model.Graph;
        var type = isDouble ? DataType.Double : DataType.Float;
        g.Inputs.Add(new ValueInfo("x", type, [.. x.Dims.Select(d => Dim.Of(d))]));
        g.Initializers["w"] = w;
        g.Initializers["b"] = b;
        var conv = new Node("Conv", ["x", "w", "b"], ["c"], "conv");
        conv.Attributes.Add(OnnxAttribute.FromInts("pads", pad, pad, pad, pad));
        conv.Attributes.Add(OnnxAttribute.FromInts("strides", stride, stride));
        conv.Attributes.Add(OnnxAttribute.FromInt("group", group));
        conv.Attributes.Add(OnnxAttribute.FromInts("kernel_shape", kh, kw));
        g.Nodes.Add(conv);
        g.Nodes.Add(new Node("Relu", ["c"], ["y"], "relu"));
        g.Outputs.Add(new ValueInfo("y", type, null));
        if (extraOutput) g.Outputs.Add(new ValueInfo("c", type, null));
        if (secondReader)
        {
            g.Nodes.Add(new Node("Neg", ["c"], ["z"], "neg"));
            g.Outputs.Add(new ValueInfo("z", type, null));
        }
        feeds = new Dictionary<string, OnnxTensor> { ["x"] = x };
        return model;
    }
}
