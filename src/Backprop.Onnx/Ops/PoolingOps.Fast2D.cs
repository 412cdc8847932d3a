using System.Buffers;
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The 2-D fast path of MaxPool and MaxPoolGrad. The winner of every window is the element the general path picks
/// (the first maximum in row-major window order; a NaN wins over numbers, the first NaN over later ones), so results
/// are identical; only the work differs. Float planes run the windows that lie wholly inside the input as vectors:
/// for each window element in order, its value at every such output is gathered and compared lane-wise with the
/// best so far (a data-dependent branch per element mispredicts half the time on real activations). Outputs whose
/// window is clipped by the padding, and other element types, take plain row/column loops over the valid range.
/// </summary>
internal static partial class PoolingOps
{
    /// <summary>
    /// Forward (<paramref name="y"/> set): y = the window maxima. Backward (<paramref name="grad"/> set): dX[argmax] += dY
    /// in increasing output order, then with <paramref name="relu"/> +0 where X is not &gt; 0 (ReluGrad fused in).
    /// False (nothing done) unless the pooling is 2-D.
    /// </summary>
    private static bool MaxPool2D<T>(T[] x, T[]? y, (T[] Dy, T[] Dx)? grad, PoolGeometry g, int threads, bool relu = false) where T : INumber<T>
    {
        var (input, output, kernel, strides, dilations, padBegin) = g.Windows.Shape;
        if (input.Length != 2) return false;
        var geo = Window2D.For(input, output, kernel, strides, dilations, padBegin);
        int inSize = geo.InH * geo.InW, outSize = geo.OutH * geo.OutW;
        ForEachPlane(g.N * g.C, (long)outSize * geo.KH * geo.KW, threads, p =>
        {
            int[] winners = ArrayPool<int>.Shared.Rent(Math.Max(1, outSize));
            try
            {
                var xp = x.AsSpan(p * inSize, inSize);
                if (typeof(T) == typeof(float)) geo.InteriorWinners((float[])(object)x, p * inSize, winners);
                geo.BorderWinners(xp, winners, interiorDone: typeof(T) == typeof(float));
                for (int o = 0; o < outSize; o++)
                {
                    int w = winners[o];
                    if (grad is var (dy, dx))
                    {
                        if (w >= 0) dx[p * inSize + w] += dy[p * outSize + o];
                    }
                    else
                    {
                        y![p * outSize + o] = w < 0 ? T.CreateSaturating(double.NegativeInfinity) : xp[w];   // a window entirely in the padding
                    }
                }
                if (relu && grad is var (_, dxAll)) ReluMask<T>(xp, dxAll.AsSpan(p * inSize, inSize));
            }
            finally
            {
                ArrayPool<int>.Shared.Return(winners);
            }
        });
        return true;
    }

    /// <summary>The geometry of 2-D windows: per output column and row, the window start and its valid kernel range.</summary>
    private sealed class Window2D
    {
        public readonly int InH, InW, OutH, OutW, KH, KW, SH, SW, DH, DW;
        private readonly int[] _colStart, _colLo, _colHi, _rowStart, _rowLo, _rowHi;
        /// <summary>Outputs whose window is wholly inside the input (row-major), and the plane offset of their first element.</summary>
        private readonly int[] _interior, _base;

        /// <summary>The geometry of these windows: one planned recently on this thread for the same numbers (it is immutable), else a new one.</summary>
        public static Window2D For(int[] input, int[] output, int[] kernel, int[] strides, int[] dilations, int[] padBegin)
        {
            Span<int> key = [input[0], input[1], output[0], output[1], kernel[0], kernel[1], strides[0], strides[1], dilations[0], dilations[1], padBegin[0], padBegin[1]];
            var recent = t_recent ??= new Window2D?[RecentCount];
            foreach (var r in recent)
                if (r is not null && key.SequenceEqual(r._key)) return r;
            var geo = new Window2D(input, output, kernel, strides, dilations, padBegin) { _key = key.ToArray() };
            recent[t_next] = geo;
            t_next = (t_next + 1) % RecentCount;
            return geo;
        }

        private const int RecentCount = 16;

        [ThreadStatic] private static Window2D?[]? t_recent;
        [ThreadStatic] private static int t_next;

        private int[] _key = [];

        public Window2D(int[] input, int[] output, int[] kernel, int[] strides, int[] dilations, int[] padBegin)
        {
            (InH, InW, OutH, OutW, KH, KW) = (input[0], input[1], output[0], output[1], kernel[0], kernel[1]);
            (SH, SW, DH, DW) = (strides[0], strides[1], dilations[0], dilations[1]);
            (_colStart, _colLo, _colHi) = Ranges(OutW, SW, padBegin[1], DW, KW, InW);
            (_rowStart, _rowLo, _rowHi) = Ranges(OutH, SH, padBegin[0], DH, KH, InH);
            var interior = new List<int>();
            var bases = new List<int>();
            for (int oh = 0; oh < OutH; oh++)
                for (int ow = 0; ow < OutW; ow++)
                    if (_rowLo[oh] == 0 && _rowHi[oh] == KH && _colLo[ow] == 0 && _colHi[ow] == KW)
                    {
                        interior.Add(oh * OutW + ow);
                        bases.Add(_rowStart[oh] * InW + _colStart[ow]);
                    }
            _interior = [.. interior];
            _base = [.. bases];
        }

