using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;

namespace Backprop.Onnx.Ops;

/// <summary>Gradient rules of the pooling ops, and the standard-op forms of MaxPoolGrad and AveragePoolGrad (for export).</summary>
internal static partial class PoolingOps
{
    /// <summary>
    /// MaxPool VJP (PyTorch derivatives.yaml <c>max_pool2d_with_indices</c> → <c>max_pool2d_with_indices_backward</c>):
    /// each window's cotangent goes to its first maximal element, summed over overlapping windows; a MaxPoolGrad node of
    /// our domain. The Indices output has no gradient.
    /// </summary>
    private static string?[] MaxPoolVjp(GradientContext ctx)
    {
        if (ctx.OutputGrad(0) is not { } dy) return [null];
        var attrs = ctx.Node.Attributes.Where(a => a.Name != "storage_order").ToArray();
        return [ctx.Emit.Custom("MaxPoolGrad", [dy, ctx.Input(0)], attrs)];
    }

    /// <summary>
    /// AveragePool VJP (PyTorch derivatives.yaml <c>avg_pool2d</c> → <c>avg_pool2d_backward</c>): each window's cotangent,
    /// divided by its divisor, is spread over the window's input elements; an AveragePoolGrad node of our domain (SAME
    /// padding made explicit when X's spatial shape is static).
    /// </summary>
    private static string?[] AveragePoolVjp(GradientContext ctx)
    {
        string x = ctx.Input(0);
        var node = ctx.Node;
        var attrs = node.Attributes.ToList();
        var window = WindowAttributes.Parse(new OpContext(node, ctx.OpsetVersion, []), requireKernelShape: true, allowDilations: false);
        if (window.AutoPad is "SAME_UPPER" or "SAME_LOWER" && ConvOps.StaticSpatial(ctx.StaticShape(x), window.KernelShape!.Length) is { } input)
        {
            int rank = input.Length;
            var strides = window.Strides ?? Enumerable.Repeat(1, rank).ToArray();
            var pads = new long[2 * rank];
            for (int d = 0; d < rank; d++)
            {
                var (b, e) = WindowAttributes.SamePadding(input[d], window.KernelShape[d], strides[d], 1, window.AutoPad == "SAME_UPPER");
                (pads[d], pads[rank + d]) = (b, e);
            }
            attrs.RemoveAll(a => a.Name is "auto_pad" or "pads");
            attrs.Add(OnnxAttribute.FromInts("pads", pads));
        }
        return [ctx.Emit.Custom("AveragePoolGrad", [ctx.OutputGrad(0)!, ctx.Emit.Shape(x)], [.. attrs])];
    }

    /// <summary>
    /// GlobalAveragePool VJP (PyTorch derivatives.yaml <c>mean.dim</c> over the spatial axes): dX = dY broadcast over the
    /// spatial axes, divided by their element count (Size(dY) / Size(X)).
    /// </summary>
    private static string?[] GlobalAveragePoolVjp(GradientContext ctx)
    {
        string x = ctx.Input(0), dy = ctx.OutputGrad(0)!;
        var e = ctx.Emit;
        var type = ctx.ElementType(x);
        string scale = e.Div(e.Cast(e.Op("Size", dy), type), e.Cast(e.Op("Size", x), type));
        // Scaled before it is expanded: the same products, on the small tensor.
        return [e.Expand(e.Mul(dy, scale), e.Shape(x))];
    }

    /// <summary>
    /// GlobalMaxPool VJP (as MaxPool with the whole plane as its window, PyTorch <c>max_pool2d_with_indices_backward</c>):
    /// the cotangent goes to the first maximal element of each plane (ArgMax, ScatterElements; opset 11+).
    /// </summary>
    private static string?[] GlobalMaxPoolVjp(GradientContext ctx)
    {
        var e = ctx.Emit;
        if (e.OpsetVersion < 11) throw ctx.Unsupported("the GlobalMaxPool gradient needs opset 11 (ScatterElements)");
        string x = ctx.Input(0), dy = ctx.OutputGrad(0)!;
        string shape = e.Shape(x);
        string nc = e.Op("Gather", shape, e.Int64s(0, 1));
        string planes = e.Reshape(x, e.Op("Concat", [nc, e.Int64s(-1)], OnnxAttribute.FromInt("axis", 0)));
        string first = e.Op("ArgMax", [planes], OnnxAttribute.FromInt("axis", 2), OnnxAttribute.FromInt("keepdims", 1));
        string dyPlanes = e.Reshape(dy, e.Op("Concat", [nc, e.Int64s(1)], OnnxAttribute.FromInt("axis", 0)));
        string scattered = e.Op("ScatterElements", [e.ZerosLike(planes), first, dyPlanes], OnnxAttribute.FromInt("axis", 2));
        return [e.Reshape(scattered, shape)];
    }

