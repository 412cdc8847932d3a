using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>Small tensor helpers for the reduction, softmax, normalization and loss tests.</summary>
internal static class OpTensors
{
    /// <summary>"2,3,4" → [2,3,4]; "" → [] (a scalar).</summary>
    public static int[] Shape(string text) => text.Length == 0 ? [] : [.. text.Split(',').Select(int.Parse)];

    public static long Count(int[] shape) => shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>Seeded values uniform in [lo, hi).</summary>
    public static double[] Random(int seed, long count, double lo = -1, double hi = 1)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, (int)count).Select(_ => lo + (hi - lo) * r.NextDouble())];
    }

    /// <summary>A float or double tensor holding <paramref name="values"/> (rounded to float for Float).</summary>
    public static OnnxTensor Of(DataType type, double[] values, params int[] shape) => type switch
    {
        DataType.Float => OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape),
        DataType.Double => OnnxTensor.FromArray(values, shape),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Asserts shape, type and every element within atol + rtol·|expected| (NaN equals NaN).</summary>
    public static void AssertClose(double[] expected, int[] expectedShape, OnnxTensor actual, DataType type, double rtol = -1, double atol = -1, string what = "")
    {
        if (rtol < 0) rtol = type == DataType.Float ? 1e-5 : 1e-11;
        if (atol < 0) atol = type == DataType.Float ? 1e-5 : 1e-12;
        Assert.AreEqual(type, actual.ElementType, what);
        CollectionAssert.AreEqual(expectedShape, actual.Shape.ToArray(), $"{what} shape");
        for (int i = 0; i < expected.Length; i++)
        {
            double a = actual.GetDouble(i), e = expected[i];
            if (double.IsNaN(e) && double.IsNaN(a)) continue;
            if (a == e) continue;
            Assert.IsLessThanOrEqualTo(atol + rtol * Math.Abs(e), Math.Abs(a - e), $"{what} element {i}: {a:R}, expected {e:R}");
        }
    }

    /// <summary>Row-major coordinates of a flat index.</summary>
    public static int[] Coords(long flat, int[] shape)
    {
        var c = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { c[d] = (int)(flat % shape[d]); flat /= shape[d]; }
        return c;
    }

    /// <summary>Row-major flat index of coordinates.</summary>
    public static long Flat(int[] coords, int[] shape)
    {
        long f = 0;
        for (int d = 0; d < shape.Length; d++) f = f * shape[d] + coords[d];
        return f;
    }
}

[TestClass]
public sealed class ReductionTests
{
    private static readonly DataType[] FloatTypes = [DataType.Float, DataType.Double];

    /// <summary>Scalar reference: groups the input elements by output position, then applies the op's formula.</summary>
    private static double[] Reference(string op, double[] x, int[] shape, bool[] reduced)
    {
        var keptShape = shape.Where((_, d) => !reduced[d]).ToArray();
        var groups = new List<double>[OpTensors.Count(keptShape)];
        for (int j = 0; j < groups.Length; j++) groups[j] = [];
        for (long i = 0; i < x.Length; i++)
        {
            var c = OpTensors.Coords(i, shape);
            groups[OpTensors.Flat([.. c.Where((_, d) => !reduced[d])], keptShape)].Add(x[i]);
        }
        return [.. groups.Select(g => op switch
        {
            "ReduceSum" => g.Sum(),
            "ReduceMean" => g.Sum() / g.Count,
            "ReduceSumSquare" => g.Sum(v => v * v),
            "ReduceL1" => g.Sum(Math.Abs),
            "ReduceL2" => Math.Sqrt(g.Sum(v => v * v)),
            "ReduceLogSum" => Math.Log(g.Sum()),
            "ReduceLogSumExp" => Math.Log(g.Sum(Math.Exp)),
            "ReduceProd" => g.Aggregate(1.0, (a, v) => a * v),
            "ReduceMax" => g.Count == 0 ? double.NegativeInfinity : g.Max(),
            "ReduceMin" => g.Count == 0 ? double.PositiveInfinity : g.Min(),
            _ => throw new ArgumentException(op),
        })];
    }

