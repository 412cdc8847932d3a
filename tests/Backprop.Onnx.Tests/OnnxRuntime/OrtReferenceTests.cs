using Backprop.Onnx.Export;
using Backprop.Onnx.IR;
using Backprop.Onnx.OnnxRuntime;
using Backprop.Onnx.Tests.Import;
using Backprop.Onnx.Tests.Support;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;

namespace Backprop.Onnx.Tests.OnnxRuntime;

/// <summary>
/// <see cref="OrtReference"/>: tensors of every carried element type go to ONNX Runtime and back bit for bit (directly,
/// and through an Identity model), models run with hand-checked results, and <see cref="OrtReference.TryLoad"/> tells
/// accepted models from rejected ones.
/// </summary>
[TestClass]
public sealed class OrtReferenceTests
{
    /// <summary>Tensors of each type with awkward values: extremes, NaN payloads, -0, subnormals, empty and odd shapes.</summary>
    private static IEnumerable<object[]> Tensors()
    {
        yield return [OnnxTensor.FromArray(new[] { 1.5f, -0f, float.NaN, BitConverter.Int32BitsToSingle(0x7FC0_1234), float.Epsilon, float.NegativeInfinity }, 2, 3)];
        yield return [OnnxTensor.FromArray(new[] { Math.PI, -0d, double.NaN, double.Epsilon, double.MaxValue }, 5)];
        yield return [OnnxTensor.FromArray(new[] { (Half)1.5f, Half.NaN, Half.Epsilon, Half.NegativeZero, Half.MaxValue }, 5)];
        yield return [OnnxTensor.FromBuffer(DataType.BFloat16, new ushort[] { 0x3FC0, 0x7FC1, 0x8000, 0x0001 }, 2, 2)];
        yield return [OnnxTensor.FromArray(new sbyte[] { sbyte.MinValue, -1, 0, sbyte.MaxValue }, 4)];
        yield return [OnnxTensor.FromArray(new byte[] { 0, 1, 254, 255 }, 4)];
        yield return [OnnxTensor.FromArray(new short[] { short.MinValue, -1, short.MaxValue }, 3)];
        yield return [OnnxTensor.FromArray(new ushort[] { 0, 1, ushort.MaxValue }, 3)];
        yield return [OnnxTensor.FromArray(new[] { int.MinValue, -1, int.MaxValue }, 3)];
        yield return [OnnxTensor.FromArray(new uint[] { 0, 1, uint.MaxValue }, 3)];
        yield return [OnnxTensor.FromArray(new[] { long.MinValue, -1L, long.MaxValue }, 3)];
        yield return [OnnxTensor.FromArray(new ulong[] { 0, 1, ulong.MaxValue }, 3)];
        yield return [OnnxTensor.FromArray(new[] { true, false, true }, 3)];
        yield return [OnnxTensor.FromArray(new byte[][] { [], "abc"u8.ToArray(), "zürich 東京"u8.ToArray(), [0xFF, 0xFE, 0x00, 0x41] }, 2, 2)];
        yield return [OnnxTensor.Scalar(42.25f)];
        yield return [OnnxTensor.FromArray(Array.Empty<float>(), 0, 3)];
        yield return [OnnxTensor.FromArray(Array.Empty<byte[]>(), 0)];
        yield return [OnnxTensor.FromArray(Enumerable.Range(0, 17).Select(i => i * 1.25 - 3).ToArray(), 17)];
    }

    public static string Name(System.Reflection.MethodInfo _, object?[]? data) => data?[0]?.ToString() ?? "";

    [TestMethod]
    [DynamicData(nameof(Tensors), DynamicDataDisplayName = nameof(Name))]
    public void Conversion_ToOrtValueAndBack_IsBitExact(OnnxTensor tensor)
    {
        using var value = OrtTensorConversions.ToOrtValue(tensor);
        var back = OrtTensorConversions.FromOrtValue(value);
        Assert.IsTrue(tensor.ContentEquals(back), $"{tensor} came back as {back}");
    }

    [TestMethod]
    [DynamicData(nameof(Tensors), DynamicDataDisplayName = nameof(Name))]
    public void Identity_OnOnnxRuntime_ReturnsTheInputBitForBit(OnnxTensor tensor)
    {
        var model = SingleNode.Model("Identity", [tensor]);
        model.Graph.Outputs[0].ElementType = tensor.ElementType;
        var output = OrtReference.Run(model, new Dictionary<string, OnnxTensor> { ["x0"] = tensor })["y0"];
        Assert.IsTrue(tensor.ContentEquals(output), $"{tensor} came back as {output}");
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void Run_ComputesTheModel(int threads)
    {
        // Z = Relu(X + W), W = {1, 2}
        byte[] bytes = ModelProtos.Valid().ToByteArray();
        var x = OnnxTensor.FromArray(new[] { -5f, 0.5f }, 2);
        var outputs = OrtReference.Run(bytes, new Dictionary<string, OnnxTensor> { ["X"] = x }, threads);
        CollectionAssert.AreEqual(new[] { "Z" }, outputs.Keys.ToArray());
        CollectionAssert.AreEqual(new[] { 0f, 2.5f }, outputs["Z"].ToArray<float>());
    }

    [TestMethod]
    public void Run_WithAMissingInput_RaisesOnnxRuntimeException() =>
        Assert.Throws<OnnxRuntimeException>(() => OrtReference.Run(ModelProtos.Valid().ToByteArray(), new Dictionary<string, OnnxTensor>()));

    [TestMethod]
    public void TryLoad_AcceptsAValidModel()
    {
        Assert.IsTrue(OrtReference.TryLoad(ModelProtos.Valid().ToByteArray(), out string error), error);
        Assert.AreEqual("", error);
    }

    [TestMethod]
    public void TryLoad_RejectsGarbage_AndAnUnknownOp_WithOnnxRuntimesReason()
    {
        Assert.IsFalse(OrtReference.TryLoad("not a model"u8.ToArray(), out string garbage));
        Assert.IsNotEmpty(garbage);

        var model = ModelProtos.Valid();
        model.Graph.Node[1].OpType = "NoSuchOp";
        Assert.IsFalse(OrtReference.TryLoad(model.ToByteArray(), out string unknown));
        Assert.Contains("NoSuchOp", unknown);
    }

    [TestMethod]
    public void ComplexAndFloat8Tensors_AreNotConverted()
    {
        var complex = OnnxTensor.FromBuffer(DataType.Complex64, new byte[8], 1);
        Assert.Throws<NotSupportedException>(() => OrtTensorConversions.ToOrtValue(complex));
        Assert.IsFalse(OrtTensorConversions.IsSupported(DataType.Float8E4M3FN));
    }

    [TestMethod]
    public void ExportedModels_RunOnOnnxRuntime_LikeTheBytesTheyCameFrom()
    {
        var model = Backprop.Onnx.Import.ModelImporter.Load(ModelProtos.Valid().ToByteArray());
        var x = OnnxTensor.FromArray(new[] { 3f, -9f }, 2);
        var inputs = new Dictionary<string, OnnxTensor> { ["X"] = x };
        var viaIr = OrtReference.Run(model, inputs)["Z"];
        var viaBytes = OrtReference.Run(ModelExporter.ToBytes(model), inputs)["Z"];
        Assert.IsTrue(viaIr.ContentEquals(viaBytes));
        CollectionAssert.AreEqual(new[] { 4f, 0f }, viaIr.ToArray<float>());
    }
}
