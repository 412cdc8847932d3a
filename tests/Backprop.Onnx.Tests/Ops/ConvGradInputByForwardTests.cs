using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// ConvGrad's dX as a forward direct convolution of the padded dY with the flipped, transposed W
/// (<c>ConvOps.InputGradByForward</c>): against the scalar loop of the definition in double and against the general
/// col2im path (direct: false), float32 and float64, LeNet's conv2 and odd sizes, pads 0/1/2 and asymmetric, dilation,
/// 1-3 threads, bit-determinism, and non-finite dY (a non-finite W takes the exact path).
/// </summary>
[TestClass]
public sealed class ConvGradInputByForwardTests
{
    /// <summary>(N, C, M, H, W, kh, kw, pad top, pad left, pad bottom, pad right, dilation).</summary>
    public static IEnumerable<object[]> Cases =>
    [
        [4, 6, 16, 14, 14, 5, 5, 0, 0, 0, 0, 1],     // LeNet conv2 (4 of 64 images): 16 → 6 channels, 14-wide rows
        [3, 1, 6, 12, 12, 5, 5, 2, 2, 2, 2, 1],      // LeNet conv1 (small), pad 2
        [2, 16, 16, 9, 11, 3, 3, 1, 1, 1, 1, 1],     // ResNet 3×3 pad 1, odd plane
        [3, 5, 7, 13, 10, 3, 2, 0, 1, 2, 0, 1],      // odd channels, asymmetric pads
        [2, 3, 5, 9, 10, 3, 3, 0, 2, 4, 1, 1],       // bottom pad past the kernel: dY rows that read only padding
        [2, 3, 5, 10, 12, 3, 3, 2, 1, 1, 2, 2],      // dilation 2
        [1, 2, 3, 8, 9, 1, 1, 0, 0, 0, 0, 1],        // 1×1
        [5, 7, 17, 11, 17, 5, 5, 2, 2, 2, 2, 1],     // 17 channels, 17-wide rows
    ];

    private static ConvOps.ConvShape Shape(object[] p) =>
        ConvGradDirectTests.Shape((int)p[0], (int)p[1], (int)p[2], 1, (int)p[3], (int)p[4], (int)p[5], (int)p[6], 1, (int)p[7], (int)p[8], (int)p[9], (int)p[10], (int)p[11]);

