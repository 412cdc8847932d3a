using System.CommandLine;
using System.Text.Json;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Spectre.Console;

namespace Backprop.Onnx.Cli.Commands;

/// <summary><c>backprop-onnx inspect MODEL [--json]</c>: versions, inputs and outputs, parameters, op histogram.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "The .onnx file." };
        var json = new Option<bool>("--json") { Description = "Print machine-readable JSON." };
        var cmd = new Command("inspect", "Describe an ONNX model: IR version, opsets, producer, inputs and outputs, parameters, ops.") { model, json };
        cmd.SetAction(r => CliErrors.Guard(() => Run(r.GetValue(model)!, r.GetValue(json))));
        return cmd;
    }

    private static int Run(string path, bool asJson)
    {
        var m = ModelImporter.Load(path);
        var g = m.Graph;
        var parameters = g.Initializers.Where(kv => DataTypes.IsFloatingPoint(kv.Value.ElementType)).ToList();
        long paramCount = parameters.Sum(kv => kv.Value.ElementCount);
        long bytes = g.Initializers.Values.Sum(t => Math.Max(0, DataTypes.RawByteLength(t.ElementType, t.ElementCount)));
        var histogram = g.Nodes.GroupBy(n => n.IsDefaultDomain ? n.OpType : $"{n.Domain}::{n.OpType}")
            .Select(gr => (Op: gr.Key, Count: gr.Count())).OrderByDescending(x => x.Count).ThenBy(x => x.Op, StringComparer.Ordinal).ToList();
        static object Describe(ValueInfo v) => new
        {
            name = v.Name,
            dtype = DataTypes.OnnxName(v.ElementType),
            // A dimension is its size, its symbolic name (dim_param), or null when the model says nothing about it.
            shape = v.Shape?.Select(d => d.Value.HasValue ? (object?)d.Value.Value : d.Param).ToArray(),
        };
        if (asJson)
        {
            var doc = new
            {
                file = Path.GetFullPath(path),
                ir_version = m.IrVersion,
                opsets = m.OpsetImports.Select(o => new { domain = o.Domain.Length == 0 ? "ai.onnx" : o.Domain, version = o.Version }),
                producer = new { name = m.ProducerName, version = m.ProducerVersion },
                graph = g.Name,
                inputs = g.RuntimeInputs.Select(Describe),
                outputs = g.Outputs.Select(Describe),
                initializers = g.Initializers.Count,
                parameter_count = paramCount,
                parameter_bytes = bytes,
                nodes = g.Nodes.Count,
                ops = histogram.ToDictionary(x => x.Op, x => x.Count),
            };
            Console.WriteLine(JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        var console = AnsiConsole.Console;
        console.MarkupLineInterpolated($"[bold]{Path.GetFileName(path)}[/]  IR version {m.IrVersion}, producer {m.ProducerName} {m.ProducerVersion}");
        console.WriteLine($"opsets: {string.Join(", ", m.OpsetImports.Select(o => $"{(o.Domain.Length == 0 ? "ai.onnx" : o.Domain)} {o.Version}"))}");
        var io = new Table().AddColumns("", "name", "dtype", "shape");
        foreach (var v in g.RuntimeInputs) io.AddRow("input", Markup.Escape(v.Name), DataTypes.OnnxName(v.ElementType), Markup.Escape(ShapeText(v)));
        foreach (var v in g.Outputs) io.AddRow("output", Markup.Escape(v.Name), DataTypes.OnnxName(v.ElementType), Markup.Escape(ShapeText(v)));
        console.Write(io);
        console.WriteLine($"parameters: {paramCount:N0} in {parameters.Count} float tensors; initializers {g.Initializers.Count}, {bytes:N0} bytes");
        var ops = new Table().AddColumns("op", "count");
        foreach (var (op, count) in histogram) ops.AddRow(Markup.Escape(op), count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        console.Write(ops);
        console.WriteLine($"nodes: {g.Nodes.Count}");
        return 0;
    }

    private static string ShapeText(ValueInfo v) => v.Shape is null ? "?" : "[" + string.Join(",", v.Shape) + "]";
}
