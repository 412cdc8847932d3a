using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Linear algebra: MatMul, Gemm, Einsum and the integer/quantized matrix products, all on our packed GEMM
/// (<see cref="Gemm"/>) for float and double.
/// </summary>
internal static partial class MatMulOps
{
    public static void Register(List<OpDefinition> ops)
    {
        // MatMul (ONNX spec "MatMul", versions 1, 9, 13): numpy.matmul — 1-D operands are promoted to a row (A) or a
        // column (B) and the added dimension removed from the result; batch dimensions broadcast.
        // Its rule's MatMulGrad node returns gradients already summed to the operands' shapes, so the pass need not
        // un-broadcast them (Broadcasting stays false).
        ops.Add(new OpDefinition("MatMul", CreateMatMul) { Vjp = MatMulVjp });

        // MatMulGrad(dY, A, B) → (dA, dB) of our domain: MatMul's gradients (see MatMulVjp), with a standard-op form for export.
        ops.Add(new OpDefinition("MatMulGrad", CreateMatMulGrad, OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(0), op.InputType(0)],
            StandardOps = MatMulGradStandard,
        });

        // FusedMatMul(A, B[, bias]) of our domain: MatMul with a folded transpose of B, a bias and an activation, made by
        // PlanFusion (see MatMulOps.Fused.cs). Never in a model, so no gradient rule.
        ops.Add(new OpDefinition(FusedMatMulOp, CreateFusedMatMul, OpRegistry.BackpropDomain)
        {
            InferTypes = op => [op.InputType(0), DataType.Int64],
            NonDifferentiable = true,
        });

        // Gemm (ONNX spec "Gemm", versions 1, 6, 7, 9, 11, 13): Y = alpha·op(A)·op(B) + beta·C, C broadcast
        // unidirectionally to (M, N); optional from version 11.
        ops.Add(new OpDefinition("Gemm", CreateGemm) { Vjp = GemmVjp });

        // Einsum (ONNX spec "Einsum", version 12): Einstein summation over an equation. Registered from version 1 so that
        // gradient graphs of older models can use it (MatMul's rule when ranks are unknown); such graphs are only run
        // here, as training export needs opset 13.
        ops.Add(new OpDefinition("Einsum", CreateEinsum) { Vjp = EinsumVjp, Broadcasting = true });

        // MatMulInteger (ONNX spec "MatMulInteger", version 10): (A − a_zero_point)·(B − b_zero_point) in int32.
        ops.Add(new OpDefinition("MatMulInteger", CreateMatMulInteger, minVersion: 10)
        {
            InferTypes = TypeInferencePass.Fixed(DataType.Int32),
            NonDifferentiable = true,
        });

