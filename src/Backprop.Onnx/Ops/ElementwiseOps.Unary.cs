using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>
/// A unary elementwise function over spans. Floating-point ops override <see cref="Float{T}"/>; ops that are also
/// defined on integers override <see cref="Number{T}"/> (which <see cref="Float{T}"/> calls unless overridden).
/// </summary>
internal abstract class UnaryMap
{
    /// <summary>The element types the op computes on (checked when the kernel is built, and when it runs).</summary>
    public abstract DataType[] Types { get; }

    /// <summary>y = f(x) for float, double and float16 (Half arithmetic rounds each step through float).</summary>
    public virtual void Float<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T> => Number(x, y);

    /// <summary>y = f(x) for the integer types in <see cref="Types"/>.</summary>
    public virtual void Number<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, INumber<T> =>
        throw new NotSupportedException($"{GetType().Name} has no integer kernel");
}

/// <summary>Runs a <see cref="UnaryMap"/> over a tensor, in chunks over the configured threads.</summary>
internal sealed class UnaryKernel(UnaryMap map) : Kernel
{
    public override void Run(KernelContext ctx)
    {
        var x = ctx.RequiredInput(0);
        var y = ctx.AllocateUninitialized(x.ElementType, x.Dims); // every element is written
        Apply(ctx, map, x, y);
        ctx.SetOutput(0, y);
    }

    /// <summary>y = map(x) elementwise; <paramref name="y"/> has x's type and element count (it may be x's own fresh buffer).</summary>
    public static void Apply(KernelContext ctx, UnaryMap map, OnnxTensor x, OnnxTensor y)
    {
        if (Array.IndexOf(map.Types, x.ElementType) < 0)
            throw ctx.Invalid($"element type {DataTypes.OnnxName(x.ElementType)} is not supported");
        int n = checked((int)x.ElementCount), threads = ctx.Options.Threads;
        switch (x.ElementType)
        {
            case DataType.Float: Floats(map, Elementwise.Data<float>(x), Elementwise.Data<float>(y), n, threads); break;
            case DataType.Double: Floats(map, Elementwise.Data<double>(x), Elementwise.Data<double>(y), n, threads); break;
            case DataType.Float16: Floats(map, Elementwise.Data<Half>(x), Elementwise.Data<Half>(y), n, threads); break;
            case DataType.Int8: Numbers(map, Elementwise.Data<sbyte>(x), Elementwise.Data<sbyte>(y), n, threads); break;
            case DataType.Int16: Numbers(map, Elementwise.Data<short>(x), Elementwise.Data<short>(y), n, threads); break;
            case DataType.Int32: Numbers(map, Elementwise.Data<int>(x), Elementwise.Data<int>(y), n, threads); break;
            case DataType.Int64: Numbers(map, Elementwise.Data<long>(x), Elementwise.Data<long>(y), n, threads); break;
            case DataType.UInt8: Numbers(map, Elementwise.Data<byte>(x), Elementwise.Data<byte>(y), n, threads); break;
            case DataType.UInt16: Numbers(map, Elementwise.Data<ushort>(x), Elementwise.Data<ushort>(y), n, threads); break;
            case DataType.UInt32: Numbers(map, Elementwise.Data<uint>(x), Elementwise.Data<uint>(y), n, threads); break;
            case DataType.UInt64: Numbers(map, Elementwise.Data<ulong>(x), Elementwise.Data<ulong>(y), n, threads); break;
            default: throw ctx.Invalid($"element type {DataTypes.OnnxName(x.ElementType)} is not supported");
        }
    }

    private static void Floats<T>(UnaryMap map, T[] x, T[] y, int n, int threads) where T : unmanaged, IFloatingPointIeee754<T> =>
        UnaryJob<T>.Run(map, x, y, n, threads, floats: true);

    private static void Numbers<T>(UnaryMap map, T[] x, T[] y, int n, int threads) where T : unmanaged, INumber<T> =>
        UnaryJob<T>.Run(map, x, y, n, threads, floats: false);

    /// <summary>One call's arguments, in an object reused per thread so that the parallel loop allocates no closure.</summary>
    private sealed class UnaryJob<T> where T : unmanaged, INumber<T>
    {
        [ThreadStatic] private static UnaryJob<T>? t_job;

        private UnaryMap? _map;
        private T[] _x = [], _y = [];
        private bool _floats;
        private readonly Action<int, int> _body;

        private UnaryJob() => _body = Chunk;

        public static void Run(UnaryMap map, T[] x, T[] y, int n, int threads, bool floats)
        {
            var job = t_job ??= new UnaryJob<T>();
            (job._map, job._x, job._y, job._floats) = (map, x, y, floats);
            try
            {
                Parallelism.For(n, threads, job._body);
            }
            finally
            {
                (job._map, job._x, job._y) = (null, [], []);
            }
        }

        private void Chunk(int s, int e)
        {
            if (_floats) FloatChunk(this, s, e);
            else _map!.Number<T>(_x.AsSpan(s, e - s), _y.AsSpan(s, e - s));
        }

        /// <summary>The float map (T is float, double or Half here: <see cref="Floats{T}"/> is its only caller with floats set).</summary>
        private static void FloatChunk(UnaryJob<T> job, int s, int e)
        {
            switch (job._x)
            {
                case float[] x: job._map!.Float<float>(x.AsSpan(s, e - s), ((float[])(object)job._y).AsSpan(s, e - s)); break;
                case double[] x: job._map!.Float<double>(x.AsSpan(s, e - s), ((double[])(object)job._y).AsSpan(s, e - s)); break;
                case Half[] x: job._map!.Float<Half>(x.AsSpan(s, e - s), ((Half[])(object)job._y).AsSpan(s, e - s)); break;
            }
        }
    }
}

