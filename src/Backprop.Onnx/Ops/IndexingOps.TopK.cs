using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

internal static partial class IndexingOps
{
    private static void RegisterTopK(List<OpDefinition> ops)
    {
        // TopK (ONNX spec "TopK", versions 1, 10, 11): the k largest (or, from opset 11, smallest) elements along axis
        // and their int64 indices; k is an attribute in version 1 and an input from 10. Equal values keep the lower
        // index first, as the spec requires; NaN counts as larger than every number (as NumPy and PyTorch sort it).
        // The output is always sorted (the spec leaves the order free when sorted=0).
        ops.Add(new OpDefinition("TopK", op =>
        {
            NumericDispatch.Require(op, 0, "TopK");
            long axis = op.Node.GetInt("axis", -1);
            bool largest = op.Node.GetInt("largest", 1) != 0;
            long? attrK = null;
            if (op.OpsetVersion < 10) attrK = op.Node.FindAttribute("k") is null ? throw op.Unsupported("TopK-1 needs the 'k' attribute") : op.Node.GetInt("k", 0);
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                long k = attrK ?? OpArgs.ScalarInt64(ctx, ctx.RequiredInput(1), "k");
                int a = OpArgs.Axis(ctx, axis, x.Rank);
                int n = x.Dims[a];
                if (k < 0 || k > n) throw ctx.Invalid($"k = {k} is out of range for axis {a} of size {n}");
                if (!NumericDispatch.Supports(x.ElementType)) throw ctx.Invalid($"TopK of {DataTypes.OnnxName(x.ElementType)}");
                var shape = x.Dims.ToArray();
                shape[a] = (int)k;
                var values = ctx.Allocate(x.ElementType, shape);
                var indices = ctx.Allocate(DataType.Int64, shape);
                var action = new TopKAction(x, values, indices, (int)OpArgs.Product(x.Dims, 0, a), n, (int)OpArgs.Product(x.Dims, a + 1, x.Rank), (int)k, largest);
                NumericDispatch.Run(x.ElementType, ref action);
                ctx.SetOutput(0, values);
                ctx.SetOutput(1, indices);
            });
        })
        {
            InferTypes = op => [op.InputType(0), DataType.Int64],
            DifferentiableInputs = [0],
            Vjp = TopKVjp,
        });
    }

    private readonly struct TopKAction(OnnxTensor x, OnnxTensor values, OnnxTensor indices, int outer, int n, int inner, int k, bool largest) : NumericDispatch.IAction
    {
        public void Run<T>() where T : unmanaged, INumber<T>
        {
            var src = x.AsSpan<T>();
            var dstValues = values.AsSpan<T>();
            var dstIndices = indices.AsSpan<long>();
            var buf = new T[n];
            var order = new int[n];
            bool descending = largest;
            int Compare(int i, int j)
            {
                int c = CompareNaNLast(buf[i], buf[j]);
                if (descending) c = -c;
                return c != 0 ? c : i.CompareTo(j);
            }
            for (int o = 0; o < outer; o++)
            {
                for (int r = 0; r < inner; r++)
                {
                    int baseIn = o * n * inner + r;
                    for (int i = 0; i < n; i++) { buf[i] = src[baseIn + i * inner]; order[i] = i; }
                    Array.Sort(order, Compare);
                    int baseOut = o * k * inner + r;
                    for (int j = 0; j < k; j++)
                    {
                        dstValues[baseOut + j * inner] = buf[order[j]];
                        dstIndices[baseOut + j * inner] = order[j];
                    }
                }
            }
        }

        private static int CompareNaNLast<T>(T a, T b) where T : INumber<T>
        {
            bool na = T.IsNaN(a), nb = T.IsNaN(b);
            if (na || nb) return na == nb ? 0 : na ? 1 : -1;
            return a < b ? -1 : a > b ? 1 : 0;
        }
    }
}
