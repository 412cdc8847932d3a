using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// ReluGrad(dY, Y) → dX of our domain: dX = dY where Y &gt; 0, else 0 (PyTorch threshold_backward(grad, result, 0)), in
/// one vectorized pass instead of Greater(Y, 0) and Where(mask, dY, 0) with a bool tensor between them. Relu'(0) = 0.
/// Where Y is NaN the comparison is false, so dX = 0 (as the Greater/Where pair, and its standard-op form, give;
/// PyTorch would pass dY through); a NaN or infinite dY where Y &gt; 0 passes through. The result is bit-identical to
/// the Greater/Where pair: dY's own bits or +0.
/// </summary>
internal static partial class ActivationOps
{
    private static OpDefinition ReluGradDefinition() => new("ReluGrad", _ => new ReluGradKernel(), OpRegistry.BackpropDomain)
    {
        InferTypes = op => [op.InputType(0)],
        StandardOps = ReluGradStandard,
    };

    /// <summary>Relu's VJP: one ReluGrad node (Y, not X: Y &gt; 0 exactly where X &gt; 0, and Y is what the backward pass keeps).</summary>
    private static string?[] ReluVjp(GradientContext ctx) => [ctx.Emit.Custom("ReluGrad", [G(ctx), Y(ctx)], ReductionOps.DTypeAttribute(ctx, Y(ctx)))];

    /// <summary>ReluGrad in standard ops: Where(Greater(Y, 0), dY, 0) (before opset 9, dY · Cast(Greater(Y, 0))).</summary>
    private static string[] ReluGradStandard(GraphEmitter e, Node node)
    {
        string dy = node.Inputs[0], y = node.Inputs[1];
        var type = ReductionOps.DType(node);
        string zero = e.Scalar(0, type);
        string positive = e.Greater(y, zero);
        return [e.OpsetVersion >= 9 ? e.Where(positive, dy, zero) : e.Mul(dy, e.Cast(positive, type))];
    }

    /// <summary>The ReluGrad kernel: float, double and float16; dY and Y of one shape.</summary>
    private sealed class ReluGradKernel : Kernel
    {
        public override void Run(KernelContext ctx)
        {
            var dy = ctx.RequiredInput(0);
            var y = ctx.RequiredInput(1);
            if (dy.ElementType != y.ElementType) throw ctx.Invalid($"dY and Y have different element types ({DataTypes.OnnxName(dy.ElementType)}, {DataTypes.OnnxName(y.ElementType)})");
            if (!dy.Dims.AsSpan().SequenceEqual(y.Dims)) throw ctx.Invalid($"dY of shape [{string.Join(',', dy.Dims)}] and Y of shape [{string.Join(',', y.Dims)}] differ");
            if (y.ElementType is not (DataType.Float or DataType.Double or DataType.Float16)) throw ctx.Invalid($"element type {DataTypes.OnnxName(y.ElementType)} is not supported");
            var dx = ctx.AllocateUninitialized(y.ElementType, y.Dims);
            var job = t_job ??= new ReluGradJob();
            (job.Dy, job.Y, job.Dx) = (dy.Buffer, y.Buffer, dx.Buffer);
            try
            {
                Parallelism.For(checked((int)y.ElementCount), ctx.Options.Threads, job.Body);
            }
            finally
            {
                (job.Dy, job.Y, job.Dx) = (null, null, null);
            }
            ctx.SetOutput(0, dx);
        }

        [ThreadStatic] private static ReluGradJob? t_job;
    }

    /// <summary>One call's buffers, in an object reused per thread so the parallel loop's delegate is made once.</summary>
    private sealed class ReluGradJob
    {
        public Array? Dy, Y, Dx;
        public readonly Action<int, int> Body;

        public ReluGradJob() => Body = Run;

        private void Run(int start, int end)
        {
            switch (Dx)
            {
                case float[] dx: ReluGrad<float>(((float[])Dy!).AsSpan(start, end - start), ((float[])Y!).AsSpan(start, end - start), dx.AsSpan(start, end - start)); break;
                case double[] dx: ReluGrad<double>(((double[])Dy!).AsSpan(start, end - start), ((double[])Y!).AsSpan(start, end - start), dx.AsSpan(start, end - start)); break;
                case Half[] dx:
                    var dy = (Half[])Dy!;
                    var y = (Half[])Y!;
                    for (int i = start; i < end; i++) dx[i] = y[i] > Half.Zero ? dy[i] : Half.Zero;
                    break;
            }
        }
    }

    /// <summary>dx[i] = y[i] &gt; 0 ? dy[i] : +0, as dY's bits masked by the comparison.</summary>
    internal static void ReluGrad<T>(ReadOnlySpan<T> dy, ReadOnlySpan<T> y, Span<T> dx) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = dx.Length, i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported && n >= Vector256<T>.Count)
        {
            ref T dyRef = ref MemoryMarshal.GetReference(dy), yRef = ref MemoryMarshal.GetReference(y), dxRef = ref MemoryMarshal.GetReference(dx);
            int last = n - Vector256<T>.Count;
            // Whole vectors; the last one ends at n (it may recompute a few elements, writing the same values).
            for (; ; i += Vector256<T>.Count)
            {
                if (i > last) i = last;
                var mask = Vector256.GreaterThan(Vector256.LoadUnsafe(ref yRef, (nuint)i), Vector256<T>.Zero);
                (Vector256.LoadUnsafe(ref dyRef, (nuint)i) & mask).StoreUnsafe(ref dxRef, (nuint)i);
                if (i == last) return;
            }
        }
        for (; i < n; i++) dx[i] = y[i] > T.Zero ? dy[i] : T.Zero;
    }
}
