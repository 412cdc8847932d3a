using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

internal static partial class ShapeOps
{
    private static readonly string[] CoordinateModes = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"];
    private static readonly string[] NearestModes = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"];

    private static void RegisterResize(List<OpDefinition> ops)
    {
        // Resize (ONNX spec "Resize", versions 10, 11, 13): nearest, linear (n-linear) and cubic (Keys, cubic_coeff_a)
        // interpolation, each separable over the axes, following the spec's reference implementation
        // (onnx/backend/test/case/node/resize.py). Version 10 takes (X, scales) and, as the ONNX version converter
        // maps it to 11, transforms coordinates "asymmetric" with nearest_mode "floor". From 11: (X, roi, scales,
        // sizes), coordinate_transformation_mode, nearest_mode, exclude_outside, extrapolation_value.
        ops.Add(new OpDefinition("Resize", op => ResizeKernel(op, op.OpsetVersion >= 11 ? ResizeForm.Resize11 : ResizeForm.Resize10), minVersion: 10)
        {
            DifferentiableInputs = [0],
            // Resize is linear in X: dX = Aᵀ dY for its interpolation matrix A (PyTorch derivatives.yaml
            // upsample_{nearest,linear,bilinear,bicubic}*_backward), by our ResizeGrad kernel; roi, scales and sizes
            // take no gradient.
            Vjp = ctx => ResizeVjp(ctx, ctx.OpsetVersion >= 11 ? ResizeForm.Resize11 : ResizeForm.Resize10),
        });

        // Upsample (ONNX spec "Upsample", versions 7 and 9; deprecated at 10): nearest or linear with asymmetric
        // coordinates and floor rounding, scales an attribute in 7 and an input in 9 (as Resize-10).
        ops.Add(new OpDefinition("Upsample", op => ResizeKernel(op, op.OpsetVersion >= 9 ? ResizeForm.Upsample9 : ResizeForm.Upsample7), minVersion: 7, maxVersion: 9)
        {
            DifferentiableInputs = [0],
            // As Resize: dX = Aᵀ dY (PyTorch upsample_nearest*_backward / upsample_*linear*_backward).
            Vjp = ctx => ResizeVjp(ctx, ctx.OpsetVersion >= 9 ? ResizeForm.Upsample9 : ResizeForm.Upsample7),
        });
    }

    private enum ResizeForm { Upsample7, Upsample9, Resize10, Resize11 }

    /// <summary>The parsed attributes of a Resize or Upsample node (version defaults applied).</summary>
    internal sealed record ResizeAttributes(string Mode, string CoordinateMode, string NearestMode, double CubicA, bool ExcludeOutside, double ExtrapolationValue);

    private static ResizeAttributes ParseResize(OpContext op, ResizeForm form)
    {
        var node = op.Node;
        DataMovement.RequireMovable(op, 0);
        string mode = node.GetString("mode", "nearest");
        if (form is ResizeForm.Upsample7 or ResizeForm.Upsample9 && mode == "bilinear") mode = "linear";
        bool v11 = form == ResizeForm.Resize11;
        if (mode is not ("nearest" or "linear" or "cubic") || (!v11 && mode == "cubic"))
            throw op.Unsupported($"mode '{mode}' (implemented: nearest, linear{(v11 ? ", cubic" : "")})");
        string coord = v11 ? node.GetString("coordinate_transformation_mode", "half_pixel") : "asymmetric";
        if (Array.IndexOf(CoordinateModes, coord) < 0) throw op.Unsupported($"coordinate_transformation_mode '{coord}' (implemented: {string.Join(", ", CoordinateModes)})");
        string nearest = v11 ? node.GetString("nearest_mode", "round_prefer_floor") : "floor";
        if (Array.IndexOf(NearestModes, nearest) < 0) throw op.Unsupported($"nearest_mode '{nearest}' (implemented: {string.Join(", ", NearestModes)})");
        foreach (var later in new[] { "antialias", "axes", "keep_aspect_ratio_policy" })
            if (node.HasAttribute(later)) throw op.Unsupported($"attribute '{later}' (opset 18) is not implemented");
        var type = op.InputType(0);
        if (mode != "nearest" && type != DataType.Undefined && type is not (DataType.Float or DataType.Double or DataType.Float16))
            throw op.Unsupported($"{mode} interpolation of {DataTypes.OnnxName(type)} (implemented for float, double, float16)");
        return new ResizeAttributes(mode, coord, nearest, node.GetFloat("cubic_coeff_a", -0.75f),
            node.GetInt("exclude_outside", 0) != 0, node.GetFloat("extrapolation_value", 0f));
    }

