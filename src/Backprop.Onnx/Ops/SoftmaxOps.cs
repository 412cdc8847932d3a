using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Softmax, LogSoftmax and Hardmax (ONNX spec sections of the same names). Before opset 13 the input is coerced to
/// 2-D [d0·…·d(axis-1), d(axis)·…·d(n-1)] (default axis 1) and the op applies to each row; from 13 it applies along
/// the one dimension <c>axis</c> (default -1).
/// </summary>
internal static partial class SoftmaxOps
{
    internal enum Kind { Softmax, LogSoftmax, Hardmax }

    public static void Register(List<OpDefinition> ops)
    {
        // ONNX spec "Softmax" (1, 11, 13): y = exp(x - max) / Σ exp(x - max).
        ops.Add(new OpDefinition("Softmax", op => Create(op, Kind.Softmax)) { Vjp = SoftmaxVjp });
        // ONNX spec "LogSoftmax" (1, 11, 13): y = x - max - log Σ exp(x - max).
        ops.Add(new OpDefinition("LogSoftmax", op => Create(op, Kind.LogSoftmax)) { Vjp = LogSoftmaxVjp });
        // ONNX spec "Hardmax" (1, 11, 13): 1 at the first maximal element of each line, 0 elsewhere; piecewise
        // constant, so no gradient flows.
        ops.Add(new OpDefinition("Hardmax", op => Create(op, Kind.Hardmax)) { NonDifferentiable = true });
        ops.AddRange(GradDefinitions());
    }

    /// <summary>The [outer, n, inner] view the op works on for this opset's axis semantics.</summary>
    internal static (int Outer, int N, int Inner) Layout(KernelContext ctx, ReadOnlySpan<int> shape, long axis, bool coerce2D)
    {
        if (shape.Length == 0) return (1, 1, 1);
        int a = ReductionOps.NormalizeAxis(ctx, axis, shape.Length);
        return coerce2D
            ? (ReductionOps.Product(shape, 0, a), ReductionOps.Product(shape, a, shape.Length), 1)
            : ReductionOps.AroundAxis(shape, a);
    }

    private static Kernel Create(OpContext op, Kind kind)
    {
        bool coerce2D = op.OpsetVersion < 13;
        long axis = op.Node.GetInt("axis", coerce2D ? 1 : -1);
        op.RequireInputType(0, DataType.Float, DataType.Double, DataType.Float16);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            var (outer, n, inner) = Layout(ctx, x.Shape, axis, coerce2D);
            ctx.SetOutput(0, Apply(ctx, x, outer, n, inner, kind));
        });
    }

    private static OnnxTensor Apply(KernelContext ctx, OnnxTensor x, int outer, int n, int inner, Kind kind)
    {
        if (x.ElementType == DataType.Float16) return ReductionOps.SingleToHalf(Apply(ctx, ReductionOps.HalfToSingle(x), outer, n, inner, kind));
        var y = ctx.AllocateUninitialized(x.ElementType, x.Shape); // every line is written
        int threads = ReductionOps.Parallelism(ctx, x.ElementCount);
        switch (x.ElementType)
        {
            case DataType.Float: Lines((float[])x.Buffer, (float[])y.Buffer, outer, n, inner, kind, threads); break;
            case DataType.Double: Lines((double[])x.Buffer, (double[])y.Buffer, outer, n, inner, kind, threads); break;
            default: throw ctx.Invalid($"no {kind} for {DataTypes.OnnxName(x.ElementType)}");
        }
        return y;
    }

    /// <summary>Applies the op to every line of length <paramref name="n"/> (stride <paramref name="inner"/>) of [outer, n, inner].</summary>
    internal static void Lines<T>(T[] x, T[] y, int outer, int n, int inner, Kind kind, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (n == 0) return;
        if (inner == 1)
        {
            RowJob<T>.Run(x, null, y, outer, n, kind, threads);
            return;
        }
        int lines = outer * inner;
        ReductionOps.ForChunks(lines, threads, (from, to) =>
        {
            var src = inner == 1 ? null : new T[n];
            var dst = inner == 1 ? null : new T[n];
            for (int l = from; l < to; l++)
            {
                int start = l / inner * n * inner + l % inner;
                ReadOnlySpan<T> line = inner == 1 ? x.AsSpan(start, n) : src;
                Span<T> result = inner == 1 ? y.AsSpan(start, n) : dst;
                if (inner != 1) ReductionOps.Gather<T>(x, start, inner, src);
                Line(line, result, kind);
                if (inner != 1) ReductionOps.Scatter<T>(dst, y, start, inner);
            }
        });
    }

    /// <summary>One line: <paramref name="x"/> and <paramref name="y"/> may not overlap.</summary>
    internal static void Line<T>(ReadOnlySpan<T> x, Span<T> y, Kind kind) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float) && kind != Kind.Hardmax && Vector256.IsHardwareAccelerated)
        {
            FloatLine(MemoryMarshal.Cast<T, float>(x), MemoryMarshal.Cast<T, float>(y), kind);
            return;
        }
        T max = TP.Max(x);
        switch (kind)
        {
            case Kind.Softmax:
                TP.Divide(y, ExpShifted(x, max, y), y);
                break;
            case Kind.LogSoftmax:
                T logSum = T.Log(ExpShifted(x, max, y));
                TP.Subtract(x, max, y);
                TP.Subtract(y, logSum, y);
                break;
            case Kind.Hardmax:
                y.Clear();
                int best = 0;
                for (int k = 1; k < x.Length; k++) if (x[k] > x[best] || (T.IsNaN(x[k]) && !T.IsNaN(x[best]))) best = k;
                y[best] = T.One;
                break;
        }
    }
}
