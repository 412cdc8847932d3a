namespace Backprop.Onnx.Tests.Support;

/// <summary>Where the test data lives: the Debian ONNX backend test suite and the repository's onnx-models/.</summary>
internal static class TestPaths
{
    public const string OnnxTestData = "/usr/share/libonnx-testdata/data";

    public static string NodeTests => Path.Combine(OnnxTestData, "node");

    /// <summary>The repository root (the folder holding Backprop.Onnx.sln).</summary>
    public static string RepositoryRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Backprop.Onnx.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("Backprop.Onnx.sln not found above the test binaries.");
        }
    }

    public static string OnnxModels => Path.Combine(RepositoryRoot, "onnx-models");

    /// <summary>Fails the test with the install hint when the Debian test data is missing.</summary>
    public static void RequireOnnxTestData()
    {
        if (!Directory.Exists(OnnxTestData))
            Assert.Fail($"{OnnxTestData} is missing: apt-get install -y libonnx-testdata");
    }
}
