using Backprop.Onnx.Autodiff;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Tests.Verification;

/// <summary>
/// <c>gradcheck</c> on the backend suite's PyTorch models, as the CLI runs it: seeded random inputs in [−1, 1) (the data
/// sets of pytorch-operator hold uninitialized memory, up to 1e219, where finite differences measure nothing). Every
/// model whose ops all run and have gradient rules passes, unless its forward pass is not finite at those inputs
/// (Sqrt or Pow of negatives), which is listed as skipped.
/// </summary>
[TestClass]
public sealed class BackendGradcheckTests
{
    [TestMethod]
    [DataRow("pytorch-converted", 82)]
    [DataRow("pytorch-operator", 32)]
    public void EveryDifferentiableModel_PassesTheFiniteDifferenceCheck(string suite, int checkedFloor)
    {
        TestPaths.RequireOnnxTestData();
        var failures = new List<string>();
        var skipped = new List<string>();
        int checkedModels = 0;
        foreach (var dir in Conformance.FindTests([Path.Combine(TestPaths.OnnxTestData, suite)]))
        {
            string name = Path.GetFileName(dir);
            var model = ModelImporter.Load(Path.Combine(dir, "model.onnx"));
            try { ExecutionPlan.Compile(model); }
            catch (UnsupportedOperatorException e) { skipped.Add($"{name}: {e.Message}"); continue; }
            var report = ReverseMode.Analyze(Precision.ToDouble(model));
            if (!report.IsDifferentiable)
            {
                skipped.Add($"{name}: {string.Join("; ", report.Errors.Select(i => i.Detail))}");
                continue;
            }
            var inputs = Runtime.OnnxRuntimeComparisonTests.RandomInputs(model.Graph, seed: 0, integersBelow: 1);
            var outputs = ExecutionPlan.Compile(model).Run(inputs);
            if (outputs.Values.Any(t => DataTypes.IsFloatingPoint(t.ElementType) && Enumerable.Range(0, (int)t.ElementCount).Any(i => !double.IsFinite(t.GetDouble(i)))))
            {
                skipped.Add($"{name}: the forward pass is not finite at the drawn inputs");
                continue;
            }
            try
            {
                var check = GradientCheck.Run(model, inputs, new GradientCheckOptions { Seed = 1, RelativeTolerance = 1e-4 });
                if (check.Tensors.Count == 0) { skipped.Add($"{name}: no float tensor to check"); continue; }
                checkedModels++;
                if (!check.Passed) failures.Add($"{name}:\n{check}");
            }
            catch (BackpropOnnxException e) { failures.Add($"{name}: {e.Message}"); }
        }
        Console.WriteLine($"{suite}: {checkedModels} checked, {failures.Count} failed, {skipped.Count} skipped");
        foreach (var s in skipped) Console.WriteLine($"skipped {s}");
        Assert.IsEmpty(failures, string.Join("\n", failures));
        Assert.IsGreaterThanOrEqualTo(checkedFloor, checkedModels, $"only {checkedModels} models were checked");
    }
}
