using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// Gather/scatter ops, TopK and CumSum against scalar reference loops written from the ONNX spec text, in float32 and
/// float64, with negative and out-of-range indices and the edge lengths 0, 1, odd and around the vector width.
/// </summary>
[TestClass]
public sealed class IndexingTests
{
    [TestMethod]
    [DataRow(DataType.Float, 0, new long[] { 2, -1, 0, 2 }, new[] { 2, 2 })]
    [DataRow(DataType.Double, 1, new long[] { 16, 0, -17 }, new[] { 3 })]
    [DataRow(DataType.Int64, -1, new long[] { 1 }, new int[0])]
    [DataRow(DataType.Double, 1, new long[] { }, new[] { 0 })]
    public void Gather_SelectsAlongAxis(DataType type, int axis, long[] indices, int[] indexShape)
    {
        int[] shape = [3, 17];
        var x = TestTensors.Sequence(type, shape);
        var y = SingleNode.Run("Gather", [x, OnnxTensor.FromArray(indices, indexShape)], attributes: OnnxAttribute.FromInt("axis", axis))[0];
        int a = axis < 0 ? axis + 2 : axis;
        var idx = indices.Select(i => (int)(i < 0 ? i + shape[a] : i)).ToArray();
        var expected = a == 0
            ? idx.SelectMany(r => Enumerable.Range(0, shape[1]).Select(c => (double)(r * shape[1] + c))).ToArray()
            : Enumerable.Range(0, shape[0]).SelectMany(r => idx.Select(c => (double)(r * shape[1] + c))).ToArray();
        CollectionAssert.AreEqual(expected, TestTensors.Values(y));
        var expectedShape = a == 0 ? indexShape.Append(shape[1]).ToArray() : new[] { shape[0] }.Concat(indexShape).ToArray();
        CollectionAssert.AreEqual(expectedShape, y.Shape.ToArray());
    }

