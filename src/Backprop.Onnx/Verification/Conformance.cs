using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Verification;

/// <summary>The outcome of one backend test folder.</summary>
public enum ConformanceStatus
{
    /// <summary>Every output of every data set matched within tolerance.</summary>
    Pass,
    /// <summary>An output differed, had the wrong shape or type, or the run crashed.</summary>
    Wrong,
    /// <summary>The plan could not be built: an op, version, attribute or type is not implemented.</summary>
    Unsupported,
}

/// <summary>One test's result: its name, status and, unless it passed, why.</summary>
/// <param name="Name">The test folder's name (e.g. <c>test_relu</c>).</param>
/// <param name="Status">Pass, wrong or unsupported.</param>
/// <param name="Reason">Why it did not pass; empty on pass.</param>
public sealed record ConformanceResult(string Name, ConformanceStatus Status, string Reason);

/// <summary>
/// Runs ONNX backend test folders (a <c>model.onnx</c> beside <c>test_data_set_*</c> folders with
/// <c>input_*.pb</c>/<c>output_*.pb</c>) on the executor and compares with the expected outputs using the backend
/// tolerances of onnx/backend/test/runner (rtol 1e-3, atol 1e-7; NaN equals NaN).
/// </summary>
public static class Conformance
{
    /// <summary>Relative tolerance of the ONNX backend test runner.</summary>
    public const double RelativeTolerance = 1e-3;

    /// <summary>Absolute tolerance of the ONNX backend test runner.</summary>
    public const double AbsoluteTolerance = 1e-7;

    /// <summary>
    /// Backend tests whose expected outputs contradict their own model, with the evidence. They are reported as
    /// unsupported with this reason instead of being run; tests/…/TrainingOpsTests proves each defect.
    /// </summary>
    public static IReadOnlyDictionary<string, string> KnownTestDataDefects { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["test_adam_multiple"] = "test data defect: the expected outputs use epsilon=1e-2, but the node does not set epsilon (spec default 1e-6); see onnx/backend/test/case/node/adam.py export_adam_multiple",
    };

    /// <summary>Every test folder at or below the given folders, sorted by path.</summary>
    public static IReadOnlyList<string> FindTests(IEnumerable<string> roots)
    {
        var found = new List<string>();
        foreach (var root in roots)
        {
            if (!Directory.Exists(root)) continue;
            foreach (var model in Directory.EnumerateFiles(root, "model.onnx", SearchOption.AllDirectories))
            {
                var dir = Path.GetDirectoryName(model)!;
                if (Directory.EnumerateDirectories(dir, "test_data_set_*").Any()) found.Add(dir);
            }
        }
        found.Sort(StringComparer.Ordinal);
        return found;
    }

