namespace Backprop.Onnx.IR;

/// <summary>An operator set the model imports: a domain ("" is the default ONNX domain) and its version.</summary>
/// <param name="Domain">The domain, e.g. "" or <c>ai.onnx.preview.training</c>.</param>
/// <param name="Version">The operator-set version.</param>
public readonly record struct OpsetImport(string Domain, long Version);

/// <summary>
/// An ONNX model (<c>ModelProto</c>) in Backprop.Onnx's IR: versioning and provenance, metadata and the main graph.
/// Load with <see cref="Import.ModelImporter"/>, save with <see cref="Export.ModelExporter"/>; parts the IR does not model
/// (model-local functions, training info) are carried unchanged.
/// </summary>
public sealed class OnnxModel
{
    /// <summary>The IR version (3–10 supported).</summary>
    public long IrVersion { get; set; } = 8;

    /// <summary>The imported operator sets in file order.</summary>
    public List<OpsetImport> OpsetImports { get; } = [];

    /// <summary>The tool that made the file (e.g. <c>pytorch</c>).</summary>
    public string ProducerName { get; set; } = "";

    /// <summary>The producing tool's version.</summary>
    public string ProducerVersion { get; set; } = "";

    /// <summary>The model's reverse-DNS domain.</summary>
    public string Domain { get; set; } = "";

    /// <summary>The model's own version number.</summary>
    public long ModelVersion { get; set; }

    /// <summary>The documentation string.</summary>
    public string DocString { get; set; } = "";

    /// <summary>Free-form key/value metadata in file order.</summary>
    public List<KeyValuePair<string, string>> MetadataProps { get; } = [];

    /// <summary>The main graph.</summary>
    public Graph Graph { get; set; } = new();

    /// <summary>The file the model was loaded from, if any (external data is resolved beside it).</summary>
    public string? SourcePath { get; set; }

    internal List<Protobuf.FunctionProto> Functions { get; } = [];

    internal List<Protobuf.TrainingInfoProto> TrainingInfo { get; } = [];


    /// <summary>The version of <paramref name="domain"/> this model imports ("" and "ai.onnx" are the same), or null.</summary>
    public long? OpsetVersion(string domain)
    {
        bool isDefault = domain.Length == 0 || domain == "ai.onnx";
        foreach (var o in OpsetImports)
        {
            bool match = isDefault ? o.Domain.Length == 0 || o.Domain == "ai.onnx" : o.Domain == domain;
            if (match) return o.Version;
        }
        return null;
    }

    /// <summary>The version of the default ONNX domain; 1 when the model does not import it.</summary>
    public long DefaultOpsetVersion => OpsetVersion("") ?? 1;
}
