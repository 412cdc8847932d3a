using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>
/// A binary elementwise operator on numbers of one type, in the three forms a broadcast run needs: both operands
/// contiguous, the right one broadcast (a scalar for the run) or the left one broadcast.
/// </summary>
internal interface IBinaryOp
{
    static abstract void Apply<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T>;

    static abstract void Apply<T>(ReadOnlySpan<T> a, T b, Span<T> y) where T : unmanaged, INumber<T>;

    static abstract void Apply<T>(T a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T>;
}

/// <summary>
/// Broadcasting before opset 7 (the <c>broadcast</c> and <c>axis</c> attributes of Add-6, Mul-6, And-1, Equal-1, …):
/// with broadcast=1 B is broadcast to A's shape, B's dimensions matching A's from <c>axis</c> on (default: A's trailing
/// dimensions). With broadcast=0 the spec requires equal shapes; shapes that differ are broadcast multidirectionally
/// instead of being refused, which changes nothing for valid models and lets the backward nodes the autodiff pass emits
/// into an opset-6 graph (e.g. a scalar times a tensor) run.
/// </summary>
internal sealed record LegacyBroadcast(bool Enabled, long? Axis)
{
    /// <summary>The rule of the node when its opset is below 7, else null (multidirectional broadcasting).</summary>
    public static LegacyBroadcast? Of(OpContext op) => op.OpsetVersion >= 7 ? null
        : new LegacyBroadcast(op.Node.GetInt("broadcast", 0) != 0, op.Node.FindAttribute("axis") is { } a ? a.Int : null);

    /// <summary>The loop of A and B under this rule.</summary>
    public BroadcastLoop Plan(KernelContext ctx, int[] a, int[] b)
    {
        string Text(int[] s) => "[" + string.Join(',', s) + "]";
        if (!Enabled) return BroadcastLoop.Of(ctx, a, b);
        var shapeB = b;
        if (Axis is long axis)
        {
            if (axis < 0) axis += a.Length;
            if (axis < 0 || axis + b.Length > a.Length) throw ctx.Invalid($"B of shape {Text(b)} does not fit A of shape {Text(a)} at axis {Axis}");
            shapeB = [.. b, .. Enumerable.Repeat(1, a.Length - (int)axis - b.Length)];
        }
        var outShape = Broadcast.TryShape(a, shapeB);
        if (outShape is null || !outShape.AsSpan().SequenceEqual(a)) throw ctx.Invalid($"B of shape {Text(b)} cannot be broadcast to A of shape {Text(a)}");
        return new BroadcastLoop(a, a, shapeB);
    }
}

/// <summary>Runs an <see cref="IBinaryOp"/> over two broadcast tensors of the same numeric type.</summary>
internal sealed class BinaryKernel<TOp>(LegacyBroadcast? legacy = null) : Kernel where TOp : IBinaryOp
{
    public override void Run(KernelContext ctx)
    {
        var a = ctx.RequiredInput(0);
        var b = ctx.RequiredInput(1);
        var loop = legacy is null ? BroadcastLoop.Of(ctx, a.Dims, b.Dims) : legacy.Plan(ctx, a.Dims, b.Dims);
        var y = ctx.AllocateUninitialized(a.ElementType, loop.OutShape); // every element is written
        BinaryDriver.Run<TOp>(ctx, loop, a, b, y);
        ctx.SetOutput(0, y);
    }
}

/// <summary>Type dispatch and the run loop of <see cref="IBinaryOp"/> kernels.</summary>
internal static class BinaryDriver
{
    /// <summary>False on a test thread that runs the general run loop for reference.</summary>
    internal static bool UseWholeRun
    {
        get => !t_generalOnly;
        set => t_generalOnly = !value;
    }

    [ThreadStatic] private static bool t_generalOnly;

