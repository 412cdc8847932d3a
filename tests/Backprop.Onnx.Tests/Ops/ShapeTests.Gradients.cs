using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>Finite-difference checks (float64) of the shape ops' gradient rules, per attribute and opset form.</summary>
public sealed partial class ShapeTests
{
    private static OnnxTensor R(int seed, params int[] shape) => GradCheck.Random(seed, shape);

    [TestMethod]
    [DataRow(13)]
    [DataRow(14)]
    public void Grad_ReshapeFlattenSqueezeUnsqueeze(int opset)
    {
        GradCheck.Op("Reshape", [R(1, 2, 3, 4), TestTensors.Int64s(4, 0, -1)], opset: opset);
        GradCheck.Op("Flatten", [R(2, 2, 3, 4)], [OnnxAttribute.FromInt("axis", 2)], opset: opset);
        GradCheck.Op("Flatten", [R(3, 2, 3)], [OnnxAttribute.FromInt("axis", 0)], opset: opset);
        GradCheck.Op("Squeeze", [R(4, 1, 3, 1, 5), TestTensors.Int64s(-2)], opset: opset);
        GradCheck.Op("Unsqueeze", [R(5, 3, 5), TestTensors.Int64s(0, 3)], opset: opset);
        GradCheck.Op("Squeeze", [R(6, 1, 3, 1)], [OnnxAttribute.FromInts("axes", 0)], opset: 11);
        GradCheck.Op("Unsqueeze", [R(7, 3)], [OnnxAttribute.FromInts("axes", -1)], opset: 11);
    }

    [TestMethod]
    [DataRow(new[] { 3, 1 }, new long[] { 2, 1, 4 })]
    [DataRow(new[] { 1, 4 }, new long[] { 3, 1 })]
    [DataRow(new[] { 2, 1, 3 }, new long[] { 2, 5, 3 })]
    [DataRow(new[] { 5 }, new long[] { 5 })]
    public void Grad_Expand_SumsOverBroadcastDimensions(int[] shape, long[] target) =>
        GradCheck.Op("Expand", [R(11, shape), TestTensors.Int64s(target)]);

    [TestMethod]
    [DataRow(new[] { 2, 3, 4 }, new long[] { 1, 2, 0 })]
    [DataRow(new[] { 2, 3, 1, 5 }, new long[] { 3, 0, 2, 1 })]
    [DataRow(new[] { 3, 4 }, null)]
    public void Grad_Transpose(int[] shape, long[]? perm) =>
        GradCheck.Op("Transpose", [R(12, shape)], perm is null ? [] : [OnnxAttribute.FromInts("perm", perm)]);

