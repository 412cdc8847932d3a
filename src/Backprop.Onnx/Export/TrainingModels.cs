using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Protobuf;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Export;

/// <summary>
/// Standard-ONNX training artifacts: the training model (inputs, labels and trainable parameters in; the loss and
/// <c>&lt;parameter&gt;_grad</c> out), the optimizer-step model (parameters, gradients, state, learning rate and step in; new
/// parameters and state out) and the inference model. Only <c>ai.onnx</c> ops at the model's opset appear; ops of our own
/// domain become model-local functions (FunctionProto) built from standard ops, so any ONNX runtime can run them.
/// </summary>
public static class TrainingModels
{
    /// <summary>Builds the training model.</summary>
    /// <param name="model">The inference model (opset 13 or later).</param>
    /// <param name="loss">The loss to attach (its label input name becomes a graph input).</param>
    /// <param name="wrt">Parameters to differentiate (default: every float initializer that reaches the loss).</param>
    /// <param name="freeze">Glob patterns of initializers not to differentiate.</param>
    /// <returns>A model whose graph inputs are the original inputs, the labels and the trainable parameters (their current
    /// values kept as initializers, so the file runs as it is), and whose outputs are the loss and one gradient per parameter.</returns>
    /// <exception cref="UnsupportedOperatorException">The model's opset is below 13, or an op cannot be expressed in standard ops.</exception>
    /// <exception cref="DifferentiationException">The model cannot be differentiated.</exception>
    public static OnnxModel BuildTrainingModel(OnnxModel model, LossOptions loss, IEnumerable<string>? wrt = null, IEnumerable<string>? freeze = null)
    {
        if (model.DefaultOpsetVersion < 13)
            throw new UnsupportedOperatorException("<model>", "", model.DefaultOpsetVersion, model.Graph.Name, "training export needs opset 13 or later (ReduceSum with axes as an input); re-export the model at opset 13+");
        var lossModel = Losses.Attach(model, loss);
        TrainingGraph.UseBatchStatistics(lossModel);
        var patterns = freeze?.ToList() ?? [];
        var options = new GradientOptions { Outputs = { loss.LossName } };
        var requested = wrt?.ToList() ?? [];
        if (requested.Count == 0)
        {
            var candidates = model.Graph.Initializers.Where(kv => kv.Value.ElementType is DataType.Float or DataType.Double).Select(kv => kv.Key)
                .Where(n => !patterns.Any(p => System.IO.Enumeration.FileSystemName.MatchesSimpleExpression(p, n, ignoreCase: false))).ToList();
            var probe = new GradientOptions { Outputs = { loss.LossName } };
            foreach (var c in candidates) probe.Wrt.Add(c);
            var report = ReverseMode.Analyze(lossModel, probe);
            if (!report.IsDifferentiable) throw new DifferentiationException(report);
            var unreachable = report.Issues.Where(i => i.Kind == DifferentiabilityIssueKind.Unreachable).Select(i => i.Value).ToHashSet();
            requested = [.. candidates.Where(c => !unreachable.Contains(c))];
        }
        if (requested.Count == 0) throw new ArgumentException("No trainable parameter is left (all frozen, or none reaches the loss).");
        foreach (var w in requested) options.Wrt.Add(w);
        var gm = ReverseMode.Differentiate(lossModel, options);

        var result = ModelCopy.Shallow(gm.Model);
        var g = result.Graph;
        foreach (var w in requested)
            if (g.Initializers.TryGetValue(w, out var t) && g.Inputs.All(v => v.Name != w))
                g.Inputs.Add(new ValueInfo(w, t.ElementType, [.. t.Dims.Select(d => Dim.Of(d))]));
        g.Outputs.Clear();
        g.Outputs.Add(new ValueInfo(loss.LossName, DataType.Undefined, []) { ElementType = gm.Model.Graph.Outputs.First(o => o.Name == loss.LossName).ElementType });
        foreach (var w in requested) g.Outputs.Add(gm.Model.Graph.Outputs.First(o => o.Name == gm.Gradients[w]));
        PruneUnused(g);
        FillOutputTypes(result);
        TrimTrailingEmptyInputs(result);
        LowerOwnOpsToFunctions(result);
        if (result.IrVersion < 8) result.IrVersion = 8;
        return result;
    }

    /// <summary>
    /// The vector-Jacobian-product model of <see cref="ReverseMode.Differentiate"/> in standard ONNX: the same inputs (and
    /// seed inputs), outputs and gradients, with ops of our own domain written as model-local functions.
    /// </summary>
    /// <exception cref="UnsupportedOperatorException">The model's opset is below 13, or an op has no standard-op form.</exception>
    public static OnnxModel BuildVjpModel(OnnxModel model, GradientOptions options)
    {
        if (model.DefaultOpsetVersion < 13)
            throw new UnsupportedOperatorException("<model>", "", model.DefaultOpsetVersion, model.Graph.Name, "standard-ONNX gradient export needs opset 13 or later");
        var result = ModelCopy.Shallow(ReverseMode.Differentiate(model, options).Model);
        FillOutputTypes(result);
        TrimTrailingEmptyInputs(result);
        LowerOwnOpsToFunctions(result);
        if (result.IrVersion < 8) result.IrVersion = 8;
        return result;
    }

