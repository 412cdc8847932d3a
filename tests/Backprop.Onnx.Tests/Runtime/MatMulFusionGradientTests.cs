using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// Gradient plans with <see cref="PlanFusion"/>'s MatMul rules: the W4 Transformer layer and small MLPs built from
/// Transpose + MatMul + Add (+ Relu) give the same loss and gradients fused and unfused. FusedMatMul, MatMulGrad with a
/// transposed B (dA = dY·W) and the folded Shape are the same arithmetic, bit for bit; MatMulGrad writing dWᵀ = dYᵀ·A
/// (trans_db) sums the same products in the same order as Aᵀ·dY (the GEMM's k loop runs over the same rows), so the
/// gradients are compared bit for bit too.
/// </summary>
[TestClass]
public sealed class MatMulFusionGradientTests
{
    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void W4GradientPlan_FusedAndUnfused_GiveTheSameGradients(int threads)
    {
        var model = ModelImporter.Load(Path.Combine(TestPaths.OnnxModels, "bench/w4_transformer", "model.onnx"));
        var (fused, plain, gradientModel) = Plans(model, threads);
        var ops = fused.PlannedNodes.Select(n => n.OpType).ToArray();
        Assert.AreEqual(3, ops.Count(o => o == MatMulOps.FusedMatMulOp), "in_proj, linear1 and linear2");
        Assert.AreEqual(1, fused.PlannedNodes.Count(n => n.OpType == MatMulOps.FusedMatMulOp && n.GetString("activation", "") == "Relu"), "linear1's Relu");
        Assert.AreEqual(3, fused.PlannedNodes.Count(n => n.OpType == "MatMulGrad" && n.GetInt("trans_b", 0) == 1 && n.GetInt("trans_db", 0) == 1));
        Assert.IsFalse(fused.PlannedNodes.Any(n => n.OpType == "Transpose" && n.Inputs[0].EndsWith("weight", StringComparison.Ordinal)), "weight transposes folded");
        Assert.IsFalse(gradientModel.Graph.Nodes.Any(n => n.OpType == MatMulOps.FusedMatMulOp), "the gradient graph is unchanged");
        CompareRuns(gradientModel, plain, fused, seed: 11);
    }

    [TestMethod]
    [DataRow(false, 1, false)]
    [DataRow(false, 2, false)]
    [DataRow(true, 2, false)]
    [DataRow(false, 1, true)]
    [DataRow(true, 2, true)]
    public void MlpGradientPlan_FusedAndUnfused_GiveTheSameGradients(bool threeD, int threads, bool isDouble)
    {
        var model = Mlp(threeD, isDouble);
        var (fused, plain, gradientModel) = Plans(model, threads);
        Assert.AreEqual(2, fused.PlannedNodes.Count(n => n.OpType == MatMulOps.FusedMatMulOp));
        Assert.AreEqual(1, fused.PlannedNodes.Count(n => n.OpType == "MatMulGrad" && n.GetInt("trans_b", 0) == 1));
        Assert.IsFalse(fused.PlannedNodes.Any(n => n.OpType is "Relu" or "Transpose"));
        CompareRuns(gradientModel, plain, fused, seed: 12);
    }

    /// <summary>x [5, 7] (or [2, 5, 7]) → Relu(MatMul(x, Transpose(W1 [9, 7])) + b1) → MatMul(·, W2 [9, 3]) + b2 → y.</summary>
    private static OnnxModel Mlp(bool threeD, bool isDouble)
    {
        var random = new Random(3);
        var type = isDouble ? DataType.Double : DataType.Float;
        OnnxTensor Random(params int[] shape)
        {
            var values = Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => random.NextDouble() - 0.5).ToArray();
            return isDouble ? OnnxTensor.FromArray(values, shape) : OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape);
        }
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 17));
        var g = model.Graph;
        g.Inputs.Add(new ValueInfo("x", type, threeD ? [Dim.Of(2), Dim.Of(5), Dim.Of(7)] : [Dim.Of(5), Dim.Of(7)]));
        g.Initializers["w1"] = Random(9, 7);
        g.Initializers["b1"] = Random(9);
        g.Initializers["w2"] = Random(9, 3);
        g.Initializers["b2"] = Random(3);
        var t = new Node("Transpose", ["w1"], ["w1t"], "t");
        t.Attributes.Add(OnnxAttribute.FromInts("perm", 1, 0));
        g.Nodes.Add(t);
        g.Nodes.Add(new Node("MatMul", ["x", "w1t"], ["p1"], "mm1"));
        g.Nodes.Add(new Node("Add", ["b1", "p1"], ["s1"], "add1"));
        g.Nodes.Add(new Node("Relu", ["s1"], ["h"], "relu"));
        g.Nodes.Add(new Node("MatMul", ["h", "w2"], ["p2"], "mm2"));
        g.Nodes.Add(new Node("Add", ["p2", "b2"], ["y"], "add2"));
        g.Outputs.Add(new ValueInfo("y", type, threeD ? [Dim.Of(2), Dim.Of(5), Dim.Of(3)] : [Dim.Of(5), Dim.Of(3)]));
        return model;
    }

    private static (ExecutionPlan Fused, ExecutionPlan Plain, OnnxModel GradientModel) Plans(OnnxModel model, int threads)
    {
        var trainer = new Trainer(model, new TrainerOptions
        {
            Loss = new LossOptions { Kind = LossKind.MeanSquaredError },
            Threads = threads,
            Optimizer = new OptimizerOptions { Kind = OptimizerKind.Sgd, LearningRate = 1e-3 },
        });
        var gradientModel = trainer.GradientModel.Model;
        int nodes = gradientModel.Graph.Nodes.Count;
        var fused = MatMulFusionTests.Compile(gradientModel, threads, fuse: true, training: true);
        var plain = MatMulFusionTests.Compile(gradientModel, threads, fuse: false, training: true);
        Assert.AreEqual(nodes, gradientModel.Graph.Nodes.Count, "compiling does not change the gradient graph");
        return (fused, plain, gradientModel);
    }

    /// <summary>Random feeds for every runtime input (unknown dimensions from the first input's), both plans run twice (warm pools).</summary>
    private static void CompareRuns(OnnxModel gradientModel, ExecutionPlan plain, ExecutionPlan fused, int seed)
    {
        var random = new Random(seed);
        var inputs = gradientModel.Graph.RuntimeInputs.ToList();
        var first = inputs[0].Shape!.Select(d => d.Value is { } v ? checked((int)v) : 4).ToArray();
        var feeds = new Dictionary<string, OnnxTensor>();
        foreach (var input in inputs)
        {
            int[] shape = [.. input.Shape!.Select((d, i) => d.Value is { } v ? checked((int)v) : first[i])];
            int count = shape.Aggregate(1, (a, b) => a * b);
            var values = Enumerable.Range(0, count).Select(_ => random.NextDouble() * 2 - 1).ToArray();
            feeds[input.Name] = input.ElementType switch
            {
                DataType.Double => OnnxTensor.FromArray(values, shape),
                DataType.Float => OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape),
                _ => throw new AssertFailedException($"{input.Name}: {input.ElementType}"),
            };
        }
        for (int run = 0; run < 2; run++)
        {
            var expected = plain.Run(feeds);
            var actual = fused.Run(feeds);
            Assert.AreEqual(expected.Count, actual.Count);
            foreach (var (name, t) in expected) BitAssert.SameBits(t, actual[name], $"run {run}: {name}");
        }
    }
}
