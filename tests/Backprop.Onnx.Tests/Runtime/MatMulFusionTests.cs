using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// <see cref="PlanFusion"/>'s MatMul rules against the unfused plan (<see cref="PlanFusion.DisabledOnThisThread"/>):
/// MatMul + Add(bias) [+ Relu] as FusedMatMul and Transpose(W, perm=[1,0]) folded into trans_b give the same bits (the
/// GEMM is the same call, y + b the same IEEE addition, max(·, 0) Relu's own), for float and double, odd sizes, either
/// Add operand order, biases of rank above the product's, NaN and ±∞; Adds that are not a bias along the last axis, a
/// second reader, a graph output and integer types are left alone; gradient plans give the same gradients fused and unfused.
/// </summary>
[TestClass]
public sealed class MatMulFusionTests
{
    /// <summary>x shape, W as stored ([n, k] when transposed, else [k, n] or batched), bias shape.</summary>
    private static readonly (int[] X, int[] W, bool TransposeW, int[] Bias)[] Cases =
    [
        ([16, 64, 128], [512, 128], true, [512]),      // W4's linear1
        ([7, 13], [11, 13], true, [11]),                // odd sizes
        ([3, 5, 13], [13, 11], false, [1, 1, 11]),      // no transpose; bias [1, 1, n]
        ([5, 13], [13, 11], false, [1, 1, 11]),         // a bias of higher rank: Add's result gains a leading 1
        ([2, 5, 13], [2, 13, 11], false, [11]),         // batched B (one GEMM per batch)
        ([4, 9], [1, 9], true, [6]),                    // product [4, 1] under a bias [6]: Add widens it to [4, 6]
        ([6, 8], [8, 1], false, [1]),                   // n = 1, bias [1]
        ([33, 40], [35, 40], true, [1]),                // one bias value for every column
    ];

    public static IEnumerable<object[]> Rows()
    {
        for (int c = 0; c < Cases.Length; c++)
            foreach (bool isDouble in new[] { false, true })
                foreach (bool relu in new[] { false, true })
                    foreach (int threads in new[] { 1, 2 })
                        yield return [c, isDouble, relu, threads];
    }

