using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// BatchNormalizationGrad's per-channel kernel (NormalizationOps.Gradients.cs) against the formula as a scalar loop in
/// double written here (PyTorch batchnorm_backward, and the running statistics' cotangents): training and inference
/// mode, with and without dY and the running-statistics cotangents, spatial sizes around the vector width, float32
/// and float64, one and two threads (the large case runs channels in parallel).
/// </summary>
[TestClass]
public sealed class BatchNormGradKernelTests
{
    [TestMethod]
    [DataRow(3, 5, 37, true, true, true)]
    [DataRow(2, 3, 8, true, true, false)]
    [DataRow(2, 4, 1, true, false, true)]
    [DataRow(3, 2, 13, false, true, false)]
    [DataRow(4, 8, 2304, true, true, true)]
    [DataRow(4, 8, 2304, false, true, false)]
    public void MatchesScalarFormula(int n, int c, int s, bool training, bool withDy, bool withRunning)
    {
        const double eps = 1e-3, momentum = 0.75;
        var random = new Random(n * 1000 + c * 100 + s);
        double[] R(int count, double lo, double hi) => [.. Enumerable.Range(0, count).Select(_ => lo + (hi - lo) * random.NextDouble())];
        var x = R(n * c * s, -2, 3);
        var dy = R(n * c * s, -1, 1);
        var scale = R(c, 0.5, 1.5);
        var mean = R(c, -1, 1);
        var variance = R(c, 0.2, 2);
        var dRunMean = R(c, -1, 1);
        var dRunVar = R(c, -1, 1);

        var eDx = new double[x.Length];
        var eScale = new double[c];
        var eB = new double[c];
        var eMean = new double[c];
        var eVar = new double[c];
        double count = (double)n * s;
        for (int ch = 0; ch < c; ch++)
        {
            var idx = Enumerable.Range(0, n).SelectMany(i => Enumerable.Range((i * c + ch) * s, s)).ToArray();
            double mu = mean[ch], v = variance[ch];
            if (training)
            {
                mu = idx.Sum(j => x[j]) / count;
                v = idx.Sum(j => (x[j] - mu) * (x[j] - mu)) / count;
            }
            double r = 1 / Math.Sqrt(v + (double)(float)eps);
            double sdy = withDy ? idx.Sum(j => dy[j]) : 0, sdyxc = withDy ? idx.Sum(j => dy[j] * (x[j] - mu)) : 0;
            eScale[ch] = sdyxc * r;
            eB[ch] = sdy;
            double a = scale[ch] * r, b = 0, cc = 0, m = (double)(float)momentum;
            if (training)
            {
                b = -a * sdy / count;
                cc = -a * r * r * sdyxc / count;
                if (withRunning)
                {
                    b += (1 - m) * dRunMean[ch] / count;
                    cc += (1 - m) * 2 * dRunVar[ch] / count;
                    eMean[ch] = m * dRunMean[ch];
                    eVar[ch] = m * dRunVar[ch];
                }
            }
            else
            {
                eMean[ch] = -a * sdy;
                eVar[ch] = -0.5 * a * r * r * sdyxc;
            }
            foreach (int j in idx) eDx[j] = (withDy ? a * dy[j] : 0) + b + cc * (x[j] - mu);
        }

        foreach (var type in new[] { DataType.Float, DataType.Double })
            foreach (int threads in new[] { 1, 2 })
            {
                OnnxTensor T(double[] v, params int[] dims) => type == DataType.Double ? OnnxTensor.FromArray(v, dims) : OnnxTensor.FromArray(v.Select(d => (float)d).ToArray(), dims);
                var inputs = new OnnxTensor?[] { withDy ? T(dy, n, c, s) : null, T(x, n, c, s), T(scale, c), T(mean, c), T(variance, c),
                    withRunning ? T(dRunMean, c) : null, withRunning ? T(dRunVar, c) : null };
                var model = SingleNode.Model("BatchNormalizationGrad", inputs, 5, 15, "ai.backprop",
                    OnnxAttribute.FromFloat("epsilon", (float)eps), OnnxAttribute.FromFloat("momentum", (float)momentum),
                    OnnxAttribute.FromInt("training_mode", training ? 1 : 0), OnnxAttribute.FromInt("dtype", (long)type));
                var feeds = new Dictionary<string, OnnxTensor>();
                for (int i = 0; i < inputs.Length; i++) if (inputs[i] is { } t) feeds[$"x{i}"] = t;
                var outs = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads }).Run(feeds);
                double tol = type == DataType.Double ? 1e-10 : 2e-4;
                string what = $"{type} threads {threads}";
                Close(eDx, outs["y0"], tol, "dX " + what);
                Close(eScale, outs["y1"], tol * Math.Sqrt(count), "dscale " + what);
                Close(eB, outs["y2"], tol * Math.Sqrt(count), "dB " + what);
                Close(eMean, outs["y3"], tol * Math.Sqrt(count), "dmean " + what);
                Close(eVar, outs["y4"], tol * Math.Sqrt(count), "dvar " + what);
            }
    }

    private static void Close(double[] expected, OnnxTensor actual, double tol, string what)
    {
        var a = actual.ElementType == DataType.Double ? actual.ToArray<double>() : [.. actual.ToArray<float>().Select(f => (double)f)];
        Assert.AreEqual(expected.Length, a.Length, what);
        for (int i = 0; i < a.Length; i++)
            Assert.IsTrue(Math.Abs(a[i] - expected[i]) <= tol * (1 + Math.Abs(expected[i])), $"{what}: [{i}] {a[i]} vs {expected[i]}");
    }
}
