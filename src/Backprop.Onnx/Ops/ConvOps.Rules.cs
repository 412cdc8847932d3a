using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;

namespace Backprop.Onnx.Ops;

/// <summary>Gradient rules of Conv and ConvTranspose, and ConvGrad's computation in standard ONNX ops (for export).</summary>
internal static partial class ConvOps
{
    /// <summary>
    /// Conv VJP (PyTorch derivatives.yaml <c>convolution</c> → <c>convolution_backward</c>): dX = ConvTranspose(dY, W)
    /// (col2im of Wᵀ·dY), dW = Σₙ dY·im2col(X)ᵀ, dB = Σ dY over images and positions — one ConvGrad node of our domain.
    /// </summary>
    private static string?[] ConvVjp(GradientContext ctx)
    {
        string x = ctx.Input(0), w = ctx.Input(1);
        var outs = ctx.Emit.Ops("ConvGrad", [ctx.OutputGrad(0)!, x, w], 3, OpRegistry.BackpropDomain, ConvGradAttributes(ctx, x, w, ctx.StaticShape(x)));
        return [ctx.NeedsGrad(0) ? outs[0] : null, ctx.NeedsGrad(1) ? outs[1] : null, ctx.HasInput(2) && ctx.NeedsGrad(2) ? outs[2] : null];
    }

    /// <summary>
    /// ConvTranspose VJP (PyTorch derivatives.yaml <c>convolution</c> with transposed = true): ConvTranspose is the adjoint
    /// of Conv in its input, so dX = Conv(dY, W) with the same strides, dilations, group and effective pads; dW is Conv's
    /// weight gradient with the roles of X and dY exchanged (ConvGrad(X, dY, W)); dB = Σ dY over all axes but channels.
    /// output_shape and SAME padding need X's static spatial shape (to know the effective pads).
    /// </summary>
    private static string?[] ConvTransposeVjp(GradientContext ctx)
    {
        string x = ctx.Input(0), w = ctx.Input(1), dy = ctx.OutputGrad(0)!;
        var node = ctx.Node;
        var window = WindowAttributes.Parse(new OpContext(node, ctx.OpsetVersion, []), requireKernelShape: false);
        int rank = SpatialRank(ctx, window, x, w) ?? throw ctx.Unsupported("the spatial rank is unknown (no attribute lists it and no static input rank)");
        var strides = window.Strides ?? Ones(rank);
        var dilations = window.Dilations ?? Ones(rank);
        var outputPadding = node.GetInts("output_padding");
        var outputShape = node.GetInts("output_shape");
        int[] begin, end;
        if (outputShape is null && window.AutoPad is "NOTSET" or "VALID")
        {
            begin = window.AutoPad == "NOTSET" && window.Pads is not null ? window.Pads[..rank] : new int[rank];
            end = window.AutoPad == "NOTSET" && window.Pads is not null ? window.Pads[rank..] : new int[rank];
        }
        else
        {
            var input = StaticSpatial(ctx.StaticShape(x), rank) ?? throw ctx.Unsupported("output_shape or SAME padding needs the input's static spatial shape");
            var kernel = window.KernelShape ?? StaticSpatial(ctx.StaticShape(w), rank) ?? throw ctx.Unsupported("the kernel shape is unknown");
            (_, begin, end) = TransposeGeometry(ctx.Unsupported, window, input, kernel, strides, dilations, outputPadding, outputShape);
            for (int d = 0; d < rank; d++)
            {
                // Conv(dY) with pads (begin, max(end, 0)) must give back X's size: trailing positions added by
                // output_padding or output_shape beyond one stride would not.
                long extra = (outputPadding?[d] ?? 0) - end[d] + Math.Max(end[d], 0);
                if (extra >= strides[d]) throw ctx.Unsupported($"axis {d}: the output extends X's adjoint by {extra} ≥ stride");
                end[d] = Math.Max(end[d], 0);
            }
        }
        var pads = OnnxAttribute.FromInts("pads", [.. begin.Concat(end).Select(v => (long)v)]);
        var common = new[]
        {
            OnnxAttribute.FromInts("strides", [.. strides.Select(v => (long)v)]),
            OnnxAttribute.FromInts("dilations", [.. dilations.Select(v => (long)v)]),
            OnnxAttribute.FromInt("group", node.GetInt("group", 1)),
            pads,
        };
        var e = ctx.Emit;
        string? dx = ctx.NeedsGrad(0) ? e.Op("Conv", [dy, w], common) : null;
        string? dw = ctx.NeedsGrad(1) ? e.Ops("ConvGrad", [x, dy, w], 3, OpRegistry.BackpropDomain, common)[1] : null;
        string? db = ctx.HasInput(2) && ctx.NeedsGrad(2) ? e.ReduceSum(dy, [0, .. Enumerable.Range(2, rank).Select(v => (long)v)], keepdims: false) : null;
        return [dx, dw, db];
    }

