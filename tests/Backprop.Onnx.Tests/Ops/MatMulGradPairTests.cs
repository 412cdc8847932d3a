using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// MatMulGrad computing dA and dB side by side (each GEMM on part of the threads) against the same GEMMs one after the
/// other on all threads (<see cref="MatMulOps.SerialGradients"/>), bit for bit: folded, per-batch and broadcast
/// shapes, float and double, two and three threads.
/// </summary>
[TestClass]
[DoNotParallelize] // toggles the process-wide SerialGradients switch
public sealed class MatMulGradPairTests
{
    [TestMethod]
    [DataRow(new[] { 16, 64, 128 }, new[] { 128, 96 })]       // folded: one tall GEMM each, large enough to thread
    [DataRow(new[] { 3, 70, 41 }, new[] { 41, 53 })]
    [DataRow(new[] { 64, 64, 32 }, new[] { 64, 32, 64 })]     // per-batch small GEMMs
    [DataRow(new[] { 5, 130, 70 }, new[] { 5, 70, 90 })]      // per-batch packed GEMMs
    [DataRow(new[] { 1, 5, 17 }, new[] { 6, 17, 9 })]         // A broadcast: dA accumulates in batch order
    [DataRow(new[] { 2, 1, 9, 13 }, new[] { 3, 13, 7 })]
    public void SideBySideMatchesSerial(int[] aShape, int[] bShape)
    {
        // Y's shape: the broadcast batch axes (right-aligned), then m and n.
        int rank = Math.Max(aShape.Length, bShape.Length) - 2;
        int Dim(int[] s, int i) => i - (rank - (s.Length - 2)) >= 0 ? s[i - (rank - (s.Length - 2))] : 1;
        int[] yShape = [.. Enumerable.Range(0, rank).Select(i => Math.Max(Dim(aShape, i), Dim(bShape, i))), aShape[^2], bShape[^1]];
        foreach (var type in LinalgTestData.FloatTypes)
            foreach (int threads in new[] { 2, 3 })
            {
                var a = LinalgTestData.Tensor(type, LinalgTestData.Random(1, LinalgTestData.Count(aShape)), aShape);
                var b = LinalgTestData.Tensor(type, LinalgTestData.Random(2, LinalgTestData.Count(bShape)), bShape);
                var dy = LinalgTestData.Tensor(type, LinalgTestData.Random(3, LinalgTestData.Count(yShape)), yShape);
                var pair = Run(dy, a, b, threads);
                MatMulOps.SerialGradients = true;
                double[][] serial;
                try
                {
                    serial = Run(dy, a, b, threads);
                }
                finally
                {
                    MatMulOps.SerialGradients = false;
                }
                string context = $"{type} A [{string.Join(',', aShape)}] B [{string.Join(',', bShape)}] threads {threads}";
                CollectionAssert.AreEqual(serial[0], pair[0], context + " dA");
                CollectionAssert.AreEqual(serial[1], pair[1], context + " dB");
            }
    }

    private static double[][] Run(OnnxTensor dy, OnnxTensor a, OnnxTensor b, int threads)
    {
        var model = Support.SingleNode.Model("MatMulGrad", [dy, a, b], 2, 17, OpRegistry.BackpropDomain);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
        var result = plan.Run(new Dictionary<string, OnnxTensor> { ["x0"] = dy, ["x1"] = a, ["x2"] = b });
        return [LinalgTestData.Values(result["y0"]), LinalgTestData.Values(result["y1"])];
    }
}
