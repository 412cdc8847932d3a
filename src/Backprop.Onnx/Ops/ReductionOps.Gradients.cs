using System.Numerics;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Gradient rules of the Reduce* ops: one dedicated kernel, <c>ReduceGrad(dY, X, axes?)</c> of
/// <see cref="OpRegistry.BackpropDomain"/>, which walks each output's set of input elements once (recomputing the
/// forward value of the set where the derivative needs it, so Y need not be kept).
/// </summary>
internal static partial class ReductionOps
{
    /// <summary>
    /// VJP of a Reduce* op; with E(v) = v broadcast back over the reduced axes (Unsqueeze when keepdims=0, then Expand),
    /// following PyTorch derivatives.yaml (sum, mean, norm, logsumexp, prod, amax/amin):
    /// Sum: dX = E(dY). Mean: E(dY)/n. SumSquare: 2·X·E(dY). L1: sign(X)·E(dY) (0 at 0). L2: X/E(Y)·E(dY), 0 where Y = 0.
    /// LogSum: E(dY)/E(Σx). LogSumExp: E(dY)·exp(X − E(Y)). Prod: E(dY)·Π_{j≠i} x_j (exact with zeros).
    /// Max/Min: E(dY)/c on the c elements equal to E(Y), 0 elsewhere (ties share evenly, as amax/amin).
    /// Standard-op body: <see cref="ReduceGradStandard"/>.
    /// </summary>
    private static VjpRule ReduceVjp(ReduceKind kind) => ctx =>
    {
        var attrs = new List<OnnxAttribute> { OnnxAttribute.FromString("reduction", kind.ToString()), DTypeAttribute(ctx, ctx.Input(0)) };
        foreach (var name in new[] { "axes", "keepdims", "noop_with_empty_axes" })
            if (ctx.Node.FindAttribute(name) is { } a) attrs.Add(a);
        string axes = ctx.HasInput(1) ? ctx.Input(1) : "";
        return [ctx.NeedsGrad(0) ? ctx.Emit.Custom("ReduceGrad", [ctx.OutputGrad(0)!, ctx.Input(0), axes], [.. attrs]) : null];
    };

    /// <summary>The <c>ReduceGrad</c> kernel definition (registered by <see cref="Register"/>).</summary>
    private static OpDefinition ReduceGradDefinition() => new("ReduceGrad", CreateReduceGrad, OpRegistry.BackpropDomain)
    {
        InferTypes = op => [op.InputType(0)],
        StandardOps = ReduceGradStandard,
    };

    private static Kernel CreateReduceGrad(OpContext op)
    {
        string name = op.Node.GetString("reduction", "");
        if (!Enum.TryParse<ReduceKind>(name, out var kind)) throw op.Unsupported($"reduction '{name}'");
        long noop = op.Node.GetInt("noop_with_empty_axes", 0);
        var attrs = new ReduceAttributes(op.Node.GetInts("axes"), op.HasInput(2), KeepDims: true, NoopWithEmptyAxes: noop == 1);
        op.RequireInputType(0, DataType.Float, DataType.Double);
        ReducePlan? plan = null;
        return new LambdaKernel(ctx =>
        {
            var dy = ctx.RequiredInput(0);
            var x = ctx.RequiredInput(1);
            Span<bool> reduced = x.Rank <= OpArgs.StackRank ? stackalloc bool[OpArgs.StackRank] : new bool[x.Rank];
            reduced = reduced[..x.Rank];
            if (!ReducedAxes(ctx, attrs, reduced, axesInput: 2)) { ctx.SetOutput(0, dy); return; }
            var layout = ReducePlan.For(ref plan, x.Dims, reduced, keepDims: true).Layout;
            if (dy.ElementCount != layout.OutCount) throw ctx.Invalid($"dY has {dy.ElementCount} elements, the reduction {layout.OutCount}");
            if (dy.ElementType != x.ElementType) throw ctx.Invalid("dY and X differ in element type");
            // Every element of X belongs to one group, whose scatter writes it: dX needs no zero fill.
            var dx = ctx.AllocateUninitialized(x.ElementType, x.Shape);
            int threads = Parallelism(ctx, x.ElementCount);
            if (x.ElementType == DataType.Float) ReduceGrad((float[])dy.Buffer, (float[])x.Buffer, (float[])dx.Buffer, layout, kind, threads);
            else if (x.ElementType == DataType.Double) ReduceGrad((double[])dy.Buffer, (double[])x.Buffer, (double[])dx.Buffer, layout, kind, threads);
            else throw ctx.Invalid($"no gradient for {DataTypes.OnnxName(x.ElementType)}");
            ctx.SetOutput(0, dx);
        });
    }

