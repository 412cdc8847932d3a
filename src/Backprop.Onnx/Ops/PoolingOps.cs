using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Pooling: MaxPool (with Indices), AveragePool, GlobalAveragePool, GlobalMaxPool, MaxUnpool and LRN, over any
/// number of spatial axes; each (image, channel) plane is independent and planes run in parallel.
/// </summary>
internal static partial class PoolingOps
{
    public static void Register(List<OpDefinition> ops)
    {
        // MaxPool (ONNX spec "MaxPool", versions 1, 8, 10, 11, 12): the maximum over each window; the optional
        // Indices output holds the flat index of the maximum in the input (row-major, or column-major over the
        // spatial axes when storage_order = 1). Ties take the first element in window order, as PyTorch does.
        ops.Add(new OpDefinition("MaxPool", CreateMaxPool)
        {
            InferTypes = op => [op.InputType(0), DataType.Int64],
            Vjp = MaxPoolVjp,
        });

        // AveragePool (ONNX spec "AveragePool", versions 1, 7, 10, 11): the mean over each window, dividing by the
        // number of input elements (or, with count_include_pad, also counting the explicit padding).
        ops.Add(new OpDefinition("AveragePool", CreateAveragePool) { Vjp = AveragePoolVjp });

        // GlobalAveragePool / GlobalMaxPool (ONNX spec, version 1): the mean / maximum over all spatial axes.
        ops.Add(new OpDefinition("GlobalAveragePool", op => CreateGlobal(op, max: false)) { Vjp = GlobalAveragePoolVjp });
        ops.Add(new OpDefinition("GlobalMaxPool", op => CreateGlobal(op, max: true)) { Vjp = GlobalMaxPoolVjp });

        // MaxUnpool (ONNX spec "MaxUnpool", versions 9, 11): scatters X to the flat positions I of a zero tensor.
        ops.Add(new OpDefinition("MaxUnpool", CreateMaxUnpool, minVersion: 9) { DifferentiableInputs = [0], Vjp = MaxUnpoolVjp });

        // LRN (ONNX spec "LRN", versions 1, 13): local response normalization across channels.
        ops.Add(new OpDefinition("LRN", CreateLrn) { Vjp = LrnVjp });

        // MaxPoolGrad(dY, X) and AveragePoolGrad(dY, shape of X) of our domain: the pooling gradients (see the rules),
        // with standard-op forms for export.
        ops.Add(new OpDefinition("MaxPoolGrad", CreateMaxPoolGrad, OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(0)],
            StandardOps = MaxPoolGradStandard,
        });
        ops.Add(new OpDefinition("AveragePoolGrad", CreateAveragePoolGrad, OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(0)],
            StandardOps = AveragePoolGradStandard,
        });
    }

    private static readonly DataType[] MaxPoolTypes = [DataType.Float, DataType.Double, DataType.Int8, DataType.UInt8];

    /// <summary>The resolved geometry of a windowed pool: planes (N·C), output shape and the windows.</summary>
    private sealed record PoolGeometry(int N, int C, int[] Output, PoolWindows Windows)
    {
        /// <summary>The output shape [N, C, …Output] (made once, not per call).</summary>
        public int[] YDims { get; } = [N, C, .. Output];
    }

    /// <summary>
    /// The geometry for an input shape: a pure function of the (immutable) attributes, the shape and ceil_mode, so the
    /// last few computed on this thread are returned again (the window table costs kilobytes per call otherwise).
    /// </summary>
    private static PoolGeometry Geometry(KernelContext ctx, WindowAttributes window, int[] dims, bool ceilMode)
    {
        var recent = t_recentGeometry ??= new (WindowAttributes, bool, int[], PoolGeometry)?[RecentGeometries];
        foreach (var r in recent)
            if (r is (WindowAttributes w, bool c, int[] d, PoolGeometry g) && ReferenceEquals(w, window) && c == ceilMode && d.AsSpan().SequenceEqual(dims)) return g;
        var geometry = ComputeGeometry(ctx, window, dims, ceilMode);
        recent[t_nextGeometry] = (window, ceilMode, (int[])dims.Clone(), geometry);
        t_nextGeometry = (t_nextGeometry + 1) % RecentGeometries;
        return geometry;
    }

    private const int RecentGeometries = 16;

    [ThreadStatic] private static (WindowAttributes, bool, int[], PoolGeometry)?[]? t_recentGeometry;
    [ThreadStatic] private static int t_nextGeometry;

    private static PoolGeometry ComputeGeometry(KernelContext ctx, WindowAttributes window, int[] dims, bool ceilMode)
    {
        int rank = dims.Length - 2;
        if (rank < 1) throw ctx.Invalid($"pooling input of rank {dims.Length}; expected (N, C, D1, …)");
        var kernel = window.Kernel(ctx, rank, []);
        var strides = window.StridesFor(ctx, rank);
        var dilations = window.DilationsFor(ctx, rank);
        var input = dims[2..];
        var (output, begin, end) = window.Forward(ctx, input, kernel, strides, dilations, ceilMode);
        return new PoolGeometry(dims[0], dims[1], output, new PoolWindows(input, output, kernel, strides, dilations, begin, end));
    }

    private static Kernel CreateMaxPool(OpContext op)
    {
        if (MatMulOps.IsHalfType(op.InputType(0))) return MatMulOps.Widened(op, CreateMaxPool);
        op.RequireInputType(0, MaxPoolTypes);
        var window = WindowAttributes.Parse(op, requireKernelShape: true);
        bool ceilMode = op.Node.GetInt("ceil_mode", 0) != 0;
        long storageOrder = op.Node.GetInt("storage_order", 0);
        if (storageOrder is not (0 or 1)) throw op.Unsupported($"storage_order = {storageOrder}");
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            var g = Geometry(ctx, window, x.Dims, ceilMode);
            // Every path writes every element of Y (and of Indices).
            var y = ctx.AllocateUninitialized(x.ElementType, g.YDims);
            var indices = ctx.IsOutputUsed(1) ? ctx.Allocate(DataType.Int64, g.YDims) : null;
            long[]? idx = (long[]?)indices?.Buffer;
            int threads = ctx.Options.Threads;
            switch (x.ElementType)
            {
                case DataType.Float: MaxPool((float[])x.Buffer, (float[])y.Buffer, idx, g, g.Windows.Shape.Input, storageOrder == 1, threads); break;
                case DataType.Double: MaxPool((double[])x.Buffer, (double[])y.Buffer, idx, g, g.Windows.Shape.Input, storageOrder == 1, threads); break;
                case DataType.Int8: MaxPool((sbyte[])x.Buffer, (sbyte[])y.Buffer, idx, g, g.Windows.Shape.Input, storageOrder == 1, threads); break;
                case DataType.UInt8: MaxPool((byte[])x.Buffer, (byte[])y.Buffer, idx, g, g.Windows.Shape.Input, storageOrder == 1, threads); break;
                default: throw ctx.Invalid($"MaxPool does not support {DataTypes.OnnxName(x.ElementType)}");
            }
            ctx.SetOutput(0, y);
            if (indices is not null) ctx.SetOutput(1, indices);
        });
    }

    private static Kernel CreateAveragePool(OpContext op)
    {
        if (MatMulOps.IsHalfType(op.InputType(0))) return MatMulOps.Widened(op, CreateAveragePool);
        op.RequireInputType(0, DataType.Float, DataType.Double);
        var window = WindowAttributes.Parse(op, requireKernelShape: true, allowDilations: false);
        bool ceilMode = op.Node.GetInt("ceil_mode", 0) != 0;
        bool includePad = op.Node.GetInt("count_include_pad", 0) != 0;
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            var g = Geometry(ctx, window, x.Dims, ceilMode);
            var y = ctx.Allocate(x.ElementType, g.YDims);
            if (x.ElementType == DataType.Float) AveragePool((float[])x.Buffer, (float[])y.Buffer, g, includePad, ctx.Options.Threads);
            else AveragePool((double[])x.Buffer, (double[])y.Buffer, g, includePad, ctx.Options.Threads);
            ctx.SetOutput(0, y);
        });
    }

    /// <summary>Runs <paramref name="plane"/> for every plane, in parallel when there is enough work.</summary>
    private static void ForEachPlane(int planes, long workPerPlane, int threads, Action<int> plane)
    {
        if (threads > 1 && planes > 1 && planes * workPerPlane >= 1 << 15)
            ChunkRunner.For(planes, threads, plane);
        else
            for (int p = 0; p < planes; p++) plane(p);
    }

    /// <summary>
    /// The offset of a window's maximum, the first one among ties (as MaxPool's Indices and PyTorch's max_pool), a NaN
    /// winning over numbers; -1 for a window entirely in the padding.
    /// </summary>
    internal static int WindowArgMax<T>(T[] x, long xBase, ReadOnlySpan<int> offsets) where T : INumber<T>
    {
        T best = T.Zero;
        int bestOffset = -1;
        foreach (int off in offsets)
        {
            T v = x[xBase + off];
            if (bestOffset < 0 || v > best || (T.IsNaN(v) && !T.IsNaN(best))) { best = v; bestOffset = off; }
        }
        return bestOffset;
    }

    private static void MaxPool<T>(T[] x, T[] y, long[]? indices, PoolGeometry g, int[] input, bool columnMajor, int threads) where T : INumber<T>
    {
        if (indices is null && (TryPool2x2(x, y, null, g, threads) || MaxPool2D(x, y, null, g, threads))) return;
        MaxPoolND(x, y, indices, g, input, columnMajor, threads);
    }

    /// <summary>
    /// The general path of <see cref="MaxPool{T}"/> (N-D, or with Indices), in a method of its own: its lambda's captured
    /// variables are allocated on entry to the method that declares them, so the 2-D paths above allocate nothing.
    /// </summary>
    private static void MaxPoolND<T>(T[] x, T[] y, long[]? indices, PoolGeometry g, int[] input, bool columnMajor, int threads) where T : INumber<T>
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
                // A window entirely in the padding yields −∞.
                T best = bestOffset >= 0 ? x[xBase + bestOffset] : T.CreateSaturating(double.NegativeInfinity);
                y[yBase + o] = best;
                if (indices is not null)
                    indices[yBase + o] = bestOffset < 0 ? -1 : xBase + (columnMajor ? ColumnMajor(bestOffset, input) : bestOffset);
            }
        });
    }

    /// <summary>The column-major index of the element at row-major offset <paramref name="offset"/> of a plane of shape <paramref name="shape"/>.</summary>
    private static long ColumnMajor(int offset, int[] shape)
    {
        long index = 0, stride = 1;
        var coord = new int[shape.Length];
        ConvOps.Decompose(offset, shape, coord);
        for (int d = 0; d < shape.Length; d++)
        {
            index += coord[d] * stride;
            stride *= shape[d];
        }
        return index;
    }

    private static void AveragePool<T>(T[] x, T[] y, PoolGeometry g, bool includePad, int threads) where T : IFloatingPointIeee754<T>
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
                T sum = T.Zero;
                foreach (int off in offsets) sum += x[xBase + off];
                y[yBase + o] = sum / T.CreateChecked(includePad ? padded : offsets.Length);
            }
        });
    }
}
