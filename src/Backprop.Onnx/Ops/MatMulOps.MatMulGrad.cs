using System.Numerics;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// MatMulGrad(dY, A, B) → (dA, dB) of our domain: MatMul's gradients as GEMMs chosen from the run-time shapes, already
/// reduced to A's and B's shapes (so the pass does not un-broadcast them), and its standard-op form for export.
/// </summary>
internal static partial class MatMulOps
{
    /// <summary>
    /// MatMul VJP (PyTorch derivatives.yaml <c>mm</c>/<c>bmm</c> as used by <c>matmul</c>): dA = Σ dY·Bᵀ, dB = Σ Aᵀ·dY, the
    /// sums over the batch axes each operand was broadcast along; a 1-D operand is promoted to a row (A) or a column (B)
    /// and the added axis removed again. One MatMulGrad node, which picks its GEMMs when it runs, so it needs no static
    /// ranks. A rank known to be 1 is recorded (a_vector / b_vector) for the standard-op form.
    /// </summary>
    private static string?[] MatMulVjp(GradientContext ctx)
    {
        string a = ctx.Input(0), b = ctx.Input(1);
        var attrs = new List<OnnxAttribute>();
        if (ctx.Rank(a) == 1) attrs.Add(OnnxAttribute.FromInt("a_vector", 1));
        if (ctx.Rank(b) == 1) attrs.Add(OnnxAttribute.FromInt("b_vector", 1));
        var outs = ctx.Emit.Ops("MatMulGrad", [ctx.OutputGrad(0)!, a, b], 2, OpRegistry.BackpropDomain, [.. attrs]);
        return [ctx.NeedsGrad(0) ? outs[0] : null, ctx.NeedsGrad(1) ? outs[1] : null];
    }

    /// <summary>
    /// MatMulGrad in standard ops (opset 13+), for ≥2-D operands: dA = SumTo(MatMul(dY, Bᵀ), Shape(A)),
    /// dB = SumTo(MatMul(Aᵀ, dY), Shape(B)), the last two axes swapped by a one-operand Einsum "...ij->...ji" (which
    /// needs no rank). 1-D operands (a_vector / b_vector) go through Unsqueeze/Squeeze as numpy.matmul promotes them.
    /// ONNX Runtime's Einsum rejects two operands whose ellipses differ, so the products are MatMul, which broadcasts.
    /// </summary>
    private static string[] MatMulGradStandard(GraphEmitter e, Node node)
    {
        string dy = node.Inputs[0], a = node.Inputs[1], b = node.Inputs[2];
        bool a1 = node.GetInt("a_vector", 0) != 0, b1 = node.GetInt("b_vector", 0) != 0;
        string T(string x) => e.Op("Einsum", [x], OnnxAttribute.FromString("equation", "...ij->...ji"));
        var (da, db) = (a1, b1) switch
        {
            (false, false) => (e.MatMul(dy, T(b)), e.MatMul(T(a), dy)),
            // A (k), B (…, k, n), dY (…, n).
            (true, false) => (e.Squeeze(e.MatMul(b, e.Unsqueeze(dy, -1)), -1), e.MatMul(e.Unsqueeze(a, 1), e.Unsqueeze(dy, -2))),
            // A (…, m, k), B (k), dY (…, m).
            (false, true) => (e.MatMul(e.Unsqueeze(dy, -1), e.Unsqueeze(b, 0)), e.Squeeze(e.MatMul(T(a), e.Unsqueeze(dy, -1)), -1)),
            _ => (e.Mul(dy, b), e.Mul(dy, a)),
        };
        return [ReductionOps.SumTo(e, da, e.Shape(a)), ReductionOps.SumTo(e, db, e.Shape(b))];
    }

