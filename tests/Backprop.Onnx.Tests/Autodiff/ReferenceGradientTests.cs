using Backprop.Onnx.Autodiff;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Autodiff;

/// <summary>
/// Every gradient-reference model of onnx-models/ (exported by PyTorch, with PyTorch float64 autograd VJPs): our
/// outputs and gradients for the same inputs and cotangents, in float64 (relative error ≤ 1e-6) and float32 (≤ 1e-3).
/// </summary>
[TestClass]
public sealed class ReferenceGradientTests
{
    public static IEnumerable<object[]> Cases =>
        ReferenceModels.GradientReferences.SelectMany(m => new[] { new object[] { m.Id, "float64" }, new object[] { m.Id, "float32" } });

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void GradientsMatchPyTorch(string id, string precision)
    {
        var reference = ReferenceModels.Get(id);
        bool f64 = precision == "float64";
        var model = ModelImporter.Load(reference.ModelPath);
        if (f64) model = Precision.ToDouble(model);
        var dtype = f64 ? DataType.Double : DataType.Float;
        var options = new GradientOptions { SeedInputs = true };
        foreach (var o in reference.Manifest.Outputs) options.Outputs.Add(o.Name);
        var expectedGrads = reference.LoadGradients();
        foreach (var name in expectedGrads.Keys) options.Wrt.Add(name);
        var gm = ReverseMode.Differentiate(model, options);

        var feeds = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var (name, t) in reference.LoadInputs()) feeds[name] = f64 ? Precision.ToDouble(t) : t;
        foreach (var (output, seed) in reference.LoadCotangents()) feeds[gm.Seeds[output]] = f64 ? seed : Precision.ToSingle(seed);
        var results = ExecutionPlan.Compile(gm.Model, new ExecutionOptions { Threads = 2 }).Run(feeds);

        double tolerance = reference.Tolerance(dtype);
        var failures = new List<string>();
        foreach (var (output, expected) in reference.LoadOutputs())
        {
            double err = ReferenceModels.RelativeError(results[output], expected);
            if (!(err <= tolerance)) failures.Add($"output {output}: relative error {err:E2}");
        }
        foreach (var (name, expected) in expectedGrads)
        {
            double err = ReferenceModels.RelativeError(results[gm.Gradients[name]], expected);
            if (!(err <= tolerance)) failures.Add($"grad {name}: relative error {err:E2}");
        }
        Assert.IsEmpty(failures, $"{id} ({precision}, tolerance {tolerance:E0}):\n{string.Join("\n", failures)}");
    }
}
