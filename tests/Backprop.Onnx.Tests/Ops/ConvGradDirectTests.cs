using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// ConvGrad's direct float32 kernels (weight gradient as blocked dot products, input gradient as a direct correlation)
/// against a scalar loop of the definition in double, and against the general im2col + GEMM path: odd sizes, padding,
/// dilations, groups, channel counts that leave partial register blocks, 1-3 threads.
/// </summary>
[TestClass]
public sealed class ConvGradDirectTests
{
    /// <summary>(N, C, M, group, H, W, kh, kw, stride, pad top, pad left, pad bottom, pad right, dilation).</summary>
    public static IEnumerable<object[]> Cases =>
    [
        [3, 1, 6, 1, 12, 12, 5, 5, 1, 2, 2, 2, 2, 1],     // LeNet conv1 (small): 1 → 6 channels, pad 2
        [4, 6, 16, 1, 14, 14, 5, 5, 1, 0, 0, 0, 0, 1],    // LeNet conv2: no padding, Wp = 14
        [2, 16, 16, 1, 9, 11, 3, 3, 1, 1, 1, 1, 1, 1],    // ResNet 3×3 pad 1, odd plane
        [3, 3, 16, 1, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1],      // 27 taps: 4 blocks of 6 + 3 single taps
        [5, 5, 7, 1, 6, 5, 3, 2, 1, 0, 1, 2, 0, 1],       // 7 channels (4 + 3 single rows), asymmetric pads
        [2, 4, 6, 2, 8, 9, 3, 3, 1, 1, 1, 1, 1, 2],       // groups and dilation 2
        [1, 2, 3, 1, 5, 5, 1, 1, 1, 0, 0, 0, 0, 1],       // one image, 1×1
        [3, 32, 32, 1, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1],     // many channels, tiny plane
        [2, 3, 5, 1, 9, 10, 3, 3, 1, 0, 2, 4, 1, 1],      // bottom pad beyond the kernel: dY rows that read only padding
        [2, 3, 5, 1, 10, 12, 3, 3, 1, 2, 1, 1, 2, 2],     // dilation 2, ungrouped (direct dX)
        [2, 2, 3, 1, 6, 9, 2, 4, 1, 1, 3, 0, 2, 1],       // even kernel, left pad = kernel extent − 1
        [3, 4, 8, 1, 9, 9, 3, 3, 2, 1, 1, 1, 1, 1],       // stride 2, odd input: four phase planes of unequal use
        [2, 16, 32, 1, 12, 12, 3, 3, 2, 1, 1, 1, 1, 1],   // ResNet block2 conv1 (3×3/2, small)
        [3, 16, 32, 1, 12, 10, 1, 1, 2, 0, 0, 0, 0, 1],   // ResNet shortcut 1×1/2 (general path: one phase of four is read)
        [2, 5, 6, 1, 11, 12, 2, 2, 2, 0, 1, 1, 0, 1],     // 2×2/2: every phase read by exactly one tap
        [2, 3, 5, 1, 13, 14, 3, 2, 3, 2, 1, 0, 2, 2],     // stride 3, dilation 2, asymmetric pads
        [2, 4, 4, 2, 10, 11, 3, 3, 2, 1, 1, 1, 1, 1],     // stride 2 with groups
    ];

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void Float32GradientsMatchScalarLoop(int n, int c, int m, int group, int h, int wd, int kh, int kw, int stride, int pt, int pl, int pb, int pr, int dil)
    {
        var s = Shape(n, c, m, group, h, wd, kh, kw, stride, pt, pl, pb, pr, dil);
        int seed = n * 1000 + c * 100 + m * 10 + kh;
        var random = new Random(seed);
        var x = Values(random, n * c * h * wd);
        var w = Values(random, m * (c / group) * kh * kw);
        var dy = Values(random, n * m * s.Output[0] * s.Output[1]);
        var (rx, rw, rb) = Reference(s, dy.Select(v => (double)v).ToArray(), x.Select(v => (double)v).ToArray(), w.Select(v => (double)v).ToArray());
        for (int threads = 1; threads <= 3; threads++)
        {
            var dx = new float[x.Length];
            var dw = new float[w.Length];
            var db = new float[m];
            ConvOps.ConvBackward(dy, x, w, dx, dw, db, s, threads);
            AssertClose(rx, dx, $"dX threads {threads} seed {seed}");
            AssertClose(rw, dw, $"dW threads {threads} seed {seed}");
            AssertClose(rb, db, $"dB threads {threads} seed {seed}");

            var old = new float[w.Length];
            var oldX = new float[x.Length];
            ConvOps.ConvBackward(dy, x, w, oldX, old, null, s, threads, direct: false);
            AssertClose(old.Select(v => (double)v).ToArray(), dw, $"dW vs the general path, threads {threads} seed {seed}");
            AssertClose(oldX.Select(v => (double)v).ToArray(), dx, $"dX vs the general path, threads {threads} seed {seed}");

            var again = new float[w.Length];
            var againX = new float[x.Length];
            ConvOps.ConvBackward(dy, x, w, againX, again, null, s, threads);
            CollectionAssert.AreEqual(dw, again, $"dW: same inputs and thread count, same bits (seed {seed})");
            CollectionAssert.AreEqual(dx, againX, $"dX: same inputs and thread count, same bits (seed {seed})");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void DirectInputGradientMatchesScalarLoop(int n, int c, int m, int group, int h, int wd, int kh, int kw, int stride, int pt, int pl, int pb, int pr, int dil)
    {
        // Called directly: the dispatcher takes it only where it pays, the kernel must be right wherever it applies.
        var s = Shape(n, c, m, group, h, wd, kh, kw, stride, pt, pl, pb, pr, dil);
        if (!ConvOps.CanUseDirectInputGrad(s)) return;
        int seed = n * 1000 + c * 100 + m * 10 + kh + 3;
        var random = new Random(seed);
        var x = Values(random, n * c * h * wd);
        var w = Values(random, m * (c / group) * kh * kw);
        var dy = Values(random, n * m * s.Output[0] * s.Output[1]);
        var (rx, _, _) = Reference(s, dy.Select(v => (double)v).ToArray(), x.Select(v => (double)v).ToArray(), w.Select(v => (double)v).ToArray());
        for (int threads = 1; threads <= 3; threads++)
        {
            var dx = Enumerable.Repeat(float.NaN, x.Length).ToArray();
            ConvOps.InputGradDirect(dy, w, dx, s, threads);
            AssertClose(rx, dx, $"dX threads {threads} seed {seed}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void Float64GradientsMatchScalarLoop(int n, int c, int m, int group, int h, int wd, int kh, int kw, int stride, int pt, int pl, int pb, int pr, int dil)
    {
        var s = Shape(n, c, m, group, h, wd, kh, kw, stride, pt, pl, pb, pr, dil);
        int seed = n * 1000 + c * 100 + m * 10 + kh + 7;
        var random = new Random(seed);
        var x = Values(random, n * c * h * wd).Select(v => (double)v).ToArray();
        var w = Values(random, m * (c / group) * kh * kw).Select(v => (double)v).ToArray();
        var dy = Values(random, n * m * s.Output[0] * s.Output[1]).Select(v => (double)v).ToArray();
        var (rx, rw, rb) = Reference(s, dy, x, w);
        var dx = new double[x.Length];
        var dw = new double[w.Length];
        var db = new double[m];
        ConvOps.ConvBackward(dy, x, w, dx, dw, db, s, 2);
        for (int i = 0; i < rx.Length; i++) Assert.AreEqual(rx[i], dx[i], 1e-12, $"dX[{i}] seed {seed}");
        for (int i = 0; i < rw.Length; i++) Assert.AreEqual(rw[i], dw[i], 1e-12, $"dW[{i}] seed {seed}");
        for (int i = 0; i < rb.Length; i++) Assert.AreEqual(rb[i], db[i], 1e-12, $"dB[{i}] seed {seed}");
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void InfiniteInputTakesTheExactPath(int threads)
    {
        // A wide dropped column times ∞ would be NaN; the direct path must not run on a non-finite X.
        var s = Shape(2, 2, 4, 1, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1);
        var random = new Random(5);
        var x = Values(random, 2 * 2 * 36);
        var w = Values(random, 4 * 2 * 9);
        var dy = Values(random, 2 * 4 * 36);
        x[5] = float.PositiveInfinity;
        var dw = new float[w.Length];
        ConvOps.ConvBackward(dy, x, w, null, dw, null, s, threads);
        var (_, rw, _) = Reference(s, dy.Select(v => (double)v).ToArray(), x.Select(v => (double)v).ToArray(), w.Select(v => (double)v).ToArray());
        for (int i = 0; i < rw.Length; i++)
        {
            if (double.IsFinite(rw[i])) Assert.AreEqual(rw[i], dw[i], 1e-4 * (1 + Math.Abs(rw[i])), $"dW[{i}]");
            else Assert.AreEqual(double.IsNaN(rw[i]), float.IsNaN(dw[i]), $"dW[{i}] = {dw[i]}, expected {rw[i]}");
        }
    }

    [TestMethod]
    public void AllFiniteFloatsFindsEveryNonFiniteLane()
    {
        var values = new float[67];
        Assert.IsTrue(FiniteCheck.All<float>(values));
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = bad;
                Assert.IsFalse(FiniteCheck.All<float>(values), $"{bad} at {i}");
                values[i] = 0;
            }
    }

    internal static ConvOps.ConvShape Shape(int n, int c, int m, int group, int h, int wd, int kh, int kw, int stride, int pt, int pl, int pb, int pr, int dil)
    {
        int oh = (h + pt + pb - ((kh - 1) * dil + 1)) / stride + 1, ow = (wd + pl + pr - ((kw - 1) * dil + 1)) / stride + 1;
        return new ConvOps.ConvShape(n, c, m, group, [h, wd], [kh, kw], [oh, ow], [stride, stride], [dil, dil], [pt, pl]);
    }

    private static float[] Values(Random random, int count) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();

    /// <summary>The definition (ONNX Conv): Y[n, o, y, x] = Σ W[o, ci, i, j]·X[n, g·Cg + ci, y·s − pt + i·d, x·s − pl + j·d]; its adjoints.</summary>
    internal static (double[] Dx, double[] Dw, double[] Db) Reference(ConvOps.ConvShape s, double[] dy, double[] x, double[] w)
    {
        int n = s.N, c = s.C, m = s.M, h = s.Input[0], wd = s.Input[1], kh = s.Kernel[0], kw = s.Kernel[1];
        int oh = s.Output[0], ow = s.Output[1], cg = c / s.Group, mg = m / s.Group;
        var dx = new double[x.Length];
        var dw = new double[w.Length];
        var db = new double[m];
        for (int img = 0; img < n; img++)
            for (int o = 0; o < m; o++)
                for (int y = 0; y < oh; y++)
                    for (int xo = 0; xo < ow; xo++)
                    {
                        double g = dy[((img * m + o) * oh + y) * ow + xo];
                        db[o] += g;
                        for (int ci = 0; ci < cg; ci++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++)
                                {
                                    int ih = y * s.Strides[0] - s.PadBegin[0] + i * s.Dilations[0], iw = xo * s.Strides[1] - s.PadBegin[1] + j * s.Dilations[1];
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                                    int xi = ((img * c + o / mg * cg + ci) * h + ih) * wd + iw, wi = ((o * cg + ci) * kh + i) * kw + j;
                                    dw[wi] += g * x[xi];
                                    dx[xi] += g * w[wi];
                                }
                    }
        return (dx, dw, db);
    }

    internal static void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, what);
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(expected[i], actual[i], 1e-4 * (1 + Math.Abs(expected[i])), $"{what}: element {i}");
    }
}
