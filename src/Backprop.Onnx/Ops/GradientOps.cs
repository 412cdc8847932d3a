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
            StandardOps = SumToShapeStandard,
        });
    }

    /// <summary>
    /// SumToShape in standard ops (opset 13+): pad the target shape with leading ones to the gradient's rank, sum over
    /// the axes where it is 1 (keepdims, no-op when there are none), reshape to the target.
    /// </summary>
    private static string[] SumToShapeStandard(Autodiff.GraphEmitter e, Node node)
    {
        string g = node.Inputs[0], shape = node.Inputs[1];
        string rankDiff = e.Sub(e.Shape(e.Shape(g)), e.Shape(shape));
        string ones = e.Op("ConstantOfShape", [rankDiff], OnnxAttribute.FromTensor("value", OnnxTensor.FromArray(new long[] { 1 }, 1)));
        string padded = e.Op("Concat", [ones, shape], OnnxAttribute.FromInt("axis", 0));
        string axes = e.Reshape(e.Op("NonZero", e.Equal(padded, e.Int64s(1))), e.Int64s(-1));
        string summed = e.Op("ReduceSum", [g, axes], OnnxAttribute.FromInt("keepdims", 1), OnnxAttribute.FromInt("noop_with_empty_axes", 1));
        return [e.Reshape(summed, shape)];
    }

    private static void SumToShape(KernelContext ctx)
    {
        var g = ctx.RequiredInput(0);
        var shapeTensor = ctx.RequiredInput(1);
        var shape = shapeTensor.AsSpan<long>();
        // Already the target shape (checked without allocating: this runs for every broadcast op's gradient each step).
        bool same = shape.Length == g.Rank;
        for (int i = 0; i < shape.Length && same; i++) same = shape[i] == g.Dims[i];
        if (same) { ctx.SetOutput(0, g); return; }
        if (shape.Length > g.Rank) throw ctx.Invalid($"cannot sum a gradient of shape [{string.Join(',', g.Dims)}] to rank {shape.Length}");
        Span<int> target = stackalloc int[shape.Length];
        for (int i = 0; i < target.Length; i++) target[i] = checked((int)shape[i]);
        ctx.SetOutput(0, SumTo(ctx, g, target));
    }

    /// <summary>
    /// Sums <paramref name="g"/> (shape S) down to <paramref name="target"/>, where S is target broadcast (each target
    /// dimension, aligned from the right, is S's or 1). Strides live on the stack: this runs for every bias gradient.
    /// </summary>
    internal static OnnxTensor SumTo(KernelContext ctx, OnnxTensor g, ReadOnlySpan<int> target)
    {
        var outShape = g.Dims;
        int offset = outShape.Length - target.Length;
        bool ok = offset >= 0;
        for (int i = 0; ok && i < target.Length; i++) ok = target[i] == 1 || target[i] == outShape[offset + i];
        if (!ok) throw ctx.Invalid($"cannot sum a gradient of shape [{string.Join(',', outShape)}] to [{string.Join(',', target.ToArray())}]");
        var result = ctx.Allocate(g.ElementType, target);
        // Broadcast.Strides on the stack: target's row-major strides aligned with outShape, 0 where target is broadcast.
        Span<long> strides = stackalloc long[outShape.Length];
        long stride = 1;
        for (int i = target.Length - 1; i >= 0; i--)
        {
            strides[offset + i] = target[i] == 1 && outShape[offset + i] != 1 ? 0 : stride;
            stride *= target[i];
        }
        switch (g.ElementType)
        {
            case DataType.Float: Accumulate(g.AsSpan<float>(), result.AsSpan<float>(), outShape, strides); break;
            case DataType.Double: Accumulate(g.AsSpan<double>(), result.AsSpan<double>(), outShape, strides); break;
            default: throw ctx.Invalid($"SumToShape does not support {DataTypes.OnnxName(g.ElementType)}");
        }
        return result;
    }

    /// <summary>
    /// dst[offset(i)] += src[i] for every i in row-major order of <paramref name="outShape"/>. Adjacent axes that are both
    /// summed or both kept are merged first, so the inner loop runs over a long stretch: a kept last axis adds a row
    /// vector-wise, a summed one accumulates into one element; each destination element receives its terms in the same
    /// order either way.
    /// </summary>
    private static void Accumulate<T>(Span<T> src, Span<T> dst, int[] outShape, ReadOnlySpan<long> strides) where T : struct, System.Numerics.INumber<T>
    {
        if (src.Length == 0) return;
        // Merged axes on the stack (a rank is small), so a step allocates nothing here.
        Span<int> dims = stackalloc int[outShape.Length];
        Span<long> steps = stackalloc long[outShape.Length];
        int merged = 0;
        for (int d = 0; d < outShape.Length; d++)
        {
            if (outShape[d] == 1) continue;
            if (merged > 0 && steps[merged - 1] == strides[d] * outShape[d])
            {
                dims[merged - 1] *= outShape[d];
                steps[merged - 1] = strides[d];
            }
            else
            {
                dims[merged] = outShape[d];
                steps[merged] = strides[d];
                merged++;
            }
        }
        if (merged == 0)
        {
            dst[0] += src[0];
            return;
        }
        int inner = dims[merged - 1];
        bool keptInner = steps[merged - 1] == 1;
        int rank = merged - 1;
        Span<int> coord = stackalloc int[rank];
        long offset = 0;
        for (int i = 0; i < src.Length; i += inner)
        {
            var row = src.Slice(i, inner);
            if (keptInner)
            {
                var target = dst.Slice((int)offset, inner);
                System.Numerics.Tensors.TensorPrimitives.Add<T>(target, row, target);
            }
            else
            {
                T acc = dst[(int)offset];
                foreach (var v in row) acc += v;
                dst[(int)offset] = acc;
            }
            for (int d = rank - 1; d >= 0; d--)
            {
                coord[d]++;
                offset += steps[d];
                if (coord[d] < dims[d]) break;
                offset -= steps[d] * coord[d];
                coord[d] = 0;
            }
        }
    }
}