    private static void ReduceGrad<T>(T[] dy, T[] x, T[] dx, ReductionLayout layout, ReduceKind kind, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = layout.Count;
        if (n == 0 || layout.OutCount == 0) return;
        if (layout.OutCount == 1 && kind is ReduceKind.Sum or ReduceKind.Mean)
        {
            // A whole-tensor Sum or Mean (a loss): dX is one value, dY or dY/n, filled in chunks over the threads.
            T g = kind == ReduceKind.Sum ? dy[0] : dy[0] / T.CreateChecked(n);
            int chunks = threads <= 1 ? 1 : Math.Min(threads, Math.Max(1, n >> 15));
            ForChunks(chunks, chunks, (dx, g, n, chunks), static (s, from, to) =>
            {
                long start = (long)s.n * from / s.chunks, end = (long)s.n * to / s.chunks;
                s.dx.AsSpan((int)start, (int)(end - start)).Fill(s.g);
            });
            return;
        }
        ForChunks(layout.OutCount, threads, (dy, x, dx, layout, kind, n), static (s, from, to) =>
        {
            var (dy, x, dx, layout, kind, n) = s;
            // Scratch for one group's inputs and gradients (a whole-tensor mean's group is the tensor).
            T[] vArray = System.Buffers.ArrayPool<T>.Shared.Rent(n), dArray = System.Buffers.ArrayPool<T>.Shared.Rent(n);
            try
            {
                var v = vArray.AsSpan(0, n);
                var d = dArray.AsSpan(0, n);
                for (int j = from; j < to; j++)
                {
                    int start = layout.Start(j);
                    // Sum and Mean do not read X.
                    if (kind is not (ReduceKind.Sum or ReduceKind.Mean)) layout.Gather<T>(x, start, v);
                    GroupGrad(v, dy[j], d, kind);
                    layout.Scatter<T>(d, dx, start);
                }
            }
            finally
            {
                System.Buffers.ArrayPool<T>.Shared.Return(vArray);
                System.Buffers.ArrayPool<T>.Shared.Return(dArray);
            }
        });
    }

    /// <summary>d[i] = g · ∂reduce(v)/∂v[i] for one output's elements <paramref name="v"/>.</summary>
    private static void GroupGrad<T>(ReadOnlySpan<T> v, T g, Span<T> d, ReduceKind kind) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = v.Length;
        switch (kind)
        {
            case ReduceKind.Sum: d.Fill(g); break;
            case ReduceKind.Mean: d.Fill(g / T.CreateChecked(n)); break;
            case ReduceKind.SumSquare: for (int i = 0; i < n; i++) d[i] = (v[i] + v[i]) * g; break;
            case ReduceKind.L1: for (int i = 0; i < n; i++) d[i] = T.CreateChecked(T.Sign(v[i])) * g; break;
            case ReduceKind.L2:
                {
                    T y = T.Sqrt(SumOfSquares(v));
                    for (int i = 0; i < n; i++) d[i] = y == T.Zero ? T.Zero : v[i] / y * g;
                    break;
                }
            case ReduceKind.LogSum: d.Fill(g / Sum(v)); break;
            case ReduceKind.LogSumExp:
                {
                    T y = LogSumExp(v);
                    for (int i = 0; i < n; i++) d[i] = g * T.Exp(v[i] - y);
                    break;
                }
            case ReduceKind.Prod:
                {
                    // d[i] = g · (v[0]·…·v[i-1]) · (v[i+1]·…·v[n-1]): prefix products forward, suffix backward.
                    T prefix = T.One;
                    for (int i = 0; i < n; i++) { d[i] = prefix; prefix *= v[i]; }
                    T suffix = T.One;
                    for (int i = n - 1; i >= 0; i--) { d[i] *= suffix * g; suffix *= v[i]; }
                    break;
                }
            case ReduceKind.Max:
            case ReduceKind.Min:
                {
                    T y = kind == ReduceKind.Max ? System.Numerics.Tensors.TensorPrimitives.Max(v) : System.Numerics.Tensors.TensorPrimitives.Min(v);
                    int ties = 0;
                    foreach (var e in v) if (e == y) ties++;
                    T share = ties == 0 ? T.Zero : g / T.CreateChecked(ties);
                    for (int i = 0; i < n; i++) d[i] = v[i] == y ? share : T.Zero;
                    break;
                }
        }
    }
}
