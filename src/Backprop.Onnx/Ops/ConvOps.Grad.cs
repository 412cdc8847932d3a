using System.Buffers;
using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Tp = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>The ConvGrad kernel of our own domain: Conv's input, weight and bias gradients in one pass.</summary>
internal static partial class ConvOps
{
    /// <summary>
    /// ConvGrad(dY, X, W) → (dX, dW, dB) with Conv's attributes: dX = col2im(W[g]ᵀ·dY[n, g]), dW[g] = Σₙ dY[n, g]·im2col(X[n, g])ᵀ,
    /// dB = Σ dY over images and positions. Only the outputs the graph reads are computed.
    /// </summary>
    private static Kernel CreateConvGrad(OpContext op)
    {
        op.RequireInputType(0, DataType.Float, DataType.Double);
        var window = WindowAttributes.Parse(op, requireKernelShape: false);
        long group = op.Node.GetInt("group", 1);
        if (group < 1 || group > int.MaxValue) throw op.Unsupported($"group = {group}");
        var cache = new ConvGradCache();
        return new LambdaKernel(ctx => RunConvGrad(ctx, window, (int)group, cache));
    }

    private static void RunConvGrad(KernelContext ctx, WindowAttributes window, int group, ConvGradCache cache)
    {
        var dy = ctx.RequiredInput(0);
        var x = ctx.RequiredInput(1);
        var w = ctx.RequiredInput(2);
        if (x.ElementType != dy.ElementType || w.ElementType != dy.ElementType) throw ctx.Invalid("ConvGrad inputs have different element types");
        var (s, biasShape) = cache.Resolve(ctx, window, group, x, w);
        var dims = dy.Shape;
        if (dims.Length != s.Output.Length + 2 || dims[0] != s.N || dims[1] != s.M || !dims[2..].SequenceEqual(s.Output))
            throw ctx.Invalid($"dY of shape [{string.Join(',', dy.Dims)}], expected [{string.Join(',', new[] { s.N, s.M }.Concat(s.Output))}]");
        // The direct dX path writes every element: its buffer needs no clearing (a 2 MB memset on the calling thread for
        // ResNet's 32×16×32×32); the other paths accumulate into a zeroed one.
        var dx = !ctx.IsOutputUsed(0) ? null
            : WritesEveryInputGradElement(w, s) ? ctx.AllocateUninitialized(x.ElementType, x.Shape) : ctx.Allocate(x.ElementType, x.Shape);
        var dw = ctx.IsOutputUsed(1) ? ctx.Allocate(x.ElementType, w.Shape) : null;
        var db = ctx.IsOutputUsed(2) ? ctx.Allocate(x.ElementType, biasShape) : null;
        int threads = ctx.Options.Threads;
        if (x.ElementType == DataType.Float)
            ConvBackward((float[])dy.Buffer, (float[])x.Buffer, (float[])w.Buffer, (float[]?)dx?.Buffer, (float[]?)dw?.Buffer, (float[]?)db?.Buffer, s, threads);
        else
            ConvBackward((double[])dy.Buffer, (double[])x.Buffer, (double[])w.Buffer, (double[]?)dx?.Buffer, (double[]?)dw?.Buffer, (double[]?)db?.Buffer, s, threads);
        if (dx is not null) ctx.SetOutput(0, dx);
        if (dw is not null) ctx.SetOutput(1, dw);
        if (db is not null) ctx.SetOutput(2, db);
    }

    /// <summary>
    /// The last resolved shapes of one ConvGrad node, reused while X's and W's shapes stay the same (every training step),
    /// so a steady-state call resolves nothing and allocates nothing. One immutable entry, swapped whole.
    /// </summary>
    private sealed class ConvGradCache
    {
        private sealed record Entry(int[] X, int[] W, ConvShape Shape, int[] BiasShape);

        private Entry? _last;

