using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Ops that create tensors from attributes or shapes: Constant (this file); ConstantOfShape, EyeLike, Range, OneHot
/// (<c>TensorCreationOps.Shapes.cs</c>); Trilu (<c>TensorCreationOps.Trilu.cs</c>), which masks a matrix band.
/// </summary>
internal static partial class TensorCreationOps
{
    public static void Register(List<OpDefinition> ops)
    {
        // Constant (ONNX spec "Constant", versions 1, 9, 11, 12, 13): exactly one of value, value_float, value_floats,
        // value_int, value_ints, value_string, value_strings (sparse_value is not supported).
        ops.Add(new OpDefinition("Constant", op =>
        {
            var value = ConstantValue(op);
            return new LambdaKernel(ctx => ctx.SetOutput(0, value));
        })
        {
            InferTypes = op => [ConstantType(op.Node)],
            NonDifferentiable = true,
        });

        RegisterFromShapes(ops);
        RegisterTrilu(ops);
    }

    internal static DataType ConstantType(Node node)
    {
        foreach (var a in node.Attributes)
        {
            switch (a.Name)
            {
                case "value": return a.Tensor?.ElementType ?? DataType.Undefined;
                case "value_float": case "value_floats": return DataType.Float;
                case "value_int": case "value_ints": return DataType.Int64;
                case "value_string": case "value_strings": return DataType.String;
            }
        }
        return DataType.Undefined;
    }

    private static OnnxTensor ConstantValue(OpContext op)
    {
        var node = op.Node;
        if (node.Attributes.Count != 1) throw op.Unsupported($"Constant needs exactly one value attribute, found {node.Attributes.Count}");
        var a = node.Attributes[0];
        return a.Name switch
        {
            "value" => a.Tensor ?? throw op.Unsupported("'value' has no tensor"),
            "value_float" => OnnxTensor.Scalar(a.Float),
            "value_floats" => OnnxTensor.FromArray(a.Floats, a.Floats.Length),
            "value_int" => OnnxTensor.Scalar(a.Int),
            "value_ints" => OnnxTensor.FromArray(a.Ints, a.Ints.Length),
            "value_string" => new OnnxTensor(DataType.String, [], new[] { a.String }, 1),
            "value_strings" => new OnnxTensor(DataType.String, [a.Strings.Length], a.Strings, a.Strings.Length),
            _ => throw op.Unsupported($"attribute '{a.Name}' is not supported"),
        };
    }
}
