using System.CommandLine;
using System.Globalization;
using Backprop.Onnx.Import;
using Backprop.Onnx.Training;
using Spectre.Console;

namespace Backprop.Onnx.Cli.Commands;

/// <summary>
/// <c>backprop-onnx train MODEL --data DIR ... --out TRAINED.onnx</c>: trains a classifier on Fashion-MNIST with a live
/// progress bar and a per-epoch table, writes the trained model, a PNG of the training curves beside it, and prints
/// the exported file's test accuracy as ONNX Runtime measures it.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "The ONNX model to train (input [N,1,28,28], logits [N,10])." };
        var data = new Option<string>("--data") { Description = "Fashion-MNIST folder (IDX files).", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
        var epochs = new Option<int>("--epochs") { Description = "Epochs.", DefaultValueFactory = _ => 5 };
        var batch = new Option<int>("--batch-size") { Description = "Examples per step.", DefaultValueFactory = _ => 64 };
        var optimizer = new Option<string>("--optimizer") { Description = "sgd, momentum, nesterov, adam, adamw, adagrad.", DefaultValueFactory = _ => "adamw" };
        optimizer.AcceptOnlyFromAmong("sgd", "momentum", "nesterov", "adam", "adamw", "adagrad");
        var lr = new Option<double>("--lr") { Description = "Learning rate per step (peak of the schedule).", DefaultValueFactory = _ => 4e-3 };
        var wd = new Option<double>("--weight-decay") { Description = "Weight decay.", DefaultValueFactory = _ => 1e-4 };
        var schedule = new Option<string>("--schedule") { Description = "constant, step or cosine.", DefaultValueFactory = _ => "cosine" };
        schedule.AcceptOnlyFromAmong("constant", "step", "cosine");
        var warmup = new Option<int>("--warmup") { Description = "Linear warm-up steps.", DefaultValueFactory = _ => 100 };
        var clip = new Option<double?>("--clip-norm") { Description = "Clip gradients to this global L2 norm." };
        var freeze = new Option<string[]>("--freeze") { Description = "Glob of initializer names not to train (repeatable).", Arity = ArgumentArity.ZeroOrMore };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Checkpoint file, written after every epoch." };
        var resume = new Option<bool>("--resume") { Description = "Resume from --checkpoint if it exists." };
        var seed = new Option<int>("--seed") { Description = "Seed of shuffling and dropout.", DefaultValueFactory = _ => 0 };
        var limit = new Option<int?>("--limit") { Description = "Train on the first N training images only." };
        var threads = new Option<int>("--threads") { Description = "Executor threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var output = new Option<string>("--out") { Description = "Trained model file.", Required = true };
        var cmd = new Command("train", "Train a model on Fashion-MNIST and export it.")
            { model, data, epochs, batch, optimizer, lr, wd, schedule, warmup, clip, freeze, checkpoint, resume, seed, limit, threads, output };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            var options = new TrainerOptions
            {
                BatchSize = r.GetValue(batch),
                Seed = r.GetValue(seed),
                Threads = r.GetValue(threads),
                ClipGradientNorm = r.GetValue(clip),
                Optimizer = new OptimizerOptions
                {
                    Kind = Enum.Parse<OptimizerKind>(r.GetValue(optimizer)!, ignoreCase: true),
                    LearningRate = r.GetValue(lr),
                    WeightDecay = r.GetValue(wd),
                },
                Schedule = new LearningRateSchedule { Kind = Enum.Parse<ScheduleKind>(r.GetValue(schedule)!, ignoreCase: true), WarmupSteps = r.GetValue(warmup) },
            };
            foreach (var f in r.GetValue(freeze) ?? []) options.Freeze.Add(f);
            return Run(r.GetValue(model)!, r.GetValue(data)!, r.GetValue(epochs), options, r.GetValue(checkpoint), r.GetValue(resume), r.GetValue(limit), r.GetValue(output)!);
        }));
        return cmd;
    }

    private static int Run(string modelPath, string dataDir, int epochs, TrainerOptions options, string? checkpoint, bool resume, int? limit, string outPath)
    {
        if (epochs <= 0) throw new ArgumentException("--epochs must be positive");
        if (limit is <= 0) throw new ArgumentException("--limit must be positive");
        if (options.Schedule.WarmupSteps < 0) throw new ArgumentException("--warmup must not be negative");
        if (resume && checkpoint is null) throw new ArgumentException("--resume needs --checkpoint PATH");
        // Check where the results go before spending minutes on training.
        string full = Path.GetFullPath(outPath);
        if (Directory.Exists(full)) throw new ArgumentException($"--out {outPath} is a folder; give a file name such as {Path.Combine(outPath, "trained.onnx")}");
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        if (checkpoint is not null)
        {
            if (Directory.Exists(checkpoint)) throw new ArgumentException($"--checkpoint {checkpoint} is a folder; give a file name");
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(checkpoint))!);
        }
        var console = AnsiConsole.Console;
        var train = FashionMnist.Load(dataDir, train: true, limit);
        var test = FashionMnist.Load(dataDir, train: false);
        var model = ModelImporter.Load(modelPath);
        // The cosine horizon is the whole run, also when it resumes from a checkpoint.
        options.Schedule.TotalSteps = (long)epochs * ((train.Count + options.BatchSize - 1) / options.BatchSize);
        var trainer = new Trainer(model, options);
        console.MarkupLineInterpolated($"training [bold]{Path.GetFileName(modelPath)}[/]: {trainer.TrainableParameters.Count} parameter tensors, {train.Count} training / {test.Count} test images, {options.Optimizer.Kind} lr {options.Optimizer.LearningRate}, batch {options.BatchSize}");
        if (resume && checkpoint is not null && File.Exists(checkpoint))
        {
            trainer.LoadCheckpoint(checkpoint);
            console.WriteLine($"resumed from {checkpoint} at epoch {trainer.EpochsCompleted}, step {trainer.StepCount}");
        }

        var table = new Table().AddColumns("epoch", "loss", "train acc", "test loss", "test acc", "examples/s", "seconds");
        var history = new List<EpochMetrics>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (trainer.EpochsCompleted < epochs)
        {
            EpochMetrics m = null!;
            console.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask($"epoch {trainer.EpochsCompleted + 1}/{epochs}", maxValue: 1);
                    var progress = new SynchronousProgress<TrainingProgress>(p =>
                    {
                        task.Value = p.Batch / (double)p.Batches;
                        task.Description = $"epoch {p.Epoch + 1}/{epochs} loss {p.Loss:0.0000}";
                    });
                    m = trainer.TrainEpoch(train, progress);
                    task.Value = 1;
                });
            var ev = trainer.Evaluate(test);
            m = m with { TestLoss = ev.Loss, TestAccuracy = ev.Accuracy };
            history.Add(m);
            if (checkpoint is not null) trainer.SaveCheckpoint(checkpoint);
            table.AddRow((m.Epoch + 1).ToString(CultureInfo.InvariantCulture), F(m.TrainLoss), F(m.TrainAccuracy), F(m.TestLoss), F(m.TestAccuracy),
                m.ExamplesPerSecond.ToString("0", CultureInfo.InvariantCulture), m.Seconds.ToString("0.0", CultureInfo.InvariantCulture));
            console.MarkupLineInterpolated($"epoch {m.Epoch + 1}: loss {m.TrainLoss:0.0000}, train accuracy {m.TrainAccuracy:0.0000}, test accuracy {m.TestAccuracy:0.0000}, {m.ExamplesPerSecond:0} examples/s");
        }
        console.Write(table);

        trainer.Export(full);
        string png = Path.ChangeExtension(full, ".curves.png");
        if (history.Count > 0) TrainingCurves.Save(history, png);
        console.WriteLine(history.Count > 0
            ? $"exported {full}; curves {png}; wall time {clock.Elapsed.TotalSeconds:0} s"
            : $"exported {full} (the checkpoint had already reached {epochs} epochs: nothing trained, no curves)");
        double ort = OrtEvaluation.Accuracy(full, test);
        console.WriteLine($"accuracy {ort:0.0000} (ONNX Runtime on the exported file, {test.Count} test images)");
        return 0;
    }

    private static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("0.0000", CultureInfo.InvariantCulture);

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

/// <summary>The training curves as a PNG (ScottPlot): loss and accuracy per epoch.</summary>
internal static class TrainingCurves
{
    public static void Save(IReadOnlyList<EpochMetrics> history, string path)
    {
        var plot = new ScottPlot.Plot();
        double[] x = [.. history.Select(h => (double)h.Epoch + 1)];
        var trainLoss = plot.Add.Scatter(x, history.Select(h => h.TrainLoss).ToArray());
        trainLoss.LegendText = "train loss";
        var testLoss = plot.Add.Scatter(x, history.Select(h => h.TestLoss).ToArray());
        testLoss.LegendText = "test loss";
        var trainAcc = plot.Add.Scatter(x, history.Select(h => h.TrainAccuracy).ToArray());
        trainAcc.LegendText = "train accuracy";
        var testAcc = plot.Add.Scatter(x, history.Select(h => h.TestAccuracy).ToArray());
        testAcc.LegendText = "test accuracy";
        plot.Title("Training curves");
        plot.XLabel("epoch");
        plot.ShowLegend();
        plot.SavePng(path, 800, 500);
    }
}
