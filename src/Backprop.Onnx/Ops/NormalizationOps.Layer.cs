using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
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
            Span<int> statShape = stackalloc int[x.Rank];
            for (int d = 0; d < statShape.Length; d++) statShape[d] = d < axis ? x.Dims[d] : 1;
            // Every element of Y, Mean and InvStdDev is written, except when the normalized size is 0 (then zeros).
            var y = cols == 0 ? ctx.Allocate(x.ElementType, x.Shape) : ctx.AllocateUninitialized(x.ElementType, x.Shape);
            var mean = cols == 0 ? ctx.Allocate(x.ElementType, statShape) : ctx.AllocateUninitialized(x.ElementType, statShape);
            var invStd = cols == 0 ? ctx.Allocate(x.ElementType, statShape) : ctx.AllocateUninitialized(x.ElementType, statShape);
            int threads = ReductionOps.Parallelism(ctx, x.ElementCount);
            var scale = ctx.RequiredInput(1);
            var bias = ctx.Input(2);
            if (x.ElementType == DataType.Float)
                LayerNormJob<float>.Run((float[])x.Buffer, rows, cols, ExpandToNormalized<float>(ctx, op, scale, x.Dims, axis, "Scale"),
                    bias is null ? null : ExpandToNormalized<float>(ctx, op, bias, x.Dims, axis, "B"), (float)a.Epsilon, (float[])y.Buffer, (float[])mean.Buffer, (float[])invStd.Buffer, threads);
            else
                LayerNormJob<double>.Run((double[])x.Buffer, rows, cols, ExpandToNormalized<double>(ctx, op, scale, x.Dims, axis, "Scale"),
                    bias is null ? null : ExpandToNormalized<double>(ctx, op, bias, x.Dims, axis, "B"), a.Epsilon, (double[])y.Buffer, (double[])mean.Buffer, (double[])invStd.Buffer, threads);
            ctx.SetOutput(0, y);
            ctx.SetOutput(1, mean);
            ctx.SetOutput(2, invStd);
        });
    }

    /// <summary>
    /// LayerNormalization forward (ONNX spec "LayerNormalization"), per row of N normalized elements:
    /// μ = Σx/N, r = 1/√(Σ(x − μ)²/N + ε), Y = (x − μ)·r ⊙ Scale + B; two reductions, then x − μ, ·r and the fused
    /// ⊙ Scale + B. Rows split into contiguous chunks, one per thread; a pooled job per thread carries the arguments,
    /// so a call allocates nothing.
    /// </summary>
    private sealed class LayerNormJob<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        [ThreadStatic] private static LayerNormJob<T>? t_idle;

        private readonly Action<int, int> _body;
        private T[]? _x, _scale, _bias, _y, _mean, _invStd;
        private int _cols;
        private T _epsilon;

        private LayerNormJob() => _body = Rows;

        public static void Run(T[] x, int rows, int cols, T[] scale, T[]? bias, T epsilon, T[] y, T[] mean, T[] invStd, int threads)
        {
            if (cols == 0) return;
            var job = t_idle ?? new LayerNormJob<T>();
            t_idle = null;
            (job._x, job._scale, job._bias, job._y, job._mean, job._invStd, job._cols, job._epsilon) = (x, scale, bias, y, mean, invStd, cols, epsilon);
            try
            {
                ReductionOps.ForChunks(rows, threads, job._body);
            }
            finally
            {
                job._x = job._scale = job._bias = job._y = job._mean = job._invStd = null;
                t_idle = job;
            }
        }

        private void Rows(int from, int to)
        {
            int cols = _cols;
            T count = T.CreateChecked(cols);
            var scale = _scale.AsSpan(0, cols);
            var bias = _bias is null ? default : _bias.AsSpan(0, cols);
            for (int r = from; r < to; r++)
            {
                var src = _x.AsSpan(r * cols, cols);
                var dst = _y.AsSpan(r * cols, cols);
                T m = ReductionOps.Sum<T>(src) / count;
                T inv = T.One / T.Sqrt(SumOfSquaredDeviations<T>(src, m) / count + _epsilon);
                _mean![r] = m;
                _invStd![r] = inv;
                NormalizeRow(src, m, inv, scale, bias, dst);
            }
        }
    }

    /// <summary>
    /// y = ((x − μ)·r)·Scale (+ B) in one vector pass: the operations and roundings of the former TensorPrimitives
    /// sequence Subtract, Multiply, MultiplyAdd (unfused), without three calls and two extra passes per row (W4's rows
    /// are 128 floats). An empty <paramref name="bias"/> means none.
    /// </summary>
    internal static void NormalizeRow<T>(ReadOnlySpan<T> x, T mean, T invStd, ReadOnlySpan<T> scale, ReadOnlySpan<T> bias, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Length, i = 0;
        bool hasBias = !bias.IsEmpty;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            ref T xr = ref MemoryMarshal.GetReference(x), sr = ref MemoryMarshal.GetReference(scale), yr = ref MemoryMarshal.GetReference(y);
            ref T br = ref MemoryMarshal.GetReference(bias);
            Vector256<T> m = Vector256.Create(mean), r = Vector256.Create(invStd);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var v = (Vector256.LoadUnsafe(ref xr, (nuint)i) - m) * r * Vector256.LoadUnsafe(ref sr, (nuint)i);
                if (hasBias) v += Vector256.LoadUnsafe(ref br, (nuint)i);
                v.StoreUnsafe(ref yr, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            T v = (x[i] - mean) * invStd * scale[i];
            y[i] = hasBias ? v + bias[i] : v;
        }
    }

    /// <summary>
    /// Scale or B as a dense vector over the normalized dimensions X[axis:] (its first N elements; read only): it must broadcast to X and be constant
    /// along the dimensions before <paramref name="axis"/> (size 1 there, or absent).
    /// </summary>
    internal static T[] ExpandToNormalized<T>(KernelContext ctx, OpContext op, OnnxTensor t, int[] xShape, int axis, string what)
    {
        if (t.ElementType != DataTypes.Of<T>()) throw op.Unsupported($"{what} of type {DataTypes.OnnxName(t.ElementType)} with X of type {DataTypes.OnnxName(DataTypes.Of<T>())}");
        var src = t.AsSpan<T>();
        // Already dense: the tensor's own buffer (read only; its first ElementCount elements).
        if (NormalizedIndexMap(ctx, t, xShape, axis, what) is not { } map) return t.Buffer as T[] ?? src.ToArray();
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
        int cols = ReductionOps.Product(xShape, axis, xShape.Length);
        if (t.ElementCount == cols) return null;
        var normShape = xShape[axis..];
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
