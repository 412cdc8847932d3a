using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// The plan's concurrency contract (<see cref="ExecutionPlan"/>: a run that finds the idle run state taken makes its
/// own): one compiled plan (Threads = 2) run from four threads at once, with different inputs interleaved and, where
/// the batch is symbolic, different batch sizes, gives every output bit for bit as a sequential run did. This covers
/// the state kernels keep between calls (cached shapes per kernel instance, per-thread and pooled jobs, per-thread
/// scratch, GEMM region jobs) and its re-entrancy through ChunkRunner.
/// </summary>
[TestClass]
public sealed class ConcurrentRunTests
{
    private const int Callers = 4;

    /// <summary>A plan, its feeds and the outputs a sequential run gave for each.</summary>
    private sealed record Case(string Name, ExecutionPlan Plan, Dictionary<string, OnnxTensor>[] Feeds, IReadOnlyDictionary<string, OnnxTensor>[] References);

    [TestMethod]
    [DataRow("bench/w1_mlp", false)]
    [DataRow("bench/w1_mlp", true)]
    [DataRow("bench/w2_lenet", false)]
    [DataRow("bench/w2_lenet", true)]
    [DataRow("bench/w3_resnet", false)]
    [DataRow("bench/w3_resnet", true)]
    [DataRow("bench/w4_transformer", false)]
    [DataRow("bench/w4_transformer", true)]
    public void BenchPlan_RunFromFourThreads_MatchesSequentialRunsBitForBit(string id, bool gradient)
    {
        var c = Prepare(id, gradient, [null, null, null], seed: 11);
        Hammer([c], rounds: id.Contains("w3", StringComparison.Ordinal) || id.Contains("w4", StringComparison.Ordinal) ? 4 : 12);
    }

    [TestMethod]
    public void TwoPlans_W2AndW3_RunConcurrently_MatchSequentialRunsBitForBit()
    {
        var cases = new[]
        {
            Prepare("bench/w2_lenet", gradient: true, [null, null], seed: 21),
            Prepare("bench/w3_resnet", gradient: true, [null, null], seed: 22),
            Prepare("bench/w2_lenet", gradient: false, [null, null], seed: 23),
            Prepare("bench/w3_resnet", gradient: false, [null, null], seed: 24),
        };
        Hammer(cases, rounds: 6);
    }

    [TestMethod]
    [DataRow("lenet", false)]
    [DataRow("lenet", true)]
    [DataRow("resnet_small", false)]
    [DataRow("resnet_small", true)]
    [DataRow("mlp", false)]
    [DataRow("mlp", true)]
    [DataRow("transformer", false)]
    [DataRow("transformer", true)]
    public void SymbolicBatch_DifferentBatchSizesRunConcurrently_MatchSequentialRunsBitForBit(string id, bool gradient)
    {
        var c = Prepare(id, gradient, [2, 7, 16, 3], seed: 31);
        Hammer([c], rounds: 16);
    }

