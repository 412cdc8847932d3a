using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Backprop.Onnx.IR;

namespace Backprop.Onnx.Runtime;

/// <summary>
/// Per-op-type timing of plan runs, switched on by the environment variable <c>BACKPROP_ONNX_PROFILE=1</c>: for every
/// op type (domain-qualified when not ai.onnx) the calls, wall time, process CPU time (all threads, so parallel kernels
/// count their workers; Linux only, else 0) and managed bytes allocated on the calling thread. The table is printed to
/// standard error when the process exits (and by <see cref="Report"/>), sorted by wall time.
/// </summary>
internal static partial class PlanProfiler
{
    /// <summary>True when <c>BACKPROP_ONNX_PROFILE</c> is set to 1 or 2 (read once).</summary>
    public static readonly bool Enabled = Environment.GetEnvironmentVariable("BACKPROP_ONNX_PROFILE") is "1" or "2";

    /// <summary>With <c>BACKPROP_ONNX_PROFILE=2</c> each op type is split further by its input shapes.</summary>
    private static readonly bool ByShape = Environment.GetEnvironmentVariable("BACKPROP_ONNX_PROFILE") == "2";

    private static readonly Dictionary<string, Entry> Entries = new(StringComparer.Ordinal);
    private static readonly Lock Gate = new();
    private static bool _hooked;

    private sealed class Entry
    {
        public long Calls, WallTicks, CpuNanos, Bytes;
    }

    /// <summary>Where a node's measurement starts.</summary>
    public readonly record struct Mark(long Wall, long Cpu, long Bytes);

    public static Mark Start() => new(Stopwatch.GetTimestamp(), ProcessCpuNanos(), GC.GetAllocatedBytesForCurrentThread());

    /// <summary>Adds the time and bytes since <paramref name="start"/> to <paramref name="node"/>'s op type.</summary>
    public static void Stop(Node node, Mark start, KernelContext ctx)
    {
        long wall = Stopwatch.GetTimestamp() - start.Wall, cpu = ProcessCpuNanos() - start.Cpu;
        long bytes = GC.GetAllocatedBytesForCurrentThread() - start.Bytes;
        string key = node.Domain.Length == 0 || node.Domain == "ai.onnx" ? node.OpType : node.Domain + "." + node.OpType;
        if (ByShape)
            key += " " + string.Join(' ', Enumerable.Range(0, ctx.InputCount).Select(i => ctx.Input(i) is { } t ? $"[{string.Join(',', t.Dims)}]" : "-"));
        lock (Gate)
        {
            if (!_hooked)
            {
                _hooked = true;
                AppDomain.CurrentDomain.ProcessExit += (_, _) => Console.Error.Write(Report());
            }
            if (!Entries.TryGetValue(key, out var e)) Entries[key] = e = new Entry();
            e.Calls++;
            e.WallTicks += wall;
            e.CpuNanos += cpu;
            e.Bytes += bytes;
        }
    }

    /// <summary>Forgets what was measured so far (e.g. the first runs, which include JIT compilation).</summary>
    public static void Reset()
    {
        lock (Gate) Entries.Clear();
    }

    /// <summary>The table so far, one line per op type, most wall time first, then a total line.</summary>
    public static string Report()
    {
        lock (Gate)
        {
            var sb = new StringBuilder();
            double totalWall = Entries.Values.Sum(e => e.WallTicks) * 1000.0 / Stopwatch.Frequency;
            sb.AppendLine(CultureInfo.InvariantCulture, $"{"op",-60} {"calls",8} {"wall_ms",10} {"wall%",6} {"cpu_ms",10} {"MB_alloc",10}");
            foreach (var (key, e) in Entries.OrderByDescending(kv => kv.Value.WallTicks))
            {
                double wall = e.WallTicks * 1000.0 / Stopwatch.Frequency;
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"{key,-60} {e.Calls,8} {wall,10:0.0} {100 * wall / Math.Max(totalWall, 1e-9),6:0.0} {e.CpuNanos / 1e6,10:0.0} {e.Bytes / 1e6,10:0.0}");
            }
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{"total",-60} {Entries.Values.Sum(e => e.Calls),8} {totalWall,10:0.0} {100.0,6:0.0} {Entries.Values.Sum(e => e.CpuNanos) / 1e6,10:0.0} {Entries.Values.Sum(e => e.Bytes) / 1e6,10:0.0}");
            return sb.ToString();
        }
    }

    private static long ProcessCpuNanos()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        try
        {
            return clock_gettime(2 /* CLOCK_PROCESS_CPUTIME_ID */, out var ts) == 0 ? ts.Seconds * 1_000_000_000 + ts.Nanoseconds : 0;
        }
        catch (DllNotFoundException)
        {
            return 0;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int clock_gettime(int clock, out TimeSpec time);
}
