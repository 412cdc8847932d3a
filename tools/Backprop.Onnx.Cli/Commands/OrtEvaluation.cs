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
        if (session.InputMetadata.Count == 0 || session.OutputMetadata.Count == 0)
            throw new InvalidDataException($"{modelPath}: a classifier needs an image input and a logits output");
        string input = session.InputMetadata.Keys.First();
        string output = session.OutputMetadata.Keys.First();
        var outMeta = session.OutputMetadata[output];
        if (outMeta.ElementDataType != TensorElementType.Float || outMeta.Dimensions.Length != 2)
            throw new InvalidDataException($"{modelPath}: output '{output}' must be float logits [N, classes], not {outMeta.ElementDataType} of rank {outMeta.Dimensions.Length}");
        if (session.InputMetadata[input].ElementDataType != TensorElementType.Float)
            throw new InvalidDataException($"{modelPath}: input '{input}' must be float images [N,1,28,28]");
        long fixedBatch = session.InputMetadata[input].Dimensions is { Length: > 0 } dims && dims[0] > 0 ? dims[0] : -1;
        if (fixedBatch > 0) batchSize = (int)fixedBatch;
        long correct = 0;
        var indices = new int[batchSize];
        for (int start = 0; start < data.Count; start += batchSize)
        {
            // A fixed batch size that does not divide the data: the last batch is filled up with copies of its last
            // image, and only its first n rows are counted.
            int n = Math.Min(batchSize, data.Count - start);
            for (int i = 0; i < batchSize; i++) indices[i] = start + Math.Min(i, n - 1);
            var (x, y) = data.GetBatch(indices.AsSpan(0, fixedBatch > 0 ? batchSize : n));
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
