using Backprop.Onnx.Training;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Backprop.Onnx.Cli.Commands;

/// <summary>Classification accuracy of an ONNX file measured by ONNX Runtime (CPU), independently of our executor.</summary>
internal static class OrtEvaluation
{
    public static double Accuracy(string modelPath, IDataSource data, int batchSize = 500)
    {
        using var options = new SessionOptions { IntraOpNumThreads = Environment.ProcessorCount };
        using var session = new InferenceSession(modelPath, options);
        string input = session.InputMetadata.Keys.First();
        string output = session.OutputMetadata.Keys.First();
        long correct = 0;
        var indices = new int[batchSize];
        for (int start = 0; start < data.Count; start += batchSize)
        {
            int n = Math.Min(batchSize, data.Count - start);
            for (int i = 0; i < n; i++) indices[i] = start + i;
            var (x, y) = data.GetBatch(indices.AsSpan(0, n));
            var tensor = new DenseTensor<float>(x.ToArray<float>(), x.Dims);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, tensor)], [output]);
            var logits = results.First().AsTensor<float>();
            int classes = (int)logits.Dimensions[1];
            for (int i = 0; i < n; i++)
            {
                int best = 0;
                for (int j = 1; j < classes; j++) if (logits[i, j] > logits[i, best]) best = j;
                if (best == y.GetDouble(i)) correct++;
            }
        }
        return correct / (double)data.Count;
    }
}
