using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// The MatMulGrad kernel (folded, per-batch parallel and broadcast-accumulating paths) against the gradient of
/// numpy.matmul written as scalar loops, in float and double, on one and two threads.
/// </summary>
[TestClass]
public sealed class MatMulGradTests
{
    /// <summary>dA[pa] += dY[p]·B[pb]ᵀ and dB[pb] += A[pa]ᵀ·dY[p] over the broadcast batches, by definition.</summary>
    private static (double[] DA, double[] DB) Reference(double[] dy, double[] a, int[] aShape, double[] b, int[] bShape)
    {
        int[] ad = aShape.Length == 1 ? [1, aShape[0]] : aShape, bd = bShape.Length == 1 ? [bShape[0], 1] : bShape;
        int m = ad[^2], k = ad[^1], n = bd[^1];
        int[] ab = ad[..^2], bb = bd[..^2];
        int rank = Math.Max(ab.Length, bb.Length);
        int Dim(int[] s, int i) => i - (rank - s.Length) >= 0 ? s[i - (rank - s.Length)] : 1;
        var batch = Enumerable.Range(0, rank).Select(i => Math.Max(Dim(ab, i), Dim(bb, i))).ToArray();
        int batches = LinalgTestData.Count(batch);
        var da = new double[a.Length];
        var db = new double[b.Length];
        var coord = new int[rank];
        for (int p = 0; p < batches; p++)
        {
            int rest = p;
            for (int i = rank - 1; i >= 0; i--) { coord[i] = rest % batch[i]; rest /= batch[i]; }
            int Flat(int[] s)
            {
                int f = 0;
                for (int i = 0; i < s.Length; i++) f = f * s[i] + (s[i] == 1 ? 0 : coord[i + rank - s.Length]);
                return f;
            }
            int ao = Flat(ab) * m * k, bo = Flat(bb) * k * n, yo = p * m * n;
            for (int i = 0; i < m; i++)
                for (int q = 0; q < k; q++)
                    for (int j = 0; j < n; j++)
                    {
                        double g = dy[yo + i * n + j];
                        da[ao + i * k + q] += g * b[bo + q * n + j];
                        db[bo + q * n + j] += a[ao + i * k + q] * g;
                    }
        }
        return (da, db);
    }

    private static OnnxTensor[] Run(OnnxTensor dy, OnnxTensor a, OnnxTensor b, int threads, bool[]? used = null)
    {
        var model = SingleNode.Model("MatMulGrad", [dy, a, b], 2, 17, OpRegistry.BackpropDomain);
        if (used is not null)
            for (int i = 1; i >= 0; i--)
                if (!used[i]) model.Graph.Outputs.RemoveAt(i);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
        var result = plan.Run(new Dictionary<string, OnnxTensor> { ["x0"] = dy, ["x1"] = a, ["x2"] = b });
        return [.. Enumerable.Range(0, 2).Select(i => result.TryGetValue($"y{i}", out var t) ? t : null!)];
    }

    private static int[] ProductShape(int[] aShape, int[] bShape)
    {
        int[] ab = aShape.Length > 2 ? aShape[..^2] : [], bb = bShape.Length > 2 ? bShape[..^2] : [];
        int rank = Math.Max(ab.Length, bb.Length);
        int Dim(int[] s, int i) => i - (rank - s.Length) >= 0 ? s[i - (rank - s.Length)] : 1;
        var shape = Enumerable.Range(0, rank).Select(i => Math.Max(Dim(ab, i), Dim(bb, i))).ToList();
        if (aShape.Length > 1) shape.Add(aShape[^2]);
        if (bShape.Length > 1) shape.Add(bShape[^1]);
        return [.. shape];
    }

