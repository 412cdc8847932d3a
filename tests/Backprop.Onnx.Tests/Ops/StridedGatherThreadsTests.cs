using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// The strided gather (Slice, Expand, Tile, Pad) split into per-thread row ranges (threshold lowered to 32K elements per chunk): on two threads
/// it must write exactly what one thread writes (the unsplit loop), for float32, float64, int64 and bool; Slice, with
/// positive and negative steps, is also checked against a scalar loop here.
/// </summary>
[TestClass]
public sealed class StridedGatherThreadsTests
{
    private static OnnxTensor[] Run(string op, OnnxTensor?[] inputs, int threads, params OnnxAttribute[] attributes)
    {
        var model = SingleNode.Model(op, inputs, 1, 17, "", attributes);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
        var feeds = new Dictionary<string, OnnxTensor>();
        for (int i = 0; i < inputs.Length; i++) if (inputs[i] is { } t) feeds[$"x{i}"] = t;
        // Twice: the second run writes into a pooled, stale buffer. The split threshold is lowered to 32K elements
        // per chunk, so these tensors are split.
        DataMovement.t_parallelGrain = 1 << 15;
        try { return [plan.Run(feeds)["y0"], plan.Run(feeds)["y0"]]; }
        finally { DataMovement.t_parallelGrain = 0; }
    }

    private static void AssertSameOnTwoThreads(string what, string op, OnnxTensor?[] inputs, params OnnxAttribute[] attributes)
    {
        var one = Run(op, inputs, 1, attributes)[0];
        foreach (var two in Run(op, inputs, 2, attributes))
        {
            CollectionAssert.AreEqual(one.Shape.ToArray(), two.Shape.ToArray(), what);
            CollectionAssert.AreEqual(TestTensors.Values(one), TestTensors.Values(two), what);
        }
    }

    [TestMethod]
    [DataRow(DataType.Float)]
    [DataRow(DataType.Double)]
    [DataRow(DataType.Int64)]
    [DataRow(DataType.Bool)]
    public void TwoThreads_WriteWhatOneThreadWrites(DataType type)
    {
        var x = TestTensors.Sequence(type, 33, 17, 385);
        var i64 = TestTensors.Int64s;
        AssertSameOnTwoThreads($"{type} Slice q/k/v", "Slice", [x, i64(128), i64(256), i64(2)]);
        AssertSameOnTwoThreads($"{type} Slice steps", "Slice", [x, i64(-1, 1, 3), i64(-100, 17, 380), i64(0, 1, 2), i64(-1, 2, 1)]);
        AssertSameOnTwoThreads($"{type} Expand", "Expand", [TestTensors.Sequence(type, 33, 1, 385), i64(33, 17, 385)]);
        AssertSameOnTwoThreads($"{type} Tile", "Tile", [TestTensors.Sequence(type, 11, 17, 77), i64(3, 1, 5)]);
        AssertSameOnTwoThreads($"{type} Pad", "Pad", [x, i64(1, 0, 3, 2, 1, 4)]);
    }

    [TestMethod]
    [DataRow(DataType.Float)]
    [DataRow(DataType.Double)]
    public void Slice_OnTwoThreads_MatchesTheScalarLoop(DataType type)
    {
        int[] shape = [33, 17, 385];
        var x = TestTensors.Sequence(type, shape);
        var xv = TestTensors.Values(x);
        // Axis 0 from the back with step -2, axis 2 [3, 380) with step 1.
        var y = Run("Slice", [x, TestTensors.Int64s(-1, 3), TestTensors.Int64s(-100, 380), TestTensors.Int64s(0, 2), TestTensors.Int64s(-2, 1)], 2)[1];
        int[] rows = [.. Enumerable.Range(0, 17).Select(k => 32 - 2 * k)];
        var expected = new List<double>();
        foreach (int a in rows)
            for (int b = 0; b < 17; b++)
                for (int c = 3; c < 380; c++) expected.Add(xv[(a * 17 + b) * 385 + c]);
        CollectionAssert.AreEqual(new[] { 17, 17, 377 }, y.Shape.ToArray());
        CollectionAssert.AreEqual(expected, TestTensors.Values(y));
    }
}
