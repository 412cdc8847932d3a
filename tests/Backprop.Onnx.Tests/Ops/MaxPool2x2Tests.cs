using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// MaxPool's and MaxPoolGrad's 2×2 stride-2 path (PoolingOps.Pool2x2.cs) against a scalar loop written here and against
/// the general path: the first maximum in row-major window order wins, a NaN wins over numbers (the first NaN over
/// later ones), −0 and +0 tie; rows and columns no window covers get a zero gradient. Float and double, widths that
/// are and are not multiples of the vector width, odd heights and widths, one and two threads.
/// </summary>
[TestClass]
public sealed class MaxPool2x2Tests
{
    [TestMethod]
    [DataRow(28, 28, false)]   // LeNet's first pool
    [DataRow(10, 10, false)]   // LeNet's second pool
    [DataRow(7, 37, false)]    // odd: the last row and column are in no window
    [DataRow(2, 2, false)]     // one window
    [DataRow(5, 35, true)]
    [DataRow(28, 28, true)]
    [DataRow(3, 17, true)]
    public void MatchesScalarLoop(int h, int w, bool isDouble)
    {
        int n = 2, c = 3, oh = h / 2, ow = w / 2;
        var random = new Random(h * 1000 + w);
        // Few distinct values (many ties), signed zeros and a few NaNs.
        var x = Enumerable.Range(0, n * c * h * w).Select(i => (i % 29) switch
        {
            0 => double.NaN,
            1 => -0.0,
            2 => 0.0,
            _ => random.Next(-3, 4) * 0.5,
        }).ToArray();
        var dy = Enumerable.Range(0, n * c * oh * ow).Select(_ => random.NextDouble() - 0.5).ToArray();
        var expectedY = new double[dy.Length];
        var expectedDx = new double[x.Length];
        for (int p = 0; p < n * c; p++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    int at = -1;
                    for (int a = 0; a < 2; a++)
                        for (int b = 0; b < 2; b++)
                        {
                            int off = (p * h + 2 * i + a) * w + 2 * j + b;
                            double v = x[off];
                            if (at < 0 || v > x[at] || (double.IsNaN(v) && !double.IsNaN(x[at]))) at = off;
                        }
                    int o = (p * oh + i) * ow + j;
                    expectedY[o] = x[at];
                    expectedDx[at] += dy[o];
                }

        OnnxAttribute[] attrs = [OnnxAttribute.FromInts("kernel_shape", [2, 2]), OnnxAttribute.FromInts("strides", [2, 2])];
        var xt = Tensor(x, isDouble, n, c, h, w);
        var dyt = Tensor(dy, isDouble, n, c, oh, ow);
        foreach (int threads in new[] { 1, 2 })
        {
            var y = Run(SingleNode.Model("MaxPool", [xt], 1, 17, "", attrs), threads, xt);
            AssertBits(expectedY, y, isDouble, $"MaxPool threads {threads}");
            var dx = Run(SingleNode.Model("MaxPoolGrad", [dyt, xt], 1, 17, "ai.backprop", attrs), threads, dyt, xt);
            AssertBits(expectedDx, dx, isDouble, $"MaxPoolGrad threads {threads}");
        }
    }

    [TestMethod]
    [DataRow(9, 21, false)]
    [DataRow(12, 16, true)]
    public void MatchesGeneralPath(int h, int w, bool isDouble)
    {
        var random = new Random(h + w);
        var x = Enumerable.Range(0, 3 * h * w).Select(_ => random.Next(-4, 5) * 0.25).ToArray();
        var dy = Enumerable.Range(0, 3 * (h / 2) * (w / 2)).Select(_ => random.NextDouble()).ToArray();
        OnnxAttribute[] attrs = [OnnxAttribute.FromInts("kernel_shape", [2, 2]), OnnxAttribute.FromInts("strides", [2, 2])];
        var xt = Tensor(x, isDouble, 1, 3, h, w);
        var dyt = Tensor(dy, isDouble, 1, 3, h / 2, w / 2);
        var pool = SingleNode.Model("MaxPool", [xt], 1, 17, "", attrs);
        var grad = SingleNode.Model("MaxPoolGrad", [dyt, xt], 1, 17, "ai.backprop", attrs);
        var (fastY, fastDx) = (Run(pool, 1, xt), Run(grad, 1, dyt, xt));
        PoolingOps.UsePool2x2 = false;
        try
        {
            AssertBits(Doubles(Run(pool, 1, xt)), fastY, isDouble, "MaxPool");
            AssertBits(Doubles(Run(grad, 1, dyt, xt)), fastDx, isDouble, "MaxPoolGrad");
        }
        finally
        {
            PoolingOps.UsePool2x2 = true;
        }
    }

    private static OnnxTensor Tensor(double[] v, bool isDouble, params int[] dims) =>
        isDouble ? OnnxTensor.FromArray(v, dims) : OnnxTensor.FromArray(v.Select(d => (float)d).ToArray(), dims);

    private static double[] Doubles(OnnxTensor t) =>
        t.ElementType == DataType.Double ? t.ToArray<double>() : [.. t.ToArray<float>().Select(f => (double)f)];

    private static OnnxTensor Run(OnnxModel model, int threads, params OnnxTensor[] inputs)
    {
        var feeds = new Dictionary<string, OnnxTensor>();
        for (int i = 0; i < inputs.Length; i++) feeds[$"x{i}"] = inputs[i];
        return ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads }).Run(feeds)["y0"];
    }

    /// <summary>Bit-for-bit equality (so −0 and +0 differ, and NaN equals NaN).</summary>
    private static void AssertBits(double[] expected, OnnxTensor actual, bool isDouble, string what)
    {
        if (isDouble)
            CollectionAssert.AreEqual(expected.Select(BitConverter.DoubleToInt64Bits).ToArray(), actual.ToArray<double>().Select(BitConverter.DoubleToInt64Bits).ToArray(), what);
        else
            CollectionAssert.AreEqual(expected.Select(d => BitConverter.SingleToInt32Bits((float)d)).ToArray(), actual.ToArray<float>().Select(BitConverter.SingleToInt32Bits).ToArray(), what);
    }
}
