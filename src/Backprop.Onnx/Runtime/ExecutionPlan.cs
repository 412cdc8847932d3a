using Backprop.Onnx.IR;
using Backprop.Onnx.Ops;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// A graph compiled for execution: nodes in a stable topological order (ties broken by node index), one kernel per node
/// chosen by op type, opset version and element type, and value lifetimes so every intermediate is dropped after its
/// last use. Building the plan fails with <see cref="UnsupportedOperatorException"/> for anything the engine cannot run.
/// </summary>
public sealed class ExecutionPlan
{
    private readonly Graph _graph;
    private readonly Node[] _order;
    private readonly Kernel[] _kernels;
    private readonly int[][] _inputSlots;
    private readonly int[][] _outputSlots;
    private readonly int[][] _releaseAfter;
    private readonly Dictionary<string, int> _slots;
    private readonly int[] _graphInputSlots;
    private readonly int[] _graphOutputSlots;
    private readonly OnnxTensor?[] _constants;
    private readonly Dictionary<string, ValueInfo> _declaredInputs;
    private readonly HashSet<Array> _protectedBuffers;

    /// <summary>Compiles the main graph of <paramref name="model"/>.</summary>
    /// <param name="model">An imported model.</param>
    /// <param name="options">Threads, training mode and seed; null for defaults.</param>
    /// <exception cref="UnsupportedOperatorException">An op, opset version, attribute or element type is not implemented.</exception>
    public static ExecutionPlan Compile(OnnxModel model, ExecutionOptions? options = null)
    {
        // The standard Gradient op (ai.onnx.preview.training) is executed by lowering it to backward nodes first.
        if (Autodiff.GradientOpLowering.Needs(model)) model = Autodiff.GradientOpLowering.Lower(model);
        return new(model.Graph, OpsetsOf(model), options ?? new ExecutionOptions(), []);
    }

