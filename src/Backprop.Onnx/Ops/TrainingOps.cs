using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The optimizer ops of <c>ai.onnx.preview.training</c> (Adagrad, Momentum, Adam): inputs R (learning rate, scalar),
/// T (update count, int64 scalar), then the n tensors X, their gradients G, and the optimizer state; outputs the new X
/// and the new state. The update math is <see cref="OptimizerMath"/>, shared with the library's optimizers.
/// </summary>
internal static class TrainingOps
{
    public static void Register(List<OpDefinition> ops)
    {
        ops.Add(new OpDefinition("Adagrad", op =>
        {
            var n = op.Node;
            double decay = n.GetFloat("decay_factor", 0), eps = n.GetFloat("epsilon", 1e-6f), norm = n.GetFloat("norm_coefficient", 0);
            return Optimizer(op, 1, (ctx, r, t, x, g, state, outX, outState) =>
            {
                switch (x.ElementType)
                {
                    case DataType.Float: OptimizerMath.Adagrad(r, t, decay, eps, norm, x.AsSpan<float>(), g.AsSpan<float>(), state[0].AsSpan<float>(), outX.AsSpan<float>(), outState[0].AsSpan<float>()); break;
                    case DataType.Double: OptimizerMath.Adagrad(r, t, decay, eps, norm, x.AsSpan<double>(), g.AsSpan<double>(), state[0].AsSpan<double>(), outX.AsSpan<double>(), outState[0].AsSpan<double>()); break;
                }
            });
        }, OpRegistry.TrainingDomain) { NonDifferentiable = true, InferTypes = OptimizerTypes });

        ops.Add(new OpDefinition("Momentum", op =>
        {
            var n = op.Node;
            double alpha = n.GetFloat("alpha", float.NaN), beta = n.GetFloat("beta", float.NaN), norm = n.GetFloat("norm_coefficient", float.NaN);
            string mode = n.GetString("mode", "");
            if (double.IsNaN(alpha) || double.IsNaN(beta) || double.IsNaN(norm)) throw op.Unsupported("alpha, beta and norm_coefficient are required");
            if (mode is not ("standard" or "nesterov")) throw op.Unsupported($"mode '{mode}' (expected 'standard' or 'nesterov')");
            bool nesterov = mode == "nesterov";
            return Optimizer(op, 1, (ctx, r, t, x, g, state, outX, outState) =>
            {
                switch (x.ElementType)
                {
                    case DataType.Float: OptimizerMath.Momentum(r, t, alpha, beta, nesterov, norm, x.AsSpan<float>(), g.AsSpan<float>(), state[0].AsSpan<float>(), outX.AsSpan<float>(), outState[0].AsSpan<float>()); break;
                    case DataType.Double: OptimizerMath.Momentum(r, t, alpha, beta, nesterov, norm, x.AsSpan<double>(), g.AsSpan<double>(), state[0].AsSpan<double>(), outX.AsSpan<double>(), outState[0].AsSpan<double>()); break;
                }
            });
        }, OpRegistry.TrainingDomain) { NonDifferentiable = true, InferTypes = OptimizerTypes });

        ops.Add(new OpDefinition("Adam", op =>
        {
            var n = op.Node;
            double alpha = n.GetFloat("alpha", 0.9f), beta = n.GetFloat("beta", 0.999f), eps = n.GetFloat("epsilon", 1e-6f);
            double norm = n.GetFloat("norm_coefficient", 0), post = n.GetFloat("norm_coefficient_post", 0);
            return Optimizer(op, 2, (ctx, r, t, x, g, state, outX, outState) =>
            {
                switch (x.ElementType)
                {
                    case DataType.Float: OptimizerMath.Adam(r, t, alpha, beta, eps, norm, post, x.AsSpan<float>(), g.AsSpan<float>(), state[0].AsSpan<float>(), state[1].AsSpan<float>(), outX.AsSpan<float>(), outState[0].AsSpan<float>(), outState[1].AsSpan<float>()); break;
                    case DataType.Double: OptimizerMath.Adam(r, t, alpha, beta, eps, norm, post, x.AsSpan<double>(), g.AsSpan<double>(), state[0].AsSpan<double>(), state[1].AsSpan<double>(), outX.AsSpan<double>(), outState[0].AsSpan<double>(), outState[1].AsSpan<double>()); break;
                }
            });
        }, OpRegistry.TrainingDomain) { NonDifferentiable = true, InferTypes = OptimizerTypes });
    }

    private static DataType[] OptimizerTypes(OpContext op)
    {
        // Outputs mirror inputs 2.. (X, then the state tensors), skipping the gradients.
        int count = op.Node.Inputs.Count - 2;
        int stateTensors = op.Node.OpType == "Adam" ? 2 : 1;
        int n = count / (2 + stateTensors);
        var types = new List<DataType>();
        for (int i = 0; i < n; i++) types.Add(op.InputType(2 + i));
        for (int s = 0; s < stateTensors; s++) for (int i = 0; i < n; i++) types.Add(op.InputType(2 + (2 + s) * n + i));
        return [.. types];
    }

    private delegate void Update(KernelContext ctx, double r, long t, OnnxTensor x, OnnxTensor g, OnnxTensor[] state, OnnxTensor outX, OnnxTensor[] outState);

    /// <summary>The shared layout: R, T, X1..Xn, G1..Gn, S1_1..S1_n, …; outputs X1'..Xn', S1_1'..S1_n', ….</summary>
    private static Kernel Optimizer(OpContext op, int stateTensors, Update update)
    {
        int inputs = op.Node.Inputs.Count - 2;
        if (inputs <= 0 || inputs % (2 + stateTensors) != 0)
            throw op.Unsupported($"expected R, T and n tensors X, G and {stateTensors} state tensor(s) each; got {op.Node.Inputs.Count} inputs");
        int n = inputs / (2 + stateTensors);
        if (op.Node.Outputs.Count != n * (1 + stateTensors))
            throw op.Unsupported($"expected {n * (1 + stateTensors)} outputs, got {op.Node.Outputs.Count}");
        return new LambdaKernel(ctx =>
        {
            double r = ctx.RequiredInput(0).GetDouble(0);
            long t = (long)ctx.RequiredInput(1).GetDouble(0);
            for (int i = 0; i < n; i++)
            {
                var x = ctx.RequiredInput(2 + i);
                var g = ctx.RequiredInput(2 + n + i);
                var state = new OnnxTensor[stateTensors];
                for (int s = 0; s < stateTensors; s++) state[s] = ctx.RequiredInput(2 + (2 + s) * n + i);
                if (x.ElementType is not (DataType.Float or DataType.Double))
                    throw ctx.Invalid($"X{i} is {DataTypes.OnnxName(x.ElementType)}; supported: float, double");
                foreach (var other in state.Append(g))
                    if (other.ElementType != x.ElementType || !other.Shape.SequenceEqual(x.Shape))
                        throw ctx.Invalid($"tensor {i}: gradient and state must match X's type and shape {x}");
                var outX = ctx.Allocate(x.ElementType, x.Dims);
                var outState = state.Select(s => ctx.Allocate(s.ElementType, s.Dims)).ToArray();
                update(ctx, r, t, x, g, state, outX, outState);
                ctx.SetOutput(i, outX);
                for (int s = 0; s < stateTensors; s++) ctx.SetOutput(n + s * n + i, outState[s]);
            }
        });
    }
}
