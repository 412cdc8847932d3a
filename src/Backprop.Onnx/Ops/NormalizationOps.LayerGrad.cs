using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>LayerNormalization's gradient rule and its dedicated kernel.</summary>
internal static partial class NormalizationOps
{
    /// <summary>
    /// LayerNormalization VJP (PyTorch derivatives.yaml: native_layer_norm → layer_norm_backward), per row of N
    /// normalized elements with r = InvStdDev, x̂ = (X − μ)·r, g = dY ⊙ Scale:
    /// dX = r·(g − mean(g) − x̂·mean(g ⊙ x̂)) + dMean/N − dInvStdDev·r³·(X − μ)/N,
    /// dScale = Σ_rows dY ⊙ x̂ and dB = Σ_rows dY, each summed down to its input's (broadcast) shape.
    /// </summary>
    private static readonly VjpRule LayerNormVjp = ctx =>
    {
        var outs = ctx.Emit.Ops("LayerNormalizationGrad",
            [ctx.OutputGrad(0) ?? "", ctx.Input(0), ctx.Input(1), ctx.HasInput(2) ? ctx.Input(2) : "", ctx.OutputGrad(1) ?? "", ctx.OutputGrad(2) ?? ""],
            3, OpRegistry.BackpropDomain,
            OnnxAttribute.FromInt("axis", ctx.Node.GetInt("axis", -1)), OnnxAttribute.FromFloat("epsilon", ctx.Node.GetFloat("epsilon", 1e-5f)),
            ReductionOps.DTypeAttribute(ctx, ctx.Input(0)));
        return [ctx.NeedsGrad(0) ? outs[0] : null, ctx.NeedsGrad(1) ? outs[1] : null, ctx.NeedsGrad(2) ? outs[2] : null];
    };

