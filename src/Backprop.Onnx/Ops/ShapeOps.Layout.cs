using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

internal static partial class ShapeOps
{
    private static void RegisterLayout(List<OpDefinition> ops)
    {
        // Transpose (ONNX spec "Transpose", versions 1, 13): output dimension i is input dimension perm[i]; perm
        // defaults to the reversed dimensions.
        ops.Add(new OpDefinition("Transpose", op =>
        {
            DataMovement.RequireMovable(op, 0);
            long[]? permAttr = op.Node.GetInts("perm");
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                var perm = Permutation(ctx, permAttr, x.Rank);
                ctx.SetOutput(0, DataMovement.Permute(ctx, x, x.Dims, perm));
            });
        }));

        // DepthToSpace (ONNX spec "DepthToSpace", versions 1, 11, 13): moves blocks of the channel dimension into
        // blocksize x blocksize spatial blocks of an [N,C,H,W] tensor. DCR (the default, and the only mode before
        // opset 11): channel = (by*b + bx)*C' + c; CRD: channel = c*b*b + by*b + bx.
        ops.Add(new OpDefinition("DepthToSpace", op =>
        {
            DataMovement.RequireMovable(op, 0);
            int b = BlockSize(op);
            string mode = op.OpsetVersion >= 11 ? op.Node.GetString("mode", "DCR") : "DCR";
            if (mode is not ("DCR" or "CRD")) throw op.Unsupported($"mode '{mode}' (expected DCR or CRD)");
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                var (n, c, h, w) = Nchw(ctx, x);
                if (c % (b * b) != 0) throw ctx.Invalid($"channels {c} are not divisible by blocksize² {b * b}");
                int cOut = c / (b * b);
                // View the input as 6-D and permute it to [N, C', H, b, W, b].
                var y = mode == "DCR"
                    ? DataMovement.Permute(ctx, x, [n, b, b, cOut, h, w], [0, 3, 4, 1, 5, 2])
                    : DataMovement.Permute(ctx, x, [n, cOut, b, b, h, w], [0, 1, 4, 2, 5, 3]);
                ctx.SetOutput(0, y.Reshape([n, cOut, h * b, w * b]));
            });
        }));

        // SpaceToDepth (ONNX spec "SpaceToDepth", versions 1, 13): the inverse of DepthToSpace in DCR mode; each
        // blocksize x blocksize spatial block becomes b*b channels, channel = (by*b + bx)*C + c.
        ops.Add(new OpDefinition("SpaceToDepth", op =>
        {
            DataMovement.RequireMovable(op, 0);
            int b = BlockSize(op);
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                var (n, c, h, w) = Nchw(ctx, x);
                if (h % b != 0 || w % b != 0) throw ctx.Invalid($"spatial size {h}x{w} is not divisible by blocksize {b}");
                var y = DataMovement.Permute(ctx, x, [n, c, h / b, b, w / b, b], [0, 3, 5, 1, 2, 4]);
                ctx.SetOutput(0, y.Reshape([n, c * b * b, h / b, w / b]));
            });
        }));
    }

    /// <summary>The permutation of Transpose: the attribute validated against the rank, or the reversed dimensions.</summary>
    internal static int[] Permutation(KernelContext ctx, long[]? perm, int rank)
    {
        if (perm is null) return [.. Enumerable.Range(0, rank).Reverse()];
        if (perm.Length != rank) throw ctx.Invalid($"perm [{string.Join(',', perm)}] does not match rank {rank}");
        var result = new int[rank];
        var seen = new bool[rank];
        for (int i = 0; i < rank; i++)
        {
            long p = perm[i] < 0 ? perm[i] + rank : perm[i];
            if (p < 0 || p >= rank || seen[p]) throw ctx.Invalid($"perm [{string.Join(',', perm)}] is not a permutation of 0..{rank - 1}");
            seen[p] = true;
            result[i] = (int)p;
        }
        return result;
    }

    private static int BlockSize(OpContext op)
    {
        long b = op.Node.GetInt("blocksize", 0);
        if (b < 1 || b > int.MaxValue) throw op.Unsupported($"blocksize {b} (must be a positive integer)");
        return (int)b;
    }

    private static (int N, int C, int H, int W) Nchw(KernelContext ctx, OnnxTensor x)
    {
        if (x.Rank != 4) throw ctx.Invalid($"expects a 4-D [N,C,H,W] input, got shape {OpArgs.Format(x.Dims)}");
        return (x.Dims[0], x.Dims[1], x.Dims[2], x.Dims[3]);
    }
}
