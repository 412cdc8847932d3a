using Backprop.Onnx.Cli.Commands;
using Backprop.Onnx.Import;
using Backprop.Onnx.Protobuf;
using Backprop.Onnx.Tests.Import;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Cli;

/// <summary>
/// <c>evaluate</c> on a classifier whose batch size is fixed and does not divide the data: the last batch is filled up,
/// only its real rows count, and both runtimes give the accuracy of a scalar reference loop.
/// </summary>
[TestClass]
public sealed class EvaluateCommandTests
{
    [TestMethod]
    public void AFixedBatchThatDoesNotDivideTheData_CountsEveryImageOnce()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "t10k-images-idx3-ubyte.gz")))
            Assert.Fail($"{FashionMnist.DefaultDirectory} is missing: apt-get install -y dataset-fashion-mnist");
        var data = FashionMnist.Load(FashionMnist.DefaultDirectory, train: false, limit: 7);
        const int batch = 3, pixels = 784, classes = 10;
        var random = new Random(5);
        var w = new float[pixels * classes];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5);

        var graph = new GraphProto { Name = "linear" };
        graph.Input.Add(ModelProtos.TensorValue("x", 1, batch, 1, 28, 28));
        graph.Output.Add(ModelProtos.TensorValue("logits", 1, batch, classes));
        graph.Initializer.Add(ModelProtos.FloatTensor("W", [pixels, classes], w));
        graph.Node.Add(ModelProtos.Node("flatten", "Flatten", ["x"], ["flat"]));
        graph.Node.Add(ModelProtos.Node("matmul", "MatMul", ["flat", "W"], ["logits"]));
        var proto = new ModelProto { IrVersion = 8, ProducerName = "tests", Graph = graph };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        using var folder = new TempFolder();
        string path = folder.Write(proto);

        int expected = 0;
        for (int n = 0; n < data.Count; n++)
        {
            var (x, y) = data.GetBatch([n]);
            var image = x.ToArray<float>();
            int best = 0;
            double bestValue = double.NegativeInfinity;
            for (int c = 0; c < classes; c++)
            {
                double v = 0;
                for (int p = 0; p < pixels; p++) v += (double)image[p] * w[p * classes + c];
                if (v > bestValue) { bestValue = v; best = c; }
            }
            if (best == (long)y.GetDouble(0)) expected++;
        }

        Assert.AreEqual(expected / 7.0, EvaluateCommand.EngineAccuracy(ModelImporter.Load(path), data), 1e-12, "engine");
        Assert.AreEqual(expected / 7.0, OrtEvaluation.Accuracy(path, data), 1e-12, "ONNX Runtime");
    }
}
