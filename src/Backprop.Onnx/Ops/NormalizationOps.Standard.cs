using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using static Backprop.Onnx.Ops.ReductionOps;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Standard-op forms (opset 13+) of the normalization gradient kernels, for export as model-local functions. They
/// spell out the same formulas as the kernels (see the rules' comments) with ReduceSum over axes tensors.
/// </summary>
internal static partial class NormalizationOps
{
    /// <summary>BatchNormalizationGrad: statistics and sums per channel over every axis but 1.</summary>
    private static string[] BatchNormGradStandard(GraphEmitter e, Node node)
    {
        string dy = node.Inputs[0], x = node.Inputs[1], scale = node.Inputs[2], mean = node.Inputs[3], variance = node.Inputs[4];
        string dRunMean = node.InputOrEmpty(5), dRunVar = node.InputOrEmpty(6);
        var type = DType(node);
        bool training = node.GetInt("training_mode", 0) != 0;
        string C(double v) => e.Scalar(v, type);
        string axes = AxesButChannel(e, x);
        string Ch(string v) => AlongChannel(e, v, x);
        string count = SizeRatio(e, x, scale, type);
        if (training)
        {
            mean = e.Div(SumOver(e, x, axes, false), count);
            string dev = e.Sub(x, Ch(mean));
            variance = e.Div(SumOver(e, e.Mul(dev, dev), axes, false), count);
        }
        string centered = e.Sub(x, Ch(mean));
        string r = e.Reciprocal(e.Sqrt(e.Add(variance, C(node.GetFloat("epsilon", 1e-5f)))));
        string a = e.Mul(scale, r);
        string sdy = dy.Length > 0 ? SumOver(e, dy, axes, false) : ZerosOf(e, scale, type);
        string sdyxc = dy.Length > 0 ? SumOver(e, e.Mul(dy, centered), axes, false) : ZerosOf(e, scale, type);
        string dScale = e.Mul(sdyxc, r), dB = sdy;
        string dx, dMean, dVar;
        if (training)
        {
            // dX = a·dY + b + c·(X − μ), b = −a·Σ dY/M (+ (1−m)·d running_mean/M), c = −a·r²·Σ dY·(X − μ)/M (+ 2(1−m)·d running_var/M)
            string m = C(node.GetFloat("momentum", 0.9f)), keep = e.Sub(C(1), m);
            string b = e.Neg(e.Div(e.Mul(a, sdy), count));
            string c = e.Neg(e.Div(e.Mul(e.Mul(a, e.Mul(r, r)), sdyxc), count));
            dMean = ZerosOf(e, scale, type);
            dVar = ZerosOf(e, scale, type);
            if (dRunMean.Length > 0) { b = e.Add(b, e.Div(e.Mul(keep, dRunMean), count)); dMean = e.Mul(m, dRunMean); }
            if (dRunVar.Length > 0) { c = e.Add(c, e.Div(e.Mul(e.Add(keep, keep), dRunVar), count)); dVar = e.Mul(m, dRunVar); }
            dx = e.Add(e.Mul(centered, Ch(c)), Ch(b));
            if (dy.Length > 0) dx = e.Add(dx, e.Mul(dy, Ch(a)));
        }
        else
        {
            dx = dy.Length > 0 ? e.Mul(dy, Ch(a)) : ZerosOf(e, x, type);
            dMean = e.Neg(e.Mul(a, sdy));
            dVar = e.Mul(C(-0.5), e.Mul(e.Mul(a, e.Mul(r, r)), sdyxc));
        }
        return [dx, dScale, dB, dMean, dVar];
    }

