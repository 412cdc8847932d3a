using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

internal static partial class TensorCreationOps
{
    private static void RegisterTrilu(List<OpDefinition> ops)
    {
        // Trilu (ONNX spec "Trilu", version 14): keeps the upper (upper=1, the default: column - row >= k) or lower
        // (column - row <= k) triangle of each matrix in the last two dimensions and zeros the rest; k is an optional
        // int64 scalar input (default 0).
        ops.Add(new OpDefinition("Trilu", op =>
        {
            DataMovement.RequireMovable(op, 0);
            bool upper = op.Node.GetInt("upper", 1) != 0;
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                long k = ctx.Input(1) is { } kt ? OpArgs.ScalarInt64(ctx, kt, "k") : 0;
                ctx.SetOutput(0, Trilu(ctx, x, k, upper));
            });
        }, minVersion: 14)
        {
            DifferentiableInputs = [0],
            // Trilu masks its input, so dX = Trilu(dY) with the same k and upper (PyTorch derivatives.yaml tril/triu:
            // grad.tril(k) / grad.triu(k)).
            Vjp = ctx => [ctx.Emit.Op("Trilu", ctx.HasInput(1) ? [ctx.OutputGrad(0)!, ctx.Input(1)] : [ctx.OutputGrad(0)!],
                OnnxAttribute.FromInt("upper", ctx.Node.GetInt("upper", 1)))],
        });
    }

    internal static OnnxTensor Trilu(KernelContext ctx, OnnxTensor x, long k, bool upper)
    {
        if (x.Rank < 2) throw ctx.Invalid($"expects a tensor of rank 2 or more, got shape {OpArgs.Format(x.Dims)}");
        int rows = x.Dims[^2], cols = x.Dims[^1];
        long matrices = OpArgs.Product(x.Dims, 0, x.Rank - 2);
        var result = ctx.Allocate(x.ElementType, x.Dims);
        for (long m = 0; m < matrices; m++)
        {
            for (int i = 0; i < rows; i++)
            {
                // Kept columns of row i: [i + k, cols) for upper, [0, i + k] for lower.
                long from = upper ? Math.Clamp(i + k, 0, cols) : 0;
                long to = upper ? cols : Math.Clamp(i + k + 1, 0, cols);
                long row = (m * rows + i) * cols;
                if (to > from) DataMovement.Copy(x, row + from, result, row + from, to - from);
            }
        }
        return result;
    }
}
