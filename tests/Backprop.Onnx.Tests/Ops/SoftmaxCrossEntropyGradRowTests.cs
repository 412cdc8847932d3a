using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// SoftmaxCrossEntropyLossGrad's row path for [N, C] scores without a log_prob cotangent (LossOps.Gradients.cs) against
/// the formula as a scalar loop in double written here, dscores = G − softmax(x)·Σ_class G with G = −w·dLoss at the
/// target (PyTorch cross_entropy backward), and against the general path (taken when a zero dLogProb is given):
/// every reduction, weights, ignore_index, float32 and float64.
/// </summary>
[TestClass]
public sealed class SoftmaxCrossEntropyGradRowTests
{
    [TestMethod]
    [DataRow("mean", false, null)]
    [DataRow("mean", true, 3L)]
    [DataRow("sum", true, null)]
    [DataRow("none", false, 0L)]
    [DataRow("none", true, 5L)]
    public void MatchesFormulaAndGeneralPath(string reduction, bool withWeight, long? ignore)
    {
        int n = 37, c = 11;
        var random = new Random(n + c + reduction.Length);
        var x = Enumerable.Range(0, n * c).Select(_ => random.NextDouble() * 8 - 4).ToArray();
        var labels = Enumerable.Range(0, n).Select(_ => (long)random.Next(c)).ToArray();
        var weight = Enumerable.Range(0, c).Select(_ => 0.5 + random.NextDouble()).ToArray();
        var dLoss = reduction == "none" ? Enumerable.Range(0, n).Select(_ => random.NextDouble() - 0.5).ToArray() : [1.7];

        double Applied(int i) => ignore == labels[i] ? 0 : withWeight ? weight[labels[i]] : 1;
        double total = Enumerable.Range(0, n).Sum(Applied);
        var expected = new double[n * c];
        for (int i = 0; i < n; i++)
        {
            double g = -Applied(i) * (reduction == "none" ? dLoss[i] : reduction == "mean" ? dLoss[0] / total : dLoss[0]);
            double max = Enumerable.Range(0, c).Max(k => x[i * c + k]);
            double z = Enumerable.Range(0, c).Sum(k => Math.Exp(x[i * c + k] - max));
            for (int k = 0; k < c; k++) expected[i * c + k] = (k == labels[i] ? g : 0) - Math.Exp(x[i * c + k] - max) / z * g;
        }

        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromString("reduction", reduction) };
        if (ignore is long ig) attrs.Add(OnnxAttribute.FromInt("ignore_index", ig));
        foreach (var type in new[] { DataType.Float, DataType.Double })
        {
            OnnxTensor T(double[] v, params int[] dims) => type == DataType.Double ? OnnxTensor.FromArray(v, dims) : OnnxTensor.FromArray(v.Select(d => (float)d).ToArray(), dims);
            var dl = reduction == "none" ? T(dLoss, n) : T(dLoss);
            var inputs = new OnnxTensor?[] { dl, T(x, n, c), OnnxTensor.FromArray(labels, n), withWeight ? T(weight, c) : null, null };
            var fast = Run(inputs, attrs, type);
            inputs[4] = T(new double[n * c], n, c);
            var general = Run(inputs, attrs, type);
            double tol = type == DataType.Double ? 1e-12 : 1e-5;
            for (int j = 0; j < expected.Length; j++)
            {
                Assert.AreEqual(expected[j], fast[j], tol, $"{type} row path [{j}]");
                Assert.AreEqual(general[j], fast[j], tol * 1e-2, $"{type} row path vs general [{j}]");
            }
        }
    }

    private static double[] Run(OnnxTensor?[] inputs, List<OnnxAttribute> attrs, DataType type)
    {
        var model = SingleNode.Model("SoftmaxCrossEntropyLossGrad", inputs, 1, 17, OpRegistry.BackpropDomain, [.. attrs, OnnxAttribute.FromInt("dtype", (long)type)]);
        var feeds = new Dictionary<string, OnnxTensor>();
        for (int i = 0; i < inputs.Length; i++) if (inputs[i] is { } t) feeds[$"x{i}"] = t;
        var y = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 }).Run(feeds)["y0"];
        return type == DataType.Double ? y.ToArray<double>() : [.. y.ToArray<float>().Select(f => (double)f)];
    }
}
