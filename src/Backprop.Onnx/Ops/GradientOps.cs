using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Kernels of our own domain (<see cref="OpRegistry.BackpropDomain"/>) that gradient graphs use where no standard op
/// fits; each has an equivalent in standard ops for export.
/// </summary>
internal static partial class GradientOps
{
    public static void Register(List<OpDefinition> ops)
    {
        // SumToShape(dY, shape): sums dY over the dimensions that broadcasting expanded so the result has `shape`
        // (the adjoint of multidirectional broadcasting). Standard-op equivalent: ReduceSum over the broadcast axes
        // (keepdims=1) followed by Reshape to `shape`.
        ops.Add(new OpDefinition("SumToShape", _ => new LambdaKernel(SumToShape), OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(0)],
        });
    }

    private static void SumToShape(KernelContext ctx)
    {
        var g = ctx.RequiredInput(0);
        var shapeTensor = ctx.RequiredInput(1);
        var target = shapeTensor.AsSpan<long>().ToArray().Select(d => checked((int)d)).ToArray();
        if (g.Shape.SequenceEqual(target)) { ctx.SetOutput(0, g); return; }
        ctx.SetOutput(0, SumTo(ctx, g, target));
    }

    /// <summary>Sums <paramref name="g"/> (shape S) down to <paramref name="target"/>, where S is target broadcast.</summary>
    internal static OnnxTensor SumTo(KernelContext ctx, OnnxTensor g, int[] target)
    {
        var outShape = g.Dims;
        if (Broadcast.TryShape(outShape, target) is not { } b || !b.AsSpan().SequenceEqual(outShape))
            throw ctx.Invalid($"cannot sum a gradient of shape [{string.Join(',', outShape)}] to [{string.Join(',', target)}]");
        var result = ctx.Allocate(g.ElementType, target);
        var strides = Broadcast.Strides(target, outShape);
        switch (g.ElementType)
        {
            case DataType.Float: Accumulate(g.AsSpan<float>(), result.AsSpan<float>(), outShape, strides); break;
            case DataType.Double: Accumulate(g.AsSpan<double>(), result.AsSpan<double>(), outShape, strides); break;
            default: throw ctx.Invalid($"SumToShape does not support {DataTypes.OnnxName(g.ElementType)}");
        }
        return result;
    }

    private static void Accumulate<T>(Span<T> src, Span<T> dst, int[] outShape, long[] strides) where T : struct, System.Numerics.INumber<T>
    {
        var srcArr = src; var dstArr = dst;
        int rank = outShape.Length;
        long total = srcArr.Length;
        var coord = new int[rank];
        long offset = 0;
        for (long i = 0; i < total; i++)
        {
            dstArr[(int)offset] += srcArr[(int)i];
            for (int d = rank - 1; d >= 0; d--)
            {
                coord[d]++;
                offset += strides[d];
                if (coord[d] < outShape[d]) break;
                offset -= strides[d] * coord[d];
                coord[d] = 0;
            }
        }
    }
}
