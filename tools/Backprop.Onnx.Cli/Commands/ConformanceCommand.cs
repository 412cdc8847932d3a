using System.CommandLine;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Cli.Commands;

/// <summary><c>backprop-onnx conformance DIR...</c>: runs ONNX backend test folders and prints one line each and the totals.</summary>
internal static class ConformanceCommand
{
    public static Command Create()
    {
        var dirs = new Argument<string[]>("dirs") { Description = "Folders holding backend test folders (model.onnx + test_data_set_*).", Arity = ArgumentArity.OneOrMore };
        var filter = new Option<string?>("--filter") { Description = "Only tests whose name contains this text." };
        var cmd = new Command("conformance", "Run ONNX backend tests on the executor.") { dirs, filter };
        cmd.SetAction(r => CliErrors.Guard(() => Run(r.GetValue(dirs)!, r.GetValue(filter))));
        return cmd;
    }

    private static int Run(string[] dirs, string? filter)
    {
        foreach (var d in dirs) if (!Directory.Exists(d)) throw new DirectoryNotFoundException($"no such folder: {d}");
        int passed = 0, wrong = 0, unsupported = 0;
        var tests = Conformance.FindTests(dirs);
        if (tests.Count == 0) throw new ArgumentException($"no test folders (a model.onnx beside test_data_set_* folders) under {string.Join(", ", dirs)}");
        foreach (var test in tests)
        {
            if (filter is not null && !Path.GetFileName(test).Contains(filter, StringComparison.Ordinal)) continue;
            var r = Conformance.Run(test);
            switch (r.Status)
            {
                case ConformanceStatus.Pass: passed++; Console.WriteLine($"pass {r.Name}"); break;
                case ConformanceStatus.Wrong: wrong++; Console.WriteLine($"wrong {r.Name}: {CliErrors.OneLine(r.Reason)}"); break;
                default: unsupported++; Console.WriteLine($"unsupported {r.Name}: {CliErrors.OneLine(r.Reason)}"); break;
            }
        }
        Console.WriteLine($"passed {passed}, wrong {wrong}, unsupported {unsupported}, total {passed + wrong + unsupported}");
        return wrong == 0 ? 0 : 1;
    }
}
