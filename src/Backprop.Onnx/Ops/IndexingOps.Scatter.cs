using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

internal static partial class IndexingOps
{
    private static void RegisterScatter(List<OpDefinition> ops)
    {
        // ScatterElements (ONNX spec "ScatterElements", versions 11, 13, 16, 18): a copy of data where
        // out[c with c[axis] = indices[c]] = updates[c] (reduction 'none'), or is combined with it by add or mul
        // (opset 16), max or min (opset 18). Repeated indices apply in row-major order of indices.
        ops.Add(new OpDefinition("ScatterElements", op => ScatterKernel(op, nd: false), minVersion: 11)
        {
            DifferentiableInputs = [0, 2],
            Vjp = ctx => ScatterVjp(ctx, nd: false),
        });

        // Scatter (ONNX spec "Scatter", versions 9 and 10; replaced by ScatterElements at 11): ScatterElements without
        // reduction. No gradient rule: its dUpdates needs GatherElements, which only exists from opset 11.
        ops.Add(new OpDefinition("Scatter", op => ScatterKernel(op, nd: false), minVersion: 9, maxVersion: 10)
        {
            DifferentiableInputs = [0, 2],
        });

        // ScatterND (ONNX spec "ScatterND", versions 11, 13, 16, 18): a copy of data where the slice each index tuple
        // of indices selects is replaced by (or, from opset 16, combined with) the matching slice of updates, whose
        // shape is indices.shape[:-1] + data.shape[m:].
        ops.Add(new OpDefinition("ScatterND", op => ScatterKernel(op, nd: true), minVersion: 11)
        {
            DifferentiableInputs = [0, 2],
            Vjp = ctx => ScatterVjp(ctx, nd: true),
        });
    }

    private enum ScatterReduction { None, Add, Mul, Max, Min }

    private static Kernel ScatterKernel(OpContext op, bool nd)
    {
        DataMovement.RequireMovable(op, 0);
        string reductionName = op.Node.GetString("reduction", "none");
        var reduction = reductionName switch
        {
            "none" => ScatterReduction.None,
            "add" => ScatterReduction.Add,
            "mul" => ScatterReduction.Mul,
            "max" => ScatterReduction.Max,
            "min" => ScatterReduction.Min,
            _ => throw op.Unsupported($"reduction '{reductionName}' (implemented: none, add, mul, max, min)"),
        };
        if (reduction != ScatterReduction.None) NumericDispatch.Require(op, 0, $"reduction '{reductionName}'");
        long axis = op.Node.GetInt("axis", 0);
        return new LambdaKernel(ctx =>
        {
            var data = ctx.RequiredInput(0);
            var indices = ctx.RequiredInput(1);
            var updates = ctx.RequiredInput(2);
            if (updates.ElementType != data.ElementType) throw ctx.Invalid("updates must have the element type of data");
            int[] map;
            if (nd)
            {
                (var shape, map) = NdMap(ctx, data.Dims, indices, 0, out _);
                if (!updates.Dims.AsSpan().SequenceEqual(shape))
                    throw ctx.Invalid($"updates of shape {OpArgs.Format(updates.Dims)} must have shape {OpArgs.Format(shape)}");
            }
            else
            {
                if (!updates.Dims.AsSpan().SequenceEqual(indices.Dims))
                    throw ctx.Invalid($"updates of shape {OpArgs.Format(updates.Dims)} must have the shape of indices {OpArgs.Format(indices.Dims)}");
                map = ElementsMap(ctx, data.Dims, indices, OpArgs.Axis(ctx, axis, data.Rank), "indices");
            }
            var result = data.Clone();
            if (reduction == ScatterReduction.None) DataMovement.ScatterMap(updates, result, map);
            else
            {
                if (!NumericDispatch.Supports(data.ElementType)) throw ctx.Invalid($"reduction '{reductionName}' of {DataTypes.OnnxName(data.ElementType)}");
                var action = new ReduceInto(result, updates, map, reduction);
                NumericDispatch.Run(data.ElementType, ref action);
            }
            ctx.SetOutput(0, result);
        });
    }

    private readonly struct ReduceInto(OnnxTensor result, OnnxTensor updates, int[] map, ScatterReduction reduction) : NumericDispatch.IAction
    {
        public void Run<T>() where T : unmanaged, INumber<T>
        {
            var dst = result.AsSpan<T>();
            var src = updates.AsSpan<T>();
            for (int i = 0; i < map.Length; i++)
            {
                ref T d = ref dst[map[i]];
                T u = src[i];
                d = reduction switch
                {
                    ScatterReduction.Add => d + u,
                    ScatterReduction.Mul => d * u,
                    ScatterReduction.Max => T.Max(d, u),
                    _ => T.Min(d, u),
                };
            }
        }
    }
}
