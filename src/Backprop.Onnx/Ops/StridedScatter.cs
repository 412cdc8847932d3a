using Backprop.Onnx.IR;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The adjoint of a strided view without index tables (Slice): writes a contiguous tensor into a strided window of
/// another, walking the last (merged) axis in an inner loop — a span copy when it is contiguous — instead of building
/// a per-element index map first.
/// </summary>
internal static class StridedScatter
{
    /// <summary>
    /// dst[baseOffset + Σ_d strides[d]·c_d] = src[i] for every element i of <paramref name="src"/> (contiguous, shape
    /// <paramref name="shape"/>, coordinate c). The target positions must be distinct (non-zero strides).
    /// </summary>
    public static void Run(OnnxTensor src, OnnxTensor dst, int[] shape, long baseOffset, long[] strides)
    {
        var action = new ScatterAction(shape, baseOffset, strides);
        DataMovement.Dispatch(src, dst, ref action);
    }

    private readonly struct ScatterAction(int[] shape, long baseOffset, long[] strides) : DataMovement.IUnitAction
    {
        public void Run<T>(Span<T> src, Span<T> dst)
        {
            if (src.Length == 0) return;
            // Merge adjacent axes whose target strides are contiguous with each other; drop size-1 axes. The merged
            // axes and the coordinate live on the stack for the usual ranks, so a call allocates nothing.
            int rank = shape.Length;
            Span<int> dims = rank <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[rank];
            Span<long> steps = rank <= OpArgs.StackRank ? stackalloc long[OpArgs.StackRank] : new long[rank];
            int count = 0;
            for (int d = 0; d < rank; d++)
            {
                if (shape[d] == 1) continue;
                if (count > 0 && steps[count - 1] == strides[d] * shape[d])
                {
                    dims[count - 1] *= shape[d];
                    steps[count - 1] = strides[d];
                }
                else
                {
                    dims[count] = shape[d];
                    steps[count] = strides[d];
                    count++;
                }
            }
            if (count == 0)
            {
                dst[(int)baseOffset] = src[0];
                return;
            }
            int inner = dims[count - 1], outer = count - 1;
            long innerStep = steps[count - 1];
            Span<int> coord = outer <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[outer];
            coord = coord[..outer];
            coord.Clear();
            long offset = baseOffset;
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
