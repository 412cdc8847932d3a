using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// Conv's weight gradient split over images per thread: every thread count agrees with a direct loop, and one thread
/// count always gives the same bits.
/// </summary>
[TestClass]
public sealed class ConvWeightGradThreadsTests
{
    [TestMethod]
    [DataRow(1, 1, false)]
    [DataRow(2, 1, false)]
    [DataRow(3, 1, false)]
    [DataRow(3, 2, false)]
    [DataRow(4, 4, false)]
    // An infinite corner pixel: only the taps that read it become infinite (the batched wide-column path must not leak 0·∞).
    [DataRow(1, 1, true)]
    [DataRow(2, 2, true)]
    public void WeightGradientMatchesDirectLoop(int threads, int group, bool infiniteCorner)
    {
        // X (N=5, C=4, 6×7), W (M=4, C/group, 3×3), stride 1, pad 1 → Y (5, 4, 6, 7).
        int n = 5, c = 4, m = 4, h = 6, wd = 7, k = 3;
        var random = new Random(threads * 10 + group);
        var x = Enumerable.Range(0, n * c * h * wd).Select(_ => random.NextDouble() - 0.5).ToArray();
        var w = Enumerable.Range(0, m * (c / group) * k * k).Select(_ => random.NextDouble() - 0.5).ToArray();
        if (infiniteCorner) x[0] = double.PositiveInfinity;
        var dy = Enumerable.Range(0, n * m * h * wd).Select(_ => random.NextDouble() - 0.5).ToArray();
        var shape = new ConvOps.ConvShape(n, c, m, group, [h, wd], [k, k], [h, wd], [1, 1], [1, 1], [1, 1]);
        var dw = new double[w.Length];
        ConvOps.ConvBackward(dy, x, w, null, dw, null, shape, threads);

        int cg = c / group, mg = m / group;
        for (int o = 0; o < m; o++)
            for (int ci = 0; ci < cg; ci++)
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++)
                    {
                        double sum = 0;
                        int channel = o / mg * cg + ci;
                        for (int img = 0; img < n; img++)
                            for (int oh = 0; oh < h; oh++)
                                for (int ow = 0; ow < wd; ow++)
                                {
                                    int ih = oh - 1 + kh, iw = ow - 1 + kw;
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                                    sum += dy[((img * m + o) * h + oh) * wd + ow] * x[((img * c + channel) * h + ih) * wd + iw];
                                }
                        double actual = dw[((o * cg + ci) * k + kh) * k + kw];
                        if (double.IsFinite(sum)) Assert.AreEqual(sum, actual, 1e-12, $"threads {threads} group {group} (seed {threads * 10 + group})");
                        else Assert.AreEqual(sum.ToString(), actual.ToString(), $"tap ({o}, {ci}, {kh}, {kw})");
                    }

        var again = new double[w.Length];
        ConvOps.ConvBackward(dy, x, w, null, again, null, shape, threads);
        CollectionAssert.AreEqual(dw, again, "same inputs and thread count, same bits");
    }
}