    /// <summary>
    /// LRN VJP (PyTorch builds local_response_norm from differentiable primitives; this is their composed derivative):
    /// with s = bias + α/size · W(x²), W the channel-window sum [c − ⌊(size−1)/2⌋, c + ⌈(size−1)/2⌉],
    /// dX = dY·s^(−β) − (2αβ/size) · x · Wᵀ(dY·x·s^(−β−1)), Wᵀ the mirrored window. Needs X's static rank.
    /// </summary>
    private static string?[] LrnVjp(GradientContext ctx)
    {
        var node = ctx.Node;
        string x = ctx.Input(0), dy = ctx.OutputGrad(0)!;
        int rank = ctx.Rank(x) ?? throw ctx.Unsupported("the LRN gradient needs the input's static rank");
        int size = (int)node.GetInt("size", 1);
        double alpha = node.GetFloat("alpha", 1e-4f), beta = node.GetFloat("beta", 0.75f), bias = node.GetFloat("bias", 1f);
        int below = (size - 1) / 2, above = size - 1 - below;
        var e = ctx.Emit;
        string s = e.Add(ctx.Scalar(bias, x), e.Mul(ctx.Scalar(alpha / size, x), ChannelWindowSum(ctx, e.Mul(x, x), rank, size, below, above)));
        string p = e.Op("Pow", s, ctx.Scalar(-beta, x));
        string inner = ChannelWindowSum(ctx, e.Div(e.Mul(e.Mul(dy, x), p), s), rank, size, above, below);
        return [e.Sub(e.Mul(dy, p), e.Mul(ctx.Scalar(2 * alpha * beta / size, x), e.Mul(x, inner)))];
    }

    /// <summary>Σ of z over channels [c − before, c + after] (zero outside), as a Conv along the channel axis moved last.</summary>
    private static string ChannelWindowSum(GradientContext ctx, string z, int rank, int size, int before, int after)
    {
        var e = ctx.Emit;
        long[] toLast = [0, .. Enumerable.Range(2, rank - 2).Select(v => (long)v), 1];
        long[] back = [0, rank - 1, .. Enumerable.Range(1, rank - 2).Select(v => (long)v)];
        string moved = e.Transpose(z, toLast);
        string channels = e.Op("Gather", e.Shape(z), e.Int64s(1));
        string rows = e.Reshape(moved, e.Op("Concat", [e.Int64s(-1, 1), channels], OnnxAttribute.FromInt("axis", 0)));
        var type = ctx.ElementType(z) is DataType.Undefined ? ctx.ElementType(ctx.Input(0)) : ctx.ElementType(z);
        var ones = OnnxTensor.Zeros(type, [1, 1, size]);
        for (int i = 0; i < size; i++) { if (type == DataType.Double) ones.AsSpan<double>()[i] = 1; else ones.AsSpan<float>()[i] = 1; }
        string summed = e.Op("Conv", [rows, e.Constant(ones)], OnnxAttribute.FromInts("pads", before, after));
        return e.Transpose(e.Reshape(summed, e.Shape(moved)), back);
    }

    /// <summary>
    /// MaxUnpool VJP (the adjoint of a scatter is a gather): dX[j] = dY.flat[I[j]]. With an output_shape input the
    /// indices may be remapped, which the rule does not follow.
    /// </summary>
    private static string?[] MaxUnpoolVjp(GradientContext ctx)
    {
        if (ctx.HasInput(2)) throw ctx.Unsupported("the MaxUnpool gradient with an output_shape input");
        var e = ctx.Emit;
        string x = ctx.Input(0);
        string flat = e.Op("Gather", e.Reshape(ctx.OutputGrad(0)!, e.Int64s(-1)), e.Reshape(ctx.Input(1), e.Int64s(-1)));
        return [e.Reshape(flat, e.Shape(x)), null];
    }

    /// <summary>A float constant cast to the element type of <paramref name="like"/> (CastLike, opset 15+; float below).</summary>
    private static string Typed(GraphEmitter e, OnnxTensor floatConstant, string like)
    {
        string c = e.Constant(floatConstant);
        return e.OpsetVersion >= 15 ? e.Op("CastLike", c, like) : c;
    }

