using Backprop.Onnx.Export;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.OnnxRuntime;
using Backprop.Onnx.Protobuf;
using Backprop.Onnx.Tests.Import;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Export;

/// <summary>
/// <see cref="ModelExporter.Save"/>: models over the 2 GB threshold go out with external data (tested with the threshold
/// lowered), files are replaced atomically, and a write that fails half-way leaves the previous file as it was.
/// </summary>
[TestClass]
public sealed class ModelExporterTests
{
    private const int Big = 600; // 2,400 bytes: at least ExternalTensorMinBytes, so it goes to the data file

    /// <summary>Y = (X + W) * S with X, W float[600] and S float[1].</summary>
    private static OnnxModel Model()
    {
        var model = new OnnxModel { IrVersion = 8, ProducerName = "tests" };
        model.OpsetImports.Add(new OpsetImport("", 17));
        var g = model.Graph;
        g.Name = "scaled_sum";
        g.Inputs.Add(new ValueInfo("X", DataType.Float, [Dim.Of(Big)]));
        g.Outputs.Add(new ValueInfo("Y", DataType.Float, [Dim.Of(Big)]));
        g.Initializers.Add("W", OnnxTensor.FromArray(Enumerable.Range(0, Big).Select(i => i * 0.25f - 7f).ToArray(), Big));
        g.Initializers.Add("S", OnnxTensor.FromArray(new[] { 3f }, 1));
        g.Nodes.Add(new Node("Add", ["X", "W"], ["T"], "add"));
        g.Nodes.Add(new Node("Mul", ["T", "S"], ["Y"], "mul"));
        return model;
    }

    private static T WithThreshold<T>(long threshold, Func<T> action)
    {
        ModelExporter.EffectiveExternalDataThreshold = threshold;
        try { return action(); }
        finally { ModelExporter.EffectiveExternalDataThreshold = ModelExporter.ExternalDataThreshold; }
    }

    [TestMethod]
    public void Save_UnderTheThreshold_WritesOneFileWithEveryTensorInline()
    {
        using var folder = new TempFolder();
        string path = folder.File("model.onnx");
        ModelExporter.Save(Model(), path);
        CollectionAssert.AreEqual(new[] { "model.onnx" }, Directory.GetFiles(folder.Path).Select(Path.GetFileName).ToArray());
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.IsTrue(proto.Graph.Initializer.All(t => t.HasRawData && t.ExternalData.Count == 0));
        Assert.IsEmpty(IrComparer.Differences(Model(), ModelImporter.Load(path)));
    }

    [TestMethod]
    public void Save_OverTheThreshold_WritesLargeTensorsAsExternalData_ThatWeAndOnnxRuntimeRead()
    {
        using var folder = new TempFolder();
        string path = folder.File("model.onnx");
        WithThreshold(1000, () => { ModelExporter.Save(Model(), path); return 0; });

        var files = Directory.GetFiles(folder.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.HasCount(2, files);
        Assert.AreEqual("model.onnx", files[0]);
        StringAssert.Matches(files[1], new System.Text.RegularExpressions.Regex(@"^model\.onnx\.[0-9a-f]{8}\.data$"));
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var w = proto.Graph.Initializer.Single(t => t.Name == "W");
        var s = proto.Graph.Initializer.Single(t => t.Name == "S");
        Assert.AreEqual(TensorProto.Types.DataLocation.External, w.DataLocation);
        Assert.IsFalse(w.HasRawData);
        Assert.AreEqual(files[1], w.ExternalData.Single(e => e.Key == "location").Value);
        Assert.AreEqual((Big * 4).ToString(System.Globalization.CultureInfo.InvariantCulture), w.ExternalData.Single(e => e.Key == "length").Value);
        Assert.IsTrue(s.HasRawData, "tensors under ExternalTensorMinBytes stay inline");

        var loaded = ModelImporter.Load(path);
        Assert.IsEmpty(IrComparer.Differences(Model(), loaded));

        var x = OnnxTensor.FromArray(Enumerable.Range(0, Big).Select(i => (float)Math.Sin(i)).ToArray(), Big);
        var inputs = new Dictionary<string, OnnxTensor> { ["X"] = x };
        using var fromFile = OrtReferenceSession.LoadFile(path);
        var viaExternalData = fromFile.Run(inputs)["Y"];
        var inline = OrtReference.Run(Model(), inputs)["Y"];
        Assert.IsTrue(viaExternalData.ContentEquals(inline), "ONNX Runtime reads our external data file as the inline model");
    }

    [TestMethod]
    public void ToBytes_OverTheThreshold_Refuses()
    {
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => WithThreshold(1000, () => ModelExporter.ToBytes(Model())));
        Assert.Contains("2 GB", e.Message);
    }

