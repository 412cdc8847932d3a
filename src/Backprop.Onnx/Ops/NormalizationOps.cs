using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// BatchNormalization, InstanceNormalization, LayerNormalization (NormalizationOps.Layer.cs) and Dropout
/// (DropoutOps.cs). Gradient rules: NormalizationOps.Gradients.cs.
/// </summary>
internal static partial class NormalizationOps
{
    public static void Register(List<OpDefinition> ops)
    {
        // ONNX spec "BatchNormalization" (1, 6, 7, 9, 14, 15): y = scale·(x - mean)/sqrt(var + epsilon) + B per channel
        // (dimension 1). Training mode (training_mode=1 from 14; before 14, when the mean/var outputs exist) normalizes
        // with the batch statistics and outputs running_mean/var = input·momentum + batch·(1 - momentum).
        ops.Add(new OpDefinition("BatchNormalization", CreateBatchNorm) { Vjp = BatchNormVjp });
        // ONNX spec "InstanceNormalization" (1, 6): y = scale·(x - mean)/sqrt(var + epsilon) + B, with mean and
        // (biased) variance per instance and channel over the spatial dimensions.
        ops.Add(new OpDefinition("InstanceNormalization", CreateInstanceNorm) { Vjp = InstanceNormVjp });
        // ONNX spec "LayerNormalization" (17): normalizes over dimensions axis..rank-1; optional Mean and InvStdDev
        // outputs shaped like X with those dimensions set to 1.
        ops.Add(new OpDefinition("LayerNormalization", CreateLayerNorm, minVersion: 17) { Vjp = LayerNormVjp });
        ops.Add(DropoutOps.Definition());
        ops.Add(DropoutOps.GradDefinition());
        ops.AddRange(GradDefinitions());
    }

    /// <summary>Attributes of a BatchNormalization node, parsed once.</summary>
    internal sealed record BatchNormAttributes(double Epsilon, double Momentum, bool Training);

    /// <summary>Parses and validates BatchNormalization's attributes for the node's opset.</summary>
    internal static BatchNormAttributes ParseBatchNorm(OpContext op)
    {
        var node = op.Node;
        long v = op.OpsetVersion;
        if (v < 9 && node.GetInt("spatial", 1) != 1) throw op.Unsupported("spatial=0 (statistics per activation rather than per channel)");
        bool training;
        if (v >= 14)
        {
            long mode = node.GetInt("training_mode", 0);
            if (mode is not (0 or 1)) throw op.Unsupported($"training_mode={mode} (0 or 1)");
            training = mode == 1;
        }
        else
        {
            // Before opset 14 the output count is the mode: Y alone is test mode; Y, mean, var, … is training mode.
            training = node.Outputs.Skip(1).Any(o => o.Length > 0);
            if (training && v < 7 && node.GetInt("is_test", 0) != 0) throw op.Unsupported("is_test=1 with training outputs");
            if (node.Outputs.Skip(3).Any(o => o.Length > 0))
                throw op.Unsupported("the saved_mean/saved_var outputs (their contents are implementation-defined)");
        }
        if (!training && node.Outputs.Skip(1).Any(o => o.Length > 0)) throw op.Unsupported("running mean/var outputs in inference mode");
        return new BatchNormAttributes(node.GetFloat("epsilon", 1e-5f), node.GetFloat("momentum", 0.9f), training);
    }

    /// <summary>Throws unless the first <paramref name="count"/> inputs' known types are one float type (float or double).</summary>
    internal static void RequireSameFloatTypes(OpContext op, int count)
    {
        op.RequireInputType(0, DataType.Float, DataType.Double);
        var t = op.InputType(0);
        for (int i = 1; i < count; i++)
        {
            var ti = op.InputType(i);
            if (t != DataType.Undefined && ti != DataType.Undefined && ti != t)
                throw op.Unsupported($"input {i} of type {DataTypes.OnnxName(ti)} with X of type {DataTypes.OnnxName(t)}");
        }
    }

    /// <summary>Σ (x - m)², vectorized with a fixed association order.</summary>
    internal static T SumOfSquaredDeviations<T>(ReadOnlySpan<T> x, T m) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Length, i = 0;
        T s = T.Zero;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported && n >= Vector<T>.Count)
        {
            var acc = Vector<T>.Zero;
            var mv = new Vector<T>(m);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
            {
                var d = new Vector<T>(x[i..]) - mv;
                acc += d * d;
            }
            s = Vector.Sum(acc);
        }
        for (; i < n; i++) s += (x[i] - m) * (x[i] - m);
        return s;
    }
}