    /// <summary>
    /// MaxPoolGrad in standard ops: MaxPool's Indices, then ScatterElements of dY into zeros of X's size (reduction
    /// "add", opset 16+; before that only for windows that cannot overlap), reshaped to X.
    /// </summary>
    private static string[] MaxPoolGradStandard(GraphEmitter e, Node node)
    {
        string dy = node.Inputs[0], x = node.Inputs[1];
        var kernel = node.GetInts("kernel_shape")!;
        var strides = node.GetInts("strides") ?? [.. kernel.Select(_ => 1L)];
        var dilations = node.GetInts("dilations") ?? [.. kernel.Select(_ => 1L)];
        bool overlap = kernel.Select((k, d) => strides[d] < (k - 1) * dilations[d] + 1).Any(b => b);
        if (overlap && e.OpsetVersion < 16)
            throw new UnsupportedOperatorException(node.OpType, node.Domain, 1, node.Name, "overlapping windows need ScatterElements with reduction (opset 16)");
        var indices = e.Ops("MaxPool", [x], 2, "", [.. node.Attributes])[1];
        string zeros = Typed(e, OnnxTensor.FromArray(new float[] { 0 }, 1), x);
        string flatZeros = e.Expand(zeros, e.Reshape(e.Op("Size", x), e.Int64s(1)));
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("axis", 0) };
        if (e.OpsetVersion >= 16) attrs.Add(OnnxAttribute.FromString("reduction", "add"));
        string scattered = e.Op("ScatterElements", [flatZeros, e.Reshape(indices, e.Int64s(-1)), e.Reshape(dy, e.Int64s(-1))], [.. attrs]);
        return [e.Reshape(scattered, e.Shape(x))];
    }

    /// <summary>
    /// AveragePoolGrad in standard ops: the divisors as a Conv of ones over the padded ones of X's spatial shape (the
    /// padding counted with count_include_pad, ceil_mode's extra positions never), then dY / divisor spread over each
    /// window by a ConvTranspose with a kernel of ones per (image, channel) plane, cropped at the begin pads and padded
    /// at the end to X's shape. Needs explicit pads.
    /// </summary>
    private static string[] AveragePoolGradStandard(GraphEmitter e, Node node)
    {
        string dy = node.Inputs[0], shape = node.Inputs[1];
        var kernel = node.GetInts("kernel_shape")!;
        int rank = kernel.Length;
        if (node.GetString("auto_pad", "NOTSET") is "SAME_UPPER" or "SAME_LOWER")
            throw new UnsupportedOperatorException(node.OpType, node.Domain, 1, node.Name, "the standard-op form needs explicit pads (no SAME padding of unknown shapes)");
        var strides = node.GetInts("strides") ?? [.. kernel.Select(_ => 1L)];
        var pads = node.GetString("auto_pad", "NOTSET") == "VALID" ? null : node.GetInts("pads");
        pads ??= new long[2 * rank];
        bool includePad = node.GetInt("count_include_pad", 0) != 0;
        long[] begin = pads[..rank], end = pads[rank..];
        var axis0 = OnnxAttribute.FromInt("axis", 0);
        string Spatial(string s) => e.Op("Slice", s, e.Int64s(2), e.Int64s(2 + rank));
        string spatial = Spatial(shape), outSpatial = Spatial(e.Shape(dy));

        // Divisors (1, 1, out…): a Conv of ones over the ones of X's spatial shape, padded as the forward pass counts.
        string one = Typed(e, OnnxTensor.FromArray(new float[] { 1 }, 1), dy);
        string onesIn = e.Expand(one, e.Op("Concat", [e.Int64s(1, 1), spatial], axis0));
        string padValue = Typed(e, OnnxTensor.Scalar(includePad ? 1f : 0f), dy);
        string padded = e.Op("Pad", onesIn, e.Int64s([0, 0, .. begin, 0, 0, .. end]), padValue);
        string need = e.Add(e.Mul(e.Sub(outSpatial, e.Int64s(1)), e.Int64s(strides)), e.Int64s(kernel));
        string have = e.Add(spatial, e.Int64s([.. begin.Select((b, d) => b + end[d])]));
        string extra = e.Op("Max", e.Sub(need, have), e.Int64s(new long[rank]));
        string zeroRank = e.Int64s(new long[rank]);
        string padded2 = e.Op("Pad", padded, e.Op("Concat", [e.Int64s(0, 0), zeroRank, e.Int64s(0, 0), extra], axis0));
        string onesKernel = e.Expand(one, e.Int64s([1, 1, .. kernel]));
        string divisors = e.Op("Conv", [padded2, onesKernel], OnnxAttribute.FromInts("strides", strides));

        // Spread dY / divisor over each window, per plane.
        string planes = e.Reshape(e.Div(dy, divisors), e.Op("Concat", [e.Int64s(-1, 1), outSpatial], axis0));
        string full = e.Op("ConvTranspose", [planes, onesKernel], OnnxAttribute.FromInts("strides", strides));
        string cropped = e.Op("Slice", full, e.Int64s(begin), e.Add(spatial, e.Int64s(begin)), e.Int64s([.. Enumerable.Range(2, rank).Select(v => (long)v)]));
        string short_ = e.Sub(spatial, Spatial(e.Shape(cropped)));
        string fitted = e.Op("Pad", cropped, e.Op("Concat", [e.Int64s(0, 0), zeroRank, e.Int64s(0, 0), short_], axis0));
        return [e.Reshape(fitted, shape)];
    }
}
