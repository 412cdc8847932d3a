using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>The AVX transpose the float packers use, against a scalar loop: 8 × 8 and 4 × 8 blocks and ragged edges.</summary>
[TestClass]
public sealed unsafe class GemmTransposeTests
{
    [TestMethod]
    [DataRow(8, 8)]
    [DataRow(12, 16)]
    [DataRow(13, 19)]
    [DataRow(3, 7)]
    [DataRow(32, 200)]
    [DataRow(5, 9)]
    [DataRow(1, 1)]
    public void MatchesScalarLoop(int rows, int cols)
    {
        if (!System.Runtime.Intrinsics.X86.Avx.IsSupported) Assert.Inconclusive("no AVX on this machine");
        int lds = cols + 3, ldd = rows + 5;
        var rnd = new Random(rows * 1000 + cols);
        var src = Enumerable.Range(0, rows * lds).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray();
        foreach (float scale in new[] { 1f, -0.5f })
        {
            var dst = Enumerable.Repeat(float.NaN, cols * ldd).ToArray();
            var expected = (float[])dst.Clone();
            for (int r = 0; r < rows; r++)
                for (int t = 0; t < cols; t++) expected[t * ldd + r] = scale * src[r * lds + t];
            fixed (float* s = src, d = dst)
            {
                Gemm.TransposeBlock(s, lds, d, ldd, rows, cols, scale);
            }
            for (int i = 0; i < dst.Length; i++)
                Assert.AreEqual(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(dst[i]), $"{rows}x{cols} scale {scale}: element {i}");
        }
    }
}
