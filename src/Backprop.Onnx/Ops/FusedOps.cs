using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Fused nodes of our domain that <see cref="PlanFusion"/> makes when a plan compiles and that wrap an existing kernel:
/// FusedGemm = Gemm, then its activation applied in place to Gemm's fresh output (ONNX Runtime's com.microsoft FusedGemm
/// is the precedent). The activation runs the same kernel the separate node would (same threads, same bits); the fusion
/// saves its dispatch and its output buffer. FusedConv applies its activation inside the convolution (ConvOps.cs).
/// </summary>
internal static class FusedOps
{
    /// <summary>The op type of <see cref="PlanFusion"/>'s Gemm + activation node.</summary>
    internal const string FusedGemmOp = "FusedGemm";

    public static void Register(List<OpDefinition> ops)
    {
        // FusedGemm (ai.backprop): activation(Gemm(A, B, C)) with Gemm's attributes, activation = "Relu". Never in a model.
        ops.Add(new OpDefinition(FusedGemmOp, CreateFusedGemm, OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(0)],
            NonDifferentiable = true,
        });
    }

    private static Kernel CreateFusedGemm(OpContext op)
    {
        string activation = op.Node.GetString("activation", "");
        if (activation != "Relu") throw op.Unsupported($"activation '{activation}'");
        // The wrapped op: the fused node as the original Gemm node (same name, inputs, outputs and attributes).
        var gemm = new Node("Gemm", op.Node.Inputs, op.Node.Outputs, op.Node.Name);
        gemm.Attributes.AddRange(op.Node.Attributes.Where(a => a.Name != "activation"));
        var inner = OpRegistry.Find(gemm, op.OpsetVersion).Create(new OpContext(gemm, op.OpsetVersion, op.InputTypes));
        var relu = new ReluMap();
        return new LambdaKernel(ctx =>
        {
            inner.Run(ctx);
            // Gemm allocates its output; an output nobody reads is not bound (and needs no activation).
            if (ctx.OutputValue(0) is { } y) UnaryKernel.Apply(ctx, relu, y, y);
        });
    }
}
