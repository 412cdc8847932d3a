using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// Shape and layout ops against scalar reference loops written here from the ONNX spec text (coordinates in, source
/// coordinate out), in float32 and float64 and for integer, bool and string elements where the kernels move data.
/// </summary>
[TestClass]
public sealed partial class ShapeTests
{
    [TestMethod]
    [DataRow(DataType.Float, new[] { 2, 3, 4 }, new long[] { 4, 0, -1 }, false, new[] { 4, 3, 2 })]
    [DataRow(DataType.Double, new[] { 2, 3, 4 }, new long[] { -1 }, false, new[] { 24 })]
    [DataRow(DataType.Float, new[] { 0, 3, 4 }, new long[] { 3, 4, 0 }, true, new[] { 3, 4, 0 })]
    [DataRow(DataType.Int64, new[] { 1 }, new long[] { }, false, new int[0])]
    public void Reshape_KeepsElementOrder(DataType type, int[] shape, long[] target, bool allowZero, int[] expected)
    {
        var x = TestTensors.Sequence(type, shape);
        var y = SingleNode.Run("Reshape", [x, TestTensors.Int64s(target)], attributes: OnnxAttribute.FromInt("allowzero", allowZero ? 1 : 0))[0];
        CollectionAssert.AreEqual(expected, y.Shape.ToArray());
        CollectionAssert.AreEqual(TestTensors.Values(x), TestTensors.Values(y));
    }

