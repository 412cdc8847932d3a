using System.Numerics;
using Backprop.Onnx.IR;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Runs one generic numeric loop at the storage type of a tensor element type: float, double, float16 and every
/// integer type (not bool, bfloat16 or string). Used by the indexing ops that compute (TopK, CumSum, scatter
/// reductions).
/// </summary>
internal static class NumericDispatch
{
    /// <summary>A loop written once for any numeric storage type <c>T</c>.</summary>
    internal interface IAction
    {
        void Run<T>() where T : unmanaged, INumber<T>;
    }

    /// <summary>True when <see cref="Run"/> handles <paramref name="type"/>.</summary>
    public static bool Supports(DataType type) =>
        type is DataType.Float or DataType.Double or DataType.Float16 || DataTypes.IsInteger(type);

    /// <summary>Throws Unsupported at factory time when input <paramref name="index"/>'s known type is not numeric.</summary>
    public static void Require(OpContext op, int index, string what)
    {
        var t = op.InputType(index);
        if (t != DataType.Undefined && !Supports(t))
            throw op.Unsupported($"{what} of element type {DataTypes.OnnxName(t)} (implemented: float, double, float16 and the integer types)");
    }

    /// <summary>dst[map[i]] += src[i] for every i with map[i] ≥ 0 (the adjoint of a gather; repeated targets accumulate).</summary>
    public static void AddAt(OnnxTensor dst, OnnxTensor src, int[] map)
    {
        var action = new AddAtAction(dst, src, map);
        Run(dst.ElementType, ref action);
    }

    private readonly struct AddAtAction(OnnxTensor dst, OnnxTensor src, int[] map) : IAction
    {
        public void Run<T>() where T : unmanaged, INumber<T>
        {
            var d = dst.AsSpan<T>();
            var s = src.AsSpan<T>();
            for (int i = 0; i < map.Length; i++) if (map[i] >= 0) d[map[i]] += s[i];
        }
    }

    /// <summary>Calls <c>action.Run&lt;T&gt;()</c> with T the storage type of <paramref name="type"/>.</summary>
    public static void Run<TAction>(DataType type, ref TAction action) where TAction : struct, IAction
    {
        switch (type)
        {
            case DataType.Float: action.Run<float>(); break;
            case DataType.Double: action.Run<double>(); break;
            case DataType.Float16: action.Run<Half>(); break;
            case DataType.Int8: action.Run<sbyte>(); break;
            case DataType.UInt8: action.Run<byte>(); break;
            case DataType.Int16: action.Run<short>(); break;
            case DataType.UInt16: action.Run<ushort>(); break;
            case DataType.Int32: action.Run<int>(); break;
            case DataType.UInt32: action.Run<uint>(); break;
            case DataType.Int64: action.Run<long>(); break;
            case DataType.UInt64: action.Run<ulong>(); break;
            default: throw new InvalidOperationException($"no numeric kernel for element type {DataTypes.OnnxName(type)}");
        }
    }
}
