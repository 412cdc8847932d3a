using System.Diagnostics;
using System.IO.Enumeration;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.Export;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Training;

/// <summary>Everything the trainer needs besides the model and the data.</summary>
public sealed class TrainerOptions
{
    /// <summary>The loss attached to the model's output. Default: cross-entropy on the first output, labels input <c>labels</c>.</summary>
    public LossOptions Loss { get; init; } = new();

    /// <summary>The optimizer. Default AdamW, learning rate 1e-3 per step.</summary>
    public OptimizerOptions Optimizer { get; init; } = new();

    /// <summary>The learning-rate schedule. Default constant.</summary>
    public LearningRateSchedule Schedule { get; init; } = new();

    /// <summary>Clip gradients so that their global L2 norm is at most this (PyTorch <c>clip_grad_norm_</c>); null for no clipping.</summary>
    public double? ClipGradientNorm { get; init; }

    /// <summary>Glob patterns (<c>*</c>, <c>?</c>) of initializer names to freeze (not train).</summary>
    public IList<string> Freeze { get; } = [];

    /// <summary>Examples per mini-batch. Default 64; the last batch of an epoch may be smaller.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Seed of shuffling and Dropout. Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>Threads for the executor's large kernels. Default: all cores.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>The model input fed with the data's inputs. Default: the first graph input that is not an initializer.</summary>
    public string? InputName { get; init; }
}

/// <summary>Progress of a running epoch, reported after every batch.</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="Batch">Batches done in this epoch.</param>
/// <param name="Batches">Batches in the epoch.</param>
/// <param name="Loss">Mean loss over the batches done so far.</param>
public readonly record struct TrainingProgress(int Epoch, int Batch, int Batches, double Loss);

/// <summary>One epoch's figures.</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="TrainLoss">Mean training loss over the epoch's batches (weighted by batch size).</param>
/// <param name="TrainAccuracy">Fraction of training examples classified correctly during the epoch (NaN for non-classification losses).</param>
/// <param name="TestLoss">Mean loss on the held-out data (NaN when none).</param>
/// <param name="TestAccuracy">Accuracy on the held-out data (NaN when none).</param>
/// <param name="ExamplesPerSecond">Training throughput.</param>
/// <param name="Seconds">Wall time of the epoch's training steps.</param>
public sealed record EpochMetrics(int Epoch, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy, double ExamplesPerSecond, double Seconds);

/// <summary>Loss and accuracy on a data set.</summary>
/// <param name="Loss">Mean loss.</param>
/// <param name="Accuracy">Fraction classified correctly (NaN for non-classification losses).</param>
/// <param name="Count">Examples evaluated.</param>
public sealed record Evaluation(double Loss, double Accuracy, int Count);

/// <summary>Training stopped because the loss or a gradient became NaN or infinite.</summary>
public sealed class TrainingDivergedException : BackpropOnnxException
{
    /// <summary>Creates the exception.</summary>
    public TrainingDivergedException(long step, string node, string detail)
        : base($"training diverged at step {step}: {detail}; first non-finite value produced by {node}")
    {
        Step = step;
        Node = node;
    }

    /// <summary>The 1-based step at which the non-finite value appeared.</summary>
    public long Step { get; }

    /// <summary>The first node (op type and name) whose output held a NaN or infinity.</summary>
    public string Node { get; }
}

/// <summary>
/// Trains an imported ONNX model: attaches a loss as graph nodes, builds one forward-and-backward plan with respect to
/// the trainable initializers, and runs mini-batch optimization with a shuffling seed, a schedule, clipping, frozen
/// parameters, train/eval modes (Dropout active and BatchNormalization on batch statistics only while training, its
/// running statistics updated with the model's momentum), checkpoints, and export of the trained model.
/// </summary>
public sealed class Trainer
{
    private readonly OnnxModel _model;
    private readonly TrainerOptions _options;
    private readonly Optimizer _optimizer;
    private readonly ExecutionPlan _stepPlan;
    private readonly ExecutionPlan _evalPlan;
    private readonly ExecutionPlan _evalLossPlan;
    private readonly Dictionary<string, OnnxTensor> _parameters = new(StringComparer.Ordinal);
    private readonly Dictionary<string, OnnxTensor> _buffers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _bufferUpdates = new(StringComparer.Ordinal);
    private readonly GradientModel _gradients;
    private readonly string _inputName;
    private readonly string _outputName;
    private readonly bool _classification;
    private long _scheduleTotalSteps;

