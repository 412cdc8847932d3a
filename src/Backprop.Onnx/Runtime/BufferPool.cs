using Backprop.Onnx.IR;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// The buffers of one <see cref="ExecutionPlan"/>'s intermediate values, reused from run to run so a training step
/// allocates (almost) nothing. Buffers are exact-length arrays of an element type's storage type, kept in free lists
/// keyed by (storage type, length). A buffer handed out by <see cref="Rent"/> is <em>tracked</em>: the plan counts the
/// value slots that hold it (<see cref="AddRef"/>, <see cref="Release"/>; Reshape, Identity and Squeeze outputs share
/// their input's buffer, so one buffer may sit in several slots) and it goes back to a free list when the last slot
/// lets go. Buffers the pool did not hand out (graph inputs, initializers, a kernel's own constants) are never tracked
/// and never reused; a buffer that leaves as a graph output is disowned (the caller's from then on) unless the caller
/// gives it back with <see cref="Adopt(Array)"/>.
/// </summary>
/// <remarks>
/// Free lists that no run rented from for two whole runs are dropped (<see cref="EndRun"/>), so a plan fed varying
/// shapes keeps only what it recently used. Thread-safe: kernels may allocate from parallel loops.
/// </remarks>
internal sealed class BufferPool
{
    private readonly Lock _gate = new();
    private readonly Dictionary<(Type Storage, int Length), FreeList> _free = [];
    private readonly Dictionary<Array, int> _refs = new(ReferenceEqualityComparer.Instance);
    private readonly List<Array> _rentedThisNode = [];
    private readonly HashSet<Array> _disowned = new(ReferenceEqualityComparer.Instance);
    /// <summary>
    /// The tensor each pooled buffer was last handed out as: renting it again for the same type and shape returns that
    /// (immutable) wrapper instead of a new tensor and shape array. Only buffers the pool holds (tracked or free) are here.
    /// </summary>
    private readonly Dictionary<Array, OnnxTensor> _wrappers = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// The wrappers a buffer had before its latest one, most recently used first (at most <see cref="EarlierWrappers"/>):
    /// values of one length but several shapes ([] and [1] from Size and Shape; [B,T,C], [B,T,H,D] and [B·T,C] around
    /// attention heads) take turns on the same buffers, and swapping back to one of them allocates nothing.
    /// </summary>
    private readonly Dictionary<Array, OnnxTensor?[]> _earlierWrappers = new(ReferenceEqualityComparer.Instance);

    private const int EarlierWrappers = 7;
    private long _run;

    private sealed class FreeList
    {
        public readonly Stack<Array> Buffers = new();
        public long LastUsedRun;
    }

    /// <summary>True in tests: buffers handed out uninitialized are filled with NaN / 0xCD bytes, so a kernel that reads one before writing it fails loudly.</summary>
    internal static bool PoisonUninitialized { get; set; }
#if DEBUG
        = true;
#endif

    /// <summary>Whether the pool can hold tensors of <paramref name="type"/> (numeric and bool; not strings or opaque types).</summary>
    public static bool Poolable(DataType type) => DataTypes.IsDefined(type) && type != DataType.String && !DataTypes.IsOpaque(type);

    /// <summary>
    /// A tensor of a poolable type on a buffer from the free list (or a new one), tracked with no holder yet; zeroed
    /// when <paramref name="clear"/>, else holding whatever the buffer held before.
    /// </summary>
    public OnnxTensor Rent(DataType type, ReadOnlySpan<int> shape, bool clear)
    {
        long count = OnnxTensor.CheckedCount(shape);
        Type storage = DataTypes.StorageType(type);
        Array? buffer = null;
        OnnxTensor? wrapper;
        lock (_gate)
        {
            var key = (storage, (int)count);
            if (_free.TryGetValue(key, out var list))
            {
                list.LastUsedRun = _run;
                list.Buffers.TryPop(out buffer);
            }
            buffer ??= Array.CreateInstance(storage, count);
            _refs[buffer] = 0;
            _rentedThisNode.Add(buffer);
            if (!_wrappers.TryGetValue(buffer, out wrapper) || !Fits(wrapper, type, shape))
            {
                wrapper = SwapEarlier(buffer, wrapper, type, shape) ?? new OnnxTensor(type, shape.ToArray(), buffer, count);
                _wrappers[buffer] = wrapper;
            }
        }
        if (!clear && PoisonUninitialized) Poison(buffer);
        else if (clear) Array.Clear(buffer);
        return wrapper;
    }

