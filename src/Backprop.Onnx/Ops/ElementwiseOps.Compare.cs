using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>A comparison of two numbers of one type (IEEE semantics: every comparison with NaN but != is false).</summary>
internal interface ICompareOp
{
    static abstract bool Test<T>(T a, T b) where T : INumber<T>;
}

/// <summary>A binary function of booleans.</summary>
internal interface ILogicOp
{
    static abstract bool Apply(bool a, bool b);
}

internal readonly struct EqualOp : ICompareOp { public static bool Test<T>(T a, T b) where T : INumber<T> => a == b; }
internal readonly struct GreaterOp : ICompareOp { public static bool Test<T>(T a, T b) where T : INumber<T> => a > b; }
internal readonly struct LessOp : ICompareOp { public static bool Test<T>(T a, T b) where T : INumber<T> => a < b; }
internal readonly struct GreaterOrEqualOp : ICompareOp { public static bool Test<T>(T a, T b) where T : INumber<T> => a >= b; }
internal readonly struct LessOrEqualOp : ICompareOp { public static bool Test<T>(T a, T b) where T : INumber<T> => a <= b; }

internal readonly struct AndOp : ILogicOp { public static bool Apply(bool a, bool b) => a & b; }
internal readonly struct OrOp : ILogicOp { public static bool Apply(bool a, bool b) => a | b; }
internal readonly struct XorOp : ILogicOp { public static bool Apply(bool a, bool b) => a ^ b; }
internal readonly struct XnorOp : ILogicOp { public static bool Apply(bool a, bool b) => a == b; }

/// <summary>Runs an <see cref="ICompareOp"/> over two broadcast tensors of one numeric type into a bool tensor.</summary>
internal sealed class CompareKernel<TOp>(LegacyBroadcast? legacy) : Kernel where TOp : ICompareOp
{
    public override void Run(KernelContext ctx)
    {
        var a = ctx.RequiredInput(0);
        var b = ctx.RequiredInput(1);
        if (a.ElementType != b.ElementType)
            throw ctx.Invalid($"inputs have different element types ({DataTypes.OnnxName(a.ElementType)}, {DataTypes.OnnxName(b.ElementType)})");
        var loop = legacy is null ? BroadcastLoop.Of(ctx, a.Dims, b.Dims) : legacy.Plan(ctx, a.Dims, b.Dims);
        var y = ctx.Allocate(DataType.Bool, loop.OutShape);
        var yd = Elementwise.Data<bool>(y);
        int t = ctx.Options.Threads;
        switch (a.ElementType)
        {
            case DataType.Float: Compare<float>(loop, Elementwise.Data<float>(a), Elementwise.Data<float>(b), yd, t); break;
            case DataType.Double: Compare<double>(loop, Elementwise.Data<double>(a), Elementwise.Data<double>(b), yd, t); break;
            case DataType.Float16: Compare<Half>(loop, Elementwise.Data<Half>(a), Elementwise.Data<Half>(b), yd, t); break;
            case DataType.Int8: Compare<sbyte>(loop, Elementwise.Data<sbyte>(a), Elementwise.Data<sbyte>(b), yd, t); break;
            case DataType.Int16: Compare<short>(loop, Elementwise.Data<short>(a), Elementwise.Data<short>(b), yd, t); break;
            case DataType.Int32: Compare<int>(loop, Elementwise.Data<int>(a), Elementwise.Data<int>(b), yd, t); break;
            case DataType.Int64: Compare<long>(loop, Elementwise.Data<long>(a), Elementwise.Data<long>(b), yd, t); break;
            case DataType.UInt8: Compare<byte>(loop, Elementwise.Data<byte>(a), Elementwise.Data<byte>(b), yd, t); break;
            case DataType.UInt16: Compare<ushort>(loop, Elementwise.Data<ushort>(a), Elementwise.Data<ushort>(b), yd, t); break;
            case DataType.UInt32: Compare<uint>(loop, Elementwise.Data<uint>(a), Elementwise.Data<uint>(b), yd, t); break;
            case DataType.UInt64: Compare<ulong>(loop, Elementwise.Data<ulong>(a), Elementwise.Data<ulong>(b), yd, t); break;
            case DataType.Bool when typeof(TOp) == typeof(EqualOp):
                LogicKernel<XnorOp>.Logic(loop, Elementwise.Data<bool>(a), Elementwise.Data<bool>(b), yd, t);
                break;
            default: throw ctx.Invalid($"element type {DataTypes.OnnxName(a.ElementType)} is not supported");
        }
        ctx.SetOutput(0, y);
    }

