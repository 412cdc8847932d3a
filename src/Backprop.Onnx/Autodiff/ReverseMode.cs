using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Autodiff;

/// <summary>
/// Reverse-mode automatic differentiation as a graph transformation: the forward graph plus, in reverse topological
/// order, the vector-Jacobian product of every node on a path from a requested tensor to a differentiated output.
/// Cotangents of values used more than once are accumulated (one <c>Sum</c> node); cotangents of broadcasting ops are
/// summed back to their input's shape; no gradient flows through integer or bool values, index inputs or Shape-like
/// ops; backward nodes no requested gradient needs are pruned. (Griewank &amp; Walther, "Evaluating Derivatives", ch. 3;
/// the structure follows micrograd's backward() and JAX's backward_pass.)
/// </summary>
public static class ReverseMode
{
    /// <summary>
    /// Analyzes the whole graph before building anything: every node without a rule on the path, every
    /// non-differentiable edge on it, every requested tensor that no differentiated output depends on — all at once.
    /// </summary>
    /// <param name="model">An imported model.</param>
    /// <param name="options">What to differentiate; null for the defaults (every float output, every float initializer and input).</param>
    public static DifferentiabilityReport Analyze(OnnxModel model, GradientOptions? options = null) =>
        new Analysis(model, options ?? new GradientOptions()).Report;

    /// <summary>
    /// Builds the forward-and-backward graph. Its extra outputs are the gradients, named <c>&lt;value&gt;_grad</c>;
    /// with <see cref="GradientOptions.SeedInputs"/>, its extra inputs are the output cotangents, named <c>&lt;output&gt;_seed</c>.
    /// </summary>
    /// <param name="model">An imported model (not modified; the result shares its initializer tensors).</param>
    /// <param name="options">What to differentiate; null for the defaults.</param>
    /// <returns>The gradient model and its report.</returns>
    /// <exception cref="DifferentiationException">A node on the path has no rule, an op is unknown, or a request is invalid; the report lists all.</exception>
    /// <exception cref="UnsupportedOperatorException">A rule does not handle an attribute value of its node.</exception>
    public static GradientModel Differentiate(OnnxModel model, GradientOptions? options = null)
    {
        var analysis = new Analysis(model, options ?? new GradientOptions());
        if (!analysis.Report.IsDifferentiable) throw new DifferentiationException(analysis.Report);
        return new BackwardBuilder(analysis).Build();
    }

