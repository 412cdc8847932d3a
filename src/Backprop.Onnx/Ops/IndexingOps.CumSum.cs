using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

internal static partial class IndexingOps
{
    private static void RegisterCumSum(List<OpDefinition> ops)
    {
        // CumSum (ONNX spec "CumSum", versions 11, 14): running sums along the axis given as a scalar (or one-element)
        // int32/int64 input; exclusive=1 leaves out the element itself (the first sum is 0), reverse=1 sums from the
        // end. Accumulates in the element type, as the reference (numpy.cumsum) does.
        ops.Add(new OpDefinition("CumSum", op =>
        {
            NumericDispatch.Require(op, 0, "CumSum");
            bool exclusive = op.Node.GetInt("exclusive", 0) != 0;
            bool reverse = op.Node.GetInt("reverse", 0) != 0;
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                int a = OpArgs.Axis(ctx, OpArgs.ScalarInt64(ctx, ctx.RequiredInput(1), "axis"), x.Rank);
                if (!NumericDispatch.Supports(x.ElementType)) throw ctx.Invalid($"CumSum of {DataTypes.OnnxName(x.ElementType)}");
                var result = ctx.Allocate(x.ElementType, x.Dims);
                var action = new CumSumAction(x, result, (int)OpArgs.Product(x.Dims, 0, a), x.Dims[a], (int)OpArgs.Product(x.Dims, a + 1, x.Rank), exclusive, reverse);
                NumericDispatch.Run(x.ElementType, ref action);
                ctx.SetOutput(0, result);
            });
        }, minVersion: 11)
        {
            DifferentiableInputs = [0],
            // dX = CumSum(dY) in the opposite direction with the same exclusivity: each y_i sums the x_j before
            // (after) i, so x_j feeds the y_i after (before) j (PyTorch derivatives.yaml cumsum: cumsum_backward,
            // a reversed cumsum).
            Vjp = ctx => [ctx.Emit.Op("CumSum", [ctx.OutputGrad(0)!, ctx.Input(1)],
                OnnxAttribute.FromInt("exclusive", ctx.Node.GetInt("exclusive", 0)),
                OnnxAttribute.FromInt("reverse", ctx.Node.GetInt("reverse", 0) != 0 ? 0 : 1))],
        });
    }

    private readonly struct CumSumAction(OnnxTensor x, OnnxTensor result, int outer, int n, int inner, bool exclusive, bool reverse) : NumericDispatch.IAction
    {
        public void Run<T>() where T : unmanaged, INumber<T>
        {
            var src = x.AsSpan<T>();
            var dst = result.AsSpan<T>();
            for (int o = 0; o < outer; o++)
            {
                for (int r = 0; r < inner; r++)
                {
                    int baseIndex = o * n * inner + r;
                    T sum = T.Zero;
                    for (int s = 0; s < n; s++)
                    {
                        int i = baseIndex + (reverse ? n - 1 - s : s) * inner;
                        if (exclusive) { dst[i] = sum; sum += src[i]; }
                        else { sum += src[i]; dst[i] = sum; }
                    }
                }
            }
        }
    }
}