    /// <summary>y = op(a, b) over <paramref name="loop"/>; y may be a itself when a already has the output shape.</summary>
    public static void Run<TOp>(KernelContext ctx, BroadcastLoop loop, OnnxTensor a, OnnxTensor b, OnnxTensor y) where TOp : IBinaryOp
    {
        if (a.ElementType != b.ElementType)
            throw ctx.Invalid($"inputs have different element types ({DataTypes.OnnxName(a.ElementType)}, {DataTypes.OnnxName(b.ElementType)})");
        int t = ctx.Options.Threads;
        try
        {
            switch (a.ElementType)
            {
                case DataType.Float: Run<float, TOp>(loop, Elementwise.Data<float>(a), Elementwise.Data<float>(b), Elementwise.Data<float>(y), t); break;
                case DataType.Double: Run<double, TOp>(loop, Elementwise.Data<double>(a), Elementwise.Data<double>(b), Elementwise.Data<double>(y), t); break;
                case DataType.Float16: Run<Half, TOp>(loop, Elementwise.Data<Half>(a), Elementwise.Data<Half>(b), Elementwise.Data<Half>(y), t); break;
                case DataType.Int8: Run<sbyte, TOp>(loop, Elementwise.Data<sbyte>(a), Elementwise.Data<sbyte>(b), Elementwise.Data<sbyte>(y), t); break;
                case DataType.Int16: Run<short, TOp>(loop, Elementwise.Data<short>(a), Elementwise.Data<short>(b), Elementwise.Data<short>(y), t); break;
                case DataType.Int32: Run<int, TOp>(loop, Elementwise.Data<int>(a), Elementwise.Data<int>(b), Elementwise.Data<int>(y), t); break;
                case DataType.Int64: Run<long, TOp>(loop, Elementwise.Data<long>(a), Elementwise.Data<long>(b), Elementwise.Data<long>(y), t); break;
                case DataType.UInt8: Run<byte, TOp>(loop, Elementwise.Data<byte>(a), Elementwise.Data<byte>(b), Elementwise.Data<byte>(y), t); break;
                case DataType.UInt16: Run<ushort, TOp>(loop, Elementwise.Data<ushort>(a), Elementwise.Data<ushort>(b), Elementwise.Data<ushort>(y), t); break;
                case DataType.UInt32: Run<uint, TOp>(loop, Elementwise.Data<uint>(a), Elementwise.Data<uint>(b), Elementwise.Data<uint>(y), t); break;
                case DataType.UInt64: Run<ulong, TOp>(loop, Elementwise.Data<ulong>(a), Elementwise.Data<ulong>(b), Elementwise.Data<ulong>(y), t); break;
                default: throw ctx.Invalid($"element type {DataTypes.OnnxName(a.ElementType)} is not supported");
            }
        }
        catch (Exception e) when (e is DivideByZeroException || e is AggregateException { InnerException: DivideByZeroException })
        {
            throw ctx.Invalid("integer division by zero");
        }
    }

    private static void Run<T, TOp>(BroadcastLoop loop, T[] a, T[] b, T[] y, int threads) where T : unmanaged, INumber<T> where TOp : IBinaryOp
    {
        int sa = loop.InnerStrides[0], sb = loop.InnerStrides[1];
        // One run over everything (same shapes, or one operand a single element): straight TensorPrimitives calls on
        // chunks, through a reused job instead of per-call closures.
        if (loop.Inner == loop.Count && UseWholeRun)
        {
            FlatBinaryJob<T, TOp>.Run(a, sa, b, sb, y, loop.Count, threads);
            return;
        }
        BroadcastBinaryJob<T, TOp>.Run(loop, a, sa, b, sb, y, threads);
    }
}

/// <summary>
/// y = op(a, b) over the runs of a broadcast loop, with the arguments in an object reused per thread (its run body made
/// once), so that a call allocates nothing.
/// </summary>
internal sealed class BroadcastBinaryJob<T, TOp> where T : unmanaged, INumber<T> where TOp : IBinaryOp
{
    [ThreadStatic] private static BroadcastBinaryJob<T, TOp>? t_job;