        private static (int[] Start, int[] Lo, int[] Hi) Ranges(int count, int stride, int pad, int dilation, int size, int extent)
        {
            var start = new int[count];
            var lo = new int[count];
            var hi = new int[count];
            for (int o = 0; o < count; o++)
            {
                int s = o * stride - pad, l = 0, h = size;
                while (l < size && s + l * dilation < 0) l++;
                while (h > l && s + (h - 1) * dilation >= extent) h--;
                (start[o], lo[o], hi[o]) = (s, l, h);
            }
            return (start, lo, hi);
        }

        /// <summary>The winning plane offset of every output not done by <see cref="InteriorWinners"/> (-1: no valid element).</summary>
        public void BorderWinners<T>(ReadOnlySpan<T> xp, int[] winners, bool interiorDone) where T : INumber<T>
        {
            for (int oh = 0; oh < OutH; oh++)
            {
                bool rowFull = _rowLo[oh] == 0 && _rowHi[oh] == KH;
                for (int ow = 0; ow < OutW; ow++)
                {
                    if (interiorDone && rowFull && _colLo[ow] == 0 && _colHi[ow] == KW) continue;
                    T best = T.Zero;
                    int bestOffset = -1;
                    for (int i = _rowLo[oh]; i < _rowHi[oh]; i++)
                    {
                        int rowOffset = (_rowStart[oh] + i * DH) * InW + _colStart[ow];
                        for (int j = _colLo[ow]; j < _colHi[ow]; j++)
                        {
                            int off = rowOffset + j * DW;
                            T v = xp[off];
                            if (bestOffset < 0 || v > best || (T.IsNaN(v) && !T.IsNaN(best))) { best = v; bestOffset = off; }
                        }
                    }
                    winners[oh * OutW + ow] = bestOffset;
                }
            }
        }

        /// <summary>The winners of the interior outputs of the float plane at <paramref name="planeOffset"/>, eight outputs per vector step.</summary>
        public void InteriorWinners(float[] x, int planeOffset, int[] winners)
        {
            int n = _interior.Length;
            if (n == 0) return;
            int padded = (n + 7) & ~7;
            float[] bestArray = ArrayPool<float>.Shared.Rent(padded), candArray = ArrayPool<float>.Shared.Rent(padded);
            int[] argArray = ArrayPool<int>.Shared.Rent(padded), offArray = ArrayPool<int>.Shared.Rent(padded);
            try
            {
                Span<float> best = bestArray.AsSpan(0, padded), cand = candArray.AsSpan(0, padded);
                Span<int> arg = argArray.AsSpan(0, padded), off = offArray.AsSpan(0, padded);
                var xp = x.AsSpan(planeOffset);
                bool first = true;
                for (int i = 0; i < KH; i++)
                {
                    for (int j = 0; j < KW; j++)
                    {
                        int delta = i * DH * InW + j * DW;
                        for (int t = 0; t < n; t++)
                        {
                            int o = _base[t] + delta;
                            off[t] = o;
                            cand[t] = xp[o];
                        }
                        cand[n..].Clear();
                        off[n..].Clear();
                        if (first)
                        {
                            cand.CopyTo(best);
                            off.CopyTo(arg);
                            first = false;
                            continue;
                        }
                        for (int t = 0; t < padded; t += 8)
                        {
                            var c = Vector256.Create(cand.Slice(t, 8));
                            var b = Vector256.Create(best.Slice(t, 8));
                            // c wins when c > b, or when c is NaN and b is not (the scalar rule, lane by lane).
                            var take = Vector256.GreaterThan(c, b) | Vector256.AndNot(~Vector256.Equals(c, c), ~Vector256.Equals(b, b));
                            Vector256.ConditionalSelect(take, c, b).CopyTo(best.Slice(t, 8));
                            Vector256.ConditionalSelect(take.AsInt32(), Vector256.Create(off.Slice(t, 8)), Vector256.Create(arg.Slice(t, 8))).CopyTo(arg.Slice(t, 8));
                        }
                    }
                }
                for (int t = 0; t < n; t++) winners[_interior[t]] = arg[t];
            }
            finally
            {
                ArrayPool<float>.Shared.Return(bestArray);
                ArrayPool<float>.Shared.Return(candArray);
                ArrayPool<int>.Shared.Return(argArray);
                ArrayPool<int>.Shared.Return(offArray);
            }
        }
    }
}
