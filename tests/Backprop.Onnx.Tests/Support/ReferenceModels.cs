using System.Text.Json;
using System.Text.Json.Serialization;
using Backprop.Onnx.IR;

namespace Backprop.Onnx.Tests.Support;

/// <summary>
/// The models of <c>onnx-models/</c> (written by <c>tools/reference-models/generate.py</c>): each folder holding a
/// <c>manifest.json</c>, including <c>bench/&lt;workload&gt;/</c>. Models are identified by their folder relative to
/// <c>onnx-models/</c> with '/' separators ("mlp", "bench/w1_mlp").
/// </summary>
internal static class ReferenceModels
{
    private static readonly Lazy<IReadOnlyList<ReferenceModel>> s_all = new(() => Load(TestPaths.OnnxModels));

    /// <summary>Every model with a manifest, ordered by id.</summary>
    public static IReadOnlyList<ReferenceModel> All => s_all.Value;

    /// <summary>The models with PyTorch reference outputs and gradients (kind "gradient-reference").</summary>
    public static IEnumerable<ReferenceModel> GradientReferences => All.Where(m => m.HasReferences);

    /// <summary>The benchmark workloads of <c>onnx-models/bench/</c> (kind "benchmark").</summary>
    public static IEnumerable<ReferenceModel> Benchmarks => All.Where(m => m.Manifest.Kind == "benchmark");

    /// <summary>The model of that id.</summary>
    /// <exception cref="KeyNotFoundException">No such model.</exception>
    public static ReferenceModel Get(string id) =>
        All.FirstOrDefault(m => m.Id == id) ?? throw new KeyNotFoundException($"No model '{id}' under {TestPaths.OnnxModels} (have: {string.Join(", ", All.Select(m => m.Id))}).");

    /// <summary>Data rows of model ids for <c>[DynamicData]</c>.</summary>
    public static IEnumerable<object[]> Rows(IEnumerable<ReferenceModel> models) => models.Select(m => new object[] { m.Id });

    /// <summary>Reads every <c>manifest.json</c> below <paramref name="root"/>.</summary>
    public static IReadOnlyList<ReferenceModel> Load(string root)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"{root} is missing: run /usr/bin/python3 tools/reference-models/generate.py --out onnx-models");
        return [.. Directory.EnumerateFiles(root, "manifest.json", SearchOption.AllDirectories)
            .Select(path => ReferenceModel.Read(root, path))
            .OrderBy(m => m.Id, StringComparer.Ordinal)];
    }

    /// <summary>The manifest's comparison metric: max|actual − expected| / max|expected| over the tensor (the plain max difference when expected is all zeros).</summary>
    public static double RelativeError(OnnxTensor actual, OnnxTensor expected)
    {
        if (!actual.Shape.SequenceEqual(expected.Shape))
            throw new ArgumentException($"Shape {actual} differs from the reference {expected}.", nameof(actual));
        double diff = 0, scale = 0;
        for (long i = 0; i < expected.ElementCount; i++)
        {
            double e = expected.GetDouble(i), a = actual.GetDouble(i);
            diff = Math.Max(diff, double.IsNaN(a) || double.IsNaN(e) ? double.PositiveInfinity : Math.Abs(a - e));
            scale = Math.Max(scale, Math.Abs(e));
        }
        return scale > 0 ? diff / scale : diff;
    }
}

