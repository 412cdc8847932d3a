using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Import;

/// <summary>
/// Every model.onnx of onnx-models/ (exported by PyTorch through tools/reference-models/generate.py) imports, and the
/// imported graph agrees with its manifest: graph input/output names, types and shapes, one initializer per parameter
/// and buffer (the names the reference gradients are keyed by), the op histogram; the reference tensors load with
/// the names, types and shapes the manifest gives.
/// </summary>
[TestClass]
public sealed class ReferenceModelsImportTests
{
    private static readonly string[] s_expectedIds =
    [
        "bench/w1_mlp", "bench/w2_lenet", "bench/w3_resnet", "bench/w4_transformer",
        "embedding", "grouped_conv", "lenet", "lenet_fashion", "mlp", "reshape_ops", "resnet_small", "resnet_small_train",
        "shared_weight", "transformer",
    ];

    public static IEnumerable<object[]> AllModels => ReferenceModels.Rows(ReferenceModels.All);

    public static IEnumerable<object[]> GradientReferenceModels => ReferenceModels.Rows(ReferenceModels.GradientReferences);

    [TestMethod]
    public void OnnxModels_HoldsEveryGeneratedModel_EachWithItsManifest()
    {
        CollectionAssert.AreEquivalent(s_expectedIds, ReferenceModels.All.Select(m => m.Id).ToArray());
        var orphans = Directory.EnumerateFiles(TestPaths.OnnxModels, "*.onnx", SearchOption.AllDirectories)
            .Where(p => !File.Exists(Path.Combine(Path.GetDirectoryName(p)!, "manifest.json")))
            .ToList();
        Assert.IsEmpty(orphans, $"ONNX files without a manifest: {string.Join(", ", orphans)}");
        Assert.HasCount(9, ReferenceModels.GradientReferences.ToList());
    }

    [TestMethod]
    [DynamicData(nameof(AllModels))]
    public void Import_AgreesWithManifest(string id)
    {
        var reference = ReferenceModels.Get(id);
        var manifest = reference.Manifest;
        var model = ModelImporter.Load(reference.ModelPath);
        var graph = model.Graph;

        Assert.AreEqual(manifest.Opset, model.DefaultOpsetVersion, $"{id}: opset");

        var inputs = graph.RuntimeInputs.ToList();
        CollectionAssert.AreEqual(manifest.Inputs.Select(v => v.Name).ToArray(), inputs.Select(v => v.Name).ToArray(), $"{id}: graph inputs");
        for (int i = 0; i < inputs.Count; i++) AssertValue(id, manifest.Inputs[i], inputs[i]);
        CollectionAssert.AreEqual(manifest.Outputs.Select(v => v.Name).ToArray(), graph.Outputs.Select(v => v.Name).ToArray(), $"{id}: graph outputs");
        for (int i = 0; i < graph.Outputs.Count; i++) AssertValue(id, manifest.Outputs[i], graph.Outputs[i]);

        foreach (var p in manifest.Parameters.Concat(manifest.Buffers))
        {
            Assert.IsTrue(graph.Initializers.TryGetValue(p.Name, out var init), $"{id}: no initializer '{p.Name}' (have: {string.Join(", ", graph.Initializers.Keys)})");
            Assert.AreEqual(p.ElementType, init.ElementType, $"{id}: type of '{p.Name}'");
            CollectionAssert.AreEqual(p.Shape, init.Shape.ToArray(), $"{id}: shape of '{p.Name}'");
        }
        CollectionAssert.AreEquivalent(manifest.Parameters.Concat(manifest.Buffers).Select(p => p.Name).ToArray(), graph.Initializers.Keys.ToArray(),
            $"{id}: initializers are exactly the parameters and buffers");

        var histogram = graph.Nodes.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        CollectionAssert.AreEquivalent(manifest.OpHistogram.ToArray(), histogram.ToArray(), $"{id}: op histogram");
        Assert.IsTrue(graph.Nodes.All(n => n.Domain is "" or "ai.onnx"), $"{id}: a node outside the default domain");
    }

    [TestMethod]
    [DynamicData(nameof(GradientReferenceModels))]
    public void ReferenceTensors_LoadWithManifestNamesAndShapes(string id)
    {
        var reference = ReferenceModels.Get(id);
        var manifest = reference.Manifest;
        var graph = ModelImporter.Load(reference.ModelPath).Graph;

        var inputs = reference.LoadInputs();
        var cotangents = reference.LoadCotangents();
        var outputs = reference.LoadOutputs();
        var grads = reference.LoadGradients();

        Assert.HasCount(manifest.Inputs.Count, inputs);
        foreach (var v in manifest.Outputs)
        {
            CollectionAssert.AreEqual(outputs[v.Name].Shape.ToArray(), cotangents[v.Name].Shape.ToArray(), $"{id}: cotangent of '{v.Name}'");
            Assert.AreEqual(DataType.Double, outputs[v.Name].ElementType, $"{id}: reference output '{v.Name}'");
        }
        var floatInputs = manifest.Inputs.Where(v => v.ElementType == DataType.Float).Select(v => v.Name);
        CollectionAssert.AreEquivalent(manifest.Parameters.Select(p => p.Name).Concat(floatInputs).ToArray(), grads.Keys.ToArray(),
            $"{id}: a gradient for every parameter and float input");
        foreach (var (name, grad) in grads)
        {
            var primal = graph.Initializers.TryGetValue(name, out var init) ? init : inputs[name];
            CollectionAssert.AreEqual(primal.Shape.ToArray(), grad.Shape.ToArray(), $"{id}: gradient of '{name}' has its primal's shape");
            Assert.AreEqual(DataType.Double, grad.ElementType, $"{id}: gradient of '{name}'");
        }
        Assert.IsLessThan(reference.Tolerance(DataType.Float), manifest.TorchFloat32MaxRelError ?? double.PositiveInfinity,
            $"{id}: PyTorch's own float32 run meets the float32 target");
        Assert.AreEqual(1e-6, reference.Tolerance(DataType.Double), $"{id}: float64 target");
    }

    private static void AssertValue(string id, ManifestValue expected, ValueInfo actual)
    {
        Assert.AreEqual(expected.ElementType, actual.ElementType, $"{id}: type of '{expected.Name}'");
        Assert.IsNotNull(actual.Shape, $"{id}: '{expected.Name}' has no shape");
        var dims = expected.GraphDims;
        Assert.HasCount(dims.Count, actual.Shape, $"{id}: rank of '{expected.Name}'");
        for (int i = 0; i < dims.Count; i++)
        {
            Assert.AreEqual(dims[i].Value, actual.Shape[i].Value, $"{id}: dim {i} of '{expected.Name}'");
            Assert.AreEqual(dims[i].Param, actual.Shape[i].Param, $"{id}: dim {i} of '{expected.Name}'");
        }
        if (expected.Shape is { } shape)
        {
            Assert.HasCount(shape.Length, dims, $"{id}: example shape of '{expected.Name}'");
            for (int i = 0; i < shape.Length; i++)
                Assert.IsTrue(dims[i].Value is null || dims[i].Value == shape[i], $"{id}: example dim {i} of '{expected.Name}' is not {dims[i]}");
        }
    }
}
