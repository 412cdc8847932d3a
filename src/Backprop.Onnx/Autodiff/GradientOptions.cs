using Backprop.Onnx.IR;

namespace Backprop.Onnx.Autodiff;

/// <summary>
/// What to differentiate and with respect to what. The differentiated function is
/// f = Σ over <see cref="Outputs"/> of ⟨seed, output⟩: a scalar output with no seed input is seeded with ones
/// (so the result is its gradient); with <see cref="SeedInputs"/> the caller feeds the cotangents (a vector-Jacobian product).
/// </summary>
public sealed class GradientOptions
{
    /// <summary>
    /// Graph outputs to differentiate (their cotangents seed the backward pass). Default (empty): every float graph output.
    /// </summary>
    public IList<string> Outputs { get; } = [];

    /// <summary>
    /// When true, each differentiated output gets a graph input named <c>&lt;output&gt;_seed</c> (same type and shape)
    /// through which the caller feeds its cotangent; when false, each output is seeded with ones (for a scalar loss,
    /// the gradient of the loss). Default false.
    /// </summary>
    public bool SeedInputs { get; set; }

    /// <summary>
    /// Values to take gradients with respect to (initializers, graph inputs, or intermediate values). Default (empty):
    /// every floating-point initializer and every floating-point graph input.
    /// </summary>
    public IList<string> Wrt { get; } = [];

    /// <summary>
    /// When true (default), a requested gradient that no differentiated output depends on is an output of zeros and the
    /// report lists it as unreachable; when false it is an error.
    /// </summary>
    public bool AllowUnreachable { get; set; } = true;
}

/// <summary>
/// The result of <see cref="ReverseMode.Differentiate"/>: one model holding the forward pass and the backward pass,
/// with one extra graph output per requested gradient, named <c>&lt;value&gt;_grad</c>.
/// </summary>
public sealed class GradientModel
{
    internal GradientModel(OnnxModel model, IReadOnlyDictionary<string, string> gradients, IReadOnlyDictionary<string, string> seeds, DifferentiabilityReport report)
    {
        Model = model;
        Gradients = gradients;
        Seeds = seeds;
        Report = report;
    }

    /// <summary>The forward-and-backward model (the original graph outputs come first, then the gradients).</summary>
    public OnnxModel Model { get; }

    /// <summary>Graph output name of each requested gradient, by the name of the value it is the gradient of.</summary>
    public IReadOnlyDictionary<string, string> Gradients { get; }

    /// <summary>Seed (cotangent) graph input name of each differentiated output, when <see cref="GradientOptions.SeedInputs"/> is set.</summary>
    public IReadOnlyDictionary<string, string> Seeds { get; }

    /// <summary>The differentiability report the pass produced (unreachable values, non-differentiable edges).</summary>
    public DifferentiabilityReport Report { get; }
}

/// <summary>One finding of the differentiability analysis.</summary>
/// <param name="Kind">What kind of finding.</param>
/// <param name="Value">The value concerned (a requested tensor, or the edge's value).</param>
/// <param name="Node">The node concerned (op type and name), or empty.</param>
/// <param name="Detail">A sentence saying what and why.</param>
public sealed record DifferentiabilityIssue(DifferentiabilityIssueKind Kind, string Value, string Node, string Detail);

/// <summary>Kinds of differentiability findings.</summary>
public enum DifferentiabilityIssueKind
{
    /// <summary>A node on the path from a requested tensor to a differentiated output has no gradient rule (an error).</summary>
    MissingRule,
    /// <summary>A node's op is unknown to the engine (an error).</summary>
    UnknownOp,
    /// <summary>The gradient stops at this edge by definition (integer/bool value, index input, Shape-like op): information.</summary>
    NonDifferentiableEdge,
    /// <summary>No differentiated output depends on the requested tensor: its gradient is zero.</summary>
    Unreachable,
    /// <summary>A requested name is not a value of the graph, or not floating-point (an error).</summary>
    InvalidRequest,
}

/// <summary>
/// Every finding of the differentiability analysis at once: nodes without a rule on the path, non-differentiable edges,
/// unreachable requested tensors. <see cref="IsDifferentiable"/> is false when any finding is an error.
/// </summary>
public sealed class DifferentiabilityReport
{
    internal DifferentiabilityReport(IReadOnlyList<DifferentiabilityIssue> issues, bool allowUnreachable)
    {
        Issues = issues;
        _allowUnreachable = allowUnreachable;
    }

    private readonly bool _allowUnreachable;

    /// <summary>All findings, in topological order of the nodes concerned.</summary>
    public IReadOnlyList<DifferentiabilityIssue> Issues { get; }

    /// <summary>The findings that prevent building the gradient graph.</summary>
    public IEnumerable<DifferentiabilityIssue> Errors => Issues.Where(i => i.Kind is DifferentiabilityIssueKind.MissingRule or DifferentiabilityIssueKind.UnknownOp or DifferentiabilityIssueKind.InvalidRequest
        || (i.Kind == DifferentiabilityIssueKind.Unreachable && !_allowUnreachable));

    /// <summary>True when the gradient graph can be built.</summary>
    public bool IsDifferentiable => !Errors.Any();

    /// <summary>One line per finding.</summary>
    public override string ToString() => Issues.Count == 0 ? "differentiable: no findings" :
        string.Join(Environment.NewLine, Issues.Select(i => $"{i.Kind}: {(i.Node.Length > 0 ? i.Node + ": " : "")}{i.Value}: {i.Detail}"));
}

/// <summary>The graph cannot be differentiated as requested; <see cref="Report"/> lists every reason at once.</summary>
public sealed class DifferentiationException : BackpropOnnxException
{
    /// <summary>Creates the exception from a report with errors.</summary>
    public DifferentiationException(DifferentiabilityReport report)
        : base("cannot differentiate: " + string.Join("; ", report.Errors.Select(i => $"{(i.Node.Length > 0 ? i.Node + ": " : "")}{i.Detail}")))
    {
        Report = report;
    }

    /// <summary>The full report.</summary>
    public DifferentiabilityReport Report { get; }
}
