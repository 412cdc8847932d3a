using Backprop.Onnx.IR;

namespace Backprop.Onnx.Training;

/// <summary>Graph transforms that turn an inference graph into its training-mode form.</summary>
public static class TrainingGraph
{
    /// <summary>
    /// Switches BatchNormalization nodes (opset 14+, ONNX spec "BatchNormalization" training_mode) to training mode:
    /// normalization by batch statistics, and running mean and variance outputs (input_mean·momentum +
    /// batch_mean·(1 − momentum)) that become graph outputs. Modifies <paramref name="model"/>'s graph in place.
    /// </summary>
    /// <returns>For each running-statistics initializer, the graph output holding its updated value.</returns>
    public static IReadOnlyDictionary<string, string> UseBatchStatistics(OnnxModel model)
    {
        var updates = new Dictionary<string, string>(StringComparer.Ordinal);
        if (model.DefaultOpsetVersion < 14) return updates;
        var g = model.Graph;
        foreach (var node in g.Nodes.Where(n => n.OpType == "BatchNormalization" && n.IsDefaultDomain))
        {
            if (node.Inputs.Count < 5) continue;
            string mean = node.Inputs[3], variance = node.Inputs[4];
            if (!g.Initializers.ContainsKey(mean) || !g.Initializers.ContainsKey(variance)) continue;
            node.SetAttribute(OnnxAttribute.FromInt("training_mode", 1));
            while (node.Outputs.Count < 3) node.Outputs.Add("");
            for (int k = 1; k <= 2; k++)
            {
                string buffer = k == 1 ? mean : variance;
                if (node.Outputs[k].Length == 0) node.Outputs[k] = $"{buffer}__updated";
                updates[buffer] = node.Outputs[k];
                if (g.Outputs.All(o => o.Name != node.Outputs[k])) g.Outputs.Add(new ValueInfo(node.Outputs[k], g.Initializers[buffer].ElementType, null));
            }
        }
        return updates;
    }
}
