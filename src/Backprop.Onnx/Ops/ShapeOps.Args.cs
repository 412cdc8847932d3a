using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Reading the small integer and scalar tensors that shape and indexing ops take as inputs (shapes, axes, starts,
/// repeats, k), normalizing axes, and building one-element tensors of any element type.
/// </summary>
internal static class OpArgs
{
    /// <summary>The elements of an integer tensor (int64, int32 or another integer type) as longs.</summary>
    public static long[] Int64s(KernelContext ctx, OnnxTensor t, string what)
    {
        switch (t.ElementType)
        {
            case DataType.Int64: return t.AsSpan<long>().ToArray();
            case DataType.Int32:
            {
                var s = t.AsSpan<int>();
                var r = new long[s.Length];
                for (int i = 0; i < s.Length; i++) r[i] = s[i];
                return r;
            }
            default:
                if (!DataTypes.IsInteger(t.ElementType)) throw ctx.Invalid($"{what} must be an integer tensor, got {DataTypes.OnnxName(t.ElementType)}");
                var v = new long[t.ElementCount];
                for (long i = 0; i < v.Length; i++) v[i] = checked((long)t.GetDouble(i));
                return v;
        }
    }

    /// <summary>
    /// The elements of an integer tensor as longs without allocating: an int64 tensor's own elements, or the others
    /// converted into <paramref name="scratch"/> (a new array only when it is too short).
    /// </summary>
    public static ReadOnlySpan<long> Int64s(KernelContext ctx, OnnxTensor t, string what, Span<long> scratch)
    {
        if (t.ElementType == DataType.Int64) return t.AsSpan<long>();
        if (!DataTypes.IsInteger(t.ElementType)) throw ctx.Invalid($"{what} must be an integer tensor, got {DataTypes.OnnxName(t.ElementType)}");
        var r = t.ElementCount <= scratch.Length ? scratch[..(int)t.ElementCount] : new long[t.ElementCount];
        if (t.ElementType == DataType.Int32)
        {
            var s = t.AsSpan<int>();
            for (int i = 0; i < s.Length; i++) r[i] = s[i];
        }
        else for (int i = 0; i < r.Length; i++) r[i] = checked((long)t.GetDouble(i));
        return r;
    }

    /// <summary>As <see cref="Dims(KernelContext, long[], string)"/>, into <paramref name="dims"/> (as long as <paramref name="shape"/>).</summary>
    public static void Dims(KernelContext ctx, ReadOnlySpan<long> shape, Span<int> dims, string what)
    {
        long count = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 0 || shape[i] > int.MaxValue) throw ctx.Invalid($"{what} [{string.Join(',', shape.ToArray())}] has an invalid dimension {shape[i]}");
            dims[i] = (int)shape[i];
            count *= dims[i];
            if (count > Array.MaxLength) throw ctx.Invalid($"{what} [{string.Join(',', shape.ToArray())}] has more elements than an array holds");
        }
    }

    /// <summary>Shapes up to this rank are read into stack buffers by the view and shape kernels (longer ones allocate).</summary>
    public const int StackRank = 16;

    /// <summary>The single element of a scalar or one-element integer tensor.</summary>
    public static long ScalarInt64(KernelContext ctx, OnnxTensor t, string what)
    {
        if (t.ElementCount != 1) throw ctx.Invalid($"{what} must hold one element, got shape {Format(t.Dims)}");
        return Int64s(ctx, t, what)[0];
    }

    /// <summary>The elements of an optional integer input, or null when the input is absent.</summary>
    public static long[]? OptionalInt64s(KernelContext ctx, int index, string what) =>
        ctx.Input(index) is { } t ? Int64s(ctx, t, what) : null;

    /// <summary><paramref name="axis"/> in [0, rank) after adding <paramref name="rank"/> to a negative value; invalid otherwise.</summary>
    public static int Axis(KernelContext ctx, long axis, int rank, string what = "axis")
    {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw ctx.Invalid($"{what} {axis} is out of range for rank {rank}");
        return (int)a;
    }

    /// <summary>Distinct normalized axes; invalid on a duplicate or an out-of-range value.</summary>
    public static int[] Axes(KernelContext ctx, long[] axes, int rank, string what = "axes")
    {
        var result = new int[axes.Length];
        Axes(ctx, axes, rank, result, what);
        return result;
    }

    /// <summary>As <see cref="Axes(KernelContext, long[], int, string)"/>, into <paramref name="result"/> (as long as <paramref name="axes"/>).</summary>
    public static void Axes(KernelContext ctx, ReadOnlySpan<long> axes, int rank, Span<int> result, string what = "axes")
    {
        for (int i = 0; i < axes.Length; i++)
        {
            result[i] = Axis(ctx, axes[i], rank, what);
            for (int j = 0; j < i; j++)
                if (result[j] == result[i]) throw ctx.Invalid($"{what} [{string.Join(',', axes.ToArray())}] repeat axis {result[i]}");
        }
    }

    /// <summary>A shape as text, e.g. <c>[2,3]</c>.</summary>
    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(',', shape.ToArray()) + "]";

    /// <summary>The product of <paramref name="shape"/>[from..to).</summary>
    public static long Product(ReadOnlySpan<int> shape, int from, int to)
    {
        long p = 1;
        for (int i = from; i < to; i++) p *= shape[i];
        return p;
    }

    /// <summary>Converts a shape given as longs to ints, rejecting negative or huge dimensions.</summary>
    public static int[] Dims(KernelContext ctx, long[] shape, string what)
    {
        var dims = new int[shape.Length];
        Dims(ctx, shape, dims, what);
        return dims;
    }

    /// <summary>A one-element tensor of <paramref name="type"/> holding <paramref name="value"/> converted (saturating for integers).</summary>
    public static OnnxTensor ScalarOf(DataType type, double value)
    {
        Array data = type switch
        {
            DataType.Float => new[] { (float)value },
            DataType.Double => new[] { value },
            DataType.Float16 => new[] { (Half)value },
            DataType.BFloat16 => new[] { BFloat16Bits((float)value) },
            DataType.Bool => new[] { value != 0 },
            DataType.Int8 => new[] { (sbyte)Math.Clamp(value, sbyte.MinValue, sbyte.MaxValue) },
            DataType.UInt8 => new[] { (byte)Math.Clamp(value, byte.MinValue, byte.MaxValue) },
            DataType.Int16 => new[] { (short)Math.Clamp(value, short.MinValue, short.MaxValue) },
            DataType.UInt16 => new[] { (ushort)Math.Clamp(value, ushort.MinValue, ushort.MaxValue) },
            DataType.Int32 => new[] { (int)Math.Clamp(value, int.MinValue, int.MaxValue) },
            DataType.UInt32 => new[] { (uint)Math.Clamp(value, uint.MinValue, uint.MaxValue) },
            DataType.Int64 => new[] { (long)Math.Clamp(value, long.MinValue, long.MaxValue) },
            DataType.UInt64 => new[] { (ulong)Math.Clamp(value, ulong.MinValue, ulong.MaxValue) },
            _ => throw new NotSupportedException($"no numeric scalar of type {DataTypes.OnnxName(type)}"),
        };
        return OnnxTensor.FromBuffer(type, data, 1);
    }

    /// <summary>True for the element types <see cref="ScalarOf"/> can build.</summary>
    public static bool IsNumeric(DataType type) =>
        DataTypes.IsFloatingPoint(type) || DataTypes.IsInteger(type) || type == DataType.Bool;

    /// <summary>The bfloat16 bit pattern of <paramref name="f"/>, rounding to nearest even (NaN stays NaN).</summary>
    public static ushort BFloat16Bits(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
