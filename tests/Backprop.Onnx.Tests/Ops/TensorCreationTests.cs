using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>ConstantOfShape, EyeLike, Range, OneHot and Trilu against values written by hand or scalar loops from the spec.</summary>
[TestClass]
public sealed class TensorCreationTests
{
    [TestMethod]
    [DataRow(DataType.Float, new long[] { 2, 3 })]
    [DataRow(DataType.Double, new long[] { 0, 5 })]
    [DataRow(DataType.Int32, new long[] { })]
    [DataRow(DataType.Bool, new long[] { 17 })]
    public void ConstantOfShape_FillsWithTheValue(DataType type, long[] shape)
    {
        var value = TestTensors.Of(type, [1], 1);
        var y = SingleNode.Run("ConstantOfShape", [TestTensors.Int64s(shape)], attributes: OnnxAttribute.FromTensor("value", value))[0];
        Assert.AreEqual(type, y.ElementType);
        CollectionAssert.AreEqual(shape.Select(d => (int)d).ToArray(), y.Shape.ToArray());
        Assert.IsTrue(TestTensors.Values(y).All(v => v == 1));
        var zeros = SingleNode.Run("ConstantOfShape", [TestTensors.Int64s(shape)])[0];
        Assert.AreEqual(DataType.Float, zeros.ElementType);
        Assert.IsTrue(TestTensors.Values(zeros).All(v => v == 0));
    }

    [TestMethod]
    [DataRow(3, 4, 0, null)]
    [DataRow(4, 3, -2, (int)DataType.Double)]
    [DataRow(1, 9, 5, (int)DataType.Int64)]
    [DataRow(2, 2, 7, null)]
    public void EyeLike_PutsOnesOnTheKthDiagonal(int rows, int cols, int k, int? dtype)
    {
        var x = TestTensors.Sequence(DataType.Float, rows, cols);
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("k", k) };
        if (dtype is { } t) attrs.Add(OnnxAttribute.FromInt("dtype", t));
        var y = SingleNode.Run("EyeLike", [x], attributes: [.. attrs])[0];
        Assert.AreEqual(dtype is { } d ? (DataType)d : DataType.Float, y.ElementType);
        var expected = TestTensors.Coords([rows, cols]).Select(c => c[1] - c[0] == k ? 1.0 : 0.0).ToArray();
        CollectionAssert.AreEqual(expected, TestTensors.Values(y));
    }

    [TestMethod]
    [DataRow(DataType.Float, 1.0, 5.0, 0.5)]
    [DataRow(DataType.Double, 10.0, 3.0, -3.0)]
    [DataRow(DataType.Double, 0.0, 1.0, 2.0)]
    [DataRow(DataType.Int32, 10.0, 3.0, -3.0)]
    [DataRow(DataType.Int64, 5.0, 5.0, 1.0)]
    [DataRow(DataType.Int64, -3.0, 14.0, 1.0)]
    public void Range_CountsFromStartToLimit(DataType type, double start, double limit, double delta)
    {
        OnnxTensor S(double v) => TestTensors.Of(type, [v]).Reshape([]);
        var y = SingleNode.Run("Range", [S(start), S(limit), S(delta)], opset: 11)[0];
        var expected = new List<double>();
        for (double v = start; delta > 0 ? v < limit : v > limit; v += delta) expected.Add(v);
        Assert.AreEqual(type, y.ElementType);
        TestTensors.AssertClose([.. expected], y, 1e-6);
    }

    [TestMethod]
    [DataRow(-1, DataType.Float)]
    [DataRow(0, DataType.Double)]
    [DataRow(1, DataType.Int64)]
    public void OneHot_EncodesAlongAxis(int axis, DataType valueType)
    {
        // Indices [2,2] of depth 3: -1 wraps to 2, 3 and -4 are out of range (all off).
        var indices = OnnxTensor.FromArray(new long[] { 0, -1, 3, -4 }, 2, 2);
        var values = TestTensors.Of(valueType, [-2, 5], 2);
        var y = SingleNode.Run("OneHot", [indices, OnnxTensor.Scalar(3f), values], opset: 11, attributes: OnnxAttribute.FromInt("axis", axis))[0];
        Assert.AreEqual(valueType, y.ElementType);
        int a = axis < 0 ? axis + 3 : axis;
        var shape = new List<int> { 2, 2 };
        shape.Insert(a, 3);
        CollectionAssert.AreEqual(shape.ToArray(), y.Shape.ToArray());
        long[] hot = [0, 2, -1, -1];
        var expected = TestTensors.Coords([.. shape]).Select(c =>
        {
            var rest = c.Where((_, d) => d != a).ToArray();
            return hot[rest[0] * 2 + rest[1]] == c[a] ? 5.0 : -2.0;
        }).ToArray();
        CollectionAssert.AreEqual(expected, TestTensors.Values(y));
    }

    [TestMethod]
    [DataRow(true, 0L, new[] { 4, 5 })]
    [DataRow(false, 0L, new[] { 2, 3, 3 })]
    [DataRow(true, -2L, new[] { 3, 1, 17 })]
    [DataRow(false, 2L, new[] { 9, 8 })]
    [DataRow(true, 100L, new[] { 2, 2 })]
    [DataRow(false, -100L, new[] { 0, 5 })]
    public void Trilu_KeepsOneTriangle(bool upper, long k, int[] shape)
    {
        foreach (var type in new[] { DataType.Float, DataType.Double, DataType.Int64 })
        {
            var x = TestTensors.Sequence(type, shape);
            var y = SingleNode.Run("Trilu", [x, OnnxTensor.Scalar(k)], attributes: OnnxAttribute.FromInt("upper", upper ? 1 : 0))[0];
            var expected = TestTensors.Coords(shape).Select((c, i) =>
            {
                long diff = c[^1] - c[^2];
                return (upper ? diff >= k : diff <= k) ? i : 0.0;
            }).ToArray();
            CollectionAssert.AreEqual(expected, TestTensors.Values(y), $"{type}");
        }
    }

    [TestMethod]
    [DataRow(true, 0L)]
    [DataRow(false, 1L)]
    [DataRow(true, -1L)]
    public void Grad_Trilu_MasksTheCotangent(bool upper, long k) =>
        GradCheck.Op("Trilu", [GradCheck.Random(51, [2, 3, 4]), OnnxTensor.Scalar(k)], [OnnxAttribute.FromInt("upper", upper ? 1 : 0)]);
}