    private static void Compare<T>(BroadcastLoop loop, T[] a, T[] b, bool[] y, int threads) where T : INumber<T>
    {
        int sa = loop.InnerStrides[0], sb = loop.InnerStrides[1];
        loop.Run(threads, (o, n, off) =>
        {
            int ia = off[0], ib = off[1];
            if (SimdCompare.TryRun<T, TOp>(a.AsSpan(ia), sa, b.AsSpan(ib), sb, y.AsSpan(o, n))) return;
            for (int i = 0; i < n; i++, ia += sa, ib += sb) y[o + i] = TOp.Test(a[ia], b[ib]);
        });
    }
}

/// <summary>Runs an <see cref="ILogicOp"/> over two broadcast bool tensors.</summary>
internal sealed class LogicKernel<TOp>(LegacyBroadcast? legacy) : Kernel where TOp : ILogicOp
{
    public override void Run(KernelContext ctx)
    {
        var a = ctx.RequiredInput(0);
        var b = ctx.RequiredInput(1);
        if (a.ElementType != DataType.Bool || b.ElementType != DataType.Bool)
            throw ctx.Invalid($"inputs must be bool, not {DataTypes.OnnxName(a.ElementType)} and {DataTypes.OnnxName(b.ElementType)}");
        var loop = legacy is null ? BroadcastLoop.Of(ctx, a.Dims, b.Dims) : legacy.Plan(ctx, a.Dims, b.Dims);
        var y = ctx.Allocate(DataType.Bool, loop.OutShape);
        Logic(loop, Elementwise.Data<bool>(a), Elementwise.Data<bool>(b), Elementwise.Data<bool>(y), ctx.Options.Threads);
        ctx.SetOutput(0, y);
    }

    internal static void Logic(BroadcastLoop loop, bool[] a, bool[] b, bool[] y, int threads)
    {
        int sa = loop.InnerStrides[0], sb = loop.InnerStrides[1];
        loop.Run(threads, (o, n, off) =>
        {
            int ia = off[0], ib = off[1];
            for (int i = 0; i < n; i++, ia += sa, ib += sb) y[o + i] = TOp.Apply(a[ia], b[ib]);
        });
    }
}

/// <summary>Elementwise tests of one input that give a bool tensor: Not, IsNaN, IsInf.</summary>
internal static class Predicates
{
    /// <summary>Not (ONNX "Not"): logical negation of a bool tensor.</summary>
    public static void Not(KernelContext ctx)
    {
        var x = ctx.RequiredInput(0);
        if (x.ElementType != DataType.Bool) throw ctx.Invalid($"input must be bool, not {DataTypes.OnnxName(x.ElementType)}");
        var y = ctx.Allocate(DataType.Bool, x.Dims);
        var xd = Elementwise.Data<bool>(x);
        var yd = Elementwise.Data<bool>(y);
        for (int i = 0; i < (int)x.ElementCount; i++) yd[i] = !xd[i];
        ctx.SetOutput(0, y);
    }

    /// <summary>A kernel testing each element of a float tensor with <paramref name="test"/> (applied in double, which is exact).</summary>
    public static Kernel FloatTest(Func<double, bool> test) => new LambdaKernel(ctx =>
    {
        var x = ctx.RequiredInput(0);
        var y = ctx.Allocate(DataType.Bool, x.Dims);
        var yd = Elementwise.Data<bool>(y);
        int n = (int)x.ElementCount;
        switch (x.ElementType)
        {
            case DataType.Float: { var xd = Elementwise.Data<float>(x); for (int i = 0; i < n; i++) yd[i] = test(xd[i]); break; }
            case DataType.Double: { var xd = Elementwise.Data<double>(x); for (int i = 0; i < n; i++) yd[i] = test(xd[i]); break; }
            case DataType.Float16: { var xd = Elementwise.Data<Half>(x); for (int i = 0; i < n; i++) yd[i] = test((double)xd[i]); break; }
            default: throw ctx.Invalid($"element type {DataTypes.OnnxName(x.ElementType)} is not supported");
        }
        ctx.SetOutput(0, y);
    });
}
