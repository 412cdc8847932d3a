using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The standard-op forms (<see cref="OpDefinition.StandardOps"/>) of the shape and gather gradient kernels, used when a
/// gradient graph is exported. Types are unknown when they are emitted, so constants of the gradient's element type
/// come from the data (the sum and the product of an empty slice are 0 and 1). The gather adjoints all follow one
/// pattern: run the forward op on the flat indices of the input (an int64 "iota" of its shape), which tells where each
/// gradient element goes, then scatter-add the gradient there.
/// </summary>
internal static partial class ShapeOps
{
    /// <summary>0 and 1 of the element type of <paramref name="like"/>: ReduceSum and ReduceProd of an empty slice of it.</summary>
    internal static (string Zero, string One) TypedZeroOne(GraphEmitter e, string like)
    {
        string empty = e.Op("Slice", [e.Reshape(like, e.Int64s(-1)), e.Int64s(0), e.Int64s(0)]);
        return (e.ReduceSum(empty, null, false), e.Reduce("ReduceProd", empty, null, false));
    }

    /// <summary>0, 1, …, n-1 as int64 and n (a scalar) for the element count of the int64 <paramref name="shape"/>.</summary>
    internal static string Slots(GraphEmitter e, string shape, out string count)
    {
        count = e.Reduce("ReduceProd", shape, null, false);
        return e.Op("Range", e.Scalar(0, DataType.Int64), count, e.Scalar(1, DataType.Int64));
    }

    /// <summary>
    /// A [count] tensor whose slot k holds the sum of the <paramref name="values"/> whose <paramref name="index"/> is k:
    /// ScatterElements (reduction add from opset 16; none when indices are known to be distinct), else a sum over a
    /// one-hot comparison.
    /// </summary>
    internal static string ScatterAddFlat(GraphEmitter e, string index, string values, string count, string zero, bool distinct)
    {
        var axis = OnnxAttribute.FromInt("axis", 0);
        string zeros = e.Expand(zero, e.Reshape(count, e.Int64s(1)));
        if (distinct) return e.Op("ScatterElements", [zeros, index, values], axis);
        if (e.OpsetVersion >= 16) return e.Op("ScatterElements", [zeros, index, values], axis, OnnxAttribute.FromString("reduction", "add"));
        string slots = e.Op("Range", e.Scalar(0, DataType.Int64), count, e.Scalar(1, DataType.Int64));
        string hit = e.Equal(e.Unsqueeze(index, 1), e.Unsqueeze(slots, 0));
        return e.ReduceSum(e.Where(hit, e.Unsqueeze(values, 1), zero), [0], false);
    }

    /// <summary>
    /// The adjoint of a data-moving op in standard ops: <paramref name="forwardOnIota"/> applies the forward op to the
    /// flat indices of an input of <paramref name="shape"/>; dY is added at the indices it yields.
    /// </summary>
    internal static string MovedAdjoint(GraphEmitter e, string dy, string shape, Func<string, string> forwardOnIota, bool distinct)
    {
        string iota = e.Reshape(Slots(e, shape, out string count), shape);
        string index = e.Reshape(forwardOnIota(iota), e.Int64s(-1));
        var (zero, _) = TypedZeroOne(e, dy);
        return e.Reshape(ScatterAddFlat(e, index, e.Reshape(dy, e.Int64s(-1)), count, zero, distinct), shape);
    }

    /// <summary>The node's inputs from <paramref name="first"/> on, without trailing absent ones.</summary>
    private static string[] TrimmedInputs(Node node, int first, int last)
    {
        var list = Enumerable.Range(first, last - first + 1).Select(node.InputOrEmpty).ToList();
        while (list.Count > 0 && list[^1].Length == 0) list.RemoveAt(list.Count - 1);
        return [.. list];
    }

    private static UnsupportedOperatorException NoStandardForm(Node node, GraphEmitter e, string what) =>
        new(node.OpType, node.Domain, e.OpsetVersion, node.Name, $"no standard-op form: {what}");

