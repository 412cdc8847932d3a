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
}
