using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Max, Min, Sum and Mean of one or more inputs (ONNX "Max", "Min", "Sum", "Mean"): a left fold of the binary op over
/// the inputs broadcast together (multidirectional from version 8; equal shapes before, which that covers). Mean divides
/// the sum by the input count. One input is returned as is.
/// </summary>
internal sealed class VariadicKernel<TOp>(bool mean) : Kernel where TOp : IBinaryOp
{
    public override void Run(KernelContext ctx)
    {
        if (TrySameShapes(ctx)) return;
        var inputs = new List<OnnxTensor>();
        for (int i = 0; i < ctx.InputCount; i++) if (ctx.Input(i) is { } t) inputs.Add(t);
        if (inputs.Count == 0) throw ctx.Invalid("needs at least one input");
        if (inputs.Count == 1)
        {
            ctx.SetOutput(0, inputs[0]);
            return;
        }
        var outShape = Broadcast.Shape(ctx, [.. inputs.Select(t => t.Dims)]);
        var y = ctx.AllocateUninitialized(inputs[0].ElementType, outShape); // the first fold step writes every element
        BinaryDriver.Run<TOp>(ctx, new BroadcastLoop(outShape, inputs[0].Dims, inputs[1].Dims), inputs[0], inputs[1], y);
        for (int i = 2; i < inputs.Count; i++)
            BinaryDriver.Run<TOp>(ctx, new BroadcastLoop(outShape, outShape, inputs[i].Dims), y, inputs[i], y);
        if (mean) UnaryKernel.Apply(ctx, new DivideBy(inputs.Count), y, y);
        ctx.SetOutput(0, y);
    }

    /// <summary>
    /// Two or more inputs of one shape and type (a gradient summed at a fan-out, a residual sum): the same left fold, each
    /// step one whole run, without the lists and loop plans of the general case. False (nothing done) otherwise.
    /// </summary>
    private bool TrySameShapes(KernelContext ctx)
    {
        OnnxTensor? first = null, second = null;
        for (int i = 0; i < ctx.InputCount; i++)
        {
            if (ctx.Input(i) is not { } t) continue;
            if (first is null) first = t;
            else if (t.ElementType != first.ElementType || !t.Dims.AsSpan().SequenceEqual(first.Dims)) return false;
            else second ??= t;
        }
        if (first is null || second is null || mean) return false;
        var loop = BroadcastLoop.Of(ctx, first.Dims, first.Dims);
        var y = ctx.AllocateUninitialized(first.ElementType, first.Dims); // the first fold step writes every element
        BinaryDriver.Run<TOp>(ctx, loop, first, second, y);
        for (int i = 0, seen = 0; i < ctx.InputCount; i++)
            if (ctx.Input(i) is { } t && ++seen > 2) BinaryDriver.Run<TOp>(ctx, loop, y, t, y);
        ctx.SetOutput(0, y);
        return true;
    }

    private sealed class DivideBy(int count) : UnaryMap
    {
        public override DataType[] Types => Elementwise.FloatTypes;

        public override void Float<T>(ReadOnlySpan<T> x, Span<T> y) => TP.Divide(x, T.CreateChecked(count), y);
    }
}

/// <summary>
/// Pow (ONNX "Pow"): y = x ^ exponent, broadcast. Same float types use TensorPrimitives.Pow; mixed types (version 12
/// on: the exponent of any numeric type, integer bases) compute in double as numpy does and convert to x's type
/// (integers truncate), except that integer bases with non-negative integral exponents use exact integer powers.
/// </summary>
internal sealed class PowKernel(LegacyBroadcast? legacy) : Kernel
{
    public override void Run(KernelContext ctx)
    {
        var a = ctx.RequiredInput(0);
        var b = ctx.RequiredInput(1);
        var loop = legacy is null ? BroadcastLoop.Of(ctx, a.Dims, b.Dims) : legacy.Plan(ctx, a.Dims, b.Dims);
        var y = ctx.AllocateUninitialized(a.ElementType, loop.OutShape); // every element is written
        int t = ctx.Options.Threads;
        if (a.ElementType == b.ElementType && a.ElementType is DataType.Float or DataType.Double or DataType.Float16)
        {
            switch (a.ElementType)
            {
                case DataType.Float: Same(loop, Elementwise.Data<float>(a), Elementwise.Data<float>(b), Elementwise.Data<float>(y), t); break;
                case DataType.Double: Same(loop, Elementwise.Data<double>(a), Elementwise.Data<double>(b), Elementwise.Data<double>(y), t); break;
                default: Same(loop, Elementwise.Data<Half>(a), Elementwise.Data<Half>(b), Elementwise.Data<Half>(y), t); break;
            }
            ctx.SetOutput(0, y);
            return;
        }
        var e = ToDoubles(ctx, b);
        switch (a.ElementType)
        {
            case DataType.Float: Mixed(loop, Elementwise.Data<float>(a), e, Elementwise.Data<float>(y), t, false); break;
            case DataType.Double: Mixed(loop, Elementwise.Data<double>(a), e, Elementwise.Data<double>(y), t, false); break;
            case DataType.Float16: Mixed(loop, Elementwise.Data<Half>(a), e, Elementwise.Data<Half>(y), t, false); break;
            case DataType.Int8: Mixed(loop, Elementwise.Data<sbyte>(a), e, Elementwise.Data<sbyte>(y), t, true); break;
            case DataType.Int16: Mixed(loop, Elementwise.Data<short>(a), e, Elementwise.Data<short>(y), t, true); break;
            case DataType.Int32: Mixed(loop, Elementwise.Data<int>(a), e, Elementwise.Data<int>(y), t, true); break;
            case DataType.Int64: Mixed(loop, Elementwise.Data<long>(a), e, Elementwise.Data<long>(y), t, true); break;
            case DataType.UInt8: Mixed(loop, Elementwise.Data<byte>(a), e, Elementwise.Data<byte>(y), t, true); break;
            case DataType.UInt16: Mixed(loop, Elementwise.Data<ushort>(a), e, Elementwise.Data<ushort>(y), t, true); break;
            case DataType.UInt32: Mixed(loop, Elementwise.Data<uint>(a), e, Elementwise.Data<uint>(y), t, true); break;
            case DataType.UInt64: Mixed(loop, Elementwise.Data<ulong>(a), e, Elementwise.Data<ulong>(y), t, true); break;
            default: throw ctx.Invalid($"base of element type {DataTypes.OnnxName(a.ElementType)} is not supported");
        }
        ctx.SetOutput(0, y);
    }

