using System.Runtime.InteropServices;

namespace Backprop.Onnx.IR;

/// <summary>
/// A dense, row-major tensor that owns its buffer: an element type, a shape, and an array of the element type's
/// storage type (see <see cref="DataTypes.StorageType"/>). Scalars have an empty shape and one element.
/// </summary>
/// <remarks>
/// The buffer may be longer than <see cref="ElementCount"/> (pooled buffers in the executor); only the first
/// <see cref="ElementCount"/> elements are the tensor. Opaque types (complex, float8, 4-bit) keep their raw bytes.
/// </remarks>
public sealed class OnnxTensor
{
    private readonly int[] _shape;

    internal OnnxTensor(DataType elementType, int[] shape, Array buffer, long elementCount)
    {
        ElementType = elementType;
        _shape = shape;
        Buffer = buffer;
        ElementCount = elementCount;
    }

    /// <summary>The element type.</summary>
    public DataType ElementType { get; }

    /// <summary>The dimensions, outermost first; empty for a scalar.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>The number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>The product of the dimensions.</summary>
    public long ElementCount { get; }

    internal int[] Dims => _shape;

    internal Array Buffer { get; }

    /// <summary>Creates a zero-filled tensor.</summary>
    /// <param name="elementType">A defined, non-opaque element type.</param>
    /// <param name="shape">Non-negative dimensions whose product fits in an <see cref="int"/>.</param>
    /// <exception cref="ArgumentException">A negative dimension, too many elements, or an undefined type.</exception>
    public static OnnxTensor Zeros(DataType elementType, ReadOnlySpan<int> shape)
    {
        long count = CheckedCount(shape);
        long storageCount = DataTypes.IsOpaque(elementType) ? DataTypes.RawByteLength(elementType, count) : count;
        if (!DataTypes.IsDefined(elementType)) throw new ArgumentException($"Undefined element type {(int)elementType}.", nameof(elementType));
        Array buffer = Array.CreateInstance(DataTypes.StorageType(elementType), storageCount);
        if (elementType == DataType.String)
        {
            var strings = (byte[][])buffer;
            for (int i = 0; i < strings.Length; i++) strings[i] = [];
        }
        return new OnnxTensor(elementType, shape.ToArray(), buffer, count);
    }

    /// <summary>Wraps <paramref name="data"/> (not copied) as a tensor of the given shape.</summary>
    /// <typeparam name="T">A storage type: float, double, Half, long, int, bool, byte, sbyte, short, ushort, uint, ulong.</typeparam>
    /// <param name="data">Row-major elements; its length must equal the product of <paramref name="shape"/>.</param>
    /// <param name="shape">Dimensions.</param>
    /// <exception cref="ArgumentException">The length does not match the shape.</exception>
    public static OnnxTensor FromArray<T>(T[] data, params int[] shape)
    {
        long count = CheckedCount(shape);
        if (data.LongLength != count) throw new ArgumentException($"{data.Length} elements do not fill shape [{string.Join(',', shape)}].", nameof(data));
        return new OnnxTensor(DataTypes.Of<T>(), (int[])shape.Clone(), data, count);
    }

    /// <summary>Wraps a buffer of the storage type of <paramref name="elementType"/>; used for bfloat16 (ushort) and opaque types (bytes).</summary>
    /// <exception cref="ArgumentException">The buffer's type or length does not fit.</exception>
    public static OnnxTensor FromBuffer(DataType elementType, Array data, params int[] shape)
    {
        long count = CheckedCount(shape);
        if (data.GetType().GetElementType() != DataTypes.StorageType(elementType))
            throw new ArgumentException($"A {DataTypes.OnnxName(elementType)} tensor is stored as {DataTypes.StorageType(elementType).Name}[], not {data.GetType().Name}.", nameof(data));
        long need = DataTypes.IsOpaque(elementType) ? DataTypes.RawByteLength(elementType, count) : count;
        if (data.LongLength < need) throw new ArgumentException($"{data.Length} elements do not fill shape [{string.Join(',', shape)}].", nameof(data));
        return new OnnxTensor(elementType, (int[])shape.Clone(), data, count);
    }

    /// <summary>A scalar (rank-0) tensor.</summary>
    public static OnnxTensor Scalar<T>(T value) => FromArray(new[] { value });

