using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>The integer and quantized matrix products: MatMulInteger and QLinearMatMul.</summary>
internal static partial class MatMulOps
{
    private static readonly DataType[] Int8Types = [DataType.UInt8, DataType.Int8];

    /// <summary>
    /// MatMulInteger (ONNX spec "MatMulInteger", version 10): Y = (A − a_zero_point)·(B − b_zero_point) as int32, with
    /// per-tensor or per-row (A) / per-column (B) zero points. Products are summed exactly in double (|sum| &lt; 2⁵³).
    /// </summary>
    private static Kernel CreateMatMulInteger(OpContext op)
    {
        op.RequireInputType(0, Int8Types);
        op.RequireInputType(1, Int8Types);
        return new LambdaKernel(ctx =>
        {
            var (a, b) = ZeroPointShifted(op, ctx, ctx.RequiredInput(0), ctx.Input(2), ctx.RequiredInput(1), ctx.Input(3));
            var product = MatMul(ctx, a, b);
            var src = product.AsSpan<double>();
            var y = new int[src.Length];
            for (int i = 0; i < y.Length; i++) y[i] = (int)src[i];
            ctx.SetOutput(0, OnnxTensor.FromArray(y, product.Dims));
        });
    }

    /// <summary>
    /// QLinearMatMul (ONNX spec "QLinearMatMul", version 10): Y = saturate(round((A − a_zp)·(B − b_zp) · a_scale·b_scale / y_scale) + y_zp),
    /// rounding half to even; scales and zero points per tensor, or per row of A and per column of B.
    /// </summary>
    private static Kernel CreateQLinearMatMul(OpContext op)
    {
        op.RequireInputType(0, Int8Types);
        op.RequireInputType(3, Int8Types);
        op.RequireInputType(7, Int8Types);
        return new LambdaKernel(ctx =>
        {
            var a = ctx.RequiredInput(0);
            var b = ctx.RequiredInput(3);
            var (ad, bd) = ZeroPointShifted(op, ctx, a, ctx.RequiredInput(2), b, ctx.RequiredInput(5));
            var product = MatMul(ctx, ad, bd);
            int m = a.Rank == 1 ? 1 : a.Dims[^2], n = b.Rank == 1 ? 1 : b.Dims[^1];
            var aScale = PerAxis(op, ctx.RequiredInput(1), m, "a_scale");
            var bScale = PerAxis(op, ctx.RequiredInput(4), n, "b_scale");
            var yScale = PerAxis(op, ctx.RequiredInput(6), 1, "y_scale");
            var yZero = ctx.RequiredInput(7);
            var yzp = PerAxis(op, yZero, 1, "y_zero_point");
            var src = product.AsSpan<double>();
            var q = new double[src.Length];
            for (int e = 0; e < src.Length; e++)
            {
                int j = e % n, i = e / n % m;
                float multiplier = (float)aScale[aScale.Length == 1 ? 0 : i] * (float)bScale[bScale.Length == 1 ? 0 : j] / (float)yScale[0];
                q[e] = Math.Round((double)((float)src[e] * multiplier), MidpointRounding.ToEven) + yzp[0];
            }
            ctx.SetOutput(0, Saturate(q, yZero.ElementType, product.Dims));
        });
    }

    /// <summary>A and B as double with their zero points subtracted (per tensor, per row of A, per column of B).</summary>
    private static (OnnxTensor A, OnnxTensor B) ZeroPointShifted(OpContext op, KernelContext ctx, OnnxTensor a, OnnxTensor? aZero, OnnxTensor b, OnnxTensor? bZero)
    {
        if (a.Rank == 0 || b.Rank == 0) throw ctx.Invalid("operands must have rank 1 or more");
        int m = a.Rank == 1 ? 1 : a.Dims[^2], k = a.Dims[^1], n = b.Rank == 1 ? 1 : b.Dims[^1];
        var az = aZero is null ? [0.0] : PerAxis(op, aZero, m, "a_zero_point");
        var bz = bZero is null ? [0.0] : PerAxis(op, bZero, n, "b_zero_point");
        var ad = new double[a.ElementCount];
        for (long e = 0; e < ad.Length; e++) ad[e] = a.GetDouble(e) - az[az.Length == 1 ? 0 : e / k % m];
        var bd = new double[b.ElementCount];
        for (long e = 0; e < bd.Length; e++) bd[e] = b.GetDouble(e) - bz[bz.Length == 1 ? 0 : e % n];
        return (OnnxTensor.FromArray(ad, a.Dims), OnnxTensor.FromArray(bd, b.Dims));
    }

    /// <summary>A quantization parameter with one value, or <paramref name="count"/> values along the row/column axis.</summary>
    private static double[] PerAxis(OpContext op, OnnxTensor t, int count, string name)
    {
        if (t.ElementCount != 1 && t.ElementCount != count)
            throw op.Unsupported($"{name} of shape [{string.Join(',', t.Dims)}]: only per-tensor or per-row/per-column values are supported");
        return [.. Enumerable.Range(0, (int)t.ElementCount).Select(i => t.GetDouble(i))];
    }

    /// <summary>Values clamped to the range of uint8 or int8 (or int32).</summary>
    internal static OnnxTensor Saturate(double[] values, DataType type, int[] shape)
    {
        switch (type)
        {
            case DataType.UInt8: return OnnxTensor.FromArray(values.Select(v => (byte)Math.Clamp(v, 0, 255)).ToArray(), shape);
            case DataType.Int8: return OnnxTensor.FromArray(values.Select(v => (sbyte)Math.Clamp(v, -128, 127)).ToArray(), shape);
            default: return OnnxTensor.FromArray(values.Select(v => (int)Math.Clamp(v, int.MinValue, int.MaxValue)).ToArray(), shape);
        }
    }
}
