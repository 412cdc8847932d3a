using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Ops that select or place elements by index: Gather, GatherElements, GatherND (this file); ScatterElements,
/// ScatterND, Scatter (<c>IndexingOps.Scatter.cs</c>); TopK (<c>IndexingOps.TopK.cs</c>); CumSum
/// (<c>IndexingOps.CumSum.cs</c>). Negative indices count from the back where the spec allows it; an index out of
/// range is an <see cref="InvalidInputException"/>.
/// </summary>
internal static partial class IndexingOps
{
    public static void Register(List<OpDefinition> ops)
    {
        RegisterGather(ops);
        RegisterScatter(ops);
        RegisterTopK(ops);
        RegisterCumSum(ops);
        RegisterGradientKernels(ops);
    }

    private static void RegisterGather(List<OpDefinition> ops)
    {
        // Gather (ONNX spec "Gather", versions 1, 11, 13): out[i_0..i_(a-1), j.., k..] = data[i.., indices[j..], k..]
        // along axis a; output shape data[:a] + indices.shape + data[a+1:].
        ops.Add(new OpDefinition("Gather", op =>
        {
            DataMovement.RequireMovable(op, 0);
            long axis = op.Node.GetInt("axis", 0);
            return new LambdaKernel(ctx =>
            {
                var data = ctx.RequiredInput(0);
                var indices = ctx.RequiredInput(1);
                int a = OpArgs.Axis(ctx, axis, data.Rank);
                int dim = data.Dims[a];
                if (TryGatherRows(ctx, data, indices, a)) return;
                var idx = Indices(ctx, indices, dim, "indices");
                var outShape = data.Dims[..a].Concat(indices.Dims).Concat(data.Dims[(a + 1)..]).ToArray();
                var result = ctx.Allocate(data.ElementType, outShape);
                int outer = (int)OpArgs.Product(data.Dims, 0, a);
                int inner = (int)OpArgs.Product(data.Dims, a + 1, data.Rank);
                DataMovement.GatherStrided(data, result, [outer, idx.Length, inner], 0, [(long)dim * inner, inner, 1], [null, idx, null]);
                ctx.SetOutput(0, result);
            });
        })
        {
            DifferentiableInputs = [0],
            // dData = zeros with dY added at the gathered rows (PyTorch derivatives.yaml index_select /
            // embedding_dense_backward), by our GatherGrad kernel.
            Vjp = ctx => [GatherVjp(ctx, "GatherGrad", "", OnnxAttribute.FromInt("axis", ctx.Node.GetInt("axis", 0)))],
        });

        // GatherElements (ONNX spec "GatherElements", versions 11, 13): out[c] = data[c with c[axis] = indices[c]];
        // the output has the shape of indices.
        ops.Add(new OpDefinition("GatherElements", op =>
        {
            DataMovement.RequireMovable(op, 0);
            long axis = op.Node.GetInt("axis", 0);
            return new LambdaKernel(ctx =>
            {
                var data = ctx.RequiredInput(0);
                var indices = ctx.RequiredInput(1);
                int a = OpArgs.Axis(ctx, axis, data.Rank);
                var map = ElementsMap(ctx, data.Dims, indices, a, "indices");
                var result = ctx.Allocate(data.ElementType, indices.Dims);
                DataMovement.GatherMap(data, result, map);
                ctx.SetOutput(0, result);
            });
        }, minVersion: 11)
        {
            DifferentiableInputs = [0],
            // dData = ScatterElements(zeros, indices, dY, reduction add) (PyTorch derivatives.yaml gather:
            // gather_backward = scatter_add); our GatherElementsGrad kernel before opset 16.
            Vjp = ctx => [GatherVjp(ctx, "GatherElementsGrad", "ScatterElements", OnnxAttribute.FromInt("axis", ctx.Node.GetInt("axis", 0)))],
        });

        // GatherND (ONNX spec "GatherND", versions 11, 12, 13): each index tuple (the last dimension of indices, length
        // m) selects a slice data[b.., i_1..i_m, ...] after the first batch_dims (opset 12) dimensions shared by data
        // and indices; output shape indices.shape[:-1] + data.shape[batch_dims+m:].
        ops.Add(new OpDefinition("GatherND", op =>
        {
            DataMovement.RequireMovable(op, 0);
            long batchDims = op.Node.GetInt("batch_dims", 0);
            if (batchDims < 0) throw op.Unsupported($"batch_dims {batchDims} (must be non-negative)");
            return new LambdaKernel(ctx =>
            {
                var data = ctx.RequiredInput(0);
                var indices = ctx.RequiredInput(1);
                var (outShape, map) = NdMap(ctx, data.Dims, indices, (int)batchDims, out _);
                var result = ctx.Allocate(data.ElementType, outShape);
                DataMovement.GatherMap(data, result, map);
                ctx.SetOutput(0, result);
            });
        }, minVersion: 11)
        {
            DifferentiableInputs = [0],
            // dData = ScatterND(zeros, indices, dY, reduction add) (the adjoint of the gather; PyTorch index backward:
            // index_put with accumulate); our GatherNDGrad kernel before opset 16 or with batch_dims.
            Vjp = ctx =>
            {
                long batchDims = ctx.Node.GetInt("batch_dims", 0);
                return [GatherVjp(ctx, "GatherNDGrad", batchDims == 0 ? "ScatterND" : "", OnnxAttribute.FromInt("batch_dims", batchDims))];
            },
        });
    }

