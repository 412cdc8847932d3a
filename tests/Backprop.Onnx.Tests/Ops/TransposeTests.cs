using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// The blocked Transpose kernel (row copies, 8×8 AVX blocks for 4-byte elements, 16×16 tiles, collapsed and size-1 dimensions, the strided fallback beyond
/// rank 8) against the definition y[c] = x[c permuted back], element by element, for 1-, 2-, 4-, 8-byte and string elements.
/// </summary>
[TestClass]
public sealed class TransposeTests
{
    [TestMethod]
    [DataRow(DataType.Float, new[] { 64, 64, 32 }, new long[] { 1, 0, 2 })]     // rows of 32 copied whole
    [DataRow(DataType.Float, new[] { 64, 64, 32 }, new long[] { 1, 2, 0 })]     // tiles of the (64·32) × 64 swap
    [DataRow(DataType.Float, new[] { 128, 512 }, new long[] { 1, 0 })]
    [DataRow(DataType.Double, new[] { 33, 17 }, new long[] { 1, 0 })]           // partial tiles on both sides
    [DataRow(DataType.Float, new[] { 19, 45 }, new long[] { 1, 0 })]            // 8×8 AVX blocks and both edges
    [DataRow(DataType.Float, new[] { 64, 32, 64 }, new long[] { 2, 0, 1 })]     // the larger stride on the output side
    [DataRow(DataType.Int32, new[] { 10, 3, 26 }, new long[] { 2, 1, 0 })]
    [DataRow(DataType.Double, new[] { 5, 19, 1, 23 }, new long[] { 3, 2, 0, 1 })]
    [DataRow(DataType.Int64, new[] { 2, 3, 4, 5 }, new long[] { 0, 2, 1, 3 })]
    [DataRow(DataType.Int32, new[] { 3, 4, 5, 6 }, new long[] { 2, 3, 0, 1 })]  // merged pairs: a 2-D transpose
    [DataRow(DataType.Float16, new[] { 7, 9, 11 }, new long[] { 2, 1, 0 })]
    [DataRow(DataType.Bool, new[] { 17, 3, 18 }, new long[] { 0, 2, 1 })]
    [DataRow(DataType.Bool, new[] { 4, 1, 21 }, new long[] { 2, 1, 0 })]
    [DataRow(DataType.Float, new[] { 1, 1, 1 }, new long[] { 2, 0, 1 })]       // one element
    [DataRow(DataType.Float, new[] { 3, 0, 2 }, new long[] { 2, 0, 1 })]       // empty
    [DataRow(DataType.Float, new[] { 6, 7 }, new long[] { 0, 1 })]             // identity: one copy
    [DataRow(DataType.Double, new[] { 2, 3, 2, 2, 3, 2, 2, 3, 2 }, new long[] { 8, 0, 7, 1, 6, 2, 5, 3, 4 })]  // rank 9: strided fallback
    [DataRow(DataType.Float, new[] { 2, 3, 2, 2, 3, 2, 2, 3 }, new long[] { 7, 0, 6, 1, 5, 2, 4, 3 })]         // rank 8, nothing merges
    [DataRow(DataType.String, new[] { 3, 5 }, new long[] { 1, 0 })]
    [DataRow(DataType.Double, new[] { 3, 4, 5 }, null)]                        // default: reversed
    public void Transpose_MatchesDefinition(DataType type, int[] shape, long[]? perm)
    {
        var x = TestTensors.Sequence(type, shape);
        var p = perm?.Select(v => (int)v).ToArray() ?? [.. Enumerable.Range(0, shape.Length).Reverse()];
        var attributes = perm is null ? [] : new[] { OnnxAttribute.FromInts("perm", perm) };
        var outShape = p.Select(d => shape[d]).ToArray();
        var xv = TestTensors.Values(x);
        var src = new int[shape.Length];
        var expected = TestTensors.Coords(outShape).Select(c =>
        {
            for (int d = 0; d < c.Length; d++) src[p[d]] = c[d];
            return xv[TestTensors.Flat(src, shape)];
        }).ToArray();
        // Twice through one plan: the second run reuses the validated permutation and a pooled, stale output buffer.
        var model = SingleNode.Model("Transpose", [x], 1, 17, "", attributes);
        var plan = Backprop.Onnx.Runtime.ExecutionPlan.Compile(model, new Backprop.Onnx.Runtime.ExecutionOptions { Threads = 1 });
        for (int run = 0; run < 2; run++)
        {
            var y = plan.Run(new Dictionary<string, OnnxTensor> { ["x0"] = x })["y0"];
            CollectionAssert.AreEqual(outShape, y.Shape.ToArray(), $"{type} run {run}");
            CollectionAssert.AreEqual(expected, TestTensors.Values(y), $"{type} [{string.Join(',', shape)}] perm [{string.Join(',', p)}] run {run}");
        }
    }
}
