using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Cli.Commands;

/// <summary>
/// <c>backprop-onnx bench-gemm [--sizes 256,512,1024,2048] [--shapes MxNxK[:nt],...] [--threads N] [--repeat R] [--best]</c>:
/// times our SGEMM (<see cref="Gemm.Multiply{T}"/> in float32, alpha 1, beta 0) on seeded random matrices and prints one
/// machine-readable line per shape: <c>gemm: m=.. n=.. k=.. ms=.. gflops=..</c> (2·m·n·k / the median time of R runs
/// after a warm-up), followed by <c> trans=XY</c> for a transposed shape.
/// </summary>
/// <remarks>
/// A shape is <c>MxNxK</c> (C[m,n] = A[m,k]·B[k,n]) with an optional <c>:XY</c> suffix, X and Y each <c>n</c> or
/// <c>t</c>: <c>t</c> stores that operand transposed (A as k×m, B as n×k), as a Linear layer's forward (<c>nt</c>) and
/// weight gradient (<c>tn</c>) do. One run of a small shape takes microseconds, so a run repeats the multiply until it
/// lasts about a millisecond (the count is fixed after the warm-up) and reports the time per multiply.
/// </remarks>
internal static class BenchGemmCommand
{
    /// <summary>Shortest time of one timed run; small shapes repeat the multiply inside a run to reach it.</summary>
    private const double MinRunMs = 1.0;

    public static Command Create()
    {
        var sizes = new Option<string>("--sizes") { Description = "Square sizes, comma-separated (m = n = k).", DefaultValueFactory = _ => "256,512,1024,2048" };
        var shapes = new Option<string?>("--shapes") { Description = "Further shapes MxNxK, optionally :nt, :tn or :tt for transposed A/B, comma-separated." };
        var threads = new Option<int>("--threads") { Description = "GEMM threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var repeat = new Option<int>("--repeat") { Description = "Timed runs per shape (the median is printed).", DefaultValueFactory = _ => 5 };
        var best = new Option<bool>("--best") { Description = "Report the fastest run instead of the median (steadier on a shared machine: interference only slows a run)." };
        var cmd = new Command("bench-gemm", "Time our float32 GEMM (GFLOP/s) on square and given shapes.") { sizes, shapes, threads, repeat, best };
        cmd.SetAction(r => CliErrors.Guard(() => Run(r.GetValue(sizes) ?? "", r.GetValue(shapes), r.GetValue(threads), r.GetValue(repeat), r.GetValue(best))));
        return cmd;
    }

    /// <summary>One GEMM problem: op(A) is m×k, op(B) is k×n.</summary>
    internal readonly record struct Shape(int M, int N, int K, bool TransA, bool TransB);

    private static int Run(string sizes, string? shapes, int threads, int repeat, bool best)
    {
        if (threads <= 0) throw new ArgumentException("--threads must be positive");
        if (repeat <= 0) throw new ArgumentException("--repeat must be positive");
        var list = ParseSizes(sizes).Concat(ParseShapes(shapes)).ToList();
        if (list.Count == 0) throw new ArgumentException("no shape to run: give --sizes or --shapes");

        Console.WriteLine($"gemm path {Gemm.Resolve(GemmPath.Auto)}, float32, threads {threads}, {(best ? "best" : "median")} of {repeat} runs after a warm-up");
        foreach (var shape in list)
        {
            double ms = Time(shape, threads, repeat, best);
            double gflops = 2.0 * shape.M * shape.N * shape.K / (ms * 1e6);
            string trans = shape.TransA || shape.TransB ? $" trans={(shape.TransA ? 't' : 'n')}{(shape.TransB ? 't' : 'n')}" : "";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"gemm: m={shape.M} n={shape.N} k={shape.K} ms={ms:0.0000} gflops={gflops:0.00}{trans}"));
        }
        return 0;
    }

    /// <summary>Median (or with <paramref name="best"/> the least) milliseconds of one multiply.</summary>
    private static double Time(Shape s, int threads, int repeat, bool best)
    {
        var random = new Random(0);
        float[] a = Random(random, (long)s.M * s.K), b = Random(random, (long)s.K * s.N), c = new float[checked(s.M * s.N)];
        int lda = s.TransA ? s.M : s.K, ldb = s.TransB ? s.K : s.N;
        void Multiply() => Gemm.Multiply(s.TransA, s.TransB, s.M, s.N, s.K, 1f, a, lda, b, ldb, 0f, c, s.N, threads);

        // Warm-up: JIT, page faults, caches; it also measures how many multiplies make one run of MinRunMs.
        long start = Stopwatch.GetTimestamp();
        int warm = 0;
        do
        {
            Multiply();
            warm++;
        }
        while (warm < 2 || (Stopwatch.GetElapsedTime(start).TotalMilliseconds < 50 && warm < 10_000));
        double perCall = Stopwatch.GetElapsedTime(start).TotalMilliseconds / warm;
        int inner = Math.Max(1, (int)Math.Ceiling(MinRunMs / Math.Max(perCall, 1e-6)));

        var times = new double[repeat];
        for (int r = 0; r < repeat; r++)
        {
            start = Stopwatch.GetTimestamp();
            for (int i = 0; i < inner; i++) Multiply();
            times[r] = Stopwatch.GetElapsedTime(start).TotalMilliseconds / inner;
        }
        Array.Sort(times);
        if (best) return times[0];
        return repeat % 2 == 1 ? times[repeat / 2] : (times[repeat / 2 - 1] + times[repeat / 2]) / 2;
    }

    private static float[] Random(Random random, long count)
    {
        var data = new float[checked((int)count)];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
        return data;
    }

    internal static IEnumerable<Shape> ParseSizes(string text)
    {
        foreach (var item in Items(text))
        {
            int n = Positive(item, item, "--sizes");
            yield return new Shape(n, n, n, false, false);
        }
    }

    internal static IEnumerable<Shape> ParseShapes(string? text)
    {
        foreach (var item in Items(text))
        {
            string dims = item, trans = "nn";
            int colon = item.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0) (dims, trans) = (item[..colon], item[(colon + 1)..].ToLowerInvariant());
            var parts = dims.Split('x', 'X');
            if (parts.Length != 3 || trans.Length != 2 || trans.Any(ch => ch is not ('n' or 't')))
                throw new ArgumentException($"--shapes expects MxNxK or MxNxK:XY with X, Y in n/t, got '{item}'");
            yield return new Shape(Positive(parts[0], item, "--shapes"), Positive(parts[1], item, "--shapes"), Positive(parts[2], item, "--shapes"),
                trans[0] == 't', trans[1] == 't');
        }
    }

    private static IEnumerable<string> Items(string? text) =>
        (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static int Positive(string number, string item, string option) =>
        int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0
            ? v : throw new ArgumentException($"{option}: '{item}' is not a positive size");
}
