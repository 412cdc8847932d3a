using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>InstanceNormalization and LayerNormalization kernels.</summary>
internal static partial class NormalizationOps
{
    private static Kernel CreateInstanceNorm(OpContext op)
    {
        double epsilon = op.Node.GetFloat("epsilon", 1e-5f);
        RequireSameFloatTypes(op, 3);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            var scale = ctx.RequiredInput(1);
            var bias = ctx.RequiredInput(2);
            if (x.Rank < 2) throw ctx.Invalid($"X must have rank 2 or more (N x C x …), got [{string.Join(',', x.Dims)}]");
            int n = x.Dims[0], c = x.Dims[1], s = ReductionOps.Product(x.Shape, 2, x.Rank);
            foreach (var t in new[] { scale, bias })
            {
                if (t.ElementType != x.ElementType) throw op.Unsupported($"parameters of type {DataTypes.OnnxName(t.ElementType)} with X of type {DataTypes.OnnxName(x.ElementType)}");
                if (t.ElementCount != c || t.Rank != 1) throw ctx.Invalid($"scale and B must have shape [{c}], got [{string.Join(',', t.Dims)}]");
            }
            var y = ctx.Allocate(x.ElementType, x.Shape);
            int threads = ReductionOps.Parallelism(ctx, x.ElementCount);
            if (x.ElementType == DataType.Float) InstanceNorm((float[])x.Buffer, n, c, s, (float[])scale.Buffer, (float[])bias.Buffer, (float)epsilon, (float[])y.Buffer, threads);
            else InstanceNorm((double[])x.Buffer, n, c, s, (double[])scale.Buffer, (double[])bias.Buffer, epsilon, (double[])y.Buffer, threads);
            ctx.SetOutput(0, y);
        });
    }

    private static void InstanceNorm<T>(T[] x, int n, int c, int s, T[] scale, T[] bias, T epsilon, T[] y, int threads)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (s == 0) return;
        T count = T.CreateChecked(s);
        ReductionOps.ForChunks(n * c, threads, (from, to) =>
        {
            for (int block = from; block < to; block++)
            {
                int ch = block % c;
                var src = x.AsSpan(block * s, s);
                var dst = y.AsSpan(block * s, s);
                T mean = ReductionOps.Sum<T>(src) / count;
                T variance = SumOfSquaredDeviations<T>(src, mean) / count;
                TP.Subtract(src, mean, dst);
                TP.Multiply(dst, scale[ch] / T.Sqrt(variance + epsilon), dst);
                TP.Add(dst, bias[ch], dst);
            }
        });
    }

    /// <summary>LayerNormalization's attributes: axis (default -1), epsilon (default 1e-5).</summary>
    internal sealed record LayerNormAttributes(long Axis, double Epsilon);

    internal static LayerNormAttributes ParseLayerNorm(OpContext op)
    {
        long stash = op.Node.GetInt("stash_type", 1);
        // stash_type names the precision of the statistics; we compute them in X's type (float or double), which is
        // the float32 stash for float inputs and strictly more precise for double ones.
        if (stash is not (1 or 11)) throw op.Unsupported($"stash_type={stash} (float or double)");
        return new LayerNormAttributes(op.Node.GetInt("axis", -1), op.Node.GetFloat("epsilon", 1e-5f));
    }

    private static Kernel CreateLayerNorm(OpContext op)
    {
        var a = ParseLayerNorm(op);
        RequireSameFloatTypes(op, 3);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            int axis = ReductionOps.NormalizeAxis(ctx, a.Axis, x.Rank);
            int rows = ReductionOps.Product(x.Shape, 0, axis), cols = ReductionOps.Product(x.Shape, axis, x.Rank);
            var statShape = x.Shape.ToArray();
            for (int d = axis; d < statShape.Length; d++) statShape[d] = 1;
            var y = ctx.Allocate(x.ElementType, x.Shape);
            var mean = ctx.Allocate(x.ElementType, statShape);
            var invStd = ctx.Allocate(x.ElementType, statShape);
            int threads = ReductionOps.Parallelism(ctx, x.ElementCount);
            if (x.ElementType == DataType.Float) Run<float>();
            else Run<double>();
            ctx.SetOutput(0, y);
            ctx.SetOutput(1, mean);
            ctx.SetOutput(2, invStd);

            void Run<T>() where T : unmanaged, IFloatingPointIeee754<T>
            {
                var scale = ExpandToNormalized<T>(ctx, op, ctx.RequiredInput(1), x.Dims, axis, "Scale");
                var bias = ctx.Input(2) is { } b ? ExpandToNormalized<T>(ctx, op, b, x.Dims, axis, "B") : null;
                LayerNorm((T[])x.Buffer, rows, cols, scale, bias, T.CreateChecked(a.Epsilon), (T[])y.Buffer, (T[])mean.Buffer, (T[])invStd.Buffer, threads);
            }
        });
    }

    private static void LayerNorm<T>(T[] x, int rows, int cols, T[] scale, T[]? bias, T epsilon, T[] y, T[] mean, T[] invStd, int threads)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (cols == 0) return;
        T count = T.CreateChecked(cols);
        ReductionOps.ForChunks(rows, threads, (from, to) =>
        {
            for (int r = from; r < to; r++)
            {
                var src = x.AsSpan(r * cols, cols);
                var dst = y.AsSpan(r * cols, cols);
                T m = ReductionOps.Sum<T>(src) / count;
                T inv = T.One / T.Sqrt(SumOfSquaredDeviations<T>(src, m) / count + epsilon);
                mean[r] = m;
                invStd[r] = inv;
                TP.Subtract(src, m, dst);
                TP.Multiply(dst, inv, dst);
                TP.Multiply(dst, scale.AsSpan(0, cols), dst);
                if (bias is not null) TP.Add(dst, bias.AsSpan(0, cols), dst);
            }
        });
    }

    /// <summary>
    /// Scale or B as a dense vector over the normalized dimensions X[axis:]: it must broadcast to X and be constant
    /// along the dimensions before <paramref name="axis"/> (size 1 there, or absent).
    /// </summary>
    internal static T[] ExpandToNormalized<T>(KernelContext ctx, OpContext op, OnnxTensor t, int[] xShape, int axis, string what)
    {
        if (t.ElementType != DataTypes.Of<T>()) throw op.Unsupported($"{what} of type {DataTypes.OnnxName(t.ElementType)} with X of type {DataTypes.OnnxName(DataTypes.Of<T>())}");
        var src = t.AsSpan<T>();
        if (NormalizedIndexMap(ctx, t, xShape, axis, what) is not { } map) return src.ToArray();
        var result = new T[map.Length];
        for (int k = 0; k < map.Length; k++) result[k] = src[map[k]];
        return result;
    }

    /// <summary>
    /// For each position k of the normalized dimensions X[axis:], the flat index into <paramref name="t"/> that
    /// broadcasting reads; null when t already has the normalized shape's elements in order.
    /// </summary>
    internal static int[]? NormalizedIndexMap(KernelContext ctx, OnnxTensor t, int[] xShape, int axis, string what)
    {
        int offset = xShape.Length - t.Rank;
        bool fits = offset >= 0;
        for (int i = 0; fits && i < t.Rank; i++)
        {
            int d = t.Dims[i], xd = xShape[offset + i];
            fits = d == 1 || (d == xd && offset + i >= axis);
        }
        if (!fits) throw ctx.Invalid($"{what} of shape [{string.Join(',', t.Dims)}] does not broadcast to the normalized shape [{string.Join(',', xShape[axis..])}]");
        var normShape = xShape[axis..];
        int cols = ReductionOps.Product(normShape, 0, normShape.Length);
        if (t.ElementCount == cols) return null;
        int keep = Math.Min(t.Rank, normShape.Length);
        var strides = Runtime.Broadcast.Strides(t.Dims[(t.Rank - keep)..], normShape);
        var map = new int[cols];
        var coord = new int[normShape.Length];
        for (int k = 0; k < cols; k++)
        {
            long o = 0;
            for (int d = 0; d < normShape.Length; d++) o += coord[d] * strides[d];
            map[k] = (int)o;
            for (int d = normShape.Length - 1; d >= 0 && ++coord[d] == normShape[d]; d--) coord[d] = 0;
        }
        return map;
    }
}