    private static void Same<T>(BroadcastLoop loop, T[] a, T[] b, T[] y, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int sa = loop.InnerStrides[0], sb = loop.InnerStrides[1];
        loop.Run(threads, (o, n, off) =>
        {
            var dst = y.AsSpan(o, n);
            if (sa == 1 && sb == 1) TP.Pow<T>(a.AsSpan(off[0], n), b.AsSpan(off[1], n), dst);
            else if (sa == 1) TP.Pow(a.AsSpan(off[0], n), b[off[1]], dst);
            else if (sb == 1) TP.Pow(a[off[0]], b.AsSpan(off[1], n), dst);
            else dst.Fill(T.Pow(a[off[0]], b[off[1]]));
        });
    }

    private static void Mixed<T>(BroadcastLoop loop, T[] a, double[] e, T[] y, int threads, bool integral) where T : unmanaged, INumber<T>
    {
        int sa = loop.InnerStrides[0], sb = loop.InnerStrides[1];
        loop.Run(threads, (o, n, off) =>
        {
            int ia = off[0], ib = off[1];
            for (int i = 0; i < n; i++, ia += sa, ib += sb) y[o + i] = Power(a[ia], e[ib], integral);
        });
    }

    private static T Power<T>(T x, double e, bool integral) where T : INumber<T>
    {
        if (integral && e >= 0 && e == Math.Floor(e) && e <= long.MaxValue)
        {
            // Exact (wrapping) integer power by squaring, as numpy computes integer ** integer.
            T result = T.One, b = x;
            for (long k = (long)e; k > 0; k >>= 1)
            {
                if ((k & 1) != 0) result *= b;
                b *= b;
            }
            return result;
        }
        return T.CreateTruncating(Math.Pow(double.CreateTruncating(x), e));
    }

    /// <summary>The elements of a numeric tensor as doubles (exact for every type but 64-bit integers beyond 2^53).</summary>
    internal static double[] ToDoubles(KernelContext ctx, OnnxTensor t)
    {
        int n = (int)t.ElementCount;
        var d = new double[n];
        switch (t.ElementType)
        {
            case DataType.Float: TP.ConvertTruncating<float, double>(Elementwise.Data<float>(t).AsSpan(0, n), d); break;
            case DataType.Double: Elementwise.Data<double>(t).AsSpan(0, n).CopyTo(d); break;
            case DataType.Float16: TP.ConvertTruncating<Half, double>(Elementwise.Data<Half>(t).AsSpan(0, n), d); break;
            case DataType.Int8: TP.ConvertTruncating<sbyte, double>(Elementwise.Data<sbyte>(t).AsSpan(0, n), d); break;
            case DataType.Int16: TP.ConvertTruncating<short, double>(Elementwise.Data<short>(t).AsSpan(0, n), d); break;
            case DataType.Int32: TP.ConvertTruncating<int, double>(Elementwise.Data<int>(t).AsSpan(0, n), d); break;
            case DataType.Int64: TP.ConvertTruncating<long, double>(Elementwise.Data<long>(t).AsSpan(0, n), d); break;
            case DataType.UInt8: TP.ConvertTruncating<byte, double>(Elementwise.Data<byte>(t).AsSpan(0, n), d); break;
            case DataType.UInt16: TP.ConvertTruncating<ushort, double>(Elementwise.Data<ushort>(t).AsSpan(0, n), d); break;
            case DataType.UInt32: TP.ConvertTruncating<uint, double>(Elementwise.Data<uint>(t).AsSpan(0, n), d); break;
            case DataType.UInt64: TP.ConvertTruncating<ulong, double>(Elementwise.Data<ulong>(t).AsSpan(0, n), d); break;
            default: throw ctx.Invalid($"exponent of element type {DataTypes.OnnxName(t.ElementType)} is not supported");
        }
        return d;
    }
}
