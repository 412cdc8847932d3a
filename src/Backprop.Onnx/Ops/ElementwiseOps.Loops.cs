using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>Called once per contiguous run of output elements: output offset, run length, each input's offset.</summary>
internal delegate void RunBody(int outOffset, int length, ReadOnlySpan<int> inOffsets);

/// <summary>
/// The iteration plan of an elementwise op over inputs under ONNX multidirectional broadcasting (ONNX docs/Broadcasting.md).
/// Output dimensions of size 1 are dropped and adjacent dimensions that every input walks alike (all contiguous, or all
/// broadcast) are merged, so that the common cases become one long run: same shapes (one run over everything), a scalar
/// operand (inner stride 0), a trailing-dimension vector such as a bias (one run per row, the vector read contiguously).
/// Within a run each input's stride is 0 (broadcast: one element) or 1 (contiguous), which is what lets kernels call the
/// span-and-scalar overloads of TensorPrimitives.
/// </summary>
internal sealed class BroadcastLoop
{
    /// <summary>Below this many elements a loop runs on the calling thread.</summary>
    internal const int ParallelGrain = 1 << 15;

    private readonly int[] _outerDims;
    private readonly int[][] _outerStrides;
    private readonly int _inputs;

    /// <summary>Plans the loop of inputs of the given shapes into <paramref name="outShape"/> (their broadcast shape).</summary>
    public BroadcastLoop(int[] outShape, params int[][] inputShapes)
    {
        OutShape = outShape;
        _inputs = inputShapes.Length;
        long count = 1;
        foreach (int d in outShape) count *= d;
        Count = checked((int)count);

        var strides = new long[_inputs][];
        for (int k = 0; k < _inputs; k++) strides[k] = Broadcast.Strides(inputShapes[k], outShape);

        // Coalesce from the innermost dimension outwards; size-1 output dimensions never move any offset.
        var dims = new List<int>();
        var merged = new List<int[]>();
        for (int d = outShape.Length - 1; d >= 0; d--)
        {
            int n = outShape[d];
            if (n == 1) continue;
            if (dims.Count > 0)
            {
                int last = dims.Count - 1;
                bool mergeable = true;
                for (int k = 0; k < _inputs && mergeable; k++) mergeable = strides[k][d] == (long)merged[last][k] * dims[last];
                if (mergeable) { dims[last] *= n; continue; }
            }
            dims.Add(n);
            var s = new int[_inputs];
            for (int k = 0; k < _inputs; k++) s[k] = checked((int)strides[k][d]);
            merged.Add(s);
        }
        if (dims.Count == 0) { dims.Add(1); merged.Add(new int[_inputs]); }

        Inner = dims[0];
        InnerStrides = merged[0];
        int outer = dims.Count - 1;
        _outerDims = new int[outer];
        _outerStrides = new int[_inputs][];
        for (int k = 0; k < _inputs; k++) _outerStrides[k] = new int[outer];
        for (int i = 0; i < outer; i++)
        {
            // dims is innermost-first; the outer arrays are outermost-first.
            _outerDims[outer - 1 - i] = dims[i + 1];
            for (int k = 0; k < _inputs; k++) _outerStrides[k][outer - 1 - i] = merged[i + 1][k];
        }
    }

    /// <summary>Plans the loop of inputs into their broadcast shape; throws <see cref="IR.InvalidInputException"/> when incompatible.</summary>
    /// <remarks>
    /// Loops are immutable, so the last few planned on each thread are kept and returned again for the same input shapes
    /// (a training step plans the same loops every step; planning one allocates about 700 bytes).
    /// </remarks>
    public static BroadcastLoop Of(KernelContext ctx, params int[][] inputShapes)
    {
        var cache = t_recent ??= new BroadcastLoop?[RecentCount];
        foreach (var recent in cache)
            if (recent is not null && recent.Planned(inputShapes)) return recent;
        var loop = new BroadcastLoop(Broadcast.Shape(ctx, inputShapes), inputShapes);
        loop._inputShapes = [.. inputShapes.Select(s => (int[])s.Clone())];
        cache[t_nextRecent] = loop;
        t_nextRecent = (t_nextRecent + 1) % RecentCount;
        return loop;
    }

