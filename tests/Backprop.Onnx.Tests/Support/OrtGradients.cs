using Backprop.Onnx.Autodiff;
using Backprop.Onnx.Export;
using Backprop.Onnx.IR;
using Backprop.Onnx.OnnxRuntime;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Support;

/// <summary>
/// Runs a model's gradient graph, exported in standard ONNX (<see cref="TrainingModels.BuildVjpModel"/>), on ONNX Runtime
/// and compares every output with our executor running our own gradient graph on the same feeds.
/// </summary>
internal static class OrtGradients
{
    /// <summary>Max |a − b| / max(|b|) of two tensors (0 for equal ones).</summary>
    public static double RelativeDifference(OnnxTensor ours, OnnxTensor theirs)
    {
        if (!ours.Shape.SequenceEqual(theirs.Shape)) return double.PositiveInfinity;
        double diff = 0, scale = 0;
        for (long i = 0; i < ours.ElementCount; i++)
        {
            double a = ours.GetDouble(i), b = theirs.GetDouble(i);
            diff = Math.Max(diff, double.IsNaN(a) != double.IsNaN(b) ? double.PositiveInfinity : double.IsNaN(a) ? 0 : Math.Abs(a - b));
            scale = Math.Max(scale, Math.Abs(b));
        }
        return scale > 0 ? diff / scale : diff;
    }

    /// <summary>
    /// Differences above <paramref name="tolerance"/>, one line each (empty when all match). <paramref name="feeds"/> holds
    /// the model's inputs; seeds are drawn from <paramref name="seed"/> for every float output.
    /// </summary>
    public static List<string> Compare(OnnxModel model, IReadOnlyDictionary<string, OnnxTensor> feeds, int seed, double tolerance = 1e-4, IEnumerable<string>? wrt = null)
    {
        var options = new GradientOptions { SeedInputs = true };
        foreach (var w in wrt ?? []) options.Wrt.Add(w);
        var ours = ReverseMode.Differentiate(model, options);
        var allFeeds = new Dictionary<string, OnnxTensor>(feeds, StringComparer.Ordinal);
        var forward = ExecutionPlan.Compile(model).Run(feeds);
        var random = new Random(seed);
        foreach (var (output, seedInput) in ours.Seeds)
        {
            var y = forward[output];
            var c = OnnxTensor.Zeros(y.ElementType, y.Shape);
            for (long i = 0; i < c.ElementCount; i++)
            {
                double v = random.NextDouble() * 2 - 1;
                if (c.ElementType == DataType.Float) c.AsSpan<float>()[(int)i] = (float)v; else c.AsSpan<double>()[(int)i] = v;
            }
            allFeeds[seedInput] = c;
        }
        var exported = TrainingModels.BuildVjpModel(model, options);
        var expected = ExecutionPlan.Compile(ours.Model).Run(allFeeds);
        var actual = OrtReference.Run(exported, allFeeds);
        var failures = new List<string>();
        foreach (var o in ours.Model.Graph.Outputs)
        {
            if (!actual.TryGetValue(o.Name, out var theirs)) { failures.Add($"{o.Name}: missing from ONNX Runtime's outputs"); continue; }
            double d = RelativeDifference(expected[o.Name], theirs);
            if (!(d <= tolerance)) failures.Add($"{o.Name}: relative difference {d:E2} (ours {expected[o.Name]}, ONNX Runtime {theirs})");
        }
        return failures;
    }
}
