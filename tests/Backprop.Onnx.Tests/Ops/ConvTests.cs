using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>Conv and ConvTranspose against direct loops over every output (Conv) or input (ConvTranspose) element.</summary>
[TestClass]
public sealed class ConvTests
{
    /// <summary>Row-major coordinates of <paramref name="index"/> in <paramref name="shape"/>.</summary>
    internal static int[] Coords(int index, int[] shape)
    {
        var c = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { c[d] = index % shape[d]; index /= shape[d]; }
        return c;
    }

    internal static int Flat(int[] coord, int[] shape)
    {
        int f = 0;
        for (int d = 0; d < shape.Length; d++) f = f * shape[d] + coord[d];
        return f;
    }

    /// <summary>Conv by definition: y[n, m, o] = b[m] + Σ_c Σ_k x[n, g·C/G + c, o·s − p + k·d] · w[m, c, k].</summary>
    private static double[] ReferenceConv(double[] x, int[] xs, double[] w, int[] ws, double[]? b, int group, int[] strides, int[] dilations, int[] padBegin, int[] outSpatial)
    {
        int n = xs[0], c = xs[1], m = ws[0], cg = ws[1], mg = m / group, rank = xs.Length - 2;
        int[] inSp = xs[2..], kSp = ws[2..];
        int outSize = LinalgTestData.Count(outSpatial), kSize = LinalgTestData.Count(kSp), inSize = LinalgTestData.Count(inSp);
        var y = new double[n * m * outSize];
        for (int img = 0; img < n; img++)
            for (int oc = 0; oc < m; oc++)
                for (int o = 0; o < outSize; o++)
                {
                    var oco = Coords(o, outSpatial);
                    double s = b?[oc] ?? 0;
                    int g = oc / mg;
                    for (int ic = 0; ic < cg; ic++)
                        for (int k = 0; k < kSize; k++)
                        {
                            var kco = Coords(k, kSp);
                            var ico = new int[rank];
                            bool inside = true;
                            for (int d = 0; d < rank; d++)
                            {
                                ico[d] = oco[d] * strides[d] - padBegin[d] + kco[d] * dilations[d];
                                inside &= ico[d] >= 0 && ico[d] < inSp[d];
                            }
                            if (!inside) continue;
                            s += x[(img * c + g * cg + ic) * inSize + Flat(ico, inSp)] * w[(oc * cg + ic) * kSize + k];
                        }
                    y[(img * m + oc) * outSize + o] = s;
                }
        return y;
    }

    /// <summary>ConvTranspose by definition: every x[n, c, i] · w[c, m, k] is added at y[n, g·M/G + m, i·s − p + k·d].</summary>
    private static double[] ReferenceConvTranspose(double[] x, int[] xs, double[] w, int[] ws, double[]? b, int group, int[] strides, int[] dilations, int[] padBegin, int[] outSpatial)
    {
        int n = xs[0], c = xs[1], mg = ws[1], m = mg * group, cg = c / group, rank = xs.Length - 2;
        int[] inSp = xs[2..], kSp = ws[2..];
        int outSize = LinalgTestData.Count(outSpatial), kSize = LinalgTestData.Count(kSp), inSize = LinalgTestData.Count(inSp);
        var y = new double[n * m * outSize];
        for (int img = 0; img < n; img++)
            for (int oc = 0; oc < m; oc++)
                for (int o = 0; o < outSize; o++) y[(img * m + oc) * outSize + o] = b?[oc] ?? 0;
        for (int img = 0; img < n; img++)
            for (int ic = 0; ic < c; ic++)
                for (int i = 0; i < inSize; i++)
                {
                    var ico = Coords(i, inSp);
                    int g = ic / cg;
                    for (int j = 0; j < mg; j++)
                        for (int k = 0; k < kSize; k++)
                        {
                            var kco = Coords(k, kSp);
                            var oco = new int[rank];
                            bool inside = true;
                            for (int d = 0; d < rank; d++)
                            {
                                oco[d] = ico[d] * strides[d] - padBegin[d] + kco[d] * dilations[d];
                                inside &= oco[d] >= 0 && oco[d] < outSpatial[d];
                            }
                            if (!inside) continue;
                            y[(img * m + g * mg + j) * outSize + Flat(oco, outSpatial)] += x[(img * c + ic) * inSize + i] * w[(ic * mg + j) * kSize + k];
                        }
                }
        return y;
    }