    /// <summary>
    /// Takes the earlier wrapper of <paramref name="buffer"/> that fits (null when none does) and puts
    /// <paramref name="latest"/> first among the earlier ones, dropping the least recently used when they are full.
    /// </summary>
    private OnnxTensor? SwapEarlier(Array buffer, OnnxTensor? latest, DataType type, ReadOnlySpan<int> shape)
    {
        if (!_earlierWrappers.TryGetValue(buffer, out var earlier))
        {
            if (latest is null) return null;
            _earlierWrappers[buffer] = earlier = new OnnxTensor?[EarlierWrappers];
        }
        int found = -1;
        for (int i = 0; i < earlier.Length && earlier[i] is { } w; i++)
            if (Fits(w, type, shape)) { found = i; break; }
        var taken = found >= 0 ? earlier[found] : null;
        if (latest is null)
        {
            if (found >= 0)
            {
                // Close the gap: the entries after it move up one.
                Array.Copy(earlier, found + 1, earlier, found, earlier.Length - found - 1);
                earlier[^1] = null;
            }
            return taken;
        }
        // The entries before the gap (or all but the last) move down one, and the latest goes first.
        Array.Copy(earlier, 0, earlier, 1, found >= 0 ? found : earlier.Length - 1);
        earlier[0] = latest;
        return taken;
    }

    private static bool Fits(OnnxTensor wrapper, DataType type, ReadOnlySpan<int> shape) =>
        wrapper.ElementType == type && wrapper.Dims.AsSpan().SequenceEqual(shape);

    /// <summary>One more value slot holds <paramref name="buffer"/> (ignored when the pool does not track it).</summary>
    public void AddRef(Array buffer)
    {
        lock (_gate)
        {
            if (_refs.TryGetValue(buffer, out int n)) _refs[buffer] = n + 1;
        }
    }

    /// <summary>A value slot let go of <paramref name="buffer"/>; the last one returns it to its free list.</summary>
    public void Release(Array buffer)
    {
        lock (_gate)
        {
            if (!_refs.TryGetValue(buffer, out int n)) return;
            if (n > 1) _refs[buffer] = n - 1;
            else Free(buffer);
        }
    }

    /// <summary>
    /// After a node ran (and its outputs were counted): buffers it rented that no slot holds — scratch space, outputs
    /// nobody reads — go back to the free lists.
    /// </summary>
    public void EndNode()
    {
        lock (_gate)
        {
            foreach (var buffer in _rentedThisNode)
                if (_refs.TryGetValue(buffer, out int n) && n == 0) Free(buffer);
            _rentedThisNode.Clear();
        }
    }

    /// <summary>A graph output leaves with the caller: the pool stops tracking its buffer (until <see cref="Adopt(Array)"/>).</summary>
    /// <returns>True when the buffer was this run's (so it is no constant, initializer or caller's tensor).</returns>
    public bool Disown(Array buffer)
    {
        lock (_gate)
        {
            if (!_refs.Remove(buffer)) return false;
            _disowned.Add(buffer);
            // The earlier wrappers stay for when the caller gives the buffer back (until the next run begins).
            _wrappers.Remove(buffer);
            return true;
        }
    }

    /// <summary>
    /// The caller is done with a graph output this pool handed out in its latest run: its buffer may be reused. Buffers
    /// the pool never handed out, or already took back, are ignored.
    /// </summary>
    public void Adopt(Array buffer)
    {
        lock (_gate)
        {
            if (_disowned.Remove(buffer)) Push(buffer);
        }
    }

