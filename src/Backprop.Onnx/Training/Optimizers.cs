using Backprop.Onnx.IR;

namespace Backprop.Onnx.Training;

/// <summary>The optimizers; each update is the math of an <c>ai.onnx.preview.training</c> operator (<see cref="OptimizerMath"/>).</summary>
public enum OptimizerKind
{
    /// <summary>Plain stochastic gradient descent: X ← X − lr·(G + wd·X) (ONNX Momentum with α = 0, β = 1).</summary>
    Sgd,
    /// <summary>Heavy-ball momentum: V ← μV + G; X ← X − lr·V (ONNX Momentum "standard", α = μ, β = 1; PyTorch SGD with momentum).</summary>
    Momentum,
    /// <summary>Nesterov momentum: V ← μV + G; X ← X − lr·(G + μV) (ONNX Momentum "nesterov"; PyTorch SGD nesterov=True).</summary>
    Nesterov,
    /// <summary>Adam with L2 weight decay folded into the gradient (ONNX Adam, norm_coefficient = wd).</summary>
    Adam,
    /// <summary>Adam with decoupled weight decay: X ← (1 − lr·wd)·(X − step) (ONNX Adam, norm_coefficient_post = lr·wd; Loshchilov &amp; Hutter 2019).</summary>
    AdamW,
    /// <summary>Adagrad (ONNX Adagrad, decay_factor 0, norm_coefficient = wd).</summary>
    Adagrad,
}

/// <summary>Optimizer hyper-parameters. The learning rate is per step (multiplied by the schedule's factor).</summary>
public sealed class OptimizerOptions
{
    /// <summary>Which update rule. Default AdamW.</summary>
    public OptimizerKind Kind { get; init; } = OptimizerKind.AdamW;

    /// <summary>Base learning rate per step. Default 1e-3.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Weight decay coefficient (L2 for SGD/Momentum/Nesterov/Adam/Adagrad, decoupled for AdamW). Default 0.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Momentum μ for Momentum and Nesterov. Default 0.9.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Adam β₁ (ONNX alpha). Default 0.9.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Adam β₂ (ONNX beta). Default 0.999.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Adam/Adagrad ε. Default 1e-8 for Adam/AdamW (PyTorch's default), 1e-10 for Adagrad.</summary>
    public double? Epsilon { get; init; }
}

/// <summary>
/// Applies one optimizer's update to named parameters, keeping its state (moments) per parameter. Parameters are
/// float32 or float64 tensors; the update replaces each tensor's contents in place.
/// </summary>
public sealed class Optimizer
{
    private readonly Dictionary<string, OnnxTensor[]> _state = new(StringComparer.Ordinal);

    /// <summary>SGD's throw-away velocity, reused across parameters and steps.</summary>
    private Array? _scratch;

    /// <summary>Creates an optimizer with no state.</summary>
    public Optimizer(OptimizerOptions options) => Options = options;

    /// <summary>The hyper-parameters.</summary>
    public OptimizerOptions Options { get; }

    /// <summary>Number of state tensors per parameter: 0 for SGD, 1 for Momentum/Nesterov/Adagrad, 2 for Adam/AdamW.</summary>
    public int StateTensorsPerParameter => Options.Kind switch { OptimizerKind.Sgd => 0, OptimizerKind.Adam or OptimizerKind.AdamW => 2, _ => 1 };

    /// <summary>The state of every parameter, named <c>&lt;parameter&gt;.state0</c>, <c>.state1</c> (for checkpoints).</summary>
    public IEnumerable<KeyValuePair<string, OnnxTensor>> State =>
        _state.SelectMany(kv => kv.Value.Select((t, i) => new KeyValuePair<string, OnnxTensor>($"{kv.Key}.state{i}", t)));

