using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// <see cref="ChunkRunner"/>'s state-passing ForRanges: the same chunks as the delegate form (fixed-size and even
/// splits, odd counts, more chunks than elements), every element exactly once on any thread count, exceptions
/// rethrown as themselves, nesting, and no allocation on the caller in steady state.
/// </summary>
[TestClass]
public sealed class ChunkRunnerTests
{
    [TestMethod]
    [DataRow(0, 3, 0)]
    [DataRow(1, 1, 0)]
    [DataRow(17, 4, 0)]
    [DataRow(17, 4, 5)]
    [DataRow(1000, 7, 0)]
    [DataRow(1000, 3, 334)]
    [DataRow(5, 8, 0)]
    public void StateForm_RunsTheSameChunks_AsTheDelegateForm(int count, int chunks, int per)
    {
        foreach (int threads in new[] { 1, 2, 4 })
        {
            var expected = new List<(int, int)>();
            ChunkRunner.ForRanges(count, chunks, per, threads, (s, e) => { lock (expected) expected.Add((s, e)); });
            var actual = new List<(int, int)>();
            var hits = new int[count];
            ChunkRunner.ForRanges(count, chunks, per, threads, (actual, hits), static (st, s, e) =>
            {
                lock (st.actual) st.actual.Add((s, e));
                for (int i = s; i < e; i++) Interlocked.Increment(ref st.hits[i]);
            });
            CollectionAssert.AreEquivalent(expected, actual, $"threads {threads}");
            Assert.IsTrue(hits.All(h => h == 1), $"threads {threads}: every element exactly once");
        }
    }

    [TestMethod]
    public void StateForm_RethrowsTheBodysException()
    {
        var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
            ChunkRunner.ForRanges(100, 4, 0, 2, 3, static (bad, s, e) => { if (s <= bad && bad < e) throw new InvalidOperationException("chunk"); }));
        Assert.AreEqual("chunk", e.Message);
        // The runner is usable afterwards.
        var acc = new long[1];
        ChunkRunner.ForRanges(10, 2, 0, 2, acc, static (a, s, e) => Interlocked.Add(ref a[0], e - s));
        Assert.AreEqual(10L, acc[0]);
    }

    [TestMethod]
    public void StateForm_Nests()
    {
        var totals = new long[4];
        ChunkRunner.ForRanges(4, 4, 1, 2, totals, static (t, s, e) =>
        {
            for (int i = s; i < e; i++)
                ChunkRunner.ForRanges(100, 3, 0, 2, (t, i), static (st, a, b) => Interlocked.Add(ref st.t[st.i], b - a));
        });
        CollectionAssert.AreEqual(new long[] { 100, 100, 100, 100 }, totals);
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void StateForm_AllocatesNoClosures(int threads)
    {
        var data = new double[4096];
        for (int i = 0; i < 5; i++) Fill(data, threads);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++) Fill(data, threads);
        long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        // With one thread nothing at all. With workers, a job whose worker has not yet left (the caller may finish every
        // chunk before a worker starts) cannot be reused, and a new job is made: that, not the body, may cost ~150 B.
        if (threads == 1) Assert.AreEqual(0L, bytes);
        else Assert.IsLessThan(20L * 256, bytes, $"{bytes} B over 20 calls");
        Assert.IsTrue(data.All(v => v == 1));
    }

    /// <summary>
    /// With two threads the two items run at the same time on two threads: item 0 waits (up to 1 s) for item 1 to start,
    /// which only a worker can run while the caller is inside item 0. A job is offered only to idle workers, so a round
    /// may find the worker busy with another test's job; most rounds must overlap (a worker that never takes a job fails).
    /// </summary>
    [TestMethod]
    [DoNotParallelize]
    public void TwoThreads_RunTwoItemsConcurrently_OnAWorker()
    {
        const int rounds = 10;
        int overlappedRounds = 0;
        for (int round = 0; round < rounds; round++)
        {
            using var started = new ManualResetEventSlim(false);
            var threadIds = new int[2];
            bool overlapped = false;
            ChunkRunner.For(2, 2, i =>
            {
                threadIds[i] = Environment.CurrentManagedThreadId;
                if (i == 1) started.Set();
                else overlapped = started.Wait(TimeSpan.FromSeconds(1));
            });
            if (overlapped)
            {
                overlappedRounds++;
                Assert.AreNotEqual(threadIds[0], threadIds[1], $"round {round}");
            }
        }
        Assert.IsGreaterThanOrEqualTo(rounds / 2, overlappedRounds, $"only {overlappedRounds} of {rounds} rounds ran both items at once");
    }

    private static void Fill(double[] data, int threads) =>
        ChunkRunner.ForRanges(data.Length, 4, 0, threads, data, static (d, s, e) => d.AsSpan(s, e - s).Fill(1));
}
