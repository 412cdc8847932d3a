using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Autodiff;

/// <summary>
/// Emits the backward pass for an <see cref="ReverseMode.Analysis"/>: seeds, then each node's VJP in reverse topological
/// order, accumulating cotangents per value and un-broadcasting where the op broadcast; finally prunes backward nodes
/// that no requested gradient reads.
/// </summary>
internal sealed class BackwardBuilder
{
    private readonly ReverseMode.Analysis _a;
    private readonly Dictionary<string, List<string>> _contributions = new(StringComparer.Ordinal);
    private readonly List<Node> _backward = [];
    private readonly GraphEmitter _emit;
    private readonly Dictionary<string, IReadOnlyList<Dim>?> _shapes = new(StringComparer.Ordinal);

    public BackwardBuilder(ReverseMode.Analysis analysis)
    {
        _a = analysis;
        var g = analysis.Graph;
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var v in g.Inputs.Concat(g.Outputs).Concat(g.ValueInfos)) names.Add(v.Name);
        foreach (var k in g.Initializers.Keys) names.Add(k);
        foreach (var n in g.Nodes) { names.Add(n.Name); foreach (var o in n.Outputs) names.Add(o); }
        _emit = new GraphEmitter(_backward, analysis.VersionOf(new Node("", [], [])), analysis.Types, names);
        foreach (var v in g.ValueInfos.Concat(g.Outputs).Concat(g.Inputs)) _shapes[v.Name] = v.Shape;
        foreach (var (name, t) in g.Initializers) _shapes[name] = [.. t.Dims.Select(d => Dim.Of(d))];
    }

    public GradientModel Build()
    {
        var g = _a.Graph;
        var seeds = new Dictionary<string, string>(StringComparer.Ordinal);
        var seedInputs = new List<ValueInfo>();
        _emit.Prefix = "seed";
        foreach (var o in _a.Outputs)
        {
            if (!_a.Needed.Contains(o)) continue;
            if (_a.Options.SeedInputs)
            {
                string seed = _emit.FreshName(o + "_seed");
                var info = g.Outputs.First(v => v.Name == o);
                seedInputs.Add(new ValueInfo(seed, _a.Types.GetValueOrDefault(o), info.Shape));
                _a.Types[seed] = _a.Types.GetValueOrDefault(o);
                seeds[o] = seed;
                Contribute(o, seed);
            }
            else
            {
                Contribute(o, _emit.OnesLike(o));
            }
        }

        for (int k = _a.Order.Length - 1; k >= 0; k--)
        {
            var node = _a.Order[k];
            var def = _a.Definitions[k];
            if (def?.Vjp is null || !node.Outputs.Any(_a.Needed.Contains)) continue;
            var needs = new bool[node.Inputs.Count];
            bool anyNeeded = false;
            for (int i = 0; i < needs.Length; i++)
            {
                needs[i] = node.Inputs[i].Length > 0 && _a.Needed.Contains(node.Inputs[i]) && def.IsInputDifferentiable(i);
                anyNeeded |= needs[i];
            }
            if (!anyNeeded) continue;
            _emit.Prefix = node.Name.Length > 0 ? node.Name : $"{node.OpType}_{k}";
            var outGrads = node.Outputs.Select(o => o.Length == 0 ? null : Accumulated(o)).ToArray();
            if (outGrads.All(x => x is null)) continue;
            var ctx = new GradientContext(node, _a.VersionOf(node), outGrads, needs, _emit, v => _a.Types.GetValueOrDefault(v), v => _shapes.GetValueOrDefault(v));
            var inGrads = def.Vjp(ctx);
            for (int i = 0; i < needs.Length; i++)
            {
                if (!needs[i] || i >= inGrads.Length || inGrads[i] is not { } grad) continue;
                string input = node.Inputs[i];
                if (def.Broadcasting && !ProvablySameShape(input, node.Outputs[0])) grad = _emit.SumToShapeOf(grad, input);
                Contribute(input, grad);
            }
        }

        var gradients = new Dictionary<string, string>(StringComparer.Ordinal);
        var gradOutputs = new List<ValueInfo>();
        _emit.Prefix = "grad";
        foreach (var w in _a.Wrt)
        {
            string total = Accumulated(w) ?? Zeros(w);
            string name = _emit.FreshName(w + "_grad");
            _backward.Add(new Node("Identity", [total], [name], _emit.FreshName($"{w}_grad/Identity")));
            gradients[w] = name;
            gradOutputs.Add(new ValueInfo(name, _a.Types.GetValueOrDefault(w), _shapes.GetValueOrDefault(w)));
        }
        return new GradientModel(Assemble(seedInputs, gradOutputs), gradients, seeds, _a.Report);
    }

    /// <summary>Zeros shaped like <paramref name="value"/>: a constant when its shape is static, else ConstantOfShape(Shape(value)).</summary>
    private string Zeros(string value)
    {
        var shape = _shapes.GetValueOrDefault(value);
        var type = _a.Types.GetValueOrDefault(value);
        if (shape is not null && shape.All(d => d.Value.HasValue) && type is DataType.Float or DataType.Double)
            return _emit.Constant(OnnxTensor.Zeros(type, [.. shape.Select(d => checked((int)d.Value!.Value))]));
        return _emit.ZerosLike(value);
    }

    private void Contribute(string value, string grad)
    {
        if (!_contributions.TryGetValue(value, out var list)) _contributions[value] = list = [];
        list.Add(grad);
    }

    /// <summary>
    /// The total cotangent of a value: its one contribution, or their Sum (fan-out accumulation); null if none.
    /// Contributions that are SliceGrads of the value (several Slices read it, e.g. a q, k, v split) are first merged
    /// into one multi-window SliceGrad, which writes each window into one dX instead of zero-filling k tensors and
    /// summing them.
    /// </summary>
    private string? Accumulated(string value)
    {
        if (!_contributions.TryGetValue(value, out var list) || list.Count == 0) return null;
        if (list.Count == 1) return list[0];
        string prefix = _emit.Prefix;
        _emit.Prefix = value + "_grad_accumulate";
        MergeSliceGrads(list);
        string sum = list.Count == 1 ? list[0] : _emit.Op("Sum", [.. list]);
        _emit.Prefix = prefix;
        list.Clear();
        list.Add(sum);
        return sum;
    }

    /// <summary>
    /// Replaces two or more single-window SliceGrad contributions of one shape by one SliceGrad with all their windows
    /// (in contribution order, at the place of the first); the single-window nodes, now unread, are pruned.
    /// </summary>
    private void MergeSliceGrads(List<string> list)
    {
        var slices = new List<(int Index, Node Node)>();
        for (int i = 0; i < list.Count; i++)
        {
            var n = _backward.FindLast(b => b.Outputs.Count == 1 && b.Outputs[0] == list[i]);
            if (n is { OpType: "SliceGrad", Domain: OpRegistry.BackpropDomain } && n.Inputs.Count is >= 4 and <= 6) slices.Add((i, n));
        }
        if (slices.Count < 2) return;
        string shape = slices[0].Node.Inputs[1];
        string? shapeOf = ShapeSource(shape);
        if (slices.Any(s => s.Node.Inputs[1] != shape && (shapeOf is null || ShapeSource(s.Node.Inputs[1]) != shapeOf))) return;
        var inputs = new List<string> { slices[0].Node.Inputs[0], shape };
        for (int k = 0; k < slices.Count; k++)
        {
            var n = slices[k].Node;
            if (k > 0) inputs.Add(n.Inputs[0]);
            for (int i = 2; i <= 5; i++) inputs.Add(n.InputOrEmpty(i));
        }
        string merged = _emit.Custom("SliceGrad", [.. inputs]);
        list[slices[0].Index] = merged;
        for (int k = slices.Count - 1; k > 0; k--) list.RemoveAt(slices[k].Index);
    }

    /// <summary>The value a backward Shape node (without start/end) reads, when <paramref name="shape"/> is one's output.</summary>
    private string? ShapeSource(string shape) =>
        _backward.FindLast(b => b.Outputs.Count == 1 && b.Outputs[0] == shape) is { OpType: "Shape", Domain: "", Attributes.Count: 0 } n ? n.Inputs[0] : null;

    private bool ProvablySameShape(string a, string b)
    {
        var sa = _shapes.GetValueOrDefault(a);
        var sb = _shapes.GetValueOrDefault(b);
        if (sa is null || sb is null || sa.Count != sb.Count) return false;
        for (int i = 0; i < sa.Count; i++)
        {
            if (sa[i].Value is { } x && sb[i].Value is { } y) { if (x != y) return false; continue; }
            if (sa[i].Param is { } p && p == sb[i].Param) continue;
            return false;
        }
        return true;
    }

    /// <summary>The result model: the forward graph, seed inputs, the pruned backward nodes, gradient outputs.</summary>
    private OnnxModel Assemble(List<ValueInfo> seedInputs, List<ValueInfo> gradOutputs)
    {
        var g = _a.Graph;
        var graph = new Graph { Name = g.Name, DocString = g.DocString };
        graph.Inputs.AddRange(g.Inputs);
        graph.Inputs.AddRange(seedInputs);
        foreach (var (k, v) in g.Initializers) graph.Initializers.Add(k, v);
        graph.ValueInfos.AddRange(g.ValueInfos);
        graph.Nodes.AddRange(g.Nodes);
        graph.Outputs.AddRange(g.Outputs);
        graph.Outputs.AddRange(gradOutputs);

        // Prune: keep backward nodes that some gradient output (transitively) reads.
        var live = new HashSet<string>(gradOutputs.Select(v => v.Name), StringComparer.Ordinal);
        var kept = new List<Node>();
        for (int i = _backward.Count - 1; i >= 0; i--)
        {
            var n = _backward[i];
            if (!n.Outputs.Any(live.Contains)) continue;
            kept.Add(n);
            foreach (var input in n.Inputs) if (input.Length > 0) live.Add(input);
        }
        kept.Reverse();
        graph.Nodes.AddRange(kept);
        var model = ModelCopy.WithGraph(_a.Model, graph);
        model.TrainingInfo.Clear();
        if (kept.Any(n => n.Domain == OpRegistry.BackpropDomain) && model.OpsetVersion(OpRegistry.BackpropDomain) is null)
            model.OpsetImports.Add(new OpsetImport(OpRegistry.BackpropDomain, 1));
        return model;
    }
}
