using System.Buffers;
using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Convolutions: Conv and ConvTranspose (1-D, 2-D, 3-D and beyond; groups, strides, dilations, pads, auto_pad) by
/// im2col / col2im around our packed GEMM (Conv's small 2-D forward by direct convolution, ConvOps.Direct*.cs), and the
/// integer/quantized ConvInteger and QLinearConv.
/// </summary>
internal static partial class ConvOps
{
    public static void Register(List<OpDefinition> ops)
    {
        // Conv (ONNX spec "Conv", versions 1, 11): Y[n, m] = Σ_c W[m, c] ⋆ X[n, g·C/G + c] + B[m] per group g.
        ops.Add(new OpDefinition("Conv", CreateConv) { Vjp = ConvVjp });

        // FusedConv of our domain: Conv with its only reader, an activation, applied where the output is written (made by
        // PlanFusion when a plan compiles; ONNX Runtime's com.microsoft FusedConv is the precedent). activation = "Relu":
        // Y = max(Conv(X, W, B), 0), NaN kept (as Relu's TensorPrimitives.Max does). Never in a model, so no gradient rule.
        ops.Add(new OpDefinition(FusedConvOp, CreateFusedConv, OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(0)],
            NonDifferentiable = true,
        });

        // ConvTranspose (ONNX spec "ConvTranspose", versions 1, 11): the adjoint of Conv in X (col2im of Wᵀ·X) + B.
        ops.Add(new OpDefinition("ConvTranspose", CreateConvTranspose) { Vjp = ConvTransposeVjp });

