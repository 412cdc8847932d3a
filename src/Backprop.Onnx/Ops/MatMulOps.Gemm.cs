using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>The Gemm operator.</summary>
internal static partial class MatMulOps
{
    /// <summary>
    /// Gemm (ONNX spec "Gemm", versions 1–13): Y = alpha·A'·B' + beta·C with A' = transA ? Aᵀ : A (M×K),
    /// B' = transB ? Bᵀ : B (K×N), C unidirectionally broadcastable to (M, N). Versions before 7 carry a
    /// <c>broadcast</c> attribute; broadcasting C is accepted for every version. beta·C is skipped when beta = 0.
    /// </summary>
    private static Kernel CreateGemm(OpContext op)
    {
        if (IsHalfType(op.InputType(0))) return Widened(op, CreateGemm);
        op.RequireInputType(0, MatMulTypes);
        op.RequireInputType(1, MatMulTypes);
        bool transA = op.Node.GetInt("transA", 0) != 0, transB = op.Node.GetInt("transB", 0) != 0;
        float alpha = op.Node.GetFloat("alpha", 1f), beta = op.Node.GetFloat("beta", 1f);
        return new LambdaKernel(ctx =>
        {
            var a = ctx.RequiredInput(0);
            var b = ctx.RequiredInput(1);
            var c = ctx.Input(2);
            if (a.Rank != 2 || b.Rank != 2) throw ctx.Invalid($"Gemm needs 2-D A and B, got [{string.Join(',', a.Dims)}] and [{string.Join(',', b.Dims)}]");
            if (a.ElementType != b.ElementType || (c is not null && c.ElementType != a.ElementType))
                throw ctx.Invalid("Gemm inputs have different element types");
            int m = transA ? a.Dims[1] : a.Dims[0], k = transA ? a.Dims[0] : a.Dims[1];
            int kb = transB ? b.Dims[1] : b.Dims[0], n = transB ? b.Dims[0] : b.Dims[1];
            if (k != kb) throw ctx.Invalid($"Gemm inner dimensions differ: A' is {m}×{k}, B' is {kb}×{n}");
            // Every element of Y is written: by the broadcast copy of C, or by the product with β = 0 (which never
            // reads Y; k = 0 or α = 0 clears it), or by the integer loop. So Y needs no zero fill first.
            var y = ctx.AllocateUninitialized(a.ElementType, [m, n]);
            bool useC = c is not null && beta != 0;
            var cStrides = (Row: 0L, Col: 0L);
            if (useC && !TryBroadcastStrides(c!.Dims, m, n, out cStrides))
                throw ctx.Invalid($"C of shape [{string.Join(',', c.Dims)}] does not broadcast to [{m},{n}]");
            int threads = ctx.Options.Threads;
            switch (a.ElementType)
            {
                case DataType.Float: GemmFloat<float>(a, b, useC ? c : null, cStrides, y, transA, transB, m, n, k, alpha, beta, threads); break;
                case DataType.Double: GemmFloat<double>(a, b, useC ? c : null, cStrides, y, transA, transB, m, n, k, alpha, beta, threads); break;
                case DataType.Int32: GemmInteger<int>(a, b, useC ? c : null, cStrides, y, transA, transB, m, n, k, alpha, beta); break;
                case DataType.Int64: GemmInteger<long>(a, b, useC ? c : null, cStrides, y, transA, transB, m, n, k, alpha, beta); break;
                case DataType.UInt32: GemmInteger<uint>(a, b, useC ? c : null, cStrides, y, transA, transB, m, n, k, alpha, beta); break;
                case DataType.UInt64: GemmInteger<ulong>(a, b, useC ? c : null, cStrides, y, transA, transB, m, n, k, alpha, beta); break;
                default: throw ctx.Invalid($"Gemm does not support {DataTypes.OnnxName(a.ElementType)}");
            }
            ctx.SetOutput(0, y);
        });
    }

    private static void GemmFloat<T>(OnnxTensor a, OnnxTensor b, OnnxTensor? c, (long Row, long Col) cStrides, OnnxTensor y, bool transA, bool transB,
        int m, int n, int k, float alpha, float beta, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var ys = y.AsSpan<T>();
        if (c is not null) FillBroadcast(c.AsSpan<T>(), cStrides, ys, m, n);
        Gemm.Multiply(transA, transB, m, n, k, T.CreateChecked(alpha), a.AsSpan<T>(), transA ? m : k, b.AsSpan<T>(), transB ? k : n,
            c is null ? T.Zero : T.CreateChecked(beta), ys, n, threads);
    }

    private static void GemmInteger<T>(OnnxTensor a, OnnxTensor b, OnnxTensor? c, (long Row, long Col) cStrides, OnnxTensor y, bool transA, bool transB,
        int m, int n, int k, float alpha, float beta) where T : unmanaged, INumber<T>
    {
        var av = a.AsSpan<T>(); var bv = b.AsSpan<T>(); var ys = y.AsSpan<T>();
        if (c is not null) FillBroadcast(c.AsSpan<T>(), cStrides, ys, m, n);
        T al = T.CreateTruncating(alpha), be = T.CreateTruncating(beta);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                T s = T.Zero;
                for (int q = 0; q < k; q++) s += av[transA ? q * m + i : i * k + q] * bv[transB ? j * k + q : q * n + j];
                ys[i * n + j] = al * s + (c is null ? T.Zero : be * ys[i * n + j]);
            }
    }

    /// <summary>
    /// The element strides of C (rank 0, 1 or 2) broadcast unidirectionally to (m, n): 0 along a broadcast axis (ONNX
    /// docs/Broadcasting.md, as Gemm's C). False when C does not broadcast. Allocates nothing.
    /// </summary>
    private static bool TryBroadcastStrides(int[] c, int m, int n, out (long Row, long Col) strides)
    {
        strides = default;
        if (c.Length > 2) return false;
        int cm = c.Length == 2 ? c[0] : 1, cn = c.Length >= 1 ? c[^1] : 1;
        if ((cm != m && cm != 1) || (cn != n && cn != 1)) return false;
        strides = (cm == 1 ? 0 : cn, cn == 1 ? 0 : 1);
        return true;
    }

    /// <summary>dst (m×n) = src broadcast with element strides <paramref name="strides"/> (0 on broadcast axes).</summary>
    private static void FillBroadcast<T>(ReadOnlySpan<T> src, (long Row, long Col) strides, Span<T> dst, int m, int n)
    {
        for (int i = 0; i < m; i++)
        {
            long row = i * strides.Row;
            if (strides.Col == 1) src.Slice((int)row, n).CopyTo(dst.Slice(i * n, n));
            else dst.Slice(i * n, n).Fill(src[(int)row]);
        }
    }
}
