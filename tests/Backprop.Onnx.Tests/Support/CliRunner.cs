namespace Backprop.Onnx.Tests.Support;

/// <summary>Runs <c>backprop-onnx</c>'s Program.Main in-process with stdout, stderr and Spectre.Console captured (callers must not run in parallel).</summary>
internal static class CliRunner
{
    public static (int ExitCode, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var oldAnsi = Spectre.Console.AnsiConsole.Console;
        Console.SetOut(stdout);
        Console.SetError(stderr);
        Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Ansi = Spectre.Console.AnsiSupport.No,
            ColorSystem = Spectre.Console.ColorSystemSupport.NoColors,
            Out = new Spectre.Console.AnsiConsoleOutput(stdout),
        });
        try
        {
            int code = Backprop.Onnx.Cli.Program.Main(args);
            return (code, stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
            Spectre.Console.AnsiConsole.Console = oldAnsi;
        }
    }
}
