using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Tp = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Onnx.Ops;

/// <summary>The LRN operator.</summary>
internal static partial class PoolingOps
{
    /// <summary>
    /// LRN (ONNX spec "LRN", versions 1, 13): y = x · (bias + alpha/size · Σ x[c′]²)^(−beta), the sum over channels
    /// c′ ∈ [c − ⌊(size − 1)/2⌋, c + ⌈(size − 1)/2⌉] ∩ [0, C).
    /// </summary>
    private static Kernel CreateLrn(OpContext op)
    {
        if (MatMulOps.IsHalfType(op.InputType(0))) return MatMulOps.Widened(op, CreateLrn);
        op.RequireInputType(0, DataType.Float, DataType.Double);
        long size = op.Node.GetInt("size", 0);
        if (size < 1) throw op.Unsupported($"size = {size} (a positive size is required)");
        float alpha = op.Node.GetFloat("alpha", 1e-4f), beta = op.Node.GetFloat("beta", 0.75f), bias = op.Node.GetFloat("bias", 1f);
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            if (x.Rank < 2) throw ctx.Invalid($"input of rank {x.Rank}; expected (N, C, …)");
            var y = ctx.Allocate(x.ElementType, x.Dims);
            if (x.ElementType == DataType.Float) Lrn((float[])x.Buffer, (float[])y.Buffer, x.Dims, (int)size, alpha, beta, bias);
            else Lrn((double[])x.Buffer, (double[])y.Buffer, x.Dims, (int)size, alpha, beta, bias);
            ctx.SetOutput(0, y);
        });
    }

    private static void Lrn<T>(T[] x, T[] y, int[] dims, int size, float alpha, float beta, float bias) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = dims[0], c = dims[1], plane = dims[2..].Aggregate(1, (p, d) => p * d);
        int below = (size - 1) / 2, above = size - 1 - below;
        T scale = T.CreateChecked(alpha) / T.CreateChecked(size), b = T.CreateChecked(bias), negBeta = -T.CreateChecked(beta);
        var sum = new T[plane];
        for (int img = 0; img < n; img++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                Array.Clear(sum);
                for (int k = Math.Max(0, ch - below); k <= Math.Min(c - 1, ch + above); k++)
                {
                    var xk = x.AsSpan((img * c + k) * plane, plane);
                    Tp.MultiplyAdd<T>(xk, xk, sum, sum);
                }
                Tp.Multiply<T>(sum, scale, sum);
                Tp.Add<T>(sum, b, sum);
                Tp.Pow<T>(sum, negBeta, sum);
                var o = (img * c + ch) * plane;
                Tp.Multiply<T>(x.AsSpan(o, plane), sum, y.AsSpan(o, plane));
            }
        }
    }
}