    /// <summary>The elements as a span of the storage type.</summary>
    /// <exception cref="InvalidOperationException"><typeparamref name="T"/> is not this tensor's storage type.</exception>
    public Span<T> AsSpan<T>()
    {
        if (Buffer is not T[] array)
            throw new InvalidOperationException($"A {DataTypes.OnnxName(ElementType)} tensor is not a span of {typeof(T).Name}.");
        return array.AsSpan(0, checked((int)StorageLength));
    }

    /// <summary>A copy of the elements as an array of the storage type.</summary>
    public T[] ToArray<T>() => AsSpan<T>().ToArray();

    internal long StorageLength => DataTypes.IsOpaque(ElementType) ? DataTypes.RawByteLength(ElementType, ElementCount) : ElementCount;

    /// <summary>The elements in raw little-endian encoding (the <c>raw_data</c> of a TensorProto); not for strings.</summary>
    /// <exception cref="InvalidOperationException">The tensor holds strings.</exception>
    public byte[] ToRawBytes()
    {
        if (ElementType == DataType.String) throw new InvalidOperationException("String tensors have no raw encoding.");
        if (Buffer is bool[] bools)
        {
            var bytes = new byte[ElementCount];
            for (long i = 0; i < ElementCount; i++) bytes[i] = bools[i] ? (byte)1 : (byte)0;
            return bytes;
        }
        int length = checked((int)DataTypes.RawByteLength(ElementType, ElementCount));
        var result = new byte[length];
        ref byte start = ref MemoryMarshal.GetArrayDataReference(Buffer);
        MemoryMarshal.CreateReadOnlySpan(ref start, length).CopyTo(result);
        return result;
    }

    /// <summary>A deep copy with the same shape and type.</summary>
    public OnnxTensor Clone()
    {
        Array copy = Array.CreateInstance(DataTypes.StorageType(ElementType), StorageLength);
        Array.Copy(Buffer, copy, StorageLength);
        return new OnnxTensor(ElementType, (int[])_shape.Clone(), copy, ElementCount);
    }

    /// <summary>A tensor sharing this buffer with another shape of the same element count (a Reshape without copying).</summary>
    /// <exception cref="ArgumentException">The element counts differ.</exception>
    public OnnxTensor Reshape(ReadOnlySpan<int> shape)
    {
        long count = CheckedCount(shape);
        if (count != ElementCount) throw new ArgumentException($"Cannot view {ElementCount} elements as [{string.Join(',', shape.ToArray())}].", nameof(shape));
        return new OnnxTensor(ElementType, shape.ToArray(), Buffer, count);
    }

    /// <summary>True when both tensors have the same type, shape and element bytes (NaNs compare by bit pattern).</summary>
    public bool ContentEquals(OnnxTensor other)
    {
        if (other.ElementType != ElementType || !other.Shape.SequenceEqual(Shape)) return false;
        if (ElementType == DataType.String)
        {
            var a = (byte[][])Buffer; var b = (byte[][])other.Buffer;
            for (long i = 0; i < ElementCount; i++) if (!a[i].AsSpan().SequenceEqual(b[i])) return false;
            return true;
        }
        return ToRawBytes().AsSpan().SequenceEqual(other.ToRawBytes());
    }

    /// <summary>The element at flat index <paramref name="index"/> converted to double (numeric types only).</summary>
    public double GetDouble(long index) => Buffer switch
    {
        float[] a => a[index],
        double[] a => a[index],
        Half[] a => (double)a[index],
        long[] a => a[index],
        int[] a => a[index],
        bool[] a => a[index] ? 1 : 0,
        byte[] a when ElementType == DataType.UInt8 => a[index],
        sbyte[] a => a[index],
        short[] a => a[index],
        ushort[] a when ElementType == DataType.BFloat16 => BitConverter.Int32BitsToSingle(a[index] << 16),
        ushort[] a => a[index],
        uint[] a => a[index],
        ulong[] a => a[index],
        _ => throw new InvalidOperationException($"A {DataTypes.OnnxName(ElementType)} tensor has no numeric value."),
    };

    /// <summary>Shape as text, e.g. <c>[2,3]</c>.</summary>
    public override string ToString() => $"{DataTypes.OnnxName(ElementType)}[{string.Join(',', _shape)}]";

    internal static long CheckedCount(ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Negative dimension {d}.");
            count *= d;
            if (count > Array.MaxLength) throw new ArgumentException($"Shape [{string.Join(',', shape.ToArray())}] has more elements than an array holds.");
        }
        return count;
    }
}
