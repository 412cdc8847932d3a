using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

public sealed partial class ElementwiseTests
{
    private static Func<double, double, double> BinaryReference(string opType) => opType switch
    {
        "Add" => (a, b) => a + b,
        "Sub" => (a, b) => a - b,
        "Mul" => (a, b) => a * b,
        "Div" => (a, b) => a / b,
        "Max" => Math.Max,
        "Min" => Math.Min,
        "Pow" => Math.Pow,
        "Mod" => (a, b) => a % b, // C fmod
        _ => throw new ArgumentException(opType),
    };

    [TestMethod]
    [DataRow("2,3,4", "2,3,4", "2,3,4")]
    [DataRow("2,3,4", "4", "2,3,4")]
    [DataRow("4", "2,3,4", "2,3,4")]
    [DataRow("2,1,4", "3,1", "2,3,4")]
    [DataRow("3,1", "1,3", "3,3")]
    [DataRow("", "17", "17")]
    [DataRow("16", "", "16")]
    [DataRow("1", "9", "9")]
    [DataRow("2,17", "2,1", "2,17")]
    [DataRow("2,1,8", "1,5,1", "2,5,8")]
    [DataRow("0,3", "3", "0,3")]
    [DataRow("1,1,1", "", "1,1,1")]
    [DataRow("5,1,15", "5,2,1", "5,2,15")]
    public void BinaryArithmetic_Broadcasts(string a, string b, string y)
    {
        int[] sa = Ref.Shape(a), sb = Ref.Shape(b), sy = Ref.Shape(y);
        foreach (var op in new[] { "Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Mod" })
        {
            var f = BinaryReference(op);
            var da = Ref.Uniform(1, Ref.Count(sa), op == "Pow" ? 0.1 : -3, 3);
            var db = Ref.Uniform(2, Ref.Count(sb), op == "Pow" ? -2 : -3, 3);
            var expected = Enumerable.Range(0, Ref.Count(sy)).Select(i => f(da[Ref.SourceIndex(i, sy, sa)], db[Ref.SourceIndex(i, sy, sb)])).ToArray();
            var attrs = op == "Mod" ? new[] { OnnxAttribute.FromInt("fmod", 1) } : [];
            foreach (bool f32 in new[] { false, true })
            {
                var result = SingleNode.Run(op, [Ref.Tensor(da, sa, f32), Ref.Tensor(db, sb, f32)], attributes: attrs)[0];
                CollectionAssert.AreEqual(sy, result.Shape.ToArray(), $"{op} shape");
                if (f32)
                {
                    // Reference in float: each operand rounded to float, the result rounded once more.
                    var e32 = Enumerable.Range(0, Ref.Count(sy)).Select(i => (double)(float)f((float)da[Ref.SourceIndex(i, sy, sa)], (float)db[Ref.SourceIndex(i, sy, sb)])).ToArray();
                    Ref.AssertClose(e32, result, 2e-6, $"{op} float32 {a} vs {b}");
                }
                else Ref.AssertClose(expected, result, 1e-14, $"{op} float64 {a} vs {b}");
            }
        }
    }

    [TestMethod]
    public void IntegerArithmetic_WrapsAndTruncates()
    {
        var a8 = OnnxTensor.FromArray(new byte[] { 250, 3, 7 }, 3);
        var b8 = OnnxTensor.FromArray(new byte[] { 10, 5, 2 }, 3);
        CollectionAssert.AreEqual(new byte[] { 4, 8, 9 }, SingleNode.Run("Add", [a8, b8])[0].ToArray<byte>());
        CollectionAssert.AreEqual(new byte[] { 240, 254, 5 }, SingleNode.Run("Sub", [a8, b8])[0].ToArray<byte>());
        CollectionAssert.AreEqual(new byte[] { 196, 15, 14 }, SingleNode.Run("Mul", [a8, b8])[0].ToArray<byte>());
        CollectionAssert.AreEqual(new byte[] { 25, 0, 3 }, SingleNode.Run("Div", [a8, b8])[0].ToArray<byte>());
        var a32 = OnnxTensor.FromArray(new[] { -7, 7, -7, 7 }, 4);
        var b32 = OnnxTensor.FromArray(new[] { 2, 2, -2, -2 }, 4);
        CollectionAssert.AreEqual(new[] { -3, 3, 3, -3 }, SingleNode.Run("Div", [a32, b32])[0].ToArray<int>());
        CollectionAssert.AreEqual(new long[] { 9, -5 }, SingleNode.Run("Max", [OnnxTensor.FromArray(new long[] { 9, -8 }, 2), OnnxTensor.Scalar(-5L)])[0].ToArray<long>());
    }

