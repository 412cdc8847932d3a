using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Protobuf;

namespace Backprop.Onnx.Tests.Import;

/// <summary>
/// External tensor data (ONNX IR spec, "External tensor data"): valid files load, and every location that would read
/// outside the model's folder, or past the end of the data, is a <see cref="ModelFormatException"/> naming the model
/// file and the tensor.
/// </summary>
[TestClass]
public sealed class ExternalDataTests
{
    /// <summary>A model whose initializer W (float[2]) reads from <paramref name="location"/>.</summary>
    private static ModelProto WithExternalW(string location, long? offset = null, long? length = null, long[]? dims = null)
    {
        var model = ModelProtos.Valid();
        model.Graph.Initializer[0] = ModelProtos.ExternalTensor("W", dims ?? [2], location, offset, length);
        return model;
    }

    private static void AssertFails(string modelPath, params string[] named)
    {
        var e = Assert.ThrowsExactly<ModelFormatException>(() => ModelImporter.Load(modelPath));
        Assert.Contains(modelPath, e.Message, "the message names the model file");
        Assert.Contains("initializer 'W'", e.Message, "the message names the tensor");
        foreach (var n in named) Assert.Contains(n, e.Message);
    }

    [TestMethod]
    public void ValidExternalData_Loads_WithOffsetsLengthsAndSubfolders()
    {
        using var folder = new TempFolder();
        Directory.CreateDirectory(folder.File("weights"));
        byte[] data = [.. new byte[4096], .. ModelProtos.Bytes(3f, -4f), .. ModelProtos.Bytes(5f, 6f, 7f)];
        File.WriteAllBytes(folder.File("weights/all.bin"), data);
        File.WriteAllBytes(folder.File("w.bin"), ModelProtos.Bytes(1.5f, 2.5f));

        var model = WithExternalW("weights/all.bin", offset: 4096, length: 8);
        model.Graph.Initializer.Add(ModelProtos.ExternalTensor("V", [3], "weights/all.bin", offset: 4104)); // length: to the end
        model.Graph.Initializer.Add(ModelProtos.ExternalTensor("U", [2], "w.bin"));                       // whole file
        var loaded = ModelImporter.Load(folder.Write(model));

        CollectionAssert.AreEqual(new[] { 3f, -4f }, loaded.Graph.Initializers["W"].ToArray<float>());
        CollectionAssert.AreEqual(new[] { 5f, 6f, 7f }, loaded.Graph.Initializers["V"].ToArray<float>());
        CollectionAssert.AreEqual(new[] { 1.5f, 2.5f }, loaded.Graph.Initializers["U"].ToArray<float>());
    }

    [TestMethod]
    public void ALocationThatIsAbsolute_IsRejected()
    {
        using var folder = new TempFolder();
        File.WriteAllBytes(folder.File("w.bin"), ModelProtos.Bytes(1f, 2f));
        AssertFails(folder.Write(WithExternalW(folder.File("w.bin"))), "absolute");
    }

    [TestMethod]
    [DataRow("../w.bin")]
    [DataRow("sub/../../w.bin")]
    [DataRow("..\\w.bin")]
    public void ALocationThatLeavesTheFolder_IsRejected(string location)
    {
        using var outer = new TempFolder();
        File.WriteAllBytes(outer.File("w.bin"), ModelProtos.Bytes(1f, 2f));
        string inner = outer.File("model");
        Directory.CreateDirectory(inner);
        Directory.CreateDirectory(Path.Combine(inner, "sub"));
        string modelPath = Path.Combine(inner, "model.onnx");
        File.WriteAllBytes(modelPath, Google.Protobuf.MessageExtensions.ToByteArray(WithExternalW(location)));
        AssertFails(modelPath, "leaves the model's folder");
    }

    [TestMethod]
    public void ASymlinkThatPointsOutside_IsRejected()
    {
        using var outer = new TempFolder();
        File.WriteAllBytes(outer.File("secret.bin"), ModelProtos.Bytes(1f, 2f));
        string inner = outer.File("model");
        Directory.CreateDirectory(inner);
        File.CreateSymbolicLink(Path.Combine(inner, "w.bin"), outer.File("secret.bin"));
        string modelPath = Path.Combine(inner, "model.onnx");
        File.WriteAllBytes(modelPath, Google.Protobuf.MessageExtensions.ToByteArray(WithExternalW("w.bin")));
        AssertFails(modelPath, "link");
    }