    [TestMethod]
    [DataRow(new[] { 3, 4 }, new[] { 4, 5 })]                 // one GEMM each
    [DataRow(new[] { 3, 70, 40 }, new[] { 40, 50 })]          // shared B: batches folded into rows
    [DataRow(new[] { 2, 3, 17 }, new[] { 17, 8 })]
    [DataRow(new[] { 5, 17, 33 }, new[] { 5, 33, 19 })]       // per-batch GEMMs, in parallel on two threads
    [DataRow(new[] { 64, 9, 8 }, new[] { 64, 8, 9 })]
    [DataRow(new[] { 2, 1, 9, 13 }, new[] { 3, 13, 7 })]      // both operands broadcast: accumulated in batch order
    [DataRow(new[] { 1, 3, 4 }, new[] { 2, 4, 6 })]
    [DataRow(new[] { 9, 13 }, new[] { 4, 13, 7 })]            // 2-D A shared by a batched B
    [DataRow(new[] { 7 }, new[] { 7, 9 })]                    // 1-D operands (row / column promotion)
    [DataRow(new[] { 5, 7 }, new[] { 7 })]
    [DataRow(new[] { 7 }, new[] { 3, 7, 2 })]
    [DataRow(new[] { 2, 3, 7 }, new[] { 7 })]
    [DataRow(new[] { 16 }, new[] { 16 })]
    [DataRow(new[] { 9, 0 }, new[] { 0, 4 })]                 // empty inner dimension: zero gradients
    [DataRow(new[] { 0, 5 }, new[] { 5, 4 })]
    [DataRow(new[] { 130, 70 }, new[] { 70, 90 })]            // large enough for the blocked, threaded GEMM
    public void MatMulGrad_MatchesScalarReference(int[] aShape, int[] bShape)
    {
        int[] yShape = ProductShape(aShape, bShape);
        var av = LinalgTestData.Random(1, LinalgTestData.Count(aShape));
        var bv = LinalgTestData.Random(2, LinalgTestData.Count(bShape));
        var yv = LinalgTestData.Random(3, LinalgTestData.Count(yShape));
        foreach (var type in LinalgTestData.FloatTypes)
        {
            var a = LinalgTestData.Tensor(type, av, aShape);
            var b = LinalgTestData.Tensor(type, bv, bShape);
            var dy = LinalgTestData.Tensor(type, yv, yShape);
            var (da, db) = Reference(LinalgTestData.Values(dy), LinalgTestData.Values(a), aShape, LinalgTestData.Values(b), bShape);
            foreach (int threads in new[] { 1, 2 })
            {
                string context = $"{type} A [{string.Join(',', aShape)}] B [{string.Join(',', bShape)}] threads {threads}";
                var outs = Run(dy, a, b, threads);
                LinalgTestData.AssertClose(da, aShape, outs[0], type, context + " dA");
                LinalgTestData.AssertClose(db, bShape, outs[1], type, context + " dB");
            }
        }
    }

    [TestMethod]
    public void MatMulGrad_ComputesOnlyTheOutputsReadAndIsThreadCountInvariant()
    {
        int[] aShape = [6, 33, 20], bShape = [6, 20, 17];
        var a = LinalgTestData.Tensor(DataType.Float, LinalgTestData.Random(4, 6 * 33 * 20), aShape);
        var b = LinalgTestData.Tensor(DataType.Float, LinalgTestData.Random(5, 6 * 20 * 17), bShape);
        var dy = LinalgTestData.Tensor(DataType.Float, LinalgTestData.Random(6, 6 * 33 * 17), [6, 33, 17]);
        var both = Run(dy, a, b, 1);
        var onlyB = Run(dy, a, b, 2, [false, true]);
        Assert.IsNull(onlyB[0]);
        CollectionAssert.AreEqual(both[1].ToArray<float>(), onlyB[1].ToArray<float>());
        CollectionAssert.AreEqual(both[0].ToArray<float>(), Run(dy, a, b, 2, [true, false])[0].ToArray<float>());
    }

    [TestMethod]
    public void MatMulGrad_MismatchedGradientIsInvalid()
    {
        var a = OnnxTensor.Zeros(DataType.Float, [3, 4]);
        var b = OnnxTensor.Zeros(DataType.Float, [4, 5]);
        Assert.ThrowsExactly<InvalidInputException>(() => Run(OnnxTensor.Zeros(DataType.Float, [3, 6]), a, b, 1));
        Assert.ThrowsExactly<InvalidInputException>(() => Run(OnnxTensor.Zeros(DataType.Float, [3, 5]), a, OnnxTensor.Zeros(DataType.Float, [3, 5]), 1));
    }
}
