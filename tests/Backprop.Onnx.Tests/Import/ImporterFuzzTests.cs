using System.Diagnostics;
using System.Globalization;
using Backprop.Onnx.Export;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Tests.Support;

namespace Backprop.Onnx.Tests.Import;

/// <summary>
/// Seeded mutations of real models fed to <see cref="ModelImporter.Load(ReadOnlySpan{byte}, string, string?)"/>: each must
/// import or raise <see cref="ModelFormatException"/> within one second. A mutation that imports must also export and
/// import again. Any other exception, or a time-out, fails the test with the seed and the mutation that reproduce it.
/// Set BACKPROP_ONNX_FUZZ_MUTATIONS to run more than the default 1,200.
/// </summary>
[TestClass]
public sealed class ImporterFuzzTests
{
    /// <summary>Models with subgraphs (If, Loop, Scan), initializers, Constant tensors, strings, sequences, optionals, old IR.</summary>
    private static readonly string[] SeedModels =
    [
        "node/test_if", "node/test_loop11", "node/test_scan9_sum", "node/test_if_seq", "node/test_constant",
        "node/test_constantofshape_int_zeros", "node/test_conv_with_strides_padding", "node/test_lstm_defaults",
        "node/test_strnormalizer_export_monday_casesensintive_lower", "node/test_cast_FLOAT_to_STRING",
        "node/test_sequence_insert_at_back", "node/test_optional_get_element", "node/test_layer_normalization_4d_axis0_expanded",
        "pytorch-converted/test_Conv2d", "pytorch-operator/test_operator_conv", "pytorch-operator/test_operator_params",
        "simple/test_sequence_model1",
    ];

    private const int BaseSeed = 20_240_601;

    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(1);

    [TestMethod]
    public void MutatedModels_ImportOrRaiseModelFormatException_WithinOneSecond()
    {
        TestPaths.RequireOnnxTestData();
        int count = int.TryParse(Environment.GetEnvironmentVariable("BACKPROP_ONNX_FUZZ_MUTATIONS"), CultureInfo.InvariantCulture, out int n) && n > 0 ? n : 1200;
        var originals = SeedModels.Select(m => (Name: m, Bytes: File.ReadAllBytes(Path.Combine(TestPaths.OnnxTestData, m, "model.onnx")))).ToArray();
        var tally = ModelMutator.Kinds.ToDictionary(k => k, _ => (Imported: 0, Rejected: 0));
        var failures = new List<string>();
        var slowest = TimeSpan.Zero;

        for (int i = 0; i < count && failures.Count < 20; i++)
        {
            int seed = BaseSeed + i;
            var (name, original) = originals[i % originals.Length];
            var (bytes, kind, description) = ModelMutator.Mutate(original, seed);
            var clock = Stopwatch.StartNew();
            var run = Task.Run(() => ImportAndReExport(bytes));
            if (!run.Wait(Limit))
            {
                failures.Add($"seed {seed}, {name}, {description}: no result within {Limit.TotalSeconds:0} s");
                break; // the import is still running on a pool thread; stop here rather than pile up more.
            }
            slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
            var (imported, rejected, error) = run.Result;
            if (error is not null)
                failures.Add($"seed {seed}, {name}, {description}: {error.GetType().FullName}: {error.Message}\n{error.StackTrace}");
            else if (imported) tally[kind] = (tally[kind].Imported + 1, tally[kind].Rejected);
            else if (rejected) tally[kind] = (tally[kind].Imported, tally[kind].Rejected + 1);
        }

        Console.WriteLine($"fuzz: {count} mutations of {originals.Length} models (seeds {BaseSeed}..{BaseSeed + count - 1}), slowest {slowest.TotalMilliseconds:0} ms");
        foreach (var (kind, (imported, rejected)) in tally)
            Console.WriteLine($"  {kind}: imported {imported}, ModelFormatException {rejected}");
        Console.WriteLine($"  other exceptions or time-outs: {failures.Count}");
        Assert.IsEmpty(failures, string.Join("\n\n", failures));
    }

    /// <summary>Imports the bytes; when they import, exports and imports again (both must work).</summary>
    private static (bool Imported, bool Rejected, Exception? Error) ImportAndReExport(byte[] bytes)
    {
        OnnxModel model;
        try
        {
            model = ModelImporter.Load(bytes, "<mutated>");
        }
        catch (ModelFormatException)
        {
            return (false, true, null);
        }
        catch (Exception e)
        {
            return (false, false, e);
        }
        try
        {
            var again = ModelImporter.Load(ModelExporter.ToBytes(model), "<mutated, re-exported>");
            var differences = IrComparer.Differences(model, again);
            if (differences.Count > 0)
                return (false, false, new InvalidOperationException($"re-export of the mutated model does not import to the same IR: {string.Join("; ", differences.Take(3))}"));
            return (true, false, null);
        }
        catch (Exception e)
        {
            return (false, false, new InvalidOperationException($"the mutated model imports, but its re-export fails: {e.GetType().Name}: {e.Message}", e));
        }
    }
}
