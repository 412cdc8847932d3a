using System.Numerics;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// The direct forward's register blocks added for LeNet: blocks of 6 output channels and the channel-vectorized kernel
/// for narrow rows, each against the im2col path (ConvForward with allowDirect: false), float and double, odd sizes,
/// pads, strides 1 and 2, one to three threads, with and without bias and the fused Relu, NaN and ±∞ inputs. The two
/// direct kernels compute every output as the same chain of fused multiply-adds, so they also agree bit for bit.
/// </summary>
[TestClass]
public sealed class ConvDirectBlockTests
{
    /// <summary>N, C, M, kh, kw, H, W, pad, stride, expected kernel ("6": blocks of 6 channels, "ch": channel-vectorized, "4": blocks of 4).</summary>
    private static readonly object[][] Cases =
    [
        [3, 1, 6, 5, 5, 28, 28, 2, 1, "6"],     // W2 conv1
        [2, 1, 5, 3, 3, 13, 21, 1, 1, "6"],     // 5 channels, odd sizes
        [2, 2, 17, 3, 3, 19, 63, 1, 2, "6"],    // 17 channels (three blocks of 6, the last one short), strided to 32 columns
        [3, 6, 16, 5, 5, 14, 14, 0, 1, "ch"],   // W2 conv2
        [2, 3, 16, 3, 3, 11, 11, 1, 1, "ch"],   // 11 columns: one block of 11 positions
        [2, 3, 30, 3, 3, 9, 23, 0, 1, "ch"],    // 21 columns in two blocks; 30 channels: a partial channel vector
        [2, 4, 32, 3, 3, 20, 20, 1, 2, "ch"],   // strided to 10 columns, two channel vectors
        [2, 3, 16, 3, 3, 32, 32, 1, 1, "4"],    // W3 stem keeps blocks of 4 along the columns
    ];

    public static IEnumerable<object[]> Rows()
    {
        for (int c = 0; c < Cases.Length; c++)
            foreach (int threads in new[] { 1, 2, 3 })
                yield return [c, threads];
    }

    [TestMethod]
    [DynamicData(nameof(Rows))]
    public void DirectBlocksMatchIm2ColFloat(int index, int threads) => Check<float>(index, threads, 1e-5);

    [TestMethod]
    [DynamicData(nameof(Rows))]
    public void DirectBlocksMatchIm2ColDouble(int index, int threads) => Check<double>(index, threads, 1e-13);

    private static ConvOps.ConvShape Shape(object[] p, out int outSize)
    {
        int n = (int)p[0], c = (int)p[1], m = (int)p[2], kh = (int)p[3], kw = (int)p[4], h = (int)p[5], wd = (int)p[6], pad = (int)p[7], s = (int)p[8];
        int outH = (h + 2 * pad - kh) / s + 1, outW = (wd + 2 * pad - kw) / s + 1;
        outSize = n * m * outH * outW;
        return new ConvOps.ConvShape(n, c, m, 1, [h, wd], [kh, kw], [outH, outW], [s, s], [1, 1], [pad, pad]);
    }

