using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using static Backprop.Onnx.Ops.Elementwise;

namespace Backprop.Onnx.Ops;

/// <summary>
/// PRelu (ONNX "PRelu"): y = x &lt; 0 ? slope * x : x, slope broadcast to x's shape (unidirectionally, from version 7).
/// Before version 7 a 1-D slope of x's channel count (dimension 1) is one slope per channel.
/// </summary>
internal sealed class PReluKernel(bool perChannelVector) : Kernel
{
    public override void Run(KernelContext ctx)
    {
        var x = ctx.RequiredInput(0);
        var slope = ctx.RequiredInput(1);
        var slopeShape = slope.Dims;
        if (perChannelVector && slopeShape.Length == 1 && x.Rank >= 2 && slopeShape[0] == x.Dims[1] && slopeShape[0] != 1)
            slopeShape = [slopeShape[0], .. Enumerable.Repeat(1, x.Rank - 2)];
        var loop = BroadcastLoop.Of(ctx, x.Dims, slopeShape);
        if (!loop.OutShape.AsSpan().SequenceEqual(x.Dims))
            throw ctx.Invalid($"slope of shape [{string.Join(',', slope.Dims)}] cannot be broadcast to X of shape [{string.Join(',', x.Dims)}]");
        var y = ctx.Allocate(x.ElementType, x.Dims);
        BinaryDriver.Run<PReluOp>(ctx, loop, x, slope, y);
        ctx.SetOutput(0, y);
    }
}

/// <summary>Relu: max(x, 0) (float; signed integers from version 14).</summary>
internal sealed class ReluMap : UnaryMap
{
    public override DataType[] Types => SignedTypes;

    public override void Number<T>(ReadOnlySpan<T> x, Span<T> y) => System.Numerics.Tensors.TensorPrimitives.Max(x, T.Zero, y);
}

/// <summary>LeakyRelu: x &gt;= 0 ? x : alpha * x.</summary>
internal sealed class LeakyReluMap(double alpha) : UnaryMap
{
    public override DataType[] Types => FloatTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        T a = T.CreateTruncating(alpha);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] < T.Zero ? a * x[i] : x[i];
    }
}

/// <summary>Elu: x &lt; 0 ? alpha * (exp(x) - 1) : x.</summary>
internal sealed class EluMap(double alpha) : UnaryMap
{
    public override DataType[] Types => FloatTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        T a = T.CreateTruncating(alpha);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] < T.Zero ? a * T.ExpM1(x[i]) : x[i];
    }
}

/// <summary>Selu: gamma * (x &gt; 0 ? x : alpha * (exp(x) - 1)).</summary>
internal sealed class SeluMap(double alpha, double gamma) : UnaryMap
{
    public override DataType[] Types => FloatTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        T a = T.CreateTruncating(alpha), g = T.CreateTruncating(gamma);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] > T.Zero ? g * x[i] : g * (a * T.ExpM1(x[i]));
    }
}

/// <summary>Celu: max(0, x) + min(0, alpha * (exp(x / alpha) - 1)).</summary>
internal sealed class CeluMap(double alpha) : UnaryMap
{
    public override DataType[] Types => FloatTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        T a = T.CreateTruncating(alpha);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] > T.Zero ? x[i] : a * T.ExpM1(x[i] / a);
    }
}

/// <summary>HardSigmoid: max(0, min(1, alpha * x + beta)); HardSwish: x times that.</summary>
internal sealed class HardSigmoidMap(double alpha, double beta, bool timesX) : UnaryMap
{
    public override DataType[] Types => FloatTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        T a = T.CreateTruncating(alpha), b = T.CreateTruncating(beta);
        for (int i = 0; i < x.Length; i++)
        {
            T h = T.Max(T.Zero, T.Min(T.One, a * x[i] + b));
            y[i] = timesX ? x[i] * h : h;
        }
    }
}

/// <summary>Softplus: ln(exp(x) + 1), as x + ln(1 + exp(-x)) for x &gt; 0 so large x does not overflow.</summary>
internal sealed class SoftplusMap : UnaryMap
{
    public override DataType[] Types => FloatTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        for (int i = 0; i < x.Length; i++)
        {
            T v = x[i];
            y[i] = v > T.Zero ? v + T.LogP1(T.Exp(-v)) : T.LogP1(T.Exp(v));
        }
    }
}

/// <summary>Softsign: x / (1 + |x|).</summary>
internal sealed class SoftsignMap : UnaryMap
{
    public override DataType[] Types => FloatTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = x[i] / (T.One + T.Abs(x[i]));
    }
}

/// <summary>Shrink: x &lt; -lambd ? x + bias : x &gt; lambd ? x - bias : 0 (integers compute in double and saturate).</summary>
internal sealed class ShrinkMap(double lambd, double bias) : UnaryMap
{
    public override DataType[] Types => NumericTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        T l = T.CreateTruncating(lambd), b = T.CreateTruncating(bias);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] < -l ? x[i] + b : x[i] > l ? x[i] - b : T.Zero;
    }

    public override void Number<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        for (int i = 0; i < x.Length; i++)
        {
            double v = double.CreateTruncating(x[i]);
            y[i] = T.CreateSaturating(v < -lambd ? v + bias : v > lambd ? v - bias : 0);
        }
    }
}

/// <summary>ThresholdedRelu: x &gt; alpha ? x : 0.</summary>
internal sealed class ThresholdedReluMap(double alpha) : UnaryMap
{
    public override DataType[] Types => FloatTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        T a = T.CreateTruncating(alpha);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] > a ? x[i] : T.Zero;
    }
}
