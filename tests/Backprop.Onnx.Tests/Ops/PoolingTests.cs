using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>MaxPool, AveragePool, the global pools, MaxUnpool and LRN against direct loops.</summary>
[TestClass]
public sealed class PoolingTests
{
    /// <summary>
    /// Pooling by definition: for each output position, the window elements o·s − p + k·d inside the input; max takes
    /// the first maximum (its row-major plane index), average divides by the count inside the input or, with
    /// count_include_pad, inside [−pad_begin, in + pad_end).
    /// </summary>
    private static (double[] Y, long[] I) ReferencePool(double[] x, int[] xs, int[] kernel, int[] strides, int[] dilations, int[] pads, int[] outSp, bool max, bool includePad)
    {
        int planes = xs[0] * xs[1], rank = xs.Length - 2;
        int[] inSp = xs[2..];
        int inSize = LinalgTestData.Count(inSp), outSize = LinalgTestData.Count(outSp), kSize = LinalgTestData.Count(kernel);
        var y = new double[planes * outSize];
        var idx = new long[planes * outSize];
        for (int p = 0; p < planes; p++)
            for (int o = 0; o < outSize; o++)
            {
                var oc = ConvTests.Coords(o, outSp);
                double best = double.NegativeInfinity, sum = 0;
                long bestIndex = -1;
                int count = 0, padded = 0;
                for (int k = 0; k < kSize; k++)
                {
                    var kc = ConvTests.Coords(k, kernel);
                    var ic = new int[rank];
                    bool inside = true, insidePadded = true;
                    for (int d = 0; d < rank; d++)
                    {
                        ic[d] = oc[d] * strides[d] - pads[d] + kc[d] * dilations[d];
                        inside &= ic[d] >= 0 && ic[d] < inSp[d];
                        insidePadded &= ic[d] < inSp[d] + pads[rank + d];
                    }
                    if (insidePadded) padded++;
                    if (!inside) continue;
                    double v = x[p * inSize + ConvTests.Flat(ic, inSp)];
                    count++;
                    sum += v;
                    if (bestIndex < 0 || v > best) { best = v; bestIndex = p * inSize + ConvTests.Flat(ic, inSp); }
                }
                y[p * outSize + o] = max ? best : sum / (includePad ? padded : count);
                idx[p * outSize + o] = bestIndex;
            }
        return (y, idx);
    }

    private static long[] L(int[] v) => [.. v.Select(d => (long)d)];