    /// <summary>
    /// SliceGrad: per window, Slice of the iota gives the (distinct) flat indices the slice read and dY is scattered
    /// there; several windows are the Sum of their scatters (so overlapping windows add, on every opset).
    /// </summary>
    private static string[] SliceGradStandard(GraphEmitter e, Node node)
    {
        int windows = SliceGradWindowCount(node.Inputs.Count) ?? throw NoStandardForm(node, e, $"{node.Inputs.Count} inputs");
        var parts = new string[windows];
        for (int j = 0; j < windows; j++)
        {
            string[] args = TrimmedInputs(node, 5 * j + 2, 5 * j + 5);
            parts[j] = MovedAdjoint(e, node.Inputs[SliceGradDyIndex(j)], node.Inputs[1], iota => e.Op("Slice", [iota, .. args]), distinct: true);
        }
        return [windows == 1 ? parts[0] : e.Op("Sum", parts)];
    }

    /// <summary>PadGrad: constant mode is Pad(dY, -pads) (crop what was padded, zero-pad what was cropped); edge and reflect scatter-add through Pad of the iota.</summary>
    private static string[] PadGradStandard(GraphEmitter e, Node node)
    {
        string mode = node.GetString("mode", "constant");
        string axes = node.InputOrEmpty(3);
        if (axes.Length > 0 && e.OpsetVersion < 18) throw NoStandardForm(node, e, "Pad takes axes from opset 18");
        string[] Tail(string pads) => axes.Length > 0 ? [pads, "", axes] : [pads];
        var modeAttr = OnnxAttribute.FromString("mode", mode);
        if (mode == "constant") return [e.Op("Pad", [node.Inputs[0], .. Tail(e.Neg(node.Inputs[2]))], modeAttr)];
        return [MovedAdjoint(e, node.Inputs[0], node.Inputs[1], iota => e.Op("Pad", [iota, .. Tail(node.Inputs[2])], modeAttr), distinct: false)];
    }

    /// <summary>
    /// ResizeGrad: Resize applied to the identity basis (one image per input element, stacked on a new leading axis)
    /// gives the rows of the interpolation matrix A; dX = A · dY, reshaped. Extrapolated points contribute nothing.
    /// </summary>
    private static string[] ResizeGradStandard(GraphEmitter e, Node node)
    {
        if (e.OpsetVersion < 11) throw NoStandardForm(node, e, "Resize takes roi and sizes from opset 11");
        string dy = node.Inputs[0], shape = node.Inputs[1];
        string roi = node.InputOrEmpty(2), scales = node.InputOrEmpty(3), sizes = node.InputOrEmpty(4);
        var axis0 = OnnxAttribute.FromInt("axis", 0);
        string slots = Slots(e, shape, out string n);
        string nVec = e.Reshape(n, e.Int64s(1));
        var (zero, one) = TypedZeroOne(e, dy);
        string eye = e.Where(e.Equal(e.Unsqueeze(slots, 1), e.Unsqueeze(slots, 0)), one, zero);
        string basis = e.Reshape(eye, e.Op("Concat", [nVec, shape], axis0));

        string newRoi = "", newScales = "", newSizes = "";
        if (roi.Length > 0 && node.GetString("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize")
        {
            var halves = e.Ops("Split", [roi], 2, "", axis0);
            var (r0, r1) = TypedZeroOne(e, roi);
            newRoi = e.Op("Concat", [e.Reshape(r0, e.Int64s(1)), halves[0], e.Reshape(r1, e.Int64s(1)), halves[1]], axis0);
        }
        if (sizes.Length > 0) newSizes = e.Op("Concat", [nVec, sizes], axis0);
        else
        {
            var (_, s1) = TypedZeroOne(e, scales);
            newScales = e.Op("Concat", [e.Reshape(s1, e.Int64s(1)), scales], axis0);
        }
        if (e.OpsetVersion < 13)
        {
            // Resize-11 requires roi and scales as inputs (empty when unused).
            if (newRoi.Length == 0) newRoi = e.Constant(OnnxTensor.FromArray(Array.Empty<float>(), 0));
            if (newScales.Length == 0) newScales = e.Constant(OnnxTensor.FromArray(Array.Empty<float>(), 0));
        }
        var attrs = node.Attributes.Where(a => a.Name != "extrapolation_value").Append(OnnxAttribute.FromFloat("extrapolation_value", 0)).ToArray();
        var inputs = new List<string> { basis, newRoi, newScales, newSizes };
        while (inputs[^1].Length == 0) inputs.RemoveAt(inputs.Count - 1);
        string rows = e.Reshape(e.Op("Resize", [.. inputs], attrs), e.Op("Concat", [nVec, e.Int64s(-1)], axis0));
        return [e.Reshape(e.MatMul(rows, e.Reshape(dy, e.Int64s(-1, 1))), shape)];
    }
}