    private static int[] Ones(int rank) => Enumerable.Repeat(1, rank).ToArray();

    /// <summary>The spatial rank from the attributes' lengths, else from the static rank of W or X.</summary>
    private static int? SpatialRank(GradientContext ctx, WindowAttributes window, string x, string w) =>
        window.KernelShape?.Length ?? window.Strides?.Length ?? window.Dilations?.Length ?? window.Pads?.Length / 2 ?? ctx.Rank(w) - 2 ?? ctx.Rank(x) - 2;

    /// <summary>The static spatial dimensions (all but the first two) of a shape, or null when any is unknown.</summary>
    internal static int[]? StaticSpatial(IReadOnlyList<Dim>? shape, int rank)
    {
        if (shape is null || shape.Count != rank + 2 || shape.Skip(2).Any(d => d.Value is null)) return null;
        return [.. shape.Skip(2).Select(d => checked((int)d.Value!.Value))];
    }

    /// <summary>
    /// Conv's attributes for a ConvGrad node, made explicit where the spatial rank is known (strides, dilations and
    /// pads listed, SAME padding resolved to pads when X's spatial shape is static), so the node's standard-op form has them.
    /// </summary>
    private static OnnxAttribute[] ConvGradAttributes(GradientContext ctx, string x, string w, IReadOnlyList<Dim>? xShape)
    {
        var node = ctx.Node;
        var window = WindowAttributes.Parse(new OpContext(node, ctx.OpsetVersion, []), requireKernelShape: false);
        var group = OnnxAttribute.FromInt("group", node.GetInt("group", 1));
        if (SpatialRank(ctx, window, x, w) is not int rank) return [.. node.Attributes];
        var strides = window.Strides ?? Ones(rank);
        var dilations = window.Dilations ?? Ones(rank);
        var kernel = window.KernelShape ?? StaticSpatial(ctx.StaticShape(w), rank);
        int[]? pads = window.AutoPad switch
        {
            "NOTSET" => window.Pads ?? new int[2 * rank],
            "VALID" => new int[2 * rank],
            _ => null,
        };
        if (pads is null && StaticSpatial(xShape, rank) is { } input && kernel is not null)
        {
            pads = new int[2 * rank];
            for (int d = 0; d < rank; d++)
                (pads[d], pads[rank + d]) = WindowAttributes.SamePadding(input[d], kernel[d], strides[d], dilations[d], window.AutoPad == "SAME_UPPER");
        }
        var attrs = new List<OnnxAttribute>
        {
            OnnxAttribute.FromInts("strides", [.. strides.Select(v => (long)v)]),
            OnnxAttribute.FromInts("dilations", [.. dilations.Select(v => (long)v)]),
            group,
        };
        if (kernel is not null) attrs.Add(OnnxAttribute.FromInts("kernel_shape", [.. kernel.Select(v => (long)v)]));
        if (pads is not null) attrs.Add(OnnxAttribute.FromInts("pads", [.. pads.Select(v => (long)v)]));
        else attrs.Add(OnnxAttribute.FromString("auto_pad", window.AutoPad));
        return [.. attrs];
    }

