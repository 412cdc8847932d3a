using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// FusedMatMul(A, B[, bias]) of our domain, made by <see cref="PlanFusion"/> when a plan compiles (never in a model, so
/// no gradient rule): numpy.matmul(A, op(B)) (ONNX spec "MatMul") with op(B) = Bᵀ when <c>trans_b</c> = 1 (a folded
/// <c>Transpose(W, perm=[1,0])</c> of a 2-D weight), then Add(·, bias) (ONNX spec "Add", multidirectional broadcast of a
/// bias of shape [1, …, 1, d]) and, with <c>activation</c> = "Relu", max(·, 0) (ONNX spec "Relu"), applied to each row
/// of the product right after the GEMM. ONNX Runtime's com.microsoft FusedMatMul (transposed operands) and
/// FusedGemm (activation epilogue) are the precedents. An optional second output is the product's shape (a folded
/// Shape node of the gradient graph).
/// </summary>
/// <remarks>
/// Bit for bit the unfused nodes: the GEMM is the same call (Gemm packs op(B) the same way whether B is stored
/// transposed or not), y + bias is the same IEEE addition as bias + y, and max(·, 0) is Relu's TensorPrimitives.Max
/// (NaN stays NaN, −0 becomes +0). The alternative of copying the bias into y and running the GEMM with β = 1 was
/// measured on W4's in_proj and linear2 (--threads 1, profiler cpu_ms, three alternating runs): no faster (in_proj
/// about 4% slower), and not bit for bit when the GEMM splits k into blocks, so the epilogue is a pass per row.
/// </remarks>
internal static partial class MatMulOps
{
    /// <summary>The op type of <see cref="PlanFusion"/>'s MatMul (+ transposed B) (+ bias) (+ activation) node.</summary>
    internal const string FusedMatMulOp = "FusedMatMul";

    /// <summary>Below this many output elements the epilogue runs on the calling thread.</summary>
    private const int ParallelEpilogue = 1 << 15;

    /// <summary>The per-thread [k, n] of a transposed 2-D B (so resolving its shape allocates nothing).</summary>
    [ThreadStatic] private static int[]? t_transposedDims;

    /// <summary>The dimensions of op(B) = Bᵀ for a 2-D B stored [n, k]; a per-thread array, valid until the next call on this thread.</summary>
    internal static int[] TransposedDims(KernelContext ctx, OnnxTensor b)
    {
        if (b.Rank != 2) throw ctx.Invalid($"a transposed B must be 2-D, got [{string.Join(',', b.Dims)}]");
        var dims = t_transposedDims ??= new int[2];
        dims[0] = b.Dims[1];
        dims[1] = b.Dims[0];
        return dims;
    }

    private static Kernel CreateFusedMatMul(OpContext op)
    {
        op.RequireInputType(0, DataType.Float, DataType.Double);
        bool transB = op.Node.GetInt("trans_b", 0) != 0;
        string activation = op.Node.GetString("activation", "");
        if (activation is not ("" or "Relu")) throw op.Unsupported($"activation '{activation}'");
        bool relu = activation == "Relu";
        return new LambdaKernel(ctx => FusedMatMul(ctx, transB, relu));
    }

