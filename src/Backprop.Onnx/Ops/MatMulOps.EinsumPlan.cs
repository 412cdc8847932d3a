using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>Einsum's plan for one set of input shapes: the contractions and gathers, computed once and run every call.</summary>
internal static partial class MatMulOps
{
    /// <summary>An Einsum planned for <paramref name="InputDims"/>: the pairwise contractions left to right, then the final gather (null: none).</summary>
    private sealed class EinsumPlan(int[][] InputDims, EinsumContraction[] Steps, EinsumGather? Final)
    {
        /// <summary>True when the inputs have the shapes this plan was made for.</summary>
        public bool Fits(OnnxTensor[] inputs)
        {
            if (inputs.Length != InputDims.Length) return false;
            for (int i = 0; i < inputs.Length; i++)
                if (!inputs[i].Dims.AsSpan().SequenceEqual(InputDims[i])) return false;
            return true;
        }

        public OnnxTensor Run(KernelContext ctx, OnnxTensor[] inputs)
        {
            var current = inputs[0];
            for (int i = 0; i < Steps.Length; i++) current = Steps[i].Run(ctx, current, inputs[i + 1]);
            return Final is null ? current : Final.Run(ctx, current);
        }
    }

    /// <summary>One batched GEMM of two operands, each first gathered into (batch, rows, cols) order unless it already is (null gather).</summary>
    private sealed record EinsumContraction(EinsumGather? X, EinsumGather? Y, bool TransA, bool TransB, int M, int N, int K, int[] Dims, long[] AOff, long[] BOff)
    {
        public OnnxTensor Run(KernelContext ctx, OnnxTensor x, OnnxTensor y)
        {
            var xs = X is null ? x : X.Run(ctx, x);
            var ys = Y is null ? y : Y.Run(ctx, y);
            // The product overwrites every element (k = 0 clears it).
            var result = ctx.AllocateUninitialized(x.ElementType, Dims);
            BatchedMultiply(xs, AOff, ys, BOff, result, M, N, K, TransA, TransB, ctx.Options.Threads);
            return result;
        }
    }

    /// <summary>
    /// A strided gather of a tensor into a contiguous one of <paramref name="Dims"/> (target strides <paramref name="TStrides"/>),
    /// summing over the dimensions <paramref name="SDims"/> with strides <paramref name="SStrides"/> (none: a permutation).
    /// </summary>
    private sealed record EinsumGather(int[] Dims, long[] TStrides, int[] SDims, long[] SStrides)
    {
        public OnnxTensor Run(KernelContext ctx, OnnxTensor src)
        {
            // A permutation writes every element; a sum accumulates into zeros.
            var result = SDims.Length > 0 ? ctx.Allocate(src.ElementType, Dims) : ctx.AllocateUninitialized(src.ElementType, Dims);
            switch (src.ElementType)
            {
                case DataType.Float: GatherSum<float>(src, result); break;
                case DataType.Double: GatherSum<double>(src, result); break;
                case DataType.Int32: GatherSum<int>(src, result); break;
                case DataType.Int64: GatherSum<long>(src, result); break;
                case DataType.UInt32: GatherSum<uint>(src, result); break;
                case DataType.UInt64: GatherSum<ulong>(src, result); break;
                default: throw new InvalidOperationException($"Einsum does not support {DataTypes.OnnxName(src.ElementType)}");
            }
            return result;
        }

        /// <summary>
        /// dst[t] = Σ_s src[t, s] over the summed dimensions s in row-major order (dst is zero when anything is summed),
        /// walking the last target dimension in an inner loop.
        /// </summary>
        private void GatherSum<T>(OnnxTensor source, OnnxTensor result) where T : INumber<T>
        {
            var src = source.AsSpan<T>();
            var dst = result.AsSpan<T>();
            if (dst.Length == 0) return;
            long sCount = 1;
            foreach (int d in SDims) sCount *= d;
            // Inner loop: the last target dimension (a scalar output is one run of length 1).
            int inner = Dims.Length == 0 ? 1 : Dims[^1];
            long innerStride = Dims.Length == 0 ? 0 : TStrides[^1];
            int outer = Math.Max(0, Dims.Length - 1);
            var oDims = Dims.AsSpan(0, outer);
            var oStrides = TStrides.AsSpan(0, outer);
            Span<int> oCoord = stackalloc int[oDims.Length];
            Span<int> sCoord = stackalloc int[SDims.Length];
            long oOffset = 0;
            for (int o = 0; o < dst.Length; o += inner)
            {
                var row = dst.Slice(o, inner);
                if (SDims.Length == 0)
                {
                    if (innerStride == 1) src.Slice((int)oOffset, inner).CopyTo(row);
                    else for (int j = 0; j < inner; j++) row[j] = src[(int)(oOffset + j * innerStride)];
                }
                else
                {
                    long sOffset = 0;
                    for (long s = 0; s < sCount; s++)
                    {
                        long at = oOffset + sOffset;
                        for (int j = 0; j < inner; j++) row[j] += src[(int)(at + j * innerStride)];
                        Step(sCoord, SDims, SStrides, ref sOffset);
                    }
                }
                Step(oCoord, oDims, oStrides, ref oOffset);
            }
        }
    }

    /// <summary>Advances a row-major odometer and its strided offset by one position (wrapping to zero at the end).</summary>
    private static void Step(Span<int> coord, ReadOnlySpan<int> dims, ReadOnlySpan<long> strides, ref long offset)
    {
        for (int d = dims.Length - 1; d >= 0; d--)
        {
            coord[d]++;
            offset += strides[d];
            if (coord[d] < dims[d]) return;
            offset -= strides[d] * coord[d];
            coord[d] = 0;
        }
    }
}