    [TestMethod]
    [DataRow("DCR", 17)]
    [DataRow("CRD", 17)]
    [DataRow("DCR", 9)]
    public void Grad_DepthToSpace_And_SpaceToDepth(string mode, int opset)
    {
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("blocksize", 2) };
        if (opset >= 11) attrs.Add(OnnxAttribute.FromString("mode", mode));
        GradCheck.Op("DepthToSpace", [R(13, 2, 8, 3, 1)], [.. attrs], opset: opset);
        GradCheck.Op("SpaceToDepth", [R(14, 1, 3, 4, 2)], [OnnxAttribute.FromInt("blocksize", 2)], opset: opset);
    }

    [TestMethod]
    [DataRow(0, 13)]
    [DataRow(1, 13)]
    [DataRow(-1, 11)]
    public void Grad_Concat_SplitsTheCotangent(int axis, int opset)
    {
        // Inputs of lengths 2, 0 and 3 along axis (2 elsewhere).
        int[] Shape(int n) => axis == 0 ? [n, 2] : [2, n];
        GradCheck.Op("Concat", [R(15, Shape(2)), R(16, Shape(0)), R(17, Shape(3))], [OnnxAttribute.FromInt("axis", axis)], opset: opset);
    }

    [TestMethod]
    [DataRow(13, true)]
    [DataRow(11, true)]
    [DataRow(13, false)]
    public void Grad_Split_ConcatenatesTheCotangents(int opset, bool explicitSizes)
    {
        var x = R(18, 2, 7);
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("axis", 1) };
        OnnxTensor?[] inputs = [x];
        int outputs = 3;
        if (explicitSizes && opset >= 13) inputs = [x, TestTensors.Int64s(2, 0, 5)];
        if (explicitSizes && opset < 13) attrs.Add(OnnxAttribute.FromInts("split", 2, 0, 5));
        if (!explicitSizes) { inputs = [R(18, 2, 6)]; }
        GradCheck.Op("Split", inputs, [.. attrs], outputCount: outputs, opset: opset);

        // An output that is not a graph output takes zeros.
        var model = SingleNode.Model("Split", inputs, outputs, opset, "", [.. attrs]);
        model.Graph.Outputs.RemoveAt(1);
        var feeds = inputs.Select((t, i) => (t, i)).Where(p => p.t is not null).ToDictionary(p => $"x{p.i}", p => p.t!);
        var options = new GradientCheckOptions { Seed = 3 };
        options.Wrt.Add("x0");
        var report = GradientCheck.Run(model, feeds, options);
        Assert.IsTrue(report.Passed, report.ToString());
    }

    [TestMethod]
    [DataRow(13, new long[] { 1, 0 }, new long[] { 3, 17 }, null, null)]
    [DataRow(13, new long[] { -1, 20 }, new long[] { -1000, 1 }, new long[] { 0, 1 }, new long[] { -1, -3 })]
    [DataRow(13, new long[] { 2 }, new long[] { 100 }, new long[] { -1 }, new long[] { 5 })]
    [DataRow(9, new long[] { 0, -4 }, new long[] { 1, 100 }, new long[] { 0, 1 }, null)]
    public void Grad_Slice_ScattersBack(int opset, long[] starts, long[] ends, long[]? axes, long[]? steps)
    {
        var x = R(19, 4, 17);
        if (opset < 10)
            GradCheck.Op("Slice", [x], [OnnxAttribute.FromInts("starts", starts), OnnxAttribute.FromInts("ends", ends), OnnxAttribute.FromInts("axes", axes!)], opset: opset);
        else
            GradCheck.Op("Slice", [x, TestTensors.Int64s(starts), TestTensors.Int64s(ends), axes is null ? null : TestTensors.Int64s(axes), steps is null ? null : TestTensors.Int64s(steps)], opset: opset);
    }

    [TestMethod]
    [DataRow(new[] { 2, 3 }, new long[] { 2, 3 })]
    [DataRow(new[] { 1, 5 }, new long[] { 3, 1 })]
    [DataRow(new[] { 4 }, new long[] { 1 })]
    public void Grad_Tile_SumsOverTiles(int[] shape, long[] repeats) =>
        GradCheck.Op("Tile", [R(20, shape), TestTensors.Int64s(repeats)]);

    [TestMethod]
    [DataRow("constant", 13, new long[] { 1, 2, 0, 3 })]
    [DataRow("constant", 2, new long[] { 0, -1, 2, 1 })]
    [DataRow("reflect", 13, new long[] { 2, 3, 1, 2 })]
    [DataRow("reflect", 2, new long[] { 0, 5, 0, 4 })]
    [DataRow("edge", 13, new long[] { 3, 1, 1, 4 })]
    [DataRow("edge", 11, new long[] { -1, 2, 2, -2 })]
    public void Grad_Pad_AddsCopiesBack(string mode, int opset, long[] pads)
    {
        var x = R(21, 3, 4);
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromString("mode", mode) };
        OnnxTensor?[] inputs = [x, TestTensors.Int64s(pads), OnnxTensor.Scalar(0.5)];
        if (opset < 11) { attrs.Add(OnnxAttribute.FromInts("pads", pads)); inputs = [x]; }
        GradCheck.Op("Pad", inputs, [.. attrs], opset: opset, wrt: [0]);
    }

    /// <remarks>
    /// <c>ort: false</c> rows skip the ONNX Runtime comparison: ORT sizes align_corners by the integer output length
    /// where the ONNX reference (and its backend test data, which we follow) uses length·scale; and ORT runs cubic
    /// Resize only on 2-D/4-D inputs, while the exported ResizeGrad resizes a basis with one more axis.
    /// </remarks>
    [TestMethod]
    [DataRow("linear", "half_pixel", 0, new float[] { 1, 1, 2, 1.5f }, true)]
    [DataRow("linear", "align_corners", 0, new float[] { 1, 1, 0.5f, 2 }, true)]
    [DataRow("linear", "align_corners", 0, new float[] { 1, 1, 0.6f, 2 }, false)]
    [DataRow("linear", "pytorch_half_pixel", 0, new float[] { 1, 1, 0.5f, 1 }, true)]
    [DataRow("cubic", "half_pixel", 1, new float[] { 1, 1, 1.7f, 0.8f }, false)]
    [DataRow("cubic", "asymmetric", 0, new float[] { 1, 1, 2, 3 }, false)]
    [DataRow("nearest", "asymmetric", 0, new float[] { 1, 1, 2, 0.5f }, true)]
    [DataRow("nearest", "half_pixel", 0, new float[] { 1, 1, 1.5f, 3 }, true)]
    public void Grad_Resize_IsTheAdjointInterpolation(string mode, string coord, int excludeOutside, float[] scales, bool ort) =>
        GradCheck.Op("Resize", [R(22, 1, 2, 4, 3), null, OnnxTensor.FromArray(scales, 4)],
            [OnnxAttribute.FromString("mode", mode), OnnxAttribute.FromString("coordinate_transformation_mode", coord), OnnxAttribute.FromInt("exclude_outside", excludeOutside)],
            opset: 13, onnxRuntime: ort);

    [TestMethod]
    [DataRow(1)]
    [DataRow(0)]
    public void Grad_Resize_Cubic_StandardFormMatchesOurKernel(int excludeOutside)
    {
        // ResizeGrad's standard-op form, inlined and run on our executor, against our ResizeGrad kernel (the cubic
        // cases ONNX Runtime cannot run).
        var x = R(24, 1, 2, 4, 3);
        var scales = OnnxTensor.FromArray(new float[] { 1, 1, 1.7f, 0.8f }, 4);
        var model = SingleNode.Model("Resize", [x, null, scales], 1, 13, "",
            [OnnxAttribute.FromString("mode", "cubic"), OnnxAttribute.FromInt("exclude_outside", excludeOutside)]);
        var options = new GradientOptions { SeedInputs = true };
        options.Wrt.Add("x0");
        var gm = ReverseMode.Differentiate(model, options);
        var g = gm.Model.Graph;
        var node = g.Nodes.Single(n => n.OpType == "ResizeGrad");
        var names = new HashSet<string>(g.Nodes.SelectMany(n => n.Outputs.Append(n.Name)).Concat(g.Inputs.Select(v => v.Name)));
        var body = new List<Node>();
        var emitter = new GraphEmitter(body, 13, [], names) { Prefix = "standard" };
        string standard = OpRegistry.Find(node, 1).StandardOps!(emitter, node)[0];
        g.Nodes.AddRange(body);
        g.Outputs.Add(new ValueInfo(standard, DataType.Undefined, null));
        var feeds = new Dictionary<string, OnnxTensor> { ["x0"] = x, ["x2"] = scales, [gm.Seeds["y0"]] = R(25, 1, 2, 6, 2) };
        var outs = Backprop.Onnx.Runtime.ExecutionPlan.Compile(gm.Model).Run(feeds);
        TestTensors.AssertClose(TestTensors.Values(outs[gm.Gradients["x0"]]), outs[standard], 1e-12);
    }

    [TestMethod]
    public void Grad_Resize_OtherForms()
    {
        var x = R(23, 1, 1, 4, 4);
        // tf_crop_and_resize with sizes: points outside the roi take extrapolation_value and no gradient.
        GradCheck.Op("Resize", [x, OnnxTensor.FromArray(new float[] { 0, 0, -0.2f, 0.4f, 1, 1, 0.6f, 1.3f }, 8), null, TestTensors.Int64s(1, 1, 3, 5)],
            [OnnxAttribute.FromString("mode", "linear"), OnnxAttribute.FromString("coordinate_transformation_mode", "tf_crop_and_resize"), OnnxAttribute.FromFloat("extrapolation_value", 7)], opset: 13);
        GradCheck.Op("Resize", [x, OnnxTensor.FromArray(new float[] { 1, 1, 2, 1.5f }, 4)], [OnnxAttribute.FromString("mode", "linear")], opset: 10);
        GradCheck.Op("Upsample", [x, OnnxTensor.FromArray(new float[] { 1, 1, 2, 3 }, 4)], [OnnxAttribute.FromString("mode", "nearest")], opset: 9);
        GradCheck.Op("Upsample", [x], [OnnxAttribute.FromString("mode", "linear"), OnnxAttribute.FromFloats("scales", 1, 1, 2, 2)], opset: 7);
    }
}
