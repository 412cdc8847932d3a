using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.OnnxRuntime;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Cli.Commands;

/// <summary>
/// <c>backprop-onnx bench MODEL --loss cross-entropy|mse [--label NAME] [--warmup N] [--steps N] [--threads N] [--ort]</c>:
/// medians of forward, forward + backward and a full SGD step on random inputs of the model's shapes, and the managed
/// bytes allocated per steady-state step. The last line is machine-readable.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A model with static input shapes." };
        var loss = new Option<string>("--loss") { Description = "cross-entropy (random labels over the classes) or mse (zero target).", DefaultValueFactory = _ => "cross-entropy" };
        loss.AcceptOnlyFromAmong("cross-entropy", "mse");
        var label = new Option<string>("--label") { Description = "Name of the label input to add.", DefaultValueFactory = _ => "labels" };
        var warmup = new Option<int>("--warmup") { Description = "Untimed steps first.", DefaultValueFactory = _ => 5 };
        var steps = new Option<int>("--steps") { Description = "Timed steps.", DefaultValueFactory = _ => 20 };
        var threads = new Option<int>("--threads") { Description = "Executor threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var ort = new Option<bool>("--ort") { Description = "Also time ONNX Runtime's forward (2 intra-op threads)." };
        var cmd = new Command("bench", "Time forward, forward+backward and a training step.") { model, loss, label, warmup, steps, threads, ort };
        cmd.SetAction(r => CliErrors.Guard(() => Run(r.GetValue(model)!, r.GetValue(loss) == "mse", r.GetValue(label)!, r.GetValue(warmup), r.GetValue(steps), r.GetValue(threads), r.GetValue(ort))));
        return cmd;
    }

    private static int Run(string path, bool mse, string label, int warmup, int steps, int threads, bool ort)
    {
        if (steps <= 0 || warmup < 0) throw new ArgumentException("--steps must be positive and --warmup non-negative");
        var model = ModelImporter.Load(path);
        var input = model.Graph.RuntimeInputs.First();
        if (input.Shape is null || !input.HasStaticShape) throw new ArgumentException($"input '{input.Name}' needs a static shape to benchmark");
        int[] shape = [.. input.Shape.Select(d => checked((int)d.Value!.Value))];
        var random = new Random(0);
        var x = OnnxTensor.FromArray(Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), shape);
        var output = model.Graph.Outputs[0];
        int[] outShape = [.. ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads }).Run(new Dictionary<string, OnnxTensor> { [input.Name] = x })[output.Name].Dims];
        OnnxTensor labels = mse
            ? OnnxTensor.Zeros(DataType.Float, outShape)
            : OnnxTensor.FromArray(Enumerable.Range(0, outShape[0]).Select(_ => (long)random.Next(outShape[1])).ToArray(), outShape[0]);

        var lossOptions = new LossOptions { Kind = mse ? LossKind.MeanSquaredError : LossKind.CrossEntropy, LabelName = label };
        var options = new TrainerOptions { Loss = lossOptions, Threads = threads, BatchSize = outShape[0], Optimizer = new OptimizerOptions { Kind = OptimizerKind.Sgd, LearningRate = 1e-4 } };
        var trainer = new Trainer(model, options);
        var lossModel = Losses.Attach(model, lossOptions);
        var forward = ExecutionPlan.Compile(lossModel, new ExecutionOptions { Threads = threads, TrainingMode = true });
        var backward = ExecutionPlan.Compile(trainer.GradientModel.Model, new ExecutionOptions { Threads = threads, TrainingMode = true });
        var feeds = new Dictionary<string, OnnxTensor> { [input.Name] = x, [label] = labels };

        // The forward and gradient plans run as the trainer runs its step in a loop: each run's outputs go back to the
        // plan's buffer pool once read (here at once), so a run reuses memory instead of allocating fresh gradient
        // arrays (PyTorch's allocator likewise reuses freed blocks).
        void Forward() => forward.Recycle(forward.RunReusingResult(feeds));
        void Backward() => backward.Recycle(backward.RunReusingResult(feeds));
        // Warm every phase up before timing any, so no phase is timed while the JIT still runs unoptimized code.
        for (int i = 0; i < warmup; i++) { Forward(); Backward(); trainer.TrainStep(x, labels); }
        // BACKPROP_ONNX_PROFILE's table then counts only timed runs, not the JIT compilation of the warm-up.
        if (PlanProfiler.Enabled) PlanProfiler.Reset();
        double forwardMs = Median(0, steps, Forward);
        double backwardMs = Median(0, steps, Backward);
        double stepMs = Median(0, steps, () => trainer.TrainStep(x, labels));
        long before = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < steps; i++) trainer.TrainStep(x, labels);
        long allocated = (GC.GetTotalAllocatedBytes(precise: true) - before) / steps;

        Console.WriteLine($"model {Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(path)))}/{Path.GetFileName(path)}, input {input.Name} [{string.Join(',', shape)}], threads {threads}, {steps} timed steps after {warmup} warm-up");
        if (ort)
        {
            using var session = OrtReferenceSession.Load(Export.ModelExporter.ToBytes(model), threads: Math.Min(2, threads));
            var ortFeeds = new Dictionary<string, OnnxTensor> { [input.Name] = x };
            double ortMs = Median(warmup, steps, () => session.Run(ortFeeds));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ort: forward_ms={ortMs:0.000}"));
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bench: forward_ms={forwardMs:0.000} forward_backward_ms={backwardMs:0.000} step_ms={stepMs:0.000} allocated_bytes_per_step={allocated}"));
        return 0;
    }

    private static double Median(int warmup, int steps, Action action)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            long start = Stopwatch.GetTimestamp();
            action();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return steps % 2 == 1 ? times[steps / 2] : (times[steps / 2 - 1] + times[steps / 2]) / 2;
    }
}
