using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// BatchNormalizationGrad's training-mode statistics, gathered image slice by image slice and combined pairwise
/// (NormalizationOps.Gradients.cs): <see cref="NormalizationOps.DeviationSums{T}"/> against a scalar loop, and the whole
/// kernel against the formula in double on data far from zero whose per-image means differ (where a one-pass
/// Σx² − (Σx)²/M would cancel), with more images than the stack scratch holds.
/// </summary>
[TestClass]
public sealed class BatchNormGradSlicesTests
{
    [TestMethod]
    [DataRow(1)]
    [DataRow(7)]
    [DataRow(31)]
    [DataRow(32)]
    [DataRow(33)]
    [DataRow(100)]
    public void DeviationSumsMatchScalarLoop(int length)
    {
        var random = new Random(length);
        double[] x = [.. Enumerable.Range(0, length).Select(_ => 5 + random.NextDouble())], g = [.. Enumerable.Range(0, length).Select(_ => random.NextDouble() - 0.5)];
        double m = 5.5, eq = 0, ea = 0, ep = 0;
        for (int i = 0; i < length; i++) { eq += (x[i] - m) * (x[i] - m); ea += g[i]; ep += g[i] * (x[i] - m); }
        var (q, a, p) = NormalizationOps.DeviationSums<double>(g, x, m);
        Assert.AreEqual(eq, q, 1e-12 * length, $"Σ (x − m)², length {length}");
        Assert.AreEqual(ea, a, 1e-12 * length, $"Σ g, length {length}");
        Assert.AreEqual(ep, p, 1e-12 * length, $"Σ g·(x − m), length {length}");
        var (qf, af, pf) = NormalizationOps.DeviationSums<float>([.. g.Select(v => (float)v)], [.. x.Select(v => (float)v)], (float)m);
        Assert.AreEqual(eq, qf, 1e-4 * length, $"float Σ (x − m)², length {length}");
        Assert.AreEqual(ea, af, 1e-4 * length, $"float Σ g, length {length}");
        Assert.AreEqual(ep, pf, 1e-4 * length, $"float Σ g·(x − m), length {length}");
    }

    [TestMethod]
    [DataRow(70, 3, 19, true)]
    [DataRow(5, 2, 40, true)]
    [DataRow(70, 2, 9, false)]
    public void TrainingGradientMatchesFormulaOnOffsetData(int n, int c, int s, bool withDy)
    {
        const double eps = 1e-5;
        var random = new Random(n * 100 + s);
        // Channel ch sits near 100·(ch + 1), each image shifted by up to ±2: the per-slice means differ from the batch mean.
        var x = new double[n * c * s];
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++)
            {
                double shift = 100 * (ch + 1) + 4 * (random.NextDouble() - 0.5);
                for (int k = 0; k < s; k++) x[(i * c + ch) * s + k] = shift + random.NextDouble();
            }
        double[] dy = [.. Enumerable.Range(0, x.Length).Select(_ => random.NextDouble() - 0.5)];
        double[] scale = [.. Enumerable.Range(0, c).Select(_ => 0.5 + random.NextDouble())];
        var eDx = new double[x.Length];
        var eScale = new double[c];
        double count = (double)n * s;
        for (int ch = 0; ch < c; ch++)
        {
            var idx = Enumerable.Range(0, n).SelectMany(i => Enumerable.Range((i * c + ch) * s, s)).ToArray();
            double mu = idx.Sum(j => x[j]) / count, v = idx.Sum(j => (x[j] - mu) * (x[j] - mu)) / count;
            double r = 1 / Math.Sqrt(v + (double)(float)eps);
            double sdy = withDy ? idx.Sum(j => dy[j]) : 0, sdyxc = withDy ? idx.Sum(j => dy[j] * (x[j] - mu)) : 0;
            eScale[ch] = sdyxc * r;
            double a = scale[ch] * r, b = -a * sdy / count, cc = -a * r * r * sdyxc / count;
            foreach (int j in idx) eDx[j] = (withDy ? a * dy[j] : 0) + b + cc * (x[j] - mu);
        }
        foreach (var type in new[] { DataType.Float, DataType.Double })
            foreach (int threads in new[] { 1, 2 })
            {
                OnnxTensor T(double[] v, params int[] dims) => type == DataType.Double ? OnnxTensor.FromArray(v, dims) : OnnxTensor.FromArray(v.Select(d => (float)d).ToArray(), dims);
                var inputs = new OnnxTensor?[] { withDy ? T(dy, n, c, s) : null, T(x, n, c, s), T(scale, c), T(new double[c], c), T([.. Enumerable.Repeat(1.0, c)], c), null, null };
                var model = SingleNode.Model("BatchNormalizationGrad", inputs, 5, 15, "ai.backprop",
                    OnnxAttribute.FromFloat("epsilon", (float)eps), OnnxAttribute.FromFloat("momentum", 0.9f),
                    OnnxAttribute.FromInt("training_mode", 1), OnnxAttribute.FromInt("dtype", (long)type));
                var feeds = new Dictionary<string, OnnxTensor>();
                for (int i = 0; i < inputs.Length; i++) if (inputs[i] is { } t) feeds[$"x{i}"] = t;
                var outs = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads }).Run(feeds);
                // float32: X near 100-300 carries about 1e-5 relative error per element, about 2e-3 absolute in X − μ.
                double tol = type == DataType.Double ? 1e-9 : 2e-3;
                string what = $"{type} threads {threads} n {n} s {s}";
                Close(eDx, outs["y0"], tol, "dX " + what);
                Close(eScale, outs["y1"], tol * Math.Sqrt(count), "dscale " + what);
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
