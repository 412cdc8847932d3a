using System.Runtime.InteropServices;
using Backprop.Onnx.IR;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Backprop.Onnx.OnnxRuntime;

/// <summary>
/// Copies tensors between <see cref="OnnxTensor"/> and ONNX Runtime's <see cref="OrtValue"/>: float, double, float16,
/// bfloat16, every integer type, bool and string. Both sides use the ONNX wire numbering of element types
/// (<c>TensorProto.DataType</c> = <see cref="TensorElementType"/>) and the raw little-endian layout, so numeric data is
/// copied byte for byte (NaN payloads and the sign of zero survive).
/// </summary>
internal static class OrtTensorConversions
{
    /// <summary>True for the element types these conversions carry.</summary>
    public static bool IsSupported(DataType type) => type is DataType.Float or DataType.Double or DataType.Float16
        or DataType.BFloat16 or DataType.Int8 or DataType.Int16 or DataType.Int32 or DataType.Int64 or DataType.UInt8
        or DataType.UInt16 or DataType.UInt32 or DataType.UInt64 or DataType.Bool or DataType.String;

    /// <summary>A new OrtValue (owning native memory) holding a copy of <paramref name="tensor"/>; the caller disposes it.</summary>
    /// <exception cref="NotSupportedException">The element type is complex, float8 or 4-bit.</exception>
    public static OrtValue ToOrtValue(OnnxTensor tensor)
    {
        if (!IsSupported(tensor.ElementType))
            throw new NotSupportedException($"ONNX Runtime conversion of {DataTypes.OnnxName(tensor.ElementType)} tensors is not implemented.");
        long[] shape = [.. tensor.Dims.Select(d => (long)d)];
        if (tensor.ElementType == DataType.String)
        {
            var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
            try
            {
                var strings = (byte[][])tensor.Buffer;
                for (int i = 0; i < tensor.ElementCount; i++) value.StringTensorSetElementAt(strings[i].AsSpan(), i);
                return value;
            }
            catch
            {
                value.Dispose();
                throw;
            }
        }
        var result = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, (TensorElementType)tensor.ElementType, shape);
        try
        {
            if (tensor.ElementCount > 0) tensor.ToRawBytes().AsSpan().CopyTo(result.GetTensorMutableRawData());
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>A managed copy of a tensor-valued OrtValue.</summary>
    /// <exception cref="NotSupportedException">The value is a sequence, map or optional, or of an element type not carried here.</exception>
    public static OnnxTensor FromOrtValue(OrtValue value)
    {
        if (!value.IsTensor)
            throw new NotSupportedException($"ONNX Runtime value of kind {value.OnnxType} is not a tensor.");
        var info = value.GetTensorTypeAndShape();
        var type = (DataType)(int)info.ElementDataType;
        if (!IsSupported(type))
            throw new NotSupportedException($"ONNX Runtime tensor of element type {info.ElementDataType} is not convertible.");
        int[] shape = [.. info.Shape.Select(d => checked((int)d))];
        long count = 1;
        foreach (int d in shape) count *= d;
        if (type == DataType.String)
        {
            var strings = new byte[count][];
            for (int i = 0; i < count; i++) strings[i] = value.GetStringElementAsSpan(i).ToArray();
            return OnnxTensor.FromBuffer(type, strings, shape);
        }
        ReadOnlySpan<byte> raw = count == 0 ? [] : value.GetTensorMutableRawData();
        if (type == DataType.Bool)
        {
            var bools = new bool[count];
            for (int i = 0; i < bools.Length; i++) bools[i] = raw[i] != 0;
            return OnnxTensor.FromBuffer(type, bools, shape);
        }
        Array buffer = Array.CreateInstance(DataTypes.StorageType(type), count);
        int byteLength = checked((int)DataTypes.RawByteLength(type, count));
        raw[..byteLength].CopyTo(MemoryMarshal.CreateSpan(ref MemoryMarshal.GetArrayDataReference(buffer), byteLength));
        return OnnxTensor.FromBuffer(type, buffer, shape);
    }
}
