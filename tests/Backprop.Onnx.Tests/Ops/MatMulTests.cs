using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Ops;

/// <summary>Random inputs, runs and comparisons shared by the MatMul, Conv and pooling tests.</summary>
internal static class LinalgTestData
{
    /// <summary>Uniform values in [-1, 1) from <paramref name="seed"/>.</summary>
    public static double[] Random(int seed, int count)
    {
        var rnd = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => rnd.NextDouble() * 2 - 1)];
    }

    public static int Count(int[] shape) => shape.Aggregate(1, (p, d) => p * d);

    /// <summary>A float or double tensor holding <paramref name="values"/> (rounded to float for float).</summary>
    public static OnnxTensor Tensor(DataType type, double[] values, params int[] shape) => type switch
    {
        DataType.Float => OnnxTensor.FromArray(values.Select(v => (float)v).ToArray(), shape),
        DataType.Double => OnnxTensor.FromArray((double[])values.Clone(), shape),
        _ => throw new ArgumentException($"no test tensors of {type}"),
    };

    /// <summary>The values a float tensor really holds (so references see the same rounded inputs).</summary>
    public static double[] Values(OnnxTensor t) => [.. Enumerable.Range(0, (int)t.ElementCount).Select(i => t.GetDouble(i))];

    /// <summary>Runs one node with <paramref name="threads"/> threads; returns its outputs.</summary>
    public static OnnxTensor[] Run(string opType, OnnxTensor?[] inputs, int threads, int outputCount = 1, long opset = 17, params OnnxAttribute[] attributes)
    {
        if (threads == 1) return SingleNode.Run(opType, inputs, outputCount, opset, attributes);
        var model = SingleNode.Model(opType, inputs, outputCount, opset, "", attributes);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = threads });
        var feeds = new Dictionary<string, OnnxTensor>();
        for (int i = 0; i < inputs.Length; i++) if (inputs[i] is { } t) feeds[$"x{i}"] = t;
        var result = plan.Run(feeds);
        return [.. Enumerable.Range(0, outputCount).Select(i => result[$"y{i}"])];
    }

    /// <summary>Asserts shape, type and every element within atol + rtol·|expected|.</summary>
    public static void AssertClose(double[] expected, int[] shape, OnnxTensor actual, DataType type, string context)
    {
        Assert.AreEqual(type, actual.ElementType, context);
        CollectionAssert.AreEqual(shape, actual.Shape.ToArray(), $"{context}: shape [{string.Join(',', actual.Shape.ToArray())}]");
        double tol = type == DataType.Double ? 1e-12 : 1e-5;
        for (int i = 0; i < expected.Length; i++)
        {
            double a = actual.GetDouble(i);
            Assert.IsTrue(Math.Abs(a - expected[i]) <= tol * (1 + Math.Abs(expected[i])) * 10, $"{context}: element {i} is {a}, expected {expected[i]}");
        }
    }

    public static readonly DataType[] FloatTypes = [DataType.Float, DataType.Double];
}