    /// <summary>
    /// Builds the optimizer-step model for <paramref name="parameters"/>: inputs <c>learning_rate</c> (scalar, per step,
    /// schedule already applied), <c>step</c> (int64 scalar, 1 for the first update), then per parameter P: <c>P</c>,
    /// <c>P_grad</c> and its state (<c>P.m</c>, <c>P.v</c> for Adam/AdamW; <c>P.velocity</c> for Momentum/Nesterov;
    /// <c>P.accumulator</c> for Adagrad); outputs <c>P.new</c> and the new state (<c>P.m.new</c>, …). The math is
    /// <see cref="Optimizer"/>'s (ONNX ai.onnx.preview.training update rules), in standard ops.
    /// </summary>
    public static OnnxModel BuildOptimizerModel(IReadOnlyList<KeyValuePair<string, OnnxTensor>> parameters, OptimizerOptions optimizer, long opset = 17)
    {
        var model = new OnnxModel { IrVersion = 8, ProducerName = "backprop-onnx", ProducerVersion = "1" };
        model.OpsetImports.Add(new OpsetImport("", opset));
        var g = model.Graph;
        g.Name = $"{optimizer.Kind}_step";
        var nodes = new List<Node>();
        var types = new Dictionary<string, DataType>(StringComparer.Ordinal);
        var e = new GraphEmitter(nodes, opset, types, []) { Prefix = "opt" };
        var elementType = parameters.Count > 0 ? parameters[0].Value.ElementType : DataType.Float;
        g.Inputs.Add(new ValueInfo("learning_rate", elementType, []));
        g.Inputs.Add(new ValueInfo("step", DataType.Int64, []));
        string lr = "learning_rate";
        string stepF = e.Cast("step", elementType);
        string C(double v) => e.Scalar(v, elementType);
        var o = optimizer;
        foreach (var (name, value) in parameters)
        {
            var shape = value.Dims.Select(d => Dim.Of(d)).ToList();
            void In(string n) { g.Inputs.Add(new ValueInfo(n, value.ElementType, shape)); types[n] = value.ElementType; }
            void Out(string from, string to) { nodes.Add(new Node("Identity", [from], [to], e.FreshName($"{to}/Identity"))); g.Outputs.Add(new ValueInfo(to, value.ElementType, shape)); }
            In(name);
            In(name + "_grad");
            e.Prefix = name;
            string x = name, grad = name + "_grad";
            string gReg = o.WeightDecay != 0 && o.Kind != OptimizerKind.AdamW ? e.Add(grad, e.Mul(C(o.WeightDecay), x)) : grad;
            switch (o.Kind)
            {
                case OptimizerKind.Sgd:
                    Out(e.Sub(x, e.Mul(lr, gReg)), name + ".new");
                    break;
                case OptimizerKind.Momentum:
                case OptimizerKind.Nesterov:
                {
                    In(name + ".velocity");
                    string v = e.Add(e.Mul(C(o.Momentum), name + ".velocity"), gReg);
                    string direction = o.Kind == OptimizerKind.Nesterov ? e.Add(gReg, e.Mul(C(o.Momentum), v)) : v;
                    Out(e.Sub(x, e.Mul(lr, direction)), name + ".new");
                    Out(v, name + ".velocity.new");
                    break;
                }
                case OptimizerKind.Adam:
                case OptimizerKind.AdamW:
                {
                    In(name + ".m");
                    In(name + ".v");
                    double b1 = o.Beta1, b2 = o.Beta2, eps = o.Epsilon ?? 1e-8;
                    string m = e.Add(e.Mul(C(b1), name + ".m"), e.Mul(C(1 - b1), gReg));
                    string v = e.Add(e.Mul(C(b2), name + ".v"), e.Mul(C(1 - b2), e.Mul(gReg, gReg)));
                    // r' = lr·√(1−β2^t)/(1−β1^t)
                    string bias2 = e.Sqrt(e.Sub(C(1), e.Op("Pow", C(b2), stepF)));
                    string bias1 = e.Sub(C(1), e.Op("Pow", C(b1), stepF));
                    string r = e.Div(e.Mul(lr, bias2), bias1);
                    string updated = e.Sub(x, e.Mul(r, e.Div(m, e.Add(e.Sqrt(v), C(eps)))));
                    if (o.Kind == OptimizerKind.AdamW && o.WeightDecay != 0)
                        updated = e.Mul(e.Sub(C(1), e.Mul(lr, C(o.WeightDecay))), updated);
                    Out(updated, name + ".new");
                    Out(m, name + ".m.new");
                    Out(v, name + ".v.new");
                    break;
                }
                case OptimizerKind.Adagrad:
                {
                    In(name + ".accumulator");
                    string h = e.Add(name + ".accumulator", e.Mul(gReg, gReg));
                    Out(e.Sub(x, e.Div(e.Mul(lr, gReg), e.Add(e.Sqrt(h), C(o.Epsilon ?? 1e-10)))), name + ".new");
                    Out(h, name + ".accumulator.new");
                    break;
                }
            }
        }
        g.Nodes.AddRange(nodes);
        return model;
    }