    private static bool[] Flags(int rank, long[]? axes)
    {
        var r = new bool[rank];
        if (axes is null || axes.Length == 0) Array.Fill(r, true);
        else foreach (var a in axes) r[a < 0 ? a + rank : a] = true;
        return r;
    }

    [TestMethod]
    [DataRow("ReduceSum", "7", "0", 1)]
    [DataRow("ReduceSum", "0", "0", 1)]
    [DataRow("ReduceSum", "1", "", 0)]
    [DataRow("ReduceSum", "2,17", "1", 0)]
    [DataRow("ReduceSum", "16,3", "0", 1)]
    [DataRow("ReduceSum", "2,3,9", "0,2", 1)]
    [DataRow("ReduceSum", "4,0,3", "1", 0)]
    [DataRow("ReduceMean", "3,8", "-1", 1)]
    [DataRow("ReduceMean", "2,3,4,5", "1,3", 0)]
    [DataRow("ReduceMean", "9", "", 1)]
    [DataRow("ReduceSumSquare", "5,16", "1", 0)]
    [DataRow("ReduceSumSquare", "3,4,5", "0,1", 1)]
    [DataRow("ReduceL1", "33", "0", 0)]
    [DataRow("ReduceL1", "3,1,4", "1", 1)]
    [DataRow("ReduceL2", "2,15", "1", 1)]
    [DataRow("ReduceL2", "4,3,2", "-3,-1", 0)]
    [DataRow("ReduceLogSum", "3,4,5", "2", 1)]
    [DataRow("ReduceLogSum", "3,4,5", "0,2", 0)]
    [DataRow("ReduceLogSumExp", "3,17", "1", 0)]
    [DataRow("ReduceLogSumExp", "2,3,2", "0", 1)]
    [DataRow("ReduceProd", "4,7", "1", 1)]
    [DataRow("ReduceProd", "2,3,4", "", 0)]
    [DataRow("ReduceProd", "0,3", "0", 1)]
    [DataRow("ReduceMax", "3,8", "1", 0)]
    [DataRow("ReduceMax", "2,3,4", "0,2", 1)]
    [DataRow("ReduceMax", "0,2", "0", 1)]
    [DataRow("ReduceMin", "5,9", "0", 0)]
    [DataRow("ReduceMin", "2,3,4", "1", 1)]
    public void Reduce_MatchesScalarReference(string op, string shapeText, string axesText, int keepdims)
    {
        var shape = OpTensors.Shape(shapeText);
        long[]? axes = axesText.Length == 0 ? null : [.. axesText.Split(',').Select(long.Parse)];
        var reduced = Flags(shape.Length, axes);
        bool positive = op is "ReduceLogSum" or "ReduceProd";
        var x = OpTensors.Random(11, OpTensors.Count(shape), positive ? 0.5 : -1, positive ? 1.5 : 1);
        var outShape = shape.Select((d, i) => reduced[i] ? (keepdims == 1 ? 1 : -1) : d).Where(d => d >= 0).ToArray();
        foreach (var type in FloatTypes)
        {
            var values = type == DataType.Float ? x.Select(v => (double)(float)v).ToArray() : x;
            var expected = Reference(op, values, shape, reduced);
            var input = OpTensors.Of(type, values, shape);
            var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("keepdims", keepdims) };
            OnnxTensor y;
            if (op == "ReduceSum")
            {
                // opset 13: axes as an input
                var axesTensor = axes is null ? null : OnnxTensor.FromArray(axes, axes.Length);
                y = SingleNode.Run(op, [input, axesTensor], 1, 13, [.. attrs])[0];
                var legacy = new List<OnnxAttribute>(attrs);
                if (axes is not null) legacy.Add(OnnxAttribute.FromInts("axes", axes));
                var y11 = SingleNode.Run(op, [input], 1, 11, [.. legacy])[0];
                OpTensors.AssertClose(expected, outShape, y11, type, what: $"{op} opset 11 {DataTypes.OnnxName(type)}");
            }
            else
            {
                if (axes is not null) attrs.Add(OnnxAttribute.FromInts("axes", axes));
                y = SingleNode.Run(op, [input], 1, 13, [.. attrs])[0];
            }
            OpTensors.AssertClose(expected, outShape, y, type, what: $"{op} {DataTypes.OnnxName(type)}");
        }
    }

    [TestMethod]
    public void ReduceSum_EmptyAxesInput_ReducesAll_OrIsNoopWithFlag()
    {
        var x = OnnxTensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var empty = OnnxTensor.FromArray(Array.Empty<long>(), 0);
        var all = SingleNode.Run("ReduceSum", [x, empty], 1, 13, OnnxAttribute.FromInt("keepdims", 0))[0];
        CollectionAssert.AreEqual(new float[] { 21 }, all.ToArray<float>());
        Assert.AreEqual(0, all.Rank);
        var noop = SingleNode.Run("ReduceSum", [x, empty], 1, 13, OnnxAttribute.FromInt("noop_with_empty_axes", 1))[0];
        CollectionAssert.AreEqual(x.ToArray<float>(), noop.ToArray<float>());
        CollectionAssert.AreEqual(new[] { 2, 3 }, noop.Shape.ToArray());
    }

    [TestMethod]
    [DataRow("ReduceSum", new long[] { 5, 7, 9 })]
    [DataRow("ReduceMean", new long[] { 2, 3, 4 })]
    [DataRow("ReduceProd", new long[] { 4, 10, 18 })]
    [DataRow("ReduceMax", new long[] { 4, 5, 6 })]
    [DataRow("ReduceMin", new long[] { 1, 2, 3 })]
    [DataRow("ReduceSumSquare", new long[] { 17, 29, 45 })]
    [DataRow("ReduceL1", new long[] { 5, 7, 9 })]
    public void Reduce_Integers_AreExact(string op, long[] expected)
    {
        // columns of [[1, 2, 3], [4, 5, 6]] reduced over axis 0 (ReduceMean truncates: 5/2 → 2, 7/2 → 3, 9/2 → 4)
        long[] data = [1, 2, 3, 4, 5, 6];
        var attrs = new[] { OnnxAttribute.FromInts("axes", 0), OnnxAttribute.FromInt("keepdims", 0) };
        var y64 = SingleNode.Run(op, [OnnxTensor.FromArray(data, 2, 3)], 1, 11, attrs)[0];
        CollectionAssert.AreEqual(expected, y64.ToArray<long>());
        var y32 = SingleNode.Run(op, [OnnxTensor.FromArray(data.Select(v => (int)v).ToArray(), 2, 3)], 1, 11, attrs)[0];
        CollectionAssert.AreEqual(expected.Select(v => (int)v).ToArray(), y32.ToArray<int>());
    }

    [TestMethod]
    public void Reduce_RefusesWhatItCannotDo()
    {
        var x = OnnxTensor.FromArray(new float[] { 1, 2 }, 2);
        Assert.ThrowsExactly<UnsupportedOperatorException>(() => SingleNode.Run("ReduceSum", [x], 1, 13, OnnxAttribute.FromInts("axes", 0)));
        Assert.ThrowsExactly<UnsupportedOperatorException>(() => SingleNode.Run("ReduceL2", [OnnxTensor.FromArray(new long[] { 1, 2 }, 2)], 1, 13));
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("ReduceMax", [x], 1, 13, OnnxAttribute.FromInts("axes", 0, -1)));
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("ReduceMax", [x], 1, 13, OnnxAttribute.FromInts("axes", 1)));
    }

    [TestMethod]
    public void Reduce_Float16_ComputesInFloat()
    {
        var x = OnnxTensor.FromArray(new[] { (Half)1, (Half)2.5, (Half)(-0.5), (Half)4 }, 2, 2);
        var y = SingleNode.Run("ReduceMean", [x], 1, 13, OnnxAttribute.FromInts("axes", 1))[0];
        CollectionAssert.AreEqual(new[] { (Half)1.75, (Half)1.75 }, y.ToArray<Half>());
    }

    [TestMethod]
    public void Reduce_ParallelResult_IsBitIdenticalToSerial()
    {
        // 2 x 70000 reduced over each axis: large enough to run on several threads.
        var x = OpTensors.Of(DataType.Float, OpTensors.Random(3, 140_000), 2, 70_000);
        foreach (var axis in new long[] { 0, 1 })
        {
            var model = SingleNode.Model("ReduceSum", [x], 1, 11, "", OnnxAttribute.FromInts("axes", axis));
            var serial = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 }).Run(new Dictionary<string, OnnxTensor> { ["x0"] = x })["y0"];
            var parallel = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 4 }).Run(new Dictionary<string, OnnxTensor> { ["x0"] = x })["y0"];
            Assert.IsTrue(serial.ContentEquals(parallel), $"axis {axis}");
        }
    }

    [TestMethod]
    [DataRow("ArgMax", 0, 1, 0, new long[] { 1, 1, 0 })]
    [DataRow("ArgMax", 1, 0, 0, new long[] { 0, 0 })]
    [DataRow("ArgMax", 1, 0, 1, new long[] { 2, 1 })]
    [DataRow("ArgMin", 1, 1, 0, new long[] { 1, 2 })]
    [DataRow("ArgMin", -1, 1, 1, new long[] { 1, 2 })]
    [DataRow("ArgMin", 0, 0, 1, new long[] { 0, 0, 1 })]
    public void ArgExtreme_HandlesTiesKeepdimsAndLastIndex(string op, long axis, long keepdims, long last, long[] expected)
    {
        // [[3, 1, 3],
        //  [5, 5, 1]]  ties along axis 1 in both rows.
        foreach (var type in FloatTypes)
        {
            var x = OpTensors.Of(type, [3, 1, 3, 5, 5, 1], 2, 3);
            var y = SingleNode.Run(op, [x], 1, 13, OnnxAttribute.FromInt("axis", axis), OnnxAttribute.FromInt("keepdims", keepdims),
                OnnxAttribute.FromInt("select_last_index", last))[0];
            Assert.AreEqual(DataType.Int64, y.ElementType);
            CollectionAssert.AreEqual(expected, y.ToArray<long>());
            int a = (int)(axis < 0 ? axis + 2 : axis);
            int[] shape = keepdims == 1 ? (a == 0 ? [1, 3] : [2, 1]) : (a == 0 ? [3] : [2]);
            CollectionAssert.AreEqual(shape, y.Shape.ToArray());
        }
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(7)]
    [DataRow(8)]
    [DataRow(17)]
    public void ArgMax_MatchesScalarReference_OnLines(int n)
    {
        var values = OpTensors.Random(n, 3 * n);
        var y = SingleNode.Run("ArgMax", [OpTensors.Of(DataType.Double, values, 3, n)], 1, 13, OnnxAttribute.FromInt("axis", 1))[0];
        for (int r = 0; r < 3; r++)
        {
            int best = 0;
            for (int k = 1; k < n; k++) if (values[r * n + k] > values[r * n + best]) best = k;
            Assert.AreEqual(best, y.ToArray<long>()[r]);
        }
    }

    [TestMethod]
    public void ArgMax_NaN_IsTheMaximum_AsInNumPy()
    {
        var x = OnnxTensor.FromArray(new float[] { 1, float.NaN, 3, float.NaN }, 4);
        Assert.AreEqual(1L, SingleNode.Run("ArgMax", [x], 1, 13, OnnxAttribute.FromInt("keepdims", 0))[0].ToArray<long>()[0]);
        Assert.AreEqual(3L, SingleNode.Run("ArgMax", [x], 1, 13, OnnxAttribute.FromInt("keepdims", 0), OnnxAttribute.FromInt("select_last_index", 1))[0].ToArray<long>()[0]);
        var ints = OnnxTensor.FromArray(new int[] { 4, -2, 9, -2 }, 4);
        Assert.AreEqual(3L, SingleNode.Run("ArgMin", [ints], 1, 13, OnnxAttribute.FromInt("select_last_index", 1))[0].ToArray<long>()[0]);
    }

    // ---- gradients: central finite differences in float64 (GradCheck) ----

    [TestMethod]
    [DataRow("ReduceSum", "3,4", "1", 0)]
    [DataRow("ReduceSum", "2,3,4", "0,2", 1)]
    [DataRow("ReduceSum", "5", "", 0)]
    [DataRow("ReduceMean", "2,3,4", "-1", 0)]
    [DataRow("ReduceMean", "4,3", "0", 1)]
    [DataRow("ReduceMean", "2,9", "", 1)]
    [DataRow("ReduceSumSquare", "3,5", "1", 0)]
    [DataRow("ReduceSumSquare", "2,3,2", "0,1", 1)]
    [DataRow("ReduceL1", "3,5", "0", 1)]
    [DataRow("ReduceL1", "2,3,4", "", 0)]
    [DataRow("ReduceL2", "3,5", "1", 0)]
    [DataRow("ReduceL2", "2,3,4", "1,2", 1)]
    [DataRow("ReduceLogSum", "3,4", "1", 1)]
    [DataRow("ReduceLogSum", "2,3,2", "0,2", 0)]
    [DataRow("ReduceLogSumExp", "3,6", "-1", 0)]
    [DataRow("ReduceLogSumExp", "2,3,4", "0", 1)]
    [DataRow("ReduceProd", "3,4", "1", 0)]
    [DataRow("ReduceProd", "2,3,2", "0,2", 1)]
    [DataRow("ReduceMax", "3,5", "1", 1)]
    [DataRow("ReduceMax", "2,3,4", "0,2", 0)]
    [DataRow("ReduceMin", "4,3", "0", 0)]
    [DataRow("ReduceMin", "2,3,4", "", 1)]
    public void Reduce_Gradient_MatchesFiniteDifferences(string op, string shapeText, string axesText, int keepdims)
    {
        var shape = OpTensors.Shape(shapeText);
        long[]? axes = axesText.Length == 0 ? null : [.. axesText.Split(',').Select(long.Parse)];
        // Domains away from kinks: |x| ≥ 0.2 for L1 (random signs), positive sums for LogSum, moderate factors for Prod.
        var values = OpTensors.Random(31, OpTensors.Count(shape), 0.2, 1.5);
        var signs = OpTensors.Random(32, values.Length);
        if (op is not ("ReduceLogSum" or "ReduceProd")) for (int i = 0; i < values.Length; i++) values[i] *= signs[i] < 0 ? -1 : 1;
        var x = OnnxTensor.FromArray(values, shape);
        var keep = OnnxAttribute.FromInt("keepdims", keepdims);
        if (op == "ReduceSum")
        {
            GradCheck.Op(op, [x, axes is null ? null : OnnxTensor.FromArray(axes, axes.Length)], [keep], opset: 13, wrt: [0]);
            GradCheck.Op(op, [x], axes is null ? [keep] : [keep, OnnxAttribute.FromInts("axes", axes)], opset: 11);
        }
        else
        {
            GradCheck.Op(op, [x], axes is null ? [keep] : [keep, OnnxAttribute.FromInts("axes", axes)], opset: 13);
        }
    }

    private static double[] Gradient(string op, OnnxTensor x, OnnxTensor dy, long opset = 13, params OnnxAttribute[] attributes)
    {
        var model = SingleNode.Model(op, [x], 1, opset, "", attributes);
        var gm = Backprop.Onnx.Autodiff.ReverseMode.Differentiate(model, new Backprop.Onnx.Autodiff.GradientOptions { SeedInputs = true });
        var plan = ExecutionPlan.Compile(gm.Model, new ExecutionOptions { Threads = 1 });
        var outs = plan.Run(new Dictionary<string, OnnxTensor> { ["x0"] = x, [gm.Seeds["y0"]] = dy });
        return outs[gm.Gradients["x0"]].ToArray<double>();
    }

    [TestMethod]
    public void ReduceMaxMin_Gradient_SharesTiesEvenly_AsPyTorchAmax()
    {
        // rows [3, 1, 3, 3] and [2, 5, 0, 5]: max ties 3 ways and 2 ways; min is unique.
        var x = OnnxTensor.FromArray(new double[] { 3, 1, 3, 3, 2, 5, 0, 5 }, 2, 4);
        var dy = OnnxTensor.FromArray(new double[] { 0.6, 2 }, 2);
        var axes = OnnxAttribute.FromInts("axes", 1);
        var keep = OnnxAttribute.FromInt("keepdims", 0);
        CollectionAssert.AreEqual(new double[] { 0.2, 0, 0.2, 0.2, 0, 1, 0, 1 }, Gradient("ReduceMax", x, dy, 13, axes, keep).Select(v => Math.Round(v, 12)).ToArray());
        CollectionAssert.AreEqual(new double[] { 0, 0.6, 0, 0, 0, 0, 2, 0 }, Gradient("ReduceMin", x, dy, 13, axes, keep));
        AssertStandardFormAgrees("ReduceMax", x, axes, keep);
        AssertStandardFormAgrees("ReduceMin", x, axes, keep);
    }

    /// <summary>ReduceGrad's standard-op form, exported and run by ONNX Runtime (float32), agrees with our kernel.</summary>
    private static void AssertStandardFormAgrees(string op, OnnxTensor x, params OnnxAttribute[] attributes)
    {
        var x32 = Backprop.Onnx.Autodiff.Precision.ToSingle(x);
        var model = SingleNode.Model(op, [x32], 1, 13, "", attributes);
        var failures = OrtGradients.Compare(model, new Dictionary<string, OnnxTensor> { ["x0"] = x32 }, seed: 5);
        Assert.IsEmpty(failures, string.Join("\n", failures));
    }

    [TestMethod]
    public void ReduceProd_Gradient_IsExactWithZeros()
    {
        // Π of [2, 0, 3] → d = [0, 6, 0]; Π of [0, 0, 4] → d = [0, 0, 0]: products of the others, no 0/0.
        var x = OnnxTensor.FromArray(new double[] { 2, 0, 3, 0, 0, 4 }, 2, 3);
        var dy = OnnxTensor.FromArray(new double[] { 1, 1 }, 2, 1);
        CollectionAssert.AreEqual(new double[] { 0, 6, 0, 0, 0, 0 }, Gradient("ReduceProd", x, dy, 13, OnnxAttribute.FromInts("axes", 1)));
        AssertStandardFormAgrees("ReduceProd", x, OnnxAttribute.FromInts("axes", 1));
        AssertStandardFormAgrees("ReduceProd", OnnxTensor.FromArray(new double[] { 2, 0, 3, 0, 0, 4, 1, 2, 3 }, 3, 3), OnnxAttribute.FromInts("axes", 1), OnnxAttribute.FromInt("keepdims", 0));
    }

    [TestMethod]
    public void ReduceSum_NoopWithEmptyAxes_GradientIsTheSeed()
    {
        var x = OnnxTensor.FromArray(new double[] { 1, 2, 3 }, 3);
        var model = SingleNode.Model("ReduceSum", [x, OnnxTensor.FromArray(Array.Empty<long>(), 0)], 1, 13, "", OnnxAttribute.FromInt("noop_with_empty_axes", 1));
        var gm = Backprop.Onnx.Autodiff.ReverseMode.Differentiate(model, new Backprop.Onnx.Autodiff.GradientOptions { SeedInputs = true, Wrt = { "x0" } });
        var outs = ExecutionPlan.Compile(gm.Model).Run(new Dictionary<string, OnnxTensor>
        {
            ["x0"] = x, ["x1"] = OnnxTensor.FromArray(Array.Empty<long>(), 0), [gm.Seeds["y0"]] = OnnxTensor.FromArray(new double[] { 4, 5, 6 }, 3),
        });
        CollectionAssert.AreEqual(new double[] { 4, 5, 6 }, outs[gm.Gradients["x0"]].ToArray<double>());
    }
}