    /// <summary>
    /// Gather without allocating, for int64 or int32 indices and outputs up to <see cref="OpArgs.StackRank"/> dimensions:
    /// the output is [outer, n, inner] with outer = Π data[:a], n = |indices|, inner = Π data[a+1:], and row (o, j) is
    /// the contiguous run data[o, indices[j], :] (ONNX spec "Gather"), copied whole. False leaves the general path to run.
    /// </summary>
    private static bool TryGatherRows(KernelContext ctx, OnnxTensor data, OnnxTensor indices, int a)
    {
        int outRank = data.Rank - 1 + indices.Rank;
        if (indices.ElementType is not (DataType.Int64 or DataType.Int32) || outRank > OpArgs.StackRank || data.ElementType == DataType.String) return false;
        int dim = data.Dims[a];
        int n = checked((int)indices.ElementCount);
        for (int j = 0; j < n; j++)
        {
            long v = IndexAt(indices, j);
            if (v < -dim || v >= dim) throw ctx.Invalid($"indices value {v} is out of range for a dimension of size {dim}");
        }
        Span<int> outShape = stackalloc int[OpArgs.StackRank];
        int r = 0;
        for (int d = 0; d < a; d++) outShape[r++] = data.Dims[d];
        foreach (int d in indices.Dims) outShape[r++] = d;
        for (int d = a + 1; d < data.Rank; d++) outShape[r++] = data.Dims[d];
        var result = ctx.AllocateUninitialized(data.ElementType, outShape[..r]);
        int outer = (int)OpArgs.Product(data.Dims, 0, a);
        int inner = (int)OpArgs.Product(data.Dims, a + 1, data.Rank);
        var rows = new GatherRowsAction(indices, outer, dim, inner);
        DataMovement.Dispatch(data, result, ref rows);
        ctx.SetOutput(0, result);
        return true;
    }

    /// <summary>Index <paramref name="j"/> of an int64 or int32 tensor.</summary>
    private static long IndexAt(OnnxTensor indices, int j) =>
        indices.ElementType == DataType.Int64 ? indices.AsSpan<long>()[j] : indices.AsSpan<int>()[j];

    /// <summary>dst[o, j, :] = src[o, wrap(indices[j]), :] for the checked indices of <see cref="TryGatherRows"/>.</summary>
    private readonly struct GatherRowsAction(OnnxTensor indices, int outer, int dim, int inner) : DataMovement.IUnitAction
    {
        public void Run<T>(Span<T> src, Span<T> dst)
        {
            int n = (int)indices.ElementCount;
            for (int o = 0; o < outer; o++)
                for (int j = 0; j < n; j++)
                {
                    long v = IndexAt(indices, j);
                    if (v < 0) v += dim;
                    src.Slice((int)((o * (long)dim + v) * inner), inner).CopyTo(dst.Slice((int)((o * (long)n + j) * inner), inner));
                }
        }
    }

    /// <summary>The indices as ints in [0, dim): negative ones wrap once; anything else out of range is invalid.</summary>
    internal static int[] Indices(KernelContext ctx, OnnxTensor indices, int dim, string what)
    {
        var raw = OpArgs.Int64s(ctx, indices, what);
        var result = new int[raw.Length];
        for (int i = 0; i < raw.Length; i++)
        {
            long v = raw[i] < 0 ? raw[i] + dim : raw[i];
            if (v < 0 || v >= dim) throw ctx.Invalid($"{what} value {raw[i]} is out of range for a dimension of size {dim}");
            result[i] = (int)v;
        }
        return result;
    }

