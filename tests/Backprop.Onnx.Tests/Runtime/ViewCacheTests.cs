using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// <see cref="KernelContext.SetOutputView"/>: an output's view wrapper is reused only for the same buffer, element type,
/// element count and shape, a few recent views are remembered per output (only the newest of a caller's buffer after
/// a run), and plans of view ops give the same results run after run.
/// </summary>
[TestClass]
public sealed class ViewCacheTests
{
    private static (KernelContext Ctx, OnnxTensor?[] Values) Bound() => Bound(new BufferPool());

    private static (KernelContext Ctx, OnnxTensor?[] Values) Bound(BufferPool pool)
    {
        var ctx = new KernelContext(new ExecutionOptions { Threads = 1 }, 0, pool);
        var values = new OnnxTensor?[3];
        ctx.Bind(new Node("Reshape", ["a"], ["b"], "view"), values, [0], [1]);
        return (ctx, values);
    }

    [TestMethod]
    public void AView_IsReusedOnlyWhileBufferTypeAndShapeRepeat()
    {
        var (ctx, values) = Bound();
        var x = OnnxTensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        ctx.SetOutputView(0, x, [3, 2]);
        var first = values[1]!;
        Assert.AreSame(x.Buffer, first.Buffer);
        CollectionAssert.AreEqual(new[] { 3, 2 }, first.Shape.ToArray());

        ctx.SetOutputView(0, x.Reshape([6]), [3, 2]);                       // another wrapper, same buffer and shape
        Assert.AreSame(first, values[1]);
        ctx.SetOutputView(0, x, [6]);                                       // another shape
        CollectionAssert.AreEqual(new[] { 6 }, values[1]!.Shape.ToArray());
        var other = OnnxTensor.FromArray(new float[] { 7, 8, 9, 10, 11, 12 }, 2, 3);
        ctx.SetOutputView(0, other, [3, 2]);                                // another buffer
        Assert.AreSame(other.Buffer, values[1]!.Buffer);
        CollectionAssert.AreEqual(new float[] { 7, 8, 9, 10, 11, 12 }, values[1]!.ToArray<float>());
        var ints = OnnxTensor.FromBuffer(DataType.Int32, new int[6], 6);
        ctx.SetOutputView(0, ints, [3, 2]);                                 // another element type
        Assert.AreEqual(DataType.Int32, values[1]!.ElementType);
        ctx.SetOutputView(0, x, [3, 2]);                                    // still remembered (four per output)
        Assert.AreSame(first, values[1]);
        Assert.ThrowsExactly<ArgumentException>(() => ctx.SetOutputView(0, x, [4, 2]));
    }

    [TestMethod]
    public void BuffersThatAlternate_KeepTheirViews_UpToFour()
    {
        var (ctx, values) = Bound();
        var buffers = Enumerable.Range(0, KernelContext.ViewsPerOutput + 1).Select(i => OnnxTensor.FromArray(new double[] { i, i }, 2)).ToArray();
        var seen = new OnnxTensor[buffers.Length];
        for (int i = 0; i < KernelContext.ViewsPerOutput; i++) { ctx.SetOutputView(0, buffers[i], [1, 2]); seen[i] = values[1]!; }
        for (int round = 0; round < 3; round++)
            for (int i = 0; i < KernelContext.ViewsPerOutput; i++)
            {
                ctx.SetOutputView(0, buffers[i], [1, 2]);
                Assert.AreSame(seen[i], values[1], $"round {round}, buffer {i}");
            }
        ctx.SetOutputView(0, buffers[^1], [1, 2]);                          // a fifth buffer drops the oldest view
        ctx.SetOutputView(0, buffers[0], [1, 2]);
        Assert.AreNotSame(seen[0], values[1]);
        Assert.AreSame(buffers[0].Buffer, values[1]!.Buffer);
    }

    [TestMethod]
    public void AfterARun_OnlyTheNewestViewOfACallersBuffer_IsKept()
    {
        var pool = new BufferPool();
        var (ctx, values) = Bound(pool);
        pool.BeginRun();
        var pooled = pool.Rent(DataType.Float, [2, 3], clear: true);
        var model = OnnxTensor.FromArray(new float[6], 6);
        var inputs = Enumerable.Range(0, 2).Select(_ => OnnxTensor.FromArray(new float[6], 6)).ToArray();
        ctx.SetOutputView(0, pooled, [6]);
        var pooledView = values[1];
        ctx.SetOutputView(0, model, [3, 2]);
        var modelView = values[1];
        ctx.SetOutputView(0, inputs[0], [3, 2]);
        var oldInputView = values[1];
        ctx.SetOutputView(0, inputs[1], [3, 2]);
        var newInputView = values[1];
        ctx.ForgetOldForeignViews(pool, new HashSet<Array>(ReferenceEqualityComparer.Instance) { model.Buffer });
        ctx.SetOutputView(0, inputs[1], [3, 2]);
        Assert.AreSame(newInputView, values[1], "the most recent view is kept");
        ctx.SetOutputView(0, pooled, [6]);
        Assert.AreSame(pooledView, values[1], "a view of the pool's buffer is kept");
        ctx.SetOutputView(0, model, [3, 2]);
        Assert.AreSame(modelView, values[1], "a view of the model's buffer is kept");
        ctx.SetOutputView(0, inputs[0], [3, 2]);
        Assert.AreNotSame(oldInputView, values[1], "an older view of a caller's buffer is dropped");
        pool.EndRun();
    }

    [TestMethod]
    public void ViewOps_GiveTheSameResultsEveryRun_WithChangingInputsAndShapes()
    {
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 17));
        var g = model.Graph;
        g.Inputs.Add(new ValueInfo("x", DataType.Float, [Dim.Symbol("N"), Dim.Of(6)]));
        g.Initializers["shape"] = OnnxTensor.FromArray(new long[] { -1, 3, 2 }, 3);
        g.Initializers["axes"] = OnnxTensor.FromArray(new long[] { 0, 3 }, 2);
        g.Nodes.Add(new Node("Relu", ["x"], ["r"], "relu"));
        g.Nodes.Add(new Node("Reshape", ["r", "shape"], ["a"], "reshape"));
        g.Nodes.Add(new Node("Unsqueeze", ["a", "axes"], ["b"], "unsqueeze"));
        g.Nodes.Add(new Node("Squeeze", ["b", "axes"], ["c"], "squeeze"));
        g.Nodes.Add(new Node("Flatten", ["c"], ["d"], "flatten"));
        g.Nodes.Add(new Node("Neg", ["d"], ["y"], "neg"));
        g.Outputs.Add(new ValueInfo("y", DataType.Float, null));
        var plan = ExecutionPlan.Compile(model, new ExecutionOptions { Threads = 1 });
        foreach (int n in new[] { 2, 2, 3, 1, 3, 2, 2 })
        {
            var input = Enumerable.Range(0, n * 6).Select(i => (float)(i % 5 - 2) * n).ToArray();
            var y = plan.Run(new Dictionary<string, OnnxTensor> { ["x"] = OnnxTensor.FromArray(input, n, 6) })["y"];
            CollectionAssert.AreEqual(new[] { n, 6 }, y.Shape.ToArray());
            CollectionAssert.AreEqual(input.Select(v => -Math.Max(v, 0f)).ToArray(), y.ToArray<float>(), $"N = {n}");
            plan.Recycle([y]);
        }
    }
}
