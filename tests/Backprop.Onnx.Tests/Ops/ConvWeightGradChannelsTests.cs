using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// ConvGrad's channel-vectorized weight gradient (<c>ConvOps.WeightGradChannels</c>: 16 output channels per vector,
/// row blocks for undilated kernels up to 6 wide, tap blocks otherwise) against the scalar loop of the definition in
/// double and the general im2col path (direct: false): LeNet's conv2, odd sizes, pads 0/1/2 and asymmetric, kernels 1,
/// 3, 5 and 7 wide, dilation 2, 16 and 32 channels, 1-3 threads, bit-determinism, non-finite X (declined) and dY.
/// </summary>
[TestClass]
public sealed class ConvWeightGradChannelsTests
{
    /// <summary>(N, C, M, H, W, kh, kw, pad top, pad left, pad bottom, pad right, dilation).</summary>
    public static IEnumerable<object[]> Cases =>
    [
        [5, 6, 16, 14, 14, 5, 5, 0, 0, 0, 0, 1],     // LeNet conv2 (5 of 64 images): 150 taps, 10-wide dY rows
        [3, 1, 16, 12, 12, 5, 5, 2, 2, 2, 2, 1],     // one input channel, pad 2: 5 kernel rows (2 + 2 + 1)
        [4, 3, 32, 9, 11, 3, 3, 1, 1, 1, 1, 1],      // two channel vectors, 3×3 pad 1, odd plane
        [2, 5, 16, 13, 10, 3, 2, 0, 1, 2, 0, 1],     // asymmetric pads, 2-wide kernel
        [3, 2, 16, 9, 12, 2, 7, 1, 3, 0, 3, 1],      // 7 wide: the tap-block kernel
        [2, 3, 16, 10, 12, 3, 3, 2, 1, 1, 2, 2],     // dilation 2: the tap-block kernel
        [1, 4, 16, 8, 9, 1, 1, 0, 0, 0, 0, 1],       // 1×1, one image
        [7, 7, 16, 11, 13, 6, 6, 2, 2, 1, 1, 1],     // 6 wide, 42 kernel rows, 7 images over 3 threads
    ];

    private static ConvOps.ConvShape Shape(int n, int c, int m, int h, int wd, int kh, int kw, int pt, int pl, int pb, int pr, int dil) =>
        ConvGradDirectTests.Shape(n, c, m, 1, h, wd, kh, kw, 1, pt, pl, pb, pr, dil);

    private static float[] Values(Random random, int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() - 0.5))];

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void MatchesScalarLoopAndGeneralPath(int n, int c, int m, int h, int wd, int kh, int kw, int pt, int pl, int pb, int pr, int dil)
    {
        var s = Shape(n, c, m, h, wd, kh, kw, pt, pl, pb, pr, dil);
        if (!ConvOps.CanUseWeightGradChannels(s)) Assert.Inconclusive("No AVX-512 here.");
        int seed = n * 1000 + c * 100 + m * 10 + kw;
        var random = new Random(seed);
        var x = Values(random, n * c * h * wd);
        var w = Values(random, m * c * kh * kw);
        var dy = Values(random, n * m * s.Output[0] * s.Output[1]);
        var (_, rw, _) = ConvGradDirectTests.Reference(s, [.. dy.Select(v => (double)v)], [.. x.Select(v => (double)v)], [.. w.Select(v => (double)v)]);
        for (int threads = 1; threads <= 3; threads++)
        {
            var dw = Enumerable.Repeat(9f, w.Length).ToArray();
            Assert.IsTrue(ConvOps.WeightGradChannels(dy, x, dw, s, threads), "finite X is taken");
            ConvGradDirectTests.AssertClose(rw, dw, $"dW threads {threads} seed {seed}");
            var general = new float[w.Length];
            ConvOps.ConvBackward(dy, x, w, null, general, null, s, threads, direct: false);
            ConvGradDirectTests.AssertClose([.. general.Select(v => (double)v)], dw, $"dW vs the general path, threads {threads} seed {seed}");
            var again = new float[w.Length];
            Assert.IsTrue(ConvOps.WeightGradChannels(dy, x, again, s, threads));
            CollectionAssert.AreEqual(dw, again, $"same inputs and thread count, same bits (threads {threads}, seed {seed})");
            var dispatched = new float[w.Length];
            ConvOps.ConvBackward(dy, x, w, null, dispatched, null, s, threads);
            ConvGradDirectTests.AssertClose(rw, dispatched, $"dW through ConvBackward, threads {threads} seed {seed}");
        }
    }

    [TestMethod]
    [DataRow(float.NaN)]
    [DataRow(float.PositiveInfinity)]
    [DataRow(float.NegativeInfinity)]
    public void NonFiniteValuesGiveWhatTheExactPathGives(float bad)
    {
        var s = Shape(3, 6, 16, 14, 14, 5, 5, 0, 0, 0, 0, 1);
        Assert.IsTrue(ConvOps.UseWeightGradChannels(s) || !ConvOps.CanUseWeightGradChannels(s), "LeNet's conv2 takes the channel kernel where it can");
        var random = new Random(5);
        var x = Values(random, 3 * 6 * 14 * 14);
        var w = Values(random, 16 * 6 * 25);
        var dy = Values(random, 3 * 16 * 100);
        foreach (var (array, index) in new[] { (x, 2 * 6 * 196 + 77), (dy, 1234) })
        {
            float old = array[index];
            array[index] = bad;
            for (int threads = 1; threads <= 3; threads++)
            {
                var exact = new float[w.Length];
                ConvOps.ConvBackward(dy, x, w, null, exact, null, s, threads, direct: false);
                var fast = new float[w.Length];
                ConvOps.ConvBackward(dy, x, w, null, fast, null, s, threads);
                for (int i = 0; i < exact.Length; i++)
                {
                    if (float.IsNaN(exact[i])) Assert.IsTrue(float.IsNaN(fast[i]), $"element {i}: NaN expected (threads {threads})");
                    else Assert.AreEqual(exact[i], fast[i], 1e-4f * (1 + Math.Abs(exact[i])), $"element {i} (threads {threads})");
                }
                if (ReferenceEquals(array, x) && ConvOps.CanUseWeightGradChannels(s))
                    Assert.IsFalse(ConvOps.WeightGradChannels(dy, x, new float[w.Length], s, threads), "a non-finite X is declined");
            }
            array[index] = old;
        }
    }

    [TestMethod]
    public void TakesOnlyWhatItCanCompute()
    {
        Assert.IsFalse(ConvOps.CanUseWeightGradChannels(ConvGradDirectTests.Shape(2, 4, 16, 1, 9, 9, 3, 3, 2, 1, 1, 1, 1, 1)), "stride 2");
        Assert.IsFalse(ConvOps.CanUseWeightGradChannels(ConvGradDirectTests.Shape(2, 4, 16, 2, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1)), "groups");
        Assert.IsFalse(ConvOps.CanUseWeightGradChannels(Shape(2, 1, 6, 28, 28, 5, 5, 2, 2, 2, 2, 1)), "6 channels fill no vector (LeNet's conv1)");
        Assert.IsFalse(ConvOps.UseWeightGradChannels(Shape(2, 16, 16, 32, 32, 3, 3, 1, 1, 1, 1, 1)), "32-wide rows fill the wide kernel (ResNet)");
    }
}
