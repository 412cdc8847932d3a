using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// The pooling windows of one input plane shape: for each output position, the plane offsets of the input elements
/// its window covers (padding excluded) and the number of window elements inside the padded input (the
/// count_include_pad divisor). The same for every plane, so it is tabulated once unless the table would be huge.
/// </summary>
internal sealed class PoolWindows
{
    private const long MaxTable = 1 << 22;
    private readonly int[] _input, _output, _kernel, _strides, _dilations, _padBegin, _padEnd;
    private readonly long[] _inStrides;
    private readonly int[]? _start, _offsets, _padded;

    public PoolWindows(int[] input, int[] output, int[] kernel, int[] strides, int[] dilations, int[] padBegin, int[] padEnd)
    {
        _input = input; _output = output; _kernel = kernel; _strides = strides; _dilations = dilations; _padBegin = padBegin; _padEnd = padEnd;
        _inStrides = Broadcast.ContiguousStrides(input);
        InputSize = input.Aggregate(1, (p, d) => checked(p * d));
        OutputSize = output.Aggregate(1, (p, d) => checked(p * d));
        KernelSize = kernel.Aggregate(1, (p, d) => checked(p * d));
        if ((long)OutputSize * KernelSize > MaxTable) return;
        _start = new int[OutputSize + 1];
        _padded = new int[OutputSize];
        var all = new List<int>();
        var scratch = new int[KernelSize];
        for (int o = 0; o < OutputSize; o++)
        {
            int n = Compute(o, scratch, out _padded[o]);
            all.AddRange(scratch.AsSpan(0, n));
            _start[o + 1] = all.Count;
        }
        _offsets = [.. all];
    }

    /// <summary>The plane shapes and window attributes (read by the 2-D fast paths of PoolingOps.Fast2D.cs).</summary>
    public (int[] Input, int[] Output, int[] Kernel, int[] Strides, int[] Dilations, int[] PadBegin) Shape =>
        (_input, _output, _kernel, _strides, _dilations, _padBegin);

    /// <summary>Elements of one input plane.</summary>
    public int InputSize { get; }

    /// <summary>Output positions of one plane.</summary>
    public int OutputSize { get; }

    /// <summary>Elements of the (full) kernel window; the size of the scratch buffer <see cref="Offsets"/> needs.</summary>
    public int KernelSize { get; }

    /// <summary>The plane offsets (row-major) of output position <paramref name="o"/>'s window, in window order.</summary>
    public ReadOnlySpan<int> Offsets(int o, Span<int> scratch, out int padded)
    {
        if (_offsets is not null)
        {
            padded = _padded![o];
            return _offsets.AsSpan(_start![o], _start[o + 1] - _start[o]);
        }
        int n = Compute(o, scratch, out padded);
        return scratch[..n];
    }

    private int Compute(int o, Span<int> offsets, out int padded)
    {
        int rank = _input.Length;
        Span<int> lo = stackalloc int[rank], hi = stackalloc int[rank], start = stackalloc int[rank], k = stackalloc int[rank];
        padded = 1;
        int rest = o;
        for (int d = rank - 1; d >= 0; d--)
        {
            int od = rest % _output[d];
            rest /= _output[d];
            int s = od * _strides[d] - _padBegin[d], dil = _dilations[d];
            start[d] = s;
            lo[d] = Count(-s, dil, _kernel[d]);                      // first k with s + k·dil ≥ 0
            hi[d] = Count(_input[d] - s, dil, _kernel[d]);           // first k with s + k·dil ≥ in
            padded *= Count(_input[d] + _padEnd[d] - s, dil, _kernel[d]) - Count(-_padBegin[d] - s, dil, _kernel[d]);
            if (hi[d] <= lo[d]) return 0;
        }
        int n = 0;
        lo.CopyTo(k);
        while (true)
        {
            long offset = 0;
            for (int d = 0; d < rank; d++) offset += (long)(start[d] + k[d] * _dilations[d]) * _inStrides[d];
            offsets[n++] = (int)offset;
            int dd = rank - 1;
            while (dd >= 0 && ++k[dd] >= hi[dd]) { k[dd] = lo[dd]; dd--; }
            if (dd < 0) return n;
        }
    }

    /// <summary>The number of k in [0, kernel) with k·dil &lt; limit, i.e. the first k with k·dil ≥ limit, clamped to [0, kernel].</summary>
    private static int Count(int limit, int dil, int kernel)
    {
        if (limit <= 0) return 0;
        long c = ((long)limit + dil - 1) / dil;
        return (int)Math.Min(c, kernel);
    }
}
