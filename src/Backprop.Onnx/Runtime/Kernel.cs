using Backprop.Onnx.IR;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// The compiled forward computation of one node. A kernel is built once per plan (attributes parsed, types checked) and
/// run many times; it reads its inputs from the <see cref="KernelContext"/> and sets every output it produces.
/// </summary>
internal abstract class Kernel
{
    public abstract void Run(KernelContext ctx);
}

/// <summary>A kernel from a lambda, for ops whose whole forward pass is a few lines.</summary>
internal sealed class LambdaKernel(Action<KernelContext> run) : Kernel
{
    public override void Run(KernelContext ctx) => run(ctx);
}

/// <summary>Options of one execution: threads, training mode, the seeded random source.</summary>
public sealed class ExecutionOptions
{
    /// <summary>Threads large kernels may use (default: all cores).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// Training mode: Dropout drops, BatchNormalization without an explicit <c>training_mode</c> input uses its
    /// attribute. Default false (inference, as ONNX defines).
    /// </summary>
    public bool TrainingMode { get; set; }

    /// <summary>Seed of the random source used by Dropout and the Random* ops.</summary>
    public int Seed { get; set; } = 42;
}

/// <summary>What a kernel sees while it runs: its node's input and output tensors, options and the random source.</summary>
internal sealed class KernelContext
{
    private OnnxTensor?[] _values = [];
    private int[] _inputs = [];
    private int[] _outputs = [];
    private readonly BufferPool? _pool;

    private Random? _random;
    private int _seed;

    internal KernelContext(ExecutionOptions options, Random random, BufferPool? pool = null)
    {
        Options = options;
        _random = random;
        _pool = pool;
    }

    /// <summary>A context whose random source is made from <paramref name="seed"/> on first use (most runs never draw).</summary>
    internal KernelContext(ExecutionOptions options, int seed, BufferPool? pool)
    {
        Options = options;
        _seed = seed;
        _pool = pool;
    }

    /// <summary>Starts a new run on this context: a fresh random source from <paramref name="seed"/> (made lazily, same sequence).</summary>
    internal void Restart(int seed)
    {
        _seed = seed;
        _random = null;
    }

    public ExecutionOptions Options { get; }

    public Random Random => _random ??= new Random(_seed);

    public Node Node { get; private set; } = null!;

    internal void Bind(Node node, OnnxTensor?[] values, int[] inputs, int[] outputs)
    {
        Node = node;
        _values = values;
        _inputs = inputs;
        _outputs = outputs;
    }

    public int InputCount => _inputs.Length;

    public int OutputCount => _outputs.Length;

    /// <summary>Input <paramref name="index"/>, or null when absent (optional input left empty or beyond the node's inputs).</summary>
    public OnnxTensor? Input(int index) => index < _inputs.Length && _inputs[index] >= 0 ? _values[_inputs[index]] : null;

    /// <summary>Input <paramref name="index"/>; throws <see cref="InvalidInputException"/> when it is absent.</summary>
    public OnnxTensor RequiredInput(int index) =>
        Input(index) ?? throw new InvalidInputException($"{Node.Describe()}: required input {index} is missing");

    /// <summary>True when output <paramref name="index"/> exists and is consumed or is a graph output.</summary>
    public bool IsOutputUsed(int index) => index < _outputs.Length && _outputs[index] >= 0;

    /// <summary>The tensor output <paramref name="index"/> holds after the kernel ran (null if unset or unused).</summary>
    public OnnxTensor? OutputValue(int index) => index < _outputs.Length && _outputs[index] >= 0 ? _values[_outputs[index]] : null;

    public void SetOutput(int index, OnnxTensor tensor)
    {
        if (index < _outputs.Length && _outputs[index] >= 0) _values[_outputs[index]] = tensor;
    }