/// <summary>One model folder of <c>onnx-models/</c>: its manifest and loaders for its reference tensors.</summary>
internal sealed class ReferenceModel
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    };

    private ReferenceModel(string id, string folder, ModelManifest manifest)
    {
        Id = id;
        Folder = folder;
        Manifest = manifest;
    }

    /// <summary>The folder relative to <c>onnx-models/</c>, with '/' separators.</summary>
    public string Id { get; }

    /// <summary>The model's folder (absolute).</summary>
    public string Folder { get; }

    /// <summary>The parsed <c>manifest.json</c>.</summary>
    public ModelManifest Manifest { get; }

    /// <summary>The ONNX file.</summary>
    public string ModelPath => Path.Combine(Folder, Manifest.Model);

    /// <summary>True when the folder holds inputs, cotangents, reference outputs and gradients.</summary>
    public bool HasReferences => Manifest.Kind == "gradient-reference";

    /// <summary>The relative tolerance target for results computed in <paramref name="type"/> (float or double).</summary>
    public double Tolerance(DataType type) => type switch
    {
        DataType.Double => Manifest.Tolerance?.Float64.Rel ?? throw new InvalidOperationException($"{Id}: the manifest has no tolerance."),
        DataType.Float => Manifest.Tolerance?.Float32.Rel ?? throw new InvalidOperationException($"{Id}: the manifest has no tolerance."),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Tolerances are given for float and double."),
    };

    /// <summary>The input tensors by graph input name (float32; integer inputs int64).</summary>
    public IReadOnlyDictionary<string, OnnxTensor> LoadInputs() =>
        LoadAll(Manifest.Inputs.Select(v => (v.Name, v.File, v.Dtype, v.Shape)));

    /// <summary>The float64 cotangent of each output, by output name.</summary>
    public IReadOnlyDictionary<string, OnnxTensor> LoadCotangents() =>
        LoadAll(Manifest.Outputs.Select(v => (v.Name, v.Cotangent, "float64", v.Shape)));

    /// <summary>The PyTorch float64 forward outputs, by output name.</summary>
    public IReadOnlyDictionary<string, OnnxTensor> LoadOutputs() =>
        LoadAll(Manifest.Outputs.Select(v => (v.Name, v.Reference, "float64", v.Shape)));

    /// <summary>
    /// The PyTorch float64 vector-Jacobian products with the cotangents: one per parameter (by initializer name) and
    /// one per float input (by input name).
    /// </summary>
    public IReadOnlyDictionary<string, OnnxTensor> LoadGradients() =>
        LoadAll(Manifest.Parameters.Select(p => (p.Name, p.Grad, "float64", (int[]?)p.Shape))
            .Concat(Manifest.Inputs.Where(v => v.Grad is not null).Select(v => (v.Name, v.Grad, "float64", v.Shape))));

    /// <inheritdoc/>
    public override string ToString() => Id;

    internal static ReferenceModel Read(string root, string manifestPath)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(manifestPath))!;
        string id = Path.GetRelativePath(root, folder).Replace(Path.DirectorySeparatorChar, '/');
        ModelManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<ModelManifest>(File.ReadAllText(manifestPath), s_json)
                ?? throw new InvalidDataException("the manifest is null");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{manifestPath}: not a valid manifest ({e.Message})", e);
        }
        if (manifest.Name != Path.GetFileName(folder))
            throw new InvalidDataException($"{manifestPath}: name '{manifest.Name}' is not the folder's name '{Path.GetFileName(folder)}'.");
        if (manifest.Kind == "gradient-reference")
        {
            string? missing = manifest.Inputs.Any(v => v.File is null) ? "an input file"
                : manifest.Outputs.Any(v => v.Reference is null || v.Cotangent is null) ? "an output reference or cotangent"
                : manifest.Parameters.Any(p => p.Grad is null) ? "a parameter gradient"
                : manifest.Tolerance is null ? "the tolerance" : null;
            if (missing is not null) throw new InvalidDataException($"{manifestPath}: a gradient-reference manifest without {missing}.");
        }
        return new ReferenceModel(id, folder, manifest);
    }

    private Dictionary<string, OnnxTensor> LoadAll(IEnumerable<(string Name, string? File, string Dtype, int[]? Shape)> entries)
    {
        var result = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var (name, file, dtype, shape) in entries)
        {
            if (file is null) throw new InvalidOperationException($"{Id}: the manifest names no file for '{name}' (kind '{Manifest.Kind}').");
            result.Add(name, LoadTensor(name, file, ModelManifest.ParseDataType(dtype), shape));
        }
        return result;
    }

    /// <summary>Reads one <c>.pb</c> of this folder and checks its name, type and shape against the manifest.</summary>
    private OnnxTensor LoadTensor(string name, string relativePath, DataType type, int[]? shape)
    {
        string path = Path.Combine(Folder, relativePath);
        var (tensor, storedName) = TensorFiles.Read(path);
        if (storedName != name)
            throw new InvalidDataException($"{path}: holds '{storedName}', the manifest expects '{name}'.");
        if (tensor.ElementType != type)
            throw new InvalidDataException($"{path}: is {tensor}, the manifest says {DataTypes.OnnxName(type)}.");
        if (shape is not null && !tensor.Shape.SequenceEqual(shape))
            throw new InvalidDataException($"{path}: is {tensor}, the manifest says [{string.Join(',', shape)}].");
        return tensor;
    }
}

/// <summary>A <c>manifest.json</c> of <c>onnx-models/</c>, as <c>tools/reference-models/generate.py</c> writes it (snake_case keys).</summary>
internal sealed class ModelManifest
{
    /// <summary>The folder's name.</summary>
    public required string Name { get; init; }

