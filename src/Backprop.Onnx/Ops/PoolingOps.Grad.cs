using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>The pooling gradient kernels of our own domain: MaxPoolGrad and AveragePoolGrad.</summary>
internal static partial class PoolingOps
{
    /// <summary>
    /// MaxPoolGrad(dY, X) → dX with MaxPool's attributes: each window's cotangent goes to its first maximal element (the
    /// element MaxPool's Indices name), summed where windows overlap.
    /// </summary>
    private static Kernel CreateMaxPoolGrad(OpContext op)
    {
        op.RequireInputType(0, DataType.Float, DataType.Double);
        var window = WindowAttributes.Parse(op, requireKernelShape: true);
        bool ceilMode = op.Node.GetInt("ceil_mode", 0) != 0;
        return new LambdaKernel(ctx =>
        {
            var dy = ctx.RequiredInput(0);
            var x = ctx.RequiredInput(1);
            if (x.ElementType != dy.ElementType) throw ctx.Invalid("MaxPoolGrad inputs have different element types");
            var g = Geometry(ctx, window, x.Dims, ceilMode);
            CheckGradShape(ctx, dy, g);
            // The 2×2 path writes every element of dX; the others accumulate into zeros.
            var dx = Is2x2(g) && UsePool2x2 ? ctx.AllocateUninitialized(x.ElementType, x.Dims) : ctx.Allocate(x.ElementType, x.Dims);
            if (x.ElementType == DataType.Float) MaxPoolBackward((float[])dy.Buffer, (float[])x.Buffer, (float[])dx.Buffer, g, ctx.Options.Threads);
            else MaxPoolBackward((double[])dy.Buffer, (double[])x.Buffer, (double[])dx.Buffer, g, ctx.Options.Threads);
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

    private static void MaxPoolBackward<T>(T[] dy, T[] x, T[] dx, PoolGeometry g, int threads) where T : IFloatingPointIeee754<T>
    {
        if (TryPool2x2(x, null, (dy, dx), g, threads) || MaxPool2D(x, null, (dy, dx), g, threads)) return;
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
        });
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
