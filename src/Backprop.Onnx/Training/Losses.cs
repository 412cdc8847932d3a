using Backprop.Onnx.IR;

namespace Backprop.Onnx.Training;

/// <summary>The losses <see cref="Losses.Attach"/> can append to a model.</summary>
public enum LossKind
{
    /// <summary>Softmax cross-entropy on logits [N, C, …] with int64 class labels [N, …] (ONNX SoftmaxCrossEntropyLoss; PyTorch <c>cross_entropy</c>).</summary>
    CrossEntropy,
    /// <summary>Negative log-likelihood on log-probabilities with int64 labels (ONNX NegativeLogLikelihoodLoss; PyTorch <c>nll_loss</c>).</summary>
    NegativeLogLikelihood,
    /// <summary>Mean squared error against a float target of the output's shape (PyTorch <c>mse_loss</c>).</summary>
    MeanSquaredError,
    /// <summary>Mean absolute error (PyTorch <c>l1_loss</c>).</summary>
    L1,
    /// <summary>Huber loss with threshold δ: ½d² for |d| ≤ δ, else δ(|d| − ½δ) (PyTorch <c>huber_loss</c>; smooth L1 is Huber/δ).</summary>
    Huber,
    /// <summary>Binary cross-entropy on logits against float targets in [0, 1]: max(x,0) − x·y + log(1 + e^−|x|) (PyTorch <c>binary_cross_entropy_with_logits</c>).</summary>
    BinaryCrossEntropyWithLogits,
}

/// <summary>How per-element losses are combined.</summary>
public enum LossReduction
{
    /// <summary>The mean over elements (over non-ignored labels for cross-entropy/NLL).</summary>
    Mean,
    /// <summary>The sum over elements.</summary>
    Sum,
    /// <summary>No reduction: the loss has the labels' shape (use seeds to differentiate it).</summary>
    None,
}

/// <summary>Settings of an attached loss.</summary>
public sealed class LossOptions
{
    /// <summary>Which loss. Default cross-entropy.</summary>
    public LossKind Kind { get; init; } = LossKind.CrossEntropy;

    /// <summary>The model output the loss reads (default: the first graph output).</summary>
    public string? Output { get; init; }

    /// <summary>Name of the new graph input holding labels or targets. Default <c>labels</c>.</summary>
    public string LabelName { get; init; } = "labels";

    /// <summary>Name of the new scalar graph output. Default <c>loss</c>.</summary>
    public string LossName { get; init; } = "loss";

    /// <summary>Reduction. Default mean.</summary>
    public LossReduction Reduction { get; init; } = LossReduction.Mean;

    /// <summary>Cross-entropy/NLL: a label value that contributes nothing (PyTorch <c>ignore_index</c>); null for none.</summary>
    public long? IgnoreIndex { get; init; }

    /// <summary>Cross-entropy: label smoothing ε in [0, 1): targets become (1−ε)·one-hot + ε/C (PyTorch <c>label_smoothing</c>).</summary>
    public double LabelSmoothing { get; init; }

    /// <summary>Huber: threshold δ &gt; 0. Default 1.</summary>
    public double HuberDelta { get; init; } = 1.0;
}

