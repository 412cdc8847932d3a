using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// SliceGrad with several windows (what the autodiff pass emits when several Slices read one value): against a scalar
/// loop that adds each dY where its Slice read X, and against k single-window SliceGrads and a Sum run by our executor,
/// for disjoint covering windows (the q, k, v split), disjoint windows with gaps, overlapping windows, negative steps
/// and empty windows, in float32 and float64, on one and two threads. The pass's merge is checked by finite differences
/// and by ONNX Runtime on the exported (standard-op) gradient graph.
/// </summary>
[TestClass]
public sealed class MultiWindowSliceGradTests
{
    private sealed record Window(long[] Starts, long[] Ends, long[]? Axes, long[]? Steps);

    private static readonly (string Name, int[] Shape, Window[] Windows)[] Cases =
    [
        ("qkv split", [5, 3, 12], [new([0], [4], [2], null), new([4], [8], [2], null), new([8], [12], [2], null)]),
        ("gaps", [6, 4], [new([0], [2], [0], null), new([3], [5], [0], [1])]),
        ("overlap", [4, 6], [new([0], [3], [0], null), new([1], [6], [1], [2]), new([0], [100], [0], null)]),
        ("negative steps cover", [7, 5], [new([6], [-100], [0], [-2]), new([5], [0], [0], [-2]), new([-2], [-8], [0], [-3])]),
        ("empty window", [4, 3], [new([2], [2], [0], null), new([0, 0], [4, 3], null, null)]),
        ("no axes, odd", [3, 5, 7], [new([1, 1], [3, 4], null, null), new([0, 0, 6], [3, 5, 7], null, null)]),
        ("large split", [64, 16, 384], [new([0], [128], [2], null), new([128], [256], [2], null), new([256], [384], [2], null)]),
    ];

    /// <summary>Per axis, the input indices Slice reads, in order (ONNX spec "Slice": clamp, then step).</summary>
    private static int[][] Indices(int[] shape, Window w)
    {
        var window = shape.Select(d => Enumerable.Range(0, d).ToArray()).ToArray();
        for (int i = 0; i < w.Starts.Length; i++)
        {
            int a = (int)(w.Axes is null ? i : w.Axes[i] < 0 ? w.Axes[i] + shape.Length : w.Axes[i]);
            long dim = shape[a], step = w.Steps?[i] ?? 1;
            long s = w.Starts[i] < 0 ? w.Starts[i] + dim : w.Starts[i], e = w.Ends[i] < 0 ? w.Ends[i] + dim : w.Ends[i];
            var picked = new List<int>();
            if (step > 0) for (long j = Math.Clamp(s, 0, dim); j < Math.Clamp(e, 0, dim); j += step) picked.Add((int)j);
            else for (long j = Math.Clamp(s, 0, dim - 1); j > Math.Clamp(e, -1, dim - 1); j += step) picked.Add((int)j);
            window[a] = [.. picked];
        }
        return window;
    }