    private static void Check<T>(int index, int threads, double tolerance) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) return; // the block choice below assumes 512-bit vectors
        var p = Cases[index];
        var shape = Shape(p, out int outSize);
        Assert.IsTrue(ConvOps.UseDirect(shape), $"case {index} takes the direct path");
        string kernel = ConvOps.UseDirectChannels<T>(shape) ? "ch" : ConvOps.DirectForwardBlockChannels(shape.M).ToString(System.Globalization.CultureInfo.InvariantCulture);
        // A partial channel vector of doubles (8 lanes) may change the choice for float-sized layers; the W2 shapes must not.
        if (typeof(T) == typeof(float) || index is 0 or 3) Assert.AreEqual((string)p[9], kernel, $"case {index}: kernel");
        int seed = 700 + index;
        var random = new Random(seed);
        T Next() => T.CreateChecked(random.NextDouble() - 0.5);
        var x = Enumerable.Range(0, shape.N * shape.C * shape.InputSize).Select(_ => Next()).ToArray();
        x[7] = T.NaN;
        x[x.Length / 2] = T.PositiveInfinity;
        x[x.Length - 3] = T.NegativeInfinity;
        var w = Enumerable.Range(0, shape.M * shape.C * shape.KernelSize).Select(_ => Next()).ToArray();
        var b = Enumerable.Range(0, shape.M).Select(_ => Next()).ToArray();
        double scale = shape.C * shape.KernelSize * 0.25 + 1;
        foreach (var bias in new[] { null, b })
            foreach (bool relu in new[] { false, true })
            {
                var expected = new T[outSize];
                ConvOps.ConvForward(x, w, bias, expected, shape, 1, allowDirect: false);
                if (relu) for (int e = 0; e < expected.Length; e++) expected[e] = T.Max(expected[e], T.Zero);
                // One guard element past the output: nothing may be written beyond it.
                var actual = new T[outSize + 1];
                Array.Fill(actual, T.CreateChecked(12345));
                ConvOps.ConvForward(x, w, bias, actual, shape, threads, relu: relu);
                Assert.AreEqual(T.CreateChecked(12345), actual[^1], $"case {index}: guard element overwritten");
                int nan = 0;
                for (int e = 0; e < expected.Length; e++)
                {
                    double want = double.CreateChecked(expected[e]), got = double.CreateChecked(actual[e]);
                    string where = $"case {index} threads {threads} bias {bias is not null} relu {relu} at {e} (seed {seed})";
                    if (double.IsNaN(want)) { Assert.IsTrue(double.IsNaN(got), $"{where}: expected NaN, got {got}"); nan++; }
                    else if (double.IsInfinity(want)) Assert.AreEqual(want, got, where);
                    else Assert.AreEqual(want, got, tolerance * scale, where);
                    if (relu) Assert.IsFalse(got < 0 || (got == 0 && double.IsNegative(got)), $"{where}: Relu output {got}");
                }
                Assert.IsTrue(nan > 0, $"case {index}: the NaN input reaches some outputs");
                // Thread counts split images into bands differently; every output is computed the same way.
                var single = new T[outSize + 1];
                ConvOps.ConvForward(x, w, bias, single, shape, 1, relu: relu);
                for (int e = 0; e < outSize; e++)
                    if (!(T.IsNaN(single[e]) && T.IsNaN(actual[e]))) Assert.AreEqual(single[e], actual[e], $"case {index}: {threads} threads and 1 thread differ at {e}");
            }
    }

    [TestMethod]
    public void ChannelAndColumnKernels_GiveTheSameBits()
    {
        // W2 conv2 runs channel-vectorized; the same layer with 20 columns runs along the columns. Compare the overlapping
        // outputs of a 10-column slice: both kernels sum the same taps in the same order with fused multiply-adds.
        var narrow = new ConvOps.ConvShape(2, 6, 16, 1, [14, 14], [5, 5], [10, 10], [1, 1], [1, 1], [0, 0]);
        var wide = new ConvOps.ConvShape(2, 6, 16, 1, [14, 36], [5, 5], [10, 32], [1, 1], [1, 1], [0, 0]);
        Assert.IsTrue(ConvOps.UseDirectChannels<float>(narrow));
        Assert.IsFalse(ConvOps.UseDirectChannels<float>(wide));
        var random = new Random(9);
        var xWide = Enumerable.Range(0, 2 * 6 * 14 * 36).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var xNarrow = new float[2 * 6 * 14 * 14];
        for (int row = 0; row < 2 * 6 * 14; row++) Array.Copy(xWide, row * 36, xNarrow, row * 14, 14);
        var w = Enumerable.Range(0, 16 * 6 * 25).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var b = Enumerable.Range(0, 16).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var yNarrow = new float[2 * 16 * 100];
        var yWide = new float[2 * 16 * 320];
        ConvOps.ConvForward(xNarrow, w, b, yNarrow, narrow, 1, relu: true);
        ConvOps.ConvForward(xWide, w, b, yWide, wide, 1, relu: true);
        for (int plane = 0; plane < 2 * 16; plane++)
            for (int r = 0; r < 10; r++)
                for (int c = 0; c < 10; c++)
                    Assert.AreEqual(yWide[plane * 320 + r * 32 + c], yNarrow[plane * 100 + r * 10 + c], $"plane {plane} ({r}, {c})");
    }

    [TestMethod]
    public void SteadyStateNewBlocksAllocateNothing()
    {
        foreach (var p in new[] { Cases[0], Cases[3] })
        {
            var shape = Shape(p, out int outSize);
            var x = new float[shape.N * shape.C * shape.InputSize];
            var w = new float[shape.M * shape.C * shape.KernelSize];
            var b = new float[shape.M];
            var y = new float[outSize];
            ConvOps.ConvForward(x, w, b, y, shape, 1, relu: true);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5; i++) ConvOps.ConvForward(x, w, b, y, shape, 1, relu: true);
            Assert.AreEqual(0L, GC.GetAllocatedBytesForCurrentThread() - before, $"M = {shape.M}");
        }
    }
}
