using Backprop.Onnx.Export;
using Backprop.Onnx.IR;
using Microsoft.ML.OnnxRuntime;

namespace Backprop.Onnx.OnnxRuntime;

/// <summary>
/// Reference runs on ONNX Runtime (CPU execution provider, sequential execution, one or two intra-op threads): the oracle
/// our executor and our exporter are checked against. Inputs and outputs are <see cref="OnnxTensor"/>s; conversions are
/// bit-exact (<see cref="OrtTensorConversions"/>).
/// </summary>
internal static class OrtReference
{
    /// <summary>Runs an IR model (exported in memory, all tensors inline) on the given inputs.</summary>
    /// <param name="model">The model; its graph inputs that have no initializer must all be fed.</param>
    /// <param name="inputs">Input tensors by graph input name.</param>
    /// <param name="threads">Intra-op threads: 1 (deterministic) or 2.</param>
    /// <returns>Every graph output by name, in graph output order.</returns>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime rejects the model or fails to run it.</exception>
    /// <exception cref="NotSupportedException">An input or output is not a tensor of a convertible element type.</exception>
    public static Dictionary<string, OnnxTensor> Run(OnnxModel model, IReadOnlyDictionary<string, OnnxTensor> inputs, int threads = 1) =>
        Run(ModelExporter.ToBytes(model), inputs, threads);

    /// <summary>Runs a serialized model on the given inputs.</summary>
    /// <param name="modelBytes">A serialized <c>ModelProto</c>.</param>
    /// <param name="inputs">Input tensors by graph input name.</param>
    /// <param name="threads">Intra-op threads: 1 (deterministic) or 2.</param>
    /// <returns>Every graph output by name, in graph output order.</returns>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime rejects the model or fails to run it.</exception>
    /// <exception cref="NotSupportedException">An input or output is not a tensor of a convertible element type.</exception>
    public static Dictionary<string, OnnxTensor> Run(byte[] modelBytes, IReadOnlyDictionary<string, OnnxTensor> inputs, int threads = 1)
    {
        using var session = OrtReferenceSession.Load(modelBytes, threads);
        return session.Run(inputs);
    }

    /// <summary>Whether ONNX Runtime accepts the model (parses, checks and builds a CPU session for it).</summary>
    /// <param name="modelBytes">A serialized <c>ModelProto</c>.</param>
    /// <param name="error">ONNX Runtime's message when it does not; empty when it does.</param>
    public static bool TryLoad(byte[] modelBytes, out string error)
    {
        try
        {
            using var session = OrtReferenceSession.Load(modelBytes, threads: 1);
            error = "";
            return true;
        }
        catch (OnnxRuntimeException e)
        {
            error = e.Message;
            return false;
        }
    }
}

/// <summary>An ONNX Runtime inference session on the CPU provider, run with <see cref="OnnxTensor"/> inputs and outputs.</summary>
internal sealed class OrtReferenceSession : IDisposable
{
    private readonly InferenceSession _session;

    private OrtReferenceSession(InferenceSession session) => _session = session;

    /// <summary>The graph input names ONNX Runtime expects to be fed (initializers excluded).</summary>
    public IReadOnlyList<string> InputNames => _session.InputNames;

    /// <summary>The graph output names, in graph order.</summary>
    public IReadOnlyList<string> OutputNames => _session.OutputNames;

    /// <summary>Builds a session for a serialized model.</summary>
    /// <param name="modelBytes">A serialized <c>ModelProto</c> (external data cannot be resolved: load it from a file).</param>
    /// <param name="threads">Intra-op threads, 1 or 2.</param>
    /// <param name="optimize">Whether ONNX Runtime may rewrite the graph (fusions, constant folding); off runs the nodes as written.</param>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime rejects the model.</exception>
    public static OrtReferenceSession Load(byte[] modelBytes, int threads = 1, bool optimize = true)
    {
        using var options = Options(threads, optimize);
        return new OrtReferenceSession(new InferenceSession(modelBytes, options));
    }

    /// <summary>Builds a session for a model file; ONNX Runtime reads its external data from the file's folder.</summary>
    /// <param name="modelPath">A <c>.onnx</c> file.</param>
    /// <param name="threads">Intra-op threads, 1 or 2.</param>
    /// <param name="optimize">Whether ONNX Runtime may rewrite the graph.</param>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime rejects the model or cannot read it.</exception>
    public static OrtReferenceSession LoadFile(string modelPath, int threads = 1, bool optimize = true)
    {
        using var options = Options(threads, optimize);
        return new OrtReferenceSession(new InferenceSession(modelPath, options));
    }

    private static SessionOptions Options(int threads, bool optimize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threads, 2);
        return new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = optimize ? GraphOptimizationLevel.ORT_ENABLE_ALL : GraphOptimizationLevel.ORT_DISABLE_ALL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
        };
    }

    /// <summary>Runs the model once.</summary>
    /// <param name="inputs">Input tensors by name; names the session does not expect are an error.</param>
    /// <returns>Every graph output by name, in graph output order.</returns>
    /// <exception cref="OnnxRuntimeException">A missing input, a wrong type or shape, or a kernel failure.</exception>
    /// <exception cref="NotSupportedException">An input or output is not a tensor of a convertible element type.</exception>
    public Dictionary<string, OnnxTensor> Run(IReadOnlyDictionary<string, OnnxTensor> inputs)
    {
        var names = new List<string>(inputs.Count);
        var values = new List<OrtValue>(inputs.Count);
        try
        {
            foreach (var (name, tensor) in inputs)
            {
                values.Add(OrtTensorConversions.ToOrtValue(tensor));
                names.Add(name);
            }
            using var runOptions = new RunOptions();
            using var outputs = _session.Run(runOptions, names, values, _session.OutputNames);
            var result = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
            int i = 0;
            foreach (var output in outputs) result[_session.OutputNames[i++]] = OrtTensorConversions.FromOrtValue(output);
            return result;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>Releases the native session.</summary>
    public void Dispose() => _session.Dispose();
}
