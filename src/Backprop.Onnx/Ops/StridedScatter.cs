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
            // Merge adjacent axes whose target strides are contiguous with each other; drop size-1 axes.
            var dims = new List<int>();
            var steps = new List<long>();
            for (int d = 0; d < shape.Length; d++)
            {
                if (shape[d] == 1) continue;
                if (dims.Count > 0 && steps[^1] == strides[d] * shape[d])
                {
                    dims[^1] *= shape[d];
                    steps[^1] = strides[d];
                }
                else
                {
                    dims.Add(shape[d]);
                    steps.Add(strides[d]);
                }
            }
            if (dims.Count == 0)
            {
                dst[(int)baseOffset] = src[0];
                return;
            }
            int inner = dims[^1], outer = dims.Count - 1;
            long innerStep = steps[^1];
            var coord = new int[outer];
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