    /// <summary>Drops trailing empty (absent optional) inputs: equivalent in ONNX, and some runtimes mishandle them.</summary>
    private static void TrimTrailingEmptyInputs(OnnxModel model)
    {
        foreach (var n in model.Graph.Nodes)
            while (n.Inputs.Count > 0 && n.Inputs[^1].Length == 0) n.Inputs.RemoveAt(n.Inputs.Count - 1);
    }

    /// <summary>Gives graph outputs of unknown element type the inferred one (ONNX Runtime rejects type 0).</summary>
    private static void FillOutputTypes(OnnxModel model)
    {
        var types = TypeInferencePass.Run(model.Graph, Runtime.ExecutionPlan.OpsetsOf(model));
        var g = model.Graph;
        for (int i = 0; i < g.Outputs.Count; i++)
        {
            var o = g.Outputs[i];
            if (o.ElementType == DataType.Undefined && types.TryGetValue(o.Name, out var t) && t != DataType.Undefined)
                g.Outputs[i] = new ValueInfo(o.Name, t, o.Shape) { DocString = o.DocString };
        }
    }

    /// <summary>Drops nodes none of whose outputs is read (after outputs were pruned to the loss and gradients).</summary>
    private static void PruneUnused(Graph g)
    {
        var live = new HashSet<string>(g.Outputs.Select(o => o.Name), StringComparer.Ordinal);
        var kept = new List<Node>();
        for (int i = g.Nodes.Count - 1; i >= 0; i--)
        {
            var n = g.Nodes[i];
            if (!n.Outputs.Any(live.Contains)) continue;
            kept.Add(n);
            foreach (var input in Runtime.ExecutionPlan.SubgraphAwareInputs(n)) live.Add(input);
        }
        kept.Reverse();
        g.Nodes.Clear();
        g.Nodes.AddRange(kept);
    }

    /// <summary>
    /// Replaces every node of our own domain by a call of a model-local function whose body is the op's
    /// <see cref="OpDefinition.StandardOps"/>; one function per op type and attribute set.
    /// </summary>
    internal static void LowerOwnOpsToFunctions(OnnxModel model)
    {
        var g = model.Graph;
        long opset = model.DefaultOpsetVersion;
        var functions = new Dictionary<string, FunctionProto>(StringComparer.Ordinal);
        foreach (var node in g.Nodes.Where(n => n.Domain == OpRegistry.BackpropDomain))
        {
            var def = OpRegistry.Find(node, 1);
            if (def.StandardOps is null)
                throw new UnsupportedOperatorException(node.OpType, node.Domain, 1, node.Name, "has no standard-op form, so it cannot be exported");
            string signature = node.OpType + "|" + string.Join(",", node.Inputs.Select(i => i.Length > 0 ? "1" : "0")) + "|" + string.Join(";", node.Attributes.Select(a => a.ToString()));
            if (!functions.TryGetValue(signature, out var fn))
            {
                fn = BuildFunction(node, def, opset, $"{node.OpType}_{functions.Count(kv => kv.Value.Name.StartsWith(node.OpType + "_", StringComparison.Ordinal))}");
                functions[signature] = fn;
            }
            node.OpType = fn.Name;
            node.Attributes.Clear();
            node.Inputs.RemoveAll(i => i.Length == 0);
        }
        if (functions.Count == 0) return;
        model.Functions.AddRange(functions.Values);
        if (model.OpsetVersion(OpRegistry.BackpropDomain) is null) model.OpsetImports.Add(new OpsetImport(OpRegistry.BackpropDomain, 1));
    }

    private static FunctionProto BuildFunction(Node node, OpDefinition def, long opset, string name)
    {
        var formals = node.Inputs.Select((i, k) => i.Length > 0 ? $"in{k}" : "").ToList();
        var template = new Node(node.OpType, formals, node.Outputs.Select((_, k) => $"out{k}"), "template", node.Domain);
        template.Attributes.AddRange(node.Attributes);
        var body = new List<Node>();
        var emitter = new GraphEmitter(body, opset, new Dictionary<string, DataType>(StringComparer.Ordinal), [.. formals.Where(f => f.Length > 0)]) { Prefix = name };
        var outputs = def.StandardOps!(emitter, template);
        for (int k = 0; k < outputs.Length; k++) body.Add(new Node("Identity", [outputs[k]], [$"out{k}"], emitter.FreshName($"out{k}/Identity")));
        var fn = new FunctionProto { Name = name, Domain = OpRegistry.BackpropDomain, DocString = $"{node.OpType} of Backprop.Onnx, in standard ONNX ops." };
        fn.Input.AddRange(formals.Where(f => f.Length > 0));
        fn.Output.AddRange(Enumerable.Range(0, outputs.Length).Select(k => $"out{k}"));
        fn.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        foreach (var n in body) fn.Node.Add(ModelExporter.WriteNode(n, null));
        return fn;
    }
}
