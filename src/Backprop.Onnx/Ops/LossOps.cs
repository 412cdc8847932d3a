using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (ONNX spec sections of the same names) over [N, C] or
/// [N, C, d1, …, dk] inputs with targets [N] or [N, d1, …, dk]. Gradient rules: LossOps.Gradients.cs.
/// </summary>
internal static partial class LossOps
{
    internal enum Reduction { None, Sum, Mean }

    public static void Register(List<OpDefinition> ops)
    {
        // ONNX spec "NegativeLogLikelihoodLoss" (12, 13): loss[n, d…] = -input[n, target[n, d…], d…] · weight[target],
        // 0 where target == ignore_index; reduction "mean" divides the sum by the sum of the applied weights.
        ops.Add(new OpDefinition("NegativeLogLikelihoodLoss", op => CreateLoss(op, softmax: false), minVersion: 12)
        {
            DifferentiableInputs = [0],
            Vjp = NllVjp,
        });
        // ONNX spec "SoftmaxCrossEntropyLoss" (12, 13): log_prob = LogSoftmax(scores, axis 1); loss as
        // NegativeLogLikelihoodLoss(log_prob, labels, weights). Output 1 (optional) is log_prob.
        ops.Add(new OpDefinition("SoftmaxCrossEntropyLoss", op => CreateLoss(op, softmax: true), minVersion: 12)
        {
            DifferentiableInputs = [0],
            Vjp = SceVjp,
        });
        ops.AddRange(GradDefinitions());
    }

    /// <summary>Attributes of both losses, parsed once.</summary>
    internal sealed record LossAttributes(Reduction Reduction, long? IgnoreIndex);

    internal static LossAttributes ParseLoss(OpContext op)
    {
        string r = op.Node.GetString("reduction", "mean");
        var reduction = r switch
        {
            "none" => Reduction.None,
            "sum" => Reduction.Sum,
            "mean" => Reduction.Mean,
            _ => throw op.Unsupported($"reduction '{r}' (none, sum or mean)"),
        };
        long? ignore = op.Node.HasAttribute("ignore_index") ? op.Node.GetInt("ignore_index", 0) : null;
        return new LossAttributes(reduction, ignore);
    }

    private static Kernel CreateLoss(OpContext op, bool softmax)
    {
        var a = ParseLoss(op);
        op.RequireInputType(0, DataType.Float, DataType.Double);
        op.RequireInputType(1, DataType.Int32, DataType.Int64);
        op.RequireInputType(2, DataType.Float, DataType.Double);
        if (op.InputType(2) != DataType.Undefined && op.InputType(0) != DataType.Undefined && op.InputType(2) != op.InputType(0))
            throw op.Unsupported("weights of another type than the input");
        return new LambdaKernel(ctx =>
        {
            var x = ctx.RequiredInput(0);
            var target = ctx.RequiredInput(1);
            var weight = ctx.Input(2);
            var (n, c, d) = CheckShapes(ctx, x, target, weight);
            RequireTargetType(ctx, target);
            if (x.ElementType == DataType.Float) Run<float>();
            else if (x.ElementType == DataType.Double) Run<double>();
            else throw op.Unsupported($"input of type {DataTypes.OnnxName(x.ElementType)}");

            void Run<T>() where T : unmanaged, IFloatingPointIeee754<T>
            {
                var logProb = x;
                if (softmax)
                {
                    logProb = ctx.AllocateUninitialized(x.ElementType, x.Shape);
                    LogSoftmax((T[])x.Buffer, (T[])logProb.Buffer, n, c, d, ReductionOps.Parallelism(ctx, x.ElementCount));
                }
                if (weight is not null && weight.ElementType != x.ElementType) throw op.Unsupported("weights of another type than the input");
                var w = weight is null ? null : (T[])weight.Buffer;
                int count = n * d;
                var perElement = a.Reduction == Reduction.None ? ctx.Allocate(x.ElementType, target.Dims) : null;
                var pe = perElement is null ? default : perElement.AsSpan<T>();
                double lossSum = 0, weightSum = 0;
                var lp = logProb.AsSpan<T>();
                for (int i = 0; i < count; i++)
                {
                    T applied = AppliedWeight(ctx, target, i, w, a.IgnoreIndex, c);
                    if (applied == T.Zero) continue;
                    weightSum += double.CreateChecked(applied);
                    T loss = -lp[ClassIndex(i, TargetAt(target, i), c, d)] * applied;
                    if (perElement is not null) pe[i] = loss;
                    lossSum += double.CreateChecked(loss);
                }
                var output = perElement ?? ctx.AllocateUninitialized(x.ElementType, []);
                if (perElement is null) output.AsSpan<T>()[0] = T.CreateChecked(a.Reduction == Reduction.Sum ? lossSum : lossSum / weightSum);
                ctx.SetOutput(0, output);
                if (softmax) ctx.SetOutput(1, logProb);
            }
        });
    }

