using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Conv's input gradient at stride 1 as a forward convolution: with Y[co, oy, ox] = Σ W[co, ci, i, j] ·
/// X[ci, oy − ph + i·dh, ox − pw + j·dw], substituting i' = kh − 1 − i (j' likewise) gives
/// dX[ci, y, x] = Σ_{co, i', j'} Wᵀ[ci, co, i', j'] · dY_pad[co, y + i'·dh, x + j'·dw], Wᵀ[ci, co, i', j'] = W[co, ci, kh − 1 − i', kw − 1 − j'],
/// with dY zero-padded by (kh − 1)·dh − ph rows on top and (kh − 1)·dh − ph_end at the bottom (columns alike): the
/// "full" correlation with the flipped, transposed kernel that PyTorch's <c>convolution_backward</c> and cuDNN's
/// backward-data run (Dumoulin and Visin, "A guide to convolution arithmetic for deep learning", 2016, §4.1). It runs
/// through <see cref="ConvForwardDirect{T}"/>, whose register blocks (6 or 4 output channels × 4 column vectors, or
/// channel vectors for narrow rows) fill more lanes than the 4-channel × 96-position blocks of
/// <see cref="InputGradDirect"/> on LeNet's conv2 (16 → 6 channels, 14-wide rows: 0.82 → 0.72 ms on one thread). Both compute the padded "full" correlation, about twice the multiply-adds of the forward (dY rows 10 wide padded to 18): a scatter form or skipping the taps that read only padding rows is the next step.
/// </summary>
/// <remarks>
/// Every dX element is one fused multiply-add chain over (co, i', j') from zero, the same for every thread count. The
/// zero padding of dY times W adds nothing only for a finite W; the caller takes this path for a finite W only (as the
/// other padded paths). A non-finite dY reaches exactly the dX elements whose windows read it, as in col2im.
/// </remarks>
internal static partial class ConvOps
{
    /// <summary>
    /// Each resolved shape's transposed shape, made once (ConvGrad's resolver keeps one shape object per node, so a
    /// steady-state step looks them up without allocating; a one-slot cache would thrash between a model's convolutions).
    /// </summary>
    private static readonly ConditionalWeakTable<ConvShape, ConvShape> s_transposedShapes = new();

    /// <summary>
    /// Whether <see cref="InputGradByForward{T}"/> can compute dX of <paramref name="s"/>: 2-D, ungrouped, stride 1, a
    /// leading pad at most the dilated kernel extent (the transposed pad is not negative), and the transposed convolution
    /// fits the forward direct kernel (<see cref="UseDirect"/>).
    /// </summary>
    internal static bool CanUseInputGradByForward(ConvShape s)
    {
        if (s.Input.Length != 2 || s.Group != 1 || s.N < 1 || s.C < 1 || s.M < 1) return false;
        if (s.Strides[0] != 1 || s.Strides[1] != 1 || s.Output[0] < 1 || s.Output[1] < 1 || s.Input[0] < 1 || s.Input[1] < 1) return false;
        if (s.PadBegin[0] > (s.Kernel[0] - 1) * s.Dilations[0] || s.PadBegin[1] > (s.Kernel[1] - 1) * s.Dilations[1]) return false;
        return UseDirect(TransposedShape(s));
    }

    /// <summary>Whether ConvBackward takes <see cref="InputGradByForward{T}"/> for a finite W.</summary>
    internal static bool UseInputGradByForward(ConvShape s) => CanUseInputGradByForward(s);

    /// <summary>
    /// The shape of dX as a forward convolution (see the type summary): dY's M channels in, C out, the input's plane out,
    /// leading pads (k − 1)·d − p_begin. The trailing pad is implied by the output size; where the original's trailing pad
    /// reaches past the kernel extent, the dY rows that read only padding are simply not read (they add nothing to dX).
    /// </summary>
    private static ConvShape TransposedShape(ConvShape s)
    {
        return s_transposedShapes.GetValue(s, static s =>
        {
            int[] pads = [(s.Kernel[0] - 1) * s.Dilations[0] - s.PadBegin[0], (s.Kernel[1] - 1) * s.Dilations[1] - s.PadBegin[1]];
            return new ConvShape(s.N, s.M, s.C, 1, [.. s.Output], [.. s.Kernel], [.. s.Input], [1, 1], [.. s.Dilations], pads);
        });
    }

    /// <summary>dX (written) of a stride-1 Conv by a forward direct convolution of dY with Wᵀ; the caller checked <see cref="UseInputGradByForward"/> and that W is finite.</summary>
    internal static void InputGradByForward<T>(T[] dy, T[] w, T[] dx, ConvShape s, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var t = TransposedShape(s);
        int kh = s.Kernel[0], kw = s.Kernel[1], taps = kh * kw;
        T[] wt = ArrayPool<T>.Shared.Rent(s.C * s.M * taps);
        try
        {
            // Wᵀ[ci, co, i', j'] = W[co, ci, kh − 1 − i', kw − 1 − j'].
            for (int ci = 0; ci < s.C; ci++)
                for (int co = 0; co < s.M; co++)
                {
                    var from = w.AsSpan((co * s.C + ci) * taps, taps);
                    var to = wt.AsSpan((ci * s.M + co) * taps, taps);
                    for (int k = 0; k < taps; k++) to[k] = from[taps - 1 - k];
                }
            ConvForwardDirect(dy, wt, null, dx, t, threads);
        }
        finally
        {
            ArrayPool<T>.Shared.Return(wt);
        }
    }
}
