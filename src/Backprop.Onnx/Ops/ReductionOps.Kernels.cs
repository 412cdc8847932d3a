using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>Reduces one set of elements (the elements of one output position) to a value.</summary>
internal delegate T SpanReducer<T>(ReadOnlySpan<T> values);

internal static partial class ReductionOps
{
    /// <summary>Reduces <paramref name="x"/> over the flagged axes with <paramref name="kind"/>.</summary>
    internal static OnnxTensor Reduce(KernelContext ctx, OnnxTensor x, bool[] reduced, bool keepDims, ReduceKind kind) =>
        Reduce(ctx, x, new ReducePlan(x.Dims, reduced, keepDims), kind);

    /// <summary>Reduces <paramref name="x"/> as <paramref name="plan"/> (made for x's shape) says, with <paramref name="kind"/>.</summary>
    internal static OnnxTensor Reduce(KernelContext ctx, OnnxTensor x, ReducePlan plan, ReduceKind kind)
    {
        var outShape = plan.OutShape;
        return x.ElementType switch
        {
            DataType.Float => Run(FloatReducer<float>(kind)),
            DataType.Double => Run(FloatReducer<double>(kind)),
            DataType.Float16 => SingleToHalf(Reduce(ctx, HalfToSingle(x), plan, kind)),
            DataType.Int32 => Run(IntReducer<int>(kind)),
            DataType.Int64 => Run(IntReducer<long>(kind)),
            DataType.UInt32 => Run(IntReducer<uint>(kind)),
            DataType.UInt64 => Run(IntReducer<ulong>(kind)),
            DataType.Int8 => Run(IntReducer<sbyte>(kind)),
            DataType.UInt8 => Run(IntReducer<byte>(kind)),
            _ => throw ctx.Invalid($"no {kind} reduction for {DataTypes.OnnxName(x.ElementType)}"),
        };

        OnnxTensor Run<T>(SpanReducer<T> f) where T : unmanaged, INumber<T>
        {
            var y = ctx.Allocate(x.ElementType, outShape);
            int threads = Parallelism(ctx, x.ElementCount);
            var layout = plan.Layout;
            if (kind is ReduceKind.Sum or ReduceKind.Mean or ReduceKind.Max or ReduceKind.Min && layout.RowBlock is { Rows: > 0 } block)
                RowReduce((T[])x.Buffer, block, (T[])y.Buffer, kind, threads);
            else
                ReduceCore((T[])x.Buffer, layout, (T[])y.Buffer, f, threads);
            return y;
        }
    }

    /// <summary>
    /// Reduces the middle dimension of [outer, rows, inner] by accumulating whole rows (vectorized along inner), so
    /// column reductions read memory in order. Each output is accumulated over rows in index order.
    /// </summary>
    private static void RowReduce<T>(T[] x, (int Outer, int Rows, int Inner) b, T[] y, ReduceKind kind, int threads) where T : unmanaged, INumber<T>
    {
        var (outer, rows, inner) = b;
        // Split the [outer, inner] outputs into column ranges so one large outer block also runs in parallel.
        int parts = Math.Max(1, Math.Min(threads, inner / 64));
        ForChunks(outer * parts, threads, (x, y, rows, inner, parts, kind), static (s, from, to) =>
        {
            var (x, y, rows, inner, parts, kind) = s;
            for (int job = from; job < to; job++)
            {
                int o = job / parts, p = job % parts;
                int c0 = (int)((long)inner * p / parts), c1 = (int)((long)inner * (p + 1) / parts), width = c1 - c0;
                var acc = y.AsSpan(o * inner + c0, width);
                x.AsSpan((o * rows) * inner + c0, width).CopyTo(acc);
                for (int r = 1; r < rows; r++)
                {
                    var row = x.AsSpan((o * rows + r) * inner + c0, width);
                    switch (kind)
                    {
                        case ReduceKind.Max: TP.Max(acc, row, acc); break;
                        case ReduceKind.Min: TP.Min(acc, row, acc); break;
                        default: TP.Add(acc, row, acc); break;
                    }
                }
                if (kind == ReduceKind.Mean) TP.Divide(acc, T.CreateChecked(rows), acc);
            }
        });
    }