    private static Kernel CreateMatMulGrad(OpContext op)
    {
        if (IsHalfType(op.InputType(0))) return Widened(op, CreateMatMulGrad);
        op.RequireInputType(0, DataType.Float, DataType.Double);
        // Plan-only attributes of PlanFusion (a folded Transpose(·, perm=[1,0]) of a 2-D operand): trans_b = 1 when the B
        // input is W = Bᵀ, trans_db = 1 when the second output is dBᵀ (the gradient of W) rather than dB.
        var t = new GradTransposes(op.Node.GetInt("trans_b", 0) != 0, op.Node.GetInt("trans_db", 0) != 0);
        return new LambdaKernel(ctx =>
        {
            var dy = ctx.RequiredInput(0);
            var a = ctx.RequiredInput(1);
            var b = ctx.RequiredInput(2);
            if (a.ElementType != dy.ElementType || b.ElementType != dy.ElementType) throw ctx.Invalid("MatMulGrad inputs have different element types");
            if (t.DB && b.Rank != 2) throw ctx.Invalid($"a transposed dB needs a 2-D B, got [{string.Join(',', b.Dims)}]");
            int[] bDims = t.B ? TransposedDims(ctx, b) : b.Dims;
            var s = MatMulShape.Resolve(ctx, a.Dims, bDims);
            if (dy.ElementCount != (long)s.Batches * s.M * s.N)
                throw ctx.Invalid($"dY of shape [{string.Join(',', dy.Dims)}] does not fit A [{string.Join(',', a.Dims)}] · B [{string.Join(',', b.Dims)}]");
            // A broadcast operand's gradient accumulates several products: start it from zeros.
            var da = !ctx.IsOutputUsed(0) ? null : s.ACount < s.Batches ? ctx.Allocate(a.ElementType, a.Dims) : ctx.AllocateUninitialized(a.ElementType, a.Dims);
            // dB has B's shape as the product reads it ([k, n]), or W's ([n, k]) when written transposed.
            Span<int> swapped = stackalloc int[2];
            if (t.DB) (swapped[0], swapped[1]) = (bDims[1], bDims[0]);
            ReadOnlySpan<int> dbShape = t.DB ? swapped : bDims;
            var db = !ctx.IsOutputUsed(1) ? null : s.BCount < s.Batches ? ctx.Allocate(b.ElementType, dbShape) : ctx.AllocateUninitialized(b.ElementType, dbShape);
            int threads = ctx.Options.Threads;
            if (dy.ElementType == DataType.Float) MatMulBackward((float[])dy.Buffer, (float[])a.Buffer, (float[])b.Buffer, (float[]?)da?.Buffer, (float[]?)db?.Buffer, s, threads, t);
            else MatMulBackward((double[])dy.Buffer, (double[])a.Buffer, (double[])b.Buffer, (double[]?)da?.Buffer, (double[]?)db?.Buffer, s, threads, t);
            if (da is not null) ctx.SetOutput(0, da);
            if (db is not null) ctx.SetOutput(1, db);
        });
    }

