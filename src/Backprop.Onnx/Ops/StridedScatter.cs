using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The adjoint of a strided view without index tables (Slice): writes a contiguous tensor into a strided window of
/// another, walking the last (merged) axis in an inner loop — a span copy when it is contiguous — instead of building
/// a per-element index map first. Large windows are split along their outermost axis over the kernel's threads (the
/// targets are distinct, so the split changes nothing but who writes).
/// </summary>
internal static class StridedScatter
{
    /// <summary>
    /// dst[baseOffset + Σ_d strides[d]·c_d] = src[i] for every element i of <paramref name="src"/> (contiguous, shape
    /// <paramref name="shape"/>, coordinate c). The target positions must be distinct (non-zero strides).
    /// </summary>
    public static void Run(OnnxTensor src, OnnxTensor dst, int[] shape, long baseOffset, long[] strides, int threads = 1)
    {
        if (src.ElementCount == 0) return;
        // The axis to split: the first one longer than 1 (every axis before it has size 1, so a range of it is a
        // contiguous range of src).
        int axis = 0;
        while (axis < shape.Length - 1 && shape[axis] == 1) axis++;
        int length = shape.Length == 0 ? 1 : shape[axis];
        int chunks = (int)Math.Min(Math.Min(Math.Max(1, threads), length), Math.Max(1, src.ElementCount / DataMovement.ParallelGrain));
        if (chunks <= 1 || src.ElementType == DataType.String)
        {
            var action = new ScatterAction(shape, baseOffset, strides, axis, 0, length);
            DataMovement.Dispatch(src, dst, ref action);
            return;
        }
        ChunkRunner.ForRanges(length, chunks, 0, chunks, (src, dst, shape, baseOffset, strides, axis), static (s, start, end) =>
        {
            var action = new ScatterAction(s.shape, s.baseOffset, s.strides, s.axis, start, end);
            DataMovement.Dispatch(s.src, s.dst, ref action);
        });
    }

    /// <summary>The scatter of the elements whose coordinate on <paramref name="axis"/> lies in [from, to).</summary>
    private readonly struct ScatterAction(int[] shape, long baseOffset, long[] strides, int axis, int from, int to) : DataMovement.IUnitAction
    {
        public void Run<T>(Span<T> src, Span<T> dst)
        {
            if (shape.Length > 0)
            {
                long below = 1;
                for (int d = axis + 1; d < shape.Length; d++) below *= shape[d];
                src = src.Slice(checked((int)(from * below)), checked((int)((to - from) * below)));
            }
            if (src.Length == 0) return;
            // Merge adjacent axes whose target strides are contiguous with each other; drop size-1 axes. The merged
            // axes and the coordinate live on the stack for the usual ranks, so a call allocates nothing.
            int rank = shape.Length;
            Span<int> dims = rank <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[rank];
            Span<long> steps = rank <= OpArgs.StackRank ? stackalloc long[OpArgs.StackRank] : new long[rank];
            int count = 0;
            for (int d = 0; d < rank; d++)
            {
                int size = d == axis ? to - from : shape[d];
                if (size == 1) continue;
                if (count > 0 && steps[count - 1] == strides[d] * size)
                {
                    dims[count - 1] *= size;
                    steps[count - 1] = strides[d];
                }
                else
                {
                    dims[count] = size;
                    steps[count] = strides[d];
                    count++;
                }
            }
            long start = rank == 0 ? baseOffset : baseOffset + from * strides[axis];
            if (count == 0)
            {
                dst[(int)start] = src[0];
                return;
            }
            int inner = dims[count - 1], outer = count - 1;
            long innerStep = steps[count - 1];
            Span<int> coord = outer <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[outer];
            coord = coord[..outer];
            coord.Clear();
            long offset = start;
            for (int i = 0; i < src.Length; i += inner)
            {
                var row = src.Slice(i, inner);
                if (innerStep == 1) row.CopyTo(dst.Slice((int)offset, inner));
                else for (int j = 0; j < inner; j++) dst[(int)(offset + j * innerStep)] = row[j];
                for (int d = outer - 1; d >= 0; d--)
                {
                    coord[d]++;
                    offset += steps[d];
                    if (coord[d] < dims[d]) break;
                    offset -= steps[d] * coord[d];
                    coord[d] = 0;
                }
            }
        }
    }
}
