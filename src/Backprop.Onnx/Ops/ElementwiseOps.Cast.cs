using System.Globalization;
using System.Numerics;
using System.Text;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Cast and CastLike (ONNX "Cast" versions 1, 6, 9, 13; "CastLike" 15) between the numeric types, bool, float16,
/// bfloat16 and string. Float to integer truncates toward zero and saturates (NaN gives 0); integer narrowing wraps;
/// to bool is x != 0; float to float16 rounds to nearest even, to bfloat16 truncates (see <see cref="FloatToBFloat16"/>). Strings parse as invariant-culture numbers
/// (also "NaN", "INF", "+INF", "-INF"); numbers format as the shortest round-trip text.
/// </summary>
internal static class CastKernels
{
    /// <summary>The target type of a Cast node: the <c>to</c> attribute, an int from version 6 and a type name in version 1.</summary>
    public static DataType Target(OpContext op)
    {
        var a = op.Node.FindAttribute("to") ?? throw op.Unsupported("attribute 'to' is missing");
        if (a.Type == AttributeType.String)
        {
            string name = a.StringValue.Replace("_", "", StringComparison.Ordinal);
            foreach (var t in Enum.GetValues<DataType>())
                if (t != DataType.Undefined && string.Equals(t.ToString(), name, StringComparison.OrdinalIgnoreCase)) return t;
            throw op.Unsupported($"unknown type name '{a.StringValue}' in 'to'");
        }
        return (DataType)op.Node.GetInt("to", 0);
    }

    /// <summary>Throws Unsupported unless both types are ones we convert between.</summary>
    public static void Check(OpContext op, DataType from, DataType to)
    {
        if (!DataTypes.IsDefined(to)) throw op.Unsupported($"'to' is {(int)to}, not a tensor element type");
        if (DataTypes.IsOpaque(to)) throw op.Unsupported($"casting to {DataTypes.OnnxName(to)} is not implemented");
        if (from != DataType.Undefined && DataTypes.IsOpaque(from)) throw op.Unsupported($"casting from {DataTypes.OnnxName(from)} is not implemented");
    }

    /// <summary>x converted to <paramref name="to"/> (x itself when it already has that type).</summary>
    public static OnnxTensor Cast(KernelContext ctx, OnnxTensor x, DataType to)
    {
        if (x.ElementType == to) return x;
        if (DataTypes.IsOpaque(x.ElementType)) throw ctx.Invalid($"casting from {DataTypes.OnnxName(x.ElementType)} is not implemented");
        int n = (int)x.ElementCount;
        var y = ctx.Allocate(to, x.Dims);
        if (to == DataType.String) { ToStrings(x, Elementwise.Data<byte[]>(y), n); return y; }
        var source = x.ElementType switch
        {
            DataType.String => OnnxTensor.FromArray(ParseStrings(ctx, Elementwise.Data<byte[]>(x), n), n),
            DataType.BFloat16 => OnnxTensor.FromArray(BFloat16ToFloat(Elementwise.Data<ushort>(x), n), n),
            DataType.Bool => OnnxTensor.FromArray(Elementwise.Data<bool>(x).Take(n).Select(b => b ? (byte)1 : (byte)0).ToArray(), n),
            _ => x,
        };
        if (to == DataType.BFloat16)
        {
            var floats = source.ElementType == DataType.Float ? Elementwise.Data<float>(source) : new float[n];
            if (source.ElementType != DataType.Float) ConvertNumeric(source, OnnxTensor.FromArray(floats, n), n);
            var bits = Elementwise.Data<ushort>(y);
            for (int i = 0; i < n; i++) bits[i] = FloatToBFloat16(floats[i]);
            return y;
        }
        if (source.ElementType == to) Array.Copy(source.Buffer, y.Buffer, n);
        else ConvertNumeric(source, y, n);
        return y;
    }

    /// <summary>Numeric (non-bfloat16) x into numeric or bool y.</summary>
    private static void ConvertNumeric(OnnxTensor x, OnnxTensor y, int n)
    {
        switch (x.ElementType)
        {
            case DataType.Float: From(Elementwise.Data<float>(x).AsSpan(0, n), y, n); break;
            case DataType.Double: From(Elementwise.Data<double>(x).AsSpan(0, n), y, n); break;
            case DataType.Float16: From(Elementwise.Data<Half>(x).AsSpan(0, n), y, n); break;
            case DataType.Int8: From(Elementwise.Data<sbyte>(x).AsSpan(0, n), y, n); break;
            case DataType.Int16: From(Elementwise.Data<short>(x).AsSpan(0, n), y, n); break;
            case DataType.Int32: From(Elementwise.Data<int>(x).AsSpan(0, n), y, n); break;
            case DataType.Int64: From(Elementwise.Data<long>(x).AsSpan(0, n), y, n); break;
            case DataType.UInt8: From(Elementwise.Data<byte>(x).AsSpan(0, n), y, n); break;
            case DataType.UInt16: From(Elementwise.Data<ushort>(x).AsSpan(0, n), y, n); break;
            case DataType.UInt32: From(Elementwise.Data<uint>(x).AsSpan(0, n), y, n); break;
            case DataType.UInt64: From(Elementwise.Data<ulong>(x).AsSpan(0, n), y, n); break;
            default: throw new InvalidOperationException($"no conversion from {DataTypes.OnnxName(x.ElementType)}");
        }
    }

