using System.Numerics;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// The direct 2-D convolution: <see cref="ConvOps.DirectConv2D{T}"/> against a scalar loop written here (both vector
/// widths, float and double, odd sizes, dilation, bias, accumulation, NaN where only dropped lanes read), and Conv's
/// direct forward path against its im2col path (padding, dilation, thread counts, the benchmark workloads' shapes).
/// </summary>
[TestClass]
public sealed class ConvDirectTests
{
    /// <summary>channels, outChannels, kh, kw, dh, dw, outH, outW, extra rows/columns of padded plane beyond what is read.</summary>
    private static readonly int[][] KernelCases =
    [
        [1, 1, 1, 1, 1, 1, 1, 1, 0],
        [1, 6, 5, 5, 1, 1, 28, 28, 0],
        [6, 16, 5, 5, 1, 1, 10, 10, 0],
        [3, 16, 3, 3, 1, 1, 32, 32, 0],
        [3, 5, 3, 3, 1, 1, 7, 17, 2],
        [2, 9, 2, 3, 2, 1, 5, 33, 1],
        [4, 7, 3, 2, 1, 3, 3, 16, 0],
        [5, 3, 1, 1, 1, 1, 6, 15, 3],
        [2, 4, 3, 3, 2, 2, 9, 64, 0],
    ];

    public static IEnumerable<object[]> KernelRows()
    {
        for (int c = 0; c < KernelCases.Length; c++)
            foreach (bool wide in new[] { true, false })
                yield return [c, wide];
    }

    [TestMethod]
    [DynamicData(nameof(KernelRows))]
    public void DirectConv2DMatchesScalarLoopFloat(int index, bool vector512) => CheckKernel<float>(index, vector512 ? DirectConvPath.Vector512 : DirectConvPath.Vector256, 1e-5);

    [TestMethod]
    [DynamicData(nameof(KernelRows))]
    public void DirectConv2DMatchesScalarLoopDouble(int index, bool vector512) => CheckKernel<double>(index, vector512 ? DirectConvPath.Vector512 : DirectConvPath.Vector256, 1e-13);

    private static void CheckKernel<T>(int index, DirectConvPath path, double tolerance) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (path == DirectConvPath.Vector512 && !System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) return;
        if (!System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated) return;
        var p = KernelCases[index];
        int channels = p[0], outChannels = p[1], kh = p[2], kw = p[3], dh = p[4], dw = p[5], outH = p[6], outW = p[7], extra = p[8];
        int needH = outH + (kh - 1) * dh, needW = outW + (kw - 1) * dw, hp = needH + extra, wp = needW + extra;
        int seed = 100 + index;
        var random = new Random(seed);
        // Every element no output reads (columns or rows past what the window needs, the slack) is NaN: a leak shows.
        var x = new T[channels * hp * wp + ConvOps.DirectSlack];
        Array.Fill(x, T.NaN);
        for (int ci = 0; ci < channels; ci++)
            for (int r = 0; r < needH; r++)
                for (int c = 0; c < needW; c++)
                    x[(ci * hp + r) * wp + c] = T.CreateChecked(random.NextDouble() - 0.5);
        var w = Enumerable.Range(0, outChannels * channels * kh * kw).Select(_ => T.CreateChecked(random.NextDouble() - 0.5)).ToArray();
        var bias = Enumerable.Range(0, outChannels).Select(_ => T.CreateChecked(random.NextDouble() - 0.5)).ToArray();
        var initial = Enumerable.Range(0, outChannels * outH * outW).Select(_ => T.CreateChecked(random.NextDouble() - 0.5)).ToArray();

