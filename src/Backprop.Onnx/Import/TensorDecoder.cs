using System.Runtime.InteropServices;
using Backprop.Onnx.IR;
using Backprop.Onnx.Protobuf;

namespace Backprop.Onnx.Import;

/// <summary>
/// Decodes a <c>TensorProto</c> into an <see cref="OnnxTensor"/>: raw_data, the typed fields, or external data
/// (ONNX IR spec, "Tensor definition" and "External tensor data"). Every size field is checked against the bytes
/// present before anything of that size is allocated.
/// </summary>
internal sealed class TensorDecoder(string source, string? baseDirectory)
{
    private readonly string _source = source;
    private readonly string? _baseDirectory = baseDirectory;

    public OnnxTensor Decode(TensorProto proto, string what)
    {
        var type = (DataType)proto.DataType;
        if (!DataTypes.IsDefined(type))
            throw Fail(what, $"unknown data type {proto.DataType}");
        if (proto.Segment is not null)
            throw Fail(what, "segmented tensors (TensorProto.segment) are not supported");
        int[] shape = new int[proto.Dims.Count];
        long count = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            long d = proto.Dims[i];
            if (d < 0) throw Fail(what, $"negative dimension {d}");
            if (d > int.MaxValue) throw Fail(what, $"dimension {d} is too large");
            shape[i] = (int)d;
            count *= d;
            if (count > Array.MaxLength) throw Fail(what, $"shape [{string.Join(',', proto.Dims)}] has more elements than fit in memory");
        }

        if (proto.HasDataLocation && proto.DataLocation == TensorProto.Types.DataLocation.External)
            return DecodeRaw(type, shape, count, ReadExternal(proto, type, count, what), what);
        if (proto.HasRawData)
            return DecodeRaw(type, shape, count, proto.RawData.Span, what);
        return DecodeTyped(proto, type, shape, count, what);
    }

    private OnnxTensor DecodeRaw(DataType type, int[] shape, long count, ReadOnlySpan<byte> raw, string what)
    {
        if (type == DataType.String) throw Fail(what, "string tensors cannot use raw_data");
        long expected = DataTypes.RawByteLength(type, count);
        if (raw.Length != expected)
            throw Fail(what, $"raw data has {raw.Length} bytes, but {DataTypes.OnnxName(type)}[{string.Join(',', shape)}] needs {expected}");
        if (type == DataType.Bool)
        {
            var bools = new bool[count];
            for (int i = 0; i < raw.Length; i++) bools[i] = raw[i] != 0;
            return new OnnxTensor(type, shape, bools, count);
        }
        long storage = DataTypes.IsOpaque(type) ? expected : count;
        Array buffer = Array.CreateInstance(DataTypes.StorageType(type), storage);
        raw.CopyTo(MemoryMarshal.CreateSpan(ref MemoryMarshal.GetArrayDataReference(buffer), raw.Length));
        return new OnnxTensor(type, shape, buffer, count);
    }

    private OnnxTensor DecodeTyped(TensorProto p, DataType type, int[] shape, long count, string what)
    {
        void Need(int present, long need, string field)
        {
            if (present != need) throw Fail(what, $"{field} has {present} values, but {DataTypes.OnnxName(type)}[{string.Join(',', shape)}] needs {need}");
        }

        switch (type)
        {
            case DataType.Float:
                Need(p.FloatData.Count, count, "float_data");
                return new OnnxTensor(type, shape, p.FloatData.ToArray(), count);
            case DataType.Double:
                Need(p.DoubleData.Count, count, "double_data");
                return new OnnxTensor(type, shape, p.DoubleData.ToArray(), count);
            case DataType.Int64:
                Need(p.Int64Data.Count, count, "int64_data");
                return new OnnxTensor(type, shape, p.Int64Data.ToArray(), count);
            case DataType.Int32:
                Need(p.Int32Data.Count, count, "int32_data");
                return new OnnxTensor(type, shape, p.Int32Data.ToArray(), count);
            case DataType.UInt64:
                Need(p.Uint64Data.Count, count, "uint64_data");
                return new OnnxTensor(type, shape, p.Uint64Data.ToArray(), count);
            case DataType.UInt32:
                Need(p.Uint64Data.Count, count, "uint64_data");
                return new OnnxTensor(type, shape, p.Uint64Data.Select(v => (uint)v).ToArray(), count);
            case DataType.Int16:
                Need(p.Int32Data.Count, count, "int32_data");
                return new OnnxTensor(type, shape, p.Int32Data.Select(v => (short)v).ToArray(), count);
            case DataType.UInt16:
            case DataType.BFloat16:
                Need(p.Int32Data.Count, count, "int32_data");
                return new OnnxTensor(type, shape, p.Int32Data.Select(v => (ushort)v).ToArray(), count);
            case DataType.Float16:
                Need(p.Int32Data.Count, count, "int32_data");
                return new OnnxTensor(type, shape, p.Int32Data.Select(v => BitConverter.UInt16BitsToHalf((ushort)v)).ToArray(), count);
            case DataType.Int8:
                Need(p.Int32Data.Count, count, "int32_data");
                return new OnnxTensor(type, shape, p.Int32Data.Select(v => (sbyte)v).ToArray(), count);
            case DataType.UInt8:
                Need(p.Int32Data.Count, count, "int32_data");
                return new OnnxTensor(type, shape, p.Int32Data.Select(v => (byte)v).ToArray(), count);
            case DataType.Bool:
                Need(p.Int32Data.Count, count, "int32_data");
                return new OnnxTensor(type, shape, p.Int32Data.Select(v => v != 0).ToArray(), count);
            case DataType.String:
                Need(p.StringData.Count, count, "string_data");
                return new OnnxTensor(type, shape, p.StringData.Select(s => s.ToByteArray()).ToArray(), count);
            case DataType.Complex64:
                Need(p.FloatData.Count, 2 * count, "float_data");
                return DecodeRaw(type, shape, count, MemoryMarshal.AsBytes(p.FloatData.ToArray().AsSpan()), what);
            case DataType.Complex128:
                Need(p.DoubleData.Count, 2 * count, "double_data");
                return DecodeRaw(type, shape, count, MemoryMarshal.AsBytes(p.DoubleData.ToArray().AsSpan()), what);
            case DataType.Float8E4M3FN:
            case DataType.Float8E4M3FNUZ:
            case DataType.Float8E5M2:
            case DataType.Float8E5M2FNUZ:
                Need(p.Int32Data.Count, count, "int32_data");
                return new OnnxTensor(type, shape, p.Int32Data.Select(v => (byte)v).ToArray(), count);
            default:
                // 4-bit types: two elements per int32_data entry's low byte.
                Need(p.Int32Data.Count, (count + 1) / 2, "int32_data");
                return new OnnxTensor(type, shape, p.Int32Data.Select(v => (byte)v).ToArray(), count);
        }
    }

    private byte[] ReadExternal(TensorProto proto, DataType type, long count, string what)
    {
        string? location = null;
        long offset = 0, length = -1;
        foreach (var entry in proto.ExternalData)
        {
            switch (entry.Key)
            {
                case "location": location = entry.Value; break;
                case "offset":
                    if (!long.TryParse(entry.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out offset))
                        throw Fail(what, $"external data offset '{entry.Value}' is not a non-negative integer");
                    break;
                case "length":
                    if (!long.TryParse(entry.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out length))
                        throw Fail(what, $"external data length '{entry.Value}' is not a non-negative integer");
                    break;
            }
        }
        if (string.IsNullOrEmpty(location)) throw Fail(what, "external data has no location");
        if (_baseDirectory is null) throw Fail(what, $"external data '{location}' needs the model's folder, but the model was not loaded from a file");
        string path = ExternalDataPaths.ResolveInside(_baseDirectory, location, message => Fail(what, message));
        long expected = DataTypes.RawByteLength(type, count);
        if (expected < 0) throw Fail(what, "string tensors cannot use external data");
        // Sizes are checked before the file is opened: a FIFO or device planted under the data's name reports 0 bytes,
        // and opening it could block forever.
        long fileLength;
        try { fileLength = new FileInfo(path).Length; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Fail(what, $"cannot read external data file '{location}' ({e.Message})");
        }
        if (length < 0) length = fileLength - offset;
        if (offset > fileLength || length > fileLength - offset)
            throw Fail(what, $"external data offset {offset} + length {length} is past the end of '{location}' ({fileLength} bytes)");
        if (length != expected)
            throw Fail(what, $"external data has {length} bytes, but {DataTypes.OnnxName(type)}[{string.Join(',', proto.Dims)}] needs {expected}");
        if (length == 0) return [];
        var bytes = new byte[length];
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            stream.Seek(offset, SeekOrigin.Begin);
            stream.ReadExactly(bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Fail(what, $"cannot read external data file '{location}' ({e.Message})");
        }
        return bytes;
    }

    private ModelFormatException Fail(string what, string reason) => new(_source, what, reason);
}

