using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>The pooling gradient kernels of our own domain: MaxPoolGrad and AveragePoolGrad.</summary>
internal static partial class PoolingOps
{
    /// <summary>
    /// MaxPoolGrad(dY, X) → dX with MaxPool's attributes: each window's cotangent goes to its first maximal element (the
    /// element MaxPool's Indices name), summed where windows overlap. With <c>relu_mask</c> = 1 (set only by PlanFusion,
    /// for a MaxPoolGrad whose only reader is ReluGrad(dX, X)): dX = that sum where X &gt; 0, +0 elsewhere (a NaN X
    /// included), which is ReluGrad's result bit for bit, without the second pass and tensor.
    /// </summary>
    private static Kernel CreateMaxPoolGrad(OpContext op)
    {
        op.RequireInputType(0, DataType.Float, DataType.Double);
        var window = WindowAttributes.Parse(op, requireKernelShape: true);
        bool ceilMode = op.Node.GetInt("ceil_mode", 0) != 0;
        bool relu = op.Node.GetInt(ReluMaskAttribute, 0) != 0;
        return new LambdaKernel(ctx =>
        {
            var dy = ctx.RequiredInput(0);
            var x = ctx.RequiredInput(1);
            if (x.ElementType != dy.ElementType) throw ctx.Invalid("MaxPoolGrad inputs have different element types");
            var g = Geometry(ctx, window, x.Dims, ceilMode);
            CheckGradShape(ctx, dy, g);
            // The 2×2 path writes every element of dX; the others accumulate into zeros.
            var dx = Is2x2(g) && UsePool2x2 ? ctx.AllocateUninitialized(x.ElementType, x.Dims) : ctx.Allocate(x.ElementType, x.Dims);
            if (x.ElementType == DataType.Float) MaxPoolBackward((float[])dy.Buffer, (float[])x.Buffer, (float[])dx.Buffer, g, ctx.Options.Threads, relu);
            else MaxPoolBackward((double[])dy.Buffer, (double[])x.Buffer, (double[])dx.Buffer, g, ctx.Options.Threads, relu);
            ctx.SetOutput(0, dx);
        });
    }

    /// <summary>
    /// AveragePoolGrad(dY, shape of X) → dX with AveragePool's attributes: each window's cotangent divided by the window's
    /// divisor (as in the forward pass) is added to every input element of the window.
    /// </summary>
    private static Kernel CreateAveragePoolGrad(OpContext op)
    {
        op.RequireInputType(0, DataType.Float, DataType.Double);
        var window = WindowAttributes.Parse(op, requireKernelShape: true, allowDilations: false);
        bool ceilMode = op.Node.GetInt("ceil_mode", 0) != 0;
        bool includePad = op.Node.GetInt("count_include_pad", 0) != 0;
        return new LambdaKernel(ctx =>
        {
            var dy = ctx.RequiredInput(0);
            var dims = ctx.RequiredInput(1).AsSpan<long>().ToArray().Select(v => checked((int)v)).ToArray();
            var g = Geometry(ctx, window, dims, ceilMode);
            CheckGradShape(ctx, dy, g);
            var dx = ctx.Allocate(dy.ElementType, dims);
            if (dy.ElementType == DataType.Float) AveragePoolBackward((float[])dy.Buffer, (float[])dx.Buffer, g, includePad, ctx.Options.Threads);
            else AveragePoolBackward((double[])dy.Buffer, (double[])dx.Buffer, g, includePad, ctx.Options.Threads);
            ctx.SetOutput(0, dx);
        });
    }

    private static void CheckGradShape(KernelContext ctx, OnnxTensor dy, PoolGeometry g)
    {
        if (!dy.Shape.SequenceEqual(g.YDims))
            throw ctx.Invalid($"dY of shape [{string.Join(',', dy.Dims)}], expected [{string.Join(',', new[] { g.N, g.C }.Concat(g.Output))}]");
    }

    /// <summary>MaxPoolGrad's attribute (our domain, plan only) that fuses ReluGrad's mask by X into the kernel.</summary>
    internal const string ReluMaskAttribute = "relu_mask";

    private static void MaxPoolBackward<T>(T[] dy, T[] x, T[] dx, PoolGeometry g, int threads, bool relu) where T : IFloatingPointIeee754<T>
    {
        if (!TryPool2x2(x, null, (dy, dx), g, threads, relu) && !MaxPool2D(x, null, (dy, dx), g, threads, relu)) MaxPoolBackwardND(dy, x, dx, g, threads, relu);
    }

    /// <summary>
    /// The N-D path of <see cref="MaxPoolBackward{T}"/>, in a method of its own: its lambda's captured variables are
    /// allocated on entry to the method that declares them, so the 2-D paths above allocate nothing.
    /// </summary>
    private static void MaxPoolBackwardND<T>(T[] dy, T[] x, T[] dx, PoolGeometry g, int threads, bool relu) where T : IFloatingPointIeee754<T>
    {
        var w = g.Windows;
        int inSize = w.InputSize, outSize = w.OutputSize;
        ForEachPlane(g.N * g.C, (long)outSize * w.KernelSize, threads, p =>
        {
            var scratch = new int[w.KernelSize];
            long xBase = (long)p * inSize, yBase = (long)p * outSize;
            for (int o = 0; o < outSize; o++)
            {
                var offsets = w.Offsets(o, scratch, out _);
                int bestOffset = WindowArgMax(x, xBase, offsets);
                if (bestOffset >= 0) dx[xBase + bestOffset] += dy[yBase + o];
            }
            if (relu) ReluMask<T>(x.AsSpan((int)xBase, inSize), dx.AsSpan((int)xBase, inSize));
        });
    }

    /// <summary>dx[i] = +0 where x[i] is not &gt; 0 (ReluGrad's rule: dX keeps its bits only where X &gt; 0; NaN compares false).</summary>
    private static void ReluMask<T>(ReadOnlySpan<T> x, Span<T> dx) where T : INumber<T>
    {
        for (int i = 0; i < dx.Length; i++)
            if (!(x[i] > T.Zero)) dx[i] = T.Zero;
    }

    private static void AveragePoolBackward<T>(T[] dy, T[] dx, PoolGeometry g, bool includePad, int threads) where T : IFloatingPointIeee754<T>
    {
        var w = g.Windows;
        int inSize = w.InputSize, outSize = w.OutputSize;
        ForEachPlane(g.N * g.C, (long)outSize * w.KernelSize, threads, p =>
        {
            var scratch = new int[w.KernelSize];
            long xBase = (long)p * inSize, yBase = (long)p * outSize;
            for (int o = 0; o < outSize; o++)
            {
                var offsets = w.Offsets(o, scratch, out int padded);
                if (offsets.Length == 0) continue;
                T share = dy[yBase + o] / T.CreateChecked(includePad ? padded : offsets.Length);
                foreach (int off in offsets) dx[xBase + off] += share;
            }
        });
    }
}
