using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

[TestClass]
public sealed class SoftmaxTests
{
    /// <summary>
    /// Scalar reference: the op along the lines of the [outer, n, inner] view (opset 13: n = shape[axis];
    /// before 13: the 2-D coercion, n = product of shape[axis..]).
    /// </summary>
    private static double[] Reference(string op, double[] x, int[] shape, int axis, bool coerce2D)
    {
        int outer = 1, n = 1, inner = 1;
        for (int d = 0; d < shape.Length; d++)
        {
            if (d < axis) outer *= shape[d];
            else if (d == axis || coerce2D) n *= shape[d];
            else inner *= shape[d];
        }
        var y = new double[x.Length];
        for (int o = 0; o < outer; o++)
        {
            for (int i = 0; i < inner; i++)
            {
                var idx = Enumerable.Range(0, n).Select(k => (o * n + k) * inner + i).ToArray();
                double max = idx.Max(j => x[j]);
                double sum = idx.Sum(j => Math.Exp(x[j] - max));
                int first = idx.First(j => x[j] == max);
                foreach (int j in idx)
                {
                    y[j] = op switch
                    {
                        "Softmax" => Math.Exp(x[j] - max) / sum,
                        "LogSoftmax" => x[j] - max - Math.Log(sum),
                        _ => j == first ? 1 : 0,
                    };
                }
            }
        }
        return y;
    }

    [TestMethod]
    [DataRow("Softmax", "1", -1, 13)]
    [DataRow("Softmax", "7", 0, 13)]
    [DataRow("Softmax", "3,8", 1, 13)]
    [DataRow("Softmax", "2,9", -1, 13)]
    [DataRow("Softmax", "3,16,2", 1, 13)]
    [DataRow("Softmax", "2,17,3", -2, 13)]
    [DataRow("Softmax", "4,5", 0, 13)]
    [DataRow("Softmax", "2,3,4", 1, 11)]
    [DataRow("Softmax", "2,3,4", 0, 11)]
    [DataRow("Softmax", "0,5", 1, 13)]
    [DataRow("Softmax", "64,64", -1, 13)]   // contiguous lines: whole vectors
    [DataRow("Softmax", "5,100", -1, 13)]   // vectors and a scalar tail
    [DataRow("LogSoftmax", "6,33", -1, 13)]
    [DataRow("Hardmax", "4,40", -1, 13)]
    [DataRow("LogSoftmax", "5", 0, 13)]
    [DataRow("LogSoftmax", "3,17", 1, 13)]
    [DataRow("LogSoftmax", "2,8,3", 1, 13)]
    [DataRow("LogSoftmax", "2,3,4", 2, 11)]
    [DataRow("LogSoftmax", "2,3,4", 1, 11)]
    [DataRow("Hardmax", "3,9", 1, 13)]
    [DataRow("Hardmax", "2,5,3", 1, 13)]
    [DataRow("Hardmax", "2,3,4", 1, 11)]
    public void Op_MatchesScalarReference(string op, string shapeText, int axis, int opset)
    {
        var shape = OpTensors.Shape(shapeText);
        var x = OpTensors.Random(5, OpTensors.Count(shape), -4, 4);
        int a = axis < 0 ? axis + shape.Length : axis;
        foreach (var type in new[] { DataType.Float, DataType.Double })
        {
            var values = type == DataType.Float ? x.Select(v => (double)(float)v).ToArray() : x;
            var y = SingleNode.Run(op, [OpTensors.Of(type, values, shape)], 1, opset, OnnxAttribute.FromInt("axis", axis))[0];
            OpTensors.AssertClose(Reference(op, values, shape, a, opset < 13), shape, y, type, what: $"{op} {DataTypes.OnnxName(type)}");
        }
    }

    [TestMethod]
    [DataRow(11, 1)]
    [DataRow(13, -1)]
    public void Op_DefaultAxis_DependsOnOpset(int opset, int defaultAxis)
    {
        int[] shape = [2, 3, 4];
        var x = OpTensors.Random(8, 24);
        var y = SingleNode.Run("Softmax", [OpTensors.Of(DataType.Double, x, shape)], 1, opset)[0];
        OpTensors.AssertClose(Reference("Softmax", x, shape, defaultAxis < 0 ? 2 : defaultAxis, opset < 13), shape, y, DataType.Double);
    }

    [TestMethod]
    public void Softmax_LargeInputs_DoNotOverflow()
    {
        var x = OnnxTensor.FromArray(new float[] { 10000, 10001, 10002, -10000 }, 1, 4);
        var y = SingleNode.Run("Softmax", [x], 1, 13)[0].ToArray<float>();
        double e0 = Math.Exp(-2), e1 = Math.Exp(-1), s = e0 + e1 + 1;
        OpTensors.AssertClose([e0 / s, e1 / s, 1 / s, 0], [1, 4], OnnxTensor.FromArray(y, 1, 4), DataType.Float);
        var logY = SingleNode.Run("LogSoftmax", [x], 1, 13)[0];
        OpTensors.AssertClose([-2 - Math.Log(s), -1 - Math.Log(s), -Math.Log(s), -20002 - Math.Log(s)], [1, 4], logY, DataType.Float);
    }

