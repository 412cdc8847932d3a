using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>The vectorized comparisons behind Greater/Less/Equal…: the same bools as the scalar operators, NaN included.</summary>
[TestClass]
public sealed class SimdCompareTests
{
    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(7)]
    [DataRow(8)]
    [DataRow(15)]
    [DataRow(16)]
    [DataRow(17)]
    [DataRow(33)]
    [DataRow(1000)]
    public void MatchesTheScalarOperators(int n)
    {
        var random = new Random(n);
        double Value(int i) => (i % 11) switch { 0 => double.NaN, 1 => 0.0, 2 => -0.0, 3 => double.PositiveInfinity, _ => Math.Round(random.NextDouble() * 4 - 2, 1) };
        var a = Enumerable.Range(0, n).Select(Value).ToArray();
        var b = Enumerable.Range(0, n).Select(Value).ToArray();
        Check<GreaterOp>(a, b, (x, y) => x > y);
        Check<LessOp>(a, b, (x, y) => x < y);
        Check<EqualOp>(a, b, (x, y) => x == y);
        Check<GreaterOrEqualOp>(a, b, (x, y) => x >= y);
        Check<LessOrEqualOp>(a, b, (x, y) => x <= y);
    }

    private static void Check<TOp>(double[] a, double[] b, Func<double, double, bool> op) where TOp : ICompareOp
    {
        int n = a.Length;
        var fa = a.Select(v => (float)v).ToArray();
        var fb = b.Select(v => (float)v).ToArray();
        foreach (int sa in new[] { 0, 1 })
            foreach (int sb in new[] { 0, 1 })
            {
                if (n == 0 && (sa == 0 || sb == 0)) continue;
                var expected = Enumerable.Range(0, n).Select(i => op(a[i * sa], b[i * sb])).ToArray();
                var y = new bool[n];
                Assert.IsTrue(SimdCompare.TryRun<double, TOp>(a, sa, b, sb, y));
                CollectionAssert.AreEqual(expected, y, $"double {typeof(TOp).Name} n={n} sa={sa} sb={sb} (seed {n})");
                var yf = new bool[n];
                Assert.IsTrue(SimdCompare.TryRun<float, TOp>(fa, sa, fb, sb, yf));
                CollectionAssert.AreEqual(expected, yf, $"float {typeof(TOp).Name} n={n} sa={sa} sb={sb} (seed {n})");
                Assert.IsTrue(yf.All(v => System.Runtime.CompilerServices.Unsafe.As<bool, byte>(ref v) <= 1), "bools are 0 or 1");
            }
    }

    [TestMethod]
    public void IntegersAreLeftToTheScalarLoop() =>
        Assert.IsFalse(SimdCompare.TryRun<int, GreaterOp>(new int[4], 1, new int[4], 1, new bool[4]));
}
