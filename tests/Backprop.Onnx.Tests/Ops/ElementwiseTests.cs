using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// Elementwise ops against scalar reference loops written here (System.Math in double), hand-computed values and the
/// broadcasting rule applied coordinate by coordinate; float32 and float64, lengths around the vector widths.
/// </summary>
[TestClass]
public sealed partial class ElementwiseTests
{
    internal static readonly int[] Lengths = [0, 1, 7, 8, 9, 15, 16, 17, 33];

    [TestMethod]
    [DataRow("Exp", -5.0, 5.0)]
    [DataRow("Log", 0.01, 10.0)]
    [DataRow("Sqrt", 0.0, 10.0)]
    [DataRow("Reciprocal", 0.1, 5.0)]
    [DataRow("Sin", -3.0, 3.0)]
    [DataRow("Cos", -3.0, 3.0)]
    [DataRow("Tan", -1.5, 1.5)]
    [DataRow("Asin", -0.99, 0.99)]
    [DataRow("Acos", -0.99, 0.99)]
    [DataRow("Atan", -4.0, 4.0)]
    [DataRow("Sinh", -3.0, 3.0)]
    [DataRow("Cosh", -3.0, 3.0)]
    [DataRow("Tanh", -4.0, 4.0)]
    [DataRow("Asinh", -4.0, 4.0)]
    [DataRow("Acosh", 1.0, 10.0)]
    [DataRow("Atanh", -0.99, 0.99)]
    [DataRow("Ceil", -5.0, 5.0)]
    [DataRow("Floor", -5.0, 5.0)]
    [DataRow("Abs", -5.0, 5.0)]
    [DataRow("Neg", -5.0, 5.0)]
    [DataRow("Sign", -2.0, 2.0)]
    [DataRow("Erf", -4.0, 4.0)]
    [DataRow("Sigmoid", -10.0, 10.0)]
    public void UnaryMath_MatchesScalarReference(string opType, double lo, double hi)
    {
        Func<double, double> f = opType switch
        {
            "Exp" => Math.Exp, "Log" => Math.Log, "Sqrt" => Math.Sqrt, "Reciprocal" => v => 1 / v,
            "Sin" => Math.Sin, "Cos" => Math.Cos, "Tan" => Math.Tan, "Asin" => Math.Asin, "Acos" => Math.Acos,
            "Atan" => Math.Atan, "Sinh" => Math.Sinh, "Cosh" => Math.Cosh, "Tanh" => Math.Tanh, "Asinh" => Math.Asinh,
            "Acosh" => Math.Acosh, "Atanh" => Math.Atanh, "Ceil" => Math.Ceiling, "Floor" => Math.Floor, "Abs" => Math.Abs,
            "Neg" => v => -v, "Sign" => v => Math.Sign(v), "Erf" => ReferenceErf, "Sigmoid" => v => 1 / (1 + Math.Exp(-v)),
            _ => throw new ArgumentException(opType),
        };
        foreach (int n in Lengths)
        {
            int seed = n * 31 + opType.Length;
            var x = Ref.Uniform(seed, n, lo, hi);
            var y64 = SingleNode.Run(opType, [OnnxTensor.FromArray(x, n)])[0];
            Ref.AssertClose(x.Select(f).ToArray(), y64, 1e-12, $"{opType} float64 n={n} seed={seed}");
            var x32 = x.Select(v => (float)v).ToArray();
            var y32 = SingleNode.Run(opType, [OnnxTensor.FromArray(x32, n)])[0];
            Ref.AssertClose(x32.Select(v => (double)(float)f(v)).ToArray(), y32, 2e-6, $"{opType} float32 n={n} seed={seed}");
        }
    }

    /// <summary>erf by the Taylor series at 40 terms in decimal, independent of the kernel's method (|x| &lt;= 4 here).</summary>
    private static double ReferenceErf(double x)
    {
        decimal z = (decimal)x, term = z, sum = z, z2 = z * z;
        for (int n = 1; n < 200 && term != 0; n++)
        {
            term = -term * z2 / n;
            sum += term / (2 * n + 1);
        }
        return (double)(sum * 1.1283791670955125738961589031m);
    }

    [TestMethod]
    [DataRow(0.5, 0.52049987781304654)]
    [DataRow(1.0, 0.84270079294971487)]
    [DataRow(-2.0, -0.99532226501895273)]
    [DataRow(3.0, 0.99997790950300141)]
    [DataRow(4.5, 0.99999999980338394)]
    [DataRow(7.0, 1.0)]
    [DataRow(0.0, 0.0)]
    public void Erf_MatchesTabulatedValues(double x, double expected)
    {
        var y = SingleNode.Run("Erf", [OnnxTensor.Scalar(x)])[0];
        Assert.AreEqual(expected, y.ToArray<double>()[0], 1e-15);
    }

    [TestMethod]
    public void Round_IsHalfToEven()
    {
        float[] x = [0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4f, -2.6f, 0f];
        float[] expected = [0f, 2f, 2f, -0f, -2f, -2f, 2f, -3f, 0f];
        CollectionAssert.AreEqual(expected, SingleNode.Run("Round", [OnnxTensor.FromArray(x, x.Length)])[0].ToArray<float>());
    }