        public (ConvShape Shape, int[] BiasShape) Resolve(KernelContext ctx, WindowAttributes window, int group, OnnxTensor x, OnnxTensor w)
        {
            var last = _last;
            if (last is null || !x.Shape.SequenceEqual(last.X) || !w.Shape.SequenceEqual(last.W))
            {
                var s = ResolveConv(ctx, window, group, x, w);
                _last = last = new Entry(x.Shape.ToArray(), w.Shape.ToArray(), s, [s.M]);
            }
            return (last.Shape, last.BiasShape);
        }
    }

    /// <summary>
    /// Whether <see cref="ConvBackward{T}"/> (direct) computes dX of these arguments by <see cref="InputGradDirect"/>,
    /// which writes every element: the same conditions as its dispatch.
    /// </summary>
    private static bool WritesEveryInputGradElement(OnnxTensor w, ConvShape s)
    {
        int rows = s.C / s.Group * Product(s.Kernel);
        if (rows == 0 || Product(s.Output) == 0 || s.M / s.Group == 0) return false;
        if (w.ElementType == DataType.Float)
            return (UseInputGradByForward(s) || UseDirectInputGrad(s)) && FiniteCheck.All<float>(((float[])w.Buffer).AsSpan(0, s.M * rows));
        return w.ElementType == DataType.Double && UseInputGradByForward(s) && FiniteCheck.All<double>(((double[])w.Buffer).AsSpan(0, s.M * rows));
    }

    /// <summary>The product of <paramref name="dims"/> (a loop: LINQ's Aggregate allocates an enumerator per call).</summary>
    private static int Product(int[] dims)
    {
        int p = 1;
        foreach (int d in dims) p *= d;
        return p;
    }

    /// <summary>Whether every value of <paramref name="values"/> is <paramref name="v"/>.</summary>
    private static bool AllEqual(int[] values, int v)
    {
        foreach (int d in values)
            if (d != v) return false;
        return true;
    }

    /// <summary>
    /// Conv's input, weight and bias gradients (each only when its buffer is given). Unless <paramref name="direct"/> is
    /// false (tests compare both), float32 stride-1 2-D input gradients of a finite W take <see cref="InputGradDirect"/> and
    /// weight gradients of a finite X <see cref="WeightGradDirect"/> where they apply.
    /// </summary>
    internal static void ConvBackward<T>(T[] dy, T[] x, T[] w, T[]? dx, T[]? dw, T[]? db, ConvShape s, int threads, bool direct = true) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int mg = s.M / s.Group, outSize = Product(s.Output);
        int rows = s.C / s.Group * Product(s.Kernel);
        if (rows == 0 || outSize == 0 || mg == 0) { if (db is not null) BiasGrad(dy, db, s); return; }

        // The direct and batched dX paths correlate a zero-padded dY with W, so a non-finite weight times padding would
        // put NaN where no window reads; a non-finite W takes the exact col2im path.
        bool finiteW = dx is null || FiniteCheck.All<T>(w.AsSpan(0, s.M * rows));
        if (dx is not null && finiteW && direct && UseInputGradByForward(s)) InputGradByForward(dy, w, dx, s, threads);
        else if (dx is not null && finiteW && direct && typeof(T) == typeof(float) && UseDirectInputGrad(s))
            InputGradDirect((float[])(object)dy, (float[])(object)w, (float[])(object)dx, s, threads);
        else if (dx is not null && finiteW && UseBatchedInputGrad(s, rows)) ConvInputGradBatched(dy, w, dx, s, threads);
        else if (dx is not null) InputGradGeneral(dy, w, dx, s, threads);

        if (dw is not null)
        {
            // The direct path checks X while it spreads it and declines a non-finite one (dW is then cleared: the general
            // path accumulates).
            bool done = direct && typeof(T) == typeof(float) && UseWeightGradChannels(s)
                ? WeightGradChannels((float[])(object)dy, (float[])(object)x, (float[])(object)dw, s, threads)
                : direct && typeof(T) == typeof(float) && UseDirectWeightGrad(s) && WeightGradDirect((float[])(object)dy, (float[])(object)x, (float[])(object)dw, s, threads);
            if (!done)
            {
                dw.AsSpan(0, s.M * rows).Clear();
                WeightGradGeneral(dy, x, dw, s, threads);
            }
        }