    [TestMethod]
    public void Hardmax_Ties_PickTheFirst()
    {
        var x = OnnxTensor.FromArray(new double[] { 2, 5, 5, 1, 0, 0, 0, 0 }, 2, 4);
        var y = SingleNode.Run("Hardmax", [x], 1, 13)[0];
        CollectionAssert.AreEqual(new double[] { 0, 1, 0, 0, 1, 0, 0, 0 }, y.ToArray<double>());
    }

    [TestMethod]
    public void Softmax_Float16_RoundsOnce()
    {
        var x = OnnxTensor.FromArray(new[] { (Half)0, (Half)0, (Half)0, (Half)0 }, 4);
        var y = SingleNode.Run("Softmax", [x], 1, 13)[0];
        CollectionAssert.AreEqual(Enumerable.Repeat((Half)0.25, 4).ToArray(), y.ToArray<Half>());
    }

    [TestMethod]
    [DataRow("Softmax", "5", -1, 13)]
    [DataRow("Softmax", "3,4", 1, 13)]
    [DataRow("Softmax", "2,3,4", 1, 13)]
    [DataRow("Softmax", "2,3,4", 0, 13)]
    [DataRow("Softmax", "2,3,4", 1, 11)]
    [DataRow("Softmax", "2,3,2,2", 2, 11)]
    [DataRow("LogSoftmax", "7", 0, 13)]
    [DataRow("LogSoftmax", "3,4", -1, 13)]
    [DataRow("LogSoftmax", "2,3,4", -2, 13)]
    [DataRow("LogSoftmax", "2,3,4", 1, 11)]
    [DataRow("LogSoftmax", "2,3,4", 0, 11)]
    public void Gradient_MatchesFiniteDifferences(string op, string shapeText, int axis, int opset)
    {
        var x = GradCheck.Random(41, OpTensors.Shape(shapeText), -2, 2);
        GradCheck.Op(op, [x], [OnnxAttribute.FromInt("axis", axis)], opset: opset);
    }

    [TestMethod]
    public void Gradient_DefaultAxis_FollowsTheOpset()
    {
        var x = GradCheck.Random(42, [2, 3, 4], -2, 2);
        GradCheck.Op("Softmax", [x], opset: 11);
        GradCheck.Op("LogSoftmax", [x], opset: 13);
    }

    [TestMethod]
    public void Gradient_LargeTensor_IsCheckedByRandomDirections()
    {
        // 3 x 40 x 2 (240 elements): above the elementwise limit, strided lines (inner 2) on several threads' worth of work.
        GradCheck.Op("Softmax", [GradCheck.Random(43, [3, 40, 2], -3, 3)], [OnnxAttribute.FromInt("axis", 1)]);
    }

    [TestMethod]
    [DataRow("SoftmaxGrad", 1)]
    [DataRow("SoftmaxGrad", 7)]
    [DataRow("SoftmaxGrad", 64)]
    [DataRow("SoftmaxGrad", 100)]
    [DataRow("LogSoftmaxGrad", 33)]
    [DataRow("LogSoftmaxGrad", 64)]
    public void GradKernel_ContiguousLines_MatchScalarReference(string op, int n)
    {
        // Enough lines that two threads split them: the result must not depend on the thread count.
        int lines = 70000 / n + 3;
        int[] shape = [lines, n];
        var y0 = OpTensors.Random(6, lines * n, 0, 1);
        var g0 = OpTensors.Random(7, lines * n, -1, 1);
        foreach (var type in new[] { DataType.Float, DataType.Double })
        {
            var y = type == DataType.Float ? y0.Select(v => (double)(float)v).ToArray() : y0;
            var g = type == DataType.Float ? g0.Select(v => (double)(float)v).ToArray() : g0;
            var expected = new double[y.Length];
            for (int l = 0; l < lines; l++)
            {
                double s = 0;
                for (int j = 0; j < n; j++) s += op == "SoftmaxGrad" ? g[l * n + j] * y[l * n + j] : g[l * n + j];
                for (int j = 0; j < n; j++)
                {
                    int i = l * n + j;
                    expected[i] = op == "SoftmaxGrad" ? y[i] * (g[i] - s) : g[i] - Math.Exp(y[i]) * s;
                }
            }
            OnnxTensor? single = null;
            foreach (int threads in new[] { 1, 2 })
            {
                var inputs = new[] { OpTensors.Of(type, g, shape), OpTensors.Of(type, y, shape) };
                var model = SingleNode.Model(op, inputs, 1, 17, Backprop.Onnx.Ops.OpRegistry.BackpropDomain, OnnxAttribute.FromInt("axis", -1));
                var plan = Backprop.Onnx.Runtime.ExecutionPlan.Compile(model, new Backprop.Onnx.Runtime.ExecutionOptions { Threads = threads });
                var dx = plan.Run(new Dictionary<string, OnnxTensor> { ["x0"] = inputs[0], ["x1"] = inputs[1] })["y0"];
                OpTensors.AssertClose(expected, shape, dx, type, what: $"{op} n={n} {DataTypes.OnnxName(type)} threads {threads}");
                if (single is null) single = dx;
                else CollectionAssert.AreEqual(Enumerable.Range(0, lines * n).Select(i => single.GetDouble(i)).ToArray(), Enumerable.Range(0, lines * n).Select(i => dx.GetDouble(i)).ToArray());
            }
        }
    }
}
