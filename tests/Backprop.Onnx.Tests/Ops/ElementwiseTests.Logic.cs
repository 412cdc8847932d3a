using System.Text;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

public sealed partial class ElementwiseTests
{
    [TestMethod]
    [DataRow("Equal")]
    [DataRow("Greater")]
    [DataRow("Less")]
    [DataRow("GreaterOrEqual")]
    [DataRow("LessOrEqual")]
    public void Comparisons_BroadcastAndTreatNaNAsUnordered(string opType)
    {
        Func<double, double, bool> f = opType switch
        {
            "Equal" => (a, b) => a == b, "Greater" => (a, b) => a > b, "Less" => (a, b) => a < b,
            "GreaterOrEqual" => (a, b) => a >= b, _ => (a, b) => a <= b,
        };
        double[] a = [1, 2, 3, double.NaN, 2, 2, 0, -1];
        double[] b = [2, 2, 1, 0];
        int[] sa = [2, 4], sb = [4], sy = [2, 4];
        var expected = Enumerable.Range(0, 8).Select(i => f(a[i], b[i % 4])).ToArray();
        foreach (bool f32 in new[] { false, true })
        {
            var y = SingleNode.Run(opType, [Ref.Tensor(a, sa, f32), Ref.Tensor(b, sb, f32)])[0];
            Assert.AreEqual(DataType.Bool, y.ElementType);
            CollectionAssert.AreEqual(sy, y.Shape.ToArray());
            CollectionAssert.AreEqual(expected, y.ToArray<bool>(), $"{opType} float32={f32}");
        }
        // Integers, the other broadcast direction.
        var yi = SingleNode.Run(opType, [OnnxTensor.FromArray(new long[] { 2 }, 1), OnnxTensor.FromArray(new long[] { 1, 2, 3 }, 3)])[0];
        CollectionAssert.AreEqual(new[] { f(2, 1), f(2, 2), f(2, 3) }, yi.ToArray<bool>());
        var yu = SingleNode.Run(opType, [OnnxTensor.FromArray(new byte[] { 200, 7 }, 2), OnnxTensor.FromArray(new byte[] { 7, 200 }, 2)])[0];
        CollectionAssert.AreEqual(new[] { f(200, 7), f(7, 200) }, yu.ToArray<bool>());
    }

    [TestMethod]
    public void Equal_OnBools()
    {
        var y = SingleNode.Run("Equal", [OnnxTensor.FromArray(new[] { true, false }, 2, 1), OnnxTensor.FromArray(new[] { true, false }, 1, 2)])[0];
        CollectionAssert.AreEqual(new[] { true, false, false, true }, y.ToArray<bool>());
    }

    [TestMethod]
    [DataRow("And", new[] { true, false, false, false })]
    [DataRow("Or", new[] { true, true, true, false })]
    [DataRow("Xor", new[] { false, true, true, false })]
    public void Logic_TruthTables_Broadcast(string opType, bool[] expected)
    {
        // [2,1] op [1,2] gives the full table: (T,T) (T,F) (F,T) (F,F).
        var y = SingleNode.Run(opType, [OnnxTensor.FromArray(new[] { true, false }, 2, 1), OnnxTensor.FromArray(new[] { true, false }, 1, 2)])[0];
        CollectionAssert.AreEqual(new[] { 2, 2 }, y.Shape.ToArray());
        CollectionAssert.AreEqual(expected, y.ToArray<bool>());
        var legacy = SingleNode.Run(opType, [OnnxTensor.FromArray(new[] { true, true, false, false }, 2, 2), OnnxTensor.FromArray(new[] { true, false }, 2)],
            opset: 6, attributes: OnnxAttribute.FromInt("broadcast", 1))[0];
        CollectionAssert.AreEqual(expected, legacy.ToArray<bool>());
    }

    [TestMethod]
    public void Not_IsNaN_IsInf()
    {
        CollectionAssert.AreEqual(new[] { false, true }, SingleNode.Run("Not", [OnnxTensor.FromArray(new[] { true, false }, 2)])[0].ToArray<bool>());
        var x = OnnxTensor.FromArray(new[] { 1f, float.NaN, float.PositiveInfinity, float.NegativeInfinity }, 4);
        CollectionAssert.AreEqual(new[] { false, true, false, false }, SingleNode.Run("IsNaN", [x])[0].ToArray<bool>());
        CollectionAssert.AreEqual(new[] { false, false, true, true }, SingleNode.Run("IsInf", [x])[0].ToArray<bool>());
        CollectionAssert.AreEqual(new[] { false, false, false, true },
            SingleNode.Run("IsInf", [x], attributes: OnnxAttribute.FromInt("detect_positive", 0))[0].ToArray<bool>());
        CollectionAssert.AreEqual(new[] { false, false, true, false },
            SingleNode.Run("IsInf", [x], attributes: OnnxAttribute.FromInt("detect_negative", 0))[0].ToArray<bool>());
    }