    /// <summary>Compiles the forward plan, or the gradient plan as the bench builds it, and records a sequential reference per feed.</summary>
    private static Case Prepare(string id, bool gradient, int?[] batches, int seed)
    {
        var model = ModelImporter.Load(Path.Combine(TestPaths.OnnxModels, id, "model.onnx"));
        var input = model.Graph.RuntimeInputs.First();
        var output = model.Graph.Outputs[0];
        bool mse = (output.Shape?.Count ?? 2) != 2;
        var random = new Random(seed);
        var feeds = new Dictionary<string, OnnxTensor>[batches.Length];
        ExecutionPlan plan;
        if (gradient)
        {
            var lossOptions = new LossOptions { Kind = mse ? LossKind.MeanSquaredError : LossKind.CrossEntropy, LabelName = "labels" };
            var probe = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 });
            var trainer = new Trainer(model, new TrainerOptions { Loss = lossOptions, Threads = 2, BatchSize = 4, Optimizer = new OptimizerOptions { Kind = OptimizerKind.Sgd, LearningRate = 1e-4 } });
            plan = ExecutionPlan.Compile(trainer.GradientModel.Model, new ExecutionOptions { Threads = 2, TrainingMode = true });
            for (int f = 0; f < feeds.Length; f++)
            {
                var x = RandomInput(input, batches[f], random);
                int[] outShape = [.. probe.Run(new Dictionary<string, OnnxTensor> { [input.Name] = x })[output.Name].Shape];
                var labels = mse
                    ? OnnxTensor.FromArray(Enumerable.Range(0, outShape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(), outShape)
                    : OnnxTensor.FromArray(Enumerable.Range(0, outShape[0]).Select(_ => (long)random.Next(outShape[1])).ToArray(), outShape[0]);
                feeds[f] = new Dictionary<string, OnnxTensor> { [input.Name] = x, ["labels"] = labels };
            }
        }
        else
        {
            plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 2 });
            for (int f = 0; f < feeds.Length; f++) feeds[f] = new Dictionary<string, OnnxTensor> { [input.Name] = RandomInput(input, batches[f], random) };
        }
        var references = feeds.Select(f => plan.Run(f)).ToArray();
        // The references themselves are reproducible: a second sequential pass gives the same bits.
        for (int f = 0; f < feeds.Length; f++) AssertSame(references[f], plan.Run(feeds[f]), $"{id} gradient={gradient} feed {f} (sequential rerun)");
        return new Case($"{id} gradient={gradient}", plan, feeds, references);
    }

    private static OnnxTensor RandomInput(ValueInfo input, int? batch, Random random)
    {
        int[] shape = [.. input.Shape!.Select((d, i) => d.Value is { } v ? checked((int)v) : i == 0 ? batch ?? 2 : throw new InvalidOperationException($"{input.Name} has a symbolic dimension {i}"))];
        if (batch is { } b) shape[0] = b;
        return OnnxTensor.FromArray(Enumerable.Range(0, shape.Aggregate(1, (a, c) => a * c)).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), shape);
    }

    /// <summary>Runs the cases from <see cref="Callers"/> callers started together, each walking the (case, feed) pairs from its own offset.</summary>
    private static void Hammer(Case[] cases, int rounds)
    {
        var pairs = cases.SelectMany(c => Enumerable.Range(0, c.Feeds.Length).Select(f => (c, f))).ToArray();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var start = new Barrier(Callers);
        void Caller(int t)
        {
            start.SignalAndWait();
            for (int r = 0; r < rounds && failures.IsEmpty; r++)
            {
                var (c, f) = pairs[(t + r) % pairs.Length];
                try
                {
                    var got = c.Plan.Run(c.Feeds[f]);
                    string? diff = Difference(c.References[f], got);
                    if (diff is not null) failures.Enqueue($"{c.Name} feed {f}, caller {t} round {r}: {diff}");
                }
                catch (Exception e)
                {
                    failures.Enqueue($"{c.Name} feed {f}, caller {t} round {r}: {e}");
                }
            }
        }
        // Half the callers are dedicated threads, half thread-pool threads: a pool thread that ran a plan goes on to run
        // other plans' ChunkRunner items, with its per-thread jobs and scratch left from its own run.
        var threads = Enumerable.Range(0, Callers / 2).Select(t => new Thread(() => Caller(t))).ToArray();
        foreach (var th in threads) th.Start();
        var tasks = Enumerable.Range(Callers / 2, Callers - Callers / 2).Select(t => Task.Run(() => Caller(t))).ToArray();
        foreach (var th in threads) th.Join();
        Task.WaitAll(tasks);
        Assert.IsTrue(failures.IsEmpty, string.Join(Environment.NewLine, failures.Take(5)));
    }

    private static void AssertSame(IReadOnlyDictionary<string, OnnxTensor> expected, IReadOnlyDictionary<string, OnnxTensor> actual, string what)
    {
        string? diff = Difference(expected, actual);
        Assert.IsNull(diff, $"{what}: {diff}");
    }

    private static string? Difference(IReadOnlyDictionary<string, OnnxTensor> expected, IReadOnlyDictionary<string, OnnxTensor> actual)
    {
        if (expected.Count != actual.Count) return $"{actual.Count} outputs, expected {expected.Count}";
        foreach (var (name, e) in expected)
        {
            if (!actual.TryGetValue(name, out var a)) return $"output '{name}' missing";
            if (!e.ContentEquals(a))
            {
                if (!e.Shape.SequenceEqual(a.Shape)) return $"'{name}' is {a}, expected {e}";
                for (long i = 0; i < e.ElementCount; i++)
                    if (BitConverter.DoubleToInt64Bits(e.GetDouble(i)) != BitConverter.DoubleToInt64Bits(a.GetDouble(i)))
                        return $"'{name}'[{i}] = {a.GetDouble(i):R}, expected {e.GetDouble(i):R}";
                return $"'{name}' differs";
            }
        }
        return null;
    }
}