    /// <summary>Restores state saved from <see cref="State"/>.</summary>
    public void LoadState(IEnumerable<KeyValuePair<string, OnnxTensor>> state)
    {
        _state.Clear();
        foreach (var group in state.GroupBy(kv => kv.Key[..kv.Key.LastIndexOf(".state", StringComparison.Ordinal)]))
            _state[group.Key] = [.. group.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value.Clone())];
    }

    /// <summary>
    /// Updates <paramref name="parameter"/> in place from <paramref name="gradient"/>.
    /// </summary>
    /// <param name="name">The parameter's name (keys its state).</param>
    /// <param name="parameter">Current value; float or double.</param>
    /// <param name="gradient">Its gradient, same type and shape.</param>
    /// <param name="learningRate">The learning rate for this step (base rate times the schedule's factor).</param>
    /// <param name="step">1 for the first update, 2 for the second, … (Adam's bias correction uses it as ONNX's T).</param>
    /// <exception cref="ArgumentException">The gradient's type or shape differs from the parameter's.</exception>
    public void Update(string name, OnnxTensor parameter, OnnxTensor gradient, double learningRate, long step)
    {
        if (gradient.ElementType != parameter.ElementType || !gradient.Shape.SequenceEqual(parameter.Shape))
            throw new ArgumentException($"Gradient {gradient} does not match parameter '{name}' {parameter}.");
        if (!_state.TryGetValue(name, out var state)) _state[name] = state = NewState(parameter);
        if (parameter.ElementType == DataType.Float) Apply<float>(parameter, gradient, state, learningRate, step);
        else if (parameter.ElementType == DataType.Double) Apply<double>(parameter, gradient, state, learningRate, step);
        else throw new ArgumentException($"Parameter '{name}' is {DataTypes.OnnxName(parameter.ElementType)}; only float and double are trained.");
    }

    /// <summary>
    /// Zeroed state tensors for a parameter's first update. A method of its own: a lambda capturing a parameter of
    /// <see cref="Update"/> would make every call allocate the closure, not only the first.
    /// </summary>
    private OnnxTensor[] NewState(OnnxTensor parameter)
    {
        var state = new OnnxTensor[StateTensorsPerParameter];
        for (int i = 0; i < state.Length; i++) state[i] = OnnxTensor.Zeros(parameter.ElementType, parameter.Shape);
        return state;
    }

    private void Apply<T>(OnnxTensor parameter, OnnxTensor gradient, OnnxTensor[] state, double lr, long step)
        where T : struct, System.Numerics.IFloatingPointIeee754<T>
    {
        var x = parameter.AsSpan<T>();
        var g = gradient.AsSpan<T>();
        var o = Options;
        switch (o.Kind)
        {
            case OptimizerKind.Sgd:
                // ONNX Momentum with α = 0, β = 1 and a throw-away velocity is plain SGD.
                if (_scratch is not T[] scratch || scratch.Length < x.Length) _scratch = scratch = new T[x.Length];
                var velocity = scratch.AsSpan(0, x.Length);
                velocity.Clear();
                OptimizerMath.Momentum<T>(lr, step, 0, 1, false, o.WeightDecay, x, g, velocity, x, velocity);
                break;
            case OptimizerKind.Momentum:
            case OptimizerKind.Nesterov:
                OptimizerMath.Momentum<T>(lr, step, o.Momentum, 1, o.Kind == OptimizerKind.Nesterov, o.WeightDecay, x, g, state[0].AsSpan<T>(), x, state[0].AsSpan<T>());
                break;
            case OptimizerKind.Adam:
                OptimizerMath.Adam<T>(lr, step, o.Beta1, o.Beta2, o.Epsilon ?? 1e-8, o.WeightDecay, 0, x, g, state[0].AsSpan<T>(), state[1].AsSpan<T>(), x, state[0].AsSpan<T>(), state[1].AsSpan<T>());
                break;
            case OptimizerKind.AdamW:
                OptimizerMath.Adam<T>(lr, step, o.Beta1, o.Beta2, o.Epsilon ?? 1e-8, 0, lr * o.WeightDecay, x, g, state[0].AsSpan<T>(), state[1].AsSpan<T>(), x, state[0].AsSpan<T>(), state[1].AsSpan<T>());
                break;
            case OptimizerKind.Adagrad:
                OptimizerMath.Adagrad<T>(lr, step, 0, o.Epsilon ?? 1e-10, o.WeightDecay, x, g, state[0].AsSpan<T>(), x, state[0].AsSpan<T>());
                break;
        }
    }
}

/// <summary>Learning-rate schedules: the factor the base learning rate is multiplied by at each step.</summary>
public enum ScheduleKind
{
    /// <summary>Factor 1.</summary>
    Constant,
    /// <summary>Factor γ^⌊step / step_size⌋ (PyTorch StepLR, per step).</summary>
    Step,
    /// <summary>Factor ½(1 + cos(π·step/total)) (PyTorch CosineAnnealingLR with η_min = 0, per step).</summary>
    Cosine,
}

/// <summary>A learning-rate schedule with optional linear warm-up.</summary>
public sealed class LearningRateSchedule
{
    /// <summary>The schedule. Default constant.</summary>
    public ScheduleKind Kind { get; init; } = ScheduleKind.Constant;

    /// <summary>Steps of linear warm-up from 0 to the scheduled rate (factor (step+1)/warmup). Default 0.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>Step schedule: steps between decays. Default 1000.</summary>
    public int StepSize { get; init; } = 1000;

    /// <summary>Step schedule: decay factor γ. Default 0.1.</summary>
    public double Gamma { get; init; } = 0.1;

    /// <summary>Cosine schedule: the total number of steps; when 0, <see cref="Trainer.Fit"/> uses the steps of that call (this object is not modified).</summary>
    public long TotalSteps { get; set; }

    /// <summary>The factor at <paramref name="step"/> (0-based), with the cosine horizon <see cref="TotalSteps"/>.</summary>
    public double Factor(long step) => Factor(step, TotalSteps);

    /// <summary>The factor at <paramref name="step"/> (0-based) for a cosine horizon of <paramref name="totalSteps"/> steps (0: no decay).</summary>
    public double Factor(long step, long totalSteps)
    {
        double f = Kind switch
        {
            ScheduleKind.Step => Math.Pow(Gamma, step / Math.Max(1, StepSize)),
            ScheduleKind.Cosine => totalSteps > 0 ? 0.5 * (1 + Math.Cos(Math.PI * Math.Min(step, totalSteps) / totalSteps)) : 1,
            _ => 1,
        };
        if (WarmupSteps > 0 && step < WarmupSteps) f *= (step + 1) / (double)WarmupSteps;
        return f;
    }
}
