using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Training;

/// <summary>Each attached loss against its PyTorch definition, evaluated by hand here on small inputs.</summary>
[TestClass]
public sealed class LossesTests
{
    private static OnnxModel IdentityModel(int[] shape)
    {
        var m = new OnnxModel { IrVersion = 8 };
        m.OpsetImports.Add(new OpsetImport("", 13));
        m.Graph.Inputs.Add(new ValueInfo("x", DataType.Double, [.. shape.Select(d => Dim.Of(d))]));
        m.Graph.Nodes.Add(new Node("Identity", ["x"], ["y"], "id"));
        m.Graph.Outputs.Add(new ValueInfo("y", DataType.Double, [.. shape.Select(d => Dim.Of(d))]));
        return m;
    }

    private static double Loss(LossOptions options, OnnxTensor x, OnnxTensor labels)
    {
        var model = Losses.Attach(IdentityModel(x.Dims), options);
        var outputs = ExecutionPlan.Compile(model).Run(new Dictionary<string, OnnxTensor> { ["x"] = x, [options.LabelName] = labels });
        return outputs[options.LossName].GetDouble(0);
    }

    private static readonly double[] Logits = [0.5, -1.0, 2.0, 0.1, 0.3, -0.7];
    private static readonly long[] Classes = [2, 0];

    private static double CrossEntropyByHand(double smoothing)
    {
        double total = 0;
        for (int n = 0; n < 2; n++)
        {
            var row = Logits.Skip(3 * n).Take(3).ToArray();
            double lse = Math.Log(row.Sum(Math.Exp));
            var logp = row.Select(v => v - lse).ToArray();
            total += -(1 - smoothing) * logp[Classes[n]] - smoothing * logp.Average();
        }
        return total / 2;
    }

    [TestMethod]
    [DataRow(0.0)]
    [DataRow(0.1)]
    public void CrossEntropy_WithLabelSmoothing_MatchesTorchCrossEntropy(double smoothing)
    {
        double loss = Loss(new LossOptions { LabelSmoothing = smoothing }, OnnxTensor.FromArray(Logits, 2, 3), OnnxTensor.FromArray(Classes, 2));
        Assert.AreEqual(CrossEntropyByHand(smoothing), loss, 1e-12);
    }

    [TestMethod]
    public void CrossEntropy_IgnoreIndex_AveragesOverTheOtherLabels()
    {
        double loss = Loss(new LossOptions { IgnoreIndex = 0 }, OnnxTensor.FromArray(Logits, 2, 3), OnnxTensor.FromArray(Classes, 2));
        var row = Logits.Take(3).ToArray();
        Assert.AreEqual(-(row[2] - Math.Log(row.Sum(Math.Exp))), loss, 1e-12);
    }

    [TestMethod]
    public void RegressionLosses_MatchTheirDefinitions()
    {
        double[] y = [0.5, -2.0, 3.0, 0.25], t = [0.0, 1.0, 0.5, 0.25];
        var x = OnnxTensor.FromArray(y, 4);
        var target = OnnxTensor.FromArray(t, 4);
        var d = y.Zip(t, (a, b) => a - b).ToArray();
        Assert.AreEqual(d.Select(v => v * v).Average(), Loss(new LossOptions { Kind = LossKind.MeanSquaredError }, x, target), 1e-12);
        Assert.AreEqual(d.Select(v => v * v).Sum(), Loss(new LossOptions { Kind = LossKind.MeanSquaredError, Reduction = LossReduction.Sum }, x, target), 1e-12);
        Assert.AreEqual(d.Select(Math.Abs).Average(), Loss(new LossOptions { Kind = LossKind.L1 }, x, target), 1e-12);
        double delta = 1.5;
        double huber = d.Select(v => Math.Abs(v) <= delta ? 0.5 * v * v : delta * (Math.Abs(v) - 0.5 * delta)).Average();
        Assert.AreEqual(huber, Loss(new LossOptions { Kind = LossKind.Huber, HuberDelta = delta }, x, target), 1e-12);
        // binary_cross_entropy_with_logits: −[t·log σ(y) + (1−t)·log(1−σ(y))]
        double bce = y.Zip(t, (a, b) => -(b * Math.Log(1 / (1 + Math.Exp(-a))) + (1 - b) * Math.Log(1 - 1 / (1 + Math.Exp(-a))))).Average();
        Assert.AreEqual(bce, Loss(new LossOptions { Kind = LossKind.BinaryCrossEntropyWithLogits }, x, target), 1e-12);
    }

    [TestMethod]
    public void Attach_RejectsTakenNames_AndUnknownOutputs()
    {
        var model = IdentityModel([2, 3]);
        Assert.ThrowsExactly<ArgumentException>(() => Losses.Attach(model, new LossOptions { LabelName = "x" }));
        Assert.ThrowsExactly<ArgumentException>(() => Losses.Attach(model, new LossOptions { Output = "nope" }));
        Assert.ThrowsExactly<ArgumentException>(() => Losses.Attach(model, new LossOptions { LabelSmoothing = 0.1, Reduction = LossReduction.Sum }));
    }
}