    /// <summary>Runs one test folder; never throws (a crash is <see cref="ConformanceStatus.Wrong"/>).</summary>
    public static ConformanceResult Run(string testDirectory)
    {
        string name = Path.GetFileName(testDirectory.TrimEnd('/'));
        if (KnownTestDataDefects.TryGetValue(name, out var defect)) return new(name, ConformanceStatus.Unsupported, defect);
        ExecutionPlan plan;
        OnnxModel model;
        try
        {
            model = ModelImporter.Load(Path.Combine(testDirectory, "model.onnx"));
            plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 });
        }
        catch (Exception e) when (e is UnsupportedOperatorException or Autodiff.DifferentiationException) { return new(name, ConformanceStatus.Unsupported, e.Message); }
        catch (Exception e) { return new(name, ConformanceStatus.Wrong, $"{e.GetType().Name}: {e.Message}"); }

        try
        {
            foreach (var set in Directory.EnumerateDirectories(testDirectory, "test_data_set_*").Order(StringComparer.Ordinal))
            {
                var (inputs, expected) = LoadDataSet(model.Graph, set);
                if (ExecutionPlan.FindInputMismatch(model.Graph, inputs) is { } mismatch)
                    return new(name, ConformanceStatus.Unsupported, $"test data defect: {Path.GetFileName(set)} contradicts the model: {mismatch}");
                if (expected.Count != model.Graph.Outputs.Count)
                    return new(name, ConformanceStatus.Wrong, $"{Path.GetFileName(set)} holds {expected.Count} expected outputs for {model.Graph.Outputs.Count} graph outputs");
                var outputs = plan.Run(inputs);
                for (int i = 0; i < expected.Count; i++)
                {
                    string outName = model.Graph.Outputs[i].Name;
                    string? why = Compare(outputs[outName], expected[i]);
                    if (why is not null) return new(name, ConformanceStatus.Wrong, $"{Path.GetFileName(set)} output '{outName}': {why}");
                }
            }
        }
        catch (Exception e) when (e is UnsupportedOperatorException or Autodiff.DifferentiationException) { return new(name, ConformanceStatus.Unsupported, e.Message); }
        catch (Exception e) { return new(name, ConformanceStatus.Wrong, $"{e.GetType().Name}: {e.Message}"); }
        return new(name, ConformanceStatus.Pass, "");
    }

    /// <summary>The inputs (by graph input name, in file order) and expected outputs (in graph output order) of a data set.</summary>
    public static (Dictionary<string, OnnxTensor> Inputs, List<OnnxTensor> Outputs) LoadDataSet(Graph graph, string setDirectory)
    {
        var runtimeInputs = graph.RuntimeInputs.ToList();
        var inputs = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        var inputFiles = Directory.EnumerateFiles(setDirectory, "input_*.pb").OrderBy(IndexOf).ToList();
        for (int i = 0; i < inputFiles.Count; i++)
        {
            var (tensor, pbName) = TensorFiles.Read(inputFiles[i]);
            if (i >= graph.Inputs.Count)
                throw new ModelFormatException(inputFiles[i], "", $"the data set has {inputFiles.Count} input files, but the graph has {graph.Inputs.Count} inputs");
            string name = !string.IsNullOrEmpty(pbName) && graph.Inputs.Any(v => v.Name == pbName) ? pbName
                : i < runtimeInputs.Count ? runtimeInputs[i].Name : graph.Inputs[i].Name;
            inputs[name] = AsDeclared(tensor, graph.Inputs.FirstOrDefault(v => v.Name == name)?.ElementType);
        }
        var outputs = Directory.EnumerateFiles(setDirectory, "output_*.pb").OrderBy(IndexOf)
            .Select((f, i) => AsDeclared(TensorFiles.Read(f).Tensor, i < graph.Outputs.Count ? graph.Outputs[i].ElementType : null)).ToList();
        return (inputs, outputs);
    }

    /// <summary>
    /// The backend test generator stores bfloat16 data as uint16 tensors (numpy has no bfloat16): read those as the
    /// bfloat16 the graph declares (same bits).
    /// </summary>
    private static OnnxTensor AsDeclared(OnnxTensor tensor, DataType? declared) =>
        declared == DataType.BFloat16 && tensor.ElementType == DataType.UInt16 ? OnnxTensor.FromBuffer(DataType.BFloat16, tensor.Buffer, tensor.Dims) : tensor;

    private static int IndexOf(string file)
    {
        string stem = Path.GetFileNameWithoutExtension(file);
        return int.Parse(stem[(stem.LastIndexOf('_') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Null when <paramref name="actual"/> matches <paramref name="expected"/> within the backend tolerances; else why not.</summary>
    public static string? Compare(OnnxTensor actual, OnnxTensor expected, double rtol = RelativeTolerance, double atol = AbsoluteTolerance)
    {
        if (actual.ElementType != expected.ElementType)
            return $"element type {DataTypes.OnnxName(actual.ElementType)}, expected {DataTypes.OnnxName(expected.ElementType)}";
        if (!actual.Shape.SequenceEqual(expected.Shape))
            return $"shape [{string.Join(',', actual.Shape.ToArray())}], expected [{string.Join(',', expected.Shape.ToArray())}]";
        if (actual.ElementType == DataType.String)
            return actual.ContentEquals(expected) ? null : "strings differ";
        if (DataTypes.IsOpaque(actual.ElementType))
            return actual.ContentEquals(expected) ? null : "bytes differ";
        for (long i = 0; i < expected.ElementCount; i++)
        {
            double a = actual.GetDouble(i), e = expected.GetDouble(i);
            if (double.IsNaN(a) && double.IsNaN(e)) continue;
            if (a == e) continue;
            if (!(Math.Abs(a - e) <= atol + rtol * Math.Abs(e)))
                return $"element {i}: {a:R}, expected {e:R}";
        }
        return null;
    }
}