    public static IEnumerable<object[]> Cases =>
    [
        // x shape, kernel, strides, dilations, pads (begin…, end…), ceil_mode, expected output spatial shape
        [new[] { 1, 3, 32 }, new[] { 2 }, new[] { 1 }, new[] { 1 }, new[] { 0, 0 }, false, new[] { 31 }],
        [new[] { 2, 2, 9 }, new[] { 3 }, new[] { 2 }, new[] { 2 }, new[] { 1, 2 }, true, new[] { 5 }],
        // ceil_mode would add a window starting in the end padding: it is dropped (ONNX spec note, PyTorch).
        [new[] { 1, 1, 4 }, new[] { 2 }, new[] { 2 }, new[] { 1 }, new[] { 0, 1 }, true, new[] { 2 }],
        [new[] { 1, 1, 4, 4 }, new[] { 3, 3 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, true, new[] { 2, 2 }],
        [new[] { 1, 1, 5, 5 }, new[] { 3, 3 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 1, 1, 1, 1 }, true, new[] { 3, 3 }],
        [new[] { 2, 3, 7, 8 }, new[] { 3, 2 }, new[] { 2, 3 }, new[] { 1, 1 }, new[] { 1, 0, 1, 1 }, false, new[] { 4, 3 }],
        [new[] { 1, 2, 8, 8 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 2, 2 }, new[] { 0, 0, 0, 0 }, false, new[] { 6, 6 }],
        [new[] { 1, 1, 5, 5 }, new[] { 5, 5 }, new[] { 1, 1 }, new[] { 1, 1 }, new[] { 2, 2, 2, 2 }, false, new[] { 5, 5 }],
        [new[] { 1, 2, 5, 4, 3 }, new[] { 2, 2, 2 }, new[] { 2, 1, 2 }, new[] { 1, 1, 1 }, new[] { 1, 0, 0, 0, 1, 1 }, true, new[] { 3, 4, 2 }],
        [new[] { 4, 17, 16, 16 }, new[] { 2, 2 }, new[] { 2, 2 }, new[] { 1, 1 }, new[] { 0, 0, 0, 0 }, false, new[] { 8, 8 }],
    ];

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void MaxPool_MatchesDirectLoops(int[] xs, int[] kernel, int[] strides, int[] dilations, int[] pads, bool ceil, int[] outSp)
    {
        foreach (var type in LinalgTestData.FloatTypes)
            foreach (int threads in new[] { 1, 3 })
            {
                var x = LinalgTestData.Tensor(type, LinalgTestData.Random(1, LinalgTestData.Count(xs)), xs);
                var (expected, indices) = ReferencePool(LinalgTestData.Values(x), xs, kernel, strides, dilations, pads, outSp, max: true, includePad: false);
                var outputs = LinalgTestData.Run("MaxPool", [x], threads, 2, 12, OnnxAttribute.FromInts("kernel_shape", L(kernel)),
                    OnnxAttribute.FromInts("strides", L(strides)), OnnxAttribute.FromInts("dilations", L(dilations)),
                    OnnxAttribute.FromInts("pads", L(pads)), OnnxAttribute.FromInt("ceil_mode", ceil ? 1 : 0));
                int[] shape = [xs[0], xs[1], .. outSp];
                LinalgTestData.AssertClose(expected, shape, outputs[0], type, $"{type} threads={threads}");
                CollectionAssert.AreEqual(indices, outputs[1].ToArray<long>(), $"{type} indices");
            }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void AveragePool_MatchesDirectLoops(int[] xs, int[] kernel, int[] strides, int[] dilations, int[] pads, bool ceil, int[] outSp)
    {
        if (dilations.Any(d => d != 1)) return;   // AveragePool has no dilations before opset 19
        foreach (var type in LinalgTestData.FloatTypes)
            foreach (bool includePad in new[] { false, true })
            {
                var x = LinalgTestData.Tensor(type, LinalgTestData.Random(2, LinalgTestData.Count(xs)), xs);
                var (expected, _) = ReferencePool(LinalgTestData.Values(x), xs, kernel, strides, dilations, pads, outSp, max: false, includePad);
                var y = LinalgTestData.Run("AveragePool", [x], 3, 1, 11, OnnxAttribute.FromInts("kernel_shape", L(kernel)),
                    OnnxAttribute.FromInts("strides", L(strides)), OnnxAttribute.FromInts("pads", L(pads)),
                    OnnxAttribute.FromInt("ceil_mode", ceil ? 1 : 0), OnnxAttribute.FromInt("count_include_pad", includePad ? 1 : 0))[0];
                LinalgTestData.AssertClose(expected, [xs[0], xs[1], .. outSp], y, type, $"{type} count_include_pad={includePad}");
            }
    }

    [TestMethod]
    [DataRow("SAME_UPPER", 0)]
    [DataRow("SAME_LOWER", 1)]
    public void Pools_SameAutoPad(string autoPad, int padBegin)
    {
        // 5×5 input, kernel 2, stride 2: output 3×3, total padding 1 at the end (UPPER) or the beginning (LOWER).
        int[] xs = [1, 1, 5, 5];
        var x = LinalgTestData.Tensor(DataType.Double, LinalgTestData.Random(3, 25), xs);
        int[] pads = [padBegin, padBegin, 1 - padBegin, 1 - padBegin];
        foreach (bool max in new[] { true, false })
        {
            var (expected, _) = ReferencePool(LinalgTestData.Values(x), xs, [2, 2], [2, 2], [1, 1], pads, [3, 3], max, includePad: false);
            var y = SingleNode.Run(max ? "MaxPool" : "AveragePool", [x], 1, 11, OnnxAttribute.FromInts("kernel_shape", 2, 2),
                OnnxAttribute.FromInts("strides", 2, 2), OnnxAttribute.FromString("auto_pad", autoPad))[0];
            LinalgTestData.AssertClose(expected, [1, 1, 3, 3], y, DataType.Double, $"{autoPad} max={max}");
        }
    }

    [TestMethod]
    public void MaxPool_ColumnMajorIndicesAndTies()
    {
        // 1×1×2×3 input with a tie: the first maximum in window order wins.
        var x = OnnxTensor.FromArray(new float[] { 1, 9, 3, 4, 9, 6 }, 1, 1, 2, 3);
        var rowMajor = SingleNode.Run("MaxPool", [x], 2, 12, OnnxAttribute.FromInts("kernel_shape", 2, 2));
        CollectionAssert.AreEqual(new float[] { 9, 9 }, rowMajor[0].ToArray<float>());
        CollectionAssert.AreEqual(new long[] { 1, 1 }, rowMajor[1].ToArray<long>());
        var columnMajor = SingleNode.Run("MaxPool", [x], 2, 12, OnnxAttribute.FromInts("kernel_shape", 2, 2), OnnxAttribute.FromInt("storage_order", 1));
        // (h=0, w=1) is index 0 + 1·2 = 2 in column-major order; (h=1, w=2) → 1 + 2·2 = 5.
        var x2 = OnnxTensor.FromArray(new float[] { 1, 9, 3, 4, 5, 10 }, 1, 1, 2, 3);
        var cm2 = SingleNode.Run("MaxPool", [x2], 2, 12, OnnxAttribute.FromInts("kernel_shape", 2, 2), OnnxAttribute.FromInt("storage_order", 1));
        CollectionAssert.AreEqual(new long[] { 2, 2 }, columnMajor[1].ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 2, 5 }, cm2[1].ToArray<long>());
    }

    [TestMethod]
    public void MaxPool_Int8AndUInt8()
    {
        var s = OnnxTensor.FromArray(new sbyte[] { -5, -3, -8, -1 }, 1, 1, 2, 2);
        Assert.AreEqual((sbyte)-1, SingleNode.Run("MaxPool", [s], 1, 12, OnnxAttribute.FromInts("kernel_shape", 2, 2))[0].ToArray<sbyte>()[0]);
        var u = OnnxTensor.FromArray(new byte[] { 5, 255, 8, 1 }, 1, 1, 2, 2);
        Assert.AreEqual((byte)255, SingleNode.Run("MaxPool", [u], 1, 12, OnnxAttribute.FromInts("kernel_shape", 2, 2))[0].ToArray<byte>()[0]);
    }

    [TestMethod]
    public void AveragePool_DilationsAreUnsupported()
    {
        var x = OnnxTensor.FromArray(new float[16], 1, 1, 4, 4);
        Assert.ThrowsExactly<UnsupportedOperatorException>(() =>
            SingleNode.Run("AveragePool", [x], 1, 17, OnnxAttribute.FromInts("kernel_shape", 2, 2), OnnxAttribute.FromInts("dilations", 2, 2)));
    }

    [TestMethod]
    [DataRow(new[] { 2, 3, 5, 5 })]
    [DataRow(new[] { 1, 2, 17 })]
    [DataRow(new[] { 1, 1, 2, 3, 4 })]
    [DataRow(new[] { 3, 2, 1, 1 })]
    public void GlobalPools_MatchLoops(int[] xs)
    {
        int planes = xs[0] * xs[1], size = LinalgTestData.Count(xs[2..]);
        foreach (var type in LinalgTestData.FloatTypes)
        {
            var x = LinalgTestData.Tensor(type, LinalgTestData.Random(4, LinalgTestData.Count(xs)), xs);
            var v = LinalgTestData.Values(x);
            var mean = Enumerable.Range(0, planes).Select(p => v.Skip(p * size).Take(size).Sum() / size).ToArray();
            var max = Enumerable.Range(0, planes).Select(p => v.Skip(p * size).Take(size).Max()).ToArray();
            int[] shape = [xs[0], xs[1], .. Enumerable.Repeat(1, xs.Length - 2)];
            LinalgTestData.AssertClose(mean, shape, SingleNode.Run("GlobalAveragePool", [x])[0], type, "GlobalAveragePool");
            LinalgTestData.AssertClose(max, shape, SingleNode.Run("GlobalMaxPool", [x])[0], type, "GlobalMaxPool");
        }
    }

    [TestMethod]
    [DataRow(3, 0.0002f, 0.5f, 2.0f)]
    [DataRow(4, 0.0001f, 0.75f, 1.0f)]
    [DataRow(1, 0.5f, 1.0f, 1.0f)]
    public void Lrn_MatchesDefinition(int size, float alpha, float beta, float bias)
    {
        int[] xs = [2, 5, 3, 2];
        int c = xs[1], plane = 6;
        foreach (var type in LinalgTestData.FloatTypes)
        {
            var x = LinalgTestData.Tensor(type, LinalgTestData.Random(5, LinalgTestData.Count(xs)), xs);
            var v = LinalgTestData.Values(x);
            var expected = new double[v.Length];
            for (int i = 0; i < v.Length; i++)
            {
                int ch = i / plane % c, n = i / (plane * c), pos = i % plane;
                double sq = 0;
                for (int k = Math.Max(0, ch - (size - 1) / 2); k <= Math.Min(c - 1, ch + (int)Math.Ceiling((size - 1) / 2.0)); k++)
                    sq += Math.Pow(v[(n * c + k) * plane + pos], 2);
                expected[i] = v[i] / Math.Pow((double)bias + (double)alpha / size * sq, (double)beta);
            }
            var y = SingleNode.Run("LRN", [x], 1, 13, OnnxAttribute.FromInt("size", size), OnnxAttribute.FromFloat("alpha", alpha),
                OnnxAttribute.FromFloat("beta", beta), OnnxAttribute.FromFloat("bias", bias))[0];
            LinalgTestData.AssertClose(expected, xs, y, type, $"LRN size={size} {type}");
        }
    }

    [TestMethod]
    public void MaxUnpool_ScattersToIndices()
    {
        var x = OnnxTensor.FromArray(new float[] { 5, 6, 7, 8 }, 1, 1, 2, 2);
        var i = OnnxTensor.FromArray(new long[] { 5, 7, 13, 15 }, 1, 1, 2, 2);
        var y = SingleNode.Run("MaxUnpool", [x, i], 1, 11, OnnxAttribute.FromInts("kernel_shape", 2, 2), OnnxAttribute.FromInts("strides", 2, 2))[0];
        CollectionAssert.AreEqual(new[] { 1, 1, 4, 4 }, y.Shape.ToArray());
        CollectionAssert.AreEqual(new float[] { 0, 0, 0, 0, 0, 5, 0, 6, 0, 0, 0, 0, 0, 7, 0, 8 }, y.ToArray<float>());
    }
}