        foreach (bool withBias in new[] { false, true })
            foreach (bool accumulate in new[] { false, true })
            {
                // One guard element after y: the kernel must not write past its planes.
                var y = new T[initial.Length + 1];
                initial.CopyTo(y, 0);
                y[^1] = T.CreateChecked(7);
                ConvOps.DirectConv2D<T>(x, channels, hp, wp, w, outChannels, kh, kw, dh, dw, withBias ? bias : [], y.AsSpan(0, initial.Length), outH, outW, accumulate, path);
                Assert.AreEqual(T.CreateChecked(7), y[^1], "guard element overwritten");
                for (int co = 0; co < outChannels; co++)
                    for (int r = 0; r < outH; r++)
                        for (int c = 0; c < outW; c++)
                        {
                            double sum = 0, scale = 1;
                            for (int ci = 0; ci < channels; ci++)
                                for (int i = 0; i < kh; i++)
                                    for (int j = 0; j < kw; j++)
                                    {
                                        double term = double.CreateChecked(w[((co * channels + ci) * kh + i) * kw + j]) * double.CreateChecked(x[(ci * hp + r + i * dh) * wp + c + j * dw]);
                                        sum += term;
                                        scale += Math.Abs(term);
                                    }
                            int o = (co * outH + r) * outW + c;
                            if (withBias) sum += double.CreateChecked(bias[co]);
                            if (accumulate) sum += double.CreateChecked(initial[o]);
                            Assert.AreEqual(sum, double.CreateChecked(y[o]), tolerance * scale,
                                $"case {index} {path} bias {withBias} accumulate {accumulate} at ({co}, {r}, {c}) (seed {seed})");
                        }
            }
    }

    [TestMethod]
    public void DirectConv2DRejectsAnInputWithoutSlack()
    {
        var x = new float[2 * 5 * 5];
        var w = new float[3 * 2 * 3 * 3];
        var y = new float[3 * 3 * 3];
        Assert.ThrowsExactly<ArgumentException>(() => ConvOps.DirectConv2D<float>(x, 2, 5, 5, w, 3, 3, 3, 1, 1, [], y, 3, 3, false));
        var padded = new float[2 * 5 * 5 + ConvOps.DirectSlack];
        Assert.ThrowsExactly<ArgumentException>(() => ConvOps.DirectConv2D<float>(padded, 2, 5, 5, w, 3, 3, 3, 1, 1, [], y, 4, 3, false));
        ConvOps.DirectConv2D<float>(padded, 2, 5, 5, w, 3, 3, 3, 1, 1, [], y, 3, 3, false);
    }

    /// <summary>N, C, M, kh, kw, H, W, pad top, pad left, pad bottom, pad right, dilation[, stride rows, stride columns].</summary>
    private static readonly int[][] ForwardCases =
    [
        [4, 1, 6, 5, 5, 28, 28, 2, 2, 2, 2, 1],      // W2 conv1
        [3, 6, 16, 5, 5, 14, 14, 0, 0, 0, 0, 1],     // W2 conv2
        [2, 3, 16, 3, 3, 32, 32, 1, 1, 1, 1, 1],     // W3 stem
        [2, 16, 16, 3, 3, 32, 32, 1, 1, 1, 1, 1],    // W3 block1
        [2, 32, 32, 3, 3, 16, 16, 1, 1, 1, 1, 1],    // W3 block2 conv2
        [5, 3, 5, 3, 2, 9, 13, 2, 0, 1, 3, 1],       // asymmetric padding, odd sizes
        [3, 2, 7, 3, 3, 11, 19, 1, 2, 0, 1, 2],      // dilation 2
        [2, 4, 3, 1, 1, 6, 21, 0, 0, 0, 0, 1],       // pointwise
        [2, 2, 3, 3, 3, 10, 12, -1, 0, 0, -1, 1],    // negative pads crop the input
        [2, 16, 32, 3, 3, 32, 32, 1, 1, 1, 1, 1, 2, 2],  // W3 block2 conv1, stride 2
        [2, 16, 32, 1, 1, 32, 32, 0, 0, 0, 0, 1, 2, 2],  // W3 shortcut, 1×1 stride 2
        [3, 3, 5, 3, 4, 17, 40, 2, 1, 0, 2, 1, 3, 2],    // strides 3 × 2, odd sizes, asymmetric padding
        [2, 2, 3, 3, 3, 15, 50, 1, 2, 1, 2, 2, 2, 3],    // dilation 2 with strides 2 × 3
        [2, 2, 4, 2, 2, 9, 33, 1, 1, 1, 1, 1, 1, 2],     // stride only along the columns
        [1, 3, 9, 3, 3, 21, 37, 1, 1, 1, 1, 1],          // one image: threads split its rows
        [1, 4, 6, 3, 3, 30, 30, 1, 1, 1, 1, 1, 2, 2],    // one strided image
        [2, 2, 3, 3, 3, 3, 3, 6, 7, 5, 6, 1],            // padding wider than the image
        [2, 2, 3, 3, 3, 3, 5, 6, 7, 5, 6, 1, 2, 2],      // the same, strided
    ];

    public static IEnumerable<object[]> ForwardRows()
    {
        for (int c = 0; c < ForwardCases.Length; c++)
            foreach (int threads in new[] { 1, 2, 3 })
                yield return [c, threads];
    }

    [TestMethod]
    [DynamicData(nameof(ForwardRows))]
    public void DirectForwardMatchesIm2ColFloat(int index, int threads) => CheckForward<float>(index, threads, 1e-5);

    [TestMethod]
    [DynamicData(nameof(ForwardRows))]
    public void DirectForwardMatchesIm2ColDouble(int index, int threads) => CheckForward<double>(index, threads, 1e-13);

    private static void CheckForward<T>(int index, int threads, double tolerance) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var p = ForwardCases[index];
        int n = p[0], c = p[1], m = p[2], kh = p[3], kw = p[4], h = p[5], wd = p[6], dil = p[11];
        int sh = p.Length > 12 ? p[12] : 1, sw = p.Length > 12 ? p[13] : 1;
        int outH = (h + p[7] + p[9] - (kh - 1) * dil - 1) / sh + 1, outW = (wd + p[8] + p[10] - (kw - 1) * dil - 1) / sw + 1;
        var shape = new ConvOps.ConvShape(n, c, m, 1, [h, wd], [kh, kw], [outH, outW], [sh, sw], [dil, dil], [p[7], p[8]]);
        if (!ConvOps.DirectConvAccelerated) return;
        Assert.IsTrue(ConvOps.UseDirect(shape), $"case {index} should take the direct path");
        int seed = 200 + index;
        var random = new Random(seed);
        T Next() => T.CreateChecked(random.NextDouble() - 0.5);
        var x = Enumerable.Range(0, n * c * h * wd).Select(_ => Next()).ToArray();
        var w = Enumerable.Range(0, m * c * kh * kw).Select(_ => Next()).ToArray();
        var b = Enumerable.Range(0, m).Select(_ => Next()).ToArray();
        foreach (var bias in new[] { null, b })
        {
            var expected = new T[n * m * outH * outW];
            ConvOps.ConvForward(x, w, bias, expected, shape, 1, allowDirect: false);
            var actual = new T[expected.Length];
            Array.Fill(actual, T.NaN);
            ConvOps.ConvForward(x, w, bias, actual, shape, threads);
            double scale = c * kh * kw * 0.25 + 1;
            for (int e = 0; e < expected.Length; e++)
                Assert.AreEqual(double.CreateChecked(expected[e]), double.CreateChecked(actual[e]), tolerance * scale,
                    $"case {index} threads {threads} bias {bias is not null} at {e} (seed {seed})");
            var single = new T[expected.Length];
            ConvOps.ConvForward(x, w, bias, single, shape, 1);
            CollectionAssert.AreEqual(single, actual, $"case {index}: {threads} threads and 1 thread give the same bits");
        }
    }

    [TestMethod]
    public void SteadyStateDirectForwardAllocatesNothing()
    {
        // W3 block2 conv1's shape (strided) and block1's (stride 1), one image; one thread runs on this thread alone.
        foreach (int stride in new[] { 1, 2 })
        {
            int outSize = 32 / stride;
            var shape = new ConvOps.ConvShape(2, 16, 32, 1, [32, 32], [3, 3], [outSize, outSize], [stride, stride], [1, 1], [1, 1]);
            var x = new float[2 * 16 * 32 * 32];
            var w = new float[32 * 16 * 9];
            var b = new float[32];
            var y = new float[2 * 32 * outSize * outSize];
            ConvOps.ConvForward(x, w, b, y, shape, 1);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5; i++) ConvOps.ConvForward(x, w, b, y, shape, 1);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.AreEqual(0L, allocated, $"stride {stride}: {allocated} bytes allocated by 5 calls");
        }
    }

    [TestMethod]
    public void GroupedNarrowAndWideConvolutionsKeepTheIm2ColPath()
    {
        Assert.IsFalse(ConvOps.UseDirect(new ConvOps.ConvShape(2, 16, 32, 2, [32, 32], [3, 3], [32, 32], [1, 1], [1, 1], [1, 1])), "grouped");
        Assert.IsFalse(ConvOps.UseDirect(new ConvOps.ConvShape(2, 16, 32, 1, [4, 4], [3, 3], [4, 4], [1, 1], [1, 1], [1, 1])), "narrow rows");
        Assert.IsFalse(ConvOps.UseDirect(new ConvOps.ConvShape(2, 256, 256, 1, [16, 16], [3, 3], [16, 16], [1, 1], [1, 1], [1, 1])), "many weights");
        Assert.IsFalse(ConvOps.UseDirect(new ConvOps.ConvShape(2, 4, 4, 1, [9], [3], [9], [1], [1], [1])), "1-D");
    }
}
