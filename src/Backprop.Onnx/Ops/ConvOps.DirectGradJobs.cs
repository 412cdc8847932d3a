using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Ops;

/// <summary>
/// Allocation-free parallel loops for ConvGrad's GEMM paths: the loop body is a struct holding what a closure would have
/// captured, run by a pooled job whose delegate is made once, through <see cref="ChunkRunner"/> (Parallel.For allocates
/// about 1.5 KB per call, a capturing lambda a closure and a delegate).
/// </summary>
internal static partial class ConvOps
{
    /// <summary>A parallel loop body over items 0..n−1.</summary>
    private interface IParallelItem
    {
        void Run(int item);
    }

    /// <summary>Runs <typeparamref name="TItem"/>.Run for every item, on up to the given threads; pooled one per body type.</summary>
    private sealed class ItemJob<TItem> where TItem : struct, IParallelItem
    {
        private static ItemJob<TItem>? s_cached;

        private TItem _item;
        private readonly Action<int> _body;

        private ItemJob() => _body = Run;

        private void Run(int i) => _item.Run(i);

        /// <summary>Calls item.Run(i) for i in [0, <paramref name="items"/>); each i exactly once, on any thread.</summary>
        public static void For(int items, int threads, in TItem item)
        {
            if (threads <= 1 || items <= 1)
            {
                var local = item;
                for (int i = 0; i < items; i++) local.Run(i);
                return;
            }
            var job = Interlocked.Exchange(ref s_cached, null) ?? new ItemJob<TItem>();
            job._item = item;
            try
            {
                ChunkRunner.For(items, threads, job._body);
            }
            finally
            {
                job._item = default;
                Volatile.Write(ref s_cached, job);
            }
        }
    }

    /// <summary>
    /// Per-thread scratch of the direct gradient kernels, kept between calls and grown to the largest size asked: a
    /// steady-state training step then allocates nothing even where ArrayPool.Shared would miss (arrays rented on one
    /// pool thread and returned on another, or trimmed by a Gen2 collection under memory pressure: W3 showed 3-10 KB per
    /// ConvGrad call). Each field has one user at a time on its thread; contents are stale, users clear what they read.
    /// </summary>
    private static class GradScratch
    {
        [ThreadStatic] public static float[]? X;
        [ThreadStatic] public static float[]? Dy;
        [ThreadStatic] public static float[]? Pad;
        [ThreadStatic] public static float[]? Wide;
        [ThreadStatic] public static float[]? Packed;
        [ThreadStatic] public static float[]? Partials;
        [ThreadStatic] public static int[]? TapOffsets;
        [ThreadStatic] public static int[]? PhaseOffsets;

        /// <summary><paramref name="slot"/>, replaced by a new array when shorter than <paramref name="length"/>.</summary>
        public static T[] Get<T>(ref T[]? slot, int length) => slot is not null && slot.Length >= length ? slot : slot = new T[length];
    }
}