    /// <summary>
    /// For GatherElements/ScatterElements: the flat index into a tensor of shape <paramref name="dataShape"/> of each
    /// position of <paramref name="indices"/> (same rank; each other dimension no larger than data's).
    /// </summary>
    internal static int[] ElementsMap(KernelContext ctx, int[] dataShape, OnnxTensor indices, int axis, string what)
    {
        int rank = dataShape.Length;
        if (indices.Rank != rank) throw ctx.Invalid($"{what} of shape {OpArgs.Format(indices.Dims)} must have the rank of data {OpArgs.Format(dataShape)}");
        for (int d = 0; d < rank; d++)
            if (d != axis && indices.Dims[d] > dataShape[d])
                throw ctx.Invalid($"{what} of shape {OpArgs.Format(indices.Dims)} exceed data {OpArgs.Format(dataShape)} on axis {d}");
        var idx = Indices(ctx, indices, dataShape[axis], what);
        var strides = Broadcast.ContiguousStrides(dataShape);
        var shape = indices.Dims;
        var map = new int[idx.Length];
        var coord = new int[rank];
        long offset = 0; // data offset of coord, without the axis term
        for (int i = 0; i < idx.Length; i++)
        {
            map[i] = (int)(offset + idx[i] * strides[axis]);
            for (int d = rank - 1; d >= 0; d--)
            {
                if (d != axis) offset += strides[d];
                if (++coord[d] < shape[d]) break;
                if (d != axis) offset -= strides[d] * coord[d];
                coord[d] = 0;
            }
        }
        return map;
    }

    /// <summary>
    /// For GatherND/ScatterND: the output (gathered) shape and, for each of its elements in row-major order, the flat
    /// index into data. <paramref name="sliceSize"/> is the element count of one selected slice.
    /// </summary>
    internal static (int[] Shape, int[] Map) NdMap(KernelContext ctx, int[] dataShape, OnnxTensor indices, int batchDims, out int sliceSize)
    {
        int r = dataShape.Length, q = indices.Rank;
        if (q < 1) throw ctx.Invalid("indices must have rank 1 or more");
        int m = indices.Dims[q - 1];
        if (batchDims >= Math.Min(q, r)) throw ctx.Invalid($"batch_dims {batchDims} is too large for data rank {r} and indices rank {q}");
        if (m < 1 || m > r - batchDims) throw ctx.Invalid($"index tuples of length {m} do not fit data rank {r} with batch_dims {batchDims}");
        for (int d = 0; d < batchDims; d++)
            if (indices.Dims[d] != dataShape[d]) throw ctx.Invalid($"batch dimension {d} differs: data {OpArgs.Format(dataShape)}, indices {OpArgs.Format(indices.Dims)}");
        var raw = OpArgs.Int64s(ctx, indices, "indices");
        var strides = Broadcast.ContiguousStrides(dataShape);
        sliceSize = (int)OpArgs.Product(dataShape, batchDims + m, r);
        long batchStride = batchDims == 0 ? 0 : strides[batchDims - 1];
        long batchCount = OpArgs.Product(dataShape, 0, batchDims);
        long tuplesPerBatch = OpArgs.Product(indices.Dims, batchDims, q - 1);
        var shape = indices.Dims[..(q - 1)].Concat(dataShape[(batchDims + m)..]).ToArray();
        var map = new int[checked(batchCount * tuplesPerBatch * sliceSize)];
        int pos = 0;
        for (long b = 0; b < batchCount; b++)
        {
            for (long t = 0; t < tuplesPerBatch; t++)
            {
                long tuple = (b * tuplesPerBatch + t) * m;
                long offset = b * batchStride;
                for (int k = 0; k < m; k++)
                {
                    int dim = dataShape[batchDims + k];
                    long v = raw[tuple + k] < 0 ? raw[tuple + k] + dim : raw[tuple + k];
                    if (v < 0 || v >= dim) throw ctx.Invalid($"index {raw[tuple + k]} is out of range for dimension {batchDims + k} of size {dim}");
                    offset += v * strides[batchDims + k];
                }
                for (int s = 0; s < sliceSize; s++) map[pos++] = (int)(offset + s);
            }
        }
        return (shape, map);
    }
}