    private static double[] Values(Random random, int count) => [.. Enumerable.Range(0, count).Select(_ => random.NextDouble() - 0.5)];

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void Float32MatchesScalarLoopAndGeneralPath(int n, int c, int m, int h, int wd, int kh, int kw, int pt, int pl, int pb, int pr, int dil)
    {
        var s = Shape([n, c, m, h, wd, kh, kw, pt, pl, pb, pr, dil]);
        Assert.IsTrue(ConvOps.CanUseInputGradByForward(s), "the path applies");
        int seed = n * 1000 + c * 100 + m * 10 + kh;
        var random = new Random(seed);
        var x = Values(random, n * c * h * wd);
        var w = Values(random, m * c * kh * kw);
        var dy = Values(random, n * m * s.Output[0] * s.Output[1]);
        var (rx, _, _) = ConvGradDirectTests.Reference(s, dy, x, w);
        float[] wf = [.. w.Select(v => (float)v)], dyf = [.. dy.Select(v => (float)v)], xf = [.. x.Select(v => (float)v)];
        for (int threads = 1; threads <= 3; threads++)
        {
            var dx = Fill(x.Length, 7f);
            ConvOps.InputGradByForward(dyf, wf, dx, s, threads);
            ConvGradDirectTests.AssertClose(rx, dx, $"dX threads {threads} seed {seed}");
            var general = new float[x.Length];
            ConvOps.ConvBackward(dyf, xf, wf, general, null, null, s, threads, direct: false);
            ConvGradDirectTests.AssertClose([.. general.Select(v => (double)v)], dx, $"dX vs the general path, threads {threads} seed {seed}");
            var viaDispatch = Fill(x.Length, 7f);
            ConvOps.ConvBackward(dyf, xf, wf, viaDispatch, null, null, s, threads);
            ConvGradDirectTests.AssertClose(rx, viaDispatch, $"dX through ConvBackward, threads {threads} seed {seed}");
            var again = Fill(x.Length, -3f);
            ConvOps.InputGradByForward(dyf, wf, again, s, threads);
            CollectionAssert.AreEqual(dx, again, $"same inputs, same bits (threads {threads}, seed {seed})");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void Float64MatchesScalarLoop(int n, int c, int m, int h, int wd, int kh, int kw, int pt, int pl, int pb, int pr, int dil)
    {
        var s = Shape([n, c, m, h, wd, kh, kw, pt, pl, pb, pr, dil]);
        var random = new Random(n + c + m + 5);
        var x = Values(random, n * c * h * wd);
        var w = Values(random, m * c * kh * kw);
        var dy = Values(random, n * m * s.Output[0] * s.Output[1]);
        var (rx, _, _) = ConvGradDirectTests.Reference(s, dy, x, w);
        for (int threads = 1; threads <= 3; threads += 2)
        {
            var dx = new double[x.Length];
            Array.Fill(dx, 5.0);
            ConvOps.ConvBackward(dy, x, w, dx, null, null, s, threads);
            for (int i = 0; i < rx.Length; i++) Assert.AreEqual(rx[i], dx[i], 1e-12 * (1 + Math.Abs(rx[i])), $"float64 dX element {i}, threads {threads}");
        }
    }

    [TestMethod]
    [DataRow(float.NaN)]
    [DataRow(float.PositiveInfinity)]
    [DataRow(float.NegativeInfinity)]
    public void NonFiniteValuesReachTheElementsTheExactPathGives(float bad)
    {
        // LeNet's conv2 geometry with pads 2 (padding read), one image. A bad dY reaches only the dX of its windows; a bad
        // W makes ConvBackward take the exact path (0·∞ in the padding would be NaN here).
        var s = ConvGradDirectTests.Shape(2, 6, 16, 1, 14, 14, 5, 5, 1, 2, 2, 2, 2, 1);
        var random = new Random(11);
        float[] x = [.. Values(random, 2 * 6 * 14 * 14).Select(v => (float)v)];
        float[] w = [.. Values(random, 16 * 6 * 25).Select(v => (float)v)];
        float[] dy = [.. Values(random, 2 * 16 * s.Output[0] * s.Output[1]).Select(v => (float)v)];
        foreach (var (array, index) in new[] { (dy, 37), (w, 101), (x, 55) })
        {
            float old = array[index];
            array[index] = bad;
            var exact = new float[x.Length];
            ConvOps.ConvBackward(dy, x, w, exact, null, null, s, 2, direct: false);
            var fast = new float[x.Length];
            ConvOps.ConvBackward(dy, x, w, fast, null, null, s, 2);
            for (int i = 0; i < exact.Length; i++)
            {
                if (float.IsNaN(exact[i])) Assert.IsTrue(float.IsNaN(fast[i]), $"element {i}: NaN expected");
                else Assert.AreEqual(exact[i], fast[i], 1e-4f * (1 + Math.Abs(exact[i])), $"element {i}");
            }
            array[index] = old;
        }
    }

    [TestMethod]
    public void DeclinesWhatItCannotCompute()
    {
        Assert.IsFalse(ConvOps.CanUseInputGradByForward(ConvGradDirectTests.Shape(2, 4, 8, 1, 9, 9, 3, 3, 2, 1, 1, 1, 1, 1)), "stride 2");
        Assert.IsFalse(ConvOps.CanUseInputGradByForward(ConvGradDirectTests.Shape(2, 4, 6, 2, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1)), "groups");
        Assert.IsFalse(ConvOps.CanUseInputGradByForward(ConvGradDirectTests.Shape(2, 4, 6, 1, 9, 9, 3, 3, 1, 3, 0, 0, 0, 1)), "leading pad past the kernel");
    }

    private static float[] Fill(int length, float value)
    {
        var a = new float[length];
        Array.Fill(a, value);
        return a;
    }
}
