using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

[TestClass]
public sealed class LossTests
{
    /// <summary>Seeded targets in [0, c), with every third one set to <paramref name="ignore"/> when given.</summary>
    private static long[] Targets(int seed, long count, int c, long? ignore)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, (int)count).Select(i => ignore is { } ii && i % 3 == 1 ? ii : r.Next(c))];
    }

    /// <summary>Log-softmax along dimension 1 of [N, C, D] (scalar reference).</summary>
    private static double[] LogSoftmax(double[] x, int n, int c, int d)
    {
        var y = new double[x.Length];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < d; k++)
            {
                double max = Enumerable.Range(0, c).Max(j => x[(i * c + j) * d + k]);
                double lse = max + Math.Log(Enumerable.Range(0, c).Sum(j => Math.Exp(x[(i * c + j) * d + k] - max)));
                for (int j = 0; j < c; j++) y[(i * c + j) * d + k] = x[(i * c + j) * d + k] - lse;
            }
        return y;
    }

    /// <summary>The NLL formula of the ONNX spec, element by element, then the reduction.</summary>
    private static (double[] Loss, bool Scalar) Nll(double[] logp, long[] target, int n, int c, int d, double[]? weight, long? ignore, string reduction)
    {
        var loss = new double[target.Length];
        double wsum = 0;
        for (int i = 0; i < target.Length; i++)
        {
            if (ignore == target[i]) continue;
            double w = weight?[target[i]] ?? 1;
            loss[i] = -logp[(i / d * c + (int)target[i]) * d + i % d] * w;
            wsum += w;
        }
        return reduction switch
        {
            "none" => (loss, false),
            "sum" => ([loss.Sum()], true),
            _ => ([loss.Sum() / wsum], true),
        };
    }

    [TestMethod]
    [DataRow("3,5", "mean", false, null)]
    [DataRow("3,5", "sum", true, null)]
    [DataRow("1,1", "none", false, null)]
    [DataRow("3,5,2", "mean", true, 2L)]
    [DataRow("3,5,2", "none", true, -1L)]
    [DataRow("2,4,3,3", "mean", false, 0L)]
    [DataRow("2,4,3,3", "sum", true, 10L)]
    [DataRow("2,17,9", "mean", true, null)]
    [DataRow("2,3,2,2,2", "none", false, 1L)]
    public void Losses_MatchSpecFormula(string shapeText, string reduction, bool withWeight, long? ignore)
    {
        var shape = OpTensors.Shape(shapeText);
        int n = shape[0], c = shape[1], d = (int)(OpTensors.Count(shape) / (n * c));
        var targetShape = shape.Where((_, i) => i != 1).ToArray();
        var target = Targets(21, OpTensors.Count(targetShape), c, ignore);
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromString("reduction", reduction) };
        if (ignore is { } ii) attrs.Add(OnnxAttribute.FromInt("ignore_index", ii));
        foreach (var type in new[] { DataType.Float, DataType.Double })
        {
            var scores = OpTensors.Random(22, OpTensors.Count(shape), -3, 3).Select(v => type == DataType.Float ? (float)v : v).ToArray();
            var weight = withWeight ? OpTensors.Random(23, c, 0.2, 2).Select(v => type == DataType.Float ? (float)v : v).ToArray() : null;
            OnnxTensor?[] inputs = [OpTensors.Of(type, scores, shape), OnnxTensor.FromArray(target, targetShape), weight is null ? null : OpTensors.Of(type, weight, c)];

            // NegativeLogLikelihoodLoss on the raw scores as log-probabilities.
            var (loss, scalar) = Nll(scores, target, n, c, d, weight, ignore, reduction);
            var nll = SingleNode.Run("NegativeLogLikelihoodLoss", inputs, 1, 13, [.. attrs])[0];
            OpTensors.AssertClose(loss, scalar ? [] : targetShape, nll, type, what: $"NLL {DataTypes.OnnxName(type)}");

            // SoftmaxCrossEntropyLoss = NLL(LogSoftmax(scores)), plus log_prob.
            var logp = LogSoftmax(scores, n, c, d);
            var (sceLoss, _) = Nll(logp, target, n, c, d, weight, ignore, reduction);
            var sce = SingleNode.Run("SoftmaxCrossEntropyLoss", inputs, 2, 13, [.. attrs]);
            OpTensors.AssertClose(sceLoss, scalar ? [] : targetShape, sce[0], type, what: $"SCE {DataTypes.OnnxName(type)}");
            OpTensors.AssertClose(logp, shape, sce[1], type, what: $"SCE log_prob {DataTypes.OnnxName(type)}");
        }
    }

    [TestMethod]
    public void Losses_Int32Targets_DefaultMean()
    {
        // logp rows [-1, -2], [-3, -4]; targets 1, 0 → loss mean of 2 and 3.
        var x = OnnxTensor.FromArray(new float[] { -1, -2, -3, -4 }, 2, 2);
        var t = OnnxTensor.FromArray(new[] { 1, 0 }, 2);
        var y = SingleNode.Run("NegativeLogLikelihoodLoss", [x, t], 1, 12)[0];
        Assert.AreEqual(2.5f, y.ToArray<float>()[0]);
        Assert.AreEqual(0, y.Rank);
    }

    [TestMethod]
    public void Losses_RejectBadTargetsAndReductions()
    {
        var x = OnnxTensor.FromArray(new float[] { -1, -2, -3, -4 }, 2, 2);
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("NegativeLogLikelihoodLoss", [x, OnnxTensor.FromArray(new long[] { 2, 0 }, 2)], 1, 13));
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("SoftmaxCrossEntropyLoss", [x, OnnxTensor.FromArray(new long[] { 0, 0, 0 }, 3)], 1, 13));
        Assert.ThrowsExactly<UnsupportedOperatorException>(() => SingleNode.Run("NegativeLogLikelihoodLoss", [x, OnnxTensor.FromArray(new long[] { 1, 0 }, 2)], 1, 13,
            OnnxAttribute.FromString("reduction", "max")));
    }

    [TestMethod]
    [DataRow("NegativeLogLikelihoodLoss", "3,5", "mean", false, null)]
    [DataRow("NegativeLogLikelihoodLoss", "3,5,2", "sum", true, 1L)]
    [DataRow("NegativeLogLikelihoodLoss", "2,4,3", "none", true, null)]
    [DataRow("NegativeLogLikelihoodLoss", "2,3,2,2", "mean", true, -1L)]
    [DataRow("SoftmaxCrossEntropyLoss", "3,5", "mean", false, null)]
    [DataRow("SoftmaxCrossEntropyLoss", "3,5", "sum", true, 2L)]
    [DataRow("SoftmaxCrossEntropyLoss", "2,4,3", "none", false, 0L)]
    [DataRow("SoftmaxCrossEntropyLoss", "2,3,2,2", "mean", true, -1L)]
    public void Gradient_MatchesFiniteDifferences(string op, string shapeText, string reduction, bool withWeight, long? ignore)
    {
        var shape = OpTensors.Shape(shapeText);
        int c = shape[1];
        var targetShape = shape.Where((_, i) => i != 1).ToArray();
        var target = OnnxTensor.FromArray(Targets(51, OpTensors.Count(targetShape), c, ignore), targetShape);
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromString("reduction", reduction) };
        if (ignore is { } ii) attrs.Add(OnnxAttribute.FromInt("ignore_index", ii));
        var weight = withWeight ? GradCheck.Random(52, [c], 0.2, 2) : null;
        var x = GradCheck.Random(53, shape, -2, 2);
        // SoftmaxCrossEntropyLoss also outputs log_prob: both outputs get random cotangents.
        int outputs = op == "SoftmaxCrossEntropyLoss" ? 2 : 1;
        GradCheck.Op(op, [x, target, weight], [.. attrs], outputCount: outputs, opset: 13, wrt: [0]);
    }
}