    [TestMethod]
    [DataRow("Gather")]
    [DataRow("GatherElements")]
    public void Gather_RejectsOutOfRangeIndices(string op) =>
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run(op, [TestTensors.Sequence(DataType.Float, 3, 3), OnnxTensor.FromArray(new long[] { 0, 3, 0 }, 1, 3)]));

    [TestMethod]
    [DataRow(DataType.Float, 0)]
    [DataRow(DataType.Double, 1)]
    [DataRow(DataType.Double, -1)]
    public void GatherElements_And_ScatterElements_FollowTheSpecLoops(DataType type, int axis)
    {
        int[] shape = [3, 4];
        var x = TestTensors.Sequence(type, shape);
        int a = axis < 0 ? axis + 2 : axis;
        var idx = new long[] { 2, -1, 0, 1, 0, 1, -3, 3 }.Select(v => a == 0 ? v % 3 : v).ToArray();
        int[] idxShape = [2, 4];
        var indices = OnnxTensor.FromArray(idx, idxShape);
        var g = SingleNode.Run("GatherElements", [x, indices], attributes: OnnxAttribute.FromInt("axis", axis))[0];
        int Norm(long v) => (int)(v < 0 ? v + shape[a] : v);
        var coords = TestTensors.Coords(idxShape).ToArray();
        var expected = coords.Select((c, i) => a == 0 ? (double)(Norm(idx[i]) * 4 + c[1]) : c[0] * 4 + Norm(idx[i])).ToArray();
        CollectionAssert.AreEqual(expected, TestTensors.Values(g));

        var updates = TestTensors.Of(type, [.. Enumerable.Range(0, 8).Select(i => 100.0 + i)], idxShape);
        foreach (var reduction in new[] { "none", "add", "mul", "max", "min" })
        {
            var s = SingleNode.Run("ScatterElements", [x, indices, updates], opset: 17, attributes: [OnnxAttribute.FromInt("axis", axis), OnnxAttribute.FromString("reduction", reduction)])[0];
            var reference = TestTensors.Values(x);
            for (int i = 0; i < coords.Length; i++)
            {
                int target = a == 0 ? Norm(idx[i]) * 4 + coords[i][1] : coords[i][0] * 4 + Norm(idx[i]);
                double u = 100.0 + i;
                reference[target] = reduction switch { "add" => reference[target] + u, "mul" => reference[target] * u, "max" => Math.Max(reference[target], u), "min" => Math.Min(reference[target], u), _ => u };
            }
            TestTensors.AssertClose(reference, s, 1e-6, reduction);
        }
        CollectionAssert.AreEqual(TestTensors.Values(TestTensors.Sequence(type, shape)), TestTensors.Values(x), "the input must not change");
    }

    [TestMethod]
    public void GatherND_WithBatchDims_And_ScatterND_Reductions()
    {
        // data [2,3,2]; batch_dims 1: indices [2,2,1] select rows of each batch.
        var data = TestTensors.Sequence(DataType.Double, 2, 3, 2);
        var indices = OnnxTensor.FromArray(new long[] { 2, 0, -1, 1 }, 2, 2, 1);
        var y = SingleNode.Run("GatherND", [data, indices], attributes: OnnxAttribute.FromInt("batch_dims", 1))[0];
        CollectionAssert.AreEqual(new[] { 2, 2, 2 }, y.Shape.ToArray());
        CollectionAssert.AreEqual(new double[] { 4, 5, 0, 1, 10, 11, 8, 9 }, TestTensors.Values(y));

        var full = SingleNode.Run("GatherND", [data, OnnxTensor.FromArray(new long[] { 1, 2, 1, 0, 0, 0 }, 2, 3)])[0];
        CollectionAssert.AreEqual(new double[] { 11, 0 }, TestTensors.Values(full));

        var idx = OnnxTensor.FromArray(new long[] { 1, 1, 0, 1 }, 2, 2);
        var upd = OnnxTensor.FromArray(new double[] { 10, 20, 30, 40 }, 2, 2);
        var add = SingleNode.Run("ScatterND", [data, idx, upd], opset: 16, attributes: OnnxAttribute.FromString("reduction", "add"))[0];
        CollectionAssert.AreEqual(new double[] { 0, 1, 32, 43, 4, 5, 6, 7, 18, 29, 10, 11 }, TestTensors.Values(add));
        var none = SingleNode.Run("ScatterND", [data, idx, upd], opset: 13)[0];
        CollectionAssert.AreEqual(new double[] { 0, 1, 30, 40, 4, 5, 6, 7, 10, 20, 10, 11 }, TestTensors.Values(none));
    }

    [TestMethod]
    [DataRow(DataType.Float, 1, 1, true)]
    [DataRow(DataType.Double, 7, 3, true)]
    [DataRow(DataType.Double, 8, 8, false)]
    [DataRow(DataType.Float, 9, 0, false)]
    [DataRow(DataType.Int32, 16, 5, true)]
    [DataRow(DataType.Double, 17, 4, false)]
    public void TopK_OrdersLikeAStableSort(DataType type, int n, int k, bool largest)
    {
        // Values with many ties (i*7 mod 5), in rows of length n along axis 1 of a [2, n] tensor.
        var values = Enumerable.Range(0, 2 * n).Select(i => (double)(i * 7 % 5)).ToArray();
        var x = TestTensors.Of(type, values, 2, n);
        var ys = SingleNode.Run("TopK", [x, TestTensors.Int64s(k)], 2, attributes: [OnnxAttribute.FromInt("axis", -1), OnnxAttribute.FromInt("largest", largest ? 1 : 0)]);
        var expectedValues = new List<double>();
        var expectedIndices = new List<double>();
        for (int r = 0; r < 2; r++)
        {
            var row = values.Skip(r * n).Take(n).Select((v, i) => (v, i));
            var sorted = (largest ? row.OrderByDescending(p => p.v) : row.OrderBy(p => p.v)).Take(k).ToList(); // LINQ sorts stably
            expectedValues.AddRange(sorted.Select(p => p.v));
            expectedIndices.AddRange(sorted.Select(p => (double)p.i));
        }
        CollectionAssert.AreEqual(expectedValues.ToArray(), TestTensors.Values(ys[0]));
        CollectionAssert.AreEqual(expectedIndices.ToArray(), TestTensors.Values(ys[1]));
        Assert.AreEqual(DataType.Int64, ys[1].ElementType);
    }

    [TestMethod]
    public void TopK_AttributeFormAndInvalidK()
    {
        var x = OnnxTensor.FromArray(new float[] { 1, 3, 2, 3 }, 4);
        var ys = SingleNode.Run("TopK", [x], 2, opset: 9, attributes: OnnxAttribute.FromInt("k", 2));
        CollectionAssert.AreEqual(new double[] { 3, 3 }, TestTensors.Values(ys[0]));
        CollectionAssert.AreEqual(new long[] { 1, 3 }, ys[1].ToArray<long>());
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("TopK", [x, TestTensors.Int64s(5)], 2));
    }

    [TestMethod]
    [DataRow(DataType.Float, 0, false, false)]
    [DataRow(DataType.Double, 1, true, false)]
    [DataRow(DataType.Double, 9, false, true)]
    [DataRow(DataType.Int32, 16, true, true)]
    [DataRow(DataType.Int64, 17, false, false)]
    public void CumSum_RunsAlongTheAxis(DataType type, int n, bool exclusive, bool reverse)
    {
        var x = TestTensors.Sequence(type, 2, n);
        foreach (int axis in new[] { 1, -2 })
        {
            var y = SingleNode.Run("CumSum", [x, OnnxTensor.Scalar(axis)], attributes: [OnnxAttribute.FromInt("exclusive", exclusive ? 1 : 0), OnnxAttribute.FromInt("reverse", reverse ? 1 : 0)])[0];
            var v = TestTensors.Values(x);
            var expected = new double[v.Length];
            for (int r = 0; r < 2; r++)
            {
                for (int c = 0; c < n; c++)
                {
                    double sum = 0;
                    // Along axis 1: the row's elements before (or after, reversed) c; along axis 0: the other row.
                    if (axis == 1) for (int j = 0; j < n; j++) { if (reverse ? j > c || (!exclusive && j == c) : j < c || (!exclusive && j == c)) sum += v[r * n + j]; }
                    else for (int q = 0; q < 2; q++) { if (reverse ? q > r || (!exclusive && q == r) : q < r || (!exclusive && q == r)) sum += v[q * n + c]; }
                    expected[r * n + c] = sum;
                }
            }
            CollectionAssert.AreEqual(expected, TestTensors.Values(y), $"axis {axis}");
        }
    }

    // ---- gradients (float64 finite differences) ----

    private static OnnxTensor R(int seed, params int[] shape) => GradCheck.Random(seed, shape);

    [TestMethod]
    [DataRow(0, 17)]
    [DataRow(1, 17)]
    [DataRow(-1, 11)]
    public void Grad_Gather_AccumulatesRepeatedIndices(int axis, int opset) =>
        GradCheck.Op("Gather", [R(31, 3, 4), OnnxTensor.FromArray(new long[] { 2, -1, 0, 2, 1 }, 5)], [OnnxAttribute.FromInt("axis", axis)], opset: opset);

    [TestMethod]
    [DataRow(17)]
    [DataRow(13)]
    public void Grad_GatherElements_And_GatherND(int opset)
    {
        var elementIndices = OnnxTensor.FromArray(new long[] { 2, -1, 0, 1, 0, 1, -3, 2 }, 2, 4);
        GradCheck.Op("GatherElements", [R(32, 3, 4), elementIndices], [OnnxAttribute.FromInt("axis", 0)], opset: opset);
        GradCheck.Op("GatherElements", [R(33, 3, 4), OnnxTensor.FromArray(new long[] { 3, 3, 0, -1 }, 2, 2)], [OnnxAttribute.FromInt("axis", 1)], opset: opset);
        GradCheck.Op("GatherND", [R(34, 3, 2, 2), OnnxTensor.FromArray(new long[] { 1, 0, 1, 0, -1, 1 }, 3, 2)], opset: opset);
        GradCheck.Op("GatherND", [R(35, 2, 3, 2), OnnxTensor.FromArray(new long[] { 2, 0, -1, 1 }, 2, 2, 1)], [OnnxAttribute.FromInt("batch_dims", 1)], opset: opset);
    }

    [TestMethod]
    [DataRow("none", 13)]
    [DataRow("add", 16)]
    public void Grad_ScatterElements_And_ScatterND(string reduction, int opset)
    {
        // Distinct targets for 'none' (a duplicate write makes the overwritten update's gradient ill-defined).
        var attrs = opset >= 16 ? new[] { OnnxAttribute.FromString("reduction", reduction) } : [];
        var indices = OnnxTensor.FromArray(reduction == "add" ? new long[] { 1, 1, 0, 2 } : [1, -1, 0, 2], 1, 4);
        GradCheck.Op("ScatterElements", [R(36, 3, 4), indices, R(37, 1, 4)], [.. attrs, OnnxAttribute.FromInt("axis", 0)], opset: opset);
        var ndIndices = OnnxTensor.FromArray(reduction == "add" ? new long[] { 1, 0, 1 } : [1, -3, 2], 3, 1);
        GradCheck.Op("ScatterND", [R(38, 3, 2), ndIndices, R(39, 3, 2)], attrs, opset: opset);
    }

    [TestMethod]
    [DataRow(1, true, 17)]
    [DataRow(0, false, 17)]
    [DataRow(-1, true, 10)]
    public void Grad_TopK_ScattersValuesBack(int axis, bool largest, int opset)
    {
        var x = R(40, 3, 5);
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("axis", axis) };
        if (opset >= 11) attrs.Add(OnnxAttribute.FromInt("largest", largest ? 1 : 0));
        GradCheck.Op("TopK", [x, TestTensors.Int64s(2)], [.. attrs], outputCount: 2, opset: opset);
    }

    [TestMethod]
    [DataRow(0, 0, 1)]
    [DataRow(1, 0, 0)]
    [DataRow(0, 1, -1)]
    [DataRow(1, 1, 1)]
    public void Grad_CumSum_RunsTheOtherWay(int exclusive, int reverse, int axis) =>
        GradCheck.Op("CumSum", [R(41, 3, 5), OnnxTensor.Scalar((long)axis)], [OnnxAttribute.FromInt("exclusive", exclusive), OnnxAttribute.FromInt("reverse", reverse)]);
}