/// <summary>Element-type sets and small tensor helpers shared by the elementwise and activation families.</summary>
internal static class Elementwise
{
    /// <summary>float, double, float16.</summary>
    public static readonly DataType[] FloatTypes = [DataType.Float, DataType.Double, DataType.Float16];

    /// <summary>The signed integer types.</summary>
    public static readonly DataType[] SignedIntTypes = [DataType.Int8, DataType.Int16, DataType.Int32, DataType.Int64];

    /// <summary>The unsigned integer types.</summary>
    public static readonly DataType[] UnsignedIntTypes = [DataType.UInt8, DataType.UInt16, DataType.UInt32, DataType.UInt64];

    /// <summary>Float types and signed integers.</summary>
    public static readonly DataType[] SignedTypes = [.. FloatTypes, .. SignedIntTypes];

    /// <summary>Every numeric type we compute on (no bfloat16).</summary>
    public static readonly DataType[] NumericTypes = [.. FloatTypes, .. SignedIntTypes, .. UnsignedIntTypes];

    /// <summary>The buffer of a tensor as its storage array (it may be longer than the element count).</summary>
    public static T[] Data<T>(OnnxTensor t) => (T[])t.Buffer;

    /// <summary>A factory that checks the known type of input 0 and builds a <see cref="UnaryKernel"/>.</summary>
    public static KernelFactory Unary(UnaryMap map) => op =>
    {
        RequireTypes(op, 0, map.Types);
        return new UnaryKernel(map);
    };

    /// <summary>Throws the op's Unsupported exception when the known type of input <paramref name="index"/> is not allowed.</summary>
    public static void RequireTypes(OpContext op, int index, DataType[] allowed) => op.RequireInputType(index, allowed);

    /// <summary>The float attribute <paramref name="name"/> as a double (ONNX float attributes are binary32).</summary>
    public static double Attr(OpContext op, string name, float defaultValue) => op.Node.GetFloat(name, defaultValue);
}

/// <summary>y = f(x) for a function TensorPrimitives vectorizes, float types only.</summary>
internal sealed class FloatPrimitive(FloatPrimitive.Kind kind) : UnaryMap
{
    /// <summary>The TensorPrimitives function applied.</summary>
    internal enum Kind { Exp, Log, Sqrt, Reciprocal, Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Tanh, Asinh, Acosh, Atanh, Ceil, Floor, Round, Sigmoid }

    public override DataType[] Types => Elementwise.FloatTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        switch (kind)
        {
            case Kind.Exp: TP.Exp(x, y); break;
            case Kind.Log: TP.Log(x, y); break;
            case Kind.Sqrt: TP.Sqrt(x, y); break;
            case Kind.Reciprocal: TP.Reciprocal(x, y); break;
            case Kind.Sin: TP.Sin(x, y); break;
            case Kind.Cos: TP.Cos(x, y); break;
            case Kind.Tan: TP.Tan(x, y); break;
            case Kind.Asin: TP.Asin(x, y); break;
            case Kind.Acos: TP.Acos(x, y); break;
            case Kind.Atan: TP.Atan(x, y); break;
            case Kind.Sinh: TP.Sinh(x, y); break;
            case Kind.Cosh: TP.Cosh(x, y); break;
            case Kind.Tanh: TP.Tanh(x, y); break;
            case Kind.Asinh: TP.Asinh(x, y); break;
            case Kind.Acosh: TP.Acosh(x, y); break;
            case Kind.Atanh: TP.Atanh(x, y); break;
            case Kind.Ceil: TP.Ceiling(x, y); break;
            case Kind.Floor: TP.Floor(x, y); break;
            case Kind.Round: TP.Round(x, MidpointRounding.ToEven, y); break;
            case Kind.Sigmoid: TP.Sigmoid(x, y); break;
            default: throw new InvalidOperationException(kind.ToString());
        }
    }
}

/// <summary>Abs (ONNX "Abs"): |x|; the identity on unsigned types.</summary>
internal sealed class AbsMap : UnaryMap
{
    public override DataType[] Types => Elementwise.NumericTypes;

    public override void Number<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        // Unsigned values are never negative; the most negative signed value wraps to itself (as in C and numpy).
        for (int i = 0; i < x.Length; i++) y[i] = T.IsNegative(x[i]) ? T.Zero - x[i] : x[i];
    }

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y) => TP.Abs(x, y);
}

/// <summary>Neg (ONNX "Neg"): -x, for float and signed integer types (two's complement wraps at MinValue).</summary>
internal sealed class NegMap : UnaryMap
{
    public override DataType[] Types => Elementwise.SignedTypes;

    public override void Number<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = T.Zero - x[i];
    }

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y) => TP.Negate(x, y);
}

/// <summary>Sign (ONNX "Sign"): -1, 0 or 1 by the sign of x; NaN stays NaN (as numpy.sign).</summary>
internal sealed class SignMap : UnaryMap
{
    public override DataType[] Types => Elementwise.NumericTypes;

    public override void Number<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        for (int i = 0; i < x.Length; i++)
        {
            T v = x[i];
            y[i] = v > T.Zero ? T.One : v < T.Zero ? T.Zero - T.One : v == T.Zero ? T.Zero : v;
        }
    }
}

/// <summary>Erf (ONNX "Erf"): the Gauss error function, to double precision (see <see cref="ErfFunction"/>).</summary>
internal sealed class ErfMap : UnaryMap
{
    public override DataType[] Types => Elementwise.FloatTypes;

    public override void Float<T>(ReadOnlySpan<T> x, Span<T> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = T.CreateTruncating(ErfFunction.Erf(double.CreateTruncating(x[i])));
    }
}