    private T[] _a = [], _b = [], _y = [];
    private int _sa, _sb;
    private readonly RunBody _body;

    private BroadcastBinaryJob() => _body = Runs;

    /// <summary>Runs <paramref name="loop"/> with inner strides <paramref name="sa"/> and <paramref name="sb"/> of a and b.</summary>
    public static void Run(BroadcastLoop loop, T[] a, int sa, T[] b, int sb, T[] y, int threads)
    {
        // A job in use on this thread (a nested call) is left alone: that call gets one of its own.
        var job = t_job ?? new BroadcastBinaryJob<T, TOp>();
        t_job = null;
        (job._a, job._sa, job._b, job._sb, job._y) = (a, sa, b, sb, y);
        try
        {
            loop.Run(threads, job._body);
        }
        finally
        {
            (job._a, job._b, job._y) = ([], [], []);
            t_job = job;
        }
    }

    private void Runs(int o, int n, ReadOnlySpan<int> off)
    {
        T[] a = _a, b = _b;
        var dst = _y.AsSpan(o, n);
        if (_sa == 1 && _sb == 1) TOp.Apply<T>(a.AsSpan(off[0], n), b.AsSpan(off[1], n), dst);
        else if (_sa == 1) TOp.Apply(a.AsSpan(off[0], n), b[off[1]], dst);
        else if (_sb == 1) TOp.Apply(a[off[0]], b.AsSpan(off[1], n), dst);
        else
        {
            TOp.Apply<T>(a.AsSpan(off[0], 1), b.AsSpan(off[1], 1), dst[..1]);
            dst.Fill(dst[0]);
        }
    }
}

/// <summary>
/// y = op(a, b) over [0, count) where each operand is contiguous (stride 1) or one element (stride 0): the chunks of
/// <see cref="Parallelism.For"/> (so results do not depend on the thread count), with the arguments in an object reused
/// per thread so that a call allocates nothing.
/// </summary>
internal sealed class FlatBinaryJob<T, TOp> where T : unmanaged, INumber<T> where TOp : IBinaryOp
{
    [ThreadStatic] private static FlatBinaryJob<T, TOp>? t_job;

    private T[] _a = [], _b = [], _y = [];
    private int _sa, _sb;
    private readonly Action<int, int> _body;

    private FlatBinaryJob() => _body = Chunk;

    /// <summary>y[i] = op(a[i·sa], b[i·sb]) for i in [0, count).</summary>
    public static void Run(T[] a, int sa, T[] b, int sb, T[] y, int count, int threads)
    {
        var job = t_job ??= new FlatBinaryJob<T, TOp>();
        (job._a, job._sa, job._b, job._sb, job._y) = (a, sa, b, sb, y);
        try
        {
            Parallelism.For(count, threads, job._body);
        }
        finally
        {
            (job._a, job._b, job._y) = ([], [], []);
        }
    }

