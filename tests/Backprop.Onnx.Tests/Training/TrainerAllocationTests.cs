using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Training;

/// <summary>
/// The target "a steady-state training step allocates under 1 KB of managed memory", checked on a small MLP
/// (Flatten, Gemm, Relu, Gemm, cross-entropy; SGD) with one thread, so every byte is allocated on the calling thread.
/// The tests run alone: kernels rent scratch from ArrayPool&lt;T&gt;.Shared, whose per-core stacks other test threads
/// share, so a concurrent test could take a buffer and make a rent here allocate (seen as a rare failure under load).
/// </summary>
[TestClass]
[DoNotParallelize]
public sealed class TrainerAllocationTests
{
    private const long BudgetBytes = 1024;

    /// <param name="kind">The optimizer.</param>
    /// <param name="clip">The gradient-norm bound: 0 for none, 1e-3 so that every step scales the gradients.</param>
    [TestMethod]
    [DataRow(OptimizerKind.Sgd, 0.0)]
    [DataRow(OptimizerKind.AdamW, 1e-3)]
    [DataRow(OptimizerKind.Momentum, 1e6)]
    public void SteadyStateTrainStep_OnASmallMlp_AllocatesUnder1KB(OptimizerKind kind, double clip)
    {
        const int batch = 16, steps = 10;
        var model = TrainerTests.Mlp(seed: 3, hidden: 24);
        var trainer = new Trainer(model, new TrainerOptions
        {
            Threads = 1,
            BatchSize = batch,
            ClipGradientNorm = clip > 0 ? clip : null,
            Optimizer = new OptimizerOptions { Kind = kind, LearningRate = 0.01 },
        });
        var random = new Random(5);
        var x = OnnxTensor.FromArray(Enumerable.Range(0, batch * 784).Select(_ => (float)random.NextDouble()).ToArray(), batch, 1, 28, 28);
        var labels = OnnxTensor.FromArray(Enumerable.Range(0, batch).Select(_ => (long)random.Next(10)).ToArray(), batch);
        for (int i = 0; i < 3; i++) trainer.TrainStep(x, labels);
        long perStep = SteadyBytesPerStep(() => trainer.TrainStep(x, labels), steps);

        var perOp = KernelBytesPerRun(trainer, x, labels);
        string table = string.Join(", ", perOp.Where(kv => kv.Value > 0).OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value} B"));
        Console.WriteLine($"{perStep} B per step, {perStep - perOp.Values.Sum()} B of it outside every kernel; kernels per run: {table}");
        // The executor and the trainer themselves (feeds, plan, outputs, clipping, optimizer) allocate nothing per step.
        long outside = perStep - perOp.Values.Sum();
        Assert.IsLessThan(64L, outside, $"the executor and trainer allocate {outside} B per step outside every kernel; kernels per run: {table}");
        Assert.IsLessThan(BudgetBytes, perStep, $"a steady-state step allocates {perStep} B; kernels per run: {table}");
    }

    /// <summary>
    /// The same budget on the benchmark models with convolutions and BatchNormalization (W3: a small ResNet) and with
    /// attention (W4: MatMul, Softmax, LayerNormalization, Slice, broadcast Add), as <c>backprop-onnx bench</c> trains them.
    /// </summary>
    [TestMethod]
    [DataRow("bench/w3_resnet", false)]
    [DataRow("bench/w4_transformer", true)]
    public void SteadyStateTrainStep_OnABenchmarkModel_AllocatesUnder1KB(string id, bool mse)
    {
        const int steps = 4;
        var model = Backprop.Onnx.Import.ModelImporter.Load(Support.ReferenceModels.Get(id).ModelPath);
        var input = model.Graph.RuntimeInputs.First();
        int[] shape = [.. input.Shape!.Select(d => checked((int)d.Value!.Value))];
        var random = new Random(0);
        var x = OnnxTensor.FromArray(Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), shape);
        int[] outShape = [.. ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 }).Run(new Dictionary<string, OnnxTensor> { [input.Name] = x })[model.Graph.Outputs[0].Name].Dims];
        var labels = mse ? OnnxTensor.Zeros(DataType.Float, outShape)
            : OnnxTensor.FromArray(Enumerable.Range(0, outShape[0]).Select(_ => (long)random.Next(outShape[1])).ToArray(), outShape[0]);
        var trainer = new Trainer(model, new TrainerOptions
        {
            Loss = new LossOptions { Kind = mse ? LossKind.MeanSquaredError : LossKind.CrossEntropy, LabelName = "labels" },
            Threads = 1,
            BatchSize = outShape[0],
            Optimizer = new OptimizerOptions { Kind = OptimizerKind.Sgd, LearningRate = 1e-4 },
        });
        for (int i = 0; i < 3; i++) trainer.TrainStep(x, labels);
        long perStep = SteadyBytesPerStep(() => trainer.TrainStep(x, labels), steps);
        Console.WriteLine($"{id}: {perStep} B per step");
        Assert.IsLessThan(BudgetBytes, perStep, $"a steady-state step of {id} allocates {perStep} B");
    }

    /// <summary>
    /// Managed bytes per step in steady state: the least of three windows of <paramref name="steps"/> steps each. A
    /// one-off refill does not count (ArrayPool&lt;T&gt;.Shared drops idle buffers on a gen-2 collection, which other
    /// tests' garbage can trigger in the middle of a window: seen as 71 B per step in one window of a full run), while
    /// an allocation made by every step shows in every window.
    /// </summary>
    private static long SteadyBytesPerStep(Action step, int steps)
    {
        long least = long.MaxValue;
        for (int window = 0; window < 3; window++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < steps; i++) step();
            least = Math.Min(least, (GC.GetAllocatedBytesForCurrentThread() - before) / steps);
        }
        return least;
    }

    /// <summary>
    /// Bytes each op type allocates per run of the trainer's forward-and-backward graph (one thread), measured between
    /// consecutive nodes of a steady-state run.
    /// </summary>
    private static Dictionary<string, long> KernelBytesPerRun(Trainer trainer, OnnxTensor x, OnnxTensor labels)
    {
        var plan = ExecutionPlan.Compile(trainer.GradientModel.Model, new ExecutionOptions { Threads = 1, TrainingMode = true });
        var feeds = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal) { ["input"] = x, ["labels"] = labels };
        var perOp = new Dictionary<string, long>(StringComparer.Ordinal);
        const int runs = 5, measured = 3;
        bool measuring = false;
        long last = 0;
        // No lambda inside this one captures its parameters, so calling it allocates nothing itself.
        Action<Node, KernelContext> afterNode = (node, _) =>
        {
            long now = GC.GetAllocatedBytesForCurrentThread();
            if (measuring) perOp[node.OpType] = perOp.GetValueOrDefault(node.OpType) + (now - last);
            last = GC.GetAllocatedBytesForCurrentThread();
        };
        for (int run = 0; run < runs; run++)
        {
            measuring = run >= runs - measured;
            last = GC.GetAllocatedBytesForCurrentThread();
            plan.Recycle(plan.Run(feeds, null, out _, afterNode));
        }
        foreach (var key in perOp.Keys.ToList()) perOp[key] /= measured;
        return perOp;
    }
}