    private static Kernel CreateLayerNormGrad(OpContext op)
    {
        var a = ParseLayerNorm(op);
        op.RequireInputType(1, DataType.Float, DataType.Double);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(1);
            if (x.ElementType == DataType.Float) LayerNormGradJob<float>.Run(ctx, op, a, x);
            else LayerNormGradJob<double>.Run(ctx, op, a, x);
        });
    }

    /// <summary>
    /// The LayerNormalizationGrad kernel (formulas at <see cref="LayerNormVjp"/>): rows split into one contiguous chunk
    /// per thread, each summing its rows' dScale and dB terms into its own partial (so the sums do not depend on which
    /// thread ran a chunk), then the partials added in chunk order. A pooled job per thread carries the arguments and
    /// the rented scratch, so a call allocates nothing.
    /// </summary>
    private sealed class LayerNormGradJob<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        [ThreadStatic] private static LayerNormGradJob<T>? t_idle;

        private readonly Action<int, int> _body;
        private T[]? _x, _dy, _dMean, _dInv, _w, _dx;
        private T[][] _partScale = [], _partB = [];
        private int _rows, _cols, _chunks;
        private T _epsilon;

        private LayerNormGradJob() => _body = Chunks;

        public static void Run(KernelContext ctx, OpContext op, LayerNormAttributes a, OnnxTensor x)
        {
            int axis = ReductionOps.NormalizeAxis(ctx, a.Axis, x.Rank);
            int rows = ReductionOps.Product(x.Shape, 0, axis), cols = ReductionOps.Product(x.Shape, axis, x.Rank);
            var scaleTensor = ctx.RequiredInput(2);
            var job = t_idle ?? new LayerNormGradJob<T>();
            t_idle = null;
            var pool = ArrayPool<T>.Shared;
            int threads = ReductionOps.Parallelism(ctx, x.ElementCount);
            int chunks = Math.Max(1, Math.Min(rows, threads));
            // Every row of dX is written (its first use as scratch is written before it is read).
            var dxTensor = ctx.AllocateUninitialized(x.ElementType, x.Dims);
            if (job._partScale.Length < chunks) { job._partScale = new T[chunks][]; job._partB = new T[chunks][]; }
            job._x = (T[])x.Buffer;
            job._dy = Optional(ctx, 0);
            job._dMean = Optional(ctx, 4);
            job._dInv = Optional(ctx, 5);
            job._w = ExpandToNormalized<T>(ctx, op, scaleTensor, x.Dims, axis, "Scale");
            job._dx = (T[])dxTensor.Buffer;
            (job._rows, job._cols, job._chunks, job._epsilon) = (rows, cols, chunks, T.CreateChecked(a.Epsilon));
            // Partial sums are rented (only their first cols elements are used) and start at zero.
            for (int chunk = 0; chunk < chunks; chunk++)
            {
                Array.Clear(job._partScale[chunk] = pool.Rent(cols), 0, cols);
                Array.Clear(job._partB[chunk] = pool.Rent(cols), 0, cols);
            }
            var scaleRented = pool.Rent(cols);
            var biasRented = pool.Rent(cols);
            try
            {
                ReductionOps.ForChunks(chunks, threads, job._body);
                var scaleDense = scaleRented.AsSpan(0, cols);
                var biasDense = biasRented.AsSpan(0, cols);
                scaleDense.Clear();
                biasDense.Clear();
                for (int chunk = 0; chunk < chunks; chunk++)
                {
                    TP.Add(scaleDense, job._partScale[chunk].AsSpan(0, cols), scaleDense);
                    TP.Add(biasDense, job._partB[chunk].AsSpan(0, cols), biasDense);
                }
                ctx.SetOutput(0, dxTensor);
                ctx.SetOutput(1, SumToParameter(ctx, x.ElementType, (ReadOnlySpan<T>)scaleDense, scaleTensor, x.Dims, axis, "Scale"));
                if (ctx.Input(3) is { } bias) ctx.SetOutput(2, SumToParameter(ctx, x.ElementType, (ReadOnlySpan<T>)biasDense, bias, x.Dims, axis, "B"));
            }
            finally
            {
                for (int chunk = 0; chunk < chunks; chunk++)
                {
                    pool.Return(job._partScale[chunk]);
                    pool.Return(job._partB[chunk]);
                    job._partScale[chunk] = job._partB[chunk] = null!;
                }
                pool.Return(scaleRented);
                pool.Return(biasRented);
                job._x = job._dy = job._dMean = job._dInv = job._w = job._dx = null;
                t_idle = job;
            }
        }

        private static T[]? Optional(KernelContext ctx, int index) => ctx.Input(index) is { } t ? (T[])t.Buffer : null;

        private void Chunks(int cf, int ct)
        {
            int rows = _rows, cols = _cols, chunks = _chunks;
            T count = T.CreateChecked(cols), eps = _epsilon;
            var pool = ArrayPool<T>.Shared;
            var gRented = pool.Rent(cols);
            var xcRented = pool.Rent(cols);
            var g = gRented.AsSpan(0, cols);
            var xc = xcRented.AsSpan(0, cols);
            var w = _w.AsSpan(0, cols);
            T[]? dy = _dy, dMean = _dMean, dInv = _dInv;
            for (int chunk = cf; chunk < ct; chunk++)
            {
                var pScale = _partScale[chunk].AsSpan(0, cols);
                var pB = _partB[chunk].AsSpan(0, cols);
                for (int r = (int)((long)rows * chunk / chunks); r < (int)((long)rows * (chunk + 1) / chunks); r++)
                {
                    var xr = _x.AsSpan(r * cols, cols);
                    var dst = _dx.AsSpan(r * cols, cols);
                    T mu = ReductionOps.Sum<T>(xr) / count;
                    T inv = T.One / T.Sqrt(SumOfSquaredDeviations<T>(xr, mu) / count + eps);
                    T b = dMean is null ? T.Zero : dMean[r] / count;
                    T c = dInv is null ? T.Zero : -dInv[r] * inv * inv * inv / count;
                    if (dy is not null)
                    {
                        var dyr = dy.AsSpan(r * cols, cols);
                        CenterAndWeight(xr, mu, dyr, w, xc, g);
                        T mg = ReductionOps.Sum<T>(g) / count;
                        T mgx = ReductionOps.Dot<T>(g, xc) * inv / count;
                        b -= inv * mg;
                        c -= inv * inv * mgx;
                        GradRow(dyr, xc, g, inv, b, c, pB, pScale, dst);
                        continue;
                    }
                    TP.Subtract(xr, mu, xc);
                    TP.Multiply(xc, c, dst);
                    TP.Add(dst, b, dst);
                }
            }
            pool.Return(gRented);
            pool.Return(xcRented);
        }
    }

    /// <summary>xc = x − μ and g = dY ⊙ Scale in one pass (the first two elementwise steps of a gradient row).</summary>
    private static void CenterAndWeight<T>(ReadOnlySpan<T> x, T mean, ReadOnlySpan<T> dy, ReadOnlySpan<T> w, Span<T> xc, Span<T> g)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Length, i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            ref T xr = ref MemoryMarshal.GetReference(x), dr = ref MemoryMarshal.GetReference(dy), wr = ref MemoryMarshal.GetReference(w);
            ref T cr = ref MemoryMarshal.GetReference(xc), gr = ref MemoryMarshal.GetReference(g);
            var m = Vector256.Create(mean);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                (Vector256.LoadUnsafe(ref xr, (nuint)i) - m).StoreUnsafe(ref cr, (nuint)i);
                (Vector256.LoadUnsafe(ref dr, (nuint)i) * Vector256.LoadUnsafe(ref wr, (nuint)i)).StoreUnsafe(ref gr, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            xc[i] = x[i] - mean;
            g[i] = dy[i] * w[i];
        }
    }

    /// <summary>
    /// The rest of a gradient row in one pass, each element as the former TensorPrimitives sequence rounded it
    /// (unfused products and sums): dB partial += dY; dScale partial += dY·(xc·r); dX = g·r + (xc·c + b).
    /// </summary>
    private static void GradRow<T>(ReadOnlySpan<T> dy, ReadOnlySpan<T> xc, ReadOnlySpan<T> g, T inv, T b, T c, Span<T> pB, Span<T> pScale, Span<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = dy.Length, i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            ref T dr = ref MemoryMarshal.GetReference(dy), cr = ref MemoryMarshal.GetReference(xc), gr = ref MemoryMarshal.GetReference(g);
            ref T br = ref MemoryMarshal.GetReference(pB), sr = ref MemoryMarshal.GetReference(pScale), xr = ref MemoryMarshal.GetReference(dx);
            Vector256<T> vi = Vector256.Create(inv), vb = Vector256.Create(b), vc = Vector256.Create(c);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var d = Vector256.LoadUnsafe(ref dr, (nuint)i);
                var x = Vector256.LoadUnsafe(ref cr, (nuint)i);
                (Vector256.LoadUnsafe(ref br, (nuint)i) + d).StoreUnsafe(ref br, (nuint)i);
                (d * (x * vi) + Vector256.LoadUnsafe(ref sr, (nuint)i)).StoreUnsafe(ref sr, (nuint)i);
                (Vector256.LoadUnsafe(ref gr, (nuint)i) * vi + (x * vc + vb)).StoreUnsafe(ref xr, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            pB[i] += dy[i];
            pScale[i] = dy[i] * (xc[i] * inv) + pScale[i];
            dx[i] = g[i] * inv + (xc[i] * c + b);
        }
    }

    /// <summary>Sums a gradient over the normalized dimensions down to the shape of the parameter that was broadcast.</summary>
    private static OnnxTensor SumToParameter<T>(KernelContext ctx, DataType type, ReadOnlySpan<T> dense, OnnxTensor parameter, int[] xShape, int axis, string what)
        where T : unmanaged, INumber<T>
    {
        var map = NormalizedIndexMap(ctx, parameter, xShape, axis, what);
        // Without a map the parameter has the dense elements in order (a copy writes every element); a sum starts at zero.
        var resultTensor = map is null ? ctx.AllocateUninitialized(type, parameter.Dims) : ctx.Allocate(type, parameter.Dims);
        var result = resultTensor.AsSpan<T>();
        if (map is null) dense.CopyTo(result);
        else for (int k = 0; k < map.Length; k++) result[map[k]] += dense[k];
        return resultTensor;
    }
}