    [TestMethod]
    public void IntegerDivisionByZero_IsInvalidInput()
    {
        var e = Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("Div", [OnnxTensor.FromArray(new[] { 1, 2 }, 2), OnnxTensor.Scalar(0)]));
        StringAssert.Contains(e.Message, "division by zero");
    }

    [TestMethod]
    // numpy.mod (fmod=0): the sign of the divisor; C fmod (fmod=1): the sign of the dividend.
    [DataRow(0L, new long[] { 2, -2, -1, 1, 0 })]
    [DataRow(1L, new long[] { -1, 1, -1, 1, 0 })]
    public void Mod_IntegersFollowTheFmodAttribute(long fmod, long[] expected)
    {
        var a = OnnxTensor.FromArray(new long[] { -4, 4, -4, 4, 6 }, 5);
        var b = OnnxTensor.FromArray(new long[] { 3, -3, -3, 3, 3 }, 5);
        CollectionAssert.AreEqual(expected, SingleNode.Run("Mod", [a, b], attributes: OnnxAttribute.FromInt("fmod", fmod))[0].ToArray<long>());
    }

    [TestMethod]
    public void Mod_Floats()
    {
        var a = OnnxTensor.FromArray(new[] { -4.5, 4.5, 5.0 }, 3);
        var b = OnnxTensor.FromArray(new[] { 2.0, -2.0, 2.5 }, 3);
        CollectionAssert.AreEqual(new[] { -0.5, 0.5, 0.0 }, SingleNode.Run("Mod", [a, b], attributes: OnnxAttribute.FromInt("fmod", 1))[0].ToArray<double>());
        CollectionAssert.AreEqual(new[] { 1.5, -1.5, 0.0 }, SingleNode.Run("Mod", [a, b])[0].ToArray<double>());
    }

    [TestMethod]
    public void Pow_MixedTypes_ComputeInDoubleLikeNumpy()
    {
        var ints = OnnxTensor.FromArray(new[] { 2, 3, -2 }, 3);
        CollectionAssert.AreEqual(new[] { 2, 5, 4 }, SingleNode.Run("Pow", [ints, OnnxTensor.FromArray(new[] { 1.5f, 1.5f, 2f }, 3)])[0].ToArray<int>());
        CollectionAssert.AreEqual(new long[] { 1L << 40, 243 }, SingleNode.Run("Pow", [OnnxTensor.FromArray(new long[] { 2, 3 }, 2), OnnxTensor.FromArray(new long[] { 40, 5 }, 2)])[0].ToArray<long>());
        var f = SingleNode.Run("Pow", [OnnxTensor.FromArray(new[] { 1.5f, -2f }, 2), OnnxTensor.FromArray(new ulong[] { 3, 3 }, 2)])[0];
        CollectionAssert.AreEqual(new[] { 3.375f, -8f }, f.ToArray<float>());
    }

    [TestMethod]
    [DataRow("0", "1")]
    [DataRow("1", "2")]
    public void LegacyBroadcast_PlacesBAtAxis(string axisText, string bShape)
    {
        // Add-6 with broadcast=1: B of shape [3] at axis 1, or [2] at axis 0 with a trailing dimension of 1 implied.
        int axis = int.Parse(axisText);
        var a = Enumerable.Range(0, 6).Select(i => (double)i).ToArray();
        double[] b = axis == 1 ? [10, 20, 30] : [100, 200];
        var y = SingleNode.Run("Add", [OnnxTensor.FromArray(a, 2, 3), OnnxTensor.FromArray(b, b.Length)], opset: 6,
            attributes: [OnnxAttribute.FromInt("broadcast", 1), OnnxAttribute.FromInt("axis", axis)])[0].ToArray<double>();
        var expected = Enumerable.Range(0, 6).Select(i => a[i] + (axis == 1 ? b[i % 3] : b[i / 3])).ToArray();
        CollectionAssert.AreEqual(expected, y, $"shape of B [{bShape}]");
    }

    [TestMethod]
    public void LegacyBroadcast_Off_EqualShapes_AndToleratesNumpyBroadcasting()
    {
        var y = SingleNode.Run("Mul", [OnnxTensor.FromArray(new[] { 1f, 2f }, 2), OnnxTensor.FromArray(new[] { 3f, 4f }, 2)], opset: 6)[0];
        CollectionAssert.AreEqual(new[] { 3f, 8f }, y.ToArray<float>());
        // Outside the opset-6 spec (broadcast=0 with other shapes), as backward nodes emitted into such graphs are.
        var s = SingleNode.Run("Mul", [OnnxTensor.Scalar(2f), OnnxTensor.FromArray(new[] { 3f, 4f }, 2)], opset: 6)[0];
        CollectionAssert.AreEqual(new[] { 6f, 8f }, s.ToArray<float>());
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("Add", [OnnxTensor.Scalar(2f), OnnxTensor.FromArray(new[] { 3f, 4f }, 2)],
            opset: 6, attributes: [OnnxAttribute.FromInt("broadcast", 1)]));
    }

    [TestMethod]
    public void IncompatibleShapes_AreInvalidInput()
    {
        var e = Assert.ThrowsExactly<InvalidInputException>(() =>
            SingleNode.Run("Add", [OnnxTensor.FromArray(new float[6], 2, 3), OnnxTensor.FromArray(new float[2], 2)]));
        StringAssert.Contains(e.Message, "cannot be broadcast");
    }

    [TestMethod]
    [DataRow("Sum")]
    [DataRow("Mean")]
    [DataRow("Max")]
    [DataRow("Min")]
    public void Variadic_FoldsThreeBroadcastInputs(string opType)
    {
        int[][] shapes = [[2, 1, 3], [4, 1], [3]];
        int[] outShape = [2, 4, 3];
        var data = shapes.Select((s, k) => Ref.Uniform(10 + k, Ref.Count(s), -2, 2)).ToArray();
        Func<double, double, double> f = opType is "Sum" or "Mean" ? (a, b) => a + b : opType == "Max" ? Math.Max : Math.Min;
        var expected = Enumerable.Range(0, Ref.Count(outShape)).Select(i =>
        {
            double acc = data[0][Ref.SourceIndex(i, outShape, shapes[0])];
            for (int k = 1; k < 3; k++) acc = f(acc, data[k][Ref.SourceIndex(i, outShape, shapes[k])]);
            return opType == "Mean" ? acc / 3 : acc;
        }).ToArray();
        foreach (bool f32 in new[] { false, true })
        {
            var y = SingleNode.Run(opType, [.. shapes.Select((s, k) => Ref.Tensor(data[k], s, f32))])[0];
            CollectionAssert.AreEqual(outShape, y.Shape.ToArray());
            Ref.AssertClose(expected, y, f32 ? 1e-6 : 1e-15, $"{opType} float32={f32}");
        }
    }

    [TestMethod]
    public void Variadic_OneInput_IsThatInput_AndMaxPropagatesNaN()
    {
        var x = OnnxTensor.FromArray(new[] { 1.0, double.NaN, 3.0 }, 3);
        CollectionAssert.AreEqual(x.ToArray<double>(), SingleNode.Run("Mean", [x])[0].ToArray<double>());
        var y = SingleNode.Run("Max", [x, OnnxTensor.FromArray(new[] { 2.0, 5.0, double.NaN }, 3)])[0].ToArray<double>();
        Assert.AreEqual(2.0, y[0]);
        Assert.IsTrue(double.IsNaN(y[1]) && double.IsNaN(y[2]));
    }
}
