using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// Every permutation of rank 3 and 4, odd sizes (and size-1 dimensions that collapse), float32, float64, int64 and
/// bool, on one thread and on two (with the split threshold lowered to 32K elements per chunk, tensors above 64K
/// elements are split into per-thread ranges of rows or row blocks):
/// the Transpose kernel against the definition y[c] = x[c permuted back], computed by a scalar loop here.
/// </summary>
[TestClass]
public sealed class TransposeAllPermutationsTests
{
    private static IEnumerable<int[]> Permutations(int n)
    {
        if (n == 1) { yield return [0]; yield break; }
        foreach (var p in Permutations(n - 1))
            for (int k = 0; k < n; k++)
            {
                var list = p.ToList();
                list.Insert(k, n - 1);
                yield return [.. list];
            }
    }

    public static IEnumerable<object[]> Cases()
    {
        foreach (var type in new[] { DataType.Float, DataType.Double, DataType.Int64, DataType.Bool })
        {
            yield return [type, new[] { 37, 41, 45 }];       // 68,265 elements: split over two threads
            yield return [type, new[] { 3, 5, 7 }];
            yield return [type, new[] { 9, 11, 13, 57 }];    // 73,359 elements
            yield return [type, new[] { 1, 9, 1, 17 }];      // size-1 dimensions collapse
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void EveryPermutation_MatchesTheScalarLoop(DataType type, int[] shape)
    {
        var x = TestTensors.Sequence(type, shape);
        var xv = TestTensors.Values(x);
        int rank = shape.Length;
        foreach (var p in Permutations(rank))
        {
            var outShape = p.Select(d => shape[d]).ToArray();
            // y at output coordinate c is x at the coordinate whose dimension p[d] is c[d].
            var inStrides = new long[rank];
            for (long s = 1, d = rank - 1; d >= 0; d--) { inStrides[d] = s; s *= shape[d]; }
            var expected = new double[xv.Length];
            var c = new int[rank];
            for (int i = 0; i < expected.Length; i++)
            {
                long src = 0;
                for (int d = 0; d < rank; d++) src += c[d] * inStrides[p[d]];
                expected[i] = xv[src];
                for (int d = rank - 1; d >= 0 && ++c[d] == outShape[d]; d--) c[d] = 0;
            }
            foreach (int threads in new[] { 1, 2 })
            {
                var model = SingleNode.Model("Transpose", [x], 1, 17, "", OnnxAttribute.FromInts("perm", [.. p.Select(v => (long)v)]));
                var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
                // Twice: the second run writes into a pooled, stale output buffer.
                for (int run = 0; run < 2; run++)
                {
                    DataMovement.t_parallelGrain = 1 << 15;
                    OnnxTensor y;
                    try { y = plan.Run(new Dictionary<string, OnnxTensor> { ["x0"] = x })["y0"]; }
                    finally { DataMovement.t_parallelGrain = 0; }
                    string what = $"{type} [{string.Join(',', shape)}] perm [{string.Join(',', p)}] threads {threads} run {run}";
                    CollectionAssert.AreEqual(outShape, y.Shape.ToArray(), what);
                    CollectionAssert.AreEqual(expected, TestTensors.Values(y), what);
                }
            }
        }
    }
}
