using System.Numerics;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Gradient rules of Softmax and LogSoftmax, each through one dedicated kernel of <see cref="OpRegistry.BackpropDomain"/>
/// that reads the forward output Y (not X) line by line.
/// </summary>
internal static partial class SoftmaxOps
{
    /// <summary>
    /// Softmax VJP: dX = Y ⊙ (dY − Σ_axis(dY ⊙ Y)) (PyTorch derivatives.yaml: _softmax → _softmax_backward_data).
    /// Standard-op body: <see cref="GradStandard"/>.
    /// </summary>
    private static readonly VjpRule SoftmaxVjp = ctx => [ctx.NeedsGrad(0) ? Grad(ctx, "SoftmaxGrad") : null];

    /// <summary>
    /// LogSoftmax VJP: dX = dY − exp(Y) ⊙ Σ_axis dY (PyTorch derivatives.yaml: _log_softmax → _log_softmax_backward_data).
    /// Standard-op body: <see cref="GradStandard"/>.
    /// </summary>
    private static readonly VjpRule LogSoftmaxVjp = ctx => [ctx.NeedsGrad(0) ? Grad(ctx, "LogSoftmaxGrad") : null];

    private static string Grad(GradientContext ctx, string opType)
    {
        bool coerce2D = ctx.OpsetVersion < 13;
        long axis = ctx.Node.GetInt("axis", coerce2D ? 1 : -1);
        return ctx.Emit.Custom(opType, [ctx.OutputGrad(0)!, ctx.Output(0)], OnnxAttribute.FromInt("axis", axis), OnnxAttribute.FromInt("coerce_2d", coerce2D ? 1 : 0));
    }

    /// <summary>SoftmaxGrad(dY, Y) and LogSoftmaxGrad(dY, Y) with attributes axis and coerce_2d (pre-opset-13 semantics).</summary>
    private static IEnumerable<OpDefinition> GradDefinitions() =>
    [
        new("SoftmaxGrad", op => CreateGrad(op, log: false), OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(0)],
            StandardOps = (e, node) => [GradStandard(e, node, log: false)],
        },
        new("LogSoftmaxGrad", op => CreateGrad(op, log: true), OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(0)],
            StandardOps = (e, node) => [GradStandard(e, node, log: true)],
        },
    ];

    /// <summary>
    /// The standard-op form (opset 13+): Softmax dX = Y·(dY − ReduceSum(dY·Y, [axis], keepdims)); LogSoftmax
    /// dX = dY − Exp(Y)·ReduceSum(dY, [axis], keepdims). With coerce_2d both work on Flatten(·, axis) and reshape back.
    /// </summary>
    private static string GradStandard(GraphEmitter e, Node node, bool log)
    {
        string dy = node.Inputs[0], y = node.Inputs[1];
        long axis = node.GetInt("axis", -1);
        bool coerce2D = node.GetInt("coerce_2d", 0) != 0;
        if (coerce2D)
        {
            dy = e.Op("Flatten", [dy], OnnxAttribute.FromInt("axis", axis));
            y = e.Op("Flatten", [y], OnnxAttribute.FromInt("axis", axis));
        }
        long[] along = [coerce2D ? 1 : axis];
        string dx = log
            ? e.Sub(dy, e.Mul(e.Exp(y), e.ReduceSum(dy, along, true)))
            : e.Mul(y, e.Sub(dy, e.ReduceSum(e.Mul(dy, y), along, true)));
        return coerce2D ? e.Reshape(dx, e.Shape(node.Inputs[1])) : dx;
    }

    private static Kernel CreateGrad(OpContext op, bool log)
    {
        long axis = op.Node.GetInt("axis", -1);
        bool coerce2D = op.Node.GetInt("coerce_2d", 0) != 0;
        op.RequireInputType(0, DataType.Float, DataType.Double);
        return new LambdaKernel(ctx =>
        {
            var dy = ctx.RequiredInput(0);
            var y = ctx.RequiredInput(1);
            if (!dy.Shape.SequenceEqual(y.Shape) || dy.ElementType != y.ElementType) throw ctx.Invalid($"dY {dy} does not match Y {y}");
            var (outer, n, inner) = Layout(ctx, y.Shape, axis, coerce2D);
            var dx = ctx.AllocateUninitialized(y.ElementType, y.Shape); // every line is written
            int threads = ReductionOps.Parallelism(ctx, y.ElementCount);
            if (y.ElementType == DataType.Float) GradLines((float[])dy.Buffer, (float[])y.Buffer, (float[])dx.Buffer, outer, n, inner, log, threads);
            else if (y.ElementType == DataType.Double) GradLines((double[])dy.Buffer, (double[])y.Buffer, (double[])dx.Buffer, outer, n, inner, log, threads);
            else throw ctx.Invalid($"no gradient for {DataTypes.OnnxName(y.ElementType)}");
            ctx.SetOutput(0, dx);
        });
    }

    internal static void GradLines<T>(T[] dy, T[] y, T[] dx, int outer, int n, int inner, bool log, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (n == 0) return;
        if (inner == 1)
        {
            RowJob<T>.Run(y, dy, dx, outer, n, log ? Kind.LogSoftmax : Kind.Softmax, threads);
            return;
        }
        ReductionOps.ForChunks(outer * inner, threads, (from, to) =>
        {
            bool strided = inner != 1;
            var g = strided ? new T[n] : null;
            var o = strided ? new T[n] : null;
            var r = strided ? new T[n] : null;
            for (int l = from; l < to; l++)
            {
                int start = l / inner * n * inner + l % inner;
                if (strided)
                {
                    ReductionOps.Gather<T>(dy, start, inner, g);
                    ReductionOps.Gather<T>(y, start, inner, o);
                }
                ReadOnlySpan<T> gl = strided ? g : dy.AsSpan(start, n), yl = strided ? o : y.AsSpan(start, n);
                Span<T> rl = strided ? r : dx.AsSpan(start, n);
                if (log)
                {
                    T s = ReductionOps.Sum(gl);
                    TP.Exp(yl, rl);
                    TP.Multiply(rl, s, rl);
                    TP.Subtract(gl, rl, rl);
                }
                else
                {
                    T s = ReductionOps.Dot(gl, yl);
                    TP.Subtract(gl, s, rl);
                    TP.Multiply(rl, yl, rl);
                }
                if (strided) ReductionOps.Scatter<T>(r, dx, start, inner);
            }
        });
    }
}
