using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// NaN and ±∞ through the fast paths (direct Conv forward, ConvGrad's direct kernels, MaxPool 2×2, BatchNormalization,
/// ReluGrad, MatMulGrad) against the general path and a scalar loop of the definition in double. Equality is NaN-aware:
/// a NaN must be NaN, an infinity the same infinity, a finite value close. Zero padding takes part in the products
/// (0 · ∞ = NaN), as in an explicitly padded convolution; positions no window reads take no part.
/// </summary>
[TestClass]
public sealed class NonFiniteFastPathTests
{
    /// <summary>Where the non-finite values go and which ones.</summary>
    public enum Poison
    {
        NaN,
        PositiveInfinity,
        NegativeInfinity,
        BothInfinities,
    }

    private static float[] Values(Random random, int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() - 0.5))];

    /// <summary>Puts the poison at element 0 (a corner: padding and edges), the last element and a few random ones.</summary>
    private static void Inject(float[] v, Poison poison, Random random)
    {
        int[] at = [0, v.Length - 1, random.Next(v.Length), random.Next(v.Length)];
        for (int i = 0; i < at.Length; i++)
            v[at[i]] = poison switch
            {
                Poison.NaN => float.NaN,
                Poison.PositiveInfinity => float.PositiveInfinity,
                Poison.NegativeInfinity => float.NegativeInfinity,
                _ => i % 2 == 0 ? float.PositiveInfinity : float.NegativeInfinity,
            };
    }

    /// <summary>NaN-aware closeness: same class (NaN, +∞, −∞, finite), finite values within a relative tolerance.</summary>
    private static void AssertSameValue(double expected, double actual, double tolerance, string what)
    {
        if (double.IsNaN(expected)) Assert.IsTrue(double.IsNaN(actual), $"{what}: {actual}, expected NaN");
        else if (double.IsInfinity(expected)) Assert.AreEqual(expected, actual, $"{what}: expected {expected}");
        else
        {
            Assert.IsTrue(double.IsFinite(actual), $"{what}: {actual}, expected {expected}");
            Assert.AreEqual(expected, actual, tolerance * (1 + Math.Abs(expected)), what);
        }
    }

    private static void AssertSameValues(double[] expected, float[] actual, double tolerance, string what)
    {
        Assert.HasCount(expected.Length, actual, what);
        for (int i = 0; i < expected.Length; i++) AssertSameValue(expected[i], actual[i], tolerance, $"{what} [{i}]");
    }

    private static double[] Doubles(float[] v) => [.. v.Select(f => (double)f)];

    // ---- Conv forward (direct) ----

    /// <summary>N, C, M, kh, kw, H, W, pad top, pad left, pad bottom, pad right, dilation, stride rows, stride columns.</summary>
    private static readonly int[][] ForwardCases =
    [
        [2, 1, 6, 5, 5, 28, 28, 2, 2, 2, 2, 1, 1, 1],     // LeNet conv1
        [2, 6, 16, 5, 5, 14, 14, 0, 0, 0, 0, 1, 1, 1],    // LeNet conv2
        [2, 3, 16, 3, 3, 32, 32, 1, 1, 1, 1, 1, 1, 1],    // ResNet stem
        [1, 16, 32, 3, 3, 32, 32, 1, 1, 1, 1, 1, 2, 2],   // ResNet block2 conv1, stride 2
        [1, 16, 32, 1, 1, 32, 32, 0, 0, 0, 0, 1, 2, 2],   // ResNet shortcut 1×1/2
        [3, 2, 7, 3, 3, 11, 19, 1, 2, 0, 1, 2, 1, 1],     // dilation 2, asymmetric padding
    ];

    public static IEnumerable<object[]> ForwardRows()
    {
        for (int c = 0; c < ForwardCases.Length; c++)
            foreach (bool inW in new[] { false, true })
                foreach (var poison in Enum.GetValues<Poison>())
                    yield return [c, inW, poison];
    }

    private static ConvOps.ConvShape ForwardShape(int[] p)
    {
        int n = p[0], c = p[1], m = p[2], kh = p[3], kw = p[4], h = p[5], wd = p[6], dil = p[11], sh = p[12], sw = p[13];
        int outH = (h + p[7] + p[9] - (kh - 1) * dil - 1) / sh + 1, outW = (wd + p[8] + p[10] - (kw - 1) * dil - 1) / sw + 1;
        return new ConvOps.ConvShape(n, c, m, 1, [h, wd], [kh, kw], [outH, outW], [sh, sw], [dil, dil], [p[7], p[8]]);
    }

    [TestMethod]
    [DynamicData(nameof(ForwardRows))]
    public void ConvForward_DirectPath_PropagatesNonFiniteValuesAsTheIm2ColPathAndTheDefinition(int index, bool inW, Poison poison)
    {
        var s = ForwardShape(ForwardCases[index]);
        if (!ConvOps.DirectConvAccelerated) return;
        Assert.IsTrue(ConvOps.UseDirect(s), $"case {index} should take the direct path");
        int seed = 500 + index;
        var random = new Random(seed);
        var x = Values(random, s.N * s.C * s.InputSize);
        var w = Values(random, s.M * s.C * s.KernelSize);
        var b = Values(random, s.M);
        Inject(inW ? w : x, poison, random);
        var expected = ForwardReference(s, x, w, b);
        var general = new float[expected.Length];
        ConvOps.ConvForward(x, w, b, general, s, 1, allowDirect: false);
        string what = $"case {index} poison {poison} in {(inW ? "W" : "X")} (seed {seed})";
        AssertSameValues(expected, general, 1e-4, "im2col " + what);
        foreach (int threads in new[] { 1, 2 })
        {
            var direct = new float[expected.Length];
            ConvOps.ConvForward(x, w, b, direct, s, threads);
            AssertSameValues(expected, direct, 1e-4, $"direct, threads {threads}, {what}");
        }
    }

    private static double[] ForwardReference(ConvOps.ConvShape s, float[] x, float[] w, float[] b)
    {
        int h = s.Input[0], wd = s.Input[1], kh = s.Kernel[0], kw = s.Kernel[1], oh = s.Output[0], ow = s.Output[1];
        var y = new double[s.N * s.M * oh * ow];
        for (int n = 0; n < s.N; n++)
            for (int m = 0; m < s.M; m++)
                for (int r = 0; r < oh; r++)
                    for (int q = 0; q < ow; q++)
                    {
                        double sum = b[m];
                        for (int c = 0; c < s.C; c++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++)
                                {
                                    int ih = r * s.Strides[0] - s.PadBegin[0] + i * s.Dilations[0], iw = q * s.Strides[1] - s.PadBegin[1] + j * s.Dilations[1];
                                    double xv = ih >= 0 && ih < h && iw >= 0 && iw < wd ? x[((n * s.C + c) * h + ih) * wd + iw] : 0.0;
                                    sum += xv * w[((m * s.C + c) * kh + i) * kw + j];
                                }
                        y[((n * s.M + m) * oh + r) * ow + q] = sum;
                    }
        return y;
    }

    // ---- ConvGrad (direct dX and dW) ----

    /// <summary>(N, C, M, H, W, kh, kw, stride, pad top, pad left, pad bottom, pad right, dilation).</summary>
    private static readonly int[][] GradCases =
    [
        [3, 1, 6, 12, 12, 5, 5, 1, 2, 2, 2, 2, 1],     // LeNet conv1 (small)
        [2, 6, 16, 10, 10, 5, 5, 1, 0, 0, 0, 0, 1],    // LeNet conv2
        [2, 16, 16, 9, 11, 3, 3, 1, 1, 1, 1, 1, 1],    // ResNet 3×3 pad 1
        [2, 16, 32, 12, 12, 3, 3, 2, 1, 1, 1, 1, 1],   // ResNet block2 conv1 (3×3/2)
        [2, 3, 5, 10, 12, 3, 3, 1, 2, 1, 1, 2, 2],     // dilation 2
    ];

    public static IEnumerable<object[]> GradRows()
    {
        for (int c = 0; c < GradCases.Length; c++)
            foreach (var where in new[] { "X", "W", "dY" })
                foreach (var poison in Enum.GetValues<Poison>())
                    yield return [c, where, poison];
    }

    private static ConvOps.ConvShape GradShape(int[] p)
    {
        int n = p[0], c = p[1], m = p[2], h = p[3], wd = p[4], kh = p[5], kw = p[6], st = p[7], dil = p[12];
        int outH = (h + p[8] + p[10] - (kh - 1) * dil - 1) / st + 1, outW = (wd + p[9] + p[11] - (kw - 1) * dil - 1) / st + 1;
        return new ConvOps.ConvShape(n, c, m, 1, [h, wd], [kh, kw], [outH, outW], [st, st], [dil, dil], [p[8], p[9]]);
    }

    [TestMethod]
    [DynamicData(nameof(GradRows))]
    public void ConvGrad_DirectPaths_PropagateNonFiniteValuesAsTheGeneralPathAndTheDefinition(int index, string where, Poison poison)
    {
        var s = GradShape(GradCases[index]);
        int seed = 700 + index;
        var random = new Random(seed);
        var x = Values(random, s.N * s.C * s.InputSize);
        var w = Values(random, s.M * s.C * s.KernelSize);
        var dy = Values(random, s.N * s.M * s.OutputSize);
        Inject(where switch { "X" => x, "W" => w, _ => dy }, poison, random);
        var (rx, rw, rb) = GradReference(s, dy, x, w);
        string what = $"case {index} poison {poison} in {where} (seed {seed})";

        foreach (int threads in new[] { 1, 2 })
        {
            var dx = new float[x.Length];
            var dw = new float[w.Length];
            var db = new float[s.M];
            ConvOps.ConvBackward(dy, x, w, dx, dw, db, s, threads);
            AssertSameValues(rx, dx, 1e-4, $"dX, threads {threads}, {what}");
            AssertSameValues(rw, dw, 1e-4, $"dW, threads {threads}, {what}");
            AssertSameValues(rb, db, 1e-4, $"dB, threads {threads}, {what}");
        }
        var gx = new float[x.Length];
        var gw = new float[w.Length];
        var gb = new float[s.M];
        ConvOps.ConvBackward(dy, x, w, gx, gw, gb, s, 1, direct: false);
        AssertSameValues(rx, gx, 1e-4, "general dX " + what);
        AssertSameValues(rw, gw, 1e-4, "general dW " + what);
        AssertSameValues(rb, gb, 1e-4, "general dB " + what);
    }

    /// <summary>dX = Σ W·dY over the (tap, position) pairs that read each input element; dW = Σ dY·X with X zero-padded; dB = Σ dY.</summary>
    private static (double[] Dx, double[] Dw, double[] Db) GradReference(ConvOps.ConvShape s, float[] dy, float[] x, float[] w)
    {
        int h = s.Input[0], wd = s.Input[1], kh = s.Kernel[0], kw = s.Kernel[1], oh = s.Output[0], ow = s.Output[1];
        var dx = new double[x.Length];
        var dw = new double[w.Length];
        var db = new double[s.M];
        for (int n = 0; n < s.N; n++)
            for (int m = 0; m < s.M; m++)
                for (int r = 0; r < oh; r++)
                    for (int q = 0; q < ow; q++)
                    {
                        double g = dy[((n * s.M + m) * oh + r) * ow + q];
                        db[m] += g;
                        for (int c = 0; c < s.C; c++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++)
                                {
                                    int ih = r * s.Strides[0] - s.PadBegin[0] + i * s.Dilations[0], iw = q * s.Strides[1] - s.PadBegin[1] + j * s.Dilations[1];
                                    int wi = ((m * s.C + c) * kh + i) * kw + j;
                                    bool inside = ih >= 0 && ih < h && iw >= 0 && iw < wd;
                                    int xi = ((n * s.C + c) * h + ih) * wd + iw;
                                    dw[wi] += g * (inside ? x[xi] : 0.0);
                                    if (inside) dx[xi] += g * w[wi];
                                }
                    }
        return (dx, dw, db);
    }

    // ---- MaxPool 2×2 ----

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void MaxPool2x2_WithInfinitiesAndNaNs_MatchesTheGeneralPathBitForBit(bool isDouble)
    {
        int n = 2, c = 3, h = 12, wd = 19, oh = h / 2, ow = wd / 2;
        var random = new Random(17);
        var xs = Enumerable.Range(0, n * c * h * wd).Select(i => (i % 13) switch
        {
            0 => double.NaN,
            1 => double.PositiveInfinity,
            2 => double.NegativeInfinity,
            3 => -0.0,
            _ => random.Next(-3, 4) * 0.5,
        }).ToArray();
        var dys = Enumerable.Range(0, n * c * oh * ow).Select(i => i % 11 == 0 ? double.PositiveInfinity : i % 7 == 0 ? double.NaN : random.NextDouble() - 0.5).ToArray();
        OnnxTensor Tensor(double[] v, params int[] dims) => isDouble ? OnnxTensor.FromArray(v, dims) : OnnxTensor.FromArray(v.Select(d => (float)d).ToArray(), dims);
        var x = Tensor(xs, n, c, h, wd);
        var dy = Tensor(dys, n, c, oh, ow);
        OnnxAttribute[] attrs = [OnnxAttribute.FromInts("kernel_shape", [2, 2]), OnnxAttribute.FromInts("strides", [2, 2])];
        var pool = SingleNode.Model("MaxPool", [x], 1, 17, "", attrs);
        var grad = SingleNode.Model("MaxPoolGrad", [dy, x], 1, 17, "ai.backprop", attrs);
        OnnxTensor Run(OnnxModel model, int threads, params OnnxTensor[] inputs)
        {
            var feeds = new Dictionary<string, OnnxTensor>();
            for (int i = 0; i < inputs.Length; i++) feeds[$"x{i}"] = inputs[i];
            return ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads }).Run(feeds)["y0"];
        }
        PoolingOps.UsePool2x2 = false;
        OnnxTensor generalY, generalDx;
        try
        {
            generalY = Run(pool, 1, x);
            generalDx = Run(grad, 1, dy, x);
        }
        finally
        {
            PoolingOps.UsePool2x2 = true;
        }
        foreach (int threads in new[] { 1, 2 })
        {
            Assert.IsTrue(generalY.ContentEquals(Run(pool, threads, x)), $"MaxPool threads {threads}");
            Assert.IsTrue(generalDx.ContentEquals(Run(grad, threads, dy, x)), $"MaxPoolGrad threads {threads}");
        }
    }

    // ---- BatchNormalization ----

    [TestMethod]
    [DataRow(Poison.NaN, false)]
    [DataRow(Poison.PositiveInfinity, false)]
    [DataRow(Poison.NegativeInfinity, false)]
    [DataRow(Poison.BothInfinities, false)]
    [DataRow(Poison.NaN, true)]
    [DataRow(Poison.PositiveInfinity, true)]
    [DataRow(Poison.NegativeInfinity, true)]
    [DataRow(Poison.BothInfinities, true)]
    public void BatchNormalization_NonFiniteX_MatchesTheFormula(Poison poison, bool training)
    {
        int n = 3, c = 4, s = 37;
        var random = new Random(41);
        var x = Values(random, n * c * s);
        // The poison lands in channel 0 (element 0) and, through the others, maybe elsewhere; channel 2 stays clean.
        Inject(x, poison, random);
        for (int i = 0; i < n; i++) for (int k = 0; k < s; k++) x[(i * c + 2) * s + k] = (float)(random.NextDouble() - 0.5);
        var scale = Values(random, c).Select(v => v + 1f).ToArray();
        var bias = Values(random, c);
        var mean = Values(random, c);
        var variance = Values(random, c).Select(v => v + 1f).ToArray();
        const float momentum = 0.75f, epsilon = 1e-5f;
        var expected = new double[x.Length];
        var expMean = new double[c];
        var expVar = new double[c];
        for (int ch = 0; ch < c; ch++)
        {
            double m = mean[ch], v = variance[ch];
            if (training)
            {
                double sum = 0, squares = 0;
                for (int i = 0; i < n; i++) for (int k = 0; k < s; k++) sum += x[(i * c + ch) * s + k];
                m = sum / (n * s);
                for (int i = 0; i < n; i++) for (int k = 0; k < s; k++) squares += (x[(i * c + ch) * s + k] - m) * (x[(i * c + ch) * s + k] - m);
                v = squares / (n * s);
                expMean[ch] = mean[ch] * (double)momentum + m * (1 - (double)momentum);
                expVar[ch] = variance[ch] * (double)momentum + v * (1 - (double)momentum);
            }
            for (int i = 0; i < n; i++)
                for (int k = 0; k < s; k++)
                {
                    int j = (i * c + ch) * s + k;
                    expected[j] = scale[ch] * (x[j] - m) / Math.Sqrt(v + epsilon) + bias[ch];
                }
        }
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromFloat("momentum", momentum), OnnxAttribute.FromFloat("epsilon", epsilon) };
        if (training) attrs.Add(OnnxAttribute.FromInt("training_mode", 1));
        var outs = SingleNode.Run("BatchNormalization", [OnnxTensor.FromArray(x, n, c, s), OnnxTensor.FromArray(scale, c), OnnxTensor.FromArray(bias, c),
            OnnxTensor.FromArray(mean, c), OnnxTensor.FromArray(variance, c)], training ? 3 : 1, 15, [.. attrs]);
        AssertSameValues(expected, outs[0].ToArray<float>(), 1e-4, $"Y, {poison}, training {training}");
        if (!training) return;
        AssertSameValues(expMean, outs[1].ToArray<float>(), 1e-4, $"running_mean, {poison}");
        AssertSameValues(expVar, outs[2].ToArray<float>(), 1e-4, $"running_var, {poison}");
    }

    // ---- ReluGrad ----

    [TestMethod]
    [DataRow(3)]
    [DataRow(8)]
    [DataRow(37)]
    public void ReluGrad_NonFiniteDyAndY_MatchesTheGreaterWherePairBitForBit(int count)
    {
        var random = new Random(count);
        float[] specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0f, -0f, 1f, -1f];
        var dy = Enumerable.Range(0, count).Select(_ => specials[random.Next(specials.Length)]).ToArray();
        var y = Enumerable.Range(0, count).Select(_ => specials[random.Next(specials.Length)]).ToArray();
        var dx = new float[count];
        ActivationOps.ReluGrad<float>(dy, y, dx);
        for (int i = 0; i < count; i++)
        {
            float expected = y[i] > 0f ? dy[i] : 0f;
            Assert.AreEqual(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(dx[i]), $"[{i}]: dY {dy[i]}, Y {y[i]}: {dx[i]}, expected {expected}");
        }
        var dyd = dy.Select(v => (double)v).ToArray();
        var yd = y.Select(v => (double)v).ToArray();
        var dxd = new double[count];
        ActivationOps.ReluGrad<double>(dyd, yd, dxd);
        for (int i = 0; i < count; i++)
            Assert.AreEqual(BitConverter.DoubleToInt64Bits(yd[i] > 0 ? dyd[i] : 0.0), BitConverter.DoubleToInt64Bits(dxd[i]), $"double [{i}]");
    }

    // ---- MatMulGrad ----

    [TestMethod]
    [DataRow(new[] { 3, 4 }, new[] { 4, 5 }, "dY")]
    [DataRow(new[] { 3, 4 }, new[] { 4, 5 }, "A")]
    [DataRow(new[] { 3, 70, 40 }, new[] { 40, 50 }, "B")]       // shared B: batches folded into rows
    [DataRow(new[] { 3, 70, 40 }, new[] { 40, 50 }, "dY")]
    [DataRow(new[] { 5, 17, 33 }, new[] { 5, 33, 19 }, "A")]    // per-batch GEMMs
    [DataRow(new[] { 5, 17, 33 }, new[] { 5, 33, 19 }, "dY")]
    [DataRow(new[] { 130, 70 }, new[] { 70, 90 }, "B")]         // blocked, threaded GEMM
    [DataRow(new[] { 130, 70 }, new[] { 70, 90 }, "dY")]
    public void MatMulGrad_NonFiniteOperands_MatchTheDefinition(int[] aShape, int[] bShape, string where)
    {
        int batch = aShape.Length == 3 ? aShape[0] : 1, rows = aShape[^2], inner = aShape[^1], cols = bShape[^1];
        bool sharedB = bShape.Length == 2;
        int[] yShape = aShape.Length == 3 ? [batch, rows, cols] : [rows, cols];
        foreach (var poison in Enum.GetValues<Poison>())
        {
            var random = new Random(rows * 100 + cols);
            var a = Values(random, batch * rows * inner);
            var b = Values(random, (sharedB ? 1 : batch) * inner * cols);
            var dy = Values(random, batch * rows * cols);
            Inject(where switch { "A" => a, "B" => b, _ => dy }, poison, random);
            var da = new double[a.Length];
            var db = new double[b.Length];
            for (int p = 0; p < batch; p++)
            {
                int bOff = sharedB ? 0 : p * inner * cols;
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++)
                    {
                        double g = dy[(p * rows + i) * cols + j];
                        for (int k = 0; k < inner; k++)
                        {
                            da[(p * rows + i) * inner + k] += g * b[bOff + k * cols + j];
                            db[bOff + k * cols + j] += a[(p * rows + i) * inner + k] * g;
                        }
                    }
            }
            var model = SingleNode.Model("MatMulGrad", [OnnxTensor.FromArray(dy, yShape), OnnxTensor.FromArray(a, aShape), OnnxTensor.FromArray(b, bShape)], 2, 17, "ai.backprop");
            foreach (int threads in new[] { 1, 2 })
            {
                var outs = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads }).Run(new Dictionary<string, OnnxTensor>
                {
                    ["x0"] = OnnxTensor.FromArray(dy, yShape), ["x1"] = OnnxTensor.FromArray(a, aShape), ["x2"] = OnnxTensor.FromArray(b, bShape),
                });
                string what = $"A [{string.Join(',', aShape)}] B [{string.Join(',', bShape)}] {poison} in {where}, threads {threads}";
                AssertSameValues(da, outs["y0"].ToArray<float>(), 1e-4, "dA " + what);
                AssertSameValues(db, outs["y1"].ToArray<float>(), 1e-4, "dB " + what);
            }
        }
    }
}
