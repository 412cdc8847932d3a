using System.Buffers.Binary;
using System.IO.Compression;
using Backprop.Onnx.IR;

namespace Backprop.Onnx.Training;

/// <summary>A labelled data set that yields mini-batches by example index.</summary>
public interface IDataSource
{
    /// <summary>Number of examples.</summary>
    int Count { get; }

    /// <summary>Number of classes, for classification data (0 otherwise).</summary>
    int ClassCount { get; }

    /// <summary>The examples at <paramref name="indices"/> stacked along a new first (batch) dimension, and their labels.</summary>
    /// <returns>Inputs (e.g. float [B,1,28,28]) and labels (e.g. int64 [B]).</returns>
    (OnnxTensor Inputs, OnnxTensor Labels) GetBatch(ReadOnlySpan<int> indices);
}

/// <summary>
/// Fashion-MNIST (Xiao et al., 2017) read from its IDX files (gzip-compressed or not): images become float32
/// [N, 1, 28, 28] in [0, 1] (pixel / 255), labels int64 [N] in 0–9. Debian's <c>dataset-fashion-mnist</c> installs them in
/// <see cref="DefaultDirectory"/>.
/// </summary>
public sealed class FashionMnist : IDataSource
{
    /// <summary>Where Debian's <c>dataset-fashion-mnist</c> puts the files.</summary>
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    private const string InstallHint = "install it with: apt-get install -y dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist)";

    private readonly byte[] _pixels;
    private readonly byte[] _labels;

    private FashionMnist(byte[] pixels, byte[] labels, int rows, int columns)
    {
        _pixels = pixels;
        _labels = labels;
        Rows = rows;
        Columns = columns;
    }

    /// <summary>Image height in pixels (28).</summary>
    public int Rows { get; }

    /// <summary>Image width in pixels (28).</summary>
    public int Columns { get; }

    /// <inheritdoc/>
    public int Count => _labels.Length;

    /// <inheritdoc/>
    public int ClassCount => 10;

    /// <summary>Loads the training (60,000) or test (10,000) split from <paramref name="directory"/>.</summary>
    /// <param name="directory">Folder holding <c>train-images-idx3-ubyte(.gz)</c>, <c>train-labels-idx1-ubyte(.gz)</c>, <c>t10k-…</c>.</param>
    /// <param name="train">True for the training split, false for the test split.</param>
    /// <param name="limit">Keep only the first <paramref name="limit"/> examples (null: all).</param>
    /// <exception cref="InvalidDataException">A file is missing, corrupt or inconsistent; the message says which and how to install the data.</exception>
    public static FashionMnist Load(string directory, bool train, int? limit = null)
    {
        string prefix = train ? "train" : "t10k";
        var (images, count, rows, columns) = ReadImages(Find(directory, $"{prefix}-images-idx3-ubyte"));
        var labels = ReadLabels(Find(directory, $"{prefix}-labels-idx1-ubyte"));
        if (labels.Length != count) throw new InvalidDataException($"{directory}: {count} images but {labels.Length} labels in the {prefix} split");
        foreach (byte l in labels) if (l > 9) throw new InvalidDataException($"{directory}: label {l} is outside 0–9 in the {prefix} split");
        if (limit is { } n && n < count)
        {
            images = images.AsSpan(0, n * rows * columns).ToArray();
            labels = labels.AsSpan(0, n).ToArray();
        }
        return new FashionMnist(images, labels, rows, columns);
    }

    /// <inheritdoc/>
    public (OnnxTensor Inputs, OnnxTensor Labels) GetBatch(ReadOnlySpan<int> indices)
    {
        int size = Rows * Columns;
        var x = new float[indices.Length * size];
        var y = new long[indices.Length];
        for (int b = 0; b < indices.Length; b++)
        {
            int i = indices[b];
            var src = _pixels.AsSpan(i * size, size);
            var dst = x.AsSpan(b * size, size);
            for (int p = 0; p < size; p++) dst[p] = src[p] / 255f;
            y[b] = _labels[i];
        }
        return (OnnxTensor.FromArray(x, indices.Length, 1, Rows, Columns), OnnxTensor.FromArray(y, indices.Length));
    }

    private static string Find(string directory, string stem)
    {
        foreach (var name in new[] { stem + ".gz", stem })
        {
            string path = Path.Combine(directory, name);
            if (File.Exists(path)) return path;
        }
        throw new InvalidDataException($"Fashion-MNIST file {stem}(.gz) not found in '{directory}'; {InstallHint}");
    }

    private static byte[] ReadAll(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            using Stream stream = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            return memory.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: not a valid gzip file ({e.Message}); {InstallHint}", e);
        }
    }

    private static (byte[] Pixels, int Count, int Rows, int Columns) ReadImages(string path)
    {
        var bytes = ReadAll(path);
        if (bytes.Length < 16 || BinaryPrimitives.ReadInt32BigEndian(bytes) != 0x00000803)
            throw new InvalidDataException($"{path}: not an IDX image file (magic 0x00000803); {InstallHint}");
        int count = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
        int rows = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(8));
        int columns = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(12));
        if (count < 0 || rows <= 0 || columns <= 0 || (long)count * rows * columns != bytes.Length - 16)
            throw new InvalidDataException($"{path}: header says {count}×{rows}×{columns} pixels but the file holds {bytes.Length - 16}; {InstallHint}");
        return (bytes[16..], count, rows, columns);
    }

    private static byte[] ReadLabels(string path)
    {
        var bytes = ReadAll(path);
        if (bytes.Length < 8 || BinaryPrimitives.ReadInt32BigEndian(bytes) != 0x00000801)
            throw new InvalidDataException($"{path}: not an IDX label file (magic 0x00000801); {InstallHint}");
        int count = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
        if (count < 0 || count != bytes.Length - 8)
            throw new InvalidDataException($"{path}: header says {count} labels but the file holds {bytes.Length - 8}; {InstallHint}");
        return bytes[8..];
    }
}