    internal static SpanReducer<T> FloatReducer<T>(ReduceKind kind) where T : unmanaged, IFloatingPointIeee754<T> => kind switch
    {
        ReduceKind.Sum => Sum,
        ReduceKind.Mean => v => Sum(v) / T.CreateChecked(v.Length),
        ReduceKind.SumSquare => SumOfSquares,
        ReduceKind.L1 => SumOfMagnitudes,
        ReduceKind.L2 => v => T.Sqrt(SumOfSquares(v)),
        ReduceKind.LogSum => v => T.Log(Sum(v)),
        ReduceKind.LogSumExp => LogSumExp,
        ReduceKind.Prod => Product,
        ReduceKind.Max => v => v.IsEmpty ? T.NegativeInfinity : TP.Max(v),
        ReduceKind.Min => v => v.IsEmpty ? T.PositiveInfinity : TP.Min(v),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Integer reductions with the type's wrap-around arithmetic (as NumPy); Mean truncates toward zero.</summary>
    internal static SpanReducer<T> IntReducer<T>(ReduceKind kind) where T : unmanaged, IBinaryInteger<T>, IMinMaxValue<T> => kind switch
    {
        ReduceKind.Sum => Sum,
        ReduceKind.Mean => v => v.IsEmpty ? throw new InvalidInputException("ReduceMean over an empty set of integers has no value") : Sum(v) / T.CreateTruncating(v.Length),
        ReduceKind.SumSquare => SumOfSquares,
        ReduceKind.L1 => SumOfMagnitudes,
        ReduceKind.Prod => Product,
        ReduceKind.Max => v => v.IsEmpty ? T.MinValue : TP.Max(v),
        ReduceKind.Min => v => v.IsEmpty ? T.MaxValue : TP.Min(v),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>log Σ exp(v) = m + log Σ exp(v - m), m = max v; -inf for an empty set.</summary>
    internal static T LogSumExp<T>(ReadOnlySpan<T> v) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (v.IsEmpty) return T.NegativeInfinity;
        T m = TP.Max(v);
        if (!T.IsFinite(m)) return m; // +inf stays +inf, all -inf gives -inf, NaN propagates
        T s = T.Zero;
        foreach (var e in v) s += T.Exp(e - m);
        return m + T.Log(s);
    }

    /// <summary>
    /// The reduction driver: y[j] = f(elements of x that map to output j). A reduced trailing block is reduced in
    /// place; anything else is gathered into a buffer (see <see cref="ReductionLayout"/>).
    /// </summary>
    internal static void ReduceCore<T>(T[] x, ReductionLayout layout, T[] y, SpanReducer<T> f, int threads)
    {
        int count = layout.Count;
        if (layout.OutCount == 0) return;
        if (count == 0)
        {
            Array.Fill(y, f([]), 0, layout.OutCount);
            return;
        }
        ForChunks(layout.OutCount, threads, (x, layout, y, f), static (s, from, to) =>
        {
            var (x, layout, y, f) = s;
            int count = layout.Count;
            // Scratch for one output's elements when they are not contiguous, rented per chunk.
            var rented = layout.Contiguous ? null : System.Buffers.ArrayPool<T>.Shared.Rent(count);
            try
            {
                for (int j = from; j < to; j++)
                {
                    int start = layout.Start(j);
                    if (rented is null) { y[j] = f(x.AsSpan(start, count)); continue; }
                    var buffer = rented.AsSpan(0, count);
                    layout.Gather<T>(x, start, buffer);
                    y[j] = f(buffer);
                }
            }
            finally
            {
                if (rented is not null) System.Buffers.ArrayPool<T>.Shared.Return(rented);
            }
        });
    }

    private static Kernel CreateArgExtreme(OpContext op, bool max)
    {
        long axis = op.Node.GetInt("axis", 0);
        long keep = op.Node.GetInt("keepdims", 1);
        long last = op.Node.GetInt("select_last_index", 0);
        if (keep is not (0 or 1)) throw op.Unsupported($"keepdims={keep} (0 or 1)");
        if (last is not (0 or 1)) throw op.Unsupported($"select_last_index={last} (0 or 1)");
        op.RequireInputType(0, DataType.Float, DataType.Double, DataType.Float16, DataType.Int8, DataType.UInt8, DataType.Int16,
            DataType.UInt16, DataType.Int32, DataType.UInt32, DataType.Int64, DataType.UInt64);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            int a = NormalizeAxis(ctx, axis, x.Rank);
            var (outer, n, inner) = AroundAxis(x.Shape, a);
            if (n == 0) throw ctx.Invalid($"{op.Node.OpType} along an empty axis {axis}");
            var shape = x.Shape.ToArray();
            if (keep == 1) shape[a] = 1; else shape = [.. shape[..a], .. shape[(a + 1)..]];
            var y = ctx.Allocate(DataType.Int64, shape);
            var result = y.AsSpan<long>();
            switch (x.ElementType)
            {
                case DataType.Float: ArgLines(x.AsSpan<float>(), outer, n, inner, result, max, last == 1); break;
                case DataType.Double: ArgLines(x.AsSpan<double>(), outer, n, inner, result, max, last == 1); break;
                case DataType.Float16: ArgLines(x.AsSpan<Half>(), outer, n, inner, result, max, last == 1); break;
                case DataType.Int8: ArgLines(x.AsSpan<sbyte>(), outer, n, inner, result, max, last == 1); break;
                case DataType.UInt8: ArgLines(x.AsSpan<byte>(), outer, n, inner, result, max, last == 1); break;
                case DataType.Int16: ArgLines(x.AsSpan<short>(), outer, n, inner, result, max, last == 1); break;
                case DataType.UInt16: ArgLines(x.AsSpan<ushort>(), outer, n, inner, result, max, last == 1); break;
                case DataType.Int32: ArgLines(x.AsSpan<int>(), outer, n, inner, result, max, last == 1); break;
                case DataType.UInt32: ArgLines(x.AsSpan<uint>(), outer, n, inner, result, max, last == 1); break;
                case DataType.Int64: ArgLines(x.AsSpan<long>(), outer, n, inner, result, max, last == 1); break;
                case DataType.UInt64: ArgLines(x.AsSpan<ulong>(), outer, n, inner, result, max, last == 1); break;
                default: throw op.Unsupported($"{op.Node.OpType} of {DataTypes.OnnxName(x.ElementType)}");
            }
            ctx.SetOutput(0, y);
        });
    }

    /// <summary>Index of the extreme element of each line along the middle dimension of [outer, n, inner].</summary>
    private static void ArgLines<T>(ReadOnlySpan<T> x, int outer, int n, int inner, Span<long> y, bool max, bool last) where T : INumber<T>
    {
        for (int o = 0; o < outer; o++)
        {
            for (int i = 0; i < inner; i++)
            {
                int start = o * n * inner + i;
                int best = 0;
                T bv = x[start];
                bool bestIsNaN = T.IsNaN(bv);
                for (int k = 1; k < n; k++)
                {
                    T v = x[start + k * inner];
                    if (bestIsNaN)
                    {
                        if (last && T.IsNaN(v)) best = k;
                        continue;
                    }
                    if (T.IsNaN(v)) { best = k; bv = v; bestIsNaN = true; continue; }
                    if (max ? v > bv : v < bv) { best = k; bv = v; }
                    else if (last && v == bv) best = k;
                }
                y[o * inner + i] = best;
            }
        }
    }
}