    [TestMethod]
    public void TheThresholdOverride_DefaultsToThePublicConstant()
    {
        Assert.AreEqual(ModelExporter.ExternalDataThreshold, ModelExporter.EffectiveExternalDataThreshold);
        Assert.AreEqual(2_000_000_000L, ModelExporter.ExternalDataThreshold);
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void Save_OverAnExistingFile_ReplacesIt_AndLeavesNoTemporaryFiles(bool external)
    {
        using var folder = new TempFolder();
        string path = folder.File("model.onnx");
        File.WriteAllText(path, "previous contents");
        long threshold = external ? 1000 : ModelExporter.ExternalDataThreshold;
        // Save twice: the second save replaces the model and removes the first save's data file.
        WithThreshold(threshold, () => { ModelExporter.Save(Model(), path); return 0; });
        WithThreshold(threshold, () => { ModelExporter.Save(Model(), path); return 0; });
        var files = Directory.GetFiles(folder.Path).Select(Path.GetFileName).ToArray();
        Assert.HasCount(external ? 2 : 1, files);
        Assert.Contains("model.onnx", files);
        Assert.IsEmpty(Directory.GetFiles(folder.Path, "*.tmp"), "no temporary file is left");
        Assert.IsEmpty(IrComparer.Differences(Model(), ModelImporter.Load(path)));
        if (external) Assert.IsGreaterThanOrEqualTo(Big * 4L, new FileInfo(Directory.GetFiles(folder.Path, "model.onnx.*.data").Single()).Length);
    }

    [TestMethod]
    public void AWriteThatThrowsHalfWay_LeavesThePreviousFileIntact_AndNoTemporaryFiles()
    {
        using var folder = new TempFolder();
        string path = folder.File("model.onnx");
        ModelExporter.Save(Model(), path);
        byte[] before = File.ReadAllBytes(path);

        var e = Assert.ThrowsExactly<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[10_000]); // half a file...
            stream.Flush();
            throw new IOException("simulated failure half-way through the write");
        }));
        Assert.Contains("simulated", e.Message);

        CollectionAssert.AreEqual(before, File.ReadAllBytes(path), "the previous file is untouched");
        CollectionAssert.AreEqual(new[] { "model.onnx" }, Directory.GetFiles(folder.Path).Select(Path.GetFileName).ToArray(), "no temporary file is left");
    }

    [TestMethod]
    public void AWriteThatThrowsHalfWay_OnANewPath_LeavesNothing()
    {
        using var folder = new TempFolder();
        Assert.ThrowsExactly<InvalidOperationException>(() => AtomicFile.Write(folder.File("new.onnx"), stream =>
        {
            stream.WriteByte(1);
            throw new InvalidOperationException("simulated");
        }));
        Assert.IsEmpty(Directory.GetFiles(folder.Path));
    }

    [TestMethod]
    public void Save_IntoAFolderThatDoesNotExist_RaisesIOException()
    {
        using var folder = new TempFolder();
        Assert.Throws<IOException>(() => ModelExporter.Save(Model(), folder.File("missing/model.onnx")));
    }

    [TestMethod]
    public void ExportedBytes_AreAFixedPoint_AndKeepEveryField()
    {
        var model = Model();
        model.DocString = "doc";
        model.MetadataProps.Add(new("key", "value"));
        model.Graph.Nodes[0].Attributes.Add(OnnxAttribute.FromString("note", "kept"));
        byte[] first = ModelExporter.ToBytes(model);
        var again = ModelImporter.Load(first);
        Assert.IsEmpty(IrComparer.Differences(model, again));
        CollectionAssert.AreEqual(first, ModelExporter.ToBytes(again));
    }
}
