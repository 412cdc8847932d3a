using System.Diagnostics;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.Export;
using Backprop.Onnx.Import;
using Backprop.Onnx.IR;
using Backprop.Onnx.OnnxRuntime;
using Backprop.Onnx.Runtime;
using Backprop.Onnx.Tests.Support;
using Backprop.Onnx.Tests.Training;
using Backprop.Onnx.Training;

namespace Backprop.Onnx.Tests.Export;

/// <summary>
/// Standard-ONNX training models run by ONNX Runtime: the same loss and gradients as our executor (relative difference
/// ≤ 1e-4 in float32), valid for onnx.checker, and an ORT-only AdamW loop that reproduces our trainer.
/// </summary>
[TestClass]
public sealed class TrainingExportTests
{
    public static IEnumerable<object[]> Models => ReferenceModels.All.Where(m => m.HasReferences || m.Id == "lenet_fashion").Select(m => new object[] { m.Id });

    private static OnnxTensor RandomLike(OnnxTensor t, int seed)
    {
        var r = new Random(seed);
        var data = new float[t.ElementCount];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(r.NextDouble() * 2 - 1);
        return OnnxTensor.FromArray(data, t.Dims);
    }

    private static Dictionary<string, OnnxTensor> Inputs(ReferenceModel m, OnnxModel model)
    {
        if (m.HasReferences) return new Dictionary<string, OnnxTensor>(m.LoadInputs(), StringComparer.Ordinal);
        var x = OnnxTensor.FromArray(Enumerable.Range(0, 2 * 784).Select(i => (float)((i * 37 % 101) / 101.0)).ToArray(), 2, 1, 28, 28);
        return new Dictionary<string, OnnxTensor>(StringComparer.Ordinal) { [model.Graph.RuntimeInputs.First().Name] = x };
    }

    [TestMethod]
    [DynamicData(nameof(Models))]
    public void OnnxRuntime_RunsTheExportedTrainingModel_WithOurLossAndGradients(string id)
    {
        var reference = ReferenceModels.Get(id);
        var model = ModelImporter.Load(reference.ModelPath);
        var feeds = Inputs(reference, model);
        string output = model.Graph.Outputs[0].Name;
        var forward = ExecutionPlan.Compile(model).Run(feeds);
        feeds["target"] = RandomLike(forward[output], 5);
        var loss = new LossOptions { Kind = LossKind.MeanSquaredError, LabelName = "target", Output = output };

        var training = TrainingModels.BuildTrainingModel(model, loss);
        Assert.IsTrue(training.Graph.Nodes.All(n => n.Domain.Length == 0 || n.Domain == Backprop.Onnx.Ops.OpRegistry.BackpropDomain), "only standard ops and our functions");
        var theirs = OrtReference.Run(training, feeds);

        // Ours: the same loss attached, differentiated and run by our executor.
        var lossModel = Losses.Attach(model, loss);
        TrainingGraph.UseBatchStatistics(lossModel);
        var options = new GradientOptions { Outputs = { "loss" } };
        foreach (var o in training.Graph.Outputs.Skip(1)) options.Wrt.Add(o.Name[..^"_grad".Length]);
        var gm = ReverseMode.Differentiate(lossModel, options);
        var ours = ExecutionPlan.Compile(gm.Model).Run(feeds);

        var failures = new List<string>();
        foreach (var o in training.Graph.Outputs)
        {
            double d = OrtGradients.RelativeDifference(ours[o.Name], theirs[o.Name]);
            if (!(d <= 1e-4)) failures.Add($"{o.Name}: relative difference {d:E2}");
        }
        Assert.IsGreaterThan(1, training.Graph.Outputs.Count);
        Assert.IsEmpty(failures, string.Join("\n", failures));
    }