    /// <summary>
    /// A graph with a k-window SliceGrad ("multi") and, on the same inputs, k single-window SliceGrads and their Sum
    /// ("sum"); inputs shape, dy{j}, starts{j}, ends{j}, axes{j}, steps{j}.
    /// </summary>
    private static (OnnxModel Model, Dictionary<string, OnnxTensor> Feeds, double[][] Dy) Build(DataType type, int[] shape, Window[] windows)
    {
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 17));
        model.OpsetImports.Add(new OpsetImport(OpRegistry.BackpropDomain, 1));
        var g = model.Graph;
        var feeds = new Dictionary<string, OnnxTensor> { ["shape"] = TestTensors.Int64s([.. shape.Select(d => (long)d)]) };
        g.Inputs.Add(new ValueInfo("shape", DataType.Int64, null));
        var multi = new List<string> { "", "shape" };
        var singles = new List<string>();
        var dys = new double[windows.Length][];
        for (int j = 0; j < windows.Length; j++)
        {
            var w = windows[j];
            int[] counts = [.. Indices(shape, w).Select(ix => ix.Length)];
            int n = counts.Aggregate(1, (a, b) => a * b);
            dys[j] = [.. Enumerable.Range(0, n).Select(i => 0.37 * (i + 1) + 1000 * j)];
            string Add(string name, OnnxTensor? t)
            {
                if (t is null) return "";
                feeds[name] = t;
                g.Inputs.Add(new ValueInfo(name, t.ElementType, null));
                return name;
            }
            string dy = Add($"dy{j}", TestTensors.Of(type, dys[j], counts));
            string[] args = [Add($"starts{j}", TestTensors.Int64s(w.Starts)), Add($"ends{j}", TestTensors.Int64s(w.Ends)),
                Add($"axes{j}", w.Axes is null ? null : TestTensors.Int64s(w.Axes)), Add($"steps{j}", w.Steps is null ? null : TestTensors.Int64s(w.Steps))];
            if (j == 0) multi[0] = dy; else multi.Add(dy);
            multi.AddRange(args);
            g.Nodes.Add(new Node("SliceGrad", [dy, "shape", .. args], [$"single{j}"], $"single_grad{j}", OpRegistry.BackpropDomain));
            singles.Add($"single{j}");
        }
        g.Nodes.Add(new Node("SliceGrad", multi, ["multi"], "multi_grad", OpRegistry.BackpropDomain));
        g.Nodes.Add(new Node("Sum", singles, ["sum"], "sum"));
        g.Outputs.Add(new ValueInfo("multi", type, null));
        g.Outputs.Add(new ValueInfo("sum", type, null));
        return (model, feeds, dys);
    }

    [TestMethod]
    [DataRow(DataType.Float, 1)]
    [DataRow(DataType.Float, 2)]
    [DataRow(DataType.Double, 1)]
    [DataRow(DataType.Double, 2)]
    public void MultiWindow_MatchesTheScalarLoop_AndSingleSliceGradsWithSum(DataType type, int threads)
    {
        foreach (var (name, shape, windows) in Cases)
        {
            var (model, feeds, dys) = Build(type, shape, windows);
            var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
            // Twice: the second run takes the kept plans and layout. The split threshold is lowered to 32K elements
            // per chunk, so the large windows are split over two threads.
            for (int run = 0; run < 2; run++)
            {
                DataMovement.t_parallelGrain = 1 << 15;
                IReadOnlyDictionary<string, OnnxTensor> outs;
                try { outs = plan.Run(feeds); }
                finally { DataMovement.t_parallelGrain = 0; }
                var expected = new double[shape.Aggregate(1, (a, b) => a * b)];
                for (int j = 0; j < windows.Length; j++)
                {
                    var ix = Indices(shape, windows[j]);
                    int k = 0;
                    foreach (var c in TestTensors.Coords([.. ix.Select(a => a.Length)]))
                        expected[TestTensors.Flat([.. c.Select((ci, d) => ix[d][ci])], shape)] += type == DataType.Float ? (float)dys[j][k++] : dys[j][k++];
                }
                string what = $"{type} threads {threads} case '{name}' run {run}";
                CollectionAssert.AreEqual(shape, outs["multi"].Shape.ToArray(), what);
                TestTensors.AssertClose(expected, outs["multi"], type == DataType.Float ? 1e-6 : 1e-14, what);
                CollectionAssert.AreEqual(TestTensors.Values(outs["sum"]), TestTensors.Values(outs["multi"]), what + ": differs from SliceGrads + Sum");
            }
        }
    }

    [TestMethod]
    public void OnePlan_RunFromFourThreads_WithAlternatingWindows_MatchesSequentialRuns()
    {
        // Concurrent runs of one plan share the kernel: its kept windows must never mix two runs' arguments.
        Window[] a = [new([0], [4], [2], [1]), new([4], [8], [2], [1]), new([8], [12], [2], [1])];
        Window[] b = [new([6], [-100], [0], [-2]), new([5], [0], [0], [-2]), new([1], [6], [0], [2])];
        var (model, feedsA, _) = Build(DataType.Float, [5, 3, 12], a);
        var (_, feedsB, _) = Build(DataType.Float, [7, 5], b);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 });
        var expectA = TestTensors.Values(plan.Run(feedsA)["multi"]);
        var expectB = TestTensors.Values(plan.Run(feedsB)["multi"]);
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            for (int i = 0; i < 300 && failures.IsEmpty; i++)
            {
                bool useA = (i + t) % 2 == 0;
                var got = TestTensors.Values(plan.Run(useA ? feedsA : feedsB)["multi"]);
                if (!got.SequenceEqual(useA ? expectA : expectB)) failures.Add($"thread {t} iteration {i} ({(useA ? "A" : "B")})");
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.IsEmpty(failures, string.Join("\n", failures));
    }

    [TestMethod]
    public void MultiWindow_PropagatesNonFiniteValues()
    {
        // Overlapping windows add: NaN and ±∞ propagate as through Sum (∞ + −∞ = NaN).
        var (model, feeds, _) = Build(DataType.Float, [2, 3], [new([0], [2], [0], null), new([0], [2], [0], null)]);
        feeds["dy0"] = OnnxTensor.FromArray(new[] { float.NaN, float.PositiveInfinity, 1, 2, 3, float.NegativeInfinity }, 2, 3);
        feeds["dy1"] = OnnxTensor.FromArray(new[] { 1, float.NegativeInfinity, float.PositiveInfinity, 2, 3, 4 }, 2, 3);
        var outs = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 }).Run(feeds);
        var multi = outs["multi"].ToArray<float>();
        CollectionAssert.AreEqual(outs["sum"].ToArray<float>(), multi);
        Assert.IsTrue(float.IsNaN(multi[0]) && float.IsNaN(multi[1]) && float.IsPositiveInfinity(multi[2]) && float.IsNegativeInfinity(multi[5]));
    }

    [TestMethod]
    public void MalformedInputCount_IsRefused()
    {
        Assert.IsNull(ShapeOps.SliceGradWindowCount(3));
        Assert.IsNull(ShapeOps.SliceGradWindowCount(8));
        Assert.IsNull(ShapeOps.SliceGradWindowCount(13));
        Assert.AreEqual(1, ShapeOps.SliceGradWindowCount(5));
        Assert.AreEqual(2, ShapeOps.SliceGradWindowCount(9));
        Assert.AreEqual(2, ShapeOps.SliceGradWindowCount(11));
        Assert.AreEqual(3, ShapeOps.SliceGradWindowCount(14));
        Assert.AreEqual(3, ShapeOps.SliceGradWindowCount(16));
    }

    /// <summary>
    /// x → three Slices (and, in the mixed case, Mul(x, x) too): the pass must emit one three-window SliceGrad for x
    /// (plus one Sum with Mul's cotangents when mixed), whose gradient matches finite differences in float64 and
    /// ONNX Runtime on the exported standard-op graph in float32.
    /// </summary>
    [TestMethod]
    [DataRow(false, false)]
    [DataRow(true, false)]
    [DataRow(false, true)]
    public void Pass_MergesSliceGradsOfOneValue(bool overlapping, bool mixed)
    {
        int[] shape = [4, 3, 6];
        Window[] windows = overlapping
            ? [new([0], [4], [2], null), new([5], [-100], [2], [-2]), new([1, 0], [3, 2], [0, 1], null)]
            : [new([0], [2], [2], null), new([2], [4], [2], null), new([5], [3], [2], [-1])];
        var model = SliceModel(DataType.Double, shape, windows, mixed);
        var options = new GradientOptions { SeedInputs = true };
        options.Wrt.Add("x");
        var gm = ReverseMode.Differentiate(model, options);
        var nodes = gm.Model.Graph.Nodes;
        var grads = nodes.Where(n => n.OpType == "SliceGrad").ToList();
        Assert.HasCount(1, grads, "one SliceGrad for the three Slices");
        Assert.HasCount(16, grads[0].Inputs);
        Assert.AreEqual(mixed ? 1 : 0, nodes.Count(n => n.OpType == "Sum"));

        var x = GradCheck.Random(5, shape);
        var report = GradientCheck.Run(model, new Dictionary<string, OnnxTensor> { ["x"] = x }, new GradientCheckOptions { Seed = 5 });
        Assert.IsTrue(report.Passed, report.ToString());

        var single = SliceModel(DataType.Float, shape, windows, mixed);
        var failures = OrtGradients.Compare(single, new Dictionary<string, OnnxTensor> { ["x"] = Precision.ToSingle(x) }, 5, 1e-5, ["x"]);
        Assert.IsEmpty(failures, string.Join("\n", failures));
    }

    private static OnnxModel SliceModel(DataType type, int[] shape, Window[] windows, bool mixed)
    {
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 17));
        var g = model.Graph;
        g.Inputs.Add(new ValueInfo("x", type, [.. shape.Select(d => Dim.Of(d))]));
        for (int j = 0; j < windows.Length; j++)
        {
            var w = windows[j];
            var inputs = new List<string> { "x", $"starts{j}", $"ends{j}" };
            g.Initializers.Add($"starts{j}", TestTensors.Int64s(w.Starts));
            g.Initializers.Add($"ends{j}", TestTensors.Int64s(w.Ends));
            if (w.Axes is not null || w.Steps is not null) { inputs.Add($"axes{j}"); g.Initializers.Add($"axes{j}", TestTensors.Int64s(w.Axes ?? [.. Enumerable.Range(0, w.Starts.Length).Select(i => (long)i)])); }
            if (w.Steps is not null) { inputs.Add($"steps{j}"); g.Initializers.Add($"steps{j}", TestTensors.Int64s(w.Steps)); }
            g.Nodes.Add(new Node("Slice", inputs, [$"y{j}"], $"slice{j}"));
            g.Outputs.Add(new ValueInfo($"y{j}", type, null));
        }
        if (mixed)
        {
            g.Nodes.Add(new Node("Mul", ["x", "x"], ["sq"], "square"));
            g.Outputs.Add(new ValueInfo("sq", type, null));
        }
        return model;
    }
}
