using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>Identity and other pass-through ops.</summary>
internal static partial class MiscOps
{
    public static void Register(List<OpDefinition> ops)
    {
        // Identity: y = x. VJP: dx = dy.
        ops.Add(new OpDefinition("Identity", _ => new LambdaKernel(ctx => ctx.SetOutput(0, ctx.RequiredInput(0))))
        {
            Vjp = ctx => [ctx.OutputGrad(0)],
        });
    }
}
