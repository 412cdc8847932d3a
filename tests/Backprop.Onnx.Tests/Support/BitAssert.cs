using Backprop.Onnx.IR;

namespace Backprop.Onnx.Tests.Support;

/// <summary>
/// Bit-for-bit comparison of tensors, for tests where a rewritten plan (PlanFusion's fused nodes) must reproduce the
/// unfused plan exactly: same shape, same element type, and the same bits in every element (±0 told apart; any NaN
/// matches any NaN).
/// </summary>
internal static class BitAssert
{
    /// <summary>Fails unless <paramref name="actual"/> has <paramref name="expected"/>'s shape, type and bits.</summary>
    public static void SameBits(OnnxTensor expected, OnnxTensor actual, string what)
    {
        CollectionAssert.AreEqual(expected.Dims.ToArray(), actual.Dims.ToArray(), $"{what}: shape");
        Assert.AreEqual(expected.ElementType, actual.ElementType, $"{what}: element type");
        var e = ToDoubles(expected);
        var a = ToDoubles(actual);
        for (int i = 0; i < e.Length; i++)
        {
            if (double.IsNaN(e[i]) && double.IsNaN(a[i])) continue;
            Assert.AreEqual(BitConverter.DoubleToInt64Bits(e[i]), BitConverter.DoubleToInt64Bits(a[i]), $"{what}: element {i}: expected {e[i]}, got {a[i]}");
        }
    }

    /// <summary>The elements of a float, double or int64 tensor as doubles (exact for float and double).</summary>
    public static double[] ToDoubles(OnnxTensor t) => t.Buffer switch
    {
        double[] d => d[..checked((int)t.ElementCount)],
        float[] f => [.. f.Take(checked((int)t.ElementCount)).Select(v => (double)v)],
        long[] l => [.. l.Take(checked((int)t.ElementCount)).Select(v => (double)v)],
        _ => throw new InvalidOperationException($"unexpected buffer {t.Buffer.GetType()}"),
    };

    /// <summary>Sets element <paramref name="index"/> of a float or double tensor.</summary>
    public static void SetElement(OnnxTensor t, long index, double value)
    {
        if (t.Buffer is double[] d) d[index] = value;
        else ((float[])t.Buffer)[index] = (float)value;
    }
}
