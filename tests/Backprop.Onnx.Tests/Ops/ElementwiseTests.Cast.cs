using System.Text;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

public sealed partial class ElementwiseTests
{
    private static OnnxTensor Cast(OnnxTensor x, DataType to, long opset = 13) =>
        SingleNode.Run("Cast", [x], opset: opset, attributes: OnnxAttribute.FromInt("to", (long)to))[0];

    [TestMethod]
    public void Cast_FloatToIntegers_TruncatesTowardZeroAndSaturates()
    {
        var x = OnnxTensor.FromArray(new[] { 2.7f, -2.7f, 0f, 1e10f, float.NaN }, 5);
        CollectionAssert.AreEqual(new[] { 2, -2, 0, int.MaxValue, 0 }, Cast(x, DataType.Int32).ToArray<int>());
        CollectionAssert.AreEqual(new sbyte[] { 2, -2, 0, sbyte.MaxValue, 0 }, Cast(x, DataType.Int8).ToArray<sbyte>());
        CollectionAssert.AreEqual(new byte[] { 2, 0, 0, byte.MaxValue, 0 }, Cast(x, DataType.UInt8).ToArray<byte>());
    }

    [TestMethod]
    public void Cast_IntegersWrapWhenNarrowing_AndWidenExactly()
    {
        var x = OnnxTensor.FromArray(new long[] { 300, -1, 1L << 40, 9007199254740993 }, 4);
        CollectionAssert.AreEqual(new byte[] { 44, 255, 0, 1 }, Cast(x, DataType.UInt8).ToArray<byte>());
        CollectionAssert.AreEqual(new ulong[] { 300, ulong.MaxValue, 1UL << 40, 9007199254740993 }, Cast(x, DataType.UInt64).ToArray<ulong>());
        CollectionAssert.AreEqual(new[] { 300.0, -1, 1099511627776, 9007199254740992 }, Cast(x, DataType.Double).ToArray<double>());
    }

    [TestMethod]
    public void Cast_ToAndFromBool()
    {
        var x = OnnxTensor.FromArray(new[] { 0.0, -0.5, double.NaN, 3 }, 4);
        CollectionAssert.AreEqual(new[] { false, true, true, true }, Cast(x, DataType.Bool).ToArray<bool>());
        CollectionAssert.AreEqual(new[] { 1f, 0f }, Cast(OnnxTensor.FromArray(new[] { true, false }, 2), DataType.Float).ToArray<float>());
        CollectionAssert.AreEqual(new long[] { 1, 0 }, Cast(OnnxTensor.FromArray(new[] { true, false }, 2), DataType.Int64).ToArray<long>());
    }

    [TestMethod]
    public void Cast_Float16_RoundsToNearestEven()
    {
        // 1 + 2^-11 is halfway between float16 1 and 1 + 2^-10: ties go to the even significand (1).
        var x = OnnxTensor.FromArray(new[] { 1 + Math.Pow(2, -11), 1 + 3 * Math.Pow(2, -11), 65504.0, 1e6 }, 4);
        var h = Cast(x, DataType.Float16).ToArray<Half>();
        CollectionAssert.AreEqual(new[] { (Half)1.0, (Half)(1 + Math.Pow(2, -9)), Half.MaxValue, Half.PositiveInfinity }, h);
        var back = Cast(OnnxTensor.FromArray(new[] { (Half)0.333, (Half)(-2) }, 2), DataType.Float).ToArray<float>();
        CollectionAssert.AreEqual(new[] { (float)(Half)0.333, -2f }, back);
    }

    [TestMethod]
    public void Cast_BFloat16_KeepsTheUpperBits()
    {
        // 0x3EF5EEB0 → 0x3EF5 (the bits below are dropped, as the backend data of Cast-13 expects).
        var x = OnnxTensor.FromArray(new[] { BitConverter.UInt32BitsToSingle(0x3EF5EEB0), -1.5f, float.NaN }, 3);
        var b = Cast(x, DataType.BFloat16);
        Assert.AreEqual(DataType.BFloat16, b.ElementType);
        CollectionAssert.AreEqual(new ushort[] { 0x3EF5, 0xBFC0, 0x7FC0 }, b.ToArray<ushort>());
        var f = Cast(b, DataType.Float).ToArray<float>();
        Assert.AreEqual(BitConverter.UInt32BitsToSingle(0x3EF50000), f[0]);
        Assert.AreEqual(-1.5f, f[1]);
        Assert.IsTrue(float.IsNaN(f[2]));
    }

    [TestMethod]
    public void Cast_Strings()
    {
        string[] text = ["0.5", "-2", "NaN", "INF", "+INF", "-INF", "1e-3"];
        var s = new OnnxTensor(DataType.String, [text.Length], text.Select(Encoding.UTF8.GetBytes).ToArray(), text.Length);
        var f = Cast(s, DataType.Float).ToArray<float>();
        Assert.AreEqual(0.5f, f[0]);
        Assert.AreEqual(-2f, f[1]);
        Assert.IsTrue(float.IsNaN(f[2]));
        CollectionAssert.AreEqual(new[] { float.PositiveInfinity, float.PositiveInfinity, float.NegativeInfinity, 1e-3f }, f[3..]);
        var back = Cast(OnnxTensor.FromArray(new[] { 0.9767611f, -2f, float.NegativeInfinity }, 3), DataType.String);
        CollectionAssert.AreEqual(new[] { "0.9767611", "-2", "-INF" }, ((byte[][])back.Buffer).Select(b => Encoding.UTF8.GetString(b)).ToArray());
        var bad = new OnnxTensor(DataType.String, [1], new[] { "abc"u8.ToArray() }, 1);
        Assert.ThrowsExactly<InvalidInputException>(() => Cast(bad, DataType.Double));
    }

    [TestMethod]
    public void Cast_Version1_TakesATypeName_AndCastLikeTakesTheSecondInputsType()
    {
        var y = SingleNode.Run("Cast", [OnnxTensor.FromArray(new[] { 1.9, -1.9 }, 2)], opset: 1, attributes: OnnxAttribute.FromString("to", "INT64"))[0];
        CollectionAssert.AreEqual(new long[] { 1, -1 }, y.ToArray<long>());
        var like = SingleNode.Run("CastLike", [OnnxTensor.FromArray(new[] { 1.25f }, 1), OnnxTensor.Scalar(0.0)], opset: 15)[0];
        Assert.AreEqual(DataType.Double, like.ElementType);
        Assert.AreEqual(1.25, like.ToArray<double>()[0]);
    }

    [TestMethod]
    public void Cast_ToFloat8_IsUnsupportedWhenCompiled()
    {
        var model = SingleNode.Model("Cast", [OnnxTensor.FromArray(new[] { 1f }, 1)], attributes: OnnxAttribute.FromInt("to", (long)DataType.Float8E4M3FN));
        var e = Assert.ThrowsExactly<UnsupportedOperatorException>(() => ExecutionPlan.Compile(model));
        StringAssert.Contains(e.Message, "float8e4m3fn");
    }
}