    [TestMethod]
    public void ExportedFiles_PassOnnxChecker()
    {
        const string python = "/usr/bin/python3";
        var check = Process.Start(new ProcessStartInfo(python, ["-c", "import onnx"]) { RedirectStandardError = true })!;
        check.WaitForExit();
        if (check.ExitCode != 0) Assert.Fail("python3-onnx is missing: apt-get install -y python3-onnx");

        string dir = Directory.CreateTempSubdirectory("export-training").FullName;
        try
        {
            var files = new List<string>();
            foreach (var row in Models)
            {
                var m = ReferenceModels.Get((string)row[0]);
                var model = ModelImporter.Load(m.ModelPath);
                string path = Path.Combine(dir, m.Id + ".train.onnx");
                ModelExporter.Save(TrainingModels.BuildTrainingModel(model, new LossOptions { Kind = LossKind.MeanSquaredError, LabelName = "target" }), path);
                files.Add(path);
            }
            var mlp = TrainerTests.Mlp();
            string ce = Path.Combine(dir, "mlp_ce.train.onnx");
            var training = TrainingModels.BuildTrainingModel(mlp, new LossOptions());
            ModelExporter.Save(training, ce);
            string opt = Path.Combine(dir, "mlp.optimizer.onnx");
            ModelExporter.Save(TrainingModels.BuildOptimizerModel([.. mlp.Graph.Initializers], new OptimizerOptions { Kind = OptimizerKind.AdamW, WeightDecay = 0.01 }), opt);
            files.Add(ce);
            files.Add(opt);
            var info = new ProcessStartInfo(python, ["-c", "import onnx, sys\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)\n    print('ok', p)", .. files])
            { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(info)!;
            string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.AreEqual(0, p.ExitCode, $"onnx.checker failed:\n{stdout}\n{stderr}");
            Assert.AreEqual(files.Count, stdout.Split('\n').Count(l => l.StartsWith("ok ", StringComparison.Ordinal)));
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void AnOnnxRuntimeOnlyLoop_ReproducesTheTrainerAfter20AdamWSteps()
    {
        var data = FashionMnist.Load(FashionMnist.DefaultDirectory, train: true, limit: 640);
        var optimizer = new OptimizerOptions { Kind = OptimizerKind.AdamW, LearningRate = 1e-3, WeightDecay = 0.01 };
        var model = TrainerTests.Mlp();
        var trainer = new Trainer(model, new TrainerOptions { BatchSize = 32, Optimizer = optimizer });
        var training = TrainingModels.BuildTrainingModel(model, new LossOptions());
        var parameters = trainer.TrainableParameters.Select(p => new KeyValuePair<string, OnnxTensor>(p, model.Graph.Initializers[p])).ToList();
        var step = TrainingModels.BuildOptimizerModel(parameters, optimizer);
        using var trainSession = OrtReferenceSession.Load(ModelExporter.ToBytes(training));
        using var stepSession = OrtReferenceSession.Load(ModelExporter.ToBytes(step));

        var state = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var (p, t) in parameters)
        {
            state[p] = t.Clone();
            state[p + ".m"] = OnnxTensor.Zeros(t.ElementType, t.Shape);
            state[p + ".v"] = OnnxTensor.Zeros(t.ElementType, t.Shape);
        }
        for (int s = 0; s < 20; s++)
        {
            var (x, y) = data.GetBatch(Enumerable.Range(s * 32, 32).ToArray());
            trainer.TrainStep(x, y);

            var feeds = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal) { ["input"] = x, ["labels"] = y };
            foreach (var (p, _) in parameters) feeds[p] = state[p];
            var grads = trainSession.Run(feeds);
            var stepFeeds = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal)
            {
                ["learning_rate"] = OnnxTensor.Scalar((float)optimizer.LearningRate),
                ["step"] = OnnxTensor.Scalar((long)(s + 1)),
            };
            foreach (var (p, _) in parameters)
            {
                stepFeeds[p] = state[p];
                stepFeeds[p + "_grad"] = grads[p + "_grad"];
                stepFeeds[p + ".m"] = state[p + ".m"];
                stepFeeds[p + ".v"] = state[p + ".v"];
            }
            var next = stepSession.Run(stepFeeds);
            foreach (var (p, _) in parameters)
            {
                state[p] = next[p + ".new"];
                state[p + ".m"] = next[p + ".m.new"];
                state[p + ".v"] = next[p + ".v.new"];
            }
        }
        foreach (var (p, _) in parameters)
        {
            double d = OrtGradients.RelativeDifference(trainer.Parameter(p), state[p]);
            Assert.IsLessThanOrEqualTo(1e-4, d, $"{p}: relative difference {d:E2} after 20 AdamW steps");
        }
    }
}
