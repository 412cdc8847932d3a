using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// Expand keeps the output shape and broadcast strides of its last input shape: one plan fed a sequence of input and
/// target shapes (rank growth, 1s on either side, the identity case, int32 targets, trailing-axes fills) must match a scalar loop over the
/// ONNX broadcasting rule in float32, float64 and int64, and reject incompatible shapes naming both.
/// </summary>
[TestClass]
public sealed class ExpandPlanTests
{
    private static readonly (int[] X, long[] Target)[] Cases =
    [
        ([3, 1], [2, 1, 4]), ([3, 1], [2, 1, 4]), ([1, 4], [3, 1]), ([2, 3], [2, 3]), ([3, 1], [2, 1, 4]), ([1], [5]),
        ([2, 1, 3], [1, 4, 1]), ([], [2, 2]), ([3, 1], [3, 0]),
        // Only trailing axes broadcast (float and double fill one block per input element): GlobalAveragePool's gradient.
        ([2, 3, 1, 1], [2, 3, 4, 5]), ([2, 1], [2, 7]), ([1, 1], [3, 4]), ([3, 1, 1], [3, 1, 4]), ([2, 3, 1, 1], [1, 1, 4, 5]), ([2, 3, 1, 1], [2, 3, 4, 5]),
    ];

    [TestMethod]
    [DataRow(DataType.Float, DataType.Int64)]
    [DataRow(DataType.Double, DataType.Int32)]
    [DataRow(DataType.Int64, DataType.Int64)]
    public void OnePlan_ManyShapes_MatchesTheBroadcastLoop(DataType type, DataType targetType)
    {
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 13));
        model.Graph.Inputs.Add(new ValueInfo("x", type, null));
        model.Graph.Inputs.Add(new ValueInfo("shape", targetType, null));
        model.Graph.Nodes.Add(new Node("Expand", ["x", "shape"], ["y"], "expand"));
        model.Graph.Outputs.Add(new ValueInfo("y", type, null));
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 });
        foreach (var (xShape, target) in Cases)
        {
            var x = TestTensors.Sequence(type, xShape);
            var shape = targetType == DataType.Int64 ? OnnxTensor.FromArray(target, target.Length) : OnnxTensor.FromArray(target.Select(v => (int)v).ToArray(), target.Length);
            var y = plan.Run(new Dictionary<string, OnnxTensor> { ["x"] = x, ["shape"] = shape })["y"];
            var (expected, expectedShape) = Reference(xShape, [.. target.Select(v => (int)v)]);
            string what = $"{type} x [{string.Join(',', xShape)}] to [{string.Join(',', target)}]";
            CollectionAssert.AreEqual(expectedShape, y.Shape.ToArray(), what);
            CollectionAssert.AreEqual(expected, TestTensors.Values(y), what);
            plan.Recycle([y]);
        }
    }

    [TestMethod]
    public void IncompatibleShapes_AreInvalid()
    {
        var e = Assert.ThrowsExactly<InvalidInputException>(() =>
            SingleNode.Run("Expand", [TestTensors.Sequence(DataType.Float, 3, 2), TestTensors.Int64s(4, 3)], opset: 13));
        StringAssert.Contains(e.Message, "[3,2] and [4,3]");
    }

    /// <summary>Output coordinate c reads x at c aligned to the trailing dimensions, 0 where x has size 1 (ONNX Broadcasting.md).</summary>
    private static (double[] Values, int[] Shape) Reference(int[] x, int[] target)
    {
        int rank = Math.Max(x.Length, target.Length);
        var outShape = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int dx = i - (rank - x.Length) >= 0 ? x[i - (rank - x.Length)] : 1, dt = i - (rank - target.Length) >= 0 ? target[i - (rank - target.Length)] : 1;
            outShape[i] = dx == 1 ? dt : dx;
        }
        var values = new List<double>();
        foreach (var c in TestTensors.Coords(outShape))
        {
            var xc = new int[x.Length];
            for (int d = 0; d < x.Length; d++) xc[d] = x[d] == 1 ? 0 : c[d + rank - x.Length];
            values.Add(TestTensors.Flat(xc, x));
        }
        return ([.. values], outShape);
    }
}