    /// <summary>"gradient-reference" (with reference data), "model" (lenet_fashion) or "benchmark".</summary>
    public required string Kind { get; init; }

    public string Description { get; init; } = "";

    /// <summary>The default-domain opset the model imports.</summary>
    public required long Opset { get; init; }

    /// <summary>"eval" or "train": the mode of the export and of the PyTorch references.</summary>
    public string Mode { get; init; } = "eval";

    public string Export { get; init; } = "";

    /// <summary>Export quirks (BatchNormalization statistics in train mode, Dropout nodes…).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>The ONNX file, relative to the folder.</summary>
    public required string Model { get; init; }

    public required IReadOnlyList<ManifestValue> Inputs { get; init; }

    public required IReadOnlyList<ManifestValue> Outputs { get; init; }

    /// <summary>Trainable parameters: ONNX initializers named as PyTorch's state_dict.</summary>
    public IReadOnlyList<ManifestParameter> Parameters { get; init; } = [];

    /// <summary>Non-trainable float initializers (BatchNormalization running statistics).</summary>
    public IReadOnlyList<ManifestParameter> Buffers { get; init; } = [];

    public ManifestTolerance? Tolerance { get; init; }

    /// <summary>Node count per op type in the exported graph.</summary>
    public IReadOnlyDictionary<string, int> OpHistogram { get; init; } = new Dictionary<string, int>();

    /// <summary>The training loss a benchmark or training model is meant for.</summary>
    public ManifestLoss? Loss { get; init; }

    /// <summary>The largest relative error of PyTorch's own float32 run against its float64 references.</summary>
    [JsonPropertyName("torch_float32_max_rel_error")]
    public double? TorchFloat32MaxRelError { get; init; }

    /// <summary>The manifest's dtype names ("float32", "float64", "int64").</summary>
    public static DataType ParseDataType(string dtype) => dtype switch
    {
        "float32" => DataType.Float,
        "float64" => DataType.Double,
        "int64" => DataType.Int64,
        _ => throw new InvalidDataException($"Unknown manifest dtype '{dtype}'."),
    };
}

/// <summary>A graph input or output: its name, type, the shape of the reference tensor and of the graph, its files.</summary>
internal sealed class ManifestValue
{
    public required string Name { get; init; }

    public required string Dtype { get; init; }

    /// <summary>The shape of the stored tensors (the example batch).</summary>
    public int[]? Shape { get; init; }

    /// <summary>The graph's declared shape: numbers and symbolic names ("batch").</summary>
    public IReadOnlyList<JsonElement> GraphShape { get; init; } = [];

    /// <summary>Inputs: the tensor file.</summary>
    public string? File { get; init; }

    /// <summary>Float inputs: the reference gradient file.</summary>
    public string? Grad { get; init; }

    /// <summary>Outputs: the float64 reference output file.</summary>
    public string? Reference { get; init; }

    /// <summary>Outputs: the float64 cotangent file.</summary>
    public string? Cotangent { get; init; }

    public DataType ElementType => ModelManifest.ParseDataType(Dtype);

    /// <summary><see cref="GraphShape"/> as IR dimensions.</summary>
    public IReadOnlyList<Dim> GraphDims => [.. GraphShape.Select(d => d.ValueKind == JsonValueKind.Number ? Dim.Of(d.GetInt64()) : Dim.Symbol(d.GetString()!))];
}

/// <summary>A parameter or buffer: the ONNX initializer's name, PyTorch's name, type, shape and gradient file.</summary>
internal sealed class ManifestParameter
{
    public required string Name { get; init; }

    public string? TorchName { get; init; }

    public required string Dtype { get; init; }

    public required int[] Shape { get; init; }

    public string? Grad { get; init; }

    public DataType ElementType => ModelManifest.ParseDataType(Dtype);
}

/// <summary>Tolerance targets: per tensor, max|actual − expected| ≤ rel · max|expected|.</summary>
internal sealed class ManifestTolerance
{
    public string Metric { get; init; } = "";

    public required ManifestRelativeTolerance Float64 { get; init; }

    public required ManifestRelativeTolerance Float32 { get; init; }
}

internal sealed class ManifestRelativeTolerance
{
    public required double Rel { get; init; }
}

/// <summary>"cross-entropy" over <see cref="Labels"/> classes (int64 labels [batch]) or "mse" against a target of <see cref="TargetShape"/>.</summary>
internal sealed class ManifestLoss
{
    public required string Kind { get; init; }

    public int? Labels { get; init; }

    public string? LabelDtype { get; init; }

    public int[]? TargetShape { get; init; }
}
