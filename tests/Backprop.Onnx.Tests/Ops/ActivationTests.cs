using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>Activation ops against their spec formulas written here as scalar loops in double; float32 and float64, each attribute.</summary>
[TestClass]
public sealed class ActivationTests
{
    private const double Alpha = 0.7, Beta = 0.3, Gamma = 1.3;

    /// <summary>The spec formula of an op with the attribute values <see cref="Alpha"/>, <see cref="Beta"/> (and Gamma, lambd, bias) as given, or the defaults.</summary>
    private static Func<double, double> Formula(string opType, bool defaults)
    {
        double F(double v) => (float)v; // attributes are float32 in ONNX
        double a = defaults ? 0 : F(Alpha), b = defaults ? 0 : F(Beta), g = F(Gamma);
        return opType switch
        {
            "Relu" => x => Math.Max(x, 0),
            "LeakyRelu" => x => x >= 0 ? x : (defaults ? F(0.01) : a) * x,
            "Elu" => x => x >= 0 ? x : (defaults ? 1 : a) * (Math.Exp(x) - 1),
            "Selu" => x => defaults
                ? F(1.05070102214813232421875) * (x > 0 ? x : F(1.67326319217681884765625) * (Math.Exp(x) - 1))
                : g * (x > 0 ? x : a * (Math.Exp(x) - 1)),
            "Celu" => x => Math.Max(0, x) + Math.Min(0, (defaults ? 1 : a) * (Math.Exp(x / (defaults ? 1 : a)) - 1)),
            "HardSigmoid" => x => Math.Max(0, Math.Min(1, (defaults ? F(0.2) : a) * x + (defaults ? 0.5 : b))),
            "HardSwish" => x => x * Math.Max(0, Math.Min(1, x / 6 + 0.5)),
            "Softplus" => x => Math.Log(Math.Exp(x) + 1),
            "Softsign" => x => x / (1 + Math.Abs(x)),
            "Sigmoid" => x => 1 / (1 + Math.Exp(-x)),
            "Shrink" => x => defaults ? (x < -0.5 ? x : x > 0.5 ? x : 0) : (x < -a ? x + b : x > a ? x - b : 0),
            "ThresholdedRelu" => x => x > (defaults ? 1 : a) ? x : 0,
            _ => throw new ArgumentException(opType),
        };
    }

    private static OnnxAttribute[] Attributes(string opType, bool defaults) => defaults ? [] : opType switch
    {
        "LeakyRelu" or "Elu" or "Celu" or "ThresholdedRelu" => [OnnxAttribute.FromFloat("alpha", (float)Alpha)],
        "Selu" => [OnnxAttribute.FromFloat("alpha", (float)Alpha), OnnxAttribute.FromFloat("gamma", (float)Gamma)],
        "HardSigmoid" => [OnnxAttribute.FromFloat("alpha", (float)Alpha), OnnxAttribute.FromFloat("beta", (float)Beta)],
        "Shrink" => [OnnxAttribute.FromFloat("lambd", (float)Alpha), OnnxAttribute.FromFloat("bias", (float)Beta)],
        _ => [],
    };

    /// <summary>Every activation, with default attributes and (where it has any) explicit ones.</summary>
    public static IEnumerable<object[]> Cases =>
    [
        ["Relu", true], ["LeakyRelu", true], ["LeakyRelu", false], ["Elu", true], ["Elu", false], ["Selu", true], ["Selu", false],
        ["Celu", true], ["Celu", false], ["HardSigmoid", true], ["HardSigmoid", false], ["HardSwish", true], ["Softplus", true],
        ["Softsign", true], ["Sigmoid", true], ["Shrink", true], ["Shrink", false], ["ThresholdedRelu", true], ["ThresholdedRelu", false],
    ];

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void Activation_MatchesSpecFormula(string opType, bool defaults)
    {
        var f = Formula(opType, defaults);
        var attrs = Attributes(opType, defaults);
        foreach (int n in ElementwiseTests.Lengths)
        {
            int seed = 100 + n;
            var x = Ref.Uniform(seed, n, -4, 4);
            if (n > 2) { x[0] = 0; x[1] = -0.5; x[2] = 0.5; } // boundaries of Relu, Shrink and friends
            var y64 = SingleNode.Run(opType, [OnnxTensor.FromArray(x, n)], attributes: attrs)[0];
            Ref.AssertClose([.. x.Select(f)], y64, 1e-14, $"{opType} float64 n={n} seed={seed}");
            var x32 = x.Select(v => (float)v).ToArray();
            var y32 = SingleNode.Run(opType, [OnnxTensor.FromArray(x32, n)], attributes: attrs)[0];
            Ref.AssertClose([.. x32.Select(v => (double)(float)f(v))], y32, 2e-6, $"{opType} float32 n={n} seed={seed}");
        }
    }

    [TestMethod]
    public void Softplus_DoesNotOverflowForLargeInputs()
    {
        var y = SingleNode.Run("Softplus", [OnnxTensor.FromArray(new[] { 1000.0, -1000.0, 30.0 }, 3)])[0].ToArray<double>();
        CollectionAssert.AreEqual(new[] { 1000.0, 0.0, 30.0 + Math.Log(1 + Math.Exp(-30)) }, y);
    }