    /// <summary>
    /// dA[pa] = Σ dY[p]·B[pb]ᵀ and dB[pb] = Σ A[pa]ᵀ·dY[p] over the broadcast batches p (pa, pb: the operands' batches p
    /// reads). When B is one matrix shared by every batch (a Linear layer on a (batch, sequence, features) input), the
    /// batches fold into the rows: dA = reshape(dY, [P·m, n])·Bᵀ and dB = reshape(A, [P·m, k])ᵀ·reshape(dY, [P·m, n]),
    /// one GEMM each with a long dimension. Otherwise one GEMM per batch (in parallel when each writes its own matrix),
    /// accumulating with β = 1 into a gradient whose operand was broadcast, in batch order.
    /// </summary>
    /// <remarks>
    /// With both gradients wanted and two or more threads, dA and dB run at the same time, each on half the threads
    /// (both are m·n·k multiply-adds per batch): one fork and join instead of two, and with two threads neither GEMM is
    /// cut into regions that each pack the whole of the other operand. Each GEMM's result does not depend on its
    /// thread count, so this changes no bits.
    /// </remarks>
    internal static void MatMulBackward<T>(T[] dy, T[] a, T[] b, T[]? da, T[]? db, MatMulShape s, int threads, GradTransposes t = default)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (s.Batches == 0) return;
        if (da is not null && db is not null && threads > 1 && !SerialGradients)
        {
            GradientPair<T>.Run(dy, a, b, da, db, s, threads, t);
            return;
        }
        if (da is not null) GradA(dy, b, da, s, threads, t.B);
        if (db is not null) GradB(dy, a, db, s, threads, t.DB);
    }

    /// <summary>MatMulGrad's folded transposes: <see cref="B"/>, the B input is stored transposed (W = Bᵀ, 2-D); <see cref="DB"/>, dB is written transposed.</summary>
    internal readonly record struct GradTransposes(bool B, bool DB);

    /// <summary>Tests only: compute dA, then dB, each on all threads (the path before they ran side by side).</summary>
    internal static bool SerialGradients { get; set; }

    /// <remarks>With <paramref name="transB"/> (B 2-D, stored as W = Bᵀ [n, k]): dA = dY·Bᵀ = dY·W, W read as is (ldb = k).</remarks>
    private static void GradA<T>(T[] dy, T[] b, T[] da, MatMulShape s, int threads, bool transB) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int m = s.M, n = s.N, k = s.K, batches = s.Batches;
        if (transB)
            Gemm.Multiply(false, false, batches * m, k, n, T.One, dy.AsSpan(0, batches * m * n), n, b.AsSpan(0, k * n), k, T.Zero, da.AsSpan(0, batches * m * k), k, threads);
        else if (s.BCount == 1 && s.ACount == batches)
            Gemm.Multiply(false, true, batches * m, k, n, T.One, dy.AsSpan(0, batches * m * n), n, b.AsSpan(0, k * n), n, T.Zero, da.AsSpan(0, batches * m * k), k, threads);
        else
            BatchedGemm<T>.Run(s, BatchedGemm<T>.Target.A, dy, a: null, b, da, threads);
    }

    /// <remarks>With <paramref name="transDB"/> (B 2-D): dBᵀ = dYᵀ·A, [n, k], the rows of every batch folded into the sum.</remarks>
    private static void GradB<T>(T[] dy, T[] a, T[] db, MatMulShape s, int threads, bool transDB) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int m = s.M, n = s.N, k = s.K, batches = s.Batches;
        if (transDB)
            Gemm.Multiply(true, false, n, k, batches * m, T.One, dy.AsSpan(0, batches * m * n), n, a.AsSpan(0, batches * m * k), k, T.Zero, db.AsSpan(0, k * n), k, threads);
        else if (s.BCount == 1 && s.ACount == batches)
            Gemm.Multiply(true, false, k, n, batches * m, T.One, a.AsSpan(0, batches * m * k), k, dy.AsSpan(0, batches * m * n), n, T.Zero, db.AsSpan(0, k * n), n, threads);
        else
            BatchedGemm<T>.Run(s, BatchedGemm<T>.Target.B, dy, a, b: null, db, threads);
    }

    /// <summary>
    /// dA and dB as two work items of one <see cref="ChunkRunner"/> call. A pooled instance per thread holds the
    /// arguments (its delegate made once), so a call allocates nothing; a nested call while it is in use makes a fresh one.
    /// </summary>
    private sealed class GradientPair<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        [ThreadStatic] private static GradientPair<T>? t_idle;

        private readonly Action<int> _body;
        private T[]? _dy, _a, _b, _da, _db;
        private MatMulShape _s;
        private GradTransposes _t;
        private int _threadsA, _threadsB;

        private GradientPair() => _body = Body;

        public static void Run(T[] dy, T[] a, T[] b, T[] da, T[] db, MatMulShape s, int threads, GradTransposes t)
        {
            var job = t_idle ?? new GradientPair<T>();
            t_idle = null;
            (job._dy, job._a, job._b, job._da, job._db, job._s, job._t) = (dy, a, b, da, db, s, t);
            job._threadsA = threads / 2;
            job._threadsB = threads - threads / 2;
            try
            {
                ChunkRunner.For(2, 2, job._body);
            }
            finally
            {
                job._dy = job._a = job._b = job._da = job._db = null;
                t_idle = job;
            }
        }

        private void Body(int i)
        {
            if (i == 0) GradA(_dy!, _b!, _da!, _s, _threadsA, _t.B);
            else GradB(_dy!, _a!, _db!, _s, _threadsB, _t.DB);
        }
    }
}
