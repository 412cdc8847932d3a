using Backprop.Onnx.IR;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The one greppable list of operators: each op family registers its definitions here. Lookup resolves a node to the
/// definition that covers its domain and operator-set version.
/// </summary>
internal static class OpRegistry
{
    /// <summary>The highest default-domain operator-set version any definition claims.</summary>
    public const int MaxKnownOpset = 17;

    /// <summary>Our own domain, for gradient kernels that have no standard op (each also has a standard-op function body).</summary>
    public const string BackpropDomain = "ai.backprop";

    /// <summary>The ONNX training domain (<c>Gradient</c>, <c>Adam</c>, <c>Adagrad</c>, <c>Momentum</c>).</summary>
    public const string TrainingDomain = "ai.onnx.preview.training";

    private static readonly Dictionary<(string Domain, string OpType), List<OpDefinition>> Definitions = Build();

    private static Dictionary<(string, string), List<OpDefinition>> Build()
    {
        var all = new List<OpDefinition>();
        // The op families, one file each under Ops/.
        ElementwiseOps.Register(all);
        ActivationOps.Register(all);
        MatMulOps.Register(all);
        ConvOps.Register(all);
        PoolingOps.Register(all);
        NormalizationOps.Register(all);
        ReductionOps.Register(all);
        SoftmaxOps.Register(all);
        ShapeOps.Register(all);
        IndexingOps.Register(all);
        TensorCreationOps.Register(all);
        LossOps.Register(all);
        MiscOps.Register(all);
        GradientOps.Register(all);
        TrainingOps.Register(all);

        var map = new Dictionary<(string, string), List<OpDefinition>>();
        foreach (var d in all)
        {
            var key = (d.Domain, d.OpType);
            if (!map.TryGetValue(key, out var list)) map[key] = list = [];
            list.Add(d);
        }
        return map;
    }

    /// <summary>Every registered definition (for the registry-completeness test and the op list in docs).</summary>
    public static IEnumerable<OpDefinition> All => Definitions.Values.SelectMany(l => l);

    public static string NormalizeDomain(string domain) => domain == "ai.onnx" ? "" : domain;

    /// <summary>The definition for <paramref name="node"/> at <paramref name="opsetVersion"/>, or null with the reason.</summary>
    public static OpDefinition? TryFind(Node node, long opsetVersion, out string reason)
    {
        if (!Definitions.TryGetValue((NormalizeDomain(node.Domain), node.OpType), out var list))
        {
            reason = "operator not implemented";
            return null;
        }
        foreach (var d in list)
        {
            if (opsetVersion >= d.MinVersion && opsetVersion <= d.MaxVersion)
            {
                reason = "";
                return d;
            }
        }
        reason = $"operator-set version {opsetVersion} not implemented (implemented: {string.Join(", ", list.Select(d => $"{d.MinVersion}-{d.MaxVersion}"))})";
        return null;
    }

    /// <summary>The definition for the node, or an <see cref="UnsupportedOperatorException"/>.</summary>
    public static OpDefinition Find(Node node, long opsetVersion) =>
        TryFind(node, opsetVersion, out var reason) ?? throw new UnsupportedOperatorException(node.OpType, node.Domain, opsetVersion, node.Name, reason);

    /// <summary>True when the op type exists in the registry at any version.</summary>
    public static bool Knows(string domain, string opType) => Definitions.ContainsKey((NormalizeDomain(domain), opType));
}
