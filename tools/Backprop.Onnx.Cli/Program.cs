using System.CommandLine;
using Backprop.Onnx.Cli.Commands;

namespace Backprop.Onnx.Cli;

/// <summary>The <c>backprop-onnx</c> command: a thin layer over the Backprop.Onnx library.</summary>
public static class Program
{
    /// <summary>Entry point; returns 0 on success, 1 for a failed check, 2 for bad input.</summary>
    public static int Main(string[] args)
    {
        var root = new RootCommand("Backprop.Onnx: import, run, differentiate and train ONNX models in .NET.");
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(ConformanceCommand.Create());
        root.Subcommands.Add(VjpCommand.Create());
        root.Subcommands.Add(GradcheckCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(ExportTrainingCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(BenchGemmCommand.Create());
        root.Subcommands.Add(EvaluateCommand.Create());
        if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 160;
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // Usage errors are bad input too: one line, exit code 2 (gradcheck's 1 means a failed check).
            Console.Error.WriteLine($"error: {string.Join("; ", parsed.Errors.Select(e => e.Message))} (see backprop-onnx {string.Join(' ', args.Take(1))} --help)");
            return Commands.CliErrors.BadInput;
        }
        return parsed.Invoke();
    }
}
