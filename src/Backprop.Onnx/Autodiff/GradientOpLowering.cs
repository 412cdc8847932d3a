using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Autodiff;

/// <summary>
/// Executes the standard <c>Gradient</c> op of <c>ai.onnx.preview.training</c> (ONNX operator spec: outputs are
/// ∂y/∂xs for the graph's own computation of <c>y</c> from the values named in <c>xs</c>, with a seed of ones) by
/// lowering each Gradient node into the backward nodes the reverse-mode pass builds for it.
/// </summary>
internal static class GradientOpLowering
{
    public static bool Needs(OnnxModel model) => model.Graph.Nodes.Any(IsGradient);

    private static bool IsGradient(Node n) => n.OpType == "Gradient" && n.Domain == OpRegistry.TrainingDomain;

    /// <summary>A copy of the model in which every Gradient node is replaced by its backward nodes.</summary>
    /// <exception cref="UnsupportedOperatorException">A Gradient node's attributes are malformed or use <c>zs</c>.</exception>
    public static OnnxModel Lower(OnnxModel model)
    {
        var result = ModelCopy.Shallow(model);
        var g = result.Graph;
        var names = new HashSet<string>(g.Nodes.SelectMany(n => n.Outputs).Concat(g.Nodes.Select(n => n.Name)).Concat(g.Inputs.Select(v => v.Name)).Concat(g.Initializers.Keys), StringComparer.Ordinal);
        long version = model.OpsetVersion(OpRegistry.TrainingDomain) ?? 1;
        for (int k = 0; k < g.Nodes.Count; k++)
        {
            var node = g.Nodes[k];
            if (!IsGradient(node)) continue;
            var xs = node.FindAttribute("xs")?.Strings.Select(s => System.Text.Encoding.UTF8.GetString(s)).ToArray()
                ?? throw new UnsupportedOperatorException("Gradient", node.Domain, version, node.Name, "attribute 'xs' is required");
            string y = node.GetString("y", "");
            if (y.Length == 0) throw new UnsupportedOperatorException("Gradient", node.Domain, version, node.Name, "attribute 'y' is required");
            if (node.HasAttribute("zs")) throw new UnsupportedOperatorException("Gradient", node.Domain, version, node.Name, "attribute 'zs' is not supported");
            if (node.Outputs.Count != xs.Length) throw new UnsupportedOperatorException("Gradient", node.Domain, version, node.Name, $"{xs.Length} xs but {node.Outputs.Count} outputs");

            // The forward computation: every node but Gradient nodes, differentiated at y with respect to xs.
            var forward = ModelCopy.Shallow(model);
            forward.Graph.Nodes.RemoveAll(IsGradient);
            forward.Graph.Outputs.Clear();
            forward.Graph.Outputs.Add(new ValueInfo(y, DataType.Undefined, null));
            var options = new GradientOptions { Outputs = { y } };
            foreach (var x in xs) options.Wrt.Add(x);
            var gm = ReverseMode.Differentiate(forward, options);

            // Splice in the backward nodes (those after the forward ones), renamed apart from the graph's names,
            // and route each gradient to the Gradient node's output.
            var backward = gm.Model.Graph.Nodes.Skip(forward.Graph.Nodes.Count).ToList();
            var rename = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int i = 0; i < xs.Length; i++) rename[gm.Gradients[xs[i]]] = node.Outputs[i];
            string Fresh(string n)
            {
                string c = $"{node.Name}/{n}";
                for (int j = 1; !names.Add(c); j++) c = $"{node.Name}/{n}_{j}";
                return c;
            }
            foreach (var b in backward)
                foreach (var o in b.Outputs)
                    if (o.Length > 0 && !rename.ContainsKey(o)) rename[o] = Fresh(o);
            var spliced = backward.Select(b =>
            {
                var c = new Node(b.OpType, b.Inputs.Select(i => rename.GetValueOrDefault(i, i)), b.Outputs.Select(o => rename.GetValueOrDefault(o, o)), Fresh(b.Name), b.Domain);
                c.Attributes.AddRange(b.Attributes);
                return c;
            }).ToList();
            g.Nodes.RemoveAt(k);
            g.Nodes.InsertRange(k, spliced);
            k += spliced.Count - 1;
            foreach (var o in gm.Model.OpsetImports)
                if (result.OpsetVersion(o.Domain) is null) result.OpsetImports.Add(o);
        }
        return result;
    }
}
