using System.Runtime.ExceptionServices;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// An allocation-free replacement for <see cref="Parallel.For(int, int, ParallelOptions, Action{int})"/> in kernels: runs
/// work items 0..n−1 on the calling thread plus up to threads − 1 of our own worker threads, each item exactly once.
/// Jobs are pooled objects, so a steady-state training step allocates nothing here (Parallel.For allocates about 1.5 KB
/// per call). Which thread runs an item does not change what the item computes, so results are deterministic whenever
/// the items are independent (as with Parallel.For).
/// </summary>
/// <remarks>
/// <para>
/// The workers are background threads (one fewer than the machine has cores) that spin for a short while after a job
/// before they sleep, as OpenMP's waiting threads do (libgomp's GOMP_SPINCOUNT): a kernel's loop lasts 0.05-1 ms, and
/// waking a sleeping thread-pool worker took long enough on a VM that whole benchmark phases ran at one-thread speed,
/// while work items queued on the thread pool made its queue allocate.
/// </para>
/// <para>
/// The caller claims items too, so a call finishes even when no worker is free (no deadlock under nested use or
/// concurrent callers: a job is offered only to idle workers, and the caller does what they do not take). The first
/// exception an item throws is rethrown on the caller as itself (not wrapped in an <see cref="AggregateException"/>)
/// once every claimed item finished.
/// </para>
/// </remarks>
internal sealed class ChunkRunner
{
    private static readonly Lock PoolGate = new();
    private static readonly List<ChunkRunner> Idle = [];
    private const int MaxIdle = 32;

    // The caller waits for the workers' last items on this gate (Monitor.Wait/PulseAll on an object allocated with the
    // job). A ManualResetEventSlim allocated its lock object lazily, on the first wait that blocked: 24 bytes on the
    // caller in some steady-state call, whenever a worker happened to be slow (seen as a flaky allocation test).
    private readonly object _doneGate = new();
    private Action<int>? _item;
    private Action<int, int>? _range;
    private IRangeBody? _stateRange;
    private int _items, _count, _per;
    private int _next, _pending, _workersOut;
    private ExceptionDispatchInfo? _error;

    private ChunkRunner()
    {
    }

    /// <summary>Calls <paramref name="body"/>(i) for every i in [0, <paramref name="items"/>) on up to <paramref name="threads"/> threads.</summary>
    public static void For(int items, int threads, Action<int> body)
    {
        if (items <= 0) return;
        if (threads <= 1 || items == 1)
        {
            for (int i = 0; i < items; i++) body(i);
            return;
        }
        var job = Rent();
        job._item = body;
        job.Run(items, threads);
    }

    /// <summary>
    /// Calls <paramref name="body"/>(start, end) for <paramref name="chunks"/> contiguous ranges covering [0, <paramref name="count"/>):
    /// chunk c is [c·per, min(count, (c+1)·per)) when <paramref name="per"/> is positive, else the even split
    /// [count·c/chunks, count·(c+1)/chunks). One chunk per work item, on up to <paramref name="threads"/> threads.
    /// </summary>
    public static void ForRanges(int count, int chunks, int per, int threads, Action<int, int> body)
    {
        if (chunks <= 0) return;
        var job = Rent();
        job._range = body;
        job._count = count;
        job._per = per;
        job.Run(chunks, threads);
    }

    /// <summary>
    /// As <see cref="ForRanges(int, int, int, int, Action{int, int})"/>, calling <paramref name="body"/>(state, start, end):
    /// with a static lambda and the kernel's arrays in <paramref name="state"/> (a tuple or struct) a call allocates
    /// nothing, where a lambda capturing them would allocate its closure and delegate on every call. With one thread or
    /// one chunk the chunks run in order on the caller.
    /// </summary>
    public static void ForRanges<TState>(int count, int chunks, int per, int threads, TState state, Action<TState, int, int> body)
    {
        if (chunks <= 0) return;
        if (threads <= 1 || chunks == 1)
        {
            for (int c = 0; c < chunks; c++)
            {
                var (start, end) = Chunk(c, chunks, count, per);
                body(state, start, end);
            }
            return;
        }
        // One holder per state type and thread, taken while in use (a body that nests another call makes a second one).
        var holder = StateBody<TState>.Free ?? new StateBody<TState>();
        StateBody<TState>.Free = null;
        holder.State = state;
        holder.Body = body;
        try
        {
            var job = Rent();
            job._stateRange = holder;
            job._count = count;
            job._per = per;
            job.Run(chunks, threads);
        }
        finally
        {
            holder.State = default!;
            holder.Body = null;
            StateBody<TState>.Free = holder;
        }
    }

    /// <summary>Chunk c of <paramref name="chunks"/> over [0, count): fixed size <paramref name="per"/> when positive, else an even split.</summary>
    private static (int Start, int End) Chunk(int c, int chunks, int count, int per)
    {
        if (per > 0)
        {
            int start = c * per;
            return (start, (int)Math.Min(count, (long)start + per));
        }
        return ((int)((long)count * c / chunks), (int)((long)count * (c + 1) / chunks));
    }

    /// <summary>A range body with its state, called by the job's workers.</summary>
    private interface IRangeBody
    {
        void Run(int start, int end);
    }

    private sealed class StateBody<TState> : IRangeBody
    {
        [ThreadStatic]
        public static StateBody<TState>? Free;

        public TState State = default!;
        public Action<TState, int, int>? Body;

        public void Run(int start, int end) => Body!(State, start, end);
    }

