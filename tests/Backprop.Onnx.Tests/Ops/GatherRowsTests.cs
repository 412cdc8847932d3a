using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// Gather's row-copy path (int64 or int32 indices: whole rows data[o, indices[j], :] copied at once) against a scalar
/// loop written from the ONNX spec, in float32, float64 and int64, on rank-3 data along every axis, with negative
/// indices, repeated indices, scalar and 2-D index tensors, and empty rows; strings take the general path and must agree.
/// </summary>
[TestClass]
public sealed class GatherRowsTests
{
    [TestMethod]
    [DataRow(DataType.Float, 0, DataType.Int64)]
    [DataRow(DataType.Float, 1, DataType.Int32)]
    [DataRow(DataType.Double, 2, DataType.Int64)]
    [DataRow(DataType.Double, -2, DataType.Int32)]
    [DataRow(DataType.Int64, -1, DataType.Int64)]
    [DataRow(DataType.String, 1, DataType.Int64)]
    public void Gather_MatchesTheSpecLoop(DataType type, int axis, DataType indexType)
    {
        int[] shape = [3, 5, 7];
        var data = TestTensors.Sequence(type, shape);
        int a = axis < 0 ? axis + 3 : axis;
        long[][] cases = [[0], [-1, 2, 2, 0], [shape[a] - 1, -shape[a], 1, 1, 0, -2]];
        foreach (var raw in cases)
        {
            foreach (int[] indexShape in raw.Length == 1 ? new[] { Array.Empty<int>(), new[] { 1 } } : new[] { new[] { raw.Length }, new[] { 2, raw.Length / 2 } })
            {
                var indices = indexType == DataType.Int64 ? OnnxTensor.FromArray(raw, indexShape) : OnnxTensor.FromArray(raw.Select(v => (int)v).ToArray(), indexShape);
                var y = SingleNode.Run("Gather", [data, indices], attributes: OnnxAttribute.FromInt("axis", axis))[0];
                int[] expectedShape = [.. shape[..a], .. indexShape, .. shape[(a + 1)..]];
                CollectionAssert.AreEqual(expectedShape, y.Shape.ToArray(), $"axis {axis}, indices [{string.Join(',', raw)}]");
                CollectionAssert.AreEqual(Reference(shape, a, raw), TestTensors.Values(y), $"{type}, axis {axis}, {indexType} indices [{string.Join(',', raw)}] of shape [{string.Join(',', indexShape)}]");
            }
        }
    }

    [TestMethod]
    public void Gather_EmptyRows_And_EmptyIndices()
    {
        var data = TestTensors.Sequence(DataType.Float, 4, 0);
        var rows = SingleNode.Run("Gather", [data, TestTensors.Int64s(3, -4)], attributes: OnnxAttribute.FromInt("axis", 0))[0];
        CollectionAssert.AreEqual(new[] { 2, 0 }, rows.Shape.ToArray());
        var none = SingleNode.Run("Gather", [TestTensors.Sequence(DataType.Double, 4, 3), OnnxTensor.FromArray(Array.Empty<int>(), 0)], attributes: OnnxAttribute.FromInt("axis", 1))[0];
        CollectionAssert.AreEqual(new[] { 4, 0 }, none.Shape.ToArray());
    }

    [TestMethod]
    [DataRow(5L)]
    [DataRow(-6L)]
    public void Gather_Int32IndicesOutOfRange_AreInvalid(long index) =>
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("Gather",
            [TestTensors.Sequence(DataType.Float, 2, 5), OnnxTensor.FromArray(new[] { 0, (int)index }, 2)], attributes: OnnxAttribute.FromInt("axis", 1)));

    /// <summary>out[i.., j.., k..] = data[i.., wrap(indices[j..]), k..] (ONNX spec "Gather"), on the sequence 0, 1, 2, ….</summary>
    private static double[] Reference(int[] shape, int axis, long[] indices)
    {
        int outer = shape[..axis].Aggregate(1, (p, d) => p * d), inner = shape[(axis + 1)..].Aggregate(1, (p, d) => p * d), dim = shape[axis];
        var result = new List<double>();
        for (int o = 0; o < outer; o++)
            foreach (long raw in indices)
            {
                long i = raw < 0 ? raw + dim : raw;
                for (int k = 0; k < inner; k++) result.Add((o * dim + i) * inner + k);
            }
        return [.. result];
    }
}
