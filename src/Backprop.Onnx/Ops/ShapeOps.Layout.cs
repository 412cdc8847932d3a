using Backprop.Onnx.Autodiff;
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
            int[]? perm = null;   // validated once per input rank
            return new LambdaKernel(ctx =>
            {
                var x = ctx.RequiredInput(0);
                if (perm is null || perm.Length != x.Rank) perm = Permutation(ctx, permAttr, x.Rank);
                ctx.SetOutput(0, Transpose(ctx, x, perm));
            });
        })
        {
            // dX = Transpose(dY, inverse(perm)) (PyTorch derivatives.yaml permute: grad.permute(inverse dims)); the
            // default reversal is its own inverse.
            Vjp = ctx => [ctx.Node.GetInts("perm") is { } p
                ? ctx.Emit.Transpose(ctx.OutputGrad(0)!, InversePermutation(p))
                : ctx.Emit.Op("Transpose", ctx.OutputGrad(0)!)],
        });

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
        })
        {
            // DepthToSpace permutes elements, so dX is dY moved back: SpaceToDepth(dY) for DCR (its exact inverse, ONNX
            // spec); for CRD, SpaceToDepth gives the DCR channel order k*C'+c, which a channel transpose turns into c*b²+k.
            Vjp = DepthToSpaceVjp,
        });

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
        })
        {
            // dX = DepthToSpace(dY, blocksize, DCR): the inverse permutation (ONNX spec: SpaceToDepth is the reverse of
            // DepthToSpace in DCR mode).
            Vjp = ctx =>
            {
                var attrs = new List<OnnxAttribute> { OnnxAttribute.FromInt("blocksize", ctx.Node.GetInt("blocksize", 0)) };
                if (ctx.Emit.OpsetVersion >= 11) attrs.Add(OnnxAttribute.FromString("mode", "DCR"));
                return [ctx.Emit.Op("DepthToSpace", [ctx.OutputGrad(0)!], [.. attrs])];
            },
        });
    }

    private static string?[] DepthToSpaceVjp(GradientContext ctx)
    {
        long b = ctx.Node.GetInt("blocksize", 0);
        var e = ctx.Emit;
        string s = e.Op("SpaceToDepth", [ctx.OutputGrad(0)!], OnnxAttribute.FromInt("blocksize", b));
        if (ctx.OpsetVersion < 11 || ctx.Node.GetString("mode", "DCR") == "DCR") return [s];
        // s: [N, b²C', H, W] with channel k*C' + c  →  [N, H, W, b², C']  →  [N, C', b², H, W]  →  Shape(X).
        string t = e.Reshape(e.Transpose(s, 0, 2, 3, 1), e.Int64s(0, 0, 0, b * b, -1));
        return [e.Reshape(e.Transpose(t, 0, 4, 3, 1, 2), e.Shape(ctx.Input(0)))];
    }

    /// <summary>The inverse of a permutation (negative entries count from the back, as the forward kernel accepts).</summary>
    internal static long[] InversePermutation(long[] perm)
    {
        var inverse = new long[perm.Length];
        for (int i = 0; i < perm.Length; i++) inverse[perm[i] < 0 ? perm[i] + perm.Length : perm[i]] = i;
        return inverse;
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