    private void Chunk(int start, int end)
    {
        int n = end - start;
        var dst = _y.AsSpan(start, n);
        if (_sa == 1 && _sb == 1) TOp.Apply<T>(_a.AsSpan(start, n), _b.AsSpan(start, n), dst);
        else if (_sa == 1) TOp.Apply(_a.AsSpan(start, n), _b[0], dst);
        else if (_sb == 1) TOp.Apply(_a[0], _b.AsSpan(start, n), dst);
        else
        {
            TOp.Apply<T>(_a.AsSpan(0, 1), _b.AsSpan(0, 1), dst[..1]);
            dst.Fill(dst[0]);
        }
    }
}

/// <summary>a + b.</summary>
internal readonly struct AddOp : IBinaryOp
{
    public static void Apply<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Add(a, b, y);
    public static void Apply<T>(ReadOnlySpan<T> a, T b, Span<T> y) where T : unmanaged, INumber<T> => TP.Add(a, b, y);
    public static void Apply<T>(T a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Add(b, a, y);
}

/// <summary>a - b.</summary>
internal readonly struct SubOp : IBinaryOp
{
    public static void Apply<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Subtract(a, b, y);
    public static void Apply<T>(ReadOnlySpan<T> a, T b, Span<T> y) where T : unmanaged, INumber<T> => TP.Subtract(a, b, y);
    public static void Apply<T>(T a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Subtract(a, b, y);
}

/// <summary>a * b.</summary>
internal readonly struct MulOp : IBinaryOp
{
    public static void Apply<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Multiply(a, b, y);
    public static void Apply<T>(ReadOnlySpan<T> a, T b, Span<T> y) where T : unmanaged, INumber<T> => TP.Multiply(a, b, y);
    public static void Apply<T>(T a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Multiply(b, a, y);
}

/// <summary>a / b (integer division truncates toward zero, as in C).</summary>
internal readonly struct DivOp : IBinaryOp
{
    public static void Apply<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Divide(a, b, y);
    public static void Apply<T>(ReadOnlySpan<T> a, T b, Span<T> y) where T : unmanaged, INumber<T> => TP.Divide(a, b, y);
    public static void Apply<T>(T a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Divide(a, b, y);
}

/// <summary>max(a, b); NaN if either is NaN (numpy.maximum).</summary>
internal readonly struct MaxOp : IBinaryOp
{
    public static void Apply<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Max(a, b, y);
    public static void Apply<T>(ReadOnlySpan<T> a, T b, Span<T> y) where T : unmanaged, INumber<T> => TP.Max(a, b, y);
    public static void Apply<T>(T a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Max(b, a, y);
}

/// <summary>min(a, b); NaN if either is NaN (numpy.minimum).</summary>
internal readonly struct MinOp : IBinaryOp
{
    public static void Apply<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Min(a, b, y);
    public static void Apply<T>(ReadOnlySpan<T> a, T b, Span<T> y) where T : unmanaged, INumber<T> => TP.Min(a, b, y);
    public static void Apply<T>(T a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T> => TP.Min(b, a, y);
}

/// <summary>Remainder with the sign of the dividend, C fmod (Mod with fmod=1).</summary>
internal readonly struct FmodOp : IBinaryOp
{
    public static void Apply<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < y.Length; i++) y[i] = a[i] % b[i];
    }

    public static void Apply<T>(ReadOnlySpan<T> a, T b, Span<T> y) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < y.Length; i++) y[i] = a[i] % b;
    }

    public static void Apply<T>(T a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < y.Length; i++) y[i] = a % b[i];
    }
}

/// <summary>Remainder with the sign of the divisor, Python's % (Mod with fmod=0, integers only).</summary>
internal readonly struct FloorModOp : IBinaryOp
{
    private static T Mod<T>(T a, T b) where T : INumber<T>
    {
        T r = a % b;
        return !T.IsZero(r) && T.IsNegative(r) != T.IsNegative(b) ? r + b : r;
    }

    public static void Apply<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < y.Length; i++) y[i] = Mod(a[i], b[i]);
    }

    public static void Apply<T>(ReadOnlySpan<T> a, T b, Span<T> y) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < y.Length; i++) y[i] = Mod(a[i], b);
    }

    public static void Apply<T>(T a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < y.Length; i++) y[i] = Mod(a, b[i]);
    }
}

/// <summary>PRelu's f(x, slope) = x &lt; 0 ? slope * x : x.</summary>
internal readonly struct PReluOp : IBinaryOp
{
    public static void Apply<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < y.Length; i++) y[i] = a[i] < T.Zero ? b[i] * a[i] : a[i];
    }

    public static void Apply<T>(ReadOnlySpan<T> a, T b, Span<T> y) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < y.Length; i++) y[i] = a[i] < T.Zero ? b * a[i] : a[i];
    }

    public static void Apply<T>(T a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, INumber<T>
    {
        bool negative = a < T.Zero;
        for (int i = 0; i < y.Length; i++) y[i] = negative ? b[i] * a : a;
    }
}
