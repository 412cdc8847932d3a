using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Tests.Runtime;

/// <summary>
/// The pool's cached tensor wrappers: a buffer rented in turn as two shapes of one length (Size's [] and Shape's [1])
/// gets back the wrapper of each shape without allocating, and every rent has the shape and type asked for.
/// </summary>
[TestClass]
public sealed class BufferPoolWrapperTests
{
    [TestMethod]
    public void TwoShapesTakingTurns_ReuseTheirWrappers()
    {
        var pool = new BufferPool();
        OnnxTensor RentAndFree(DataType type, ReadOnlySpan<int> shape)
        {
            var t = pool.Rent(type, shape, clear: true);
            pool.EndNode();   // no slot holds it: back to the free list
            return t;
        }
        // Shapes as arrays made once: a collection expression argument may allocate per call in Debug builds.
        int[] none = [], one = [1];
        pool.BeginRun();
        var scalar = RentAndFree(DataType.Int64, none);
        var vector = RentAndFree(DataType.Int64, one);
        Assert.AreSame(scalar.Buffer, vector.Buffer);
        for (int i = 0; i < 3; i++)
        {
            Assert.AreSame(scalar, RentAndFree(DataType.Int64, none));
            Assert.AreSame(vector, RentAndFree(DataType.Int64, one));
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++) { RentAndFree(DataType.Int64, none); RentAndFree(DataType.Int64, one); }
        Assert.AreEqual(0L, GC.GetAllocatedBytesForCurrentThread() - before);
        // A third shape or another type of the same storage still gets a wrapper of its own shape and type.
        var matrix = RentAndFree(DataType.Int64, [1, 1]);
        CollectionAssert.AreEqual(new[] { 1, 1 }, matrix.Shape.ToArray());
        var doubles = RentAndFree(DataType.Double, [1]);
        Assert.AreEqual(DataType.Double, doubles.ElementType);
        Assert.AreEqual(DataType.Int64, RentAndFree(DataType.Int64, [1]).ElementType);
        CollectionAssert.AreEqual(Array.Empty<int>(), RentAndFree(DataType.Int64, []).Shape.ToArray());
        pool.EndRun();
    }

    /// <summary>Attention reshapes one buffer length as several shapes in turn ([B,T,C], [B,T,H,D], [B,H,T,D], [B·T,C]).</summary>
    [TestMethod]
    public void FourShapesTakingTurns_ReuseTheirWrappers()
    {
        var pool = new BufferPool();
        OnnxTensor RentAndFree(int[] shape)
        {
            var t = pool.Rent(DataType.Float, shape, clear: false);
            pool.EndNode();
            return t;
        }
        int[][] shapes = [[2, 3, 4], [2, 3, 2, 2], [2, 2, 3, 2], [6, 4]];
        pool.BeginRun();
        var first = shapes.Select(RentAndFree).ToArray();
        for (int i = 0; i < 3; i++)
            for (int s = 0; s < shapes.Length; s++) Assert.AreSame(first[s], RentAndFree(shapes[s]));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++)
            foreach (var shape in shapes) RentAndFree(shape);
        Assert.AreEqual(0L, GC.GetAllocatedBytesForCurrentThread() - before);
        // The other order works as well, and each rent has the shape asked for.
        for (int s = shapes.Length - 1; s >= 0; s--) CollectionAssert.AreEqual(shapes[s], RentAndFree(shapes[s]).Shape.ToArray());
        pool.EndRun();
    }
}