    [TestMethod]
    public void Reshape_RejectsAMismatchedCount() =>
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("Reshape", [TestTensors.Sequence(DataType.Float, 2, 3), TestTensors.Int64s(4, 2)]));

    [TestMethod]
    [DataRow(0, new[] { 1, 120 })]
    [DataRow(2, new[] { 6, 20 })]
    [DataRow(4, new[] { 120, 1 })]
    [DataRow(-1, new[] { 24, 5 })]
    public void Flatten_CollapsesAroundAxis(int axis, int[] expected)
    {
        var y = SingleNode.Run("Flatten", [TestTensors.Sequence(DataType.Double, 2, 3, 4, 5)], attributes: OnnxAttribute.FromInt("axis", axis))[0];
        CollectionAssert.AreEqual(expected, y.Shape.ToArray());
    }

    [TestMethod]
    [DataRow(11)]
    [DataRow(13)]
    public void SqueezeUnsqueeze_AttributeAndInputForms(int opset)
    {
        var x = TestTensors.Sequence(DataType.Float, 1, 3, 1, 5);
        OnnxTensor Run(string op, params long[] axes) => opset < 13
            ? SingleNode.Run(op, [x], opset: opset, attributes: OnnxAttribute.FromInts("axes", axes))[0]
            : SingleNode.Run(op, [x, TestTensors.Int64s(axes)], opset: opset)[0];
        CollectionAssert.AreEqual(new[] { 3, 1, 5 }, Run("Squeeze", 0).Shape.ToArray());
        CollectionAssert.AreEqual(new[] { 1, 3, 5 }, Run("Squeeze", -2).Shape.ToArray());
        CollectionAssert.AreEqual(new[] { 3, 5 }, SingleNode.Run("Squeeze", [x], opset: opset)[0].Shape.ToArray());
        CollectionAssert.AreEqual(new[] { 1, 1, 3, 1, 5, 1 }, Run("Unsqueeze", 5, 0).Shape.ToArray());
        Assert.ThrowsExactly<InvalidInputException>(() => Run("Squeeze", 1));
    }

    [TestMethod]
    [DataRow(0L, null, new long[] { 2, 3, 4, 5 })]
    [DataRow(1L, 3L, new long[] { 3, 4 })]
    [DataRow(-2L, null, new long[] { 4, 5 })]
    [DataRow(-10L, 10L, new long[] { 2, 3, 4, 5 })]
    [DataRow(3L, 1L, new long[] { })]
    public void Shape_SlicesTheDimensions(long start, long? end, long[] expected)
    {
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("start", start) };
        if (end is { } e) attrs.Add(OnnxAttribute.FromInt("end", e));
        var y = SingleNode.Run("Shape", [TestTensors.Sequence(DataType.Float, 2, 3, 4, 5)], attributes: [.. attrs])[0];
        CollectionAssert.AreEqual(expected, y.ToArray<long>());
        Assert.AreEqual(120L, SingleNode.Run("Size", [TestTensors.Sequence(DataType.Float, 2, 3, 4, 5)])[0].ToArray<long>()[0]);
    }

    [TestMethod]
    [DataRow(DataType.Float, new[] { 3, 1 }, new long[] { 2, 1, 4 })]
    [DataRow(DataType.Double, new[] { 1, 4 }, new long[] { 3, 1 })]
    [DataRow(DataType.Double, new[] { 2, 1, 17 }, new long[] { 1 })]
    [DataRow(DataType.Int32, new[] { 1 }, new long[] { 0, 9 })]
    [DataRow(DataType.Bool, new[] { 1, 3 }, new long[] { 2, 1 })]
    public void Expand_BroadcastsBothWays(DataType type, int[] shape, long[] target)
    {
        var x = TestTensors.Sequence(type, shape);
        var y = SingleNode.Run("Expand", [x, TestTensors.Int64s(target)])[0];
        int rank = Math.Max(shape.Length, target.Length);
        var outShape = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int a = i - (rank - shape.Length) >= 0 ? shape[i - (rank - shape.Length)] : 1;
            int b = i - (rank - target.Length) >= 0 ? (int)target[i - (rank - target.Length)] : 1;
            outShape[i] = a == 1 ? b : a;
        }
        CollectionAssert.AreEqual(outShape, y.Shape.ToArray());
        var xv = TestTensors.Values(x);
        var expected = TestTensors.Coords(outShape).Select(c =>
        {
            var src = c.Skip(rank - shape.Length).Select((v, d) => shape[d] == 1 ? 0 : v).ToArray();
            return xv[TestTensors.Flat(src, shape)];
        }).ToArray();
        CollectionAssert.AreEqual(expected, TestTensors.Values(y));
    }

    [TestMethod]
    [DataRow(DataType.Float, new[] { 2, 3, 4 }, new long[] { 2, 0, 1 })]
    [DataRow(DataType.Double, new[] { 3, 17 }, null)]
    [DataRow(DataType.Double, new[] { 2, 1, 3, 5 }, new long[] { 3, 1, 0, 2 })]
    [DataRow(DataType.String, new[] { 2, 3 }, new long[] { 1, 0 })]
    [DataRow(DataType.Float16, new[] { 0, 3 }, new long[] { 1, 0 })]
    public void Transpose_PermutesCoordinates(DataType type, int[] shape, long[]? perm)
    {
        var x = TestTensors.Sequence(type, shape);
        var p = perm?.Select(v => (int)v).ToArray() ?? [.. Enumerable.Range(0, shape.Length).Reverse()];
        var y = perm is null ? SingleNode.Run("Transpose", [x])[0] : SingleNode.Run("Transpose", [x], attributes: OnnxAttribute.FromInts("perm", perm))[0];
        var outShape = p.Select(d => shape[d]).ToArray();
        CollectionAssert.AreEqual(outShape, y.Shape.ToArray());
        var src = new int[shape.Length];
        var expected = TestTensors.Coords(outShape).Select(c =>
        {
            for (int d = 0; d < c.Length; d++) src[p[d]] = c[d];
            return TestTensors.Flat(src, shape);
        }).ToArray();
        CollectionAssert.AreEqual(expected.Select(i => TestTensors.Values(x)[i]).ToArray(), TestTensors.Values(y));
        if (type == DataType.String) Assert.AreEqual("3", System.Text.Encoding.UTF8.GetString(y.ToArray<byte[]>()[1]));
    }

    [TestMethod]
    [DataRow(DataType.Float, new[] { 0, 1, 7 }, 0)]
    [DataRow(DataType.Double, new[] { 8, 9, 16, 17 }, 1)]
    [DataRow(DataType.Int64, new[] { 1, 0, 3 }, -1)]
    public void Concat_JoinsAlongAxis(DataType type, int[] lengths, int axis)
    {
        // Inputs of shape [2, len] (axis 1/-1) or [len, 2] (axis 0), each filled with distinct values.
        var inputs = lengths.Select((n, k) => TestTensors.Of(type, [.. Enumerable.Range(0, 2 * n).Select(i => 100.0 * k + i)], axis == 0 ? [n, 2] : [2, n])).ToArray();
        var y = SingleNode.Run("Concat", inputs, attributes: OnnxAttribute.FromInt("axis", axis))[0];
        int total = lengths.Sum();
        var expected = new List<double>();
        if (axis == 0) foreach (var t in inputs) expected.AddRange(TestTensors.Values(t));
        else for (int r = 0; r < 2; r++) foreach (var t in inputs) expected.AddRange(TestTensors.Values(t).Skip(r * t.Shape[1]).Take(t.Shape[1]));
        CollectionAssert.AreEqual(axis == 0 ? new[] { total, 2 } : new[] { 2, total }, y.Shape.ToArray());
        CollectionAssert.AreEqual(expected.ToArray(), TestTensors.Values(y));
    }

    [TestMethod]
    [DataRow(2, null, 3)]
    [DataRow(11, new long[] { 1, 4, 0 }, 3)]
    [DataRow(13, new long[] { 2, 3 }, 2)]
    [DataRow(13, null, 5)]
    public void Split_CutsAlongAxis(int opset, long[]? split, int outputs)
    {
        int width = split is null ? 2 * outputs : (int)split.Sum();
        var x = TestTensors.Sequence(DataType.Double, 2, width);
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("axis", -1) };
        OnnxTensor?[] inputs = split is not null && opset >= 13 ? [x, TestTensors.Int64s(split)] : [x];
        if (split is not null && opset < 13) attrs.Add(OnnxAttribute.FromInts("split", split));
        var ys = SingleNode.Run("Split", inputs, outputs, opset, [.. attrs]);
        var sizes = split ?? [.. Enumerable.Repeat(2L, outputs)];
        int start = 0;
        for (int k = 0; k < outputs; k++)
        {
            int n = (int)sizes[k];
            var expected = Enumerable.Range(0, 2).SelectMany(r => Enumerable.Range(start, n).Select(c => (double)(r * width + c))).ToArray();
            CollectionAssert.AreEqual(new[] { 2, n }, ys[k].Shape.ToArray());
            CollectionAssert.AreEqual(expected, TestTensors.Values(ys[k]));
            start += n;
        }
    }

    [TestMethod]
    [DataRow(13, new long[] { 1, 0 }, new long[] { 3, 17 }, null, null)]
    [DataRow(13, new long[] { -1, 20 }, new long[] { -1000, 1 }, new long[] { 0, 1 }, new long[] { -1, -3 })]
    [DataRow(13, new long[] { 2 }, new long[] { 100 }, new long[] { -1 }, new long[] { 5 })]
    [DataRow(13, new long[] { 0 }, new long[] { 0 }, new long[] { 0 }, null)]
    [DataRow(9, new long[] { 0, -4 }, new long[] { 1, long.MaxValue }, new long[] { 0, 1 }, null)]
    public void Slice_MatchesPythonSlicing(int opset, long[] starts, long[] ends, long[]? axes, long[]? steps)
    {
        int[] shape = [4, 17];
        var x = TestTensors.Sequence(DataType.Double, shape);
        var y = opset < 10
            ? SingleNode.Run("Slice", [x], opset: opset, attributes: [OnnxAttribute.FromInts("starts", starts), OnnxAttribute.FromInts("ends", ends), OnnxAttribute.FromInts("axes", axes!)])[0]
            : SingleNode.Run("Slice", [x, TestTensors.Int64s(starts), TestTensors.Int64s(ends), axes is null ? null : TestTensors.Int64s(axes), steps is null ? null : TestTensors.Int64s(steps)], opset: opset)[0];
        // Reference: the index list of each axis, as Python's slice(start, end, step).indices(dim) gives it.
        var lists = shape.Select(d => Enumerable.Range(0, d).ToArray()).ToArray();
        for (int i = 0; i < starts.Length; i++)
        {
            int a = (int)(axes?[i] ?? i);
            a = a < 0 ? a + shape.Length : a;
            lists[a] = PythonSlice(starts[i], ends[i], steps?[i] ?? 1, shape[a]);
        }
        CollectionAssert.AreEqual(lists.Select(l => l.Length).ToArray(), y.Shape.ToArray());
        var expected = lists[0].SelectMany(r => lists[1].Select(c => (double)(r * shape[1] + c))).ToArray();
        CollectionAssert.AreEqual(expected, TestTensors.Values(y));
    }

    private static int[] PythonSlice(long start, long end, long step, int dim)
    {
        long Norm(long v, long lo, long hi) => v < 0 ? Math.Max(v + dim, lo) : Math.Min(v, hi);
        var result = new List<int>();
        if (step > 0) for (long i = Norm(start, 0, dim); i < Norm(end, 0, dim); i += step) result.Add((int)i);
        else for (long i = Norm(start, -1, dim - 1); i > Norm(end, -1, dim - 1); i += step) result.Add((int)i);
        return [.. result];
    }

    [TestMethod]
    [DataRow(DataType.Float, new[] { 2, 3 }, new long[] { 2, 3 })]
    [DataRow(DataType.Double, new[] { 1, 17 }, new long[] { 3, 1 })]
    [DataRow(DataType.Int32, new[] { 3 }, new long[] { 0 })]
    public void Tile_RepeatsEachAxis(DataType type, int[] shape, long[] repeats)
    {
        var x = TestTensors.Sequence(type, shape);
        var y = SingleNode.Run("Tile", [x, TestTensors.Int64s(repeats)])[0];
        var outShape = shape.Select((d, i) => d * (int)repeats[i]).ToArray();
        var expected = TestTensors.Coords(outShape).Select(c => TestTensors.Values(x)[TestTensors.Flat([.. c.Select((v, d) => v % shape[d])], shape)]).ToArray();
        CollectionAssert.AreEqual(outShape, y.Shape.ToArray());
        CollectionAssert.AreEqual(expected, TestTensors.Values(y));
    }

    [TestMethod]
    [DataRow("constant", 2, new long[] { 1, 2, 0, 3 })]
    [DataRow("constant", 13, new long[] { 0, -1, 2, 1 })]
    [DataRow("reflect", 13, new long[] { 2, 3, 1, 4 })]
    [DataRow("reflect", 2, new long[] { 0, 9, 0, 9 })]
    [DataRow("edge", 13, new long[] { 3, 1, 1, 8 })]
    public void Pad_MatchesNumPyModes(string mode, int opset, long[] pads)
    {
        int[] shape = [3, 4];
        var x = TestTensors.Sequence(DataType.Double, shape);
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromString("mode", mode) };
        OnnxTensor?[] inputs = [x, TestTensors.Int64s(pads), OnnxTensor.Scalar(-7.5)];
        if (opset < 11) { attrs.Add(OnnxAttribute.FromInts("pads", pads)); attrs.Add(OnnxAttribute.FromFloat("value", -7.5f)); inputs = [x]; }
        var y = SingleNode.Run("Pad", inputs, opset: opset, attributes: [.. attrs])[0];
        var outShape = shape.Select((d, i) => d + (int)pads[i] + (int)pads[i + 2]).ToArray();
        CollectionAssert.AreEqual(outShape, y.Shape.ToArray());
        int Source(int j, int d)
        {
            int s = j - (int)pads[d], n = shape[d];
            if (mode == "edge") return Math.Clamp(s, 0, n - 1);
            if (mode == "reflect") { while (s < 0 || s >= n) s = s < 0 ? -s : 2 * (n - 1) - s; return s; }
            return s >= 0 && s < n ? s : -1;
        }
        var expected = TestTensors.Coords(outShape).Select(c =>
        {
            int r = Source(c[0], 0), k = Source(c[1], 1);
            return r < 0 || k < 0 ? -7.5 : r * shape[1] + k;
        }).ToArray();
        CollectionAssert.AreEqual(expected, TestTensors.Values(y));
    }

    [TestMethod]
    [DataRow("DCR", 2)]
    [DataRow("CRD", 2)]
    [DataRow("DCR", 3)]
    public void DepthToSpace_And_SpaceToDepth_FollowTheSpecIndexing(string mode, int b)
    {
        int n = 2, c = 2, h = 3, w = 1;
        var x = TestTensors.Sequence(DataType.Float, n, c * b * b, h, w);
        var y = SingleNode.Run("DepthToSpace", [x], attributes: [OnnxAttribute.FromInt("blocksize", b), OnnxAttribute.FromString("mode", mode)])[0];
        CollectionAssert.AreEqual(new[] { n, c, h * b, w * b }, y.Shape.ToArray());
        var expected = TestTensors.Coords([n, c, h * b, w * b]).Select(o =>
        {
            int by = o[2] % b, bx = o[3] % b;
            int channel = mode == "DCR" ? (by * b + bx) * c + o[1] : o[1] * b * b + by * b + bx;
            return (double)TestTensors.Flat([o[0], channel, o[2] / b, o[3] / b], [n, c * b * b, h, w]);
        }).ToArray();
        CollectionAssert.AreEqual(expected, TestTensors.Values(y));
        if (mode == "DCR")
        {
            var back = SingleNode.Run("SpaceToDepth", [y], attributes: OnnxAttribute.FromInt("blocksize", b))[0];
            CollectionAssert.AreEqual(TestTensors.Values(x), TestTensors.Values(back));
        }
    }

    [TestMethod]
    [DataRow("linear", "half_pixel", "round_prefer_floor", new double[] { 1, 2 }, 2.0, new double[] { 1, 1.25, 1.75, 2 })]
    [DataRow("linear", "align_corners", "round_prefer_floor", new double[] { 1, 2, 3 }, 5.0 / 3, new double[] { 1, 1.5, 2, 2.5, 3 })]
    [DataRow("nearest", "asymmetric", "floor", new double[] { 1, 2 }, 3.0, new double[] { 1, 1, 1, 2, 2, 2 })]
    [DataRow("nearest", "half_pixel", "round_prefer_floor", new double[] { 1, 2, 3, 4 }, 0.5, new double[] { 1, 3 })]
    [DataRow("nearest", "half_pixel", "round_prefer_ceil", new double[] { 1, 2, 3, 4 }, 0.5, new double[] { 2, 4 })]
    public void Resize_OneDimension_ByHand(string mode, string coord, string nearest, double[] x, double scale, double[] expected)
    {
        foreach (var type in new[] { DataType.Float, DataType.Double })
        {
            var attrs = new[] { OnnxAttribute.FromString("mode", mode), OnnxAttribute.FromString("coordinate_transformation_mode", coord), OnnxAttribute.FromString("nearest_mode", nearest) };
            var scales = OnnxTensor.FromArray(new[] { (float)scale }, 1);
            var sizes = TestTensors.Int64s(expected.Length);
            // align_corners is given sizes (the spec's length_resized is then exact); the others scales.
            OnnxTensor?[] inputs = coord == "align_corners" ? [TestTensors.Of(type, x, x.Length), null, null, sizes] : [TestTensors.Of(type, x, x.Length), null, scales];
            TestTensors.AssertClose(expected, SingleNode.Run("Resize", inputs, opset: 13, attributes: attrs)[0], 1e-6, $"{type}");
        }
    }

    [TestMethod]
    [DataRow(-0.75, 2.0, 0)]
    [DataRow(-0.5, 0.6, 1)]
    [DataRow(-0.75, 1.7, 1)]
    public void Resize_Cubic_MatchesTheKeysKernel(double a, double scale, int excludeOutside)
    {
        var x = new double[] { 3, -1, 4, 1, -5, 9, 2, 6, 5 };
        var y = SingleNode.Run("Resize", [TestTensors.Of(DataType.Double, x, x.Length), null, OnnxTensor.FromArray(new[] { (float)scale }, 1)], opset: 13, attributes:
            [OnnxAttribute.FromString("mode", "cubic"), OnnxAttribute.FromFloat("cubic_coeff_a", (float)a), OnnxAttribute.FromInt("exclude_outside", excludeOutside)])[0];
        double s = (float)scale;
        int n = (int)Math.Floor(x.Length * s);
        double Kernel(double t)
        {
            t = Math.Abs(t);
            return t <= 1 ? (a + 2) * t * t * t - (a + 3) * t * t + 1 : t < 2 ? a * t * t * t - 5 * a * t * t + 8 * a * t - 4 * a : 0;
        }
        var expected = new double[n];
        for (int j = 0; j < n; j++)
        {
            double xo = (j + 0.5) / s - 0.5, sum = 0, weights = 0;
            for (int i = (int)Math.Floor(xo) - 1; i <= (int)Math.Floor(xo) + 2; i++)
            {
                if (excludeOutside == 1 && (i < 0 || i >= x.Length)) continue;
                sum += Kernel(xo - i) * x[Math.Clamp(i, 0, x.Length - 1)];
                weights += Kernel(xo - i);
            }
            expected[j] = excludeOutside == 1 ? sum / weights : sum;
        }
        TestTensors.AssertClose(expected, y, 1e-12);
    }

    [TestMethod]
    public void Upsample_NearestRepeatsAndResizeRefusesUnknownModes()
    {
        var x = TestTensors.Sequence(DataType.Int32, 1, 1, 2, 2);
        var y = SingleNode.Run("Upsample", [x], opset: 7, attributes: OnnxAttribute.FromFloats("scales", 1, 1, 2, 3))[0];
        var expected = TestTensors.Coords([1, 1, 4, 6]).Select(c => (double)(c[2] / 2 * 2 + c[3] / 3)).ToArray();
        CollectionAssert.AreEqual(expected, TestTensors.Values(y));
        Assert.ThrowsExactly<UnsupportedOperatorException>(() => SingleNode.Run("Resize", [TestTensors.Sequence(DataType.Float, 2), null, OnnxTensor.FromArray(new[] { 2f }, 1)], opset: 13,
            attributes: OnnxAttribute.FromString("mode", "area")));
        Assert.ThrowsExactly<UnsupportedOperatorException>(() => SingleNode.Run("Resize", [TestTensors.Sequence(DataType.Int32, 2), null, OnnxTensor.FromArray(new[] { 2f }, 1)], opset: 13,
            attributes: OnnxAttribute.FromString("mode", "linear")));
    }
}