[TestClass]
public sealed class MatMulTests
{
    /// <summary>numpy.matmul by definition: promote 1-D operands, broadcast batch dimensions, sum over k.</summary>
    private static (double[] Values, int[] Shape) ReferenceMatMul(double[] a, int[] aShape, double[] b, int[] bShape)
    {
        int[] ad = aShape.Length == 1 ? [1, aShape[0]] : aShape, bd = bShape.Length == 1 ? [bShape[0], 1] : bShape;
        int m = ad[^2], k = ad[^1], n = bd[^1];
        int[] ab = ad[..^2], bb = bd[..^2];
        int rank = Math.Max(ab.Length, bb.Length);
        int Dim(int[] s, int i) => i - (rank - s.Length) >= 0 ? s[i - (rank - s.Length)] : 1;
        var batch = Enumerable.Range(0, rank).Select(i => Math.Max(Dim(ab, i), Dim(bb, i))).ToArray();
        int batches = LinalgTestData.Count(batch);
        var result = new double[batches * m * n];
        var coord = new int[rank];
        for (int p = 0; p < batches; p++)
        {
            int rest = p;
            for (int i = rank - 1; i >= 0; i--) { coord[i] = rest % batch[i]; rest /= batch[i]; }
            int Flat(int[] s)
            {
                int f = 0;
                for (int i = 0; i < s.Length; i++) f = f * s[i] + (s[i] == 1 ? 0 : coord[i + rank - s.Length]);
                return f;
            }
            int ao = Flat(ab) * m * k, bo = Flat(bb) * k * n;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int q = 0; q < k; q++) s += a[ao + i * k + q] * b[bo + q * n + j];
                    result[(p * m + i) * n + j] = s;
                }
        }
        var shape = new List<int>(batch);
        if (aShape.Length > 1) shape.Add(m);
        if (bShape.Length > 1) shape.Add(n);
        return (result, [.. shape]);
    }

    [TestMethod]
    [DataRow(new[] { 3, 4 }, new[] { 4, 5 })]
    [DataRow(new[] { 1, 1 }, new[] { 1, 1 })]
    [DataRow(new[] { 7 }, new[] { 7, 9 })]
    [DataRow(new[] { 5, 7 }, new[] { 7 })]
    [DataRow(new[] { 16 }, new[] { 16 })]
    [DataRow(new[] { 2, 1, 3, 4 }, new[] { 5, 4, 6 })]
    [DataRow(new[] { 1, 3, 4 }, new[] { 2, 4, 6 })]
    [DataRow(new[] { 2, 3, 17 }, new[] { 17, 8 })]
    [DataRow(new[] { 17, 33 }, new[] { 3, 33, 16 })]
    [DataRow(new[] { 9, 0 }, new[] { 0, 4 })]
    [DataRow(new[] { 0, 5 }, new[] { 5, 4 })]
    [DataRow(new[] { 40, 70 }, new[] { 70, 33 })]
    public void MatMul_MatchesReference(int[] aShape, int[] bShape)
    {
        foreach (var type in LinalgTestData.FloatTypes)
            foreach (int threads in new[] { 1, 3 })
            {
                var a = LinalgTestData.Tensor(type, LinalgTestData.Random(1, LinalgTestData.Count(aShape)), aShape);
                var b = LinalgTestData.Tensor(type, LinalgTestData.Random(2, LinalgTestData.Count(bShape)), bShape);
                var (expected, shape) = ReferenceMatMul(LinalgTestData.Values(a), aShape, LinalgTestData.Values(b), bShape);
                var y = LinalgTestData.Run("MatMul", [a, b], threads)[0];
                LinalgTestData.AssertClose(expected, shape, y, type, $"{type} threads={threads}");
            }
    }

    [TestMethod]
    public void MatMul_Int64AndInt32()
    {
        var a = OnnxTensor.FromArray(new long[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var b = OnnxTensor.FromArray(new long[] { 7, 8, 9, 10, 11, 12 }, 3, 2);
        CollectionAssert.AreEqual(new long[] { 58, 64, 139, 154 }, SingleNode.Run("MatMul", [a, b])[0].ToArray<long>());
        var ai = OnnxTensor.FromArray(new[] { 1, -2, 3 }, 3);
        CollectionAssert.AreEqual(new[] { 14 }, SingleNode.Run("MatMul", [ai, ai])[0].ToArray<int>());
    }

    [TestMethod]
    public void MatMul_Float16RoundsThroughFloat()
    {
        var a = OnnxTensor.FromArray(new[] { (Half)1, (Half)2, (Half)3, (Half)4 }, 2, 2);
        var y = SingleNode.Run("MatMul", [a, a])[0];
        Assert.AreEqual(DataType.Float16, y.ElementType);
        CollectionAssert.AreEqual(new[] { (Half)7, (Half)10, (Half)15, (Half)22 }, y.ToArray<Half>());
    }

    [TestMethod]
    public void MatMul_MismatchedInnerDimensionIsInvalid()
    {
        var a = OnnxTensor.FromArray(new float[6], 2, 3);
        Assert.ThrowsExactly<InvalidInputException>(() => SingleNode.Run("MatMul", [a, a]));
    }

    [TestMethod]
    [DataRow(false, false, 1.0f, 1.0f, new[] { 4, 5 })]
    [DataRow(true, false, 0.5f, 2.0f, new[] { 5 })]
    [DataRow(false, true, 1.0f, -1.0f, new[] { 4, 1 })]
    [DataRow(true, true, 0.25f, 0.35f, new int[0])]
    [DataRow(false, false, 2.0f, 0.0f, new[] { 1, 5 })]
    [DataRow(false, false, 1.0f, 1.0f, null)]
    public void Gemm_MatchesReference(bool transA, bool transB, float alpha, float beta, int[]? cShape)
    {
        int m = 4, n = 5, k = 17;
        foreach (var type in LinalgTestData.FloatTypes)
        {
            var a = LinalgTestData.Tensor(type, LinalgTestData.Random(3, m * k), transA ? [k, m] : [m, k]);
            var b = LinalgTestData.Tensor(type, LinalgTestData.Random(4, k * n), transB ? [n, k] : [k, n]);
            var c = cShape is null ? null : LinalgTestData.Tensor(type, LinalgTestData.Random(5, LinalgTestData.Count(cShape)), cShape);
            double[] av = LinalgTestData.Values(a), bv = LinalgTestData.Values(b), cv = c is null ? [] : LinalgTestData.Values(c);
            var expected = new double[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int q = 0; q < k; q++) s += (transA ? av[q * m + i] : av[i * k + q]) * (transB ? bv[j * k + q] : bv[q * n + j]);
                    double cij = cShape switch
                    {
                        null => 0,
                        [] => cv[0],
                        [_] => cv[j],
                        [_, 1] => cv[i],
                        [1, _] => cv[j],
                        _ => cv[i * n + j],
                    };
                    expected[i * n + j] = (double)alpha * s + (double)beta * cij;
                }
            var y = SingleNode.Run("Gemm", c is null ? [a, b] : [a, b, c], 1, 13,
                OnnxAttribute.FromInt("transA", transA ? 1 : 0), OnnxAttribute.FromInt("transB", transB ? 1 : 0),
                OnnxAttribute.FromFloat("alpha", alpha), OnnxAttribute.FromFloat("beta", beta))[0];
            LinalgTestData.AssertClose(expected, [m, n], y, type, $"{type}");
        }
    }

    [TestMethod]
    public void Gemm_Int64ByHand()
    {
        var a = OnnxTensor.FromArray(new long[] { 1, 2, 3, 4 }, 2, 2);
        var c = OnnxTensor.FromArray(new long[] { 10, 20 }, 2);
        var y = SingleNode.Run("Gemm", [a, a, c])[0];
        CollectionAssert.AreEqual(new long[] { 17, 30, 25, 42 }, y.ToArray<long>());
    }

    /// <summary>numpy.einsum by brute force: every assignment of every label, the product of the operands, summed into the output.</summary>
    private static (double[] Values, int[] Shape) ReferenceEinsum(string equation, double[][] values, int[][] shapes)
    {
        string eq = equation.Replace(" ", "", StringComparison.Ordinal);
        string[] sides = eq.Split("->");
        string[] terms = sides[0].Split(',');
        int ell = 0;
        for (int i = 0; i < terms.Length; i++)
            if (terms[i].Contains("...", StringComparison.Ordinal)) ell = Math.Max(ell, shapes[i].Length - (terms[i].Length - 3));
        string Expand(string term, int rank)
        {
            if (!term.Contains("...", StringComparison.Ordinal)) return term;
            int e = rank < 0 ? ell : rank - (term.Length - 3);
            return term.Replace("...", string.Concat(Enumerable.Range(ell - e, e).Select(j => (char)('0' + j))), StringComparison.Ordinal);
        }
        var labels = terms.Select((t, i) => Expand(t, shapes[i].Length)).ToArray();
        string output = sides.Length > 1 ? Expand(sides[1], -1)
            : string.Concat(Enumerable.Range(0, ell).Select(j => (char)('0' + j)))
              + string.Concat(string.Concat(labels).Where(char.IsLetter).GroupBy(ch => ch).Where(g => g.Count() == 1).Select(g => g.Key).Order());
        var size = new Dictionary<char, int>();
        for (int i = 0; i < labels.Length; i++)
            for (int d = 0; d < labels[i].Length; d++) if (shapes[i][d] != 1 || !size.ContainsKey(labels[i][d])) size[labels[i][d]] = shapes[i][d];
        var all = size.Keys.ToArray();
        var outShape = output.Select(ch => size[ch]).ToArray();
        var result = new double[LinalgTestData.Count(outShape)];
        var value = new Dictionary<char, int>();
        long total = all.Aggregate(1L, (p, ch) => p * size[ch]);
        for (long t = 0; t < total; t++)
        {
            long rest = t;
            foreach (var ch in all) { value[ch] = (int)(rest % size[ch]); rest /= size[ch]; }
            double prod = 1;
            for (int i = 0; i < labels.Length; i++)
            {
                int flat = 0;
                for (int d = 0; d < labels[i].Length; d++) flat = flat * shapes[i][d] + (shapes[i][d] == 1 ? 0 : value[labels[i][d]]);
                prod *= values[i][flat];
            }
            int o = 0;
            foreach (var ch in output) o = o * size[ch] + value[ch];
            result[o] += prod;
        }
        return (result, outShape);
    }

    [TestMethod]
    [DataRow("ij,jk->ik", new[] { 3, 4 }, new[] { 4, 5 }, null)]
    [DataRow("ij,jk", new[] { 3, 4 }, new[] { 4, 5 }, null)]
    [DataRow("i,i", new[] { 5 }, new[] { 5 }, null)]
    [DataRow("ii->i", new[] { 4, 4 }, null, null)]
    [DataRow("iij->j", new[] { 3, 3, 2 }, null, null)]
    [DataRow("...ii ->...i", new[] { 3, 5, 5 }, null, null)]
    [DataRow("bij, bjk -> bik", new[] { 5, 2, 3 }, new[] { 5, 3, 4 }, null)]
    [DataRow("ij->", new[] { 3, 4 }, null, null)]
    [DataRow("ji", new[] { 3, 4 }, null, null)]
    [DataRow("ij->ji", new[] { 3, 4 }, null, null)]
    [DataRow("ij,ij->ij", new[] { 3, 4 }, new[] { 3, 4 }, null)]
    [DataRow("i,j->ij", new[] { 3 }, new[] { 4 }, null)]
    [DataRow("ijk,jil->kl", new[] { 2, 3, 4 }, new[] { 3, 2, 5 }, null)]
    [DataRow("ij,jk,kl->il", new[] { 2, 3 }, new[] { 3, 4 }, new[] { 4, 5 })]
    [DataRow("...ij,...jk->...ik", new[] { 2, 1, 3, 4 }, new[] { 5, 4, 2 }, null)]
    [DataRow("Ab,bA->A", new[] { 3, 2 }, new[] { 2, 3 }, null)]
    [DataRow("bA,Ab", new[] { 2, 3 }, new[] { 3, 2 }, null)]
    [DataRow("ij,j->i", new[] { 17, 9 }, new[] { 9 }, null)]
    [DataRow("i->", new[] { 0 }, null, null)]
    public void Einsum_MatchesBruteForce(string equation, int[] s0, int[]? s1, int[]? s2)
    {
        int[][] shapes = [.. new[] { s0, s1, s2 }.Where(s => s is not null).Select(s => s!)];
        foreach (var type in LinalgTestData.FloatTypes)
        {
            var inputs = shapes.Select((s, i) => LinalgTestData.Tensor(type, LinalgTestData.Random(10 + i, LinalgTestData.Count(s)), s)).ToArray();
            var (expected, shape) = ReferenceEinsum(equation, [.. inputs.Select(LinalgTestData.Values)], shapes);
            var y = SingleNode.Run("Einsum", inputs, 1, 12, OnnxAttribute.FromString("equation", equation))[0];
            LinalgTestData.AssertClose(expected, shape, y, type, $"{equation} {type}");
        }
    }

    /// <summary>One compiled node run on alternating shapes: the kernel's cached plan must follow the shapes.</summary>
    [TestMethod]
    public void Einsum_ReplansWhenShapesChange()
    {
        const string equation = "...ij,...jk->...ik";
        int[][][] runs = [[[2, 3, 4], [4, 5]], [[3, 1], [1, 2]], [[2, 3, 4], [4, 5]], [[0, 2], [2, 3]]];
        var model = SingleNode.Model("Einsum", [.. runs[0].Select(s => LinalgTestData.Tensor(DataType.Double, new double[LinalgTestData.Count(s)], s))],
            1, 12, "", OnnxAttribute.FromString("equation", equation));
        for (int i = 0; i < model.Graph.Inputs.Count; i++) model.Graph.Inputs[i] = new ValueInfo(model.Graph.Inputs[i].Name, DataType.Double, null);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 });
        for (int r = 0; r < runs.Length; r++)
        {
            var inputs = runs[r].Select((s, i) => LinalgTestData.Tensor(DataType.Double, LinalgTestData.Random(r * 2 + i, LinalgTestData.Count(s)), s)).ToArray();
            var (expected, shape) = ReferenceEinsum(equation, [.. inputs.Select(LinalgTestData.Values)], runs[r]);
            var y = plan.Run(new Dictionary<string, OnnxTensor> { ["x0"] = inputs[0], ["x1"] = inputs[1] })["y0"];
            LinalgTestData.AssertClose(expected, shape, y, DataType.Double, $"run {r}");
        }
    }

    [TestMethod]
    public void Einsum_Int64Trace()
    {
        var x = OnnxTensor.FromArray(new long[] { 1, 2, 3, 4 }, 2, 2);
        var y = SingleNode.Run("Einsum", [x], 1, 12, OnnxAttribute.FromString("equation", "ii"))[0];
        Assert.AreEqual(0, y.Rank);
        Assert.AreEqual(5L, y.ToArray<long>()[0]);
    }

    [TestMethod]
    public void Einsum_WrongTermCountIsUnsupported() =>
        Assert.ThrowsExactly<UnsupportedOperatorException>(() =>
            SingleNode.Run("Einsum", [OnnxTensor.FromArray(new float[4], 2, 2)], 1, 12, OnnxAttribute.FromString("equation", "ij,jk->ik")));

    [TestMethod]
    public void MatMulInteger_SubtractsZeroPoints()
    {
        // A = [[11, 7], [3, 250]] (uint8, zero point 3), B = [[1, 2], [3, 4]] (int8, zero point per column [0, 1]).
        var a = OnnxTensor.FromArray(new byte[] { 11, 7, 3, 250 }, 2, 2);
        var b = OnnxTensor.FromArray(new sbyte[] { 1, 2, 3, 4 }, 2, 2);
        var y = SingleNode.Run("MatMulInteger", [a, b, OnnxTensor.Scalar((byte)3), OnnxTensor.FromArray(new sbyte[] { 0, 1 }, 2)], 1, 10)[0];
        // (A − 3) = [[8, 4], [0, 247]]; (B − [0, 1]) = [[1, 1], [3, 3]].
        CollectionAssert.AreEqual(new[] { 20, 20, 741, 741 }, y.ToArray<int>());
    }

    // ---- gradients (finite differences in float64; opset 13+ also checks the exported graph on ONNX Runtime) ----

    [TestMethod]
    [DataRow(new[] { 3, 4 }, new[] { 4, 5 })]
    [DataRow(new[] { 4 }, new[] { 4, 5 })]
    [DataRow(new[] { 3, 4 }, new[] { 4 })]
    [DataRow(new[] { 4 }, new[] { 4 })]
    [DataRow(new[] { 4 }, new[] { 2, 4, 3 })]
    [DataRow(new[] { 2, 3, 4 }, new[] { 4 })]
    [DataRow(new[] { 2, 1, 3, 4 }, new[] { 5, 4, 2 })]
    [DataRow(new[] { 3, 4 }, new[] { 2, 4, 5 })]
    [DataRow(new[] { 2, 3, 4 }, new[] { 4, 5 })]
    public void MatMul_Gradient(int[] aShape, int[] bShape)
    {
        foreach (long opset in new long[] { 9, 17 })
            GradCheck.Op("MatMul", [GradCheck.Random(1, aShape), GradCheck.Random(2, bShape)], opset: opset);
    }

    [TestMethod]
    [DataRow(new[] { 3, 4 }, new[] { 4, 5 })]
    [DataRow(new[] { 4 }, new[] { 2, 4, 3 })]
    [DataRow(new[] { 2, 3, 4 }, new[] { 4 })]
    [DataRow(new[] { 2, 1, 3, 4 }, new[] { 5, 4, 2 })]
    public void MatMul_Gradient_WithoutStaticShapes(int[] aShape, int[] bShape)
    {
        // Operands of rank ≥ 2 are declared without shapes, so the rule cannot see their ranks and emits Einsum with
        // ellipses (a rank-1 operand keeps its shape, which selects the matching equation).
        var inputs = new[] { GradCheck.Random(1, aShape), GradCheck.Random(2, bShape) };
        foreach (long opset in new long[] { 6, 17 })
        {
            var model = SingleNode.Model("MatMul", inputs, 1, opset);
            for (int i = 0; i < 2; i++)
                if (inputs[i].Rank >= 2) model.Graph.Inputs[i] = new ValueInfo($"x{i}", DataType.Double, null);
            var feeds = new Dictionary<string, OnnxTensor> { ["x0"] = inputs[0], ["x1"] = inputs[1] };
            var report = Backprop.Onnx.Verification.GradientCheck.Run(model, feeds, new Backprop.Onnx.Verification.GradientCheckOptions { Seed = 3 });
            Assert.IsTrue(report.Passed, $"opset {opset}: {report}");
        }
    }

    [TestMethod]
    [DataRow(false, false, 1.0f, 1.0f, new[] { 4, 5 })]
    [DataRow(true, false, 0.5f, 2.0f, new[] { 5 })]
    [DataRow(false, true, 1.0f, -1.0f, new[] { 4, 1 })]
    [DataRow(true, true, 0.25f, 0.35f, new int[0])]
    [DataRow(false, false, 2.0f, 0.0f, new[] { 1, 5 })]
    [DataRow(true, false, 1.5f, 1.0f, null)]
    public void Gemm_Gradient(bool transA, bool transB, float alpha, float beta, int[]? cShape)
    {
        int m = 4, n = 5, k = 3;
        var a = GradCheck.Random(1, transA ? [k, m] : [m, k]);
        var b = GradCheck.Random(2, transB ? [n, k] : [k, n]);
        OnnxTensor?[] inputs = cShape is null ? [a, b] : [a, b, GradCheck.Random(3, cShape)];
        var attributes = new[] { OnnxAttribute.FromInt("transA", transA ? 1 : 0), OnnxAttribute.FromInt("transB", transB ? 1 : 0),
            OnnxAttribute.FromFloat("alpha", alpha), OnnxAttribute.FromFloat("beta", beta) };
        GradCheck.Op("Gemm", inputs, attributes, opset: 13);
        if (cShape is not null) GradCheck.Op("Gemm", inputs, attributes, opset: 9);
    }

    [TestMethod]
    [DataRow("ij,jk->ik", new[] { 3, 4 }, new[] { 4, 5 }, null)]
    [DataRow("bij, bjk -> bik", new[] { 2, 2, 3 }, new[] { 2, 3, 4 }, null)]
    [DataRow("i,i", new[] { 5 }, new[] { 5 }, null)]
    [DataRow("ij->", new[] { 3, 4 }, null, null)]
    [DataRow("ij->j", new[] { 3, 4 }, null, null)]
    [DataRow("ijk->ki", new[] { 2, 3, 4 }, null, null)]
    [DataRow("ij,kj", new[] { 3, 4 }, new[] { 2, 4 }, null)]
    [DataRow("ij,j->i", new[] { 3, 4 }, new[] { 4 }, null)]
    [DataRow("ij,jk,kl->il", new[] { 2, 3 }, new[] { 3, 4 }, new[] { 4, 2 })]
    [DataRow("...ij,...jk->...ik", new[] { 2, 3, 3, 4 }, new[] { 2, 3, 4, 2 }, null)]
    public void Einsum_Gradient(string equation, int[] s0, int[]? s1, int[]? s2)
    {
        var inputs = new[] { s0, s1, s2 }.Where(s => s is not null).Select((s, i) => (OnnxTensor?)GradCheck.Random(20 + i, s!)).ToArray();
        GradCheck.Op("Einsum", inputs, [OnnxAttribute.FromString("equation", equation)], opset: 13);
    }

    [TestMethod]
    public void Einsum_Gradient_BroadcastEllipsis() =>
        // ONNX Runtime's Einsum rejects ellipses that differ in rank or size ("Ellipsis represents incompatible
        // dimensions") even in the forward pass, so only our executor can run this broadcasting case.
        GradCheck.Op("Einsum", [GradCheck.Random(1, [2, 1, 3, 4]), GradCheck.Random(2, [3, 4, 2])],
            [OnnxAttribute.FromString("equation", "...ij,...jk->...ik")], opset: 13, onnxRuntime: false);

    [TestMethod]
    public void Einsum_DiagonalGradientIsUnsupported() =>
        Assert.ThrowsExactly<UnsupportedOperatorException>(() =>
            GradCheck.Op("Einsum", [GradCheck.Random(1, [3, 3])], [OnnxAttribute.FromString("equation", "ii->i")], opset: 13));
}
