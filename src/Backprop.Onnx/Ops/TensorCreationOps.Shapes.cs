using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

internal static partial class TensorCreationOps
{
    private static void RegisterFromShapes(List<OpDefinition> ops)
    {
        // ConstantOfShape (ONNX spec "ConstantOfShape", version 9): a tensor of the shape given by the int64 input,
        // every element the one-element 'value' attribute (default float 0).
        ops.Add(new OpDefinition("ConstantOfShape", op =>
        {
            var value = op.Node.GetTensor("value") ?? OpArgs.ScalarOf(DataType.Float, 0);
            if (value.ElementCount != 1) throw op.Unsupported($"'value' must hold one element, not {value.ElementCount}");
            if (!DataMovement.IsMovable(value.ElementType)) throw op.Unsupported($"'value' of element type {DataTypes.OnnxName(value.ElementType)}");
            return new LambdaKernel(ctx =>
            {
                Span<long> scratch = stackalloc long[OpArgs.StackRank];
                var shapeArg = OpArgs.Int64s(ctx, ctx.RequiredInput(0), "shape", scratch);
                Span<int> shape = shapeArg.Length <= OpArgs.StackRank ? stackalloc int[OpArgs.StackRank] : new int[shapeArg.Length];
                shape = shape[..shapeArg.Length];
                OpArgs.Dims(ctx, shapeArg, shape, "shape");
                ctx.SetOutput(0, DataMovement.Filled(ctx, value, shape));
            });
        }, minVersion: 9)
        {
            InferTypes = op => [op.Node.GetTensor("value")?.ElementType ?? DataType.Float],
            NonDifferentiable = true,
        });

        // EyeLike (ONNX spec "EyeLike", version 9): a 2-D tensor shaped like the input with ones on the k-th diagonal
        // (column = row + k) and zeros elsewhere, of element type 'dtype' (default: the input's).
        ops.Add(new OpDefinition("EyeLike", op =>
        {
            var dtype = op.Node.FindAttribute("dtype") is null ? (DataType?)null : (DataType)op.Node.GetInt("dtype", 0);
            if (dtype is { } t && !OpArgs.IsNumeric(t)) throw op.Unsupported($"dtype {DataTypes.OnnxName(t)} (implemented: numeric types and bool)");
            if (dtype is null && op.InputType(0) is var it && it != DataType.Undefined && !OpArgs.IsNumeric(it))
                throw op.Unsupported($"input of element type {DataTypes.OnnxName(it)}");
            long k = op.Node.GetInt("k", 0);
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                if (x.Rank != 2) throw ctx.Invalid($"expects a 2-D input, got shape {OpArgs.Format(x.Dims)}");
                var type = dtype ?? x.ElementType;
                if (!OpArgs.IsNumeric(type)) throw ctx.Invalid($"no ones of element type {DataTypes.OnnxName(type)}");
                int rows = x.Dims[0], cols = x.Dims[1];
                var map = new List<int>();
                for (int i = 0; i < rows; i++)
                {
                    long j = i + k;
                    if (j >= 0 && j < cols) map.Add((int)(i * (long)cols + j));
                }
                var result = ctx.Allocate(type, x.Dims);
                var ones = DataMovement.Filled(ctx, OpArgs.ScalarOf(type, 1), [map.Count]);
                DataMovement.ScatterMap(ones, result, [.. map]);
                ctx.SetOutput(0, result);
            });
        }, minVersion: 9)
        {
            InferTypes = op => [op.Node.FindAttribute("dtype") is null ? op.InputType(0) : (DataType)op.Node.GetInt("dtype", 0)],
            NonDifferentiable = true,
        });

        // Range (ONNX spec "Range", version 11): start, start+delta, ... up to (excluding) limit, from three scalars of
        // one type; max(ceil((limit - start) / delta), 0) elements.
        ops.Add(new OpDefinition("Range", op =>
        {
            op.RequireInputType(0, DataType.Float, DataType.Double, DataType.Int16, DataType.Int32, DataType.Int64);
            return new LambdaKernel(ctx =>
            {
                var start = ctx.RequiredInput(0);
                var limit = ctx.RequiredInput(1);
                var delta = ctx.RequiredInput(2);
                if (start.ElementCount != 1 || limit.ElementCount != 1 || delta.ElementCount != 1) throw ctx.Invalid("start, limit and delta must be scalars");
                var type = start.ElementType;
                if (limit.ElementType != type || delta.ElementType != type) throw ctx.Invalid("start, limit and delta must have one element type");
                ctx.SetOutput(0, Range(ctx, type, start, limit, delta));
            });
        }, minVersion: 11)
        {
            NonDifferentiable = true,
        });

        // OneHot (ONNX spec "OneHot", versions 9, 11): for each index, a vector of 'depth' elements equal to
        // values[0] (off) except values[1] (on) at the index; negative indices count from depth, indices outside
        // [-depth, depth) give all-off vectors. The new dimension is inserted at axis (default -1, the last).
        ops.Add(new OpDefinition("OneHot", op =>
        {
            DataMovement.RequireMovable(op, 2);
            long axis = op.Node.GetInt("axis", -1);
            return new LambdaKernel(ctx =>
            {
                var indices = ctx.RequiredInput(0);
                var depthTensor = ctx.RequiredInput(1);
                var values = ctx.RequiredInput(2);
                if (depthTensor.ElementCount != 1) throw ctx.Invalid("depth must hold one element");
                if (values.ElementCount != 2) throw ctx.Invalid($"values must hold two elements [off, on], got {values.ElementCount}");
                double depthValue = depthTensor.GetDouble(0);
                if (!(depthValue >= 1 && depthValue <= int.MaxValue)) throw ctx.Invalid($"depth {depthValue} must be a positive integer");
                int depth = (int)depthValue;
                int rank = indices.Rank + 1;
                int a = OpArgs.Axis(ctx, axis, rank);
                var shape = new int[rank];
                for (int d = 0, s = 0; d < rank; d++) shape[d] = d == a ? depth : indices.Dims[s++];
                var result = ctx.Allocate(values.ElementType, shape);
                DataMovement.Fill(result, values, 0);
                long inner = OpArgs.Product(indices.Dims, a, indices.Rank);
                var map = new List<int>();
                for (long i = 0; i < indices.ElementCount; i++)
                {
                    double v = Math.Truncate(indices.GetDouble(i));
                    if (v < 0) v += depth;
                    if (v < 0 || v >= depth) continue;
                    long outer = i / inner, r = i % inner;
                    map.Add((int)((outer * depth + (long)v) * inner + r));
                }
                var on = ctx.Allocate(values.ElementType, [map.Count]);
                DataMovement.Fill(on, values, 1);
                DataMovement.ScatterMap(on, result, [.. map]);
                ctx.SetOutput(0, result);
            });
        }, minVersion: 9)
        {
            InferTypes = op => [op.InputType(2)],
            NonDifferentiable = true,
        });
    }

    private static OnnxTensor Range(KernelContext ctx, DataType type, OnnxTensor start, OnnxTensor limit, OnnxTensor delta)
    {
        if (DataTypes.IsInteger(type))
        {
            long s = OpArgs.ScalarInt64(ctx, start, "start"), l = OpArgs.ScalarInt64(ctx, limit, "limit"), d = OpArgs.ScalarInt64(ctx, delta, "delta");
            if (d == 0) throw ctx.Invalid("delta is 0");
            long diff = l - s;
            long n = d > 0 ? (diff <= 0 ? 0 : (diff + d - 1) / d) : (diff >= 0 ? 0 : (diff + d + 1) / d);
            if (n > Array.MaxLength) throw ctx.Invalid($"Range of {n} elements is too large");
            var result = ctx.Allocate(type, [(int)n]);
            for (int i = 0; i < n; i++) SetInteger(result, i, s + i * d);
            return result;
        }
        else
        {
            double s = start.GetDouble(0), l = limit.GetDouble(0), d = delta.GetDouble(0);
            if (d == 0) throw ctx.Invalid("delta is 0");
            double count = Math.Max(Math.Ceiling((l - s) / d), 0);
            if (!(count <= Array.MaxLength)) throw ctx.Invalid($"Range of {count} elements is too large");
            int n = (int)count;
            var result = ctx.Allocate(type, [n]);
            if (type == DataType.Float) { var y = result.AsSpan<float>(); for (int i = 0; i < n; i++) y[i] = (float)(s + i * d); }
            else { var y = result.AsSpan<double>(); for (int i = 0; i < n; i++) y[i] = s + i * d; }
            return result;
        }
    }

    private static void SetInteger(OnnxTensor t, int i, long v)
    {
        switch (t.ElementType)
        {
            case DataType.Int64: t.AsSpan<long>()[i] = v; break;
            case DataType.Int32: t.AsSpan<int>()[i] = (int)v; break;
            case DataType.Int16: t.AsSpan<short>()[i] = (short)v; break;
            default: throw new InvalidOperationException($"Range of {DataTypes.OnnxName(t.ElementType)}");
        }
    }
}