    [TestMethod]
    public void Sign_KeepsNaN_AndWorksOnIntegers()
    {
        var f = SingleNode.Run("Sign", [OnnxTensor.FromArray(new[] { -3.0, 0.0, 2.0, double.NaN }, 4)])[0].ToArray<double>();
        CollectionAssert.AreEqual(new[] { -1.0, 0.0, 1.0 }, f[..3]);
        Assert.IsTrue(double.IsNaN(f[3]));
        CollectionAssert.AreEqual(new[] { -1, 0, 1 }, SingleNode.Run("Sign", [OnnxTensor.FromArray(new[] { -7, 0, 9 }, 3)])[0].ToArray<int>());
    }

    [TestMethod]
    public void AbsAndNeg_OnIntegers()
    {
        CollectionAssert.AreEqual(new sbyte[] { 5, 0, 7, -128 }, SingleNode.Run("Abs", [OnnxTensor.FromArray(new sbyte[] { -5, 0, 7, -128 }, 4)])[0].ToArray<sbyte>());
        CollectionAssert.AreEqual(new byte[] { 200, 0 }, SingleNode.Run("Abs", [OnnxTensor.FromArray(new byte[] { 200, 0 }, 2)])[0].ToArray<byte>());
        CollectionAssert.AreEqual(new long[] { 5, -3, 0 }, SingleNode.Run("Neg", [OnnxTensor.FromArray(new long[] { -5, 3, 0 }, 3)])[0].ToArray<long>());
    }

    [TestMethod]
    public void Float16_ComputesThroughFloatAndRounds()
    {
        Half[] x = [(Half)0.5, (Half)(-1.25), (Half)2, (Half)3.1];
        var exp = SingleNode.Run("Exp", [OnnxTensor.FromArray(x, 4)])[0].ToArray<Half>();
        for (int i = 0; i < 4; i++) Assert.AreEqual((Half)Math.Exp((double)x[i]), exp[i], $"element {i}");
        var sum = SingleNode.Run("Add", [OnnxTensor.FromArray(x, 4), OnnxTensor.Scalar((Half)1)])[0].ToArray<Half>();
        for (int i = 0; i < 4; i++) Assert.AreEqual((Half)((double)x[i] + 1), sum[i], $"element {i}");
    }

    [TestMethod]
    public void Exp_OfInt32_IsUnsupportedWhenCompiled()
    {
        var model = SingleNode.Model("Exp", [OnnxTensor.FromArray(new[] { 1, 2 }, 2)]);
        var e = Assert.ThrowsExactly<UnsupportedOperatorException>(() => ExecutionPlan.Compile(model));
        StringAssert.Contains(e.Message, "int32");
    }

    [TestMethod]
    public void LargeBroadcast_IsTheSameOnOneAndFourThreads()
    {
        int rows = 300, cols = 517;
        var a = Ref.Uniform(7, rows * cols, -1, 1);
        var b = Ref.Uniform(8, cols, -1, 1);
        var model = SingleNode.Model("Mul", [OnnxTensor.FromArray(a, rows, cols), OnnxTensor.FromArray(b, cols)]);
        var feeds = new Dictionary<string, OnnxTensor> { ["x0"] = OnnxTensor.FromArray(a, rows, cols), ["x1"] = OnnxTensor.FromArray(b, cols) };
        var one = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 }).Run(feeds)["y0"].ToArray<double>();
        var four = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 4 }).Run(feeds)["y0"].ToArray<double>();
        CollectionAssert.AreEqual(one, four);
        for (int i = 0; i < a.Length; i++) Assert.AreEqual(a[i] * b[i % cols], one[i], $"element {i}");
    }
}

/// <summary>Reference helpers for the op tests: seeded data, shapes as text, broadcast indexing by coordinates, tolerances.</summary>
internal static class Ref
{
    public static double[] Uniform(int seed, int n, double lo, double hi)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => lo + (hi - lo) * r.NextDouble())];
    }

    /// <summary>"2,3,4" → [2,3,4]; "" → [] (a scalar).</summary>
    public static int[] Shape(string text) => text.Length == 0 ? [] : [.. text.Split(',').Select(int.Parse)];

    public static int Count(int[] shape) => shape.Aggregate(1, (a, b) => a * b);

    /// <summary>The flat index into an input of <paramref name="inShape"/> that output element <paramref name="flat"/> reads (trailing alignment; size-1 dimensions repeat).</summary>
    public static int SourceIndex(int flat, int[] outShape, int[] inShape)
    {
        int index = 0, stride = 1;
        for (int d = outShape.Length - 1, k = inShape.Length - 1; d >= 0; d--, k--)
        {
            int c = flat % outShape[d];
            flat /= outShape[d];
            if (k < 0) continue;
            if (inShape[k] != 1) index += c * stride;
            stride *= inShape[k];
        }
        return index;
    }

    /// <summary>Asserts shape-free closeness of every element: |a - e| &lt;= tol * max(1, |e|); NaN matches NaN.</summary>
    public static void AssertClose(double[] expected, OnnxTensor actual, double tol, string what)
    {
        Assert.AreEqual(expected.Length, (int)actual.ElementCount, $"{what}: element count");
        for (int i = 0; i < expected.Length; i++)
        {
            double a = actual.GetDouble(i), e = expected[i];
            if (double.IsNaN(e) && double.IsNaN(a)) continue;
            if (a == e) continue;
            Assert.IsLessThanOrEqualTo(tol * Math.Max(1, Math.Abs(e)), Math.Abs(a - e), $"{what}: element {i} is {a:R}, expected {e:R}");
        }
    }

    /// <summary>A tensor of <paramref name="values"/> converted to float32 or float64.</summary>
    public static OnnxTensor Tensor(double[] values, int[] shape, bool float32) =>
        float32 ? OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape) : OnnxTensor.FromArray(values, shape);
}
