using Backprop.Onnx.IR;

namespace Backprop.Onnx.Cli.Commands;

/// <summary>Turns expected errors into one line on stderr and exit code 2.</summary>
internal static class CliErrors
{
    public const int BadInput = 2;

    public const int InternalError = 3;

    public static int Guard(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (BackpropOnnxException e)
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            return BadInput;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidDataException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            return BadInput;
        }
        catch (Exception e) when (e is OverflowException or OutOfMemoryException)
        {
            Console.Error.WriteLine($"error: the input is too large ({OneLine(e.Message)})");
            return BadInput;
        }
        catch (Exception e)
        {
            // A bug of ours, not the user's input: still one line, and a distinct exit code.
            Console.Error.WriteLine($"error: internal error ({e.GetType().Name}): {OneLine(e.Message)}; please report it");
            return InternalError;
        }
    }

    public static string OneLine(string s) => s.ReplaceLineEndings(" ");

    /// <summary>Parses <c>NAME=FILE</c> pairs.</summary>
    public static IEnumerable<(string Name, string File)> Pairs(IEnumerable<string>? items, string option)
    {
        foreach (var item in items ?? [])
        {
            int eq = item.LastIndexOf('=');
            if (eq <= 0 || eq == item.Length - 1) throw new ArgumentException($"{option} expects NAME=FILE, got '{item}'");
            yield return (item[..eq], item[(eq + 1)..]);
        }
    }
}
