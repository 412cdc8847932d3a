using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// SliceGrad keeps the window of its last arguments: one plan fed a sequence of shapes, starts, ends, axes and steps
/// (present or absent, negative, clamped, repeated) must match a scalar loop that writes dY where Slice read X and
/// zeros elsewhere, in float32 and float64.
/// </summary>
[TestClass]
public sealed class SliceGradPlanTests
{
    private static readonly (int[] Shape, long[] Starts, long[] Ends, long[]? Axes, long[]? Steps)[] Cases =
    [
        ([4, 6], [1], [3], [0], null), ([4, 6], [1], [3], [0], null), ([4, 6], [0, 1], [4, 6], [1, 0], [2, 1]),
        ([4, 6], [-1], [-5], [1], [-2]), ([3, 5, 2], [0, 1], [2, 100], null, null), ([4, 6], [1], [3], [0], null),
        ([4, 6], [1], [3], [1], null), ([5], [4], [-100], [0], [-1]),
    ];

    [TestMethod]
    [DataRow(DataType.Float)]
    [DataRow(DataType.Double)]
    public void OnePlan_ManyArguments_MatchesTheScatterLoop(DataType type)
    {
        // One plan per set of optional inputs present (axes; axes and steps; neither), each fed several argument sets.
        var plans = new Dictionary<int, ExecutionPlan>();
        ExecutionPlan PlanFor(int inputs)
        {
            if (plans.TryGetValue(inputs, out var p)) return p;
            var model = new OnnxModel { IrVersion = 8 };
            model.OpsetImports.Add(new OpsetImport("", 17));
            model.OpsetImports.Add(new OpsetImport(OpRegistry.BackpropDomain, 1));
            var g = model.Graph;
            string[] names = [.. new[] { "dy", "shape", "starts", "ends", "axes", "steps" }.Take(inputs)];
            foreach (var name in names) g.Inputs.Add(new ValueInfo(name, name == "dy" ? type : DataType.Int64, null));
            g.Nodes.Add(new Node("SliceGrad", names, ["dx"], "slice_grad", OpRegistry.BackpropDomain));
            g.Outputs.Add(new ValueInfo("dx", type, null));
            return plans[inputs] = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 });
        }
        foreach (var (shape, starts, ends, axes, steps) in Cases)
        {
            var window = Window(shape, starts, ends, axes, steps);
            int[] counts = [.. window.Select(w => w.Length)];
            int n = counts.Aggregate(1, (a, b) => a * b);
            var dy = TestTensors.Of(type, [.. Enumerable.Range(1, n).Select(i => (double)i)], counts);
            var feeds = new Dictionary<string, OnnxTensor>
            {
                ["dy"] = dy, ["shape"] = TestTensors.Int64s([.. shape.Select(d => (long)d)]),
                ["starts"] = TestTensors.Int64s(starts), ["ends"] = TestTensors.Int64s(ends),
            };
            if (axes is not null) feeds["axes"] = TestTensors.Int64s(axes);
            if (steps is not null) feeds["steps"] = TestTensors.Int64s(steps);
            var dx = PlanFor(4 + (axes is null ? 0 : 1) + (steps is null ? 0 : 1)).Run(feeds)["dx"];
            var expected = new double[shape.Aggregate(1, (a, b) => a * b)];
            int k = 0;
            foreach (var c in TestTensors.Coords(counts))
                expected[TestTensors.Flat([.. c.Select((ci, d) => window[d][ci])], shape)] = ++k;
            string what = $"{type} shape [{string.Join(',', shape)}] starts [{string.Join(',', starts)}] ends [{string.Join(',', ends)}] axes [{string.Join(',', axes ?? [])}] steps [{string.Join(',', steps ?? [])}]";
            CollectionAssert.AreEqual(shape, dx.Shape.ToArray(), what);
            CollectionAssert.AreEqual(expected, TestTensors.Values(dx), what);
        }
    }

    /// <summary>Per axis, the input indices Slice reads, in order (ONNX spec "Slice": clamp, then step).</summary>
    private static int[][] Window(int[] shape, long[] starts, long[] ends, long[]? axes, long[]? steps)
    {
        var window = shape.Select(d => Enumerable.Range(0, d).ToArray()).ToArray();
        for (int i = 0; i < starts.Length; i++)
        {
            int a = (int)(axes is null ? i : axes[i] < 0 ? axes[i] + shape.Length : axes[i]);
            long dim = shape[a], step = steps?[i] ?? 1, s = starts[i] < 0 ? starts[i] + dim : starts[i], e = ends[i] < 0 ? ends[i] + dim : ends[i];
            var picked = new List<int>();
            if (step > 0) for (long j = Math.Clamp(s, 0, dim); j < Math.Clamp(e, 0, dim); j += step) picked.Add((int)j);
            else for (long j = Math.Clamp(s, 0, dim - 1); j > Math.Clamp(e, -1, dim - 1); j += step) picked.Add((int)j);
            window[a] = [.. picked];
        }
        return window;
    }
}