    [TestMethod]
    [DynamicData(nameof(Rows))]
    public void MatMulAddRelu_IsFused_AndMatchesTheUnfusedPlanBitForBit(int index, bool isDouble, bool relu, int threads)
    {
        var (xs, ws, transposeW, bs) = Cases[index];
        var model = LinearModel(xs, ws, transposeW, bs, isDouble, relu, biasFirst: index % 2 == 0, seed: 40 + index, out var feeds);
        int nodes = model.Graph.Nodes.Count;
        var fused = Compile(model, threads, fuse: true);
        var node = fused.PlannedNodes.Single(n => n.OpType == MatMulOps.FusedMatMulOp);
        Assert.AreEqual(OpRegistry.BackpropDomain, node.Domain);
        Assert.AreEqual(transposeW ? 1 : 0, node.GetInt("trans_b", 0), "the transpose folds");
        Assert.AreEqual(relu ? "Relu" : "", node.GetString("activation", ""));
        Assert.AreEqual(1, fused.PlannedNodes.Count(n => n.OpType != "Identity"), "MatMul, Add, Relu and Transpose are one node");
        Assert.AreEqual(nodes, model.Graph.Nodes.Count, "the graph keeps its nodes");
        var plain = Compile(model, threads, fuse: false);
        Assert.IsTrue(plain.PlannedNodes.Any(n => n.OpType == "MatMul"), "the switch turns fusion off");
        var expected = plain.Run(feeds)["y"];
        var actual = fused.Run(feeds)["y"];
        BitAssert.SameBits(expected, actual, $"case {index} double {isDouble} relu {relu} threads {threads} (seed {40 + index})");
        Assert.IsTrue(BitAssert.ToDoubles(actual).Any(double.IsNaN), "a NaN input reaches the output");
        if (relu) Assert.IsTrue(BitAssert.ToDoubles(actual).All(v => double.IsNaN(v) || v >= 0), "Relu applied");
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void FoldedTransposeAlone_MatchesTheUnfusedPlanBitForBit(bool isDouble)
    {
        var model = LinearModel([3, 17, 29], [23, 29], transposeW: true, null, isDouble, relu: false, biasFirst: false, seed: 9, out var feeds);
        var fused = Compile(model, 2, fuse: true);
        var node = fused.PlannedNodes.Single(n => n.OpType != "Identity");
        Assert.AreEqual(MatMulOps.FusedMatMulOp, node.OpType);
        Assert.AreEqual(2, node.Inputs.Count, "no bias");
        BitAssert.SameBits(Compile(model, 2, fuse: false).Run(feeds)["y"], fused.Run(feeds)["y"], "transpose only");
    }

    [TestMethod]
    [DataRow(new[] { 6, 1 }, DisplayName = "bias along the rows [m, 1]")]
    [DataRow(new[] { 6, 11 }, DisplayName = "a full [m, n] addend")]
    [DataRow(new[] { 2, 1, 11 }, DisplayName = "a bias that broadcasts the product to a bigger batch")]
    public void AddThatIsNotABiasAlongTheLastAxis_IsNotFused(int[] biasShape)
    {
        var model = LinearModel([6, 13], [13, 11], transposeW: false, biasShape, isDouble: false, relu: true, biasFirst: false, seed: 3, out var feeds);
        var plan = Compile(model, 1, fuse: true);
        CollectionAssert.AreEqual(new[] { "MatMul", "Add", "Relu" }, plan.PlannedNodes.Select(n => n.OpType).ToArray());
        BitAssert.SameBits(Compile(model, 1, fuse: false).Run(feeds)["y"], plan.Run(feeds)["y"], "unfused");
    }

    [TestMethod]
    public void ProductWithASecondReader_OrAsAGraphOutput_IsNotFused_ButTheTransposeFolds()
    {
        foreach (bool asOutput in new[] { false, true })
        {
            var model = LinearModel([6, 13], [11, 13], transposeW: true, [11], isDouble: false, relu: true, biasFirst: true, seed: 4, out var feeds);
            var g = model.Graph;
            if (asOutput) g.Outputs.Add(new ValueInfo("p", DataType.Float, null));
            else
            {
                g.Nodes.Add(new Node("Neg", ["p"], ["z"], "neg"));
                g.Outputs.Add(new ValueInfo("z", DataType.Float, null));
            }
            var plan = Compile(model, 2, fuse: true);
            var ops = plan.PlannedNodes.Select(n => n.OpType).ToArray();
            Assert.IsTrue(ops.Contains("Add") && ops.Contains("Relu") && !ops.Contains("Transpose"), string.Join(",", ops));
            Assert.AreEqual(1, plan.PlannedNodes.Single(n => n.OpType == MatMulOps.FusedMatMulOp).GetInt("trans_b", 0));
            var expected = Compile(model, 2, fuse: false).Run(feeds);
            var actual = plan.Run(feeds);
            foreach (var (name, t) in expected) BitAssert.SameBits(t, actual[name], name);
        }
    }

    [TestMethod]
    public void AddOutputWithASecondReader_FusesTheBiasButNotTheRelu()
    {
        var model = LinearModel([6, 13], [13, 11], transposeW: false, [11], isDouble: true, relu: true, biasFirst: false, seed: 5, out var feeds);
        model.Graph.Outputs.Add(new ValueInfo("s", DataType.Double, null));
        var plan = Compile(model, 1, fuse: true);
        CollectionAssert.AreEqual(new[] { MatMulOps.FusedMatMulOp, "Relu" }, plan.PlannedNodes.Select(n => n.OpType).ToArray());
        var expected = Compile(model, 1, fuse: false).Run(feeds);
        var actual = plan.Run(feeds);
        foreach (var (name, t) in expected) BitAssert.SameBits(t, actual[name], name);
    }

    [TestMethod]
    public void TransposeWithAnotherReader_DoesNotFold()
    {
        var model = LinearModel([6, 13], [11, 13], transposeW: true, [11], isDouble: false, relu: false, biasFirst: false, seed: 6, out var feeds);
        model.Graph.Nodes.Add(new Node("Neg", ["wt"], ["z"], "neg"));
        model.Graph.Outputs.Add(new ValueInfo("z", DataType.Float, null));
        var plan = Compile(model, 1, fuse: true);
        Assert.IsTrue(plan.PlannedNodes.Any(n => n.OpType == "Transpose"));
        Assert.AreEqual(0, plan.PlannedNodes.Single(n => n.OpType == MatMulOps.FusedMatMulOp).GetInt("trans_b", 0), "bias only");
        var expected = Compile(model, 1, fuse: false).Run(feeds);
        var actual = plan.Run(feeds);
        foreach (var (name, t) in expected) BitAssert.SameBits(t, actual[name], name);
    }

    [TestMethod]
    public void IntegerMatMul_IsNotFused()
    {
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 17));
        var g = model.Graph;
        g.Inputs.Add(new ValueInfo("x", DataType.Int32, [Dim.Of(2), Dim.Of(3)]));
        g.Initializers["w"] = OnnxTensor.FromArray(new[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        g.Initializers["b"] = OnnxTensor.FromArray(new[] { 10, 20 }, 2);
        var t = new Node("Transpose", ["w"], ["wt"], "t");
        t.Attributes.Add(OnnxAttribute.FromInts("perm", 1, 0));
        g.Nodes.Add(t);
        g.Nodes.Add(new Node("MatMul", ["x", "wt"], ["p"], "mm"));
        g.Nodes.Add(new Node("Add", ["p", "b"], ["y"], "add"));
        g.Outputs.Add(new ValueInfo("y", DataType.Int32, null));
        var plan = Compile(model, 1, fuse: true);
        CollectionAssert.AreEqual(new[] { "Transpose", "MatMul", "Add" }, plan.PlannedNodes.Select(n => n.OpType).ToArray());
        var y = plan.Run(new Dictionary<string, OnnxTensor> { ["x"] = OnnxTensor.FromArray(new[] { 1, 0, 1, 0, 1, 0 }, 2, 3) })["y"];
        CollectionAssert.AreEqual(new[] { 14, 30, 12, 25 }, y.AsSpan<int>().ToArray());
    }

    /// <summary>Transpose(w) → wt (optional), MatMul(x, wt or w) → p, Add(bias, p) or Add(p, bias) → s (optional), Relu(s) → y (optional). x holds a NaN, +∞ and −∞.</summary>
    internal static OnnxModel LinearModel(int[] xs, int[] ws, bool transposeW, int[]? bs, bool isDouble, bool relu, bool biasFirst, int seed, out Dictionary<string, OnnxTensor> feeds)
    {
        var random = new Random(seed);
        OnnxTensor Random(int[] shape)
        {
            var values = Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => random.NextDouble() - 0.5).ToArray();
            return isDouble ? OnnxTensor.FromArray(values, shape) : OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape);
        }
        var x = Random(xs);
        BitAssert.SetElement(x, 1, double.NaN);
        if (x.ElementCount > 20)
        {
            BitAssert.SetElement(x, x.ElementCount / 2, double.PositiveInfinity);
            BitAssert.SetElement(x, x.ElementCount - 3, double.NegativeInfinity);
        }
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 17));
        var g = model.Graph;
        var type = isDouble ? DataType.Double : DataType.Float;
        g.Inputs.Add(new ValueInfo("x", type, [.. xs.Select(d => Dim.Of(d))]));
        g.Initializers["w"] = Random(ws);
        string b = "w";
        if (transposeW)
        {
            var t = new Node("Transpose", ["w"], ["wt"], "t");
            t.Attributes.Add(OnnxAttribute.FromInts("perm", 1, 0));
            g.Nodes.Add(t);
            b = "wt";
        }
        g.Nodes.Add(new Node("MatMul", ["x", b], ["p"], "mm"));
        string last = "p";
        if (bs is not null)
        {
            g.Initializers["bias"] = Random(bs);
            g.Nodes.Add(new Node("Add", biasFirst ? ["bias", "p"] : ["p", "bias"], ["s"], "add"));
            last = "s";
        }
        if (relu)
        {
            g.Nodes.Add(new Node("Relu", [last], ["y"], "relu"));
            last = "y";
        }
        if (last != "y") g.Nodes.Add(new Node("Identity", [last], ["y"], "out"));
        g.Outputs.Add(new ValueInfo("y", type, null));
        feeds = new Dictionary<string, OnnxTensor> { ["x"] = x };
        return model;
    }

    internal static ExecutionPlan Compile(OnnxModel model, int threads, bool fuse, bool training = false)
    {
        PlanFusion.DisabledOnThisThread = !fuse;
        try
        {
            return ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads, TrainingMode = training });
        }
        finally
        {
            PlanFusion.DisabledOnThisThread = false;
        }
    }
}
