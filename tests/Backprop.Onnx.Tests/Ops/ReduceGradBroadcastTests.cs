using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// ReduceGrad of Sum and Mean (dX = dY, or dY/n, broadcast over the reduced axes; X is not read): the whole-tensor
/// fill (a loss's mean, split over two threads above 64K elements) and the per-group path, against a scalar loop, in
/// float32 and float64, into a stale pooled output buffer.
/// </summary>
[TestClass]
public sealed class ReduceGradBroadcastTests
{
    [TestMethod]
    [DataRow(DataType.Float, "Mean", 1)]
    [DataRow(DataType.Float, "Mean", 2)]
    [DataRow(DataType.Float, "Sum", 2)]
    [DataRow(DataType.Double, "Mean", 2)]
    [DataRow(DataType.Double, "Sum", 1)]
    public void SumAndMean_BroadcastDy(DataType type, string reduction, int threads)
    {
        int[] shape = [37, 41, 45];
        int n = shape[0] * shape[1] * shape[2];
        var x = TestTensors.Of(type, [.. Enumerable.Range(0, n).Select(i => Math.Sin(i))], shape);
        // Whole tensor (keepdims 0: dY is a scalar), then axes (0, 2) kept as size-1 dimensions: dY is [1, 41, 1].
        foreach (long[]? axes in new[] { null, new long[] { 0, 2 } })
        {
            int[] dyShape = axes is null ? [] : [1, shape[1], 1];
            int groups = dyShape.Aggregate(1, (a, b) => a * b), count = n / groups;
            var dyValues = Enumerable.Range(0, groups).Select(j => 0.75 + j).ToArray();
            var dy = TestTensors.Of(type, dyValues, dyShape);
            var model = new OnnxModel { IrVersion = 8 };
            model.OpsetImports.Add(new OpsetImport("", 17));
            model.OpsetImports.Add(new OpsetImport(OpRegistry.BackpropDomain, 1));
            var g = model.Graph;
            g.Inputs.Add(new ValueInfo("dy", type, null));
            g.Inputs.Add(new ValueInfo("x", type, null));
            var node = new Node("ReduceGrad", ["dy", "x"], ["dx"], "reduce_grad", OpRegistry.BackpropDomain);
            node.Attributes.Add(OnnxAttribute.FromString("reduction", reduction));
            node.Attributes.Add(OnnxAttribute.FromInt("keepdims", axes is null ? 0 : 1));
            if (axes is not null) node.Attributes.Add(OnnxAttribute.FromInts("axes", axes));
            g.Nodes.Add(node);
            g.Outputs.Add(new ValueInfo("dx", type, null));
            var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
            var expected = new double[n];
            for (int i = 0; i < n; i++)
            {
                double v = dyValues[axes is null ? 0 : i / shape[2] % shape[1]];
                expected[i] = reduction == "Sum" ? v : type == DataType.Float ? (float)v / (float)count : v / count;
            }
            for (int run = 0; run < 2; run++)
            {
                var dx = plan.Run(new Dictionary<string, OnnxTensor> { ["dy"] = dy, ["x"] = x })["dx"];
                string what = $"{type} {reduction} axes [{string.Join(',', axes ?? [])}] threads {threads} run {run}";
                CollectionAssert.AreEqual(shape, dx.Shape.ToArray(), what);
                CollectionAssert.AreEqual(expected, TestTensors.Values(dx), what);
                plan.Recycle([dx]);
            }
        }
    }
}
