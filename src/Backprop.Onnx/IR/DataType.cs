namespace Backprop.Onnx.IR;

/// <summary>
/// Element type of a tensor, numbered as <c>TensorProto.DataType</c> in the ONNX IR specification
/// (section "Tensor Element Types"), so a value converts to and from the wire format unchanged.
/// </summary>
public enum DataType
{
    /// <summary>Not set; never valid for a tensor.</summary>
    Undefined = 0,
    /// <summary>IEEE 754 binary32 (<see cref="float"/>).</summary>
    Float = 1,
    /// <summary>Unsigned 8-bit integer (<see cref="byte"/>).</summary>
    UInt8 = 2,
    /// <summary>Signed 8-bit integer (<see cref="sbyte"/>).</summary>
    Int8 = 3,
    /// <summary>Unsigned 16-bit integer (<see cref="ushort"/>).</summary>
    UInt16 = 4,
    /// <summary>Signed 16-bit integer (<see cref="short"/>).</summary>
    Int16 = 5,
    /// <summary>Signed 32-bit integer (<see cref="int"/>).</summary>
    Int32 = 6,
    /// <summary>Signed 64-bit integer (<see cref="long"/>).</summary>
    Int64 = 7,
    /// <summary>UTF-8 byte string, held opaque as <c>byte[]</c> per element.</summary>
    String = 8,
    /// <summary>Boolean, one byte per element (<see cref="bool"/>).</summary>
    Bool = 9,
    /// <summary>IEEE 754 binary16 (<see cref="Half"/>).</summary>
    Float16 = 10,
    /// <summary>IEEE 754 binary64 (<see cref="double"/>).</summary>
    Double = 11,
    /// <summary>Unsigned 32-bit integer (<see cref="uint"/>).</summary>
    UInt32 = 12,
    /// <summary>Unsigned 64-bit integer (<see cref="ulong"/>).</summary>
    UInt64 = 13,
    /// <summary>Complex of two binary32; held as raw bytes (no kernel computes on it).</summary>
    Complex64 = 14,
    /// <summary>Complex of two binary64; held as raw bytes (no kernel computes on it).</summary>
    Complex128 = 15,
    /// <summary>bfloat16 (the upper 16 bits of a binary32), held as its bit pattern in <see cref="ushort"/>.</summary>
    BFloat16 = 16,
    /// <summary>8-bit float E4M3FN; held as raw bytes.</summary>
    Float8E4M3FN = 17,
    /// <summary>8-bit float E4M3FNUZ; held as raw bytes.</summary>
    Float8E4M3FNUZ = 18,
    /// <summary>8-bit float E5M2; held as raw bytes.</summary>
    Float8E5M2 = 19,
    /// <summary>8-bit float E5M2FNUZ; held as raw bytes.</summary>
    Float8E5M2FNUZ = 20,
    /// <summary>Unsigned 4-bit integer, two per byte; held as raw bytes.</summary>
    UInt4 = 21,
    /// <summary>Signed 4-bit integer, two per byte; held as raw bytes.</summary>
    Int4 = 22,
    /// <summary>4-bit float E2M1, two per byte; held as raw bytes.</summary>
    Float4E2M1 = 23,
}

/// <summary>Facts about <see cref="DataType"/> values: storage type, byte size, numeric class.</summary>
public static class DataTypes
{
    /// <summary>True for a value the specification defines (1–23).</summary>
    public static bool IsDefined(DataType type) => type > DataType.Undefined && type <= DataType.Float4E2M1;

    /// <summary>True for float, double, float16 and bfloat16: the types gradients flow through.</summary>
    public static bool IsFloatingPoint(DataType type) =>
        type is DataType.Float or DataType.Double or DataType.Float16 or DataType.BFloat16;

    /// <summary>True for the signed and unsigned integer types of 8 to 64 bits.</summary>
    public static bool IsInteger(DataType type) => type is DataType.Int8 or DataType.Int16 or DataType.Int32 or DataType.Int64
        or DataType.UInt8 or DataType.UInt16 or DataType.UInt32 or DataType.UInt64;

    /// <summary>
    /// True where the in-memory buffer is an array of raw bytes holding the wire encoding (complex, float8, 4-bit types):
    /// such tensors are carried through import and export but no kernel computes on them.
    /// </summary>
    public static bool IsOpaque(DataType type) => type is DataType.Complex64 or DataType.Complex128
        or DataType.Float8E4M3FN or DataType.Float8E4M3FNUZ or DataType.Float8E5M2 or DataType.Float8E5M2FNUZ
        or DataType.UInt4 or DataType.Int4 or DataType.Float4E2M1;