    /// <summary>Prepares training of <paramref name="model"/> (not modified; <see cref="ExportModel"/> returns the trained copy).</summary>
    /// <exception cref="ArgumentException">Options name an input/output that does not exist, or nothing is left to train.</exception>
    /// <exception cref="DifferentiationException">The model with its loss cannot be differentiated.</exception>
    /// <exception cref="UnsupportedOperatorException">The model uses an op the engine cannot run.</exception>
    public Trainer(OnnxModel model, TrainerOptions options)
    {
        _model = model;
        _options = options;
        if (options.BatchSize <= 0) throw new ArgumentException("Batch size must be positive.");
        if (!(options.Optimizer.LearningRate > 0) || !double.IsFinite(options.Optimizer.LearningRate)) throw new ArgumentException($"The learning rate must be positive and finite (got {options.Optimizer.LearningRate}).");
        if (options.ClipGradientNorm is { } clip && !(clip > 0)) throw new ArgumentException($"The gradient-clipping norm must be positive (got {clip}).");
        if (!(options.Optimizer.WeightDecay >= 0)) throw new ArgumentException($"Weight decay must be non-negative (got {options.Optimizer.WeightDecay}).");
        if (options.Threads <= 0) throw new ArgumentException($"Threads must be positive (got {options.Threads}).");
        _inputName = options.InputName ?? model.Graph.RuntimeInputs.FirstOrDefault()?.Name ?? throw new ArgumentException("The model has no runtime input.");
        if (model.Graph.FindInput(_inputName) is null) throw new ArgumentException($"'{_inputName}' is not an input of the model.");
        _outputName = options.Loss.Output ?? model.Graph.Outputs.FirstOrDefault()?.Name ?? throw new ArgumentException("The model has no outputs.");
        _classification = options.Loss.Kind is LossKind.CrossEntropy or LossKind.NegativeLogLikelihood;

        var lossModel = Losses.Attach(model, options.Loss);
        var training = ModelCopy.Shallow(lossModel);
        foreach (var (buffer, output) in TrainingGraph.UseBatchStatistics(training)) _bufferUpdates[buffer] = output;

        var candidates = model.Graph.Initializers.Where(kv => kv.Value.ElementType is DataType.Float or DataType.Double)
            .Select(kv => kv.Key).Where(n => !options.Freeze.Any(p => FileSystemName.MatchesSimpleExpression(p, n, ignoreCase: false))).ToList();
        var analysisOptions = new GradientOptions { Outputs = { options.Loss.LossName } };
        foreach (var c in candidates) analysisOptions.Wrt.Add(c);
        var report = ReverseMode.Analyze(training, analysisOptions);
        // A parameter cut off by a missing rule is an error, not a parameter to skip.
        if (!report.IsDifferentiable) throw new DifferentiationException(report);
        var unreachable = report.Issues.Where(i => i.Kind == DifferentiabilityIssueKind.Unreachable).Select(i => i.Value).ToHashSet(StringComparer.Ordinal);
        var trainable = candidates.Where(c => !unreachable.Contains(c)).ToList();
        if (trainable.Count == 0) throw new ArgumentException("No trainable parameter is left (all frozen, or none reaches the loss).");
        var gradOptions = new GradientOptions { Outputs = { options.Loss.LossName } };
        foreach (var t in trainable) gradOptions.Wrt.Add(t);
        _gradients = ReverseMode.Differentiate(training, gradOptions);
        TrainableParameters = trainable;
        foreach (var t in trainable) _parameters[t] = model.Graph.Initializers[t].Clone();
        foreach (var b in _bufferUpdates.Keys) _buffers[b] = model.Graph.Initializers[b].Clone();

        _stepPlan = ExecutionPlan.Compile(_gradients.Model, new ExecutionOptions { Threads = options.Threads, TrainingMode = true, Seed = options.Seed });
        _evalPlan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = options.Threads });
        _evalLossPlan = ExecutionPlan.Compile(lossModel, new ExecutionOptions { Threads = options.Threads });
        _optimizer = new Optimizer(options.Optimizer);
    }

    /// <summary>The initializers being trained, in model order.</summary>
    public IReadOnlyList<string> TrainableParameters { get; }

    /// <summary>The forward-and-backward model the trainer runs (loss attached, gradients as outputs).</summary>
    public GradientModel GradientModel => _gradients;

    /// <summary>Optimizer steps taken so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>Epochs completed so far.</summary>
    public int EpochsCompleted { get; private set; }

    /// <summary>Batches of the current (unfinished) epoch already trained on; 0 at an epoch boundary.</summary>
    public int BatchesIntoEpoch { get; private set; }

    /// <summary>The current value of a trained parameter or updated buffer.</summary>
    public OnnxTensor Parameter(string name) => _parameters.TryGetValue(name, out var p) ? p : _buffers[name];

    /// <summary>One optimizer step on one mini-batch: forward, backward, clipping, update. Returns the batch's loss.</summary>
    /// <param name="inputs">The batch's inputs (e.g. float [B,1,28,28]).</param>
    /// <param name="labels">The batch's labels or targets.</param>
    /// <exception cref="TrainingDivergedException">The loss or a gradient is NaN or infinite (the parameters are left unchanged).</exception>
    public double TrainStep(OnnxTensor inputs, OnnxTensor labels) => TrainStep(inputs, labels, out _);

    private double TrainStep(OnnxTensor inputs, OnnxTensor labels, out int correct)
    {
        var feeds = Feeds(inputs, labels);
        _stepPlan.Options.Seed = unchecked(_options.Seed * 1_000_003 + (int)StepCount);
        // The outputs dictionary is the plan's reused one: valid until the next step, which is all this method needs.
        var outputs = _stepPlan.RunReusingResult(feeds);
        var trainable = TrainableParameters;
        if (!_classification && !labels.Shape.SequenceEqual(outputs[_outputName].Shape))
            throw new InvalidInputException($"targets have shape [{string.Join(',', labels.Dims)}], but output '{_outputName}' has shape [{string.Join(',', outputs[_outputName].Dims)}]; a {_options.Loss.Kind} target must match the output exactly");
        double loss = outputs[_options.Loss.LossName].GetDouble(0);
        long step = StepCount + 1;
        string? bad = !double.IsFinite(loss) ? "the loss is " + loss : null;
        for (int i = 0; i < trainable.Count && bad is null; i++)
            if (!AllFinite(outputs[_gradients.Gradients[trainable[i]]])) bad = $"the gradient of '{trainable[i]}' is not finite";
        if (bad is not null) throw new TrainingDivergedException(step, FirstNonFiniteNode(feeds), bad);

        double scale = 1;
        if (_options.ClipGradientNorm is { } maxNorm)
        {
            double sq = 0;
            for (int k = 0; k < trainable.Count; k++)
            {
                sq += SumOfSquares(outputs[_gradients.Gradients[trainable[k]]]);
            }
            double norm = Math.Sqrt(sq);
            if (norm > maxNorm) scale = maxNorm / (norm + 1e-6);
        }
        double lr = _options.Optimizer.LearningRate * _options.Schedule.Factor(StepCount, _options.Schedule.TotalSteps > 0 ? _options.Schedule.TotalSteps : _scheduleTotalSteps);
        for (int k = 0; k < trainable.Count; k++)
        {
            string p = trainable[k];
            var g = outputs[_gradients.Gradients[p]];
            // A copy: two gradient outputs may be one tensor (Add(a, b) hands dY to both), so never scale in place.
            if (scale != 1) g = Scaled(p, g, scale);
            _optimizer.Update(p, _parameters[p], g, lr, step);
        }
        // Running statistics are copied into the trainer's own tensors (like parameters, updated in place) when the shape holds.
        foreach (var (buffer, output) in _bufferUpdates)
        {
            var updated = outputs[output];
            if (_buffers[buffer] is { } own && own.ElementType == updated.ElementType && own.Dims.AsSpan().SequenceEqual(updated.Dims))
                Array.Copy(updated.Buffer, own.Buffer, updated.ElementCount);
            else _buffers[buffer] = updated.Clone();
        }
        StepCount = step;
        correct = _classification ? CountCorrect(outputs[_outputName], labels) : 0;
        // Everything the step produced has been consumed (running statistics were copied): the next step reuses its memory.
        _stepPlan.Recycle(outputs);
        return loss;
    }

    /// <summary>Trains one epoch over <paramref name="data"/> in a seeded random order (continuing a resumed epoch where it stopped).</summary>
    /// <exception cref="OperationCanceledException">Cancelled between batches (the state stays consistent: resume from a checkpoint).</exception>
    public EpochMetrics TrainEpoch(IDataSource data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        int epoch = EpochsCompleted;
        var order = Permutation(data.Count, epoch);
        int batches = (data.Count + _options.BatchSize - 1) / _options.BatchSize;
        double lossSum = 0;
        long seen = 0, correct = 0;
        var clock = Stopwatch.StartNew();
        for (int b = BatchesIntoEpoch; b < batches; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var indices = order.AsSpan(b * _options.BatchSize, Math.Min(_options.BatchSize, data.Count - b * _options.BatchSize));
            var (x, y) = data.GetBatch(indices);
            double loss = TrainStep(x, y, out int ok);
            lossSum += loss * indices.Length;
            seen += indices.Length;
            correct += ok;
            BatchesIntoEpoch = b + 1;
            progress?.Report(new TrainingProgress(epoch, b + 1, batches, lossSum / seen));
        }
        clock.Stop();
        EpochsCompleted++;
        BatchesIntoEpoch = 0;
        return new EpochMetrics(epoch, seen == 0 ? double.NaN : lossSum / seen, _classification && seen > 0 ? correct / (double)seen : double.NaN,
            double.NaN, double.NaN, seen / Math.Max(clock.Elapsed.TotalSeconds, 1e-9), clock.Elapsed.TotalSeconds);
    }

    /// <summary>Trains for <paramref name="epochs"/> more epochs, evaluating on <paramref name="test"/> after each.</summary>
    public IReadOnlyList<EpochMetrics> Fit(IDataSource train, IDataSource? test, int epochs, IProgress<TrainingProgress>? progress = null,
        Action<EpochMetrics>? epochDone = null, CancellationToken cancellationToken = default)
    {
        // The schedule's horizon, unless the options fix one: every step from the first to the end of this Fit.
        if (_options.Schedule.TotalSteps == 0)
            _scheduleTotalSteps = StepCount + (long)epochs * ((train.Count + _options.BatchSize - 1) / _options.BatchSize) - (long)BatchesIntoEpoch;
        var history = new List<EpochMetrics>();
        for (int e = 0; e < epochs; e++)
        {
            var m = TrainEpoch(train, progress, cancellationToken);
            if (test is not null)
            {
                var ev = Evaluate(test, cancellationToken: cancellationToken);
                m = m with { TestLoss = ev.Loss, TestAccuracy = ev.Accuracy };
            }
            history.Add(m);
            epochDone?.Invoke(m);
        }
        return history;
    }

    /// <summary>Loss and accuracy in inference mode (Dropout off, BatchNormalization on running statistics).</summary>
    public Evaluation Evaluate(IDataSource data, int batchSize = 500, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (data.Count == 0) return new Evaluation(double.NaN, double.NaN, 0);
        double lossSum = 0;
        long correct = 0;
        var indices = new int[batchSize];
        for (int start = 0; start < data.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = Math.Min(batchSize, data.Count - start);
            for (int i = 0; i < n; i++) indices[i] = start + i;
            var (x, y) = data.GetBatch(indices.AsSpan(0, n));
            var outputs = _evalLossPlan.Run(Feeds(x, y));
            lossSum += outputs[_options.Loss.LossName].GetDouble(0) * n;
            if (_classification) correct += CountCorrect(outputs[_outputName], y);
            _evalLossPlan.Recycle(outputs);
        }
        return new Evaluation(lossSum / Math.Max(1, data.Count), _classification ? correct / (double)Math.Max(1, data.Count) : double.NaN, data.Count);
    }

    /// <summary>Runs the model (inference mode) on a batch with the current parameters; returns its outputs.</summary>
    public IReadOnlyDictionary<string, OnnxTensor> Predict(OnnxTensor inputs)
    {
        var feeds = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal) { [_inputName] = inputs };
        foreach (var (k, v) in _parameters) feeds[k] = v;
        foreach (var (k, v) in _buffers) feeds[k] = v;
        return _evalPlan.Run(feeds);
    }

    /// <summary>The original model with the trained parameters and updated running statistics written back; nothing else changed.</summary>
    public OnnxModel ExportModel()
    {
        var copy = ModelCopy.Shallow(_model);
        foreach (var (k, v) in _parameters) copy.Graph.Initializers[k] = v.Clone();
        foreach (var (k, v) in _buffers) copy.Graph.Initializers[k] = v.Clone();
        return copy;
    }

    /// <summary>Writes <see cref="ExportModel"/> to <paramref name="path"/> atomically.</summary>
    public void Export(string path) => ModelExporter.Save(ExportModel(), path);

    /// <summary>
    /// Saves parameters, running statistics, optimizer state, step, epoch and position in the epoch (the shuffling and
    /// Dropout randomness are functions of the seed and these counters) to <paramref name="path"/>, atomically: a crash
    /// mid-write leaves the previous checkpoint intact.
    /// </summary>
    public void SaveCheckpoint(string path)
    {
        var ckpt = new OnnxModel { IrVersion = 8, ProducerName = "backprop-onnx checkpoint", ProducerVersion = "1" };
        ckpt.OpsetImports.Add(new OpsetImport("", 17));
        foreach (var (k, v) in _parameters) ckpt.Graph.Initializers.Add("param/" + k, v);
        foreach (var (k, v) in _buffers) ckpt.Graph.Initializers.Add("buffer/" + k, v);
        foreach (var (k, v) in _optimizer.State) ckpt.Graph.Initializers.Add("optimizer/" + k, v);
        var meta = ckpt.MetadataProps;
        meta.Add(new("step", StepCount.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        meta.Add(new("epoch", EpochsCompleted.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        meta.Add(new("batch_in_epoch", BatchesIntoEpoch.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        meta.Add(new("seed", _options.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        meta.Add(new("optimizer", _options.Optimizer.Kind.ToString()));
        meta.Add(new("batch_size", _options.BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        ModelExporter.Save(ckpt, path);
    }

    /// <summary>Restores a checkpoint written by <see cref="SaveCheckpoint"/> for the same model and options.</summary>
    /// <exception cref="ModelFormatException">The file is not a readable checkpoint.</exception>
    /// <exception cref="ArgumentException">The checkpoint does not fit this model or these options.</exception>
    public void LoadCheckpoint(string path)
    {
        var ckpt = Import.ModelImporter.Load(path);
        var meta = ckpt.MetadataProps.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        if (ckpt.ProducerName != "backprop-onnx checkpoint" || !meta.ContainsKey("step"))
            throw new ModelFormatException(path, "", "not a backprop-onnx checkpoint");
        string Get(string key) => meta.TryGetValue(key, out var v) ? v : throw new ModelFormatException(path, "metadata", $"'{key}' is missing");
        if (Get("optimizer") != _options.Optimizer.Kind.ToString() || Get("seed") != _options.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture)
            || Get("batch_size") != _options.BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture))
            throw new ArgumentException($"{path}: checkpoint was written with optimizer {Get("optimizer")}, seed {Get("seed")}, batch size {Get("batch_size")}; resume with the same settings");
        foreach (var p in TrainableParameters)
        {
            if (!ckpt.Graph.Initializers.TryGetValue("param/" + p, out var t) || t.ElementType != _parameters[p].ElementType || !t.Shape.SequenceEqual(_parameters[p].Shape))
                throw new ArgumentException($"{path}: parameter '{p}' is missing or has another type or shape");
            _parameters[p] = t.Clone();
        }
        foreach (var b in _buffers.Keys.ToList())
            if (ckpt.Graph.Initializers.TryGetValue("buffer/" + b, out var t)) _buffers[b] = t.Clone();
        _optimizer.LoadState(ckpt.Graph.Initializers.Where(kv => kv.Key.StartsWith("optimizer/", StringComparison.Ordinal))
            .Select(kv => new KeyValuePair<string, OnnxTensor>(kv.Key["optimizer/".Length..], kv.Value)));
        StepCount = long.Parse(Get("step"), System.Globalization.CultureInfo.InvariantCulture);
        EpochsCompleted = int.Parse(Get("epoch"), System.Globalization.CultureInfo.InvariantCulture);
        BatchesIntoEpoch = int.Parse(Get("batch_in_epoch"), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The feeds of one run, in one dictionary reused from step to step (each run reads it only while it runs).</summary>
    private Dictionary<string, OnnxTensor> Feeds(OnnxTensor inputs, OnnxTensor labels)
    {
        var feeds = _feeds;
        feeds.Clear();
        feeds[_inputName] = inputs;
        feeds[_options.Loss.LabelName] = labels;
        foreach (var (k, v) in _parameters) feeds[k] = v;
        foreach (var (k, v) in _buffers) feeds[k] = v;
        return feeds;
    }

    private readonly Dictionary<string, OnnxTensor> _feeds = new(StringComparer.Ordinal);

    /// <summary>The shuffled example order of an epoch: a function of the seed and the epoch only (so resuming is exact).</summary>
    private int[] Permutation(int count, int epoch)
    {
        var order = Enumerable.Range(0, count).ToArray();
        new Random(unchecked(_options.Seed * 7919 + epoch)).Shuffle(order);
        return order;
    }

    private string FirstNonFiniteNode(Dictionary<string, OnnxTensor> feeds)
    {
        string? first = null;
        try
        {
            _stepPlan.Run(feeds, null, out _, (node, ctx) =>
            {
                if (first is not null) return;
                for (int i = 0; i < ctx.OutputCount; i++)
                {
                    // Outputs nobody reads are not bound; only check what the node produced.
                    if (ctx.IsOutputUsed(i) && ctx.OutputValue(i) is { } t && DataTypes.IsFloatingPoint(t.ElementType) && !AllFinite(t))
                    {
                        first = $"{node.OpType} node '{node.Name}' (output '{node.Outputs[i]}')";
                        return;
                    }
                }
            });
        }
        catch (BackpropOnnxException)
        {
        }
        return first ?? "an input or parameter";
    }

    private static bool AllFinite(OnnxTensor t)
    {
        if (t.ElementType == DataType.Float) return FiniteCheck.All<float>(t.AsSpan<float>());
        if (t.ElementType == DataType.Double) return FiniteCheck.All<double>(t.AsSpan<double>());
        return true;
    }

    /// <summary>Σ g² accumulated in double (for the global gradient norm).</summary>
    private static double SumOfSquares(OnnxTensor g)
    {
        double sq = 0;
        if (g.ElementType == DataType.Float) foreach (float v in g.AsSpan<float>()) sq += (double)v * v;
        else foreach (double v in g.AsSpan<double>()) sq += v * v;
        return sq;
    }

    /// <summary>
    /// scale · <paramref name="g"/> in the trainer's own tensor for parameter <paramref name="name"/> (made on first use,
    /// then overwritten every clipped step), so clipping allocates nothing in steady state.
    /// </summary>
    private OnnxTensor Scaled(string name, OnnxTensor g, double scale)
    {
        if (!_scaledGradients.TryGetValue(name, out var c) || c.ElementType != g.ElementType || !c.Shape.SequenceEqual(g.Shape))
            _scaledGradients[name] = c = OnnxTensor.Zeros(g.ElementType, g.Shape);
        if (c.ElementType == DataType.Float) System.Numerics.Tensors.TensorPrimitives.Multiply(g.AsSpan<float>(), (float)scale, c.AsSpan<float>());
        else System.Numerics.Tensors.TensorPrimitives.Multiply(g.AsSpan<double>(), scale, c.AsSpan<double>());
        return c;
    }

    private readonly Dictionary<string, OnnxTensor> _scaledGradients = new(StringComparer.Ordinal);

    /// <summary>Rows of <paramref name="logits"/> [N, C] whose first maximal class equals the int64 label [N]; 0 for other ranks.</summary>
    internal static int CountCorrect(OnnxTensor logits, OnnxTensor labels)
    {
        if (logits.Rank != 2) return 0;
        int n = logits.Dims[0], c = logits.Dims[1], correct = 0;
        for (int i = 0; i < n; i++)
        {
            int best = 0;
            double bestValue = double.NegativeInfinity;
            for (int j = 0; j < c; j++)
            {
                double v = logits.GetDouble((long)i * c + j);
                if (v > bestValue) { bestValue = v; best = j; }
            }
            if (best == (long)labels.GetDouble(i)) correct++;
        }
        return correct;
    }
}