/// <summary>Small tensors and coordinate helpers for the shape, indexing and creation op tests.</summary>
internal static class TestTensors
{
    /// <summary>A tensor of <paramref name="type"/> holding <paramref name="values"/> (strings hold their decimal text).</summary>
    public static OnnxTensor Of(DataType type, double[] values, params int[] shape) => type switch
    {
        DataType.Float => OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape),
        DataType.Double => OnnxTensor.FromArray(values.ToArray(), shape),
        DataType.Float16 => OnnxTensor.FromArray(values.Select(v => (Half)v).ToArray(), shape),
        DataType.Int32 => OnnxTensor.FromArray(values.Select(v => (int)v).ToArray(), shape),
        DataType.Int64 => OnnxTensor.FromArray(values.Select(v => (long)v).ToArray(), shape),
        DataType.Bool => OnnxTensor.FromArray(values.Select(v => ((long)v & 1) == 1).ToArray(), shape),
        DataType.String => OnnxTensor.FromArray(values.Select(v => System.Text.Encoding.UTF8.GetBytes(v.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToArray(), shape),
        _ => throw new NotSupportedException(type.ToString()),
    };

    /// <summary>0, 1, 2, … in row-major order.</summary>
    public static OnnxTensor Sequence(DataType type, params int[] shape) =>
        Of(type, [.. Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(i => (double)i)], shape);

    public static OnnxTensor Int64s(params long[] values) => OnnxTensor.FromArray(values, values.Length);

    /// <summary>The elements as doubles (strings parsed back from their text; bools as 0/1).</summary>
    public static double[] Values(OnnxTensor t) => t.ElementType == DataType.String
        ? [.. t.ToArray<byte[]>().Select(b => double.Parse(System.Text.Encoding.UTF8.GetString(b), System.Globalization.CultureInfo.InvariantCulture))]
        : [.. Enumerable.Range(0, (int)t.ElementCount).Select(i => t.GetDouble(i))];

    /// <summary>Every coordinate of <paramref name="shape"/> in row-major order.</summary>
    public static IEnumerable<int[]> Coords(int[] shape)
    {
        if (shape.Any(d => d == 0)) yield break;
        var c = new int[shape.Length];
        while (true)
        {
            yield return (int[])c.Clone();
            int d = shape.Length - 1;
            for (; d >= 0; d--) { if (++c[d] < shape[d]) break; c[d] = 0; }
            if (d < 0) yield break;
        }
    }

    /// <summary>The row-major flat index of <paramref name="coord"/>.</summary>
    public static int Flat(int[] coord, int[] shape)
    {
        int f = 0;
        for (int d = 0; d < shape.Length; d++) f = f * shape[d] + coord[d];
        return f;
    }

    /// <summary>Asserts element-wise closeness with a relative and absolute tolerance.</summary>
    public static void AssertClose(double[] expected, OnnxTensor actual, double tolerance, string what = "")
    {
        var a = Values(actual);
        Assert.HasCount(expected.Length, a, what);
        for (int i = 0; i < a.Length; i++)
            Assert.IsTrue(Math.Abs(a[i] - expected[i]) <= tolerance * (1 + Math.Abs(expected[i])), $"{what} element {i}: {a[i]} vs expected {expected[i]}");
    }
}
