using Backprop.Onnx.IR;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Tests.Support;

/// <summary>
/// Finite-difference gradient checks of one op (float64): builds a single-node model whose inputs are graph inputs
/// x0, x1, … and checks the gradient of Σ ⟨c, y⟩ with respect to every float input against central differences.
/// </summary>
internal static class GradCheck
{
    /// <summary>Random float64 tensor with elements uniform in [lo, hi), seeded.</summary>
    public static OnnxTensor Random(int seed, int[] shape, double lo = -1, double hi = 1)
    {
        var r = new Random(seed);
        long n = 1;
        foreach (int d in shape) n *= d;
        var data = new double[n];
        for (int i = 0; i < data.Length; i++) data[i] = lo + (hi - lo) * r.NextDouble();
        return OnnxTensor.FromArray(data, shape);
    }

    /// <summary>
    /// Asserts that the op's gradients match finite differences. <paramref name="wrt"/> lists the input positions to
    /// check (default: every float64 input). Prints the report (with its seed) on failure.
    /// </summary>
    public static GradientCheckReport Op(string opType, OnnxTensor?[] inputs, OnnxAttribute[]? attributes = null, int outputCount = 1,
        long opset = 17, int[]? wrt = null, int seed = 1, double relativeTolerance = 1e-5, string domain = "", bool onnxRuntime = true)
    {
        var model = SingleNode.Model(opType, inputs, outputCount, opset, domain, attributes ?? []);
        var feeds = new Dictionary<string, OnnxTensor>();
        for (int i = 0; i < inputs.Length; i++) if (inputs[i] is { } t) feeds[$"x{i}"] = t;
        var options = new GradientCheckOptions { Seed = seed, RelativeTolerance = relativeTolerance };
        var positions = wrt ?? Enumerable.Range(0, inputs.Length).Where(i => inputs[i] is { ElementType: DataType.Double }).ToArray();
        foreach (int i in positions) options.Wrt.Add($"x{i}");
        // Outputs that are not floating-point (indices, masks) cannot be differentiated: keep only float outputs.
        var plan = Backprop.Onnx.Runtime.ExecutionPlan.Compile(model);
        var outs = plan.Run(feeds);
        model.Graph.Outputs.RemoveAll(o => !DataTypes.IsFloatingPoint(outs[o.Name].ElementType));
        var report = GradientCheck.Run(model, feeds, options);
        Assert.IsTrue(report.Passed, $"{opType} gradient check failed:\n{report}");
        Assert.IsNotEmpty(report.Tensors, $"{opType}: no tensor was checked\n{report}");
        if (onnxRuntime && opset >= 13 && domain.Length == 0) CheckOnOnnxRuntime(opType, inputs, attributes ?? [], outputCount, opset, positions, seed, model.Graph.Outputs.Select(o => o.Name).ToHashSet());
        return report;
    }

    /// <summary>
    /// The same case in float32, its gradient graph exported in standard ONNX and run by ONNX Runtime: every output and
    /// gradient must match our executor within a relative difference of 1e-4.
    /// </summary>
    private static void CheckOnOnnxRuntime(string opType, OnnxTensor?[] inputs, OnnxAttribute[] attributes, int outputCount, long opset, int[] positions, int seed, HashSet<string> floatOutputs)
    {
        var single = inputs.Select(t => t is null ? null : Backprop.Onnx.Autodiff.Precision.ToSingle(t)).ToArray();
        var model = SingleNode.Model(opType, single, outputCount, opset, "", attributes);
        model.Graph.Outputs.RemoveAll(o => !floatOutputs.Contains(o.Name));
        var feeds = new Dictionary<string, OnnxTensor>();
        for (int i = 0; i < single.Length; i++) if (single[i] is { } t) feeds[$"x{i}"] = t;
        var failures = OrtGradients.Compare(model, feeds, seed, 1e-4, positions.Select(i => $"x{i}"));
        Assert.IsEmpty(failures, $"{opType}: ONNX Runtime on the exported gradient graph differs from our executor:\n{string.Join("\n", failures)}");
    }
}