    /// <summary>InstanceNormalizationGrad: statistics per (instance, channel) over the spatial axes 2…rank-1.</summary>
    private static string[] InstanceNormGradStandard(GraphEmitter e, Node node)
    {
        string dy = node.Inputs[0], x = node.Inputs[1], scale = node.Inputs[2];
        var type = DType(node);
        string spatial = AxesFrom(e, e.Int64s(2), x);
        string mean = SumOver(e, x, spatial, true);
        string count = SizeRatio(e, x, mean, type);
        mean = e.Div(mean, count);
        string centered = e.Sub(x, mean);
        string variance = e.Div(SumOver(e, e.Mul(centered, centered), spatial, true), count);
        string r = e.Reciprocal(e.Sqrt(e.Add(variance, e.Scalar(node.GetFloat("epsilon", 1e-5f), type))));
        string a = e.Mul(AlongChannel(e, scale, x), r);
        string sdy = SumOver(e, dy, spatial, true);
        string sdyxc = SumOver(e, e.Mul(dy, centered), spatial, true);
        // dX = a·dY − a·Σ dY/S − (X − μ)·a·r²·Σ dY·(X − μ)/S
        string dx = e.Sub(e.Sub(e.Mul(a, dy), e.Div(e.Mul(a, sdy), count)), e.Div(e.Mul(centered, e.Mul(e.Mul(a, e.Mul(r, r)), sdyxc)), count));
        string batchAxes = e.Int64s(0);
        string dScale = e.Reshape(SumOver(e, e.Mul(sdyxc, r), batchAxes, false), e.Int64s(-1));
        string dB = e.Reshape(SumOver(e, sdy, batchAxes, false), e.Int64s(-1));
        return [dx, dScale, dB];
    }

    /// <summary>LayerNormalizationGrad: statistics per row over axes axis…rank-1; Scale/B gradients summed to their shapes.</summary>
    private static string[] LayerNormGradStandard(GraphEmitter e, Node node)
    {
        string dy = node.Inputs[0], x = node.Inputs[1], scale = node.Inputs[2], bias = node.InputOrEmpty(3);
        string dMean = node.InputOrEmpty(4), dInv = node.InputOrEmpty(5);
        var type = DType(node);
        long axis = node.GetInt("axis", -1);
        string first = axis >= 0 ? e.Int64s(axis) : e.Add(RankVector(e, x), e.Int64s(axis));
        string axes = AxesFrom(e, first, x);
        string mean = SumOver(e, x, axes, true);
        string count = SizeRatio(e, x, mean, type);
        mean = e.Div(mean, count);
        string centered = e.Sub(x, mean);
        string r = e.Reciprocal(e.Sqrt(e.Add(e.Div(SumOver(e, e.Mul(centered, centered), axes, true), count), e.Scalar(node.GetFloat("epsilon", 1e-5f), type))));
        // dX = r·g + b + (X − μ)·c with g = dY·Scale, b = −r·mean(g) + dMean/N, c = −r²·mean(g·(X − μ))·r − dInvStdDev·r³/N
        string b = ZerosOf(e, mean, type), c = ZerosOf(e, mean, type), dx = ZerosOf(e, x, type);
        string dScale = ZerosOf(e, scale, type), dB = bias.Length > 0 ? ZerosOf(e, bias, type) : "";
        if (dy.Length > 0)
        {
            string g = e.Mul(dy, scale);
            b = e.Neg(e.Div(e.Mul(r, SumOver(e, g, axes, true)), count));
            c = e.Neg(e.Div(e.Mul(e.Mul(r, e.Mul(r, r)), SumOver(e, e.Mul(g, centered), axes, true)), count));
            dx = e.Mul(r, g);
            dScale = SumTo(e, e.Mul(dy, e.Mul(centered, r)), e.Shape(scale));
            if (bias.Length > 0) dB = SumTo(e, dy, e.Shape(bias));
        }
        if (dMean.Length > 0) b = e.Add(b, e.Div(dMean, count));
        if (dInv.Length > 0) c = e.Sub(c, e.Div(e.Mul(dInv, e.Mul(r, e.Mul(r, r))), count));
        dx = e.Add(e.Add(dx, b), e.Mul(centered, c));
        return [dx, dScale, bias.Length > 0 ? dB : ZerosOf(e, scale, type)];
    }
}
