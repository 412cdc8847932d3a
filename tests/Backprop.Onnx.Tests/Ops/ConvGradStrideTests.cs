using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// ConvGrad's direct float32 kernels on rows wide enough for their vector paths (W3's 32 × 32 planes and odd widths
/// around them): the stride-2 dX written as interleaved column-phase pairs and computed on each phase's own rows, the
/// stride-2 dW phase planes gathered by deinterleaving, and short rows copied by inlined vector moves. Checked against
/// the scalar definition (ConvGradDirectTests.Reference, in double) and against the general im2col/col2im path
/// (ConvBackward with direct: false), 1-2 threads; float64 (general path only) against the definition.
/// </summary>
[TestClass]
public sealed class ConvGradStrideTests
{
    /// <summary>(N, C, M, H, W, kh, kw, stride, pad top, pad left, pad bottom, pad right).</summary>
    public static IEnumerable<object[]> Cases =>
    [
        [2, 16, 32, 32, 32, 3, 3, 2, 1, 1, 1, 1],   // ResNet block2 conv1, the W3 shape at N = 2
        [2, 5, 6, 33, 35, 3, 3, 2, 1, 1, 1, 1],     // odd planes: one more even than odd column and row
        [2, 3, 4, 34, 37, 3, 3, 2, 0, 2, 1, 0],     // even left pad: the even columns come from column phase 0
        [2, 4, 5, 19, 40, 2, 2, 2, 0, 0, 0, 0],     // 2×2/2: every phase one tap, no padding
        [2, 16, 32, 32, 32, 1, 1, 2, 0, 0, 0, 0],   // the 1×1/2 shortcut: one phase of four has taps
        [3, 16, 16, 32, 32, 3, 3, 1, 1, 1, 1, 1],   // W3's stride-1 3×3 at N = 3
        [2, 3, 7, 17, 23, 3, 3, 1, 2, 0, 0, 2],     // stride 1, rows of 17-25 floats, asymmetric pads
        [2, 3, 16, 32, 32, 3, 3, 1, 1, 1, 1, 1],    // the stem
        [2, 2, 3, 21, 18, 3, 3, 3, 1, 1, 1, 1],     // stride 3 (the scalar gather and scatter)
    ];

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void Float32MatchesDefinitionAndGeneralPath(int n, int c, int m, int h, int wd, int kh, int kw, int stride, int pt, int pl, int pb, int pr)
    {
        var s = ConvGradDirectTests.Shape(n, c, m, 1, h, wd, kh, kw, stride, pt, pl, pb, pr, 1);
        int seed = n * 10007 + c * 1009 + m * 101 + h * 11 + wd + stride;
        var random = new Random(seed);
        var x = Values(random, n * c * h * wd);
        var w = Values(random, m * c * kh * kw);
        var dy = Values(random, n * m * s.Output[0] * s.Output[1]);
        var (rx, rw, _) = ConvGradDirectTests.Reference(s, [.. dy.Select(v => (double)v)], [.. x.Select(v => (double)v)], [.. w.Select(v => (double)v)]);
        foreach (int threads in new[] { 1, 2 })
        {
            // Zeroed, as the kernel's outputs (the general paths accumulate).
            var dx = new float[x.Length];
            var dw = new float[w.Length];
            ConvOps.ConvBackward(dy, x, w, dx, dw, null, s, threads);
            ConvGradDirectTests.AssertClose(rx, dx, $"dX threads {threads} seed {seed}");
            ConvGradDirectTests.AssertClose(rw, dw, $"dW threads {threads} seed {seed}");

            var gx = new float[x.Length];
            var gw = new float[w.Length];
            ConvOps.ConvBackward(dy, x, w, gx, gw, null, s, threads, direct: false);
            ConvGradDirectTests.AssertClose([.. gx.Select(v => (double)v)], dx, $"dX vs the general path, threads {threads} seed {seed}");
            ConvGradDirectTests.AssertClose([.. gw.Select(v => (double)v)], dw, $"dW vs the general path, threads {threads} seed {seed}");

            if (!ConvOps.CanUseDirectInputGrad(s)) continue;
            // The direct kernel writes every element of dX.
            var direct = Enumerable.Repeat(float.NaN, x.Length).ToArray();
            ConvOps.InputGradDirect(dy, w, direct, s, threads);
            ConvGradDirectTests.AssertClose(rx, direct, $"direct dX threads {threads} seed {seed}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void Float64MatchesDefinition(int n, int c, int m, int h, int wd, int kh, int kw, int stride, int pt, int pl, int pb, int pr)
    {
        var s = ConvGradDirectTests.Shape(n, c, m, 1, h, wd, kh, kw, stride, pt, pl, pb, pr, 1);
        var random = new Random(h * 31 + wd);
        double[] x = [.. Values(random, n * c * h * wd).Select(v => (double)v)];
        double[] w = [.. Values(random, m * c * kh * kw).Select(v => (double)v)];
        double[] dy = [.. Values(random, n * m * s.Output[0] * s.Output[1]).Select(v => (double)v)];
        var (rx, rw, _) = ConvGradDirectTests.Reference(s, dy, x, w);
        var dx = new double[x.Length];
        var dw = new double[w.Length];
        ConvOps.ConvBackward(dy, x, w, dx, dw, null, s, 2);
        for (int i = 0; i < rx.Length; i++) Assert.AreEqual(rx[i], dx[i], 1e-12, $"dX[{i}]");
        for (int i = 0; i < rw.Length; i++) Assert.AreEqual(rw[i], dw[i], 1e-12, $"dW[{i}]");
    }

    [TestMethod]
    public void NonFiniteWeightStillTakesTheExactInputPath()
    {
        // Stride 2 pads dY with zeros; an infinite weight times that padding would be NaN where no window reads.
        var s = ConvGradDirectTests.Shape(2, 4, 8, 1, 20, 20, 3, 3, 2, 1, 1, 1, 1, 1);
        var random = new Random(3);
        var x = Values(random, 2 * 4 * 400);
        var w = Values(random, 8 * 4 * 9);
        var dy = Values(random, 2 * 8 * s.Output[0] * s.Output[1]);
        w[7] = float.PositiveInfinity;
        var dx = new float[x.Length];
        ConvOps.ConvBackward(dy, x, w, dx, null, null, s, 2);
        var (rx, _, _) = ConvGradDirectTests.Reference(s, [.. dy.Select(v => (double)v)], [.. x.Select(v => (double)v)], [.. w.Select(v => (double)v)]);
        for (int i = 0; i < rx.Length; i++)
            Assert.AreEqual(double.IsNaN(rx[i]), float.IsNaN(dx[i]), $"dX[{i}] = {dx[i]}, expected {rx[i]}");
    }

    [TestMethod]
    [DataRow(1, 0)]
    [DataRow(1, 2)]
    [DataRow(2, 2)]
    [DataRow(2, 1)]
    public void NonFiniteInputFallsBackToTheExactWeightPath(int stride, int image)
    {
        // The direct dW checks X while spreading it (vector rows, stride-2 deinterleaves, scalar tails); a NaN or ∞ in any
        // image, on either thread's part, must hand dW to the exact path: 0·∞ in the wide dropped columns would be NaN.
        var s = ConvGradDirectTests.Shape(3, 4, 8, 1, 20, 21, 3, 3, stride, 1, 1, 1, 1, 1);
        var random = new Random(11 + image);
        var x = Values(random, 3 * 4 * 20 * 21);
        var w = Values(random, 8 * 4 * 9);
        var dy = Values(random, 3 * 8 * s.Output[0] * s.Output[1]);
        foreach (float bad in new[] { float.PositiveInfinity, float.NaN })
            foreach (int at in new[] { 0, 20, 20 * 21 - 1, 2 * 20 * 21 + 7 * 21 + 19 })
            {
                var xb = (float[])x.Clone();
                xb[image * 4 * 20 * 21 + at] = bad;
                var (_, rw, _) = ConvGradDirectTests.Reference(s, [.. dy.Select(v => (double)v)], [.. xb.Select(v => (double)v)], [.. w.Select(v => (double)v)]);
                foreach (int threads in new[] { 1, 2 })
                {
                    var dw = new float[w.Length];
                    ConvOps.ConvBackward(dy, xb, w, null, dw, null, s, threads);
                    for (int i = 0; i < rw.Length; i++)
                    {
                        string what = $"dW[{i}] = {dw[i]}, expected {rw[i]} ({bad} at {at} of image {image}, threads {threads})";
                        if (double.IsFinite(rw[i])) Assert.AreEqual(rw[i], dw[i], 1e-4 * (1 + Math.Abs(rw[i])), what);
                        else Assert.AreEqual(double.IsNaN(rw[i]), float.IsNaN(dw[i]), what);
                    }
                }
            }
    }

    [TestMethod]
    [DataRow(1, 3, 1)]
    [DataRow(2, 3, 1)]
    [DataRow(2, 1, 0)]
    [DataRow(1, 3, 2)]
    public void ConvGradKernelWritesEveryInputGradientElement(int stride, int k, int pad)
    {
        // The direct dX path takes an uninitialised pooled buffer (debug builds fill it with NaN): run the kernel through
        // a plan several times, as training does, and check every element against the definition.
        var s = ConvGradDirectTests.Shape(2, 4, 8, 1, 18, 17, k, k, stride, pad, pad, pad, pad, 1);
        var random = new Random(stride * 10 + k);
        var x = Values(random, 2 * 4 * 18 * 17);
        var w = Values(random, 8 * 4 * k * k);
        var dy = Values(random, 2 * 8 * s.Output[0] * s.Output[1]);
        var (rx, rw, _) = ConvGradDirectTests.Reference(s, [.. dy.Select(v => (double)v)], [.. x.Select(v => (double)v)], [.. w.Select(v => (double)v)]);
        var inputs = new OnnxTensor?[] { OnnxTensor.FromArray(dy, 2, 8, s.Output[0], s.Output[1]), OnnxTensor.FromArray(x, 2, 4, 18, 17), OnnxTensor.FromArray(w, 8, 4, k, k) };
        var model = SingleNode.Model("ConvGrad", inputs, 2, 17, "ai.backprop",
            OnnxAttribute.FromInts("kernel_shape", k, k), OnnxAttribute.FromInts("strides", stride, stride), OnnxAttribute.FromInts("pads", pad, pad, pad, pad));
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 2 });
        var feeds = new Dictionary<string, OnnxTensor> { ["x0"] = inputs[0]!, ["x1"] = inputs[1]!, ["x2"] = inputs[2]! };
        for (int run = 0; run < 3; run++)
        {
            var outs = plan.Run(feeds);
            ConvGradDirectTests.AssertClose(rx, outs["y0"].ToArray<float>(), $"dX run {run}");
            ConvGradDirectTests.AssertClose(rw, outs["y1"].ToArray<float>(), $"dW run {run}");
        }
    }

    private static float[] Values(Random random, int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() - 0.5))];
}