    internal static IReadOnlyDictionary<string, long> OpsetsOf(OnnxModel model)
    {
        var map = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var o in model.OpsetImports) map[OpRegistry.NormalizeDomain(o.Domain)] = o.Version;
        return map;
    }

    internal ExecutionPlan(Graph graph, IReadOnlyDictionary<string, long> opsets, ExecutionOptions options, IReadOnlyCollection<string> outerValues)
    {
        _graph = graph;
        Options = options;
        Opsets = opsets;
        _order = TopologicalOrder(graph);
        foreach (var v in graph.Inputs.Concat(graph.Outputs))
        {
            if (v.NonTensorType is null) continue;
            var user = _order.FirstOrDefault(n => n.Inputs.Contains(v.Name) || n.Outputs.Contains(v.Name));
            string kind = v.NonTensorType.ValueCase.ToString().Replace("Type", "", StringComparison.Ordinal).ToLowerInvariant();
            throw new UnsupportedOperatorException(user?.OpType ?? "<graph>", user?.Domain ?? "", user is null ? 0 : VersionOfDomain(opsets, user.Domain),
                user?.Name ?? graph.Name, $"value '{v.Name}' is a {kind}; only tensor values are supported");
        }
        var types = TypeInferencePass.Run(graph, opsets);
        _order = PlanFusion.Apply(_order, graph, types); // fused epilogues (Conv + Relu, MatMul + bias + Relu) and folded weight transposes: the plan only, the graph is unchanged

        _slots = new Dictionary<string, int>(StringComparer.Ordinal);
        int Slot(string name)
        {
            if (!_slots.TryGetValue(name, out int s)) _slots[name] = s = _slots.Count;
            return s;
        }
        foreach (var name in graph.Initializers.Keys) Slot(name);
        _graphInputSlots = [.. graph.Inputs.Select(v => Slot(v.Name))];
        foreach (var name in outerValues) Slot(name);

        _kernels = new Kernel[_order.Length];
        _inputSlots = new int[_order.Length][];
        _outputSlots = new int[_order.Length][];
        var consumed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in _order) foreach (var i in n.Inputs) if (i.Length > 0) consumed.Add(i);
        foreach (var o in graph.Outputs) consumed.Add(o.Name);
        for (int k = 0; k < _order.Length; k++)
        {
            var node = _order[k];
            long version = VersionOf(node);
            var def = OpRegistry.Find(node, version);
            var ctx = new OpContext(node, version, [.. node.Inputs.Select(i => i.Length == 0 ? DataType.Undefined : types.GetValueOrDefault(i))]);
            _kernels[k] = def.Create(ctx);
            _inputSlots[k] = [.. node.Inputs.Select(i => i.Length == 0 ? -1 : Slot(i))];
            _outputSlots[k] = [.. node.Outputs.Select(o => o.Length == 0 || !consumed.Contains(o) ? -1 : Slot(o))];
        }
        _graphOutputSlots = [.. graph.Outputs.Select(v => Slot(v.Name))];

        // Lifetimes: a value is released right after the last node that reads it, unless it is a graph output,
        // a graph input or an initializer (those belong to the caller or the model).
        var lastUse = new Dictionary<int, int>();
        for (int k = 0; k < _order.Length; k++)
            foreach (int s in _inputSlots[k]) if (s >= 0) lastUse[s] = k;
        var keep = new HashSet<int>(_graphOutputSlots);
        keep.UnionWith(_graphInputSlots);
        foreach (var name in graph.Initializers.Keys) keep.Add(_slots[name]);
        var release = new List<int>[_order.Length];
        for (int k = 0; k < _order.Length; k++) release[k] = [];
        foreach (var (slot, k) in lastUse) if (!keep.Contains(slot)) release[k].Add(slot);
        // Outputs nobody reads (and that are not graph outputs) are released right after their node.
        _releaseAfter = [.. release.Select(r => r.ToArray())];

        _declaredInputs = graph.Inputs.Where(v => v.NonTensorType is null).GroupBy(v => v.Name).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        _protectedBuffers = new HashSet<Array>(ReferenceEqualityComparer.Instance);
        foreach (var t in graph.Initializers.Values) _protectedBuffers.Add(t.Buffer);
        foreach (var n in graph.Nodes)
            foreach (var a in n.Attributes)
            {
                if (a.Tensor is { } at) _protectedBuffers.Add(at.Buffer);
                foreach (var t in a.Tensors) _protectedBuffers.Add(t.Buffer);
            }
        _constants = new OnnxTensor?[_slots.Count];
        foreach (var (name, t) in graph.Initializers) _constants[_slots[name]] = t;
    }

    /// <summary>The options the plan runs with.</summary>
    public ExecutionOptions Options { get; }

    internal IReadOnlyDictionary<string, long> Opsets { get; }

    internal Graph Graph => _graph;

    /// <summary>Number of nodes in the plan.</summary>
    public int NodeCount => _order.Length;

    /// <summary>The nodes the plan runs, in order (fused nodes of <see cref="PlanFusion"/> included).</summary>
    internal IReadOnlyList<Node> PlannedNodes => _order;

    private static long VersionOfDomain(IReadOnlyDictionary<string, long> opsets, string domain) =>
        opsets.TryGetValue(OpRegistry.NormalizeDomain(domain), out long v) ? v : 1;

    private long VersionOf(Node node)
    {
        if (PlanFusion.IsFused(node)) return VersionOfDomain(Opsets, "");
        string domain = OpRegistry.NormalizeDomain(node.Domain);
        if (Opsets.TryGetValue(domain, out long v)) return v;
        if (domain.Length == 0) return 1;
        throw new UnsupportedOperatorException(node.OpType, node.Domain, 0, node.Name, $"the model does not import domain '{node.Domain}'");
    }

    /// <summary>
    /// Runs the graph. Inputs are matched by name and checked against the graph's declarations (element type, rank,
    /// fixed dimensions, consistent symbolic dimensions); a graph input that is also an initializer may be left out (its
    /// initializer is used) or fed to override it. The caller's tensors are never written to. Returned tensors belong to
    /// the caller: an output that would alias a constant, an initializer or an input is returned as a copy.
    /// </summary>
    /// <param name="inputs">Tensors by graph input name.</param>
    /// <returns>Every graph output by name.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="inputs"/> is null.</exception>
    /// <exception cref="InvalidInputException">A required input is missing, does not match its declaration, or a tensor does not fit its node.</exception>
    public IReadOnlyDictionary<string, OnnxTensor> Run(IReadOnlyDictionary<string, OnnxTensor> inputs) =>
        RunCore(inputs, null, null, false, out _);

    internal IReadOnlyDictionary<string, OnnxTensor> Run(IReadOnlyDictionary<string, OnnxTensor> inputs, IReadOnlyDictionary<string, OnnxTensor>? outer, out OnnxTensor?[] values, Action<Node, KernelContext>? afterNode = null)
    {
        var result = RunCore(inputs, outer, afterNode, true, out var snapshot);
        values = snapshot!;
        return result;
    }

    /// <summary>
    /// Gives the buffers of outputs from this plan's latest run back for reuse: the caller promises it holds no
    /// reference to them any more (the trainer does this with a step's gradients once the optimizer consumed them).
    /// Tensors that did not come from this plan's latest run are ignored.
    /// </summary>
    internal void Recycle(IEnumerable<OnnxTensor> outputs)
    {
        if (Interlocked.Exchange(ref _idleState, null) is not { } state) return;
        foreach (var t in outputs) state.Pool.Adopt(t);
        _idleState = state;
    }

    /// <summary>Gives back every output of a run (walking a Dictionary without allocating).</summary>
    internal void Recycle(IReadOnlyDictionary<string, OnnxTensor> outputs)
    {
        if (Interlocked.Exchange(ref _idleState, null) is not { } state) return;
        if (outputs is Dictionary<string, OnnxTensor> dictionary)
            foreach (var t in dictionary.Values) state.Pool.Adopt(t);
        else
            foreach (var t in outputs.Values) state.Pool.Adopt(t);
        _idleState = state;
    }

    /// <summary>What one run needs besides the plan: the value slots, the kernel context and the buffer pool (reused by the next run).</summary>
    private sealed class RunState(ExecutionPlan plan)
    {
        public readonly OnnxTensor?[] Values = new OnnxTensor?[plan._constants.Length];
        public readonly BufferPool Pool = new();
        /// <summary>Sizes bound to symbolic dimensions while the inputs are checked (cleared per run).</summary>
        public readonly Dictionary<string, int> Symbols = new(StringComparer.Ordinal);
        public KernelContext? Context;
    }

    /// <summary>The state of the last finished run, taken by the next; a run that finds it taken (a concurrent run) makes its own.</summary>
    private RunState? _idleState;

    private IReadOnlyDictionary<string, OnnxTensor> RunCore(IReadOnlyDictionary<string, OnnxTensor> inputs, IReadOnlyDictionary<string, OnnxTensor>? outer,
        Action<Node, KernelContext>? afterNode, bool wantValues, out OnnxTensor?[]? snapshot, Dictionary<string, OnnxTensor>? into = null)
    {
        var state = Interlocked.Exchange(ref _idleState, null) ?? new RunState(this);
        var values = state.Values;
        var pool = state.Pool;
        Array.Copy(_constants, values, values.Length);
        pool.BeginRun();
        try
        {
            ArgumentNullException.ThrowIfNull(inputs);
            Dictionary<string, int>? symbols = state.Symbols;
            symbols.Clear();
            // A Dictionary is walked with its struct enumerator (no allocation per run); other dictionaries through the interface.
            if (inputs is Dictionary<string, OnnxTensor> dictionary)
                foreach (var (name, tensor) in dictionary) Feed(name, tensor, values, ref symbols);
            else
                foreach (var (name, tensor) in inputs) Feed(name, tensor, values, ref symbols);
            if (outer is not null)
                foreach (var (name, tensor) in outer) if (_slots.TryGetValue(name, out int s) && values[s] is null) values[s] = tensor;
            for (int i = 0; i < _graphInputSlots.Length; i++)
                if (values[_graphInputSlots[i]] is null)
                    throw new InvalidInputException($"graph input '{_graph.Inputs[i].Name}' was not given");

            var ctx = state.Context ??= new KernelContext(Options, Options.Seed, pool);
            ctx.Restart(Options.Seed);
            for (int k = 0; k < _order.Length; k++)
            {
                var node = _order[k];
                ctx.Bind(node, values, _inputSlots[k], _outputSlots[k]);
                var mark = PlanProfiler.Enabled ? PlanProfiler.Start() : default;
                try
                {
                    _kernels[k].Run(ctx);
                }
                catch (BackpropOnnxException)
                {
                    throw;
                }
                catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or InvalidOperationException or InvalidCastException or OverflowException or NullReferenceException)
                {
                    throw new InvalidInputException($"{node.Describe()}: {e.Message}");
                }
                if (PlanProfiler.Enabled) PlanProfiler.Stop(node, mark, ctx);
                foreach (int s in _outputSlots[k])
                {
                    if (s < 0) continue;
                    if (values[s] is { } produced) pool.AddRef(produced.Buffer);
                    else if (!_releaseAfter[k].Contains(s) && IsConsumed(s)) throw new InvalidInputException($"{node.Describe()}: produced no value for a used output");
                }
                pool.EndNode();
                afterNode?.Invoke(node, ctx);
                foreach (int s in _releaseAfter[k])
                {
                    if (values[s] is { } dead) pool.Release(dead.Buffer);
                    values[s] = null;
                }
            }
            var result = into ?? new Dictionary<string, OnnxTensor>(_graphOutputSlots.Length, StringComparer.Ordinal);
            result.Clear();
            for (int i = 0; i < _graphOutputSlots.Length; i++)
            {
                string name = _graph.Outputs[i].Name;
                var t = values[_graphOutputSlots[i]] ?? throw new InvalidInputException($"graph output '{name}' was not computed");
                // An output that is a constant, an initializer or a caller's input (Identity, Reshape of one) is copied, so
                // that writing to an output never changes the model or a later run. A buffer this run rented is none of those.
                if (!pool.Disown(t.Buffer) && (_protectedBuffers.Contains(t.Buffer) || IsFed(inputs, t.Buffer)))
                    t = into is null ? t.Clone() : ReusedCopy(i, t);
                result[name] = t;
            }
            snapshot = wantValues ? (OnnxTensor?[])values.Clone() : null;
            return result;
        }
        finally
        {
            pool.EndRun();
            state.Context?.ForgetOldForeignViews(pool, _protectedBuffers);
            Array.Clear(values);
            _idleState = state;
        }
    }

    /// <summary>
    /// Like <see cref="Run(IReadOnlyDictionary{string, OnnxTensor})"/>, but the outputs are written into the plan's one
    /// reused dictionary (no allocation per run): it is valid only until the next call of this method (the trainer's step).
    /// </summary>
    internal IReadOnlyDictionary<string, OnnxTensor> RunReusingResult(IReadOnlyDictionary<string, OnnxTensor> inputs) =>
        RunCore(inputs, null, null, false, out _, _reusedResult ??= new Dictionary<string, OnnxTensor>(StringComparer.Ordinal));

    private Dictionary<string, OnnxTensor>? _reusedResult;

    /// <summary>The copies <see cref="RunReusingResult"/> last made of outputs that are constants or inputs, per output.</summary>
    private OnnxTensor?[]? _reusedCopies;

    /// <summary>
    /// A copy of output <paramref name="output"/>'s value <paramref name="t"/> for the reused result: the copy of the
    /// previous call refilled when it has the same type and shape (it is valid only until this call, like the result),
    /// else a new one. A training step's constant outputs (the zero gradients of running statistics) allocate nothing.
    /// </summary>
    private OnnxTensor ReusedCopy(int output, OnnxTensor t)
    {
        var copies = _reusedCopies ??= new OnnxTensor?[_graphOutputSlots.Length];
        if (copies[output] is { } copy && copy.ElementType == t.ElementType && copy.Dims.AsSpan().SequenceEqual(t.Dims))
        {
            Array.Copy(t.Buffer, copy.Buffer, copy.StorageLength);
            return copy;
        }
        return copies[output] = t.Clone();
    }

    private void Feed(string name, OnnxTensor tensor, OnnxTensor?[] values, ref Dictionary<string, int>? symbols)
    {
        if (!_slots.TryGetValue(name, out int s) || (!_graphInputSlots.Contains(s) && !_graph.Initializers.ContainsKey(name)))
            throw new InvalidInputException($"'{name}' is not an input of the graph (inputs: {string.Join(", ", _graph.RuntimeInputs.Select(v => v.Name))})");
        if (tensor is null) throw new InvalidInputException($"input '{name}' is null");
        CheckAgainstDeclaration(name, tensor, ref symbols);
        values[s] = tensor;
    }

    private static bool IsFed(IReadOnlyDictionary<string, OnnxTensor> inputs, Array buffer)
    {
        // A Dictionary is walked with its struct enumerator: through the interface the enumerator would be boxed.
        if (inputs is Dictionary<string, OnnxTensor> dictionary)
        {
            foreach (var i in dictionary.Values) if (ReferenceEquals(i.Buffer, buffer)) return true;
            return false;
        }
        foreach (var i in inputs.Values) if (ReferenceEquals(i.Buffer, buffer)) return true;
        return false;
    }

    /// <summary>
    /// Checks a fed tensor against the graph's declaration of that input (ONNX IR spec, "Static tensor shapes"): element
    /// type, rank, every fixed dimension, and the same size wherever one symbolic dimension (e.g. <c>batch</c>) recurs.
    /// </summary>
    private void CheckAgainstDeclaration(string name, OnnxTensor tensor, ref Dictionary<string, int>? symbols)
    {
        if (_declaredInputs.TryGetValue(name, out var declared)) CheckAgainstDeclaration(declared, tensor, ref symbols);
    }

    /// <summary>
    /// The first way in which <paramref name="inputs"/> contradict <paramref name="graph"/>'s input declarations, or null
    /// when they fit (the check that running the plan makes).
    /// </summary>
    public static string? FindInputMismatch(Graph graph, IReadOnlyDictionary<string, OnnxTensor> inputs)
    {
        Dictionary<string, int>? symbols = null;
        try
        {
            foreach (var v in graph.Inputs)
                if (v.NonTensorType is null && inputs.TryGetValue(v.Name, out var t)) CheckAgainstDeclaration(v, t, ref symbols);
            return null;
        }
        catch (InvalidInputException e) { return e.Message; }
    }

    private static void CheckAgainstDeclaration(ValueInfo declared, OnnxTensor tensor, ref Dictionary<string, int>? symbols)
    {
        string name = declared.Name;
        if (declared.ElementType != DataType.Undefined && declared.ElementType != tensor.ElementType)
            throw new InvalidInputException($"input '{name}' is {DataTypes.OnnxName(tensor.ElementType)}, but the graph declares {DataTypes.OnnxName(declared.ElementType)}");
        if (declared.Shape is not { } shape) return;
        string Declared() => "[" + string.Join(",", shape) + "]";
        if (shape.Count != tensor.Rank)
            throw new InvalidInputException($"input '{name}' has shape [{string.Join(',', tensor.Dims)}], but the graph declares {Declared()}");
        for (int i = 0; i < shape.Count; i++)
        {
            if (shape[i].Value is { } fixedSize && fixedSize != tensor.Dims[i])
                throw new InvalidInputException($"input '{name}' has shape [{string.Join(',', tensor.Dims)}], but the graph declares {Declared()}");
            if (shape[i].Param is { Length: > 0 } symbol)
            {
                symbols ??= new Dictionary<string, int>(StringComparer.Ordinal);
                if (symbols.TryGetValue(symbol, out int bound) && bound != tensor.Dims[i])
                    throw new InvalidInputException($"input '{name}' has {symbol} = {tensor.Dims[i]} (shape [{string.Join(',', tensor.Dims)}]), but another input has {symbol} = {bound}");
                symbols[symbol] = tensor.Dims[i];
            }
        }
    }

    private bool IsConsumed(int slot) => _graphOutputSlots.Contains(slot) || _inputSlots.Any(a => a.Contains(slot));

    /// <summary>Kahn's algorithm with a min-heap on node index, so the order is stable and graphs diff cleanly.</summary>
    internal static Node[] TopologicalOrder(Graph graph)
    {
        var nodes = graph.Nodes;
        var producer = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < nodes.Count; i++) foreach (var o in nodes[i].Outputs) if (o.Length > 0) producer[o] = i;
        var indegree = new int[nodes.Count];
        var consumers = new List<int>[nodes.Count];
        for (int i = 0; i < nodes.Count; i++) consumers[i] = [];
        for (int i = 0; i < nodes.Count; i++)
        {
            foreach (var input in SubgraphAwareInputs(nodes[i]))
                if (producer.TryGetValue(input, out int p) && p != i) { indegree[i]++; consumers[p].Add(i); }
        }
        var ready = new PriorityQueue<int, int>();
        for (int i = 0; i < nodes.Count; i++) if (indegree[i] == 0) ready.Enqueue(i, i);
        var order = new List<Node>(nodes.Count);
        while (ready.TryDequeue(out int i, out _))
        {
            order.Add(nodes[i]);
            foreach (int c in consumers[i]) if (--indegree[c] == 0) ready.Enqueue(c, c);
        }
        if (order.Count != nodes.Count) throw new ModelFormatException("<graph>", graph.Name, "the graph has a cycle");
        return [.. order];
    }

    /// <summary>A node's inputs plus the outer-scope values its subgraphs read.</summary>
    internal static IEnumerable<string> SubgraphAwareInputs(Node node)
    {
        foreach (var i in node.Inputs) if (i.Length > 0) yield return i;
        foreach (var a in node.Attributes)
        {
            foreach (var g in a.Graphs.Append(a.Graph))
            {
                if (g is null) continue;
                var local = new HashSet<string>(g.Initializers.Keys, StringComparer.Ordinal);
                foreach (var v in g.Inputs) local.Add(v.Name);
                foreach (var n in g.Nodes) foreach (var o in n.Outputs) local.Add(o);
                foreach (var n in g.Nodes) foreach (var i in SubgraphAwareInputs(n)) if (!local.Contains(i)) yield return i;
            }
        }
    }
}