    private static string?[] ResizeVjp(GradientContext ctx, ResizeForm form)
    {
        var node = ctx.Node;
        var e = ctx.Emit;
        bool v11 = form == ResizeForm.Resize11;
        string mode = node.GetString("mode", "nearest");
        if (mode == "bilinear") mode = "linear";
        var attrs = new List<OnnxAttribute>
        {
            OnnxAttribute.FromString("mode", mode),
            OnnxAttribute.FromString("coordinate_transformation_mode", v11 ? node.GetString("coordinate_transformation_mode", "half_pixel") : "asymmetric"),
            OnnxAttribute.FromString("nearest_mode", v11 ? node.GetString("nearest_mode", "round_prefer_floor") : "floor"),
            OnnxAttribute.FromFloat("cubic_coeff_a", node.GetFloat("cubic_coeff_a", -0.75f)),
            OnnxAttribute.FromInt("exclude_outside", node.GetInt("exclude_outside", 0)),
        };
        string[] args = form switch
        {
            ResizeForm.Resize11 => [InputOrAbsent(ctx, 1), InputOrAbsent(ctx, 2), InputOrAbsent(ctx, 3)],
            ResizeForm.Upsample7 => ["", e.Constant(OnnxTensor.FromArray(node.GetFloats("scales")!, node.GetFloats("scales")!.Length)), ""],
            _ => ["", ctx.Input(1), ""],
        };
        return [e.Custom("ResizeGrad", [ctx.OutputGrad(0)!, e.Shape(ctx.Input(0)), .. args], [.. attrs])];
    }