/// <summary>Confines external-data locations to the model's folder (ONNX IR spec, "External tensor data").</summary>
internal static class ExternalDataPaths
{
    /// <summary>
    /// The full path of <paramref name="location"/> under <paramref name="baseDirectory"/>; rejects absolute paths, <c>..</c>
    /// components, and symbolic links whose target leaves the folder, and a missing file.
    /// </summary>
    public static string ResolveInside(string baseDirectory, string location, Func<string, Exception> fail)
    {
        if (location.Contains('\0')) throw fail("external data location contains a NUL character");
        if (Path.IsPathRooted(location) || location.StartsWith('/') || location.StartsWith('\\') || (location.Length > 1 && location[1] == ':'))
            throw fail($"external data location '{location}' is absolute; it must be relative to the model's folder");
        var parts = location.Split('/', '\\');
        if (parts.Any(p => p == ".."))
            throw fail($"external data location '{location}' leaves the model's folder");
        string root = Path.GetFullPath(baseDirectory);
        string realRoot = RealPath(root);
        string full = Path.GetFullPath(Path.Combine(root, location));
        if (!IsInside(root, full)) throw fail($"external data location '{location}' leaves the model's folder");
        if (!File.Exists(full)) throw fail($"external data file '{location}' does not exist");
        string real = RealPath(full);
        if (!IsInside(realRoot, real)) throw fail($"external data location '{location}' is a link that leaves the model's folder");
        return real;
    }

    private static bool IsInside(string root, string path)
    {
        string prefix = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, StringComparison.Ordinal);
    }

    /// <summary>The path with every symbolic link along it resolved.</summary>
    private static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        string? parent = Path.GetDirectoryName(full);
        string resolvedParent = parent is null ? full : RealPath(parent);
        string candidate = parent is null ? full : Path.Combine(resolvedParent, Path.GetFileName(full));
        var info = new FileInfo(candidate);
        if (info.LinkTarget is not null)
        {
            var target = info.ResolveLinkTarget(returnFinalTarget: true);
            return target is null ? candidate : RealPath(target.FullName);
        }
        return candidate;
    }
}
