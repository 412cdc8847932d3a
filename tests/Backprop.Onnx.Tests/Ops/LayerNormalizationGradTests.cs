using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>
/// The LayerNormalizationGrad kernel (chunked rows, per-chunk partial sums of dScale and dB) against the layer-norm
/// backward formula written as scalar loops, on one and two threads, in float and double.
/// </summary>
[TestClass]
public sealed class LayerNormalizationGradTests
{
    [TestMethod]
    [DataRow(300, 256)]   // 76,800 elements: two threads, two chunks
    [DataRow(1031, 67)]   // odd rows per chunk, vector tails
    [DataRow(3, 5)]
    public void LayerNormalizationGrad_MatchesScalarFormula(int rows, int cols)
    {
        const double eps = 1e-5;
        var x0 = OpTensors.Random(21, rows * cols, -2, 2);
        var w0 = OpTensors.Random(22, cols, 0.5, 1.5);
        var dy0 = OpTensors.Random(23, rows * cols, -1, 1);
        foreach (var type in new[] { DataType.Float, DataType.Double })
        {
            double[] R(double[] v) => type == DataType.Float ? [.. v.Select(e => (double)(float)e)] : v;
            double[] x = R(x0), w = R(w0), dy = R(dy0);
            var dx = new double[rows * cols];
            var dScale = new double[cols];
            var dB = new double[cols];
            for (int r = 0; r < rows; r++)
            {
                var row = x.Skip(r * cols).Take(cols).ToArray();
                double mu = row.Average(), inv = 1 / Math.Sqrt(row.Sum(e => (e - mu) * (e - mu)) / cols + (double)(float)eps);
                var xhat = row.Select(e => (e - mu) * inv).ToArray();
                var g = Enumerable.Range(0, cols).Select(k => dy[r * cols + k] * w[k]).ToArray();
                double mg = g.Average(), mgx = Enumerable.Range(0, cols).Sum(k => g[k] * xhat[k]) / cols;
                for (int k = 0; k < cols; k++)
                {
                    dx[r * cols + k] = inv * (g[k] - mg - xhat[k] * mgx);
                    dScale[k] += dy[r * cols + k] * xhat[k];
                    dB[k] += dy[r * cols + k];
                }
            }
            int[] shape = [rows, cols];
            var inputs = new OnnxTensor?[] { OpTensors.Of(type, dy, shape), OpTensors.Of(type, x, shape), OpTensors.Of(type, w, [cols]), OpTensors.Of(type, new double[cols], [cols]) };
            foreach (int threads in new[] { 1, 2 })
            {
                var model = SingleNode.Model("LayerNormalizationGrad", inputs, 3, 17, OpRegistry.BackpropDomain,
                    OnnxAttribute.FromInt("axis", -1), OnnxAttribute.FromFloat("epsilon", (float)eps));
                var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
                var feeds = new Dictionary<string, OnnxTensor>();
                for (int i = 0; i < inputs.Length; i++) feeds[$"x{i}"] = inputs[i]!;
                for (int run = 0; run < 2; run++)
                {
                    var outs = plan.Run(feeds);
                    string what = $"{DataTypes.OnnxName(type)} [{rows},{cols}] threads {threads} run {run}";
                    double tol = type == DataType.Float ? 1e-4 : 1e-10;
                    OpTensors.AssertClose(dx, shape, outs["y0"], type, tol, tol, what + " dX");
                    OpTensors.AssertClose(dScale, [cols], outs["y1"], type, tol, tol * rows, what + " dScale");
                    OpTensors.AssertClose(dB, [cols], outs["y2"], type, tol, tol * rows, what + " dB");
                }
            }
        }
    }
}
