using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// The whole-run path of binary elementwise ops (same shapes, or one operand a single element: ElementwiseOps.Binary.cs)
/// and of Sum over inputs of one shape (ElementwiseOps.Variadic.cs), against scalar loops written here and against the
/// general broadcast loop: bit for bit, float32 and float64, lengths around the vector width and one long enough for two
/// threads.
/// </summary>
[TestClass]
public sealed class WholeRunElementwiseTests
{
    public static IEnumerable<object[]> Cases =>
    [
        ["Add", 1, 1], ["Sub", 7, 7], ["Mul", 9, 1], ["Div", 1, 33], ["Sub", 100_003, 100_003], ["Div", 100_003, 1], ["Max", 1, 100_003], ["Add", 1, 1],
    ];

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void BinaryMatchesScalarLoopAndGeneralPath(string op, int lengthA, int lengthB)
    {
        int n = Math.Max(lengthA, lengthB);
        var random = new Random(n + lengthA);
        var a = Enumerable.Range(0, lengthA).Select(_ => random.NextDouble() * 4 - 2).ToArray();
        var b = Enumerable.Range(0, lengthB).Select(_ => random.NextDouble() * 4 + 0.5).ToArray();
        Func<double, double, double> f = op switch
        {
            "Add" => (p, q) => p + q,
            "Sub" => (p, q) => p - q,
            "Mul" => (p, q) => p * q,
            "Div" => (p, q) => p / q,
            _ => Math.Max,
        };
        foreach (bool isDouble in new[] { false, true })
        {
            OnnxTensor T(double[] v) => isDouble ? OnnxTensor.FromArray(v, v.Length) : OnnxTensor.FromArray(v.Select(d => (float)d).ToArray(), v.Length);
            var expected = Enumerable.Range(0, n).Select(i =>
            {
                double p = a[lengthA == 1 ? 0 : i], q = b[lengthB == 1 ? 0 : i];
                return isDouble ? f(p, q) : (float)f((float)p, (float)q);
            }).ToArray();
            foreach (int threads in new[] { 1, 2 })
            {
                var fast = Run(op, threads, T(a), T(b));
                Assert.IsTrue(Bits(expected, isDouble).SequenceEqual(Bits(fast)), $"{op} {(isDouble ? "float64" : "float32")} threads {threads}");
                BinaryDriver.UseWholeRun = false;
                try
                {
                    Assert.IsTrue(Bits(Run(op, threads, T(a), T(b))).SequenceEqual(Bits(fast)), $"{op} general path, threads {threads}");
                }
                finally
                {
                    BinaryDriver.UseWholeRun = true;
                }
            }
        }
    }

    [TestMethod]
    [DataRow(3, 17)]
    [DataRow(2, 100_003)]
    [DataRow(4, 8)]
    public void SumOfSameShapesIsTheLeftFold(int inputs, int n)
    {
        var random = new Random(inputs * 7 + n);
        var xs = Enumerable.Range(0, inputs).Select(_ => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray()).ToArray();
        var expected = new float[n];
        for (int i = 0; i < n; i++)
        {
            float s = xs[0][i] + xs[1][i];
            for (int k = 2; k < inputs; k++) s += xs[k][i];
            expected[i] = s;
        }
        foreach (int threads in new[] { 1, 2 })
        {
            var tensors = xs.Select(x => (OnnxTensor?)OnnxTensor.FromArray(x, 1, n)).ToArray();
            var y = Run("Sum", threads, tensors);
            CollectionAssert.AreEqual(expected.Select(BitConverter.SingleToInt32Bits).ToArray(), y.ToArray<float>().Select(BitConverter.SingleToInt32Bits).ToArray(), $"threads {threads}");
        }
    }

    private static OnnxTensor Run(string op, int threads, params OnnxTensor?[] inputs)
    {
        var feeds = new Dictionary<string, OnnxTensor>();
        for (int i = 0; i < inputs.Length; i++) if (inputs[i] is { } t) feeds[$"x{i}"] = t;
        return ExecutionPlan.Compile(SingleNode.Model(op, inputs), new ExecutionOptions { Threads = threads }).Run(feeds)["y0"];
    }

    private static long[] Bits(double[] v, bool isDouble) =>
        isDouble ? [.. v.Select(BitConverter.DoubleToInt64Bits)] : [.. v.Select(d => (long)BitConverter.SingleToInt32Bits((float)d))];

    private static long[] Bits(OnnxTensor t) =>
        t.ElementType == DataType.Double ? [.. t.ToArray<double>().Select(BitConverter.DoubleToInt64Bits)] : [.. t.ToArray<float>().Select(f => (long)BitConverter.SingleToInt32Bits(f))];
}