    /// <summary>
    /// ConvGrad in standard ops (opset 13+): dX = ConvTranspose(dY, W) with the begin pads, cropped or zero-padded to X's
    /// shape; dW per group = Conv of X and dY with batch and channel axes exchanged (strides and dilations swapped),
    /// transposed back and cropped to W's shape; dB = ReduceSum over all axes but channels.
    /// </summary>
    private static string[] ConvGradStandard(GraphEmitter e, Node node)
    {
        string dy = node.Inputs[0], x = node.Inputs[1], w = node.Inputs[2];
        var strides = node.GetInts("strides");
        var dilations = node.GetInts("dilations");
        var pads = node.GetInts("pads");
        long group = node.GetInt("group", 1);
        if (strides is null || dilations is null || pads is null || pads.Length != 2 * strides.Length || node.HasAttribute("auto_pad"))
            throw new UnsupportedOperatorException(node.OpType, node.Domain, 1, node.Name, "the standard-op form needs explicit strides, dilations and pads (no SAME padding of unknown shapes)");
        int rank = strides.Length;
        long[] perm = [1, 0, .. Enumerable.Range(2, rank).Select(v => (long)v)];

        string ct = e.Op("ConvTranspose", [dy, w], OnnxAttribute.FromInts("strides", strides), OnnxAttribute.FromInts("dilations", dilations),
            OnnxAttribute.FromInt("group", group), OnnxAttribute.FromInts("pads", [.. pads[..rank], .. new long[rank]]));
        string dx = FitToShapeOf(e, ct, x);

        string[] xs = group == 1 ? [x] : e.Ops("Split", [x], (int)group, "", OnnxAttribute.FromInt("axis", 1));
        string[] dys = group == 1 ? [dy] : e.Ops("Split", [dy], (int)group, "", OnnxAttribute.FromInt("axis", 1));
        var parts = new string[group];
        for (int g = 0; g < group; g++)
        {
            string c = e.Op("Conv", [e.Transpose(xs[g], perm), e.Transpose(dys[g], perm)], OnnxAttribute.FromInts("strides", dilations),
                OnnxAttribute.FromInts("dilations", strides), OnnxAttribute.FromInts("pads", pads));
            parts[g] = e.Transpose(c, perm);
        }
        string full = group == 1 ? parts[0] : e.Op("Concat", parts, OnnxAttribute.FromInt("axis", 0));
        string dw = e.Op("Slice", full, ZerosOfRank(e, w), e.Shape(w));

        string db = e.ReduceSum(dy, [0, .. Enumerable.Range(2, rank).Select(v => (long)v)], keepdims: false);
        return [dx, dw, db];
    }

    /// <summary>An int64 vector of zeros, one per axis of <paramref name="like"/>.</summary>
    private static string ZerosOfRank(GraphEmitter e, string like) =>
        e.Op("ConstantOfShape", [e.Shape(e.Shape(like))], OnnxAttribute.FromTensor("value", OnnxTensor.FromArray(new long[] { 0 }, 1)));

    /// <summary><paramref name="t"/> cropped at the end of each axis to <paramref name="like"/>'s shape, then zero-padded at the end up to it.</summary>
    internal static string FitToShapeOf(GraphEmitter e, string t, string like)
    {
        string zeros = ZerosOfRank(e, like);
        string cropped = e.Op("Slice", t, zeros, e.Shape(like));
        string pads = e.Op("Concat", [zeros, e.Sub(e.Shape(like), e.Shape(cropped))], OnnxAttribute.FromInt("axis", 0));
        return e.Op("Pad", cropped, pads);
    }
}