        // QLinearMatMul (ONNX spec "QLinearMatMul", version 10): quantized MatMul with requantized 8-bit output.
        ops.Add(new OpDefinition("QLinearMatMul", CreateQLinearMatMul, minVersion: 10)
        {
            InferTypes = op => [op.InputType(7)],
            NonDifferentiable = true,
        });
    }

    private static readonly DataType[] MatMulTypes =
        [DataType.Float, DataType.Double, DataType.Int32, DataType.Int64, DataType.UInt32, DataType.UInt64];

    private static Kernel CreateMatMul(OpContext op)
    {
        if (IsHalfType(op.InputType(0))) return Widened(op, CreateMatMul);
        op.RequireInputType(0, MatMulTypes);
        op.RequireInputType(1, MatMulTypes);
        return new LambdaKernel(ctx =>
        {
            var a = ctx.RequiredInput(0);
            var b = ctx.RequiredInput(1);
            if (a.ElementType != b.ElementType)
                throw ctx.Invalid($"inputs have different element types {DataTypes.OnnxName(a.ElementType)} and {DataTypes.OnnxName(b.ElementType)}");
            ctx.SetOutput(0, MatMul(ctx, a, b));
        });
    }

    /// <summary>numpy.matmul of two tensors of one element type (float, double or a 32/64-bit integer type).</summary>
    internal static OnnxTensor MatMul(KernelContext ctx, OnnxTensor a, OnnxTensor b)
    {
        var s = MatMulShape.Resolve(ctx, a, b);
        Span<int> shape = stackalloc int[s.OutputRank];
        s.OutputShape(shape);
        var y = ctx.AllocateUninitialized(a.ElementType, shape);
        switch (a.ElementType)
        {
            case DataType.Float: MatMulForward((float[])a.Buffer, (float[])b.Buffer, (float[])y.Buffer, s, ctx.Options.Threads); break;
            case DataType.Double: MatMulForward((double[])a.Buffer, (double[])b.Buffer, (double[])y.Buffer, s, ctx.Options.Threads); break;
            default:
                int[] aBatch = a.Rank > 2 ? a.Dims[..^2] : [], bBatch = b.Rank > 2 ? b.Dims[..^2] : [];
                int[] batch = Broadcast.Shape(ctx, aBatch, bBatch);
                var (aOff, bOff) = BatchOffsets(batch, aBatch, (long)s.M * s.K, bBatch, (long)s.K * s.N);
                BatchedMultiply(a, aOff, b, bOff, y, s.M, s.N, s.K, false, false, ctx.Options.Threads);
                break;
        }
        return y;
    }

    /// <summary>
    /// Y[p] = A[pa]·B[pb] per broadcast batch. When every batch shares one B and A is not broadcast (a Linear layer applied
    /// to a (batch, sequence, features) input) the batches fold into the rows of one tall product.
    /// </summary>
    private static void MatMulForward<T>(T[] a, T[] b, T[] y, MatMulShape s, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (s.Batches == 0 || s.M == 0 || s.N == 0) return;
        if (s.BCount == 1)
        {
            int rows = s.Batches * s.M;
            Gemm.Multiply(false, false, rows, s.N, s.K, T.One, a.AsSpan(0, rows * s.K), s.K, b.AsSpan(0, s.K * s.N), s.N, T.Zero, y.AsSpan(0, rows * s.N), s.N, threads);
            return;
        }
        BatchedGemm<T>.Run(s, BatchedGemm<T>.Target.Y, null, a, b, y, threads);
    }

    /// <summary>Element offsets of each broadcast batch's A and B matrices (row-major order over <paramref name="batch"/>).</summary>
    internal static (long[] A, long[] B) BatchOffsets(int[] batch, int[] aBatch, long aMatrix, int[] bBatch, long bMatrix)
    {
        long count = 1;
        foreach (int d in batch) count *= d;
        var aOff = new long[count];
        var bOff = new long[count];
        var aStrides = Broadcast.Strides(aBatch, batch);
        var bStrides = Broadcast.Strides(bBatch, batch);
        var coord = new int[batch.Length];
        long ao = 0, bo = 0;
        for (long p = 0; p < count; p++)
        {
            aOff[p] = ao * aMatrix;
            bOff[p] = bo * bMatrix;
            for (int d = batch.Length - 1; d >= 0; d--)
            {
                coord[d]++;
                ao += aStrides[d];
                bo += bStrides[d];
                if (coord[d] < batch[d]) break;
                ao -= aStrides[d] * coord[d];
                bo -= bStrides[d] * coord[d];
                coord[d] = 0;
            }
        }
        return (aOff, bOff);
    }

    /// <summary>
    /// For each batch p: C[p] = op(A at aOff[p]) · op(B at bOff[p]), C contiguous (P, m, n). op(A) is m×k (stored k×m
    /// when <paramref name="transA"/>), op(B) k×n (stored n×k when <paramref name="transB"/>).
    /// </summary>
    internal static void BatchedMultiply(OnnxTensor a, long[] aOff, OnnxTensor b, long[] bOff, OnnxTensor c, int m, int n, int k, bool transA, bool transB, int threads)
    {
        switch (c.ElementType)
        {
            case DataType.Float: BatchedFloat((float[])a.Buffer, aOff, (float[])b.Buffer, bOff, (float[])c.Buffer, m, n, k, transA, transB, threads); break;
            case DataType.Double: BatchedFloat((double[])a.Buffer, aOff, (double[])b.Buffer, bOff, (double[])c.Buffer, m, n, k, transA, transB, threads); break;
            case DataType.Int32: BatchedNaive((int[])a.Buffer, aOff, (int[])b.Buffer, bOff, (int[])c.Buffer, m, n, k, transA, transB); break;
            case DataType.Int64: BatchedNaive((long[])a.Buffer, aOff, (long[])b.Buffer, bOff, (long[])c.Buffer, m, n, k, transA, transB); break;
            case DataType.UInt32: BatchedNaive((uint[])a.Buffer, aOff, (uint[])b.Buffer, bOff, (uint[])c.Buffer, m, n, k, transA, transB); break;
            case DataType.UInt64: BatchedNaive((ulong[])a.Buffer, aOff, (ulong[])b.Buffer, bOff, (ulong[])c.Buffer, m, n, k, transA, transB); break;
            default: throw new InvalidOperationException($"no matrix product for {DataTypes.OnnxName(c.ElementType)}");
        }
    }

    private static void BatchedFloat<T>(T[] a, long[] aOff, T[] b, long[] bOff, T[] c, int m, int n, int k, bool transA, bool transB, int threads)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int batches = aOff.Length;
        if (batches == 0 || m == 0 || n == 0) return;
        int lda = transA ? m : k, ldb = transB ? k : n;
        long aSize = (long)m * k, bSize = (long)k * n, cSize = (long)m * n;
        // One tall product when every batch shares B and the A matrices are consecutive rows (e.g. a Linear layer
        // applied to a (batch, sequence, features) input).
        bool shareB = !transA && batches > 1;
        for (int p = 1; p < batches && shareB; p++) shareB = bOff[p] == bOff[0] && aOff[p] == aOff[0] + p * aSize;
        if (shareB)
        {
            Gemm.Multiply(false, transB, m * batches, n, k, T.One, a.AsSpan(checked((int)aOff[0]), checked((int)(aSize * batches))), lda,
                b.AsSpan(checked((int)bOff[0]), checked((int)bSize)), ldb, T.Zero, c.AsSpan(0, checked((int)(cSize * batches))), n, threads);
            return;
        }
        void One(int p, int t) => Gemm.Multiply(transA, transB, m, n, k, T.One, a.AsSpan(checked((int)aOff[p]), checked((int)aSize)), lda,
            b.AsSpan(checked((int)bOff[p]), checked((int)bSize)), ldb, T.Zero, c.AsSpan(checked((int)(p * cSize)), checked((int)cSize)), n, t);
        if (threads > 1 && batches >= threads && cSize * k >= 4096)
            ChunkRunner.For(batches, threads, p => One(p, 1));
        else
            for (int p = 0; p < batches; p++) One(p, threads);
    }

    private static void BatchedNaive<T>(T[] a, long[] aOff, T[] b, long[] bOff, T[] c, int m, int n, int k, bool transA, bool transB)
        where T : INumber<T>
    {
        for (int p = 0; p < aOff.Length; p++)
        {
            long ao = aOff[p], bo = bOff[p], co = (long)p * m * n;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    T s = T.Zero;
                    for (int q = 0; q < k; q++)
                        s += a[ao + (transA ? (long)q * m + i : (long)i * k + q)] * b[bo + (transB ? (long)j * k + q : (long)q * n + j)];
                    c[co + (long)i * n + j] = s;
                }
        }
    }
}
