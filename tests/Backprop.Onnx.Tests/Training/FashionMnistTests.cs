using System.IO.Compression;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Training;

[TestClass]
public sealed class FashionMnistTests
{
    private static void RequireData()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "t10k-images-idx3-ubyte.gz")))
            Assert.Fail("Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist");
    }

    [TestMethod]
    public void TestSplit_Has10000ImagesOf28x28_WithBalancedLabels()
    {
        RequireData();
        var test = FashionMnist.Load(FashionMnist.DefaultDirectory, train: false);
        Assert.AreEqual(10000, test.Count);
        var (x, y) = test.GetBatch(Enumerable.Range(0, test.Count).ToArray());
        CollectionAssert.AreEqual(new[] { 10000, 1, 28, 28 }, x.Shape.ToArray());
        var counts = new int[10];
        foreach (long l in y.AsSpan<long>()) counts[l]++;
        // Fashion-MNIST's test split has exactly 1,000 images per class (Xiao et al., 2017).
        CollectionAssert.AreEqual(Enumerable.Repeat(1000, 10).ToArray(), counts);
        var pixels = x.AsSpan<float>();
        float min = float.MaxValue, max = float.MinValue;
        foreach (float p in pixels) { min = Math.Min(min, p); max = Math.Max(max, p); }
        Assert.AreEqual(0f, min);
        Assert.AreEqual(1f, max);
    }

    [TestMethod]
    public void MissingFolder_SaysWhatToInstall()
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(() => FashionMnist.Load("/nonexistent/fashion", train: true));
        StringAssert.Contains(e.Message, "apt-get install -y dataset-fashion-mnist");
    }

    [TestMethod]
    public void CorruptFiles_AreReportedWithTheFileName()
    {
        string dir = Directory.CreateTempSubdirectory("fmnist").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(dir, "t10k-images-idx3-ubyte.gz"), [1, 2, 3, 4]);
            File.WriteAllBytes(Path.Combine(dir, "t10k-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 1, 3]);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => FashionMnist.Load(dir, train: false));
            StringAssert.Contains(e.Message, "t10k-images-idx3-ubyte.gz");

            // A valid gzip whose header claims more pixels than the file holds.
            using (var f = File.Create(Path.Combine(dir, "t10k-images-idx3-ubyte.gz")))
            using (var gz = new GZipStream(f, CompressionLevel.Fastest))
                gz.Write([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3]);
            e = Assert.ThrowsExactly<InvalidDataException>(() => FashionMnist.Load(dir, train: false));
            StringAssert.Contains(e.Message, "header says 2×28×28 pixels");
        }
        finally { Directory.Delete(dir, true); }
    }
}
