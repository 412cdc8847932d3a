using System.Buffers;
using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>The ConvTranspose operator.</summary>
internal static partial class ConvOps
{
    /// <summary>
    /// ConvTranspose (ONNX spec "ConvTranspose", versions 1, 11): X (N, C, D…), W (C, M/group, k…), optional B (M);
    /// output size stride·(in − 1) + output_padding + ((k − 1)·dilation + 1) − pad_begin − pad_end, or output_shape
    /// (pads then derived from the total padding), or in·stride for SAME_UPPER/SAME_LOWER.
    /// </summary>
    private static Kernel CreateConvTranspose(OpContext op)
    {
        if (MatMulOps.IsHalfType(op.InputType(0))) return MatMulOps.Widened(op, CreateConvTranspose);
        op.RequireInputType(0, DataType.Float, DataType.Double);
        var window = WindowAttributes.Parse(op, requireKernelShape: false);
        long group = op.Node.GetInt("group", 1);
        if (group < 1 || group > int.MaxValue) throw op.Unsupported($"group = {group}");
        var outputPadding = op.Node.GetInts("output_padding");
        var outputShape = op.Node.GetInts("output_shape");
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            var w = ctx.RequiredInput(1);
            var b = ctx.Input(2);
            if (w.ElementType != x.ElementType || (b is not null && b.ElementType != x.ElementType)) throw ctx.Invalid("ConvTranspose inputs have different element types");
            int rank = x.Rank - 2;
            if (rank < 1) throw ctx.Invalid($"ConvTranspose input of rank {x.Rank}; expected (N, C, D1, …)");
            if (w.Rank != x.Rank) throw ctx.Invalid($"weights of rank {w.Rank} for an input of rank {x.Rank}");
            int n = x.Dims[0], c = x.Dims[1], m = w.Dims[1] * (int)group;
            if (c != w.Dims[0] || c % group != 0) throw ctx.Invalid($"input has {c} channels; weights [{string.Join(',', w.Dims)}] with group {group}");
            if (b is not null && (b.Rank != 1 || b.Dims[0] != m)) throw ctx.Invalid($"bias of shape [{string.Join(',', b.Dims)}], expected [{m}]");
            var kernel = window.Kernel(ctx, rank, w.Dims.AsSpan(2));
            var strides = window.StridesFor(ctx, rank);
            var dilations = window.DilationsFor(ctx, rank);
            var (output, begin, _) = TransposeGeometry(ctx.Invalid, window, x.Dims[2..], kernel, strides, dilations, outputPadding, outputShape);
            // Roles swap relative to Conv: the "input" grid of the shape is Y's, the positions grid X's.
            var shape = new ConvShape(n, m, c, (int)group, output, kernel, x.Dims[2..], strides, dilations, begin);
            var y = ctx.Allocate(x.ElementType, [n, m, .. output]);
            if (x.ElementType == DataType.Float) ConvTransposeForward((float[])x.Buffer, (float[])w.Buffer, (float[]?)b?.Buffer, (float[])y.Buffer, shape, ctx.Options.Threads);
            else ConvTransposeForward((double[])x.Buffer, (double[])w.Buffer, (double[]?)b?.Buffer, (double[])y.Buffer, shape, ctx.Options.Threads);
            ctx.SetOutput(0, y);
        });
    }

    /// <summary>Output spatial shape and begin/end padding of ConvTranspose (the spec's formulas, per axis); problems go to <paramref name="error"/>.</summary>
    internal static (int[] Output, int[] PadBegin, int[] PadEnd) TransposeGeometry(Func<string, Exception> error, WindowAttributes window, int[] input, int[] kernel,
        int[] strides, int[] dilations, long[]? outputPadding, long[]? outputShape)
    {
        int rank = input.Length;
        if (outputPadding is not null && outputPadding.Length != rank) throw error($"output_padding has {outputPadding.Length} values for {rank} spatial axes");
        if (outputShape is not null && outputShape.Length != rank && outputShape.Length != rank + 2)
            throw error($"output_shape has {outputShape.Length} values for {rank} spatial axes");
        if (window.Pads is not null && window.Pads.Length != 2 * rank) throw error($"pads has {window.Pads.Length} values for {rank} spatial axes");
        var output = new int[rank];
        var begin = new int[rank];
        var end = new int[rank];
        bool same = window.AutoPad is "SAME_UPPER" or "SAME_LOWER";
        for (int d = 0; d < rank; d++)
        {
            long dk = (long)(kernel[d] - 1) * dilations[d] + 1, adj = outputPadding?[d] ?? 0;
            long full = (long)strides[d] * (input[d] - 1) + adj + dk;
            if (outputShape is not null || same)
            {
                long target = outputShape is not null ? outputShape[outputShape.Length - rank + d] : (long)input[d] * strides[d];
                long total = full - target;
                // The spec (and the ONNX reference's floor division, so a negative total extends the end): SAME_UPPER
                // puts the smaller half at the beginning, otherwise the larger half.
                long half = (long)Math.Floor(total / 2.0);
                begin[d] = (int)(window.AutoPad == "SAME_UPPER" ? half : total - half);
                output[d] = (int)target;
            }
            else
            {
                bool explicitPads = window.AutoPad == "NOTSET" && window.Pads is not null;
                begin[d] = explicitPads ? window.Pads![d] : 0;
                long size = full - begin[d] - (explicitPads ? window.Pads![rank + d] : 0);
                if (size < 0) throw error($"axis {d}: negative output size {size}");
                output[d] = (int)size;
            }
            end[d] = (int)(full - begin[d] - output[d]);
        }
        return (output, begin, end);
    }

    /// <summary>
    /// Per image n and group g: col (M/G·K × L) = W[g]ᵀ · X[n, g] (C/G × L), L input positions, then col2im adds each
    /// column's window into Y[n, g]. <paramref name="s"/> describes the equivalent Conv from Y to X: Input is Y's
    /// spatial shape, Output X's, C the output channels M and M the input channels C.
    /// </summary>
    internal static void ConvTransposeForward<T>(T[] x, T[] w, T[]? bias, T[] y, ConvShape s, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int yChannels = s.C, xChannels = s.M;
        int cg = xChannels / s.Group, mg = yChannels / s.Group;
        int ySize = s.InputSize, xSize = s.OutputSize, kSize = s.KernelSize;
        int rows = mg * kSize;
        int chunk = (int)Math.Max(1, Math.Min(xSize, MaxColumnBuffer / Math.Max(1, rows)));
        int items = s.N * s.Group;
        void Item(int item, int gemmThreads)
        {
            int img = item / s.Group, g = item % s.Group;
            long xBase = ((long)img * xChannels + (long)g * cg) * xSize;
            long yBase = ((long)img * yChannels + (long)g * mg) * ySize;
            var wg = w.AsSpan(g * cg * rows, cg * rows);
            if (rows > 0 && xSize > 0)
            {
                T[] col = ArrayPool<T>.Shared.Rent(rows * chunk);
                try
                {
                    for (int l0 = 0; l0 < xSize; l0 += chunk)
                    {
                        int lc = Math.Min(chunk, xSize - l0);
                        var colView = col.AsSpan(0, rows * lc);
                        if (cg == 0) colView.Clear();
                        else Gemm.Multiply(true, false, rows, lc, cg, T.One, wg, rows, x.AsSpan((int)(xBase + l0), (cg - 1) * xSize + lc), xSize, T.Zero, colView, lc, gemmThreads);
                        Col2Im(col, mg, s.Output, s.Input, s.Kernel, s.Strides, s.Dilations, s.PadBegin, l0, lc, y, yBase);
                    }
                }
                finally
                {
                    ArrayPool<T>.Shared.Return(col);
                }
            }
            if (bias is not null)
                for (int j = 0; j < mg; j++)
                {
                    var plane = y.AsSpan((int)(yBase + (long)j * ySize), ySize);
                    System.Numerics.Tensors.TensorPrimitives.Add(plane, bias[g * mg + j], plane);
                }
        }
        if (threads > 1 && items >= threads) Parallel.For(0, items, new ParallelOptions { MaxDegreeOfParallelism = threads }, i => Item(i, 1));
        else for (int i = 0; i < items; i++) Item(i, threads);
    }
}