    /// <summary>As <see cref="Adopt(Array)"/>, keeping <paramref name="output"/> as the buffer's wrapper for the next rent of its shape.</summary>
    public void Adopt(OnnxTensor output)
    {
        lock (_gate)
        {
            if (!_disowned.Remove(output.Buffer)) return;
            Push(output.Buffer);
            _wrappers[output.Buffer] = output;
        }
    }

    /// <summary>Starts a run: outputs of earlier runs not given back are forgotten (they belong to their callers).</summary>
    public void BeginRun()
    {
        lock (_gate)
        {
            _run++;
            foreach (var buffer in _disowned) _earlierWrappers.Remove(buffer);
            _disowned.Clear();
        }
    }

    /// <summary>
    /// Ends a run (also after a failure): buffers still tracked are forgotten (never reused, since a failed kernel may
    /// still reference them), and free lists unused for two runs are dropped.
    /// </summary>
    public void EndRun()
    {
        lock (_gate)
        {
            foreach (var buffer in _refs.Keys) Forget(buffer);
            _refs.Clear();
            _rentedThisNode.Clear();
            List<(Type, int)>? stale = null;
            foreach (var (key, list) in _free)
                if (list.LastUsedRun < _run - 1) (stale ??= []).Add(key);
            if (stale is not null)
                foreach (var key in stale)
                {
                    foreach (var buffer in _free[key].Buffers) Forget(buffer);
                    _free.Remove(key);
                }
        }
    }

    /// <summary>Buffers waiting in the free lists (for tests).</summary>
    internal int FreeCount
    {
        get
        {
            lock (_gate) return _free.Values.Sum(l => l.Buffers.Count);
        }
    }

    /// <summary>Whether <paramref name="buffer"/> is one of the pool's own (tracked or free), as opposed to a caller's or the model's.</summary>
    internal bool Holds(Array buffer)
    {
        lock (_gate) return _wrappers.ContainsKey(buffer);
    }

    /// <summary>Whether <paramref name="buffer"/> is tracked by the current run (for tests).</summary>
    internal bool IsTracked(Array buffer)
    {
        lock (_gate) return _refs.ContainsKey(buffer);
    }

    /// <summary>Drops a buffer's cached wrappers (it leaves the pool).</summary>
    private void Forget(Array buffer)
    {
        _wrappers.Remove(buffer);
        _earlierWrappers.Remove(buffer);
    }

    private void Free(Array buffer)
    {
        _refs.Remove(buffer);
        Push(buffer);
    }

    private void Push(Array buffer)
    {
        var key = (buffer.GetType().GetElementType()!, buffer.Length);
        if (!_free.TryGetValue(key, out var list)) _free[key] = list = new FreeList { LastUsedRun = _run };
        list.Buffers.Push(buffer);
    }

    private static void Poison(Array buffer)
    {
        switch (buffer)
        {
            case float[] f: f.AsSpan().Fill(float.NaN); break;
            case double[] d: d.AsSpan().Fill(double.NaN); break;
            case Half[] h: h.AsSpan().Fill(Half.NaN); break;
            case byte[] b: b.AsSpan().Fill(0xCD); break;
            case sbyte[] s: s.AsSpan().Fill(-51); break;
            case short[] s: s.AsSpan().Fill(-12851); break;
            case ushort[] u: u.AsSpan().Fill(0xCDCD); break;
            case int[] i: i.AsSpan().Fill(-842150451); break;
            case uint[] u: u.AsSpan().Fill(0xCDCDCDCD); break;
            case long[] l: l.AsSpan().Fill(-3617008641903833651); break;
            case ulong[] u: u.AsSpan().Fill(0xCDCDCDCDCDCDCDCD); break;
            case bool[] b: b.AsSpan().Fill(true); break;
        }
    }
}