        // ConvGrad(dY, X, W) → (dX, dW, dB) of our domain: Conv's gradients (see ConvVjp), with a standard-op form for export.
        ops.Add(new OpDefinition("ConvGrad", CreateConvGrad, OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(0), op.InputType(0), op.InputType(0)],
            StandardOps = ConvGradStandard,
        });

        // ConvInteger (ONNX spec "ConvInteger", version 10): Conv of (x − x_zero_point) and (w − w_zero_point) in int32.
        ops.Add(new OpDefinition("ConvInteger", CreateConvInteger, minVersion: 10)
        {
            InferTypes = TypeInferencePass.Fixed(DataType.Int32),
            NonDifferentiable = true,
        });

        // QLinearConv (ONNX spec "QLinearConv", version 10): quantized Conv with requantized 8-bit output.
        ops.Add(new OpDefinition("QLinearConv", CreateQLinearConv, minVersion: 10)
        {
            InferTypes = op => [op.InputType(7)],
            NonDifferentiable = true,
        });
    }

    /// <summary>Largest im2col buffer (elements) before the output columns are processed in chunks.</summary>
    private const long MaxColumnBuffer = 1 << 21;

    /// <summary>The op type of <see cref="PlanFusion"/>'s Conv + activation node.</summary>
    internal const string FusedConvOp = "FusedConv";

    private static Kernel CreateFusedConv(OpContext op)
    {
        string activation = op.Node.GetString("activation", "");
        if (activation != "Relu") throw op.Unsupported($"activation '{activation}'");
        return CreateConv(op, relu: true);
    }

    private static Kernel CreateConv(OpContext op) => CreateConv(op, relu: false);

    /// <summary>Conv's kernel; <paramref name="relu"/> applies max(·, 0) to every output (FusedConv).</summary>
    private static Kernel CreateConv(OpContext op, bool relu)
    {
        if (MatMulOps.IsHalfType(op.InputType(0))) return MatMulOps.Widened(op, o => CreateConv(o, relu));
        op.RequireInputType(0, DataType.Float, DataType.Double);
        var window = WindowAttributes.Parse(op, requireKernelShape: false);
        long group = op.Node.GetInt("group", 1);
        if (group < 1 || group > int.MaxValue) throw op.Unsupported($"group = {group}");
        // The shapes resolved for the last input shapes seen (immutable; a training step repeats the same shapes every step).
        ResolvedConv? last = null;
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            var w = ctx.RequiredInput(1);
            var b = ctx.Input(2);
            if (w.ElementType != x.ElementType || (b is not null && b.ElementType != x.ElementType)) throw ctx.Invalid("Conv inputs have different element types");
            var resolved = Volatile.Read(ref last);
            if (resolved is null || !resolved.Fits(x, w))
            {
                resolved = new ResolvedConv(x.Dims.ToArray(), w.Dims.ToArray(), ResolveConv(ctx, window, (int)group, x, w));
                Volatile.Write(ref last, resolved);
            }
            ctx.SetOutput(0, Conv(ctx, resolved.Shape, x, w, b, relu));
        });
    }

    /// <summary>A convolution's shapes for the input and weight dimensions they were resolved from.</summary>
    private sealed record ResolvedConv(int[] XDims, int[] WDims, ConvShape Shape)
    {
        public bool Fits(OnnxTensor x, OnnxTensor w) => x.Dims.AsSpan().SequenceEqual(XDims) && w.Dims.AsSpan().SequenceEqual(WDims);
    }

    /// <summary>The shapes of one convolution, resolved from the inputs and the window attributes.</summary>
    internal sealed record ConvShape(int N, int C, int M, int Group, int[] Input, int[] Kernel, int[] Output, int[] Strides, int[] Dilations, int[] PadBegin)
    {
        public int InputSize => Product(Input);
        public int OutputSize => Product(Output);
        public int KernelSize => Product(Kernel);

        /// <summary>The product of the sizes, without the enumerator LINQ's Aggregate allocates on every call.</summary>
        private static int Product(int[] sizes)
        {
            int p = 1;
            foreach (int d in sizes) p *= d;
            return p;
        }
    }

    /// <summary>Conv of float or double tensors: X (N, C, D…), W (M, C/group, k…), optional B (M).</summary>
    internal static OnnxTensor Conv(KernelContext ctx, WindowAttributes window, int group, OnnxTensor x, OnnxTensor w, OnnxTensor? b)
        => Conv(ctx, ResolveConv(ctx, window, group, x, w), x, w, b);

    /// <summary>Conv of float or double tensors whose shapes were resolved into <paramref name="shape"/>.</summary>
    private static OnnxTensor Conv(KernelContext ctx, ConvShape shape, OnnxTensor x, OnnxTensor w, OnnxTensor? b, bool relu = false)
    {
        if (b is not null && (b.Rank != 1 || b.Dims[0] != shape.M)) throw ctx.Invalid($"bias of shape [{string.Join(',', b.Dims)}], expected [{shape.M}]");
        var y = ctx.AllocateUninitialized(x.ElementType, [shape.N, shape.M, .. shape.Output]); // every path writes every element
        if (x.ElementType == DataType.Float) ConvForward((float[])x.Buffer, (float[])w.Buffer, (float[]?)b?.Buffer, (float[])y.Buffer, shape, ctx.Options.Threads, relu: relu);
        else ConvForward((double[])x.Buffer, (double[])w.Buffer, (double[]?)b?.Buffer, (double[])y.Buffer, shape, ctx.Options.Threads, relu: relu);
        return y;
    }

    /// <summary>The shapes of a convolution of X (N, C, D…) with W (M, C/group, k…), checked against each other.</summary>
    internal static ConvShape ResolveConv(KernelContext ctx, WindowAttributes window, int group, OnnxTensor x, OnnxTensor w)
    {
        int rank = x.Rank - 2;
        if (rank < 1) throw ctx.Invalid($"Conv input of rank {x.Rank}; expected (N, C, D1, …)");
        if (w.Rank != x.Rank) throw ctx.Invalid($"weights of rank {w.Rank} for an input of rank {x.Rank}");
        int n = x.Dims[0], c = x.Dims[1], m = w.Dims[0];
        if (c != w.Dims[1] * group) throw ctx.Invalid($"input has {c} channels; weights expect {w.Dims[1]} × group {group}");
        if (m % group != 0) throw ctx.Invalid($"{m} output channels do not split into {group} groups");
        var kernel = window.Kernel(ctx, rank, w.Dims.AsSpan(2));
        var strides = window.StridesFor(ctx, rank);
        var dilations = window.DilationsFor(ctx, rank);
        var (output, begin, _) = window.Forward(ctx, x.Dims.AsSpan(2), kernel, strides, dilations, ceilMode: false);
        return new ConvShape(n, c, m, group, x.Dims[2..], kernel, output, strides, dilations, begin);
    }

    /// <summary>
    /// Per image n and group g: Y[n, g] (M/G × L) = W[g] (M/G × C/G·K) · im2col(X[n, g]) (C/G·K × L), L output positions,
    /// K kernel positions; a 1×1 kernel with stride 1 and no padding multiplies X directly. Images (and groups) run in
    /// parallel when there are enough of them, else the GEMM itself uses the threads. Small 2-D ungrouped convolutions
    /// run as direct convolutions instead (<see cref="ConvForwardDirect{T}"/>) unless <paramref name="allowDirect"/> is
    /// false (tests compare the two). <paramref name="relu"/> then applies max(·, 0) (IEEE 754 maximum: NaN stays NaN,
    /// −0 becomes +0, as Relu's TensorPrimitives.Max) to every output, in the direct path where it stores them.
    /// </summary>
    internal static void ConvForward<T>(T[] x, T[] w, T[]? bias, T[] y, ConvShape s, int threads, bool allowDirect = true, bool relu = false)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // A separate method: the im2col path's closure would otherwise be allocated on entry, whichever path runs.
        if (allowDirect && UseDirect(s)) ConvForwardDirect(x, w, bias, y, s, threads, relu: relu);
        else
        {
            ConvForwardIm2Col(x, w, bias, y, s, threads);
            if (relu)
            {
                var all = y.AsSpan(0, checked(s.N * s.M * s.OutputSize));
                System.Numerics.Tensors.TensorPrimitives.Max(all, T.Zero, all);
            }
        }
    }

    /// <summary><see cref="ConvForward{T}"/> by im2col and GEMM (batched for small images).</summary>
    private static void ConvForwardIm2Col<T>(T[] x, T[] w, T[]? bias, T[] y, ConvShape s, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int cg = s.C / s.Group, mg = s.M / s.Group, inSize = s.InputSize, outSize = s.OutputSize, kSize = s.KernelSize;
        int rows = cg * kSize;
        if (UseBatched(s, rows))
        {
            ConvForwardBatched(x, w, bias, y, s, threads);
            return;
        }
        bool pointwise = kSize == 1 && s.Strides.All(v => v == 1) && s.PadBegin.All(v => v == 0) && outSize == inSize;
        int chunk = (int)Math.Max(1, Math.Min(outSize, MaxColumnBuffer / Math.Max(1, rows)));
        int items = s.N * s.Group;
        bool parallelItems = threads > 1 && items >= threads;
        void Item(int item, int gemmThreads)
        {
            int img = item / s.Group, g = item % s.Group;
            long xBase = ((long)img * s.C + (long)g * cg) * inSize;
            long yBase = ((long)img * s.M + (long)g * mg) * outSize;
            var wg = w.AsSpan(g * mg * rows, mg * rows);
            T[]? col = pointwise || rows == 0 ? null : ArrayPool<T>.Shared.Rent(rows * chunk);
            try
            {
                for (int l0 = 0; l0 < outSize; l0 += chunk)
                {
                    int lc = Math.Min(chunk, outSize - l0);
                    var yv = y.AsSpan((int)(yBase + l0), (mg - 1) * outSize + lc);
                    if (rows == 0) { yv.Clear(); continue; }
                    if (col is null)
                    {
                        Gemm.Multiply(false, false, mg, lc, rows, T.One, wg, rows, x.AsSpan((int)(xBase + l0), (rows - 1) * inSize + lc), inSize, T.Zero, yv, outSize, gemmThreads);
                    }
                    else
                    {
                        Im2Col(x, xBase, cg, s.Input, s.Output, s.Kernel, s.Strides, s.Dilations, s.PadBegin, l0, lc, col);
                        Gemm.Multiply(false, false, mg, lc, rows, T.One, wg, rows, col.AsSpan(0, rows * lc), lc, T.Zero, yv, outSize, gemmThreads);
                    }
                }
                if (bias is not null)
                    for (int j = 0; j < mg; j++)
                    {
                        var plane = y.AsSpan((int)(yBase + (long)j * outSize), outSize);
                        System.Numerics.Tensors.TensorPrimitives.Add(plane, bias[g * mg + j], plane);
                    }
            }
            finally
            {
                if (col is not null) ArrayPool<T>.Shared.Return(col);
            }
        }
        if (parallelItems) Parallel.For(0, items, new ParallelOptions { MaxDegreeOfParallelism = threads }, i => Item(i, 1));
        else for (int i = 0; i < items; i++) Item(i, threads);
    }
}
