using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// MaxPool's and MaxPoolGrad's 2-D fast path (vector lanes inside the input, loops at clipped windows) against a direct
/// loop: the first maximum in window order wins, a NaN wins over numbers, −0 and +0 tie, overlapping windows add up.
/// </summary>
[TestClass]
public sealed class MaxPoolFastPathTests
{
    [TestMethod]
    [DataRow(2, 1, 0, 1, 13, 11)]   // overlapping windows
    [DataRow(3, 2, 1, 1, 20, 17)]   // padding: clipped border windows
    [DataRow(2, 2, 0, 1, 28, 28)]   // LeNet's pool
    [DataRow(3, 1, 2, 2, 9, 10)]    // dilation
    public void MatchesDirectLoop(int k, int stride, int pad, int dilation, int h, int w)
    {
        int n = 2, c = 3;
        var random = new Random(k * 100 + stride * 10 + pad);
        // Few distinct values (many ties), signed zeros and a few NaNs.
        var x = Enumerable.Range(0, n * c * h * w).Select(i => (i % 37) switch
        {
            0 => float.NaN,
            1 => -0f,
            2 => 0f,
            _ => random.Next(-3, 4) * 0.5f,
        }).ToArray();
        int oh = (h + 2 * pad - dilation * (k - 1) - 1) / stride + 1, ow = (w + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
        var dy = Enumerable.Range(0, n * c * oh * ow).Select(_ => (float)random.NextDouble()).ToArray();
        var expectedY = new float[dy.Length];
        var expectedDx = new float[x.Length];
        for (int p = 0; p < n * c; p++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    float best = 0;
                    int at = -1;
                    for (int a = 0; a < k; a++)
                        for (int b = 0; b < k; b++)
                        {
                            int r = i * stride - pad + a * dilation, q = j * stride - pad + b * dilation;
                            if (r < 0 || r >= h || q < 0 || q >= w) continue;
                            int off = (p * h + r) * w + q;
                            float v = x[off];
                            if (at < 0 || v > best || (float.IsNaN(v) && !float.IsNaN(best))) { best = v; at = off; }
                        }
                    int o = (p * oh + i) * ow + j;
                    expectedY[o] = x[at];
                    expectedDx[at] += dy[o];
                }

        OnnxAttribute[] attrs = [OnnxAttribute.FromInts("kernel_shape", [k, k]), OnnxAttribute.FromInts("strides", [stride, stride]),
            OnnxAttribute.FromInts("pads", [pad, pad, pad, pad]), OnnxAttribute.FromInts("dilations", [dilation, dilation])];
        var xt = OnnxTensor.FromArray(x, n, c, h, w);
        var y = SingleNode.Run("MaxPool", [xt], 1, 17, attrs)[0];
        CollectionAssert.AreEqual(expectedY.Select(BitConverter.SingleToInt32Bits).ToArray(), y.ToArray<float>().Select(BitConverter.SingleToInt32Bits).ToArray());

        var model = SingleNode.Model("MaxPoolGrad", [OnnxTensor.FromArray(dy, n, c, oh, ow), xt], 1, 17, "ai.backprop", attrs);
        foreach (int threads in new[] { 1, 2 })
        {
            var dx = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads })
                .Run(new Dictionary<string, OnnxTensor> { ["x0"] = OnnxTensor.FromArray(dy, n, c, oh, ow), ["x1"] = xt })["y0"];
            CollectionAssert.AreEqual(expectedDx, dx.ToArray<float>(), $"threads {threads}");
        }
    }
}