/// <summary>
/// Appends a loss to a model as ONNX nodes (so the gradient pass differentiates it like any other op, and an exported
/// training graph stays standard): a new label input, the loss nodes, and a new output.
/// </summary>
public static class Losses
{
    /// <summary>A copy of <paramref name="model"/> with the loss attached (the original is not modified; tensors are shared).</summary>
    /// <param name="model">The model; its output must be floating-point.</param>
    /// <param name="options">Which loss, on which output.</param>
    /// <returns>The model with graph input <see cref="LossOptions.LabelName"/> and graph output <see cref="LossOptions.LossName"/> added after the original ones.</returns>
    /// <exception cref="ArgumentException">The output does not exist, a name is taken, or the options are inconsistent.</exception>
    /// <exception cref="UnsupportedOperatorException">The model's opset lacks the ops the loss needs (cross-entropy and NLL need opset 12 or later).</exception>
    public static OnnxModel Attach(OnnxModel model, LossOptions options)
    {
        if (string.IsNullOrEmpty(options.LabelName) || string.IsNullOrEmpty(options.LossName))
            throw new ArgumentException("The label input and the loss output need non-empty names.");
        if (options.LabelSmoothing is < 0 or >= 1) throw new ArgumentException("Label smoothing must be in [0, 1).");
        if (options.LabelSmoothing > 0 && options.Kind != LossKind.CrossEntropy) throw new ArgumentException("Label smoothing applies to cross-entropy only.");
        var copy = ModelCopy.Shallow(model);
        var g = copy.Graph;
        string output = options.Output ?? g.Outputs.FirstOrDefault()?.Name ?? throw new ArgumentException("The model has no outputs.");
        var outInfo = g.Outputs.Find(o => o.Name == output) ?? throw new ArgumentException($"'{output}' is not an output of the model (outputs: {string.Join(", ", g.Outputs.Select(o => o.Name))}).");
        var names = new HashSet<string>(g.Inputs.Select(v => v.Name).Concat(g.Initializers.Keys).Concat(g.Nodes.SelectMany(n => n.Outputs)).Concat(g.Nodes.Select(n => n.Name)), StringComparer.Ordinal);
        if (names.Contains(options.LabelName)) throw new ArgumentException($"The label input name '{options.LabelName}' is already used in the model.");
        if (names.Contains(options.LossName)) throw new ArgumentException($"The loss output name '{options.LossName}' is already used in the model.");
        long opset = copy.DefaultOpsetVersion;
        var type = outInfo.ElementType == DataType.Undefined ? DataType.Float : outInfo.ElementType;
        var b = new NodeAppender(g, names, "loss");
        bool classLoss = options.Kind is LossKind.CrossEntropy or LossKind.NegativeLogLikelihood;
        IReadOnlyList<Dim>? labelShape = classLoss ? outInfo.Shape is { Count: >= 2 } s ? [s[0], .. s.Skip(2)] : null : outInfo.Shape;
        g.Inputs.Add(new ValueInfo(options.LabelName, classLoss ? DataType.Int64 : type, labelShape));
        string reduction = options.Reduction switch { LossReduction.Sum => "sum", LossReduction.None => "none", _ => "mean" };
        string y = output, t = options.LabelName;
        string loss;
        switch (options.Kind)
        {
            case LossKind.CrossEntropy:
            case LossKind.NegativeLogLikelihood:
            {
                if (opset < 12) throw new UnsupportedOperatorException(options.Kind == LossKind.CrossEntropy ? "SoftmaxCrossEntropyLoss" : "NegativeLogLikelihoodLoss", "", opset, "loss", "the model's opset is below 12; re-export the model at opset 12 or later");
                var attrs = new List<OnnxAttribute> { OnnxAttribute.FromString("reduction", reduction) };
                if (options.IgnoreIndex is { } ii) attrs.Add(OnnxAttribute.FromInt("ignore_index", ii));
                string op = options.Kind == LossKind.CrossEntropy ? "SoftmaxCrossEntropyLoss" : "NegativeLogLikelihoodLoss";
                loss = b.Add(op, [y, t], attrs);
                if (options.LabelSmoothing > 0)
                {
                    if (options.Kind != LossKind.CrossEntropy || options.Reduction != LossReduction.Mean || options.IgnoreIndex is not null)
                        throw new ArgumentException("Label smoothing is supported for cross-entropy with mean reduction and no ignore_index.");
                    if (options.LabelSmoothing >= 1) throw new ArgumentException("Label smoothing must be in [0, 1).");
                    // (1−ε)·CE + ε·mean over the batch of (−mean over classes of log_softmax(x)).
                    string logp = b.Add("LogSoftmax", [y], [OnnxAttribute.FromInt("axis", 1)]);
                    string perClass = b.Add("ReduceMean", [logp], [OnnxAttribute.FromInts("axes", 1), OnnxAttribute.FromInt("keepdims", 0)]);
                    string smooth = b.Add("Neg", [b.Add("ReduceMean", [perClass], [OnnxAttribute.FromInt("keepdims", 0)])]);
                    string eps = b.Constant(options.LabelSmoothing, type), oneMinus = b.Constant(1 - options.LabelSmoothing, type);
                    loss = b.Add("Add", [b.Add("Mul", [loss, oneMinus]), b.Add("Mul", [smooth, eps])]);
                }
                break;
            }
            case LossKind.MeanSquaredError:
            {
                string d = b.Add("Sub", [y, t]);
                loss = Reduce(b, b.Add("Mul", [d, d]), options.Reduction);
                break;
            }
            case LossKind.L1:
                loss = Reduce(b, b.Add("Abs", [b.Add("Sub", [y, t])]), options.Reduction);
                break;
            case LossKind.Huber:
            {
                if (!(options.HuberDelta > 0)) throw new ArgumentException("Huber delta must be positive.");
                string a = b.Add("Abs", [b.Add("Sub", [y, t])]);
                string delta = b.Constant(options.HuberDelta, type), half = b.Constant(0.5, type);
                string q = b.Add("Min", [a, delta]);
                string per = b.Add("Add", [b.Add("Mul", [half, b.Add("Mul", [q, q])]), b.Add("Mul", [delta, b.Add("Sub", [a, q])])]);
                loss = Reduce(b, per, options.Reduction);
                break;
            }
            case LossKind.BinaryCrossEntropyWithLogits:
            {
                string relu = b.Add("Relu", [y]);
                string softplus = b.Add("Softplus", [b.Add("Neg", [b.Add("Abs", [y])])]);
                string per = b.Add("Add", [b.Add("Sub", [relu, b.Add("Mul", [y, t])]), softplus]);
                loss = Reduce(b, per, options.Reduction);
                break;
            }
            default: throw new ArgumentException($"Unknown loss {options.Kind}.");
        }
        g.Nodes.Add(new Node("Identity", [loss], [options.LossName], b.Fresh("loss/output")));
        g.Outputs.Add(new ValueInfo(options.LossName, type, options.Reduction == LossReduction.None ? null : []));
        return copy;
    }

    private static string Reduce(NodeAppender b, string x, LossReduction reduction) => reduction switch
    {
        LossReduction.Mean => b.Add("ReduceMean", [x], [OnnxAttribute.FromInt("keepdims", 0)]),
        LossReduction.Sum => b.Add("ReduceSum", [x], [OnnxAttribute.FromInt("keepdims", 0)]),
        _ => x,
    };

    /// <summary>Appends forward nodes to a graph with unique names.</summary>
    private sealed class NodeAppender(Graph graph, HashSet<string> names, string prefix)
    {
        public string Fresh(string hint)
        {
            string name = hint;
            for (int i = 1; !names.Add(name); i++) name = $"{hint}_{i}";
            return name;
        }

        public string Add(string opType, string[] inputs, IEnumerable<OnnxAttribute>? attributes = null)
        {
            string output = Fresh($"{prefix}/{opType}_out");
            var node = new Node(opType, inputs, [output], Fresh($"{prefix}/{opType}"));
            if (attributes is not null) node.Attributes.AddRange(attributes);
            graph.Nodes.Add(node);
            return output;
        }

        public string Constant(double value, DataType type) =>
            Add("Constant", [], [OnnxAttribute.FromTensor("value", Autodiff.GraphEmitter.ScalarTensor(value, type))]);
    }
}
