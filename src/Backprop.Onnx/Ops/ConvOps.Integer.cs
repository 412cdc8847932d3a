using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>The integer and quantized convolutions: ConvInteger and QLinearConv, computed exactly in double.</summary>
internal static partial class ConvOps
{
    private static readonly DataType[] Int8Types = [DataType.UInt8, DataType.Int8];

    /// <summary>
    /// ConvInteger (ONNX spec "ConvInteger", version 10): Conv of (x − x_zero_point) and (w − w_zero_point) as int32;
    /// x_zero_point per tensor, w_zero_point per tensor or per output channel.
    /// </summary>
    private static Kernel CreateConvInteger(OpContext op)
    {
        op.RequireInputType(0, Int8Types);
        op.RequireInputType(1, Int8Types);
        var window = WindowAttributes.Parse(op, requireKernelShape: false);
        long group = op.Node.GetInt("group", 1);
        if (group < 1 || group > int.MaxValue) throw op.Unsupported($"group = {group}");
        return new LambdaKernel(ctx =>
        {
            var x = Shifted(op, ctx.RequiredInput(0), ctx.Input(2), 1, "x_zero_point");
            var w = ctx.RequiredInput(1);
            var wd = Shifted(op, w, ctx.Input(3), w.Rank > 0 ? w.Dims[0] : 1, "w_zero_point");
            var y = Conv(ctx, window, (int)group, x, wd, null);
            ctx.SetOutput(0, MatMulOps.Saturate(y.ToArray<double>(), DataType.Int32, y.Dims));
        });
    }

    /// <summary>
    /// QLinearConv (ONNX spec "QLinearConv", version 10): y = saturate(round((Conv(x − x_zp, w − w_zp) + B) ·
    /// x_scale·w_scale / y_scale) + y_zp), rounding half to even; w_scale and w_zp per tensor or per output channel.
    /// </summary>
    private static Kernel CreateQLinearConv(OpContext op)
    {
        op.RequireInputType(0, Int8Types);
        op.RequireInputType(3, Int8Types);
        op.RequireInputType(7, Int8Types);
        var window = WindowAttributes.Parse(op, requireKernelShape: false);
        long group = op.Node.GetInt("group", 1);
        if (group < 1 || group > int.MaxValue) throw op.Unsupported($"group = {group}");
        return new LambdaKernel(ctx =>
        {
            var w = ctx.RequiredInput(3);
            int m = w.Rank > 0 ? w.Dims[0] : 1;
            var x = Shifted(op, ctx.RequiredInput(0), ctx.RequiredInput(2), 1, "x_zero_point");
            var wd = Shifted(op, w, ctx.RequiredInput(5), m, "w_zero_point");
            OnnxTensor? bias = ctx.Input(8) is { } b ? OnnxTensor.FromArray(Values(op, b, b.ElementCount, "B"), b.Dims) : null;
            var acc = Conv(ctx, window, (int)group, x, wd, bias);
            float xScale = (float)Values(op, ctx.RequiredInput(1), 1, "x_scale")[0];
            var wScale = Values(op, ctx.RequiredInput(4), m, "w_scale");
            float yScale = (float)Values(op, ctx.RequiredInput(6), 1, "y_scale")[0];
            var yZero = ctx.RequiredInput(7);
            double yzp = Values(op, yZero, 1, "y_zero_point")[0];
            var src = acc.AsSpan<double>();
            int plane = acc.Rank > 2 ? acc.Dims[2..].Aggregate(1, (p, d) => p * d) : 1;
            var q = new double[src.Length];
            for (int e = 0; e < q.Length; e++)
            {
                int channel = e / plane % m;
                float multiplier = xScale * (float)wScale[wScale.Length == 1 ? 0 : channel] / yScale;
                q[e] = Math.Round((double)((float)src[e] * multiplier), MidpointRounding.ToEven) + yzp;
            }
            ctx.SetOutput(0, MatMulOps.Saturate(q, yZero.ElementType, acc.Dims));
        });
    }

    /// <summary>x − zero point as double; the zero point per tensor or one per index of axis 0 (<paramref name="count"/> values).</summary>
    private static OnnxTensor Shifted(OpContext op, OnnxTensor x, OnnxTensor? zeroPoint, int count, string name)
    {
        var zp = zeroPoint is null ? [0.0] : Values(op, zeroPoint, count, name);
        var result = new double[x.ElementCount];
        long perIndex = x.Rank > 0 && x.Dims[0] > 0 ? x.ElementCount / x.Dims[0] : 1;
        for (long e = 0; e < result.Length; e++) result[e] = x.GetDouble(e) - zp[zp.Length == 1 ? 0 : e / perIndex];
        return OnnxTensor.FromArray(result, x.Dims);
    }

    /// <summary>A quantization parameter: one value, or <paramref name="count"/> values.</summary>
    private static double[] Values(OpContext op, OnnxTensor t, long count, string name)
    {
        if (t.ElementCount != 1 && t.ElementCount != count)
            throw op.Unsupported($"{name} of shape [{string.Join(',', t.Dims)}]: only per-tensor or per-channel values are supported");
        return [.. Enumerable.Range(0, (int)t.ElementCount).Select(i => t.GetDouble(i))];
    }
}