    private static void From<TFrom>(ReadOnlySpan<TFrom> x, OnnxTensor y, int n) where TFrom : unmanaged, INumberBase<TFrom>
    {
        switch (y.ElementType)
        {
            case DataType.Float: To(x, Elementwise.Data<float>(y).AsSpan(0, n)); break;
            case DataType.Double: To(x, Elementwise.Data<double>(y).AsSpan(0, n)); break;
            case DataType.Float16: ToHalf(x, Elementwise.Data<Half>(y).AsSpan(0, n)); break;
            case DataType.Int8: To(x, Elementwise.Data<sbyte>(y).AsSpan(0, n)); break;
            case DataType.Int16: To(x, Elementwise.Data<short>(y).AsSpan(0, n)); break;
            case DataType.Int32: To(x, Elementwise.Data<int>(y).AsSpan(0, n)); break;
            case DataType.Int64: To(x, Elementwise.Data<long>(y).AsSpan(0, n)); break;
            case DataType.UInt8: To(x, Elementwise.Data<byte>(y).AsSpan(0, n)); break;
            case DataType.UInt16: To(x, Elementwise.Data<ushort>(y).AsSpan(0, n)); break;
            case DataType.UInt32: To(x, Elementwise.Data<uint>(y).AsSpan(0, n)); break;
            case DataType.UInt64: To(x, Elementwise.Data<ulong>(y).AsSpan(0, n)); break;
            case DataType.Bool:
                var b = Elementwise.Data<bool>(y);
                for (int i = 0; i < n; i++) b[i] = !TFrom.IsZero(x[i]);
                break;
            default: throw new InvalidOperationException($"no conversion to {DataTypes.OnnxName(y.ElementType)}");
        }
    }

    private static void To<TFrom, TTo>(ReadOnlySpan<TFrom> x, Span<TTo> y) where TFrom : unmanaged, INumberBase<TFrom> where TTo : unmanaged, INumberBase<TTo>
    {
        // Integer targets saturate from floats (and NaN gives 0) rather than taking the bits of an undefined conversion.
        if (typeof(TFrom) == typeof(float) || typeof(TFrom) == typeof(double) || typeof(TFrom) == typeof(Half))
            for (int i = 0; i < x.Length; i++) y[i] = TTo.CreateSaturating(x[i]);
        else
            TP.ConvertTruncating(x, y);
    }

    /// <summary>To float16 with one rounding: from double directly, other types through double (exact for all but 64-bit integers).</summary>
    private static void ToHalf<TFrom>(ReadOnlySpan<TFrom> x, Span<Half> y) where TFrom : unmanaged, INumberBase<TFrom>
    {
        for (int i = 0; i < x.Length; i++) y[i] = (Half)double.CreateTruncating(x[i]);
    }

    /// <summary>bfloat16 bits to float: the bits are the upper half of a binary32.</summary>
    internal static float[] BFloat16ToFloat(ushort[] bits, int n)
    {
        var f = new float[n];
        for (int i = 0; i < n; i++) f[i] = BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
        return f;
    }

    /// <summary>
    /// The upper 16 bits of the binary32 (truncation toward zero), which is what the ONNX backend data of Cast-13 and
    /// CastLike-15 expect (ONNX 1.12); the reference of later releases and Cast-19 round to nearest even instead. NaN
    /// becomes the quiet NaN 0x7FC0 so that no NaN truncates to infinity.
    /// </summary>
    internal static ushort FloatToBFloat16(float f) => float.IsNaN(f) ? (ushort)0x7FC0 : (ushort)(BitConverter.SingleToUInt32Bits(f) >> 16);

    private static double[] ParseStrings(KernelContext ctx, byte[][] strings, int n)
    {
        var d = new double[n];
        for (int i = 0; i < n; i++)
        {
            string s = Encoding.UTF8.GetString(strings[i]).Trim();
            string u = s.ToUpperInvariant();
            d[i] = u switch
            {
                "NAN" or "+NAN" or "-NAN" => double.NaN,
                "INF" or "+INF" or "INFINITY" or "+INFINITY" => double.PositiveInfinity,
                "-INF" or "-INFINITY" => double.NegativeInfinity,
                "TRUE" => 1,
                "FALSE" => 0,
                _ => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
                    : throw ctx.Invalid($"element {i} ('{s}') is not a number"),
            };
        }
        return d;
    }

    private static void ToStrings(OnnxTensor x, byte[][] y, int n)
    {
        for (int i = 0; i < n; i++)
        {
            string s = x.Buffer switch
            {
                float[] a => FormatFloat(a[i], a[i].ToString("R", CultureInfo.InvariantCulture)),
                double[] a => FormatFloat(a[i], a[i].ToString("R", CultureInfo.InvariantCulture)),
                Half[] a => FormatFloat((double)a[i], a[i].ToString(CultureInfo.InvariantCulture)),
                ushort[] a when x.ElementType == DataType.BFloat16 => FormatFloat(x.GetDouble(i), ((float)x.GetDouble(i)).ToString("R", CultureInfo.InvariantCulture)),
                bool[] a => a[i] ? "True" : "False",
                byte[][] a => Encoding.UTF8.GetString(a[i]),
                _ => System.Convert.ToString(x.Buffer.GetValue(i), CultureInfo.InvariantCulture) ?? "",
            };
            y[i] = Encoding.UTF8.GetBytes(s);
        }
    }

    /// <summary>NaN, INF and -INF as ONNX Runtime spells them; finite values in shortest round-trip form, exponent in lower case.</summary>
    private static string FormatFloat(double v, string shortest)
    {
        if (double.IsNaN(v)) return "NaN";
        if (double.IsInfinity(v)) return v > 0 ? "INF" : "-INF";
        return shortest.Replace("E", "e", StringComparison.Ordinal);
    }
}