        if (db is not null) BiasGrad(dy, db, s);
    }

    /// <summary>dX = col2im(W[g]ᵀ·dY[n, g]) per (image, group), independent slices of dX.</summary>
    private static void InputGradGeneral<T>(T[] dy, T[] w, T[] dx, ConvShape s, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var item = new GeneralInputItem<T>(dy, w, dx, s, 1);
        int items = s.N * s.Group;
        if (threads > 1 && items >= threads) ItemJob<GeneralInputItem<T>>.For(items, threads, item);
        else
        {
            item.GemmThreads = threads;
            for (int i = 0; i < items; i++) item.Run(i);
        }
    }

    /// <summary>One (image, group) of <see cref="InputGradGeneral{T}"/>.</summary>
    private struct GeneralInputItem<T>(T[] dy, T[] w, T[] dx, ConvShape s, int gemmThreads) : IParallelItem where T : unmanaged, IFloatingPointIeee754<T>
    {
        public int GemmThreads = gemmThreads;

        public readonly void Run(int item)
        {
            int cg = s.C / s.Group, mg = s.M / s.Group, inSize = Product(s.Input), outSize = Product(s.Output), kSize = Product(s.Kernel);
            int rows = cg * kSize;
            bool pointwise = kSize == 1 && AllEqual(s.Strides, 1) && AllEqual(s.PadBegin, 0) && outSize == inSize;
            int chunk = (int)Math.Max(1, Math.Min(outSize, MaxColumnBuffer / Math.Max(1, rows)));
            int img = item / s.Group, g = item % s.Group;
            long xBase = ((long)img * s.C + (long)g * cg) * inSize;
            long yBase = ((long)img * s.M + (long)g * mg) * outSize;
            var wg = w.AsSpan(g * mg * rows, mg * rows);
            T[]? col = pointwise ? null : ArrayPool<T>.Shared.Rent(rows * chunk);
            try
            {
                for (int l0 = 0; l0 < outSize; l0 += chunk)
                {
                    int lc = Math.Min(chunk, outSize - l0);
                    var dyv = dy.AsSpan((int)(yBase + l0), (mg - 1) * outSize + lc);
                    if (col is null)
                    {
                        Gemm.Multiply(true, false, rows, lc, mg, T.One, wg, rows, dyv, outSize, T.Zero, dx.AsSpan((int)(xBase + l0), (rows - 1) * inSize + lc), inSize, GemmThreads);
                        continue;
                    }
                    Gemm.Multiply(true, false, rows, lc, mg, T.One, wg, rows, dyv, outSize, T.Zero, col.AsSpan(0, rows * lc), lc, GemmThreads);
                    Col2Im(col, cg, s.Output, s.Input, s.Kernel, s.Strides, s.Dilations, s.PadBegin, l0, lc, dx, xBase);
                }
            }
            finally
            {
                if (col is not null) ArrayPool<T>.Shared.Return(col);
            }
        }
    }

    /// <summary>
    /// dW per group, Σ over images of dY[n, g]·im2col(X[n, g])ᵀ as dot products over positions (C is small, the shared
    /// dimension long). Images are split into one contiguous range per thread, each summed in order into its own
    /// partial, the partials then added in order: deterministic for a given thread count.
    /// </summary>
    private static void WeightGradGeneral<T>(T[] dy, T[] x, T[] dw, ConvShape s, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int mg = s.M / s.Group, rows = s.C / s.Group * Product(s.Kernel), size = mg * rows;
        bool wide = UseBatchedInputGrad(s, rows) && FiniteCheck.All<T>(x);
        if (threads > 1 && s.Group >= threads)
        {
            ItemJob<GeneralWeightItem<T>>.For(s.Group, threads, new GeneralWeightItem<T>(dy, x, dw, dw, s, wide, -1, 1));
            return;
        }
        int parts = Math.Max(1, Math.Min(threads, s.N));
        T[]? partials = parts > 1 ? ArrayPool<T>.Shared.Rent((parts - 1) * size) : null;
        try
        {
            for (int g = 0; g < s.Group; g++)
            {
                if (partials is null)
                {
                    new GeneralWeightItem<T>(dy, x, dw, dw, s, wide, g, 1).Run(0);
                    continue;
                }
                Array.Clear(partials, 0, (parts - 1) * size);
                ItemJob<GeneralWeightItem<T>>.For(parts, parts, new GeneralWeightItem<T>(dy, x, dw, partials, s, wide, g, parts));
                var dwg = dw.AsSpan(g * size, size);
                for (int p = 1; p < parts; p++) Tp.Add(dwg, partials.AsSpan((p - 1) * size, size), dwg);
            }
        }
        finally
        {
            if (partials is not null) ArrayPool<T>.Shared.Return(partials);
        }
    }

    /// <summary>
    /// One part of <see cref="WeightGradGeneral{T}"/>: with <paramref name="group"/> −1, item g is group g over every image;
    /// else item p is images [N·p/parts, N·(p+1)/parts) of that group, part 0 into dW, part p into partials[p − 1].
    /// </summary>
    private readonly struct GeneralWeightItem<T>(T[] dy, T[] x, T[] dw, T[] partials, ConvShape s, bool wide, int group, int parts) : IParallelItem
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Run(int item)
        {
            int size = s.M / s.Group * (s.C / s.Group) * Product(s.Kernel);
            if (group < 0) WeightImages(item, 0, s.N, dw, item * size);
            else WeightImages(group, (int)((long)s.N * item / parts), (int)((long)s.N * (item + 1) / parts), item == 0 ? dw : partials, item == 0 ? group * size : (item - 1) * size);
        }

        private void WeightImages(int g, int from, int to, T[] target, int targetOffset)
        {
            int cg = s.C / s.Group, mg = s.M / s.Group, inSize = Product(s.Input), outSize = Product(s.Output), kSize = Product(s.Kernel);
            int rows = cg * kSize;
            bool pointwise = kSize == 1 && AllEqual(s.Strides, 1) && AllEqual(s.PadBegin, 0) && outSize == inSize;
            int chunk = (int)Math.Max(1, Math.Min(outSize, MaxColumnBuffer / Math.Max(1, rows)));
            var dwg = target.AsSpan(targetOffset, mg * rows);
            if (wide)
            {
                WeightImagesWide(dy, x, s, g, from, to, dwg);
                return;
            }
            T[]? col = pointwise ? null : ArrayPool<T>.Shared.Rent(rows * chunk);
            try
            {
                for (int img = from; img < to; img++)
                {
                    long xBase = ((long)img * s.C + (long)g * cg) * inSize;
                    long yBase = ((long)img * s.M + (long)g * mg) * outSize;
                    for (int l0 = 0; l0 < outSize; l0 += chunk)
                    {
                        int lc = Math.Min(chunk, outSize - l0);
                        var dyv = dy.AsSpan((int)(yBase + l0), (mg - 1) * outSize + lc);
                        if (col is null)
                        {
                            Gemm.MultiplyAddTransposed(mg, rows, lc, dyv, outSize, x.AsSpan((int)(xBase + l0), (rows - 1) * inSize + lc), inSize, dwg, rows);
                            continue;
                        }
                        Im2Col(x, xBase, cg, s.Input, s.Output, s.Kernel, s.Strides, s.Dilations, s.PadBegin, l0, lc, col);
                        Gemm.MultiplyAddTransposed(mg, rows, lc, dyv, outSize, col.AsSpan(0, rows * lc), lc, dwg, rows);
                    }
                }
            }
            finally
            {
                if (col is not null) ArrayPool<T>.Shared.Return(col);
            }
        }
    }

    /// <summary>dB[m] = Σ over images and output positions of dY[n, m, ·].</summary>
    private static void BiasGrad<T>(T[] dy, T[] db, ConvShape s) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int outSize = Product(s.Output);
        for (int m = 0; m < s.M; m++)
        {
            T sum = T.Zero;
            for (int img = 0; img < s.N; img++) sum += Tp.Sum<T>(dy.AsSpan((img * s.M + m) * outSize, outSize));
            db[m] = sum;
        }
    }
}
