using Backprop.Onnx.IR;

namespace Backprop.Onnx.Autodiff;

/// <summary>
/// Converts a float32 model to float64 (for finite-difference checks and <c>--dtype float64</c>): float initializers,
/// inputs, outputs and value_info become double, and so do the float types named by attributes (Cast's <c>to</c>,
/// Constant and ConstantOfShape values, EyeLike/Random* <c>dtype</c>). Other types are unchanged.
/// </summary>
public static class Precision
{
    /// <summary>A float64 copy of <paramref name="model"/> (the original is not modified).</summary>
    public static OnnxModel ToDouble(OnnxModel model)
    {
        var result = ModelCopy.WithGraph(model, Convert(model.Graph));
        result.Functions.Clear();
        return result;
    }

    /// <summary>A float tensor as double; other tensors unchanged.</summary>
    public static OnnxTensor ToDouble(OnnxTensor t)
    {
        if (t.ElementType != DataType.Float) return t;
        var src = t.AsSpan<float>();
        var dst = new double[src.Length];
        for (int i = 0; i < src.Length; i++) dst[i] = src[i];
        return OnnxTensor.FromArray(dst, t.Dims);
    }

    /// <summary>A double tensor as float (rounded to nearest); other tensors unchanged.</summary>
    public static OnnxTensor ToSingle(OnnxTensor t)
    {
        if (t.ElementType != DataType.Double) return t;
        var src = t.AsSpan<double>();
        var dst = new float[src.Length];
        for (int i = 0; i < src.Length; i++) dst[i] = (float)src[i];
        return OnnxTensor.FromArray(dst, t.Dims);
    }

    private static Graph Convert(Graph g)
    {
        var r = new Graph { Name = g.Name, DocString = g.DocString };
        foreach (var (k, t) in g.Initializers) r.Initializers.Add(k, ToDouble(t));
        r.Inputs.AddRange(g.Inputs.Select(Convert));
        r.Outputs.AddRange(g.Outputs.Select(Convert));
        r.ValueInfos.AddRange(g.ValueInfos.Select(Convert));
        foreach (var n in g.Nodes)
        {
            var c = new Node(n.OpType, n.Inputs, n.Outputs, n.Name, n.Domain) { DocString = n.DocString, Overload = n.Overload };
            foreach (var a in n.Attributes) c.Attributes.Add(Convert(n, a));
            r.Nodes.Add(c);
        }
        return r;
    }

    private static ValueInfo Convert(ValueInfo v) =>
        v.ElementType == DataType.Float ? new ValueInfo(v.Name, DataType.Double, v.Shape) { DocString = v.DocString, Denotation = v.Denotation } : v;

    private static OnnxAttribute Convert(Node n, OnnxAttribute a)
    {
        bool isDtype = (n.OpType == "Cast" && a.Name == "to") || (a.Name == "dtype" && n.OpType is "EyeLike" or "RandomNormal" or "RandomUniform" or "RandomNormalLike" or "RandomUniformLike" or "Multinomial");
        if (isDtype && a.Type == AttributeType.Int && a.Int == (long)DataType.Float) return OnnxAttribute.FromInt(a.Name, (long)DataType.Double);
        if (n.OpType == "Constant")
        {
            if (a.Name == "value_float") return OnnxAttribute.FromTensor("value", OnnxTensor.Scalar((double)a.Float));
            if (a.Name == "value_floats") return OnnxAttribute.FromTensor("value", OnnxTensor.FromArray(a.Floats.Select(f => (double)f).ToArray(), a.Floats.Length));
        }
        if (a.Type == AttributeType.Tensor && a.Tensor is { ElementType: DataType.Float } t && n.OpType is "Constant" or "ConstantOfShape")
            return OnnxAttribute.FromTensor(a.Name, ToDouble(t));
        if (a.Type == AttributeType.Graph && a.Graph is not null)
            return new OnnxAttribute(a.Name, AttributeType.Graph) { Graph = Convert(a.Graph) };
        return a;
    }
}
