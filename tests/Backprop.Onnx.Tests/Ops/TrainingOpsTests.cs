using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Verification;

namespace Backprop.Onnx.Tests.Ops;

[TestClass]
public sealed class TrainingOpsTests
{
    [TestMethod]
    [DataRow("test_adam")]
    [DataRow("test_adagrad")]
    [DataRow("test_adagrad_multiple")]
    [DataRow("test_momentum")]
    [DataRow("test_momentum_multiple")]
    [DataRow("test_nesterov_momentum")]
    public void OptimizerOp_MatchesOnnxBackendTestData(string test)
    {
        TestPaths.RequireOnnxTestData();
        var result = Conformance.Run(Path.Combine(TestPaths.NodeTests, test));
        Assert.AreEqual(ConformanceStatus.Pass, result.Status, result.Reason);
    }

    /// <summary>
    /// test_adam_multiple's expected outputs were computed with epsilon = 1e-2 while its node leaves epsilon at the
    /// spec default (1e-6). Prove both halves independently of our kernel: the expected X1_new equals the spec formula
    /// with epsilon 1e-2, and our output equals the same formula with 1e-6.
    /// </summary>
    [TestMethod]
    public void AdamMultiple_TestDataUsesAnEpsilonTheNodeDoesNotSet()
    {
        TestPaths.RequireOnnxTestData();
        string dir = Path.Combine(TestPaths.NodeTests, "test_adam_multiple");
        var model = ModelImporter.Load(Path.Combine(dir, "model.onnx"));
        Assert.IsFalse(model.Graph.Nodes[0].HasAttribute("epsilon"));
        var (inputs, expected) = Conformance.LoadDataSet(model.Graph, Path.Combine(dir, "test_data_set_0"));

        // Spec formula (ai.onnx.preview.training Adam, T = 0: no bias correction) for X1 = 1, G1 = -1, V1 = 2, H1 = 0.5.
        static double X1New(double epsilon)
        {
            double g = 0.001 * 1 + -1, v = 0.95 * 2 + 0.05 * g, h = 0.85 * 0.5 + 0.15 * g * g;
            return 1 - 0.1 * v / (Math.Sqrt(h) + epsilon);
        }
        Assert.AreEqual(X1New(1e-2), expected[0].GetDouble(0), 1e-6);
        var ours = ExecutionPlan.Compile(model).Run(inputs);
        Assert.AreEqual(X1New(1e-6), ours["X1_new"].GetDouble(0), 1e-6);
        Assert.AreEqual(ConformanceStatus.Unsupported, Conformance.Run(dir).Status);
    }
}