    private static void FusedMatMul(KernelContext ctx, bool transB, bool relu)
    {
        var a = ctx.RequiredInput(0);
        var b = ctx.RequiredInput(1);
        var bias = ctx.Input(2);
        if (a.ElementType != b.ElementType || (bias is not null && bias.ElementType != a.ElementType))
            throw ctx.Invalid("FusedMatMul inputs have different element types");
        var s = MatMulShape.Resolve(ctx, a.Dims, transB ? TransposedDims(ctx, b) : b.Dims);
        int rank = s.OutputRank;
        // Add's result shape: the product's, right-aligned under a bias [1, …, 1, d] (whose extra leading ones prepend).
        Span<int> shape = stackalloc int[Math.Max(rank, bias?.Rank ?? 0)];
        shape[..(shape.Length - rank)].Fill(1);
        s.OutputShape(shape[(shape.Length - rank)..]);
        int n = rank == 0 ? 1 : shape[^1], d = 1;
        if (bias is not null)
        {
            for (int i = 0; i < bias.Rank - 1; i++)
                if (bias.Dims[i] != 1) throw ctx.Invalid($"bias [{string.Join(',', bias.Dims)}] is not along the last axis");
            d = bias.Rank == 0 ? 1 : bias.Dims[^1];
            if (d != n && d != 1 && n != 1) throw ctx.Invalid($"bias [{string.Join(',', bias.Dims)}] does not broadcast to the product's last axis {n}");
        }
        // A product of last extent 1 under a bias of d > 1: Add broadcasts it to d columns.
        bool widen = n == 1 && d > 1;
        if (widen) shape[^1] = d;
        var y = ctx.AllocateUninitialized(a.ElementType, shape);
        int threads = ctx.Options.Threads;
        if (a.ElementType == DataType.Float)
            FusedForward((float[])a.Buffer, (float[])b.Buffer, (float[]?)bias?.Buffer, (float[])y.Buffer, s, transB, d, widen, relu, threads);
        else
            FusedForward((double[])a.Buffer, (double[])b.Buffer, (double[]?)bias?.Buffer, (double[])y.Buffer, s, transB, d, widen, relu, threads);
        ctx.SetOutput(0, y);
        if (ctx.IsOutputUsed(1))
        {
            // The product's shape (before the bias), in place of the Shape node PlanFusion folded (ONNX spec "Shape").
            var productShape = ctx.AllocateUninitialized(DataType.Int64, [rank]);
            var dims = productShape.AsSpan<long>();
            for (int i = 0; i < rank; i++) dims[i] = shape[shape.Length - rank + i];
            if (widen && rank > 0) dims[^1] = 1;
            ctx.SetOutput(1, productShape);
        }
    }

    /// <summary>y = act(A·op(B) + bias): the product (into y, or a pooled buffer when <paramref name="widen"/>), then the epilogue per row.</summary>
    internal static void FusedForward<T>(T[] a, T[] b, T[]? bias, T[] y, MatMulShape s, bool transB, int d, bool widen, bool relu, int threads)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int count = checked(s.Batches * s.M * s.N);
        T[]? product = widen ? ArrayPool<T>.Shared.Rent(Math.Max(1, count)) : null;
        var p = product ?? y;
        try
        {
            if (!transB) MatMulForward(a, b, p, s, threads);
            else if (count > 0)
            {
                // B is 2-D, so every batch shares it: one tall product, op(B) = Bᵀ read from W [n, k] (ldb = k).
                int rows = s.Batches * s.M;
                Gemm.Multiply(false, true, rows, s.N, s.K, T.One, a.AsSpan(0, rows * s.K), s.K, b.AsSpan(0, s.N * s.K), s.K, T.Zero, p.AsSpan(0, count), s.N, threads);
            }
            if (widen)
            {
                // y[r, j] = product[r] + bias[j].
                for (int r = 0; r < count; r++)
                {
                    var row = y.AsSpan(r * d, d);
                    TensorPrimitives.Add(bias!.AsSpan(0, d), p[r], row);
                    if (relu) TensorPrimitives.Max(row, T.Zero, row);
                }
            }
            else if (bias is not null || relu)
            {
                int n = s.N;
                int chunks = threads > 1 && count >= ParallelEpilogue ? threads : 1;
                ChunkRunner.ForRanges(n == 0 ? 0 : count / n, chunks, 0, threads, (y, n, bias, d, relu),
                    static (st, r0, r1) => EpilogueRows(st.y, st.n, st.bias, st.d, st.relu, r0, r1));
            }
        }
        finally
        {
            if (product is not null) ArrayPool<T>.Shared.Return(product);
        }
    }

    /// <summary>Rows [r0, r1) of y (n wide): y += bias (d = n, or d = 1 for one value), then max(·, 0) when <paramref name="relu"/>.</summary>
    private static void EpilogueRows<T>(T[] y, int n, T[]? bias, int d, bool relu, int r0, int r1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = r0; r < r1; r++)
        {
            var row = y.AsSpan(r * n, n);
            if (bias is not null)
            {
                if (d == n) TensorPrimitives.Add(row, bias.AsSpan(0, n), row);
                else TensorPrimitives.Add(row, bias[0], row);
            }
            if (relu) TensorPrimitives.Max(row, T.Zero, row);
        }
    }
}