    private static Kernel ResizeKernel(OpContext op, ResizeForm form)
    {
        var attrs = ParseResize(op, form);
        float[]? attrScales = null;
        if (form == ResizeForm.Upsample7) attrScales = op.Node.GetFloats("scales") ?? throw op.Unsupported("Upsample-7 needs the 'scales' attribute");
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            var (scales, sizes, roi) = form == ResizeForm.Resize11 ? ResizeArgs(ctx, 1) : (attrScales?.Select(s => (double)s).ToArray() ?? Doubles(ctx.Input(1)), null, null);
            ctx.SetOutput(0, Resize(ctx, x, attrs, scales, sizes, roi));
        });
    }

    /// <summary>roi, scales and sizes of the Resize-11 input layout starting at <paramref name="first"/> (empty tensors count as absent).</summary>
    private static (double[]? Scales, long[]? Sizes, double[]? Roi) ResizeArgs(KernelContext ctx, int first) =>
        (Doubles(ctx.Input(first + 1)), ctx.Input(first + 2) is { ElementCount: > 0 } z ? OpArgs.Int64s(ctx, z, "sizes") : null, Doubles(ctx.Input(first)));

    private static double[]? Doubles(OnnxTensor? t) =>
        t is { ElementCount: > 0 } ? [.. Enumerable.Range(0, (int)t.ElementCount).Select(i => t.GetDouble(i))] : null;

    /// <summary>Resizes <paramref name="x"/> by <paramref name="scales"/> or to <paramref name="sizes"/> (exactly one given).</summary>
    internal static OnnxTensor Resize(KernelContext ctx, OnnxTensor x, ResizeAttributes a, double[]? scales, long[]? sizes, double[]? roi)
    {
        var (outShape, taps) = PlanResize(ctx, x.Dims, a, scales, sizes, roi);
        var result = ctx.Allocate(x.ElementType, outShape);
        if (result.ElementCount == 0) return result;
        if (a.Mode == "nearest") ResizeNearest(x, result, taps, a.ExtrapolationValue);
        else ResizeInterpolate(x, result, taps, a.ExtrapolationValue);
        return result;
    }

    /// <summary>The output shape and the taps of every axis (the spec's output size rule and coordinate transformation).</summary>
    internal static (int[] Shape, AxisTaps[] Taps) PlanResize(KernelContext ctx, int[] inShape, ResizeAttributes a, double[]? scales, long[]? sizes, double[]? roi)
    {
        int rank = inShape.Length;
        if ((scales is null) == (sizes is null)) throw ctx.Invalid("exactly one of scales and sizes must be given");
        if ((scales?.Length ?? sizes!.Length) != rank) throw ctx.Invalid($"scales/sizes must have {rank} values");
        bool crop = a.CoordinateMode == "tf_crop_and_resize";
        if (crop && (roi is null || roi.Length != 2 * rank)) throw ctx.Invalid($"tf_crop_and_resize needs an roi of {2 * rank} values");
        var outShape = new int[rank];
        var taps = new AxisTaps[rank];
        for (int d = 0; d < rank; d++)
        {
            int inLen = inShape[d];
            double scale, resized;
            double roiStart = crop ? roi![d] : 0, roiEnd = crop ? roi![d + rank] : 1;
            if (sizes is not null)
            {
                if (sizes[d] < 0 || sizes[d] > int.MaxValue) throw ctx.Invalid($"invalid size {sizes[d]}");
                outShape[d] = (int)sizes[d];
                scale = inLen == 0 ? 1 : (double)sizes[d] / inLen;
                resized = sizes[d];
            }
            else
            {
                scale = scales![d];
                if (!(scale > 0)) throw ctx.Invalid($"scale {scale} of axis {d} is not positive");
                resized = inLen * scale;
                double size = Math.Floor(inLen * (roiEnd - roiStart) * scale);
                if (!(size >= 0 && size <= int.MaxValue)) throw ctx.Invalid($"scale {scale} gives axis {d} an invalid size");
                outShape[d] = (int)size;
            }
            if (inLen == 0 && outShape[d] > 0) throw ctx.Invalid($"cannot resize the empty axis {d} to {outShape[d]}");
            taps[d] = AxisTaps.Build(a, inLen, outShape[d], scale, resized, roiStart, roiEnd);
        }
        return (outShape, taps);
    }

    private static void ResizeNearest(OnnxTensor x, OnnxTensor result, AxisTaps[] taps, double extrapolation)
    {
        var tables = new int[]?[taps.Length];
        bool outside = false;
        for (int d = 0; d < taps.Length; d++)
        {
            var t = taps[d];
            var table = new int[t.Count];
            for (int j = 0; j < t.Count; j++)
            {
                if (t.Outside[j]) { table[j] = -1; outside = true; continue; }
                // One tap per coordinate: the chosen neighbour carries weight 1.
                int best = 0;
                for (int k = 1; k < t.Width; k++) if (t.Weight[j * t.Width + k] > t.Weight[j * t.Width + best]) best = k;
                table[j] = t.Index[j * t.Width + best];
            }
            tables[d] = table;
        }
        if (outside && OpArgs.IsNumeric(x.ElementType)) DataMovement.Fill(result, OpArgs.ScalarOf(x.ElementType, extrapolation));
        DataMovement.GatherStrided(x, result, result.Dims, 0, Broadcast.ContiguousStrides(x.Dims), tables);
    }

    /// <summary>Linear or cubic: one weighted pass per axis in float64, then extrapolated points, then the output type.</summary>
    private static void ResizeInterpolate(OnnxTensor x, OnnxTensor result, AxisTaps[] taps, double extrapolation)
    {
        var cur = new double[x.ElementCount];
        for (long i = 0; i < cur.Length; i++) cur[i] = x.GetDouble(i);
        var shape = x.Dims.ToArray();
        for (int d = 0; d < shape.Length; d++)
        {
            var t = taps[d];
            if (t.IsIdentity) continue;
            long outer = OpArgs.Product(shape, 0, d);
            int inner = (int)OpArgs.Product(shape, d + 1, shape.Length);
            int inLen = shape[d];
            var next = new double[outer * t.Count * inner];
            for (long o = 0; o < outer; o++)
            {
                for (int j = 0; j < t.Count; j++)
                {
                    var dst = next.AsSpan((int)((o * t.Count + j) * inner), inner);
                    for (int k = 0; k < t.Width; k++)
                    {
                        double w = t.Weight[j * t.Width + k];
                        if (w == 0) continue;
                        var src = cur.AsSpan((int)((o * inLen + t.Index[j * t.Width + k]) * inner), inner);
                        System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(src, w, dst, dst);
                    }
                }
            }
            cur = next;
            shape[d] = t.Count;
        }
        if (taps.Any(t => t.Outside.Any(o => o))) SetOutside(cur, shape, taps, extrapolation);
        switch (result.ElementType)
        {
            case DataType.Double: cur.CopyTo(result.AsSpan<double>()); break;
            case DataType.Float: System.Numerics.Tensors.TensorPrimitives.ConvertTruncating<double, float>(cur, result.AsSpan<float>()); break;
            case DataType.Float16:
            {
                var h = result.AsSpan<Half>();
                for (int i = 0; i < cur.Length; i++) h[i] = (Half)cur[i];
                break;
            }
            default: throw new InvalidOperationException($"no interpolation for {DataTypes.OnnxName(result.ElementType)}");
        }
    }

    private static void SetOutside(double[] values, int[] shape, AxisTaps[] taps, double extrapolation)
    {
        int rank = shape.Length;
        var coord = new int[rank];
        for (long i = 0; i < values.Length; i++)
        {
            for (int d = 0; d < rank; d++)
            {
                if (taps[d].Outside[coord[d]]) { values[i] = extrapolation; break; }
            }
            for (int d = rank - 1; d >= 0; d--)
            {
                if (++coord[d] < shape[d]) break;
                coord[d] = 0;
            }
        }
    }

    /// <summary>
    /// For each output coordinate of one axis: <see cref="Width"/> source indices (clamped to the axis, as the
    /// reference's edge padding does) and their weights, and whether the point lies outside the input
    /// (tf_crop_and_resize: extrapolation_value).
    /// </summary>
    internal sealed class AxisTaps
    {
        private AxisTaps(int count, int width)
        {
            Count = count;
            Width = width;
            Index = new int[count * width];
            Weight = new double[count * width];
            Outside = new bool[count];
        }

        public int Count { get; }
        public int Width { get; }
        public int[] Index { get; }
        public double[] Weight { get; }
        public bool[] Outside { get; }

        public bool IsIdentity { get; private set; }

        public static AxisTaps Build(ResizeAttributes a, int inLen, int outLen, double scale, double resized, double roiStart, double roiEnd)
        {
            int width = a.Mode switch { "cubic" => 4, _ => 2 };
            var t = new AxisTaps(outLen, width);
            bool identity = inLen == outLen;
            for (int j = 0; j < outLen; j++)
            {
                double xo = Original(a.CoordinateMode, j, scale, inLen, resized, roiStart, roiEnd);
                if (a.CoordinateMode == "tf_crop_and_resize" && (xo < 0 || xo > inLen - 1))
                {
                    t.Outside[j] = true;
                    identity = false;
                    continue;
                }
                double fl = Math.Floor(xo);
                int xi = (int)fl;
                double r = xo - fl;
                Span<double> w = t.Weight.AsSpan(j * width, width);
                int first = a.Mode == "cubic" ? xi - 1 : xi;
                switch (a.Mode)
                {
                    case "nearest":
                        bool up = r != 0 && a.NearestMode switch
                        {
                            "round_prefer_floor" => r > 0.5,
                            "round_prefer_ceil" => r >= 0.5,
                            "floor" => false,
                            _ => true,
                        };
                        w[up ? 1 : 0] = 1;
                        break;
                    case "linear":
                        w[0] = 1 - r;
                        w[1] = r;
                        break;
                    default:
                        CubicCoefficients(r, a.CubicA, w);
                        break;
                }
                bool exclude = a.ExcludeOutside && a.Mode != "nearest";
                double sum = 0;
                for (int k = 0; k < width; k++)
                {
                    int idx = first + k;
                    if (exclude && (idx < 0 || idx >= inLen)) w[k] = 0;
                    sum += w[k];
                    t.Index[j * width + k] = Math.Clamp(idx, 0, inLen - 1);
                }
                if (exclude && sum != 0) for (int k = 0; k < width; k++) w[k] /= sum;
                // Identity when every weight sits on input index j and they add up to exactly 1.
                double onSelf = 0;
                for (int k = 0; k < width; k++)
                {
                    if (w[k] == 0) continue;
                    if (t.Index[j * width + k] != j) identity = false;
                    onSelf += w[k];
                }
                if (onSelf != 1) identity = false;
            }
            t.IsIdentity = identity;
            return t;
        }

        /// <summary>The input coordinate of output coordinate <paramref name="j"/> (ONNX spec, coordinate_transformation_mode).</summary>
        private static double Original(string mode, int j, double scale, int inLen, double resized, double roiStart, double roiEnd) => mode switch
        {
            "half_pixel" => (j + 0.5) / scale - 0.5,
            "pytorch_half_pixel" => resized > 1 ? (j + 0.5) / scale - 0.5 : -0.5,
            "align_corners" => resized == 1 ? 0 : j * (inLen - 1) / (resized - 1),
            "asymmetric" => j / scale,
            "tf_half_pixel_for_nn" => (j + 0.5) / scale,
            _ => (resized == 1 ? (roiEnd - roiStart) * (inLen - 1) / 2 : j * (roiEnd - roiStart) * (inLen - 1) / (resized - 1)) + roiStart * (inLen - 1),
        };

        /// <summary>Keys cubic convolution weights of the taps at offsets -1, 0, 1, 2 from floor(x), for fraction <paramref name="r"/>.</summary>
        private static void CubicCoefficients(double r, double A, Span<double> w)
        {
            w[0] = ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A;
            w[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
            w[2] = ((A + 2) * (1 - r) - (A + 3)) * (1 - r) * (1 - r) + 1;
            w[3] = ((A * (2 - r) - 5 * A) * (2 - r) + 8 * A) * (2 - r) - 4 * A;
        }
    }
}
