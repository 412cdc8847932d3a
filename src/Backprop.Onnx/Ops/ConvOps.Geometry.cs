using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The window attributes Conv, ConvTranspose and the pooling ops share (ONNX spec "Conv", "AveragePool", "MaxPool"):
/// kernel_shape, strides, dilations, pads (begin values of every axis, then end values) and auto_pad, parsed once.
/// </summary>
internal sealed class WindowAttributes
{
    private WindowAttributes(int[]? kernelShape, int[]? strides, int[]? dilations, int[]? pads, string autoPad)
    {
        KernelShape = kernelShape;
        Strides = strides;
        Dilations = dilations;
        Pads = pads;
        AutoPad = autoPad;
    }

    public int[]? KernelShape { get; }

    public int[]? Strides { get; }

    public int[]? Dilations { get; }

    public int[]? Pads { get; }

    /// <summary>NOTSET, SAME_UPPER, SAME_LOWER or VALID.</summary>
    public string AutoPad { get; }

    /// <summary>Parses and validates the attributes; anything out of the spec is unsupported.</summary>
    public static WindowAttributes Parse(OpContext op, bool requireKernelShape, bool allowDilations = true)
    {
        var node = op.Node;
        int[]? Ints(string name, int min)
        {
            if (node.GetInts(name) is not { } values) return null;
            var result = new int[values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                if (values[i] < min || values[i] > int.MaxValue) throw op.Unsupported($"{name}[{i}] = {values[i]}");
                result[i] = (int)values[i];
            }
            return result;
        }
        var kernel = Ints("kernel_shape", 1);
        if (requireKernelShape && kernel is null) throw op.Unsupported("the kernel_shape attribute is required");
        var strides = Ints("strides", 1);
        var dilations = Ints("dilations", 1);
        if (!allowDilations && dilations is not null && dilations.Any(d => d != 1)) throw op.Unsupported("dilations other than 1");
        var pads = Ints("pads", 0);
        string autoPad = node.GetString("auto_pad", "NOTSET");
        if (autoPad.Length == 0) autoPad = "NOTSET";
        if (autoPad is not ("NOTSET" or "SAME_UPPER" or "SAME_LOWER" or "VALID")) throw op.Unsupported($"auto_pad '{autoPad}'");
        int? rank = kernel?.Length;
        foreach (var (name, v, factor) in new[] { ("strides", strides, 1), ("dilations", dilations, 1), ("pads", pads, 2) })
        {
            if (v is null) continue;
            if (rank is null) rank = v.Length / factor;
            if (v.Length != rank * factor) throw op.Unsupported($"{name} has {v.Length} values for {rank} spatial axes");
        }
        return new WindowAttributes(kernel, strides, dilations, pads, autoPad);
    }

    /// <summary>The kernel's spatial shape: the kernel_shape attribute, checked against <paramref name="fromWeights"/> when given.</summary>
    public int[] Kernel(KernelContext ctx, int rank, ReadOnlySpan<int> fromWeights)
    {
        if (KernelShape is null)
        {
            if (fromWeights.Length != rank) throw ctx.Invalid("kernel_shape is not given");
            return fromWeights.ToArray();
        }
        if (KernelShape.Length != rank) throw ctx.Invalid($"kernel_shape has {KernelShape.Length} axes, the input {rank} spatial axes");
        if (fromWeights.Length == rank && !fromWeights.SequenceEqual(KernelShape))
            throw ctx.Invalid($"kernel_shape [{string.Join(',', KernelShape)}] differs from the weights' [{string.Join(',', fromWeights.ToArray())}]");
        return KernelShape;
    }

    public int[] StridesFor(KernelContext ctx, int rank) => PerAxis(ctx, Strides, rank, 1, "strides");

    public int[] DilationsFor(KernelContext ctx, int rank) => PerAxis(ctx, Dilations, rank, 1, "dilations");

    private static int[] PerAxis(KernelContext ctx, int[]? values, int rank, int fill, string name)
    {
        if (values is null) return Enumerable.Repeat(fill, rank).ToArray();
        if (values.Length != rank) throw ctx.Invalid($"{name} has {values.Length} values for {rank} spatial axes");
        return values;
    }

    /// <summary>
    /// The padding of SAME_UPPER / SAME_LOWER along one axis: the output has ⌈in / stride⌉ positions and the total padding
    /// they need is split evenly, the odd element at the end (UPPER) or the beginning (LOWER).
    /// </summary>
    public static (int Begin, int End) SamePadding(int input, int kernel, int stride, int dilation, bool upper)
    {
        int dk = (kernel - 1) * dilation + 1, o = (input + stride - 1) / stride;
        int total = Math.Max(0, (o - 1) * stride + dk - input);
        int begin = upper ? total / 2 : total - total / 2;
        return (begin, total - begin);
    }

    /// <summary>
    /// Output size and padding of a convolution or pooling window along each spatial axis: explicit pads give
    /// ⌊(in + pads − dilated kernel) / stride⌋ + 1 (⌈…⌉ with <paramref name="ceilMode"/>, dropping a last window that
    /// would start in the end padding, as PyTorch does); SAME_UPPER/SAME_LOWER give ⌈in / stride⌉ with the total padding
    /// split evenly, the odd element at the end (UPPER) or the beginning (LOWER); VALID pads nothing.
    /// </summary>
    public (int[] Output, int[] PadBegin, int[] PadEnd) Forward(KernelContext ctx, ReadOnlySpan<int> input, int[] kernel, int[] strides, int[] dilations, bool ceilMode)
    {
        int rank = input.Length;
        if (Pads is not null && Pads.Length != 2 * rank) throw ctx.Invalid($"pads has {Pads.Length} values for {rank} spatial axes");
        var output = new int[rank];
        var begin = new int[rank];
        var end = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            int dk = (kernel[d] - 1) * dilations[d] + 1, s = strides[d], n = input[d];
            if (AutoPad is "SAME_UPPER" or "SAME_LOWER")
            {
                (begin[d], end[d]) = SamePadding(n, kernel[d], s, dilations[d], AutoPad == "SAME_UPPER");
                output[d] = (n + s - 1) / s;
                continue;
            }
            if (AutoPad == "NOTSET" && Pads is not null)
            {
                begin[d] = Pads[d];
                end[d] = Pads[rank + d];
            }
            long span = (long)n + begin[d] + end[d] - dk;
            if (span < 0) throw ctx.Invalid($"axis {d}: the window ({dk}) is larger than the padded input ({n + begin[d] + end[d]})");
            long outSize = (ceilMode ? (span + s - 1) / s : span / s) + 1;
            if (ceilMode && (outSize - 1) * s >= n + begin[d]) outSize--;
            output[d] = (int)outSize;
        }
        return (output, begin, end);
    }
}
