using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// A Reduce* kernel keeps the layout of its last call (<c>ReducePlan</c>) and must rebuild it whenever the input shape,
/// the axes or keepdims change: one plan is run on a sequence of shapes and axes and compared with a scalar loop over
/// the ONNX spec's definition, in float32 and float64.
/// </summary>
[TestClass]
public sealed class ReducePlanCacheTests
{
    private static readonly (int[] Shape, long[] Axes)[] Cases =
    [
        ([2, 3, 4], [1]), ([2, 3, 4], [1]), ([2, 3, 4], [0, 2]), ([3, 2, 4], [1]), ([2, 3, 4], [-1]), ([5, 1, 3], [1]),
        ([2, 3, 4], []), ([2, 3, 4], [1]), ([7], [0]), ([2, 3, 4], [0, 2]),
    ];

    [TestMethod]
    [DataRow(DataType.Float, "ReduceSum", 1L)]
    [DataRow(DataType.Double, "ReduceSum", 0L)]
    [DataRow(DataType.Float, "ReduceMean", 0L)]
    [DataRow(DataType.Double, "ReduceMax", 1L)]
    public void OnePlan_ManyShapesAndAxes_MatchesTheSpecLoop(DataType type, string op, long keepDims)
    {
        // ReduceSum takes axes as an input from opset 13 (one plan sees every case); the others take an attribute up
        // to opset 17, so each axes list gets a plan of its own that sees every shape.
        bool axesInput = op == "ReduceSum";
        var plans = new Dictionary<string, ExecutionPlan>();
        ExecutionPlan PlanFor(long[] axes)
        {
            string key = axesInput ? "" : string.Join(',', axes);
            if (plans.TryGetValue(key, out var p)) return p;
            var model = new OnnxModel { IrVersion = 8 };
            model.OpsetImports.Add(new OpsetImport("", 17));
            var g = model.Graph;
            g.Inputs.Add(new ValueInfo("x", type, null));
            if (axesInput) g.Inputs.Add(new ValueInfo("axes", DataType.Int64, null));
            var node = new Node(op, axesInput ? ["x", "axes"] : ["x"], ["y"], "reduce");
            node.Attributes.Add(OnnxAttribute.FromInt("keepdims", keepDims));
            if (!axesInput && axes.Length > 0) node.Attributes.Add(OnnxAttribute.FromInts("axes", axes));
            g.Nodes.Add(node);
            g.Outputs.Add(new ValueInfo("y", type, null));
            return plans[key] = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 2 });
        }
        int seed = 0;
        foreach (var (shape, axes) in Cases)
        {
            int n = shape.Aggregate(1, (a, b) => a * b);
            var values = Enumerable.Range(0, n).Select(i => Math.Round(Math.Sin(++seed) * 8, 2)).ToArray();
            var x = type == DataType.Float ? OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape) : OnnxTensor.FromArray(values, shape);
            var plan = PlanFor(axes);
            var feeds = new Dictionary<string, OnnxTensor> { ["x"] = x };
            if (axesInput) feeds["axes"] = OnnxTensor.FromArray(axes, axes.Length);
            var y = plan.Run(feeds)["y"];
            var (expected, expectedShape) = Reference(values, shape, axes, op, keepDims == 1);
            string what = $"{op} {type} shape [{string.Join(',', shape)}] axes [{string.Join(',', axes)}] keepdims {keepDims}";
            CollectionAssert.AreEqual(expectedShape, y.Shape.ToArray(), what);
            var actual = Enumerable.Range(0, (int)y.ElementCount).Select(i => y.GetDouble(i)).ToArray();
            for (int i = 0; i < expected.Length; i++)
                Assert.IsTrue(Math.Abs(actual[i] - expected[i]) <= 1e-4 * (1 + Math.Abs(expected[i])), $"{what}: element {i} is {actual[i]}, expected {expected[i]}");
            plan.Recycle([y]);
        }
    }

    /// <summary>y[kept coords] = reduce over the reduced coords (every axis when axes is empty), row-major.</summary>
    private static (double[] Values, int[] Shape) Reference(double[] x, int[] shape, long[] axes, string op, bool keepDims)
    {
        int rank = shape.Length;
        var reduced = new bool[rank];
        if (axes.Length == 0) Array.Fill(reduced, true);
        foreach (long a in axes) reduced[a < 0 ? a + rank : a] = true;
        var outShape = Enumerable.Range(0, rank).Where(d => !reduced[d] || keepDims).Select(d => reduced[d] ? 1 : shape[d]).ToArray();
        var keptDims = Enumerable.Range(0, rank).Where(d => !reduced[d]).ToArray();
        var groups = new SortedDictionary<int, List<double>>();
        for (int i = 0; i < x.Length; i++)
        {
            int rest = i, key = 0;
            var coord = new int[rank];
            for (int d = rank - 1; d >= 0; d--) { coord[d] = rest % shape[d]; rest /= shape[d]; }
            foreach (int d in keptDims) key = key * shape[d] + coord[d];
            if (!groups.TryGetValue(key, out var list)) groups[key] = list = [];
            list.Add(x[i]);
        }
        var values = groups.Values.Select(v => op switch
        {
            "ReduceSum" => v.Sum(),
            "ReduceMean" => v.Sum() / v.Count,
            _ => v.Max(),
        }).ToArray();
        return (values, outShape);
    }
}