    /// <summary>The forward analysis: types, which values depend on requested tensors, which reach differentiated outputs.</summary>
    internal sealed class Analysis
    {
        public Analysis(OnnxModel model, GradientOptions options)
        {
            Model = model;
            Options = options;
            Graph = model.Graph;
            Opsets = ExecutionPlan.OpsetsOf(model);
            Order = ExecutionPlan.TopologicalOrder(Graph);
            Types = TypeInferencePass.Run(Graph, Opsets);
            Definitions = [.. Order.Select(n => OpRegistry.TryFind(n, VersionOf(n), out _))];
            var issues = new List<DifferentiabilityIssue>();

            Outputs = options.Outputs.Count > 0 ? [.. options.Outputs] : [.. Graph.Outputs.Where(o => IsFloat(o.Name)).Select(o => o.Name)];
            foreach (var o in Outputs)
            {
                if (Graph.Outputs.All(v => v.Name != o)) issues.Add(new(DifferentiabilityIssueKind.InvalidRequest, o, "", $"'{o}' is not a graph output"));
                else if (!IsFloat(o)) issues.Add(new(DifferentiabilityIssueKind.InvalidRequest, o, "", $"output '{o}' is {DataTypes.OnnxName(Types.GetValueOrDefault(o))}, not floating-point"));
            }
            var known = new HashSet<string>(Graph.Initializers.Keys, StringComparer.Ordinal);
            foreach (var v in Graph.Inputs) known.Add(v.Name);
            foreach (var n in Order) foreach (var o in n.Outputs) if (o.Length > 0) known.Add(o);
            Wrt = options.Wrt.Count > 0 ? [.. options.Wrt]
                : [.. Graph.Initializers.Keys.Concat(Graph.Inputs.Select(v => v.Name)).Distinct().Where(IsFloat)];
            foreach (var w in Wrt)
            {
                if (!known.Contains(w)) issues.Add(new(DifferentiabilityIssueKind.InvalidRequest, w, "", $"'{w}' is not a value of the graph"));
                else if (!IsFloat(w)) issues.Add(new(DifferentiabilityIssueKind.InvalidRequest, w, "", $"'{w}' is {DataTypes.OnnxName(Types.GetValueOrDefault(w))}, not floating-point"));
            }

            // Values some differentiated output can be reached from (any edge).
            var reaches = new HashSet<string>(Outputs, StringComparer.Ordinal);
            for (int k = Order.Length - 1; k >= 0; k--)
                if (Order[k].Outputs.Any(reaches.Contains)) foreach (var i in Order[k].Inputs) if (i.Length > 0) reaches.Add(i);

            // Active values: depend on a requested tensor through differentiable edges.
            Active = new HashSet<string>(Wrt.Where(IsFloat), StringComparer.Ordinal);
            for (int k = 0; k < Order.Length; k++)
            {
                var node = Order[k];
                var def = Definitions[k];
                bool onPath = node.Outputs.Any(reaches.Contains);
                var activeInputs = Enumerable.Range(0, node.Inputs.Count).Where(i => node.Inputs[i].Length > 0 && Active.Contains(node.Inputs[i])).ToList();
                if (activeInputs.Count == 0) continue;
                string where = $"{node.OpType} '{node.Name}'";
                if (def is null)
                {
                    if (onPath) issues.Add(new(DifferentiabilityIssueKind.UnknownOp, node.Inputs[activeInputs[0]], where, $"{node.OpType} (opset {VersionOf(node)}) is not implemented"));
                    MarkFloatOutputsActive(node, includeUnknown: true);
                    continue;
                }
                var flowing = activeInputs.Where(def.IsInputDifferentiable).ToList();
                if (onPath)
                    foreach (int i in activeInputs.Except(flowing))
                        issues.Add(new(DifferentiabilityIssueKind.NonDifferentiableEdge, node.Inputs[i], where, $"input {i} of {node.OpType} takes no gradient"));
                if (flowing.Count == 0) continue;
                switch (def.Gradient)
                {
                    case GradientState.NonDifferentiable:
                        if (onPath) issues.Add(new(DifferentiabilityIssueKind.NonDifferentiableEdge, node.Inputs[flowing[0]], where, $"{node.OpType} is not differentiable; no gradient flows through it"));
                        break;
                    case GradientState.NotImplemented:
                        if (onPath) issues.Add(new(DifferentiabilityIssueKind.MissingRule, node.Inputs[flowing[0]], where, $"{node.OpType} (opset {VersionOf(node)}) has no gradient rule"));
                        MarkFloatOutputsActive(node, includeUnknown: true);
                        break;
                    default:
                        bool any = MarkFloatOutputsActive(node);
                        if (!any && onPath) issues.Add(new(DifferentiabilityIssueKind.NonDifferentiableEdge, node.Inputs[flowing[0]], where, $"{node.OpType} has no floating-point output; the gradient stops here"));
                        break;
                }
            }

            // Needed values: active values whose cotangent some differentiated output contributes to.
            Needed = new HashSet<string>(Outputs.Where(Active.Contains), StringComparer.Ordinal);
            for (int k = Order.Length - 1; k >= 0; k--)
            {
                var node = Order[k];
                var def = Definitions[k];
                if (def?.Vjp is null || !node.Outputs.Any(Needed.Contains)) continue;
                for (int i = 0; i < node.Inputs.Count; i++)
                    if (node.Inputs[i].Length > 0 && Active.Contains(node.Inputs[i]) && def.IsInputDifferentiable(i)) Needed.Add(node.Inputs[i]);
            }
            foreach (var w in Wrt)
                if (known.Contains(w) && IsFloat(w) && !Needed.Contains(w))
                    issues.Add(new(DifferentiabilityIssueKind.Unreachable, w, "", $"no differentiated output depends on '{w}'; its gradient is zero"));
            Report = new DifferentiabilityReport(issues, options.AllowUnreachable);
        }

        private bool MarkFloatOutputsActive(Node node, bool includeUnknown = false)
        {
            bool any = false;
            foreach (var o in node.Outputs)
                if (o.Length > 0 && (IsFloat(o) || (includeUnknown && Types.GetValueOrDefault(o) == DataType.Undefined))) { Active.Add(o); any = true; }
            return any;
        }

        public OnnxModel Model { get; }
        public GradientOptions Options { get; }
        public Graph Graph { get; }
        public IReadOnlyDictionary<string, long> Opsets { get; }
        public Node[] Order { get; }
        public Dictionary<string, DataType> Types { get; }
        public OpDefinition?[] Definitions { get; }
        public List<string> Outputs { get; }
        public List<string> Wrt { get; }
        public HashSet<string> Active { get; }
        public HashSet<string> Needed { get; }
        public DifferentiabilityReport Report { get; }

        public long VersionOf(Node node) => Opsets.TryGetValue(OpRegistry.NormalizeDomain(node.Domain), out long v) ? v : 1;

        public bool IsFloat(string value) => DataTypes.IsFloatingPoint(Types.GetValueOrDefault(value));
    }
}
