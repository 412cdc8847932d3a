using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Tp = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>GlobalAveragePool, GlobalMaxPool and MaxUnpool.</summary>
internal static partial class PoolingOps
{
    /// <summary>GlobalAveragePool / GlobalMaxPool (ONNX spec, version 1): Y (N, C, 1, …, 1) = mean / max of each plane.</summary>
    private static Kernel CreateGlobal(OpContext op, bool max)
    {
        if (MatMulOps.IsHalfType(op.InputType(0))) return MatMulOps.Widened(op, o => CreateGlobal(o, max));
        op.RequireInputType(0, DataType.Float, DataType.Double);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            if (x.Rank < 2) throw ctx.Invalid($"input of rank {x.Rank}; expected (N, C, D1, …)");
            int planes = x.Dims[0] * x.Dims[1];
            int size = x.Dims[2..].Aggregate(1, (p, d) => p * d);
            var y = ctx.Allocate(x.ElementType, [x.Dims[0], x.Dims[1], .. Enumerable.Repeat(1, x.Rank - 2)]);
            if (x.ElementType == DataType.Float) Global((float[])x.Buffer, (float[])y.Buffer, planes, size, max);
            else Global((double[])x.Buffer, (double[])y.Buffer, planes, size, max);
            ctx.SetOutput(0, y);
        });
    }

    private static void Global<T>(T[] x, T[] y, int planes, int size, bool max) where T : IFloatingPointIeee754<T>
    {
        for (int p = 0; p < planes; p++)
        {
            var plane = x.AsSpan(p * size, size);
            y[p] = size == 0 ? (max ? T.NegativeInfinity : T.NaN) : max ? Tp.Max<T>(plane) : Tp.Sum<T>(plane) / T.CreateChecked(size);
        }
    }

    /// <summary>
    /// MaxUnpool (ONNX spec "MaxUnpool", versions 9, 11): Y is zero except Y.flat[I[j]] = X[j]; its shape is the
    /// optional output_shape input, else (N, C, (in − 1)·stride − pad_begin − pad_end + kernel …).
    /// </summary>
    private static Kernel CreateMaxUnpool(OpContext op)
    {
        if (MatMulOps.IsHalfType(op.InputType(0))) return MatMulOps.Widened(op, CreateMaxUnpool);
        op.RequireInputType(0, DataType.Float, DataType.Double);
        var window = WindowAttributes.Parse(op, requireKernelShape: true, allowDilations: false);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            var indices = ctx.RequiredInput(1);
            if (indices.ElementType != DataType.Int64 || !indices.Shape.SequenceEqual(x.Shape)) throw ctx.Invalid("I must be int64 of X's shape");
            int rank = x.Rank - 2;
            if (rank < 1) throw ctx.Invalid($"input of rank {x.Rank}; expected (N, C, D1, …)");
            var kernel = window.Kernel(ctx, rank, []);
            var strides = window.StridesFor(ctx, rank);
            var pads = window.Pads ?? new int[2 * rank];
            int[] inferred = [x.Dims[0], x.Dims[1], .. Enumerable.Range(0, rank).Select(d => (x.Dims[d + 2] - 1) * strides[d] - pads[d] - pads[rank + d] + kernel[d])];
            int[] shape = inferred;
            if (ctx.Input(2) is { } outputShape)
            {
                shape = [.. outputShape.AsSpan<long>().ToArray().Select(v => checked((int)v))];
                if (shape.Length != x.Rank) throw ctx.Invalid($"output_shape has {shape.Length} values for rank {x.Rank}");
            }
            var y = ctx.Allocate(x.ElementType, shape);
            var idx = indices.AsSpan<long>();
            if (x.ElementType == DataType.Float) Scatter(ctx, x.AsSpan<float>(), idx, inferred, shape, y.AsSpan<float>());
            else Scatter(ctx, x.AsSpan<double>(), idx, inferred, shape, y.AsSpan<double>());
            ctx.SetOutput(0, y);
        });
    }

    /// <summary>
    /// y[I[j]] = x[j], where I indexes the unpooled shape <paramref name="inferred"/> (the shape MaxPool's input had):
    /// when output_shape differs, each index is moved to the same coordinates in <paramref name="shape"/>, as the ONNX
    /// backend test data expects.
    /// </summary>
    private static void Scatter<T>(KernelContext ctx, ReadOnlySpan<T> x, ReadOnlySpan<long> indices, int[] inferred, int[] shape, Span<T> y)
    {
        bool same = inferred.AsSpan().SequenceEqual(shape);
        long inferredCount = inferred.Aggregate(1L, (p, d) => p * d);
        var coord = new int[shape.Length];
        var strides = Runtime.Broadcast.ContiguousStrides(shape);
        for (int j = 0; j < x.Length; j++)
        {
            long i = indices[j];
            if (!same)
            {
                if (i < 0 || i >= inferredCount) throw ctx.Invalid($"index {i} is outside the unpooled shape [{string.Join(',', inferred)}]");
                ConvOps.Decompose(i, inferred, coord);
                i = 0;
                for (int d = 0; d < shape.Length; d++)
                {
                    if (coord[d] >= shape[d]) throw ctx.Invalid($"index {indices[j]} falls outside output_shape [{string.Join(',', shape)}]");
                    i += coord[d] * strides[d];
                }
            }
            if (i < 0 || i >= y.Length) throw ctx.Invalid($"index {i} is outside the output of {y.Length} elements");
            y[(int)i] = x[j];
        }
    }
}