    private static long[] L(int[] v) => [.. v.Select(d => (long)d)];

    public static IEnumerable<object[]> ConvCases =>
    [
        // x shape, w shape, group, strides, dilations, pads (begin…, end…), expected output spatial shape
        [new[] { 2, 3, 10 }, new[] { 4, 3, 3 }, 1, new[] { 1 }, new[] { 1 }, new[] { 0, 0 }, new[] { 8 }],
        [new[] { 1, 4, 1 }, new[] { 4, 4, 5 }, 1, new[] { 1 }, new[] { 1 }, new[] { 2, 2 }, new[] { 1 }],
        [new[] { 2, 4, 17 }, new[] { 6, 2, 3 }, 2, new[] { 2 }, new[] { 2 }, new[] { 1, 2 }, new[] { 8 }],
        [new[] { 2, 3, 7, 5 }, new[] { 4, 3, 3, 2 }, 1, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, new[] { 5, 4 }],
        [new[] { 1, 1, 7, 5 }, new[] { 1, 1, 3, 3 }, 1, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 1, 0, 1, 0 }, new[] { 4, 2 }],
        [new[] { 2, 4, 6, 6 }, new[] { 8, 1, 3, 3 }, 4, new[] { 1, 2 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }, new[] { 6, 3 }],
        [new[] { 2, 3, 8, 8 }, new[] { 2, 3, 3, 3 }, 1, new[] { 2, 2 }, new[] { 2, 2 }, new[] { 1, 1, 1, 1 }, new[] { 3, 3 }],
        [new[] { 3, 16, 9, 9 }, new[] { 17, 16, 1, 1 }, 1, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, new[] { 9, 9 }],
        [new[] { 1, 8, 4, 4 }, new[] { 16, 8, 1, 1 }, 1, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, new[] { 2, 2 }],
        [new[] { 2, 3, 3, 4, 5 }, new[] { 4, 3, 2, 3, 4 }, 1, new[] { 1, 1, 1 }, new[] { 1, 1, 1 }, new[] { 0, 0, 0, 0, 0, 0 }, new[] { 2, 2, 2 }],
        [new[] { 1, 4, 5, 5, 4 }, new[] { 6, 2, 2, 2, 2 }, 2, new[] { 2, 1, 2 }, new[] { 1, 2, 1 }, new[] { 1, 0, 1, 1, 1, 0 }, new[] { 3, 4, 2 }],
        // Several images of small planes: convolved in batches of images (one im2col and GEMM per batch), odd counts.
        [new[] { 9, 1, 28, 28 }, new[] { 6, 1, 5, 5 }, 1, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, new[] { 24, 24 }],
        [new[] { 7, 6, 12, 12 }, new[] { 16, 6, 5, 5 }, 1, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, new[] { 8, 8 }],
        [new[] { 5, 4, 9, 9 }, new[] { 6, 2, 3, 3 }, 2, new[] { 2, 1 }, new[] { 1, 1 }, new[] { 1, 0, 1, 2 }, new[] { 5, 9 }],
        [new[] { 11, 3, 6, 7 }, new[] { 5, 3, 3, 3 }, 1, new[] { 1, 1 }, new[] { 1, 2 }, new[] { 1, 1, 1, 1 }, new[] { 6, 5 }],
        // Large enough to process the im2col columns in chunks.
        [new[] { 1, 16, 130, 130 }, new[] { 2, 16, 3, 3 }, 1, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }, new[] { 130, 130 }],
    ];

    [TestMethod]
    [DynamicData(nameof(ConvCases))]
    public void Conv_MatchesDirectLoops(int[] xs, int[] ws, int group, int[] strides, int[] dilations, int[] pads, int[] outSpatial)
    {
        int rank = xs.Length - 2;
        foreach (var type in LinalgTestData.FloatTypes)
            foreach (bool withBias in new[] { true, false })
                foreach (int threads in new[] { 1, 3 })
                {
                    var x = LinalgTestData.Tensor(type, LinalgTestData.Random(1, LinalgTestData.Count(xs)), xs);
                    var w = LinalgTestData.Tensor(type, LinalgTestData.Random(2, LinalgTestData.Count(ws)), ws);
                    var b = withBias ? LinalgTestData.Tensor(type, LinalgTestData.Random(3, ws[0]), ws[0]) : null;
                    var expected = ReferenceConv(LinalgTestData.Values(x), xs, LinalgTestData.Values(w), ws, b is null ? null : LinalgTestData.Values(b),
                        group, strides, dilations, pads[..rank], outSpatial);
                    var y = LinalgTestData.Run("Conv", b is null ? [x, w] : [x, w, b], threads, 1, 11,
                        OnnxAttribute.FromInt("group", group), OnnxAttribute.FromInts("strides", L(strides)),
                        OnnxAttribute.FromInts("dilations", L(dilations)), OnnxAttribute.FromInts("pads", L(pads)))[0];
                    LinalgTestData.AssertClose(expected, [xs[0], ws[0], .. outSpatial], y, type, $"{type} bias={withBias} threads={threads}");
                }
    }

    [TestMethod]
    [DataRow("SAME_UPPER", 7, 3, 2, 4, 1)]
    [DataRow("SAME_LOWER", 7, 3, 2, 4, 1)]
    [DataRow("SAME_UPPER", 6, 4, 1, 6, 1)]
    [DataRow("SAME_LOWER", 6, 4, 1, 6, 2)]
    [DataRow("VALID", 7, 3, 2, 3, 0)]
    public void Conv_AutoPad(string autoPad, int size, int kernel, int stride, int outSize, int padBegin)
    {
        foreach (var type in LinalgTestData.FloatTypes)
        {
            int[] xs = [1, 2, size, size], ws = [3, 2, kernel, kernel];
            var x = LinalgTestData.Tensor(type, LinalgTestData.Random(4, LinalgTestData.Count(xs)), xs);
            var w = LinalgTestData.Tensor(type, LinalgTestData.Random(5, LinalgTestData.Count(ws)), ws);
            var expected = ReferenceConv(LinalgTestData.Values(x), xs, LinalgTestData.Values(w), ws, null, 1, [stride, stride], [1, 1], [padBegin, padBegin], [outSize, outSize]);
            var y = SingleNode.Run("Conv", [x, w], 1, 11, OnnxAttribute.FromString("auto_pad", autoPad), OnnxAttribute.FromInts("strides", stride, stride))[0];
            LinalgTestData.AssertClose(expected, [1, 3, outSize, outSize], y, type, $"{autoPad} {type}");
        }
    }

    [TestMethod]
    public void Conv_ByHand()
    {
        // 1×1×3×3 input 1..9, 2×2 kernel of ones: each output is the sum of a 2×2 block.
        var x = OnnxTensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, 1, 1, 3, 3);
        var w = OnnxTensor.FromArray(new float[] { 1, 1, 1, 1 }, 1, 1, 2, 2);
        CollectionAssert.AreEqual(new float[] { 12, 16, 24, 28 }, SingleNode.Run("Conv", [x, w])[0].ToArray<float>());
    }

    [TestMethod]
    public void Conv_ChannelMismatchIsInvalid()
    {
        var x = OnnxTensor.FromArray(new float[18], 1, 2, 3, 3);
        var w = OnnxTensor.FromArray(new float[12], 1, 3, 2, 2);
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("Conv", [x, w]));
    }

    [TestMethod]
    public void Conv_UnknownAutoPadIsUnsupported()
    {
        var x = OnnxTensor.FromArray(new float[9], 1, 1, 3, 3);
        Assert.ThrowsExactly<UnsupportedOperatorException>(() => SingleNode.Run("Conv", [x, x], 1, 11, OnnxAttribute.FromString("auto_pad", "SAME")));
    }

    public static IEnumerable<object[]> TransposeCases =>
    [
        // x shape, w shape, group, strides, dilations, pads, output_padding, expected output spatial shape
        [new[] { 1, 1, 3 }, new[] { 1, 2, 3 }, 1, new[] { 1 }, new[] { 1 }, new[] { 0, 0 }, new[] { 0 }, new[] { 5 }],
        [new[] { 2, 3, 4, 5 }, new[] { 3, 3, 3, 3 }, 1, new[] { 3, 3 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }, new[] { 2, 2 }, new[] { 12, 15 }],
        [new[] { 1, 3, 7, 6 }, new[] { 3, 4, 3, 3 }, 1, new[] { 3, 2 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }, new[] { 1, 1 }, new[] { 20, 12 }],
        [new[] { 2, 4, 3, 3 }, new[] { 4, 3, 2, 2 }, 2, new[] { 2, 1 }, new[] { 2, 2 }, new[] { 0, 1, 1, 0 }, new[] { 0, 0 }, new[] { 6, 4 }],
        [new[] { 1, 1, 3, 4, 5 }, new[] { 1, 2, 3, 3, 3 }, 1, new[] { 1, 1, 1 }, new[] { 1, 1, 1 }, new[] { 0, 0, 0, 0, 0, 0 }, new[] { 0, 0, 0 }, new[] { 5, 6, 7 }],
        [new[] { 3, 5, 9, 9 }, new[] { 5, 7, 1, 1 }, 1, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, new[] { 0, 0 }, new[] { 9, 9 }],
    ];

    [TestMethod]
    [DynamicData(nameof(TransposeCases))]
    public void ConvTranspose_MatchesDirectLoops(int[] xs, int[] ws, int group, int[] strides, int[] dilations, int[] pads, int[] outputPadding, int[] outSpatial)
    {
        int rank = xs.Length - 2;
        foreach (var type in LinalgTestData.FloatTypes)
            foreach (int threads in new[] { 1, 3 })
            {
                var x = LinalgTestData.Tensor(type, LinalgTestData.Random(6, LinalgTestData.Count(xs)), xs);
                var w = LinalgTestData.Tensor(type, LinalgTestData.Random(7, LinalgTestData.Count(ws)), ws);
                int m = ws[1] * group;
                var b = LinalgTestData.Tensor(type, LinalgTestData.Random(8, m), m);
                var expected = ReferenceConvTranspose(LinalgTestData.Values(x), xs, LinalgTestData.Values(w), ws, LinalgTestData.Values(b), group, strides, dilations, pads[..rank], outSpatial);
                var y = LinalgTestData.Run("ConvTranspose", [x, w, b], threads, 1, 11,
                    OnnxAttribute.FromInt("group", group), OnnxAttribute.FromInts("strides", L(strides)), OnnxAttribute.FromInts("dilations", L(dilations)),
                    OnnxAttribute.FromInts("pads", L(pads)), OnnxAttribute.FromInts("output_padding", L(outputPadding)))[0];
                LinalgTestData.AssertClose(expected, [xs[0], m, .. outSpatial], y, type, $"{type} threads={threads}");
            }
    }

    [TestMethod]
    [DataRow(new[] { 10, 8 }, null, 0, 0)]
    [DataRow(new[] { 9, 7 }, null, 0, 0)]
    [DataRow(new[] { 8, 6 }, null, 1, 1)]
    [DataRow(null, "SAME_UPPER", 0, 0)]
    [DataRow(null, "SAME_LOWER", 1, 1)]
    public void ConvTranspose_OutputShapeAndAutoPad(int[]? outputShape, string? autoPad, int padH, int padW)
    {
        // x 3×3, kernel 3×3, strides (3, 2): the unpadded output is 9×7; SAME gives 9×6 (total padding 0 and 1).
        int[] xs = [1, 1, 3, 3], ws = [1, 2, 3, 3];
        int[] outSp = outputShape ?? [9, 6];
        if (autoPad is not null) { padH = 0; padW = autoPad == "SAME_UPPER" ? 0 : 1; }
        foreach (var type in LinalgTestData.FloatTypes)
        {
            var x = LinalgTestData.Tensor(type, LinalgTestData.Random(9, 9), xs);
            var w = LinalgTestData.Tensor(type, LinalgTestData.Random(10, 18), ws);
            var expected = ReferenceConvTranspose(LinalgTestData.Values(x), xs, LinalgTestData.Values(w), ws, null, 1, [3, 2], [1, 1], [padH, padW], outSp);
            var attributes = new List<OnnxAttribute> { OnnxAttribute.FromInts("strides", 3, 2) };
            if (outputShape is not null) attributes.Add(OnnxAttribute.FromInts("output_shape", L(outputShape)));
            if (autoPad is not null) attributes.Add(OnnxAttribute.FromString("auto_pad", autoPad));
            var y = SingleNode.Run("ConvTranspose", [x, w], 1, 11, [.. attributes])[0];
            LinalgTestData.AssertClose(expected, [1, 2, .. outSp], y, type, $"{type}");
        }
    }

    // ---- gradients (finite differences in float64; opset 13+ also checks the exported graph on ONNX Runtime) ----

    public static IEnumerable<object[]> GradientCases =>
    [
        // x shape, w shape, group, strides, dilations, pads (begin…, end…)
        [new[] { 2, 3, 7 }, new[] { 4, 3, 3 }, 1, new[] { 1 }, new[] { 1 }, new[] { 0, 0 }],
        [new[] { 2, 4, 9 }, new[] { 6, 2, 3 }, 2, new[] { 2 }, new[] { 2 }, new[] { 1, 2 }],
        [new[] { 1, 2, 5, 6 }, new[] { 3, 2, 3, 2 }, 1, new[] { 2, 1 }, new[] { 1, 2 }, new[] { 1, 0, 2, 1 }],
        [new[] { 2, 4, 5, 5 }, new[] { 4, 1, 3, 3 }, 4, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }],
        [new[] { 2, 3, 4, 4 }, new[] { 5, 3, 1, 1 }, 1, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }],
        // Stride 1, several images: the input gradient runs in batches of images (wide columns, padded planes).
        [new[] { 3, 2, 6, 7 }, new[] { 4, 2, 3, 3 }, 1, new[] { 1, 1 }, new[] { 1, 2 }, new[] { 1, 2, 1, 0 }],
        [new[] { 5, 1, 7, 7 }, new[] { 3, 1, 4, 4 }, 1, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }],
        [new[] { 1, 2, 3, 4, 3 }, new[] { 2, 2, 2, 2, 2 }, 1, new[] { 1, 2, 1 }, new[] { 1, 1, 2 }, new[] { 0, 1, 1, 1, 0, 0 }],
    ];

    [TestMethod]
    [DynamicData(nameof(GradientCases))]
    public void Conv_Gradient(int[] xs, int[] ws, int group, int[] strides, int[] dilations, int[] pads)
    {
        var attributes = new[] { OnnxAttribute.FromInt("group", group), OnnxAttribute.FromInts("strides", L(strides)),
            OnnxAttribute.FromInts("dilations", L(dilations)), OnnxAttribute.FromInts("pads", L(pads)) };
        GradCheck.Op("Conv", [GradCheck.Random(1, xs), GradCheck.Random(2, ws), GradCheck.Random(3, [ws[0]])], attributes, opset: 13);
        GradCheck.Op("Conv", [GradCheck.Random(4, xs), GradCheck.Random(5, ws)], attributes, opset: 11);
    }

    [TestMethod]
    [DataRow("SAME_UPPER")]
    [DataRow("SAME_LOWER")]
    [DataRow("VALID")]
    public void Conv_Gradient_AutoPad(string autoPad)
    {
        var attributes = new[] { OnnxAttribute.FromString("auto_pad", autoPad), OnnxAttribute.FromInts("strides", 2, 1) };
        GradCheck.Op("Conv", [GradCheck.Random(1, [1, 2, 5, 4]), GradCheck.Random(2, [3, 2, 2, 3]), GradCheck.Random(3, [3])], attributes, opset: 13);

        // Without static shapes the SAME padding is resolved when the ConvGrad kernel runs.
        var inputs = new[] { GradCheck.Random(1, [1, 2, 5, 4]), GradCheck.Random(2, [3, 2, 2, 3]) };
        var model = SingleNode.Model("Conv", inputs, 1, 13, "", attributes);
        model.Graph.Inputs[0] = new ValueInfo("x0", DataType.Double, null);
        model.Graph.Inputs[1] = new ValueInfo("x1", DataType.Double, null);
        var report = Backprop.Onnx.Verification.GradientCheck.Run(model, new Dictionary<string, OnnxTensor> { ["x0"] = inputs[0], ["x1"] = inputs[1] },
            new Backprop.Onnx.Verification.GradientCheckOptions { Seed = 7 });
        Assert.IsTrue(report.Passed, report.ToString());
    }

    [TestMethod]
    public void Conv_Gradient_LargeImagesUseColumnChunks()
    {
        // 16 channels × 3×3 kernel × 130×130 positions exceeds the im2col buffer, so the gradient kernel works in chunks;
        // checked by random directions.
        GradCheck.Op("Conv", [GradCheck.Random(1, [1, 16, 130, 130]), GradCheck.Random(2, [2, 16, 3, 3]), GradCheck.Random(3, [2])],
            [OnnxAttribute.FromInts("pads", 1, 1, 1, 1)], opset: 13, onnxRuntime: false);
    }

    public static IEnumerable<object[]> TransposeGradientCases =>
    [
        // x shape, w shape, group, strides, dilations, pads, output_padding
        [new[] { 1, 2, 3 }, new[] { 2, 2, 3 }, 1, new[] { 2 }, new[] { 1 }, new[] { 0, 1 }, new[] { 1 }],
        [new[] { 2, 2, 3, 3 }, new[] { 2, 3, 3, 2 }, 1, new[] { 2, 3 }, new[] { 1, 1 }, new[] { 1, 1, 1, 0 }, new[] { 1, 2 }],
        [new[] { 1, 4, 3, 2 }, new[] { 4, 1, 2, 2 }, 2, new[] { 1, 2 }, new[] { 2, 1 }, new[] { 0, 0, 1, 0 }, new[] { 0, 0 }],
        [new[] { 1, 1, 2, 3, 2 }, new[] { 1, 2, 2, 2, 2 }, 1, new[] { 2, 1, 2 }, new[] { 1, 1, 1 }, new[] { 0, 0, 0, 0, 0, 0 }, new[] { 0, 0, 1 }],
    ];

    [TestMethod]
    [DynamicData(nameof(TransposeGradientCases))]
    public void ConvTranspose_Gradient(int[] xs, int[] ws, int group, int[] strides, int[] dilations, int[] pads, int[] outputPadding)
    {
        var attributes = new[] { OnnxAttribute.FromInt("group", group), OnnxAttribute.FromInts("strides", L(strides)), OnnxAttribute.FromInts("dilations", L(dilations)),
            OnnxAttribute.FromInts("pads", L(pads)), OnnxAttribute.FromInts("output_padding", L(outputPadding)) };
        GradCheck.Op("ConvTranspose", [GradCheck.Random(1, xs), GradCheck.Random(2, ws), GradCheck.Random(3, [ws[1] * group])], attributes, opset: 13);
    }

    [TestMethod]
    public void ConvTranspose_Gradient_OutputShapeAndSame()
    {
        OnnxTensor?[] inputs = [GradCheck.Random(1, [1, 1, 3, 3]), GradCheck.Random(2, [1, 2, 3, 3])];
        GradCheck.Op("ConvTranspose", inputs, [OnnxAttribute.FromInts("strides", 3, 2), OnnxAttribute.FromInts("output_shape", 10, 8)], opset: 13);
        GradCheck.Op("ConvTranspose", inputs, [OnnxAttribute.FromInts("strides", 3, 2), OnnxAttribute.FromInts("output_shape", 8, 6)], opset: 13);
        GradCheck.Op("ConvTranspose", inputs, [OnnxAttribute.FromInts("strides", 2, 2), OnnxAttribute.FromString("auto_pad", "SAME_UPPER")], opset: 13);
        GradCheck.Op("ConvTranspose", inputs, [OnnxAttribute.FromInts("strides", 2, 2), OnnxAttribute.FromString("auto_pad", "SAME_LOWER")], opset: 13);
    }
}