    /// <summary>
    /// Sets output <paramref name="index"/> to <paramref name="x"/>'s buffer seen with <paramref name="shape"/> (Reshape,
    /// Flatten, Squeeze, Unsqueeze). A wrapper this output was given in an earlier run is returned again when it has the
    /// same buffer, element type and shape (tensors are immutable), so a steady-state run allocates no view. Each output
    /// remembers its last <see cref="ViewsPerOutput"/> views, because the pool may hand a value a different buffer of the
    /// same size from run to run (its free lists are stacks, and the order of releases varies between runs).
    /// </summary>
    /// <exception cref="ArgumentException">The element counts differ.</exception>
    public void SetOutputView(int index, OnnxTensor x, ReadOnlySpan<int> shape)
    {
        if (index >= _outputs.Length || _outputs[index] < 0) return;
        int slot = _outputs[index];
        if (_views is null || _views.Length != _values.Length * ViewsPerOutput) _views = new OnnxTensor?[_values.Length * ViewsPerOutput];
        var views = _views.AsSpan(slot * ViewsPerOutput, ViewsPerOutput);
        for (int i = 0; i < views.Length; i++)
        {
            var cached = views[i];
            if (cached is not null && ReferenceEquals(cached.Buffer, x.Buffer) && cached.ElementType == x.ElementType
                && cached.ElementCount == x.ElementCount && cached.Dims.AsSpan().SequenceEqual(shape))
            {
                // Most recently used first (what ForgetOldForeignViews keeps).
                for (int j = i; j > 0; j--) views[j] = views[j - 1];
                views[0] = cached;
                _values[slot] = cached;
                return;
            }
        }
        // A miss: the newest view goes first, the oldest drops out.
        var view = x.Reshape(shape);
        for (int i = ViewsPerOutput - 1; i > 0; i--) views[i] = views[i - 1];
        views[0] = view;
        _values[slot] = view;
    }

    /// <summary>
    /// After a run: drops every remembered view but the most recently used of each output whose buffer is neither the
    /// pool's nor the model's (<paramref name="protectedBuffers"/>): a caller's input. A plan then keeps at most one
    /// earlier batch alive per view, not <see cref="ViewsPerOutput"/>.
    /// </summary>
    internal void ForgetOldForeignViews(BufferPool pool, HashSet<Array> protectedBuffers)
    {
        if (_views is null) return;
        for (int i = 0; i < _views.Length; i++)
            if (i % ViewsPerOutput != 0 && _views[i] is { } view && !pool.Holds(view.Buffer) && !protectedBuffers.Contains(view.Buffer)) _views[i] = null;
    }

    /// <summary>How many recent views <see cref="SetOutputView"/> keeps per output.</summary>
    internal const int ViewsPerOutput = 4;

    /// <summary>The views each output slot was last given (per run state, so concurrent runs never share one).</summary>
    private OnnxTensor?[]? _views;

    /// <summary>A zero-filled tensor for an output or scratch space (from the plan's buffer pool when there is one).</summary>
    public OnnxTensor Allocate(DataType type, ReadOnlySpan<int> shape) =>
        _pool is not null && BufferPool.Poolable(type) ? _pool.Rent(type, shape, clear: true) : OnnxTensor.Zeros(type, shape);

    /// <summary>
    /// A tensor whose elements are left as the pooled buffer held them, for kernels that write every element before
    /// reading any (a product, an elementwise map). Debug builds fill it with NaN / 0xCD so a kernel that forgets an
    /// element fails its tests instead of reading a stale value.
    /// </summary>
    public OnnxTensor AllocateUninitialized(DataType type, ReadOnlySpan<int> shape) =>
        _pool is not null && BufferPool.Poolable(type) ? _pool.Rent(type, shape, clear: false) : OnnxTensor.Zeros(type, shape);

    /// <summary>An <see cref="InvalidInputException"/> that names this node.</summary>
    public InvalidInputException Invalid(string what) => new($"{Node.Describe()}: {what}");
}
