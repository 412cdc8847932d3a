using System.Numerics;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// BitShift (ONNX "BitShift", version 11): x shifted left or right (attribute <c>direction</c>) by y bits, unsigned
/// integers, broadcast. A shift by the bit width or more gives 0 (C leaves it undefined; numpy gives 0).
/// </summary>
internal sealed class BitShiftKernel(bool left) : Kernel
{
    public static Kernel Create(OpContext op)
    {
        Elementwise.RequireTypes(op, 0, Elementwise.UnsignedIntTypes);
        Elementwise.RequireTypes(op, 1, Elementwise.UnsignedIntTypes);
        return op.Node.GetString("direction", "") switch
        {
            "LEFT" => new BitShiftKernel(true),
            "RIGHT" => new BitShiftKernel(false),
            var d => throw op.Unsupported($"direction '{d}' (must be LEFT or RIGHT)"),
        };
    }

    public override void Run(KernelContext ctx)
    {
        var x = ctx.RequiredInput(0);
        var s = ctx.RequiredInput(1);
        if (x.ElementType != s.ElementType)
            throw ctx.Invalid($"inputs have different element types ({DataTypes.OnnxName(x.ElementType)}, {DataTypes.OnnxName(s.ElementType)})");
        var loop = BroadcastLoop.Of(ctx, x.Dims, s.Dims);
        var y = ctx.Allocate(x.ElementType, loop.OutShape);
        int t = ctx.Options.Threads;
        switch (x.ElementType)
        {
            case DataType.UInt8: Shift(loop, Elementwise.Data<byte>(x), Elementwise.Data<byte>(s), Elementwise.Data<byte>(y), t); break;
            case DataType.UInt16: Shift(loop, Elementwise.Data<ushort>(x), Elementwise.Data<ushort>(s), Elementwise.Data<ushort>(y), t); break;
            case DataType.UInt32: Shift(loop, Elementwise.Data<uint>(x), Elementwise.Data<uint>(s), Elementwise.Data<uint>(y), t); break;
            case DataType.UInt64: Shift(loop, Elementwise.Data<ulong>(x), Elementwise.Data<ulong>(s), Elementwise.Data<ulong>(y), t); break;
            default: throw ctx.Invalid($"element type {DataTypes.OnnxName(x.ElementType)} is not supported");
        }
        ctx.SetOutput(0, y);
    }

    private void Shift<T>(BroadcastLoop loop, T[] x, T[] s, T[] y, int threads) where T : IBinaryInteger<T>, IUnsignedNumber<T>
    {
        int bits = T.Zero.GetByteCount() * 8;
        int sx = loop.InnerStrides[0], ss = loop.InnerStrides[1];
        bool toLeft = left;
        loop.Run(threads, (o, n, off) =>
        {
            int ix = off[0], i2 = off[1];
            for (int i = 0; i < n; i++, ix += sx, i2 += ss)
            {
                ulong by = ulong.CreateTruncating(s[i2]);
                y[o + i] = by >= (ulong)bits ? T.Zero : toLeft ? x[ix] << (int)by : x[ix] >> (int)by;
            }
        });
    }
}