    private static ChunkRunner Rent()
    {
        lock (PoolGate)
        {
            // A job is reusable once every worker queued for it has left (a late worker finds no item and leaves).
            for (int i = Idle.Count - 1; i >= 0; i--)
            {
                var job = Idle[i];
                if (Volatile.Read(ref job._workersOut) != 0) continue;
                Idle[i] = Idle[^1];
                Idle.RemoveAt(Idle.Count - 1);
                return job;
            }
        }
        return new ChunkRunner();
    }

    private void Run(int items, int threads)
    {
        _items = items;
        _next = 0;
        _pending = items;
        _error = null;
        // Offer the job to idle workers; _workersOut counts those that took it (each leaves by decrementing it, and
        // Rent reuses a job only when none is left in it).
        int wanted = Math.Min(threads, items) - 1;
        for (int w = 0; w < Workers.Length && wanted > 0; w++)
        {
            if (Workers[w].TryOffer(this)) wanted--;
        }
        Work();
        WaitForPending();
        var error = _error;
        _item = null;
        _range = null;
        _stateRange = null;
        _error = null;
        lock (PoolGate)
        {
            if (Idle.Count < MaxIdle) Idle.Add(this);
        }
        error?.Throw();
    }

    /// <summary>Runs the job's remaining items on a worker and leaves it.</summary>
    private void RunOnWorker()
    {
        try
        {
            Work();
        }
        finally
        {
            Interlocked.Decrement(ref _workersOut);
        }
    }

    /// <summary>The worker threads, started on first use: one fewer than the processors (at least one).</summary>
    private static readonly Worker[] Workers = Enumerable.Range(0, Math.Max(1, Environment.ProcessorCount - 1)).Select(i => new Worker(i)).ToArray();

    /// <summary>
    /// A background thread with a one-job slot: it spins on the slot for about <see cref="SpinTicks"/> after its last
    /// job, then sleeps on an event until a job is offered.
    /// </summary>
    private sealed class Worker
    {
        /// <summary>How long an idle worker keeps spinning before it sleeps: 2 ms.</summary>
        private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 500;

        private readonly ManualResetEventSlim _wake = new(false, spinCount: 0);
        private readonly int _index;
        private ChunkRunner? _slot;
        private int _busy;     // 1 from an accepted offer until the job is done
        private int _sleeping; // 1 while the thread is (about to be) waiting on _wake
        private Thread? _thread;
        private readonly Lock _start = new();

        public Worker(int index) => _index = index;

        /// <summary>Hands <paramref name="job"/> to this worker if it is idle; false when it is busy with another job.</summary>
        public bool TryOffer(ChunkRunner job)
        {
            if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0) return false;
            EnsureStarted();
            Interlocked.Increment(ref job._workersOut);
            Volatile.Write(ref _slot, job);
            // Dekker pairing with Loop: the slot is written before _sleeping is read, the worker writes _sleeping
            // before it reads the slot (both full fences), so one of the two sees the other.
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref _sleeping) == 1) _wake.Set();
            return true;
        }

        private void EnsureStarted()
        {
            if (Volatile.Read(ref _thread) is not null) return;
            lock (_start)
            {
                if (_thread is not null) return;
                var thread = new Thread(Loop) { IsBackground = true, Name = $"Backprop.Onnx worker {_index}" };
                thread.Start();
                Volatile.Write(ref _thread, thread);
            }
        }

        private void Loop()
        {
            while (true)
            {
                var job = Volatile.Read(ref _slot);
                if (job is null)
                {
                    long until = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
                    while ((job = Volatile.Read(ref _slot)) is null && System.Diagnostics.Stopwatch.GetTimestamp() < until) Thread.SpinWait(32);
                }
                if (job is null)
                {
                    _wake.Reset();
                    Interlocked.Exchange(ref _sleeping, 1);
                    if (Volatile.Read(ref _slot) is null) _wake.Wait();
                    Interlocked.Exchange(ref _sleeping, 0);
                    continue;
                }
                Volatile.Write(ref _slot, null);
                job.RunOnWorker();
                Volatile.Write(ref _busy, 0);
            }
        }
    }

    private void Work()
    {
        int i;
        while ((i = Interlocked.Increment(ref _next) - 1) < _items)
        {
            try
            {
                if (_item is { } item) item(i);
                else
                {
                    var (start, end) = Chunk(i, _items, _count, _per);
                    if (_stateRange is { } body) body.Run(start, end);
                    else _range!(start, end);
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null);
            }
            if (Interlocked.Decrement(ref _pending) == 0)
                lock (_doneGate) Monitor.PulseAll(_doneGate);
        }
    }

    /// <summary>
    /// Spins and yields as ManualResetEventSlim.Wait does by default (35 rounds of SpinWait.SpinOnce without Sleep(1);
    /// the workers' items usually end within microseconds of the caller's), then blocks on the gate until every claimed
    /// item finished.
    /// </summary>
    private void WaitForPending()
    {
        var spinner = new SpinWait();
        for (int round = 0; round < 35; round++)
        {
            if (Volatile.Read(ref _pending) == 0) return;
            spinner.SpinOnce(sleep1Threshold: -1);
        }
        // The last item's PulseAll takes the gate after its decrement, so a zero read under the gate is final and a
        // nonzero one is followed by a pulse that this Wait receives.
        lock (_doneGate)
            while (Volatile.Read(ref _pending) != 0) Monitor.Wait(_doneGate);
    }
}