    [TestMethod]
    public void Relu_OnIntegers()
    {
        var y = SingleNode.Run("Relu", [OnnxTensor.FromArray(new[] { -3, 0, 5 }, 3)], opset: 14)[0];
        CollectionAssert.AreEqual(new[] { 0, 0, 5 }, y.ToArray<int>());
    }

    [TestMethod]
    [DataRow("2,3,4", "", 17L)]
    [DataRow("2,3,4", "3,1", 17L)]
    [DataRow("2,3,4", "4", 17L)]
    [DataRow("2,3,4", "2,3,4", 17L)]
    [DataRow("2,3,4,5", "3", 6L)] // before version 7: a 1-D slope is per channel (dimension 1)
    [DataRow("1,17", "1", 6L)]
    public void PRelu_BroadcastsSlopeToX(string xShape, string slopeShape, long opset)
    {
        int[] sx = Ref.Shape(xShape), ss = Ref.Shape(slopeShape);
        int[] sEff = opset < 7 && ss.Length == 1 && ss[0] == sx[1] && ss[0] != 1 ? [ss[0], .. Enumerable.Repeat(1, sx.Length - 2)] : ss;
        var x = Ref.Uniform(3, Ref.Count(sx), -2, 2);
        var s = Ref.Uniform(4, Ref.Count(ss), 0, 1);
        var expected = Enumerable.Range(0, x.Length).Select(i => x[i] < 0 ? s[Ref.SourceIndex(i, sx, sEff)] * x[i] : x[i]).ToArray();
        foreach (bool f32 in new[] { false, true })
        {
            var y = SingleNode.Run("PRelu", [Ref.Tensor(x, sx, f32), Ref.Tensor(s, ss, f32)], opset: opset)[0];
            CollectionAssert.AreEqual(sx, y.Shape.ToArray());
            Ref.AssertClose(expected, y, f32 ? 1e-6 : 1e-15, $"PRelu float32={f32}");
        }
    }

    [TestMethod]
    public void PRelu_SlopeLargerThanX_IsInvalidInput()
    {
        Assert.ThrowsExactly<InvalidInputException>(() =>
            SingleNode.Run("PRelu", [OnnxTensor.FromArray(new float[3], 3), OnnxTensor.FromArray(new float[6], 2, 3)]));
    }

    /// <summary>Points where the op's derivative jumps, for the attribute values the tests use.</summary>
    private static double[] Kinks(string opType, bool defaults)
    {
        double a = (float)Alpha, b = (float)Beta;
        return opType switch
        {
            "Relu" or "LeakyRelu" or "Elu" or "Selu" or "Celu" or "PRelu" => [0],
            "HardSigmoid" => defaults ? [-2.5, 2.5] : [-b / a, (1 - b) / a],
            "HardSwish" => [-3, 3],
            "Shrink" => defaults ? [-0.5, 0.5] : [-a, a],
            "ThresholdedRelu" => [defaults ? 1 : a],
            _ => [],
        };
    }

    /// <summary>Seeded values in [-4, 4], none within 0.02 of a kink (a central difference there would straddle it).</summary>
    private static OnnxTensor AwayFromKinks(int seed, int[] shape, double[] kinks)
    {
        var x = GradCheck.Random(seed, shape, -4, 4);
        var d = x.AsSpan<double>();
        for (int i = 0; i < d.Length; i++)
            foreach (double k in kinks) if (Math.Abs(d[i] - k) < 0.02) d[i] = k + 0.05;
        return x;
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void Activation_GradientMatchesFiniteDifferences(string opType, bool defaults)
    {
        foreach (int[] shape in new[] { new[] { 2, 3 }, [5, 17] })
            GradCheck.Op(opType, [AwayFromKinks(shape.Sum(), shape, Kinks(opType, defaults))], Attributes(opType, defaults));
    }

    [TestMethod]
    [DataRow("2,3,4", "", 17L)]
    [DataRow("2,3,4", "3,1", 17L)]
    [DataRow("2,3,4", "4", 17L)]
    [DataRow("2,3,4", "2,3,4", 17L)]
    [DataRow("2,3,4,5", "3", 6L)]
    public void PRelu_GradientsOfXAndSlope(string xShape, string slopeShape, long opset)
    {
        GradCheck.Op("PRelu", [AwayFromKinks(1, Ref.Shape(xShape), [0]), GradCheck.Random(2, Ref.Shape(slopeShape), 0.1, 0.9)], opset: opset);
    }

    [TestMethod]
    public void Relu_AtZero_PassesNoGradient()
    {
        CollectionAssert.AreEqual(new[] { 0.0, 0, 3 }, ElementwiseTests.Vjp("Relu", [OnnxTensor.FromArray(new[] { -1.0, 0, 1 }, 3)], [1, 2, 3], 0));
        // Before opset 9 (no Where) the rule selects by arithmetic.
        CollectionAssert.AreEqual(new[] { 0.0, 0, 3 }, ElementwiseTests.Vjp("Relu", [OnnxTensor.FromArray(new[] { -1.0, 0, 1 }, 3)], [1, 2, 3], 0, opset: 6));
        CollectionAssert.AreEqual(new[] { -1.0, 0, 3 }, ElementwiseTests.Vjp("Abs", [OnnxTensor.FromArray(new[] { -1.0, 0, 1 }, 3)], [1, 2, 3], 0, opset: 6));
    }
}
