using Backprop.Onnx.Export;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.OnnxRuntime;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Training;

[TestClass]
public sealed class TrainerTests
{
    /// <summary>An MLP 784-32-10 (Flatten, Gemm, Relu, Gemm) with seeded uniform(±1/√fan_in) weights, as PyTorch's nn.Linear initializes.</summary>
    internal static OnnxModel Mlp(int seed = 7, int hidden = 32)
    {
        var m = new OnnxModel { IrVersion = 8, ProducerName = "test" };
        m.OpsetImports.Add(new OpsetImport("", 13));
        var g = m.Graph;
        g.Name = "mlp";
        g.Inputs.Add(new ValueInfo("input", DataType.Float, [Dim.Symbol("N"), Dim.Of(1), Dim.Of(28), Dim.Of(28)]));
        var r = new Random(seed);
        OnnxTensor Uniform(int fanIn, params int[] shape)
        {
            long n = shape.Aggregate(1L, (a, b) => a * b);
            double bound = 1 / Math.Sqrt(fanIn);
            return OnnxTensor.FromArray(Enumerable.Range(0, (int)n).Select(_ => (float)((r.NextDouble() * 2 - 1) * bound)).ToArray(), shape);
        }
        g.Initializers.Add("fc1.weight", Uniform(784, hidden, 784));
        g.Initializers.Add("fc1.bias", Uniform(784, hidden));
        g.Initializers.Add("fc2.weight", Uniform(hidden, 10, hidden));
        g.Initializers.Add("fc2.bias", Uniform(hidden, 10));
        g.Nodes.Add(new Node("Flatten", ["input"], ["flat"], "flatten"));
        var fc1 = new Node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["h"], "fc1");
        fc1.Attributes.Add(OnnxAttribute.FromInt("transB", 1));
        g.Nodes.Add(fc1);
        g.Nodes.Add(new Node("Relu", ["h"], ["a"], "relu"));
        var fc2 = new Node("Gemm", ["a", "fc2.weight", "fc2.bias"], ["logits"], "fc2");
        fc2.Attributes.Add(OnnxAttribute.FromInt("transB", 1));
        g.Nodes.Add(fc2);
        g.Outputs.Add(new ValueInfo("logits", DataType.Float, [Dim.Symbol("N"), Dim.Of(10)]));
        return m;
    }

    private static FashionMnist Subset(int n)
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte.gz")))
            Assert.Fail("Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist");
        return FashionMnist.Load(FashionMnist.DefaultDirectory, train: true, limit: n);
    }

    [TestMethod]
    public void Mlp_LossFalls_AndOnnxRuntimeOnTheExportedModelGivesTheEngineLogits()
    {
        var data = Subset(2048);
        var trainer = new Trainer(Mlp(), new TrainerOptions { BatchSize = 32, Seed = 1, Optimizer = new() { LearningRate = 2e-3 } });
        var losses = new List<double>();
        var order = Enumerable.Range(0, data.Count).ToArray();
        for (int step = 0; step < 300; step++)
        {
            var (x, y) = data.GetBatch(order.AsSpan(step * 32 % data.Count, 32));
            losses.Add(trainer.TrainStep(x, y));
        }
        double first = losses.Take(20).Average(), last = losses.TakeLast(20).Average();
        Assert.IsLessThan(0.6 * first, last, $"loss did not fall: first 20 steps {first:F4}, last 20 steps {last:F4}");

        string path = Path.Combine(Path.GetTempPath(), $"mlp-{Guid.NewGuid():N}.onnx");
        try
        {
            trainer.Export(path);
            var (batch, _) = data.GetBatch(Enumerable.Range(0, 64).ToArray());
            var ours = trainer.Predict(batch)["logits"];
            var ort = OrtReference.Run(ModelImporter.Load(path), new Dictionary<string, OnnxTensor> { ["input"] = batch })["logits"];
            double maxDiff = 0, scale = 0;
            for (long i = 0; i < ours.ElementCount; i++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(ours.GetDouble(i) - ort.GetDouble(i)));
                scale = Math.Max(scale, Math.Abs(ort.GetDouble(i)));
            }
            Assert.IsLessThanOrEqualTo(1e-5, maxDiff / scale, $"engine vs ONNX Runtime: max diff {maxDiff:E3}, scale {scale:E3}");
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void FreezingAllButTheLastLayer_ChangesOnlyThatLayerInTheExportedFile()
    {
        var model = Mlp();
        var options = new TrainerOptions { BatchSize = 32, Optimizer = new() { LearningRate = 1e-2 } };
        options.Freeze.Add("fc1.*");
        var trainer = new Trainer(model, options);
        CollectionAssert.AreEquivalent(new[] { "fc2.weight", "fc2.bias" }, trainer.TrainableParameters.ToArray());
        trainer.TrainEpoch(Subset(256));
        string path = Path.Combine(Path.GetTempPath(), $"frozen-{Guid.NewGuid():N}.onnx");
        try
        {
            trainer.Export(path);
            var exported = ModelImporter.Load(path);
            foreach (var name in new[] { "fc1.weight", "fc1.bias" })
                CollectionAssert.AreEqual(model.Graph.Initializers[name].ToRawBytes(), exported.Graph.Initializers[name].ToRawBytes(), name);
            foreach (var name in new[] { "fc2.weight", "fc2.bias" })
                CollectionAssert.AreNotEqual(model.Graph.Initializers[name].ToRawBytes(), exported.Graph.Initializers[name].ToRawBytes(), name);
            // Nothing else changed: same nodes, inputs, outputs, opsets.
            Assert.AreEqual(model.Graph.Nodes.Count, exported.Graph.Nodes.Count);
            CollectionAssert.AreEqual(model.OpsetImports, exported.OpsetImports);
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void ResumingFromACheckpoint_IsBitIdenticalToAnUninterruptedRun_AndAKilledWriteKeepsThePreviousCheckpoint()
    {
        var data = Subset(320);
        TrainerOptions Options() => new() { BatchSize = 32, Seed = 3, Optimizer = new() { Kind = OptimizerKind.AdamW, LearningRate = 1e-3, WeightDecay = 1e-2 } };
        var straight = new Trainer(Mlp(), Options());
        straight.TrainEpoch(data);
        straight.TrainEpoch(data);

        string ckpt = Path.Combine(Path.GetTempPath(), $"ckpt-{Guid.NewGuid():N}.onnx");
        try
        {
            var first = new Trainer(Mlp(), Options());
            first.TrainEpoch(data);
            first.SaveCheckpoint(ckpt);
            // A second write that dies half-way must leave the first checkpoint readable.
            Assert.ThrowsExactly<IOException>(() => AtomicFile.Write(ckpt, s => { s.Write(new byte[100]); throw new IOException("killed"); }));

            var resumed = new Trainer(Mlp(), Options());
            resumed.LoadCheckpoint(ckpt);
            Assert.AreEqual(1, resumed.EpochsCompleted);
            Assert.AreEqual(10, resumed.StepCount);
            resumed.TrainEpoch(data);
            foreach (var p in straight.TrainableParameters)
                CollectionAssert.AreEqual(straight.Parameter(p).ToRawBytes(), resumed.Parameter(p).ToRawBytes(), p);
        }
        finally { File.Delete(ckpt); }
    }

    [TestMethod]
    public void AParameterCutOffByANodeWithoutARule_IsAnError_NotSilentlyFrozen()
    {
        var model = Mlp();
        // Route fc1's output through an op the engine does not know: fc1's parameters lose their gradient path.
        var relu = model.Graph.Nodes.Single(n => n.OpType == "Relu");
        relu.Inputs[0] = "h_unknown";
        model.Graph.Nodes.Insert(model.Graph.Nodes.IndexOf(relu), new Node("NoSuchOp", ["h"], ["h_unknown"], "mystery"));
        var e = Assert.ThrowsExactly<Backprop.Onnx.Autodiff.DifferentiationException>(() => new Trainer(model, new TrainerOptions()));
        StringAssert.Contains(e.Message, "mystery");
    }

    [TestMethod]
    public void RegressionTargets_MustMatchTheOutputShape_AndBadHyperParametersAreRefused()
    {
        var options = new TrainerOptions { Loss = new LossOptions { Kind = LossKind.MeanSquaredError }, BatchSize = 8 };
        var trainer = new Trainer(Mlp(), options);
        var x = OnnxTensor.FromArray(new float[8 * 784], 8, 1, 28, 28);
        // [1,10] would broadcast against [8,10]; it must be refused, not trained on.
        var e = Assert.ThrowsExactly<InvalidInputException>(() => trainer.TrainStep(x, OnnxTensor.FromArray(new float[10], 1, 10)));
        StringAssert.Contains(e.Message, "labels");
        Assert.AreEqual(0, trainer.StepCount);
        trainer.TrainStep(x, OnnxTensor.FromArray(new float[80], 8, 10));
        Assert.AreEqual(1, trainer.StepCount);
        Assert.ThrowsExactly<ArgumentException>(() => new Trainer(Mlp(), new TrainerOptions { ClipGradientNorm = -1 }));
        Assert.ThrowsExactly<ArgumentException>(() => new Trainer(Mlp(), new TrainerOptions { Optimizer = new() { LearningRate = -1 } }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Evaluate(Subset(16), batchSize: 0));
    }

    [TestMethod]
    public void ClippingByGlobalNorm_BoundsTheSgdStepToLrTimesTheNorm()
    {
        // SGD moves every parameter by −lr·g·s with s = maxNorm / ‖g‖ (torch.nn.utils.clip_grad_norm_), so the whole
        // step has length lr·maxNorm whenever the gradient is longer than maxNorm.
        const double lr = 0.1, maxNorm = 1e-3;
        var model = Mlp();
        var trainer = new Trainer(model, new TrainerOptions { ClipGradientNorm = maxNorm, Optimizer = new() { Kind = OptimizerKind.Sgd, LearningRate = lr } });
        var (x, y) = Subset(32).GetBatch(Enumerable.Range(0, 32).ToArray());
        trainer.TrainStep(x, y);
        double sq = 0;
        foreach (var p in trainer.TrainableParameters)
        {
            var before = model.Graph.Initializers[p].AsSpan<float>();
            var after = trainer.Parameter(p).AsSpan<float>();
            for (int i = 0; i < before.Length; i++) { double d = after[i] - (double)before[i]; sq += d * d; }
        }
        Assert.AreEqual(lr * maxNorm, Math.Sqrt(sq), lr * maxNorm * 1e-2);
    }

    [TestMethod]
    public void CosineSchedule_SpansTheWholeFit_AndLeavesTheOptionsAlone()
    {
        var options = new TrainerOptions { BatchSize = 64, Schedule = new LearningRateSchedule { Kind = ScheduleKind.Cosine }, Optimizer = new() { Kind = OptimizerKind.Sgd, LearningRate = 0.05 } };
        var trainer = new Trainer(Mlp(), options);
        var data = Subset(256);
        var history = trainer.Fit(data, null, epochs: 3);
        Assert.AreEqual(0, options.Schedule.TotalSteps, "the caller's schedule is not modified");
        // With a one-epoch horizon the learning rate would be 0 from epoch 2 on and the loss would stop moving.
        Assert.AreNotEqual(history[1].TrainLoss, history[2].TrainLoss);
    }

    [TestMethod]
    public void NonFiniteValues_StopTrainingAndNameTheStepAndTheFirstNode()
    {
        var model = Mlp();
        var w = model.Graph.Initializers["fc2.weight"].Clone();
        w.AsSpan<float>()[5] = float.PositiveInfinity;
        model.Graph.Initializers["fc2.weight"] = w;
        var trainer = new Trainer(model, new TrainerOptions { BatchSize = 16 });
        var e = Assert.ThrowsExactly<TrainingDivergedException>(() => trainer.TrainEpoch(Subset(64)));
        Assert.AreEqual(1, e.Step);
        StringAssert.Contains(e.Node, "fc2");
        Assert.AreEqual(0, trainer.StepCount);
    }
}
