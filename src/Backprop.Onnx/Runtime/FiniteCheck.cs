using System.Numerics;
using System.Runtime.InteropServices;

namespace Backprop.Onnx.Runtime;

/// <summary>Whether a span holds only finite numbers (no NaN, no ±∞), in one SIMD pass.</summary>
internal static class FiniteCheck
{
    /// <summary>
    /// True when every element is finite. v − v is +0 for a finite v and NaN for ±∞ and NaN, and NaN stays NaN through
    /// the sum, so the lanes are all zero exactly when every element is finite.
    /// </summary>
    public static bool All<T>(ReadOnlySpan<T> values) where T : struct, IFloatingPointIeee754<T>
    {
        var acc = Vector<T>.Zero;
        var vectors = MemoryMarshal.Cast<T, Vector<T>>(values);
        foreach (var v in vectors) acc += v - v;
        T tail = T.Zero;
        for (int i = vectors.Length * Vector<T>.Count; i < values.Length; i++) tail += values[i] - values[i];
        return acc == Vector<T>.Zero && tail == T.Zero;
    }
}