    /// <summary>LogSoftmax along axis 1 of [n, c, d]: row by row on this thread when d = 1 (the classifier case), else <see cref="SoftmaxOps.Lines{T}"/>.</summary>
    private static void LogSoftmax<T>(T[] x, T[] logProb, int n, int c, int d, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (d != 1 || c == 0)
        {
            SoftmaxOps.Lines(x, logProb, n, c, d, SoftmaxOps.Kind.LogSoftmax, threads);
            return;
        }
        for (int i = 0; i < n; i++) SoftmaxOps.Line<T>(x.AsSpan(i * c, c), logProb.AsSpan(i * c, c), SoftmaxOps.Kind.LogSoftmax);
    }

    /// <summary>Throws unless the target tensor holds int32 or int64.</summary>
    internal static void RequireTargetType(KernelContext ctx, OnnxTensor target)
    {
        if (target.ElementType is not (DataType.Int64 or DataType.Int32)) throw ctx.Invalid($"target must be int64, got {DataTypes.OnnxName(target.ElementType)}");
    }

    /// <summary>Target element <paramref name="i"/> (int32 or int64, checked by <see cref="RequireTargetType"/>).</summary>
    internal static long TargetAt(OnnxTensor target, int i) => target.Buffer is long[] l ? l[i] : ((int[])target.Buffer)[i];

    /// <summary>
    /// The weight target element <paramref name="i"/> applies: weight[target] (1 without weights), 0 where target =
    /// ignore_index. Throws for a target outside [0, C) that is not ignored.
    /// </summary>
    internal static T AppliedWeight<T>(KernelContext ctx, OnnxTensor target, int i, T[]? w, long? ignoreIndex, int c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        long t = TargetAt(target, i);
        if (ignoreIndex == t) return T.Zero;
        if (t < 0 || t >= c) throw ctx.Invalid($"target {t} at flat index {i} is outside [0, {c}) and is not ignore_index");
        return w is null ? T.One : w[t];
    }

    /// <summary>Flat index of input[n, target, d…] for target element i of [N, d…] (D = Π d…).</summary>
    internal static int ClassIndex(int i, long target, int c, int d) => (i / d * c + (int)target) * d + i % d;

    /// <summary>Checks input [N, C, d…], target [N, d…] and weight [C]; returns N, C and D = Π d….</summary>
    internal static (int N, int C, int D) CheckShapes(KernelContext ctx, OnnxTensor x, OnnxTensor target, OnnxTensor? weight)
    {
        if (x.Rank < 2) throw ctx.Invalid($"input must have shape [N, C, …], got [{string.Join(',', x.Dims)}]");
        bool ok = target.Rank == x.Rank - 1 && target.Dims[0] == x.Dims[0];
        for (int i = 1; ok && i < target.Rank; i++) ok = target.Dims[i] == x.Dims[i + 1];
        if (!ok) throw ctx.Invalid($"target shape [{string.Join(',', target.Dims)}] does not match input shape [{string.Join(',', x.Dims)}] without dimension 1");
        int c = x.Dims[1];
        if (weight is not null && (weight.Rank != 1 || weight.Dims[0] != c)) throw ctx.Invalid($"weight must have shape [{c}], got [{string.Join(',', weight.Dims)}]");
        return (x.Dims[0], c, ReductionOps.Product(x.Shape, 2, x.Rank));
    }
}