    [TestMethod]
    public void ASymlinkedFolderThatPointsOutside_IsRejected()
    {
        using var outer = new TempFolder();
        Directory.CreateDirectory(outer.File("elsewhere"));
        File.WriteAllBytes(outer.File("elsewhere/w.bin"), ModelProtos.Bytes(1f, 2f));
        string inner = outer.File("model");
        Directory.CreateDirectory(inner);
        Directory.CreateSymbolicLink(Path.Combine(inner, "weights"), outer.File("elsewhere"));
        string modelPath = Path.Combine(inner, "model.onnx");
        File.WriteAllBytes(modelPath, Google.Protobuf.MessageExtensions.ToByteArray(WithExternalW("weights/w.bin")));
        AssertFails(modelPath, "link");
    }

    [TestMethod]
    public void ASymlinkThatStaysInside_Loads()
    {
        using var folder = new TempFolder();
        File.WriteAllBytes(folder.File("real.bin"), ModelProtos.Bytes(1f, 2f));
        File.CreateSymbolicLink(folder.File("w.bin"), "real.bin");
        var loaded = ModelImporter.Load(folder.Write(WithExternalW("w.bin")));
        CollectionAssert.AreEqual(new[] { 1f, 2f }, loaded.Graph.Initializers["W"].ToArray<float>());
    }

    [TestMethod]
    [DataRow(0L, 12L, DisplayName = "length past the end")]
    [DataRow(8L, 8L, DisplayName = "offset + length past the end")]
    [DataRow(9L, null, DisplayName = "offset past the end")]
    [DataRow(long.MaxValue, 8L, DisplayName = "offset of 2^63-1")]
    [DataRow(4L, long.MaxValue, DisplayName = "length of 2^63-1")]
    public void AnOffsetOrLengthPastTheEndOfTheFile_IsRejected(long offset, long? length)
    {
        using var folder = new TempFolder();
        File.WriteAllBytes(folder.File("w.bin"), ModelProtos.Bytes(1f, 2f)); // 8 bytes
        AssertFails(folder.Write(WithExternalW("w.bin", offset, length)), "past the end");
    }

    [TestMethod]
    public void ALengthThatDoesNotMatchTheShape_IsRejected()
    {
        using var folder = new TempFolder();
        File.WriteAllBytes(folder.File("w.bin"), ModelProtos.Bytes(1f, 2f, 3f));
        AssertFails(folder.Write(WithExternalW("w.bin", 0, 12)), "needs 8");
    }

    [TestMethod]
    public void AHostileShapeWithATinyDataFile_FailsBeforeAllocating()
    {
        using var folder = new TempFolder();
        File.WriteAllBytes(folder.File("w.bin"), ModelProtos.Bytes(1f));
        string path = folder.Write(WithExternalW("w.bin", dims: [1L << 14, 1L << 14]));
        long before = GC.GetAllocatedBytesForCurrentThread();
        AssertFails(path);
        Assert.IsLessThan(16L << 20, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [TestMethod]
    public void AFifoInsteadOfADataFile_IsRejected_WithoutBlocking()
    {
        if (OperatingSystem.IsWindows()) Assert.Inconclusive("FIFOs are a Unix hazard");
        using var folder = new TempFolder();
        string fifo = folder.File("w.bin");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo])) mkfifo.WaitForExit();
        string path = folder.Write(WithExternalW("w.bin"));
        var load = Task.Run(() => AssertFails(path));
        bool finished = load.Wait(TimeSpan.FromSeconds(10));
        if (!finished) using (new FileStream(fifo, FileMode.Open, FileAccess.Write)) { } // release the blocked reader
        Assert.IsTrue(finished, "the importer blocked opening a FIFO named as external data");
        load.GetAwaiter().GetResult();
    }

    [TestMethod]
    public void AMissingFile_IsRejected()
    {
        using var folder = new TempFolder();
        AssertFails(folder.Write(WithExternalW("missing.bin")), "'missing.bin'", "does not exist");
    }

    [TestMethod]
    [DataRow("offset", "-8")]
    [DataRow("offset", "8 bytes")]
    [DataRow("length", "0x10")]
    public void AnOffsetOrLengthThatIsNotANumber_IsRejected(string key, string value)
    {
        using var folder = new TempFolder();
        File.WriteAllBytes(folder.File("w.bin"), ModelProtos.Bytes(1f, 2f));
        var model = WithExternalW("w.bin");
        model.Graph.Initializer[0].ExternalData.Add(new StringStringEntryProto { Key = key, Value = value });
        AssertFails(folder.Write(model), $"'{value}'");
    }

    [TestMethod]
    public void ExternalDataInModelBytes_WithoutAFolder_IsRejected()
    {
        byte[] bytes = Google.Protobuf.MessageExtensions.ToByteArray(WithExternalW("w.bin"));
        var e = Assert.ThrowsExactly<ModelFormatException>(() => ModelImporter.Load(bytes, "in-memory.onnx"));
        Assert.Contains("in-memory.onnx", e.Message);
        Assert.Contains("initializer 'W'", e.Message);
    }
}
