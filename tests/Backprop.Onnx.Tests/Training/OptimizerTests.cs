using Backprop.Onnx.IR;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Training;

/// <summary>The library's optimizers against their textbook (PyTorch torch.optim) update sequences, computed by hand here.</summary>
[TestClass]
public sealed class OptimizerTests
{
    private static double[] Run(OptimizerOptions o, double x0, double[] grads, double lr)
    {
        var opt = new Optimizer(o);
        var p = OnnxTensor.FromArray(new[] { x0 }, 1);
        var xs = new List<double>();
        for (int s = 0; s < grads.Length; s++)
        {
            opt.Update("p", p, OnnxTensor.FromArray(new[] { grads[s] }, 1), lr, s + 1);
            xs.Add(p.GetDouble(0));
        }
        return [.. xs];
    }

    [TestMethod]
    public void Sgd_WithWeightDecay_IsXMinusLrTimesGradPlusDecay()
    {
        var xs = Run(new OptimizerOptions { Kind = OptimizerKind.Sgd, WeightDecay = 0.1 }, 1.0, [0.5, -0.25], 0.1);
        double x1 = 1.0 - 0.1 * (0.5 + 0.1 * 1.0);
        double x2 = x1 - 0.1 * (-0.25 + 0.1 * x1);
        Assert.AreEqual(x1, xs[0], 1e-15);
        Assert.AreEqual(x2, xs[1], 1e-15);
    }

    [TestMethod]
    public void Momentum_AndNesterov_MatchTorchSgd()
    {
        // torch.optim.SGD(momentum=0.9): v = 0.9 v + g; x -= lr v.  nesterov=True: x -= lr (g + 0.9 v).
        double[] g = [1.0, 0.5, -2.0];
        double x = 2, v = 0, xn = 2, vn = 0;
        var expected = new List<double>();
        var expectedNesterov = new List<double>();
        foreach (double gi in g)
        {
            v = 0.9 * v + gi; x -= 0.05 * v; expected.Add(x);
            vn = 0.9 * vn + gi; xn -= 0.05 * (gi + 0.9 * vn); expectedNesterov.Add(xn);
        }
        CollectionAssert.AreEqual(expected, Run(new OptimizerOptions { Kind = OptimizerKind.Momentum }, 2, g, 0.05), new Tolerance(1e-14));
        CollectionAssert.AreEqual(expectedNesterov, Run(new OptimizerOptions { Kind = OptimizerKind.Nesterov }, 2, g, 0.05), new Tolerance(1e-14));
    }

    [TestMethod]
    public void AdamW_FirstSteps_MatchTheOnnxAdamFormulaWithDecoupledDecay()
    {
        double[] g = [0.3, -0.1, 0.7];
        double x = 1.5, m = 0, s = 0, lr = 0.01, wd = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        var expected = new List<double>();
        for (int t = 1; t <= g.Length; t++)
        {
            m = b1 * m + (1 - b1) * g[t - 1];
            s = b2 * s + (1 - b2) * g[t - 1] * g[t - 1];
            double rAdj = lr * Math.Sqrt(1 - Math.Pow(b2, t)) / (1 - Math.Pow(b1, t));
            x = (1 - lr * wd) * (x - rAdj * m / (Math.Sqrt(s) + eps));
            expected.Add(x);
        }
        CollectionAssert.AreEqual(expected, Run(new OptimizerOptions { Kind = OptimizerKind.AdamW, LearningRate = lr, WeightDecay = wd }, 1.5, g, lr), new Tolerance(1e-14));
    }

    [TestMethod]
    public void State_RoundTripsThroughLoadState()
    {
        var a = new Optimizer(new OptimizerOptions { Kind = OptimizerKind.Adam });
        var p = OnnxTensor.FromArray(new[] { 1.0, 2.0 }, 2);
        a.Update("w", p, OnnxTensor.FromArray(new[] { 0.1, 0.2 }, 2), 0.01, 1);
        var b = new Optimizer(new OptimizerOptions { Kind = OptimizerKind.Adam });
        b.LoadState(a.State);
        var pa = p.Clone(); var pb = p.Clone();
        var g = OnnxTensor.FromArray(new[] { -0.3, 0.4 }, 2);
        a.Update("w", pa, g, 0.01, 2);
        b.Update("w", pb, g, 0.01, 2);
        CollectionAssert.AreEqual(pa.ToArray<double>(), pb.ToArray<double>());
    }

    [TestMethod]
    [DataRow(0, 1.0)]
    [DataRow(5, 0.5)]
    [DataRow(10, 0.0)]
    public void CosineSchedule_FollowsHalfCosine(int step, double expected)
    {
        var s = new LearningRateSchedule { Kind = ScheduleKind.Cosine, TotalSteps = 10 };
        Assert.AreEqual(expected, s.Factor(step), 1e-12);
    }

    [TestMethod]
    public void Warmup_And_StepSchedule()
    {
        var s = new LearningRateSchedule { Kind = ScheduleKind.Step, StepSize = 4, Gamma = 0.5, WarmupSteps = 2 };
        Assert.AreEqual(0.5, s.Factor(0), 1e-12);
        Assert.AreEqual(1.0, s.Factor(1), 1e-12);
        Assert.AreEqual(1.0, s.Factor(3), 1e-12);
        Assert.AreEqual(0.5, s.Factor(4), 1e-12);
        Assert.AreEqual(0.25, s.Factor(8), 1e-12);
    }

    private sealed class Tolerance(double tolerance) : System.Collections.IComparer
    {
        public int Compare(object? x, object? y) => Math.Abs((double)x! - (double)y!) <= tolerance ? 0 : 1;
    }
}