    /// <summary>Bytes one element takes in raw (little-endian) encoding; 0 for strings and the 4-bit types (see <see cref="RawByteLength"/>).</summary>
    public static int ElementSize(DataType type) => type switch
    {
        DataType.Float or DataType.Int32 or DataType.UInt32 => 4,
        DataType.Double or DataType.Int64 or DataType.UInt64 or DataType.Complex64 => 8,
        DataType.Complex128 => 16,
        DataType.Float16 or DataType.BFloat16 or DataType.Int16 or DataType.UInt16 => 2,
        DataType.UInt8 or DataType.Int8 or DataType.Bool or DataType.Float8E4M3FN or DataType.Float8E4M3FNUZ
            or DataType.Float8E5M2 or DataType.Float8E5M2FNUZ => 1,
        _ => 0,
    };

    /// <summary>Length in bytes of the raw encoding of <paramref name="elementCount"/> elements; -1 for strings.</summary>
    public static long RawByteLength(DataType type, long elementCount) => type switch
    {
        DataType.String => -1,
        DataType.UInt4 or DataType.Int4 or DataType.Float4E2M1 => (elementCount + 1) / 2,
        _ => elementCount * ElementSize(type),
    };

    /// <summary>The CLR element type of the in-memory buffer (<c>byte[]</c> for strings' elements and opaque types).</summary>
    public static Type StorageType(DataType type) => type switch
    {
        DataType.Float => typeof(float),
        DataType.Double => typeof(double),
        DataType.Float16 => typeof(Half),
        DataType.BFloat16 => typeof(ushort),
        DataType.UInt8 => typeof(byte),
        DataType.Int8 => typeof(sbyte),
        DataType.UInt16 => typeof(ushort),
        DataType.Int16 => typeof(short),
        DataType.Int32 => typeof(int),
        DataType.Int64 => typeof(long),
        DataType.UInt32 => typeof(uint),
        DataType.UInt64 => typeof(ulong),
        DataType.Bool => typeof(bool),
        DataType.String => typeof(byte[]),
        _ => typeof(byte),
    };

    /// <summary>The <see cref="DataType"/> whose storage is <typeparamref name="T"/> (bfloat16 and uint16 share <see cref="ushort"/>: this returns UInt16).</summary>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not a storage type.</exception>
    public static DataType Of<T>() =>
        typeof(T) == typeof(float) ? DataType.Float :
        typeof(T) == typeof(double) ? DataType.Double :
        typeof(T) == typeof(long) ? DataType.Int64 :
        typeof(T) == typeof(int) ? DataType.Int32 :
        typeof(T) == typeof(bool) ? DataType.Bool :
        typeof(T) == typeof(Half) ? DataType.Float16 :
        typeof(T) == typeof(byte) ? DataType.UInt8 :
        typeof(T) == typeof(sbyte) ? DataType.Int8 :
        typeof(T) == typeof(short) ? DataType.Int16 :
        typeof(T) == typeof(ushort) ? DataType.UInt16 :
        typeof(T) == typeof(uint) ? DataType.UInt32 :
        typeof(T) == typeof(ulong) ? DataType.UInt64 :
        typeof(T) == typeof(byte[]) ? DataType.String :
        throw new NotSupportedException($"{typeof(T).Name} is not a tensor storage type.");

    /// <summary>The ONNX spelling of the type, as in the operator specification's type constraints (e.g. <c>tensor(float)</c> → <c>float</c>).</summary>
    public static string OnnxName(DataType type) => type switch
    {
        DataType.Float => "float",
        DataType.Double => "double",
        DataType.Float16 => "float16",
        DataType.BFloat16 => "bfloat16",
        DataType.UInt8 => "uint8",
        DataType.Int8 => "int8",
        DataType.UInt16 => "uint16",
        DataType.Int16 => "int16",
        DataType.Int32 => "int32",
        DataType.Int64 => "int64",
        DataType.UInt32 => "uint32",
        DataType.UInt64 => "uint64",
        DataType.Bool => "bool",
        DataType.String => "string",
        _ => type.ToString().ToLowerInvariant(),
    };
}