    /// <summary>As <see cref="Of(KernelContext, int[][])"/> for two inputs, without an argument array when the loop is kept.</summary>
    public static BroadcastLoop Of(KernelContext ctx, int[] a, int[] b)
    {
        if (t_recent is { } cache)
            foreach (var recent in cache)
                if (recent?._inputShapes is [var pa, var pb] && pa.AsSpan().SequenceEqual(a) && pb.AsSpan().SequenceEqual(b)) return recent;
        return Of(ctx, [a, b]);
    }

    private const int RecentCount = 64;

    [ThreadStatic] private static BroadcastLoop?[]? t_recent;
    [ThreadStatic] private static int t_nextRecent;

    /// <summary>The input shapes <see cref="Of(KernelContext, int[][])"/> planned this loop for (copies), or null for a loop built directly.</summary>
    private int[][]? _inputShapes;

    private bool Planned(int[][] inputShapes)
    {
        if (_inputShapes is not { } planned || planned.Length != inputShapes.Length) return false;
        for (int i = 0; i < planned.Length; i++)
            if (!planned[i].AsSpan().SequenceEqual(inputShapes[i])) return false;
        return true;
    }

    /// <summary>The output shape.</summary>
    public int[] OutShape { get; }

    /// <summary>Number of output elements.</summary>
    public int Count { get; }

    /// <summary>Length of the innermost (merged) dimension: runs are at most this long.</summary>
    public int Inner { get; }

    /// <summary>Each input's stride along a run: 1 (contiguous) or 0 (one broadcast element).</summary>
    public int[] InnerStrides { get; }

    /// <summary>Calls <paramref name="body"/> for every run of the output, split into chunks over up to <paramref name="threads"/> threads.</summary>
    public void Run(int threads, RunBody body)
    {
        if (Count == 0) return;
        // Parallelism.For's chunks, with the loop and the body passed as state (no closure per call).
        int chunks = (int)Math.Min(Math.Max(1, threads), Math.Max(1L, Count / ParallelGrain));
        if (chunks <= 1)
        {
            RunRange(0, Count, body);
            return;
        }
        int per = (int)(((long)Count + chunks - 1) / chunks);
        ChunkRunner.ForRanges(Count, chunks, per, chunks, (this, body), static (s, start, end) => s.Item1.RunRange(start, end, s.Item2));
    }

    private void RunRange(int start, int end, RunBody body)
    {
        int outer = _outerDims.Length;
        Span<int> coord = stackalloc int[outer];
        Span<int> rowOffsets = stackalloc int[_inputs];
        Span<int> offsets = stackalloc int[_inputs];
        int row = start / Inner, col = start % Inner;
        for (int d = outer - 1, r = row; d >= 0; d--)
        {
            coord[d] = r % _outerDims[d];
            r /= _outerDims[d];
            for (int k = 0; k < _inputs; k++) rowOffsets[k] += coord[d] * _outerStrides[k][d];
        }
        int pos = start;
        while (pos < end)
        {
            int length = Math.Min(Inner - col, end - pos);
            for (int k = 0; k < _inputs; k++) offsets[k] = rowOffsets[k] + col * InnerStrides[k];
            body(pos, length, offsets);
            pos += length;
            col = 0;
            for (int d = outer - 1; d >= 0; d--)
            {
                coord[d]++;
                for (int k = 0; k < _inputs; k++) rowOffsets[k] += _outerStrides[k][d];
                if (coord[d] < _outerDims[d]) break;
                for (int k = 0; k < _inputs; k++) rowOffsets[k] -= _outerStrides[k][d] * _outerDims[d];
                coord[d] = 0;
            }
        }
    }
}

/// <summary>Splits a range of elements into contiguous chunks run on up to a given number of threads.</summary>
internal static class Parallelism
{
    /// <summary>
    /// Calls <paramref name="body"/>(start, end) over [0, <paramref name="count"/>) (not at all when empty) in at most <paramref name="threads"/>
    /// chunks of at least <see cref="BroadcastLoop.ParallelGrain"/> elements; the chunking depends only on the count and the
    /// thread count, so results are deterministic.
    /// </summary>
    public static void For(int count, int threads, Action<int, int> body)
    {
        if (count == 0) return; // (some TensorPrimitives functions reject empty spans)
        int chunks = (int)Math.Min(Math.Max(1, threads), Math.Max(1L, count / BroadcastLoop.ParallelGrain));
        if (chunks <= 1)
        {
            body(0, count);
            return;
        }
        int per = (int)(((long)count + chunks - 1) / chunks);
        Runtime.ChunkRunner.ForRanges(count, chunks, per, chunks, body);
    }
}
