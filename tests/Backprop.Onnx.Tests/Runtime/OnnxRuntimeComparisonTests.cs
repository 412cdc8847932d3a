using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.OnnxRuntime;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// Every model of onnx-models/ and of the backend suite's pytorch-converted folder, run by our executor and by ONNX
/// Runtime on the same seeded random inputs: outputs agree within rtol 1e-4, atol 1e-5.
/// </summary>
[TestClass]
public sealed class OnnxRuntimeComparisonTests
{
    public static IEnumerable<object[]> Models
    {
        get
        {
            foreach (var m in ReferenceModels.All) yield return [m.ModelPath];
            string converted = Path.Combine(TestPaths.OnnxTestData, "pytorch-converted");
            if (Directory.Exists(converted))
                foreach (var dir in Conformance.FindTests([converted])) yield return [Path.Combine(dir, "model.onnx")];
        }
    }

    public static string Name(System.Reflection.MethodInfo _, object[] row) =>
        Path.GetRelativePath(Path.GetDirectoryName(Path.GetDirectoryName((string)row[0])!)!, (string)row[0]);

    internal static Dictionary<string, OnnxTensor> RandomInputs(Graph graph, int seed, int integersBelow = 2)
    {
        var random = new Random(seed);
        var feeds = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var v in graph.RuntimeInputs)
        {
            int[] shape = [.. (v.Shape ?? []).Select(d => d.Value is { } n ? checked((int)n) : 2)];
            int count = shape.Aggregate(1, (a, b) => a * b);
            feeds[v.Name] = v.ElementType switch
            {
                DataType.Float => OnnxTensor.FromArray(Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), shape),
                DataType.Double => OnnxTensor.FromArray(Enumerable.Range(0, count).Select(_ => random.NextDouble() * 2 - 1).ToArray(), shape),
                DataType.Int64 => OnnxTensor.FromArray(Enumerable.Range(0, count).Select(_ => (long)random.Next(integersBelow)).ToArray(), shape),
                DataType.Int32 => OnnxTensor.FromArray(Enumerable.Range(0, count).Select(_ => random.Next(integersBelow)).ToArray(), shape),
                DataType.Bool => OnnxTensor.FromArray(Enumerable.Range(0, count).Select(_ => random.Next(2) == 1).ToArray(), shape),
                _ => throw new AssertInconclusiveException($"input '{v.Name}' is {DataTypes.OnnxName(v.ElementType)}"),
            };
        }
        return feeds;
    }

    [TestMethod]
    [DynamicData(nameof(Models), DynamicDataDisplayName = nameof(Name))]
    public void OutputsMatchOnnxRuntime(string modelPath)
    {
        var model = ModelImporter.Load(modelPath);
        ExecutionPlan plan;
        try { plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 2 }); }
        catch (UnsupportedOperatorException e)
        {
            // Only tolerated for the backend suite's models, which the conformance floors track.
            Assert.IsFalse(modelPath.StartsWith(TestPaths.OnnxModels, StringComparison.Ordinal), e.Message);
            return;
        }
        var feeds = RandomInputs(model.Graph, seed: 11);
        var ours = plan.Run(feeds);
        Dictionary<string, OnnxTensor> theirs;
        try { theirs = OrtReference.Run(model, feeds, threads: 2); }
        catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e) when (e.Message.Contains("NotImplemented", StringComparison.Ordinal))
        {
            // e.g. float64 kernels of old opsets that ONNX Runtime's CPU provider lacks: there is no oracle to compare with.
            Assert.Inconclusive($"ONNX Runtime cannot run this model: {e.Message}");
            return;
        }
        var failures = new List<string>();
        foreach (var o in model.Graph.Outputs)
        {
            string? why = Conformance.Compare(ours[o.Name], theirs[o.Name], rtol: 1e-4, atol: 1e-5);
            if (why is not null) failures.Add($"{o.Name}: {why}");
        }
        Assert.IsEmpty(failures, string.Join("\n", failures));
    }
}
