using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// The executor's buffer pool: a buffer is reused only once no value slot holds it, graph outputs stay the caller's,
/// and a plan run again gives the same bits without touching what earlier runs returned.
/// </summary>
[TestClass]
public sealed class BufferPoolTests
{
    [TestMethod]
    public void HeldBufferIsNotHandedOutAgain()
    {
        var pool = new BufferPool();
        pool.BeginRun();
        var a = pool.Rent(DataType.Float, [4], clear: true);
        pool.AddRef(a.Buffer);
        pool.EndNode();
        var b = pool.Rent(DataType.Float, [4], clear: true);
        pool.AddRef(b.Buffer);
        pool.EndNode();
        Assert.AreNotSame(a.Buffer, b.Buffer);

        a.AsSpan<float>().Fill(7);
        pool.Release(a.Buffer);
        var c = pool.Rent(DataType.Float, [2, 2], clear: true);
        Assert.AreSame(a.Buffer, c.Buffer, "a released buffer of the same type and length is reused");
        CollectionAssert.AreEqual(new float[4], c.ToArray<float>(), "Allocate hands out zeros");
    }

    [TestMethod]
    public void SharedBufferIsReusedOnlyAfterItsLastHolder()
    {
        var pool = new BufferPool();
        pool.BeginRun();
        var a = pool.Rent(DataType.Double, [3], clear: true);
        pool.AddRef(a.Buffer);   // the producing node's output slot
        pool.AddRef(a.Buffer);   // a Reshape output aliasing it
        pool.EndNode();
        pool.Release(a.Buffer);
        Assert.AreNotSame(a.Buffer, pool.Rent(DataType.Double, [3], clear: true).Buffer);
        pool.EndNode();
        pool.Release(a.Buffer);
        Assert.AreSame(a.Buffer, pool.Rent(DataType.Double, [3], clear: true).Buffer);
    }

    [TestMethod]
    public void ScratchBufferNobodyHoldsIsReusedAfterTheNode()
    {
        var pool = new BufferPool();
        pool.BeginRun();
        var scratch = pool.Rent(DataType.Int64, [5], clear: true);
        pool.EndNode();
        Assert.AreSame(scratch.Buffer, pool.Rent(DataType.Int64, [5], clear: true).Buffer);
    }

    [TestMethod]
    public void DisownedOutputIsNotReusedUnlessAdopted()
    {
        var pool = new BufferPool();
        pool.BeginRun();
        var y = pool.Rent(DataType.Float, [8], clear: true);
        pool.AddRef(y.Buffer);
        pool.EndNode();
        pool.Disown(y.Buffer);
        pool.EndRun();

        pool.BeginRun();
        var next = pool.Rent(DataType.Float, [8], clear: true);
        Assert.AreNotSame(y.Buffer, next.Buffer, "a graph output belongs to the caller");
        pool.AddRef(next.Buffer);
        pool.EndNode();
        pool.Disown(next.Buffer);
        pool.Adopt(y.Buffer);   // from an earlier run: ignored
        pool.Adopt(new float[8]);   // never ours: ignored
        Assert.AreEqual(0, pool.FreeCount);
        pool.Adopt(next.Buffer);
        Assert.AreEqual(1, pool.FreeCount);
        pool.EndRun();
    }

    [TestMethod]
    public void UninitializedBuffersArePoisonedInTests()
    {
        bool saved = BufferPool.PoisonUninitialized;
        try
        {
            BufferPool.PoisonUninitialized = true;
            var pool = new BufferPool();
            pool.BeginRun();
            var t = pool.Rent(DataType.Float, [3], clear: false);
            Assert.IsTrue(t.ToArray<float>().All(float.IsNaN));
        }
        finally
        {
            BufferPool.PoisonUninitialized = saved;
        }
    }

