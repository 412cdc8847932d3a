using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Support;

/// <summary>Builds and runs a model of one node, for kernel and gradient tests.</summary>
internal static class SingleNode
{
    /// <summary>A model with one node of <paramref name="opType"/> whose inputs are graph inputs named x0, x1, … and outputs y0, y1, ….</summary>
    public static OnnxModel Model(string opType, OnnxTensor?[] inputs, int outputCount = 1, long opset = 17, string domain = "", params OnnxAttribute[] attributes)
    {
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", opset));
        if (domain.Length > 0) model.OpsetImports.Add(new OpsetImport(domain, 1));
        var g = model.Graph;
        var inputNames = new List<string>();
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is not { } t) { inputNames.Add(""); continue; }
            string name = $"x{i}";
            inputNames.Add(name);
            g.Inputs.Add(new ValueInfo(name, t.ElementType, [.. t.Dims.Select(d => Dim.Of(d))]));
        }
        var outputs = Enumerable.Range(0, outputCount).Select(i => $"y{i}").ToArray();
        var node = new Node(opType, inputNames, outputs, "node", domain);
        node.Attributes.AddRange(attributes);
        g.Nodes.Add(node);
        foreach (var o in outputs) g.Outputs.Add(new ValueInfo(o, DataType.Undefined, null));
        return model;
    }

    /// <summary>Runs the single-node model and returns its outputs in order.</summary>
    public static OnnxTensor[] Run(string opType, OnnxTensor?[] inputs, int outputCount = 1, long opset = 17, params OnnxAttribute[] attributes)
    {
        var model = Model(opType, inputs, outputCount, opset, "", attributes);
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 });
        var feeds = new Dictionary<string, OnnxTensor>();
        for (int i = 0; i < inputs.Length; i++) if (inputs[i] is { } t) feeds[$"x{i}"] = t;
        var result = plan.Run(feeds);
        return [.. Enumerable.Range(0, outputCount).Select(i => result[$"y{i}"])];
    }
}
