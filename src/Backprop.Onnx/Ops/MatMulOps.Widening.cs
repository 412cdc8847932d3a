using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// float16 and bfloat16 support for the linear-algebra, convolution and pooling kernels: inputs are widened to float,
/// the float kernel runs, and its float outputs are rounded back (round to nearest even), as ONNX Runtime's CPU
/// provider does for these types.
/// </summary>
internal static partial class MatMulOps
{
    /// <summary>True for the 16-bit float types that run through a widened float kernel.</summary>
    internal static bool IsHalfType(DataType t) => t is DataType.Float16 or DataType.BFloat16;

    /// <summary>
    /// The kernel <paramref name="factory"/> builds for float inputs, wrapped so float16/bfloat16 inputs are widened to
    /// float and float outputs narrowed back to the type of input 0.
    /// </summary>
    internal static Kernel Widened(OpContext op, KernelFactory factory)
    {
        var types = op.InputTypes.Select(t => IsHalfType(t) ? DataType.Float : t).ToArray();
        var inner = factory(new OpContext(op.Node, op.OpsetVersion, types));
        return new LambdaKernel(ctx =>
        {
            var half = ctx.RequiredInput(0).ElementType;
            int ni = ctx.InputCount, no = ctx.OutputCount;
            var values = new OnnxTensor?[ni + no];
            var inputs = new int[ni];
            var outputs = new int[no];
            for (int i = 0; i < ni; i++)
            {
                var x = ctx.Input(i);
                values[i] = x is null ? null : IsHalfType(x.ElementType) ? ToFloat(x) : x;
                inputs[i] = x is null ? -1 : i;
            }
            for (int i = 0; i < no; i++) outputs[i] = ctx.IsOutputUsed(i) ? ni + i : -1;
            var wide = new KernelContext(ctx.Options, ctx.Random);
            wide.Bind(ctx.Node, values, inputs, outputs);
            inner.Run(wide);
            for (int i = 0; i < no; i++)
            {
                if (values[ni + i] is not { } y) continue;
                ctx.SetOutput(i, y.ElementType == DataType.Float ? FromFloat(y, half) : y);
            }
        });
    }

    /// <summary>A float copy of a float16 or bfloat16 tensor.</summary>
    internal static OnnxTensor ToFloat(OnnxTensor x)
    {
        var result = new float[x.ElementCount];
        if (x.ElementType == DataType.Float16)
        {
            var src = x.AsSpan<Half>();
            for (int i = 0; i < result.Length; i++) result[i] = (float)src[i];
        }
        else
        {
            var src = x.AsSpan<ushort>();
            for (int i = 0; i < result.Length; i++) result[i] = BitConverter.Int32BitsToSingle(src[i] << 16);
        }
        return OnnxTensor.FromArray(result, x.Dims);
    }

    /// <summary>A float tensor rounded to float16 or bfloat16 (round to nearest even; NaN stays NaN).</summary>
    internal static OnnxTensor FromFloat(OnnxTensor x, DataType type)
    {
        var src = x.AsSpan<float>();
        if (type == DataType.Float16)
        {
            var h = new Half[src.Length];
            for (int i = 0; i < h.Length; i++) h[i] = (Half)src[i];
            return OnnxTensor.FromArray(h, x.Dims);
        }
        var b = new ushort[src.Length];
        for (int i = 0; i < b.Length; i++)
        {
            uint bits = BitConverter.SingleToUInt32Bits(src[i]);
            b[i] = float.IsNaN(src[i]) ? (ushort)((bits >> 16) | 0x40) : (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
        }
        return OnnxTensor.FromBuffer(DataType.BFloat16, b, x.Dims);
    }
}