    [TestMethod]
    public void Where_BroadcastsAllThreeInputs()
    {
        bool[] c = [true, false, true];
        double[] x = [1, 2];
        double[] z = [10, 20, 30];
        int[] sc = [1, 3], sx = [2, 1], sz = [3], sy = [2, 3];
        var expected = Enumerable.Range(0, 6).Select(i => c[Ref.SourceIndex(i, sy, sc)] ? x[Ref.SourceIndex(i, sy, sx)] : z[Ref.SourceIndex(i, sy, sz)]).ToArray();
        foreach (bool f32 in new[] { false, true })
        {
            var y = SingleNode.Run("Where", [OnnxTensor.FromArray(c, sc), Ref.Tensor(x, sx, f32), Ref.Tensor(z, sz, f32)])[0];
            CollectionAssert.AreEqual(sy, y.Shape.ToArray());
            Ref.AssertClose(expected, y, 0, $"Where float32={f32}");
        }
        var s = SingleNode.Run("Where", [OnnxTensor.FromArray(new[] { false, true }, 2),
            new OnnxTensor(DataType.String, [2], new[] { "a"u8.ToArray(), "b"u8.ToArray() }, 2),
            new OnnxTensor(DataType.String, [], new[] { "z"u8.ToArray() }, 1)])[0];
        CollectionAssert.AreEqual(new[] { "z", "b" }, ((byte[][])s.Buffer).Select(b => Encoding.UTF8.GetString(b)).ToArray());
    }

    [TestMethod]
    public void Clip_Version11_OptionalScalarInputs()
    {
        double[] x = [-3, -1, 0, 1, 3, double.NaN];
        foreach (bool f32 in new[] { false, true })
        {
            var t = Ref.Tensor(x, [6], f32);
            OnnxTensor S(double v) => f32 ? OnnxTensor.Scalar((float)v) : OnnxTensor.Scalar(v);
            Ref.AssertClose([-2, -1, 0, 1, 2, double.NaN], SingleNode.Run("Clip", [t, S(-2), S(2)])[0], 0, "both");
            Ref.AssertClose([-3, -1, 0, 0.5, 0.5, double.NaN], SingleNode.Run("Clip", [t, null, S(0.5)])[0], 0, "max only");
            Ref.AssertClose([0, 0, 0, 1, 3, double.NaN], SingleNode.Run("Clip", [t, S(0)])[0], 0, "min only");
            Ref.AssertClose([1, 1, 1, 1, 1, double.NaN], SingleNode.Run("Clip", [t, S(2), S(1)])[0], 0, "min > max gives max");
            Ref.AssertClose(x, SingleNode.Run("Clip", [t])[0], 0, "no bounds");
        }
        var i8 = SingleNode.Run("Clip", [OnnxTensor.FromArray(new sbyte[] { -100, 5, 100 }, 3), OnnxTensor.Scalar((sbyte)-10), OnnxTensor.Scalar((sbyte)10)], opset: 12)[0];
        CollectionAssert.AreEqual(new sbyte[] { -10, 5, 10 }, i8.ToArray<sbyte>());
    }

    [TestMethod]
    public void Clip_Version6_Attributes()
    {
        var x = OnnxTensor.FromArray(new[] { -3f, 0.25f, 3f, float.MaxValue }, 4);
        var y = SingleNode.Run("Clip", [x], opset: 6, attributes: [OnnxAttribute.FromFloat("min", -0.5f), OnnxAttribute.FromFloat("max", 0.5f)])[0];
        CollectionAssert.AreEqual(new[] { -0.5f, 0.25f, 0.5f, 0.5f }, y.ToArray<float>());
        var onlyMin = SingleNode.Run("Clip", [x], opset: 6, attributes: OnnxAttribute.FromFloat("min", 0f))[0];
        CollectionAssert.AreEqual(new[] { 0f, 0.25f, 3f, float.MaxValue }, onlyMin.ToArray<float>());
    }

    [TestMethod]
    public void BitShift_BroadcastsAndShiftsOutPastTheWidth()
    {
        var x = OnnxTensor.FromArray(new byte[] { 1, 0x81, 0xFF }, 3);
        var left = SingleNode.Run("BitShift", [x, OnnxTensor.FromArray(new byte[] { 1, 1, 8 }, 3)], attributes: OnnxAttribute.FromString("direction", "LEFT"))[0];
        CollectionAssert.AreEqual(new byte[] { 2, 0x02, 0 }, left.ToArray<byte>());
        var right = SingleNode.Run("BitShift", [OnnxTensor.FromArray(new ulong[] { 1UL << 63, 12 }, 2), OnnxTensor.Scalar(2UL)],
            attributes: OnnxAttribute.FromString("direction", "RIGHT"))[0];
        CollectionAssert.AreEqual(new ulong[] { 1UL << 61, 3 }, right.ToArray<ulong>());
    }
}
