using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// The 6-channel × 4-tap block of the direct weight gradient (<c>ConvOps.WeightGradDirect</c>, taken for 6, 18, …
/// output channels per group with AVX-512) against the scalar loop of the definition in double and the general path:
/// LeNet's conv1, tap counts that leave 1-3 single taps, groups, stride 2, 1-3 threads, bit-determinism, non-finite X.
/// </summary>
[TestClass]
public sealed class ConvWeightGradBlock6Tests
{
    /// <summary>(N, C, M, group, H, W, kh, kw, stride, pad top, pad left, pad bottom, pad right, dilation).</summary>
    public static IEnumerable<object[]> Cases =>
    [
        [4, 1, 6, 1, 28, 28, 5, 5, 1, 2, 2, 2, 2, 1],     // LeNet conv1 (4 of 64 images): 25 taps = 6 blocks + 1
        [3, 2, 18, 1, 9, 11, 3, 3, 1, 1, 1, 1, 1, 1],     // three 6-channel blocks, 18 taps = 4 blocks + 2
        [2, 4, 12, 2, 8, 9, 3, 3, 1, 0, 1, 1, 0, 1],      // groups of 6 channels, 18 taps
        [3, 3, 6, 1, 11, 10, 3, 3, 2, 1, 1, 1, 1, 1],     // stride 2: phase planes, 27 taps = 6 blocks + 3
        [1, 1, 6, 1, 7, 9, 2, 3, 1, 0, 2, 1, 0, 2],       // one image, dilation 2, 6 taps
    ];

    private static float[] Values(Random random, int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() - 0.5))];

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void MatchesScalarLoopAndGeneralPath(int n, int c, int m, int group, int h, int wd, int kh, int kw, int stride, int pt, int pl, int pb, int pr, int dil)
    {
        var s = ConvGradDirectTests.Shape(n, c, m, group, h, wd, kh, kw, stride, pt, pl, pb, pr, dil);
        Assert.IsTrue(ConvOps.UseDirectWeightGrad(s), "the direct path applies");
        int seed = n * 1000 + c * 100 + m * 10 + kw;
        var random = new Random(seed);
        var x = Values(random, n * c * h * wd);
        var w = Values(random, m * (c / group) * kh * kw);
        var dy = Values(random, n * m * s.Output[0] * s.Output[1]);
        var (_, rw, _) = ConvGradDirectTests.Reference(s, [.. dy.Select(v => (double)v)], [.. x.Select(v => (double)v)], [.. w.Select(v => (double)v)]);
        for (int threads = 1; threads <= 3; threads++)
        {
            var dw = Enumerable.Repeat(4f, w.Length).ToArray();
            Assert.IsTrue(ConvOps.WeightGradDirect(dy, x, dw, s, threads));
            ConvGradDirectTests.AssertClose(rw, dw, $"dW threads {threads} seed {seed}");
            var general = new float[w.Length];
            ConvOps.ConvBackward(dy, x, w, null, general, null, s, threads, direct: false);
            ConvGradDirectTests.AssertClose([.. general.Select(v => (double)v)], dw, $"dW vs the general path, threads {threads} seed {seed}");
            var again = new float[w.Length];
            Assert.IsTrue(ConvOps.WeightGradDirect(dy, x, again, s, threads));
            CollectionAssert.AreEqual(dw, again, $"same bits (threads {threads}, seed {seed})");
        }
    }

    [TestMethod]
    [DataRow(float.NaN)]
    [DataRow(float.PositiveInfinity)]
    public void NonFiniteXIsDeclinedAndDyPropagates(float bad)
    {
        var s = ConvGradDirectTests.Shape(2, 1, 6, 1, 28, 28, 5, 5, 1, 2, 2, 2, 2, 1);
        var random = new Random(3);
        var x = Values(random, 2 * 784);
        var w = Values(random, 150);
        var dy = Values(random, 2 * 6 * 784);
        x[900] = bad;
        Assert.IsFalse(ConvOps.WeightGradDirect(dy, x, new float[150], s, 2), "a non-finite X is declined");
        x[900] = 0.25f;
        dy[6 * 784 + 5 * 784 + 300] = bad;
        var exact = new float[150];
        ConvOps.ConvBackward(dy, x, w, null, exact, null, s, 2, direct: false);
        var fast = new float[150];
        ConvOps.ConvBackward(dy, x, w, null, fast, null, s, 2);
        for (int i = 0; i < 150; i++)
        {
            if (float.IsNaN(exact[i])) Assert.IsTrue(float.IsNaN(fast[i]), $"element {i}: NaN expected");
            else Assert.AreEqual(exact[i], fast[i], 1e-4f * (1 + Math.Abs(exact[i])), $"element {i}");
        }
    }
}