    /// <summary>x → Relu → r; Reshape(r) → v (shares r's buffer); Neg(v) → n; Add(n, r) → y; Identity(n) → z; outputs y and z.</summary>
    private static OnnxModel AliasingModel()
    {
        var model = new OnnxModel { IrVersion = 8 };
        model.OpsetImports.Add(new OpsetImport("", 17));
        var g = model.Graph;
        g.Inputs.Add(new ValueInfo("x", DataType.Float, [Dim.Of(2), Dim.Of(3)]));
        g.Initializers["shape"] = OnnxTensor.FromArray(new long[] { 3, 2 }, 2);
        g.Initializers["back"] = OnnxTensor.FromArray(new long[] { 2, 3 }, 2);
        g.Nodes.Add(new Node("Relu", ["x"], ["r"], "relu", ""));
        g.Nodes.Add(new Node("Reshape", ["r", "shape"], ["v"], "view", ""));
        g.Nodes.Add(new Node("Neg", ["v"], ["n0"], "neg", ""));
        g.Nodes.Add(new Node("Reshape", ["n0", "back"], ["n"], "view_back", ""));
        g.Nodes.Add(new Node("Add", ["n", "r"], ["y"], "add", ""));
        g.Nodes.Add(new Node("Identity", ["n"], ["z"], "copy", ""));
        g.Outputs.Add(new ValueInfo("y", DataType.Float, null));
        g.Outputs.Add(new ValueInfo("z", DataType.Float, null));
        return model;
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void PlanRunTwiceGivesIdenticalOutputsAndLeavesEarlierOutputsAlone(int threads)
    {
        var plan = ExecutionPlan.Compile(AliasingModel(), new ExecutionOptions { Threads = threads });
        var x = OnnxTensor.FromArray(new float[] { -1, 2, -3, 4, 5, -6 }, 2, 3);
        var first = plan.Run(new Dictionary<string, OnnxTensor> { ["x"] = x });
        float[] y = [0, 0, 0, 0, 0, 0], z = [0, -2, 0, -4, -5, 0];   // y = −relu(x) + relu(x) = 0, z = −relu(x)
        CollectionAssert.AreEqual(y, first["y"].ToArray<float>());
        CollectionAssert.AreEqual(z, first["z"].ToArray<float>());

        var other = OnnxTensor.FromArray(new float[] { 9, 9, 9, 9, 9, 9 }, 2, 3);
        var second = plan.Run(new Dictionary<string, OnnxTensor> { ["x"] = other });
        CollectionAssert.AreEqual(new float[] { -9, -9, -9, -9, -9, -9 }, second["z"].ToArray<float>());
        CollectionAssert.AreEqual(z, first["z"].ToArray<float>(), "an output of the first run was overwritten");
        CollectionAssert.AreEqual(y, first["y"].ToArray<float>(), "an output of the first run was overwritten");
        CollectionAssert.AreEqual(new float[] { -1, 2, -3, 4, 5, -6 }, x.ToArray<float>(), "the input was written");

        var third = plan.Run(new Dictionary<string, OnnxTensor> { ["x"] = x });
        Assert.IsTrue(third["y"].ContentEquals(first["y"]) && third["z"].ContentEquals(first["z"]));
    }

    [TestMethod]
    public void RecycledOutputsAreReusedAndForeignTensorsIgnored()
    {
        var plan = ExecutionPlan.Compile(AliasingModel(), new ExecutionOptions { Threads = 1 });
        var x = OnnxTensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var feeds = new Dictionary<string, OnnxTensor> { ["x"] = x };
        var first = plan.Run(feeds);
        var kept = plan.Run(feeds);   // not recycled: must survive the runs below
        var keptCopy = kept["z"].Clone();
        var recycled = plan.Run(feeds);
        plan.Recycle([.. recycled.Values, x]);
        var after = plan.Run(feeds);
        Assert.IsTrue(after["z"].ContentEquals(first["z"]) && after["y"].ContentEquals(first["y"]));
        Assert.IsTrue(ReferenceEquals(after["z"].Buffer, recycled["z"].Buffer) || ReferenceEquals(after["y"].Buffer, recycled["z"].Buffer)
            || ReferenceEquals(after["z"].Buffer, recycled["y"].Buffer) || ReferenceEquals(after["y"].Buffer, recycled["y"].Buffer),
            "a recycled output buffer is reused");
        Assert.IsTrue(kept["z"].ContentEquals(keptCopy));
        CollectionAssert.AreEqual(new float[] { 1, 2, 3, 4, 5, 6 }, x.ToArray<float>());
    }

    [TestMethod]
    public void SteadyStateRunsAllocateLessThanOneIntermediate()
    {
        const int n = 3000;
        var plan = ExecutionPlan.Compile(ModelWithShapes(n), new ExecutionOptions { Threads = 1 });
        var feeds = new Dictionary<string, OnnxTensor> { ["x"] = OnnxTensor.FromArray(new float[2 * n], 2, n) };
        for (int i = 0; i < 3; i++) plan.Recycle(plan.Run(feeds).Values);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++) plan.Recycle(plan.Run(feeds).Values);
        long perRun = (GC.GetAllocatedBytesForCurrentThread() - before) / 10;
        Assert.IsTrue(perRun < 2 * n * sizeof(float), $"{perRun} bytes per run: intermediates are not pooled");
    }

    private static OnnxModel ModelWithShapes(int n)
    {
        var model = AliasingModel();
        model.Graph.Inputs[0] = new ValueInfo("x", DataType.Float, [Dim.Of(2), Dim.Of(n)]);
        model.Graph.Initializers["shape"] = OnnxTensor.FromArray(new long[] { n, 2 }, 2);
        model.Graph.Initializers["back"] = OnnxTensor.FromArray(new long[] { 2, n }, 2);
        return model;
    }
}
