using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// Batched MatMul and MatMulGrad on the small-GEMM path (attention-sized products) against the same kernels forced
/// through the packed GEMM (<see cref="MatMulOps.BatchedGemm{T}.ForceBlocked"/>), bit for bit above the packed GEMM's
/// plain-loop size, and against a scalar loop,
/// in float and double, on one and two threads, with broadcast batches and non-finite inputs.
/// </summary>
[TestClass]
[DoNotParallelize] // toggles the process-wide ForceBlocked switch
public sealed class MatMulSmallBatchTests
{
    [TestMethod]
    [DataRow(new[] { 64, 64, 32 }, new[] { 64, 32, 64 })]       // attention Q·Kᵀ: 64 heads × 64×64×32
    [DataRow(new[] { 64, 64, 64 }, new[] { 64, 64, 32 })]       // attention P·V
    [DataRow(new[] { 4, 2, 13, 9 }, new[] { 4, 2, 9, 21 })]      // odd sizes, two batch axes
    [DataRow(new[] { 1, 5, 17 }, new[] { 6, 17, 9 })]           // A broadcast: dA accumulates over the batches
    [DataRow(new[] { 6, 5, 17 }, new[] { 1, 17, 9 })]           // B broadcast (one batch axis of 1): dB accumulates
    [DataRow(new[] { 2, 1, 9, 13 }, new[] { 3, 13, 7 })]        // both broadcast
    [DataRow(new[] { 9, 13 }, new[] { 4, 13, 7 })]              // 2-D A shared by a batched B
    public void MatchesPackedPathAndScalarLoop(int[] aShape, int[] bShape)
    {
        foreach (var type in LinalgTestData.FloatTypes)
            foreach (int threads in new[] { 1, 2 })
            {
                var a = LinalgTestData.Tensor(type, LinalgTestData.Random(1, LinalgTestData.Count(aShape)), aShape);
                var b = LinalgTestData.Tensor(type, LinalgTestData.Random(2, LinalgTestData.Count(bShape)), bShape);
                string context = $"{type} A [{string.Join(',', aShape)}] B [{string.Join(',', bShape)}] threads {threads}";
                var y = Both(() => LinalgTestData.Run("MatMul", [a, b], threads)[0]);
                var dy = LinalgTestData.Tensor(type, LinalgTestData.Random(3, y.Shape.Aggregate(1, (p, d) => p * d)), y.Shape);
                var grads = Both(() => Grad(dy, a, b, threads));
                // The packed GEMM sends products of at most 4096 multiply-adds to its plain loop (another summation
                // order); above that both paths run the same micro-kernels in the same order.
                if ((long)aShape[^2] * aShape[^1] * bShape[^1] > 4096)
                {
                    CollectionAssert.AreEqual(y.Packed, y.Small, context + " Y");
                    CollectionAssert.AreEqual(grads.Packed, grads.Small, context + " dA, dB");
                }
                AssertScalar(LinalgTestData.Values(a), aShape, LinalgTestData.Values(b), bShape, LinalgTestData.Values(dy), y.Small, grads.Small, type, context);
            }
    }

    [TestMethod]
    public void NonFiniteInputsPropagate()
    {
        int[] aShape = [8, 64, 32], bShape = [8, 32, 64];
        foreach (var type in LinalgTestData.FloatTypes)
        {
            var av = LinalgTestData.Random(4, LinalgTestData.Count(aShape));
            var bv = LinalgTestData.Random(5, LinalgTestData.Count(bShape));
            av[(3 * 64 + 10) * 32 + 5] = double.NaN;                 // batch 3, row 10
            bv[(6 * 32 + 7) * 64 + 50] = double.PositiveInfinity;    // batch 6, column 50
            var y = LinalgTestData.Run("MatMul", [LinalgTestData.Tensor(type, av, aShape), LinalgTestData.Tensor(type, bv, bShape)], 2)[0];
            for (int p = 0; p < 8; p++)
                for (int i = 0; i < 64; i++)
                    for (int j = 0; j < 64; j++)
                    {
                        double v = y.GetDouble((p * 64 + i) * 64 + j);
                        string at = $"{type} Y[{p},{i},{j}] = {v}";
                        if (p == 3 && i == 10) Assert.IsTrue(double.IsNaN(v), at);
                        else if (p == 6 && j == 50) Assert.IsTrue(double.IsInfinity(v) || double.IsNaN(v), at);
                        else Assert.IsTrue(double.IsFinite(v), at);
                    }
        }
    }

    private static OnnxTensor Grad(OnnxTensor dy, OnnxTensor a, OnnxTensor b, int threads)
    {
        var model = Support.SingleNode.Model("MatMulGrad", [dy, a, b], 2, 17, OpRegistry.BackpropDomain);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
        var result = plan.Run(new Dictionary<string, OnnxTensor> { ["x0"] = dy, ["x1"] = a, ["x2"] = b });
        // dA and dB side by side in one tensor, so one comparison covers both.
        var values = LinalgTestData.Values(result["y0"]).Concat(LinalgTestData.Values(result["y1"])).ToArray();
        return OnnxTensor.FromArray(values, values.Length);
    }

    private static (double[] Small, double[] Packed, int[] Shape) Both(Func<OnnxTensor> run)
    {
        var small = run();
        MatMulOps.BatchedGemm<float>.ForceBlocked = MatMulOps.BatchedGemm<double>.ForceBlocked = true;
        try
        {
            return (LinalgTestData.Values(small), LinalgTestData.Values(run()), small.Shape.ToArray());
        }
        finally
        {
            MatMulOps.BatchedGemm<float>.ForceBlocked = MatMulOps.BatchedGemm<double>.ForceBlocked = false;
        }
    }

    /// <summary>Y, dA and dB by definition (numpy.matmul with broadcast batches; dA, dB summed over broadcast axes).</summary>
    private static void AssertScalar(double[] a, int[] aShape, double[] b, int[] bShape, double[] dy, double[] y, double[] grads, DataType type, string context)
    {
        int m = aShape[^2], k = aShape[^1], n = bShape[^1];
        int[] ab = aShape[..^2], bb = bShape[..^2];
        int rank = Math.Max(ab.Length, bb.Length);
        int Dim(int[] s, int i) => i - (rank - s.Length) >= 0 ? s[i - (rank - s.Length)] : 1;
        var batch = Enumerable.Range(0, rank).Select(i => Math.Max(Dim(ab, i), Dim(bb, i))).ToArray();
        int batches = LinalgTestData.Count(batch);
        var ey = new double[batches * m * n];
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
                for (int j = 0; j < n; j++)
                    for (int q = 0; q < k; q++)
                    {
                        ey[yo + i * n + j] += a[ao + i * k + q] * b[bo + q * n + j];
                        da[ao + i * k + q] += dy[yo + i * n + j] * b[bo + q * n + j];
                        db[bo + q * n + j] += a[ao + i * k + q] * dy[yo + i * n + j];
                    }
        }
        double tol = (type == DataType.Double ? 1e-12 : 1e-5) * 10;
        void Check(double[] expected, double[] actual, int offset, string what)
        {
            for (int i = 0; i < expected.Length; i++)
                Assert.IsTrue(Math.Abs(actual[offset + i] - expected[i]) <= tol * (1 + Math.Abs(expected[i])), $"{context} {what}[{i}] is {actual[offset + i]}, expected {expected[i]}");
        }
        Check(ey, y, 0, "Y");
        Check(da, grads, 0, "dA");
        Check(db, grads, da.Length, "dB");
    }
}
