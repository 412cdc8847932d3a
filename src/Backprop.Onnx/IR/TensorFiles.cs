using Backprop.Onnx.Export;
using Backprop.Onnx.Import;
using Backprop.Onnx.Protobuf;
using Google.Protobuf;

namespace Backprop.Onnx.IR;

/// <summary>
/// Reads and writes single tensors as serialized ONNX <c>TensorProto</c> files (<c>.pb</c>), the format of the ONNX
/// backend test data (<c>test_data_set_*/input_*.pb</c>).
/// </summary>
public static class TensorFiles
{
    /// <summary>Reads one tensor and its name from a <c>.pb</c> file.</summary>
    /// <param name="path">A serialized TensorProto.</param>
    /// <returns>The tensor and the proto's <c>name</c> field ("" when absent).</returns>
    /// <exception cref="ModelFormatException">The file is missing, not a TensorProto, or its data does not match its shape and type.</exception>
    public static (OnnxTensor Tensor, string Name) Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, "", e is FileNotFoundException or DirectoryNotFoundException ? "file not found" : $"cannot read the file ({e.Message})", e);
        }
        TensorProto proto;
        try { proto = TensorProto.Parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e) { throw new ModelFormatException(path, "", $"not a TensorProto file ({e.Message.TrimEnd('.')})", e); }
        var decoder = new TensorDecoder(path, Path.GetDirectoryName(Path.GetFullPath(path)));
        return (decoder.Decode(proto, string.IsNullOrEmpty(proto.Name) ? "tensor" : $"tensor '{proto.Name}'"), proto.Name);
    }

    /// <summary>Writes one tensor as a <c>.pb</c> file (atomically), with <paramref name="name"/> in its name field.</summary>
    /// <exception cref="IOException">The file cannot be written.</exception>
    public static void Write(string path, OnnxTensor tensor, string name)
    {
        var proto = ModelExporter.WriteTensor(tensor, name);
        AtomicFile.Write(path, stream => proto.WriteTo(stream));
    }

    /// <summary>A file name for a value: every character outside <c>A-Za-z0-9._-</c> becomes <c>_</c>.</summary>
    public static string SafeFileName(string valueName)
    {
        var chars = valueName.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_').ToArray();
        var s = new string(chars);
        return s is "" or "." or ".." ? "_" + s : s;
    }
}
