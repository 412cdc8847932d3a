using System.Collections.Concurrent;
using Backprop.Onnx.Export;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.OnnxRuntime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Verification;
using Microsoft.ML.OnnxRuntime;

namespace Backprop.Onnx.Tests.Import;

/// <summary>
/// Every model.onnx of the ONNX backend test data (Debian libonnx-testdata): (a) it imports; (b) import → export →
/// import is a fixed point (the IR compares equal and the second export is byte-identical to the first); (c) where ONNX
/// Runtime loads and runs the original on test_data_set_0, it loads the re-export too and gives bit-identical outputs.
/// One aggregating test per suite lists every failure and counts the models ONNX Runtime could not be used for, by reason.
/// </summary>
[TestClass]
public sealed class BackendModelRoundTripTests
{
    [TestMethod]
    [DataRow("node")]
    [DataRow("simple")]
    [DataRow("pytorch-converted")]
    [DataRow("pytorch-operator")]
    public void EveryModel_Imports_RoundTripsToAFixedPoint_AndRunsIdenticallyOnOnnxRuntime(string suite)
    {
        TestPaths.RequireOnnxTestData();
        var models = Directory.EnumerateFiles(Path.Combine(TestPaths.OnnxTestData, suite), "model.onnx", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal).ToList();
        Assert.IsNotEmpty(models, $"no model.onnx under {suite}");

        var outcomes = new ConcurrentBag<Outcome>();
        Parallel.ForEach(models, new ParallelOptions { MaxDegreeOfParallelism = 2 }, path => outcomes.Add(Check(path)));

        var all = outcomes.OrderBy(o => o.Model, StringComparer.Ordinal).ToList();
        var failures = all.Where(o => o.Failure is not null).Select(o => $"{o.Model}: {o.Failure}").ToList();
        var skips = all.Where(o => o.OrtSkip is not null).GroupBy(o => o.OrtSkip!).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).ToList();
        Console.WriteLine($"{suite}: models {all.Count}, imported {all.Count(o => o.Imported)}, fixed points {all.Count(o => o.FixedPoint)}, " +
            $"ORT-compared {all.Count(o => o.OrtCompared)}, ORT-skipped {all.Count(o => o.OrtSkip is not null)}, failures {failures.Count}");
        foreach (var g in skips)
            Console.WriteLine($"  ORT-skipped {g.Count()}: {g.Key} ({string.Join(", ", g.Select(o => o.Model).Take(6))}{(g.Count() > 6 ? ", …" : "")})");
        Assert.IsEmpty(failures, string.Join("\n", failures));
    }

    [TestMethod]
    public void TheOutputComparison_IsBitwise_ExceptThatNaNsEqualEachOther()
    {
        static OnnxTensor F(params float[] v) => OnnxTensor.FromArray(v, v.Length);
        Assert.IsTrue(BitwiseOrNaNEqual(F(1f, float.NaN), F(1f, BitConverter.Int32BitsToSingle(0x7FC0_0F00))));
        Assert.IsFalse(BitwiseOrNaNEqual(F(0f), F(-0f)));
        Assert.IsFalse(BitwiseOrNaNEqual(F(1f), F(BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(1f) + 1))));
        Assert.IsFalse(BitwiseOrNaNEqual(F(1f, 2f), OnnxTensor.FromArray(new[] { 1f, 2f }, 2, 1)));
        Assert.IsFalse(BitwiseOrNaNEqual(OnnxTensor.FromArray(new[] { 1, 2 }, 2), OnnxTensor.FromArray(new[] { 1, 3 }, 2)));
    }

    private sealed record Outcome(string Model)
    {
        public bool Imported { get; set; }
        public bool FixedPoint { get; set; }
        public bool OrtCompared { get; set; }
        public string? OrtSkip { get; set; }
        public string? Failure { get; set; }
    }

    private static Outcome Check(string path)
    {
        string dir = Path.GetDirectoryName(path)!;
        var outcome = new Outcome(Path.GetFileName(dir));
        try
        {
            var first = ModelImporter.Load(path);
            outcome.Imported = true;
            byte[] firstBytes = ModelExporter.ToBytes(first);
            var second = ModelImporter.Load(firstBytes, path + " (re-export)", dir);
            var differences = IrComparer.Differences(first, second);
            if (differences.Count > 0)
                return Fail(outcome, $"re-import differs: {string.Join("; ", differences.Take(5))}{(differences.Count > 5 ? $" (+{differences.Count - 5} more)" : "")}");
            byte[] secondBytes = ModelExporter.ToBytes(second);
            if (!firstBytes.AsSpan().SequenceEqual(secondBytes))
                return Fail(outcome, $"second export differs from the first ({firstBytes.Length} vs {secondBytes.Length} bytes, first difference at {firstBytes.AsSpan().CommonPrefixLength(secondBytes)})");
            outcome.FixedPoint = true;
            byte[] original = File.ReadAllBytes(path);
            var kept = KeptFieldDifferences(original, firstBytes);
            if (kept.Count > 0) return Fail(outcome, $"the export lost or changed fields of the original: {string.Join("; ", kept)}");
            CompareOnOnnxRuntime(outcome, first, original, firstBytes, Path.Combine(dir, "test_data_set_0"));
        }
        catch (Exception e)
        {
            Fail(outcome, $"{e.GetType().Name}: {e.Message}");
        }
        return outcome;
    }

    /// <summary>
    /// The export keeps every field of the original (names, order, doc strings, types, attributes…), except how tensor
    /// data is encoded (typed fields become raw_data; the IR comparison checks the values).
    /// </summary>
    private static List<string> KeptFieldDifferences(byte[] original, byte[] exported)
    {
        var a = Protobuf.ModelProto.Parser.ParseFrom(original);
        var b = Protobuf.ModelProto.Parser.ParseFrom(exported);
        foreach (var m in new[] { a, b }) ProtoDiff.Strip(m, (msg, field) => msg is Protobuf.TensorProto && TensorDataFields.Contains(field.Name));
        return ProtoDiff.Differences(a, b, limit: 5);
    }

    private static readonly HashSet<string> TensorDataFields =
        ["raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data", "data_location", "external_data"];

    /// <summary>
    /// Where ONNX Runtime accepts the original, it must accept the re-export; where it runs the original on the data set,
    /// it must run the re-export with bit-identical outputs (and where it fails on one, it must fail on the other).
    /// </summary>
    private static void CompareOnOnnxRuntime(Outcome outcome, OnnxModel model, byte[] original, byte[] reexport, string dataSet)
    {
        OrtReferenceSession originalSession;
        try
        {
            originalSession = OrtReferenceSession.Load(original);
        }
        catch (OnnxRuntimeException e)
        {
            outcome.OrtSkip = OrtReason(e.Message);
            return;
        }
        using var _ = originalSession;
        OrtReferenceSession reexportSession;
        try
        {
            reexportSession = OrtReferenceSession.Load(reexport);
        }
        catch (OnnxRuntimeException e)
        {
            Fail(outcome, $"ONNX Runtime loads the original but not the re-export: {e.Message}");
            return;
        }
        using var __ = reexportSession;

        if (model.Graph.Inputs.FirstOrDefault(v => v.NonTensorType is not null) is { } nonTensor)
        {
            outcome.OrtSkip = $"non-tensor input ({nonTensor.NonTensorType!.ValueCase})";
            return;
        }
        Dictionary<string, OnnxTensor> inputs;
        try
        {
            inputs = ReadInputs(model.Graph, dataSet);
        }
        catch (ModelFormatException e)
        {
            outcome.OrtSkip = $"test_data_set_0 input is not a tensor file ({e.Reason})";
            return;
        }

        var (expected, expectedError) = TryRun(originalSession, inputs);
        var (actual, actualError) = TryRun(reexportSession, inputs);
        if (expectedError is not null || actualError is not null)
        {
            if (expectedError is null || actualError is null || expectedError.GetType() != actualError.GetType())
                Fail(outcome, $"ONNX Runtime on the original: {expectedError?.Message ?? "runs"}; on the re-export: {actualError?.Message ?? "runs"}");
            else
                outcome.OrtSkip = expectedError is NotSupportedException ? expectedError.Message : OrtReason(expectedError.Message);
            return;
        }
        foreach (var (name, want) in expected!)
        {
            if (!actual!.TryGetValue(name, out var got)) { Fail(outcome, $"re-export has no output '{name}'"); return; }
            if (!BitwiseOrNaNEqual(want, got)) { Fail(outcome, $"output '{name}' differs: {got} vs {want}, {Conformance.Compare(got, want, 0, 0) ?? "NaN payloads differ"}"); return; }
        }
        outcome.OrtCompared = true;
    }

    private static (Dictionary<string, OnnxTensor>? Outputs, Exception? Error) TryRun(OrtReferenceSession session, Dictionary<string, OnnxTensor> inputs)
    {
        try
        {
            return (session.Run(inputs), null);
        }
        catch (Exception e) when (e is OnnxRuntimeException or NotSupportedException)
        {
            return (null, e);
        }
    }

    /// <summary>
    /// The data set's inputs by graph input name, mapped as <see cref="Conformance.LoadDataSet"/> maps them (the
    /// outputs are not read: some are sequences). The ONNX 1.12 data stores bfloat16 inputs as uint16 tensors of the same
    /// bits; they are fed as the bfloat16 the graph declares.
    /// </summary>
    private static Dictionary<string, OnnxTensor> ReadInputs(Graph graph, string setDirectory)
    {
        var runtimeInputs = graph.RuntimeInputs.ToList();
        var files = Directory.EnumerateFiles(setDirectory, "input_*.pb")
            .OrderBy(f => int.Parse(Path.GetFileNameWithoutExtension(f)["input_".Length..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var inputs = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        for (int i = 0; i < files.Count; i++)
        {
            var (tensor, pbName) = TensorFiles.Read(files[i]);
            string name = !string.IsNullOrEmpty(pbName) && graph.Inputs.Any(v => v.Name == pbName) ? pbName
                : i < runtimeInputs.Count ? runtimeInputs[i].Name : graph.Inputs[i].Name;
            if (tensor.ElementType == DataType.UInt16 && graph.FindInput(name)?.ElementType == DataType.BFloat16)
                tensor = OnnxTensor.FromBuffer(DataType.BFloat16, tensor.Buffer, tensor.Dims);
            inputs[name] = tensor;
        }
        return inputs;
    }

    /// <summary>Same type, shape and bytes, except that NaNs of a float type equal each other whatever their payload.</summary>
    internal static bool BitwiseOrNaNEqual(OnnxTensor a, OnnxTensor b)
    {
        if (a.ContentEquals(b)) return true;
        if (a.ElementType != b.ElementType || !a.Shape.SequenceEqual(b.Shape) || !DataTypes.IsFloatingPoint(a.ElementType)) return false;
        var x = a.ToRawBytes();
        var y = b.ToRawBytes();
        int size = DataTypes.ElementSize(a.ElementType);
        for (int i = 0; i < x.Length; i += size)
        {
            if (x.AsSpan(i, size).SequenceEqual(y.AsSpan(i, size))) continue;
            if (!(double.IsNaN(a.GetDouble(i / size)) && double.IsNaN(b.GetDouble(i / size)))) return false;
        }
        return true;
    }

    /// <summary>ONNX Runtime's message reduced to a reason to group by: the error code and the op or type it names.</summary>
    private static string OrtReason(string message)
    {
        var m = System.Text.RegularExpressions.Regex.Match(message, @"Could not find an implementation for (\w+)\((\d+)\)");
        if (m.Success) return $"ORT has no CPU kernel for {m.Groups[1].Value}({m.Groups[2].Value})";
        m = System.Text.RegularExpressions.Regex.Match(message, @"^\[ErrorCode:(\w+)\]\s*(.*)$", System.Text.RegularExpressions.RegexOptions.Singleline);
        string code = m.Success ? m.Groups[1].Value : "";
        string text = m.Success ? m.Groups[2].Value : message;
        // Drop ONNX Runtime's source location and C++ signature ("/onnxruntime_src/….cc:56 onnxruntime::X::X(…) ").
        text = System.Text.RegularExpressions.Regex.Replace(text, @"/onnxruntime_src/\S+:\d+ .*?\)>?\s+(\[with [^\]]*\]\s*)?", "");
        text = System.Text.RegularExpressions.Regex.Replace(text, @"\s+", " ").Trim();
        return $"ORT {code}: {(text.Length > 140 ? text[..140] + "…" : text)}";
    }

    private static Outcome Fail(Outcome outcome, string why)
    {
        outcome.Failure = why;
        return outcome;
    }
}
