using System.Globalization;
using System.Text;
using Backprop.Onnx.Autodiff;
using Backprop.Onnx.IR;
using Backprop.Onnx.Runtime;

namespace Backprop.Onnx.Verification;

/// <summary>Settings of a finite-difference gradient check.</summary>
public sealed class GradientCheckOptions
{
    /// <summary>Seed of the random cotangents and directions (printed in every report).</summary>
    public int Seed { get; init; }

    /// <summary>Relative step: each element moves by <c>Step · max(1, |x|)</c> (directions by <c>Step · max(1, ‖x‖∞)</c>). Default 1e-6.</summary>
    public double Step { get; init; } = 1e-6;

    /// <summary>Relative tolerance on |analytic − numeric| against the tensor's largest numeric gradient. Default 1e-5.</summary>
    public double RelativeTolerance { get; init; } = 1e-5;

    /// <summary>Absolute tolerance. Default 1e-7.</summary>
    public double AbsoluteTolerance { get; init; } = 1e-7;

    /// <summary>Tensors with at most this many elements are checked element by element; larger ones by random directions. Default 64.</summary>
    public int MaxElementwise { get; init; } = 64;

    /// <summary>Random directions per large tensor. Default 4.</summary>
    public int Directions { get; init; } = 4;

    /// <summary>Values to check (default: every float initializer and graph input).</summary>
    public IList<string> Wrt { get; } = [];
}

/// <summary>The check of one tensor's gradient.</summary>
/// <param name="Name">The tensor.</param>
/// <param name="Elements">Its element count.</param>
/// <param name="Method"><c>elementwise</c> (every element perturbed) or <c>directional</c> (⟨t, VJP(c)⟩ = ⟨JVP(t), c⟩ on random t).</param>
/// <param name="MaxAbsError">Largest |analytic − numeric|.</param>
/// <param name="MaxRelError">Largest |analytic − numeric| / max(|numeric|, |analytic|, 1e-12).</param>
/// <param name="Passed">Within tolerance everywhere.</param>
public sealed record TensorGradientCheck(string Name, long Elements, string Method, double MaxAbsError, double MaxRelError, bool Passed);

/// <summary>A gradient-check report: one line per tensor, and the seed.</summary>
public sealed class GradientCheckReport
{
    internal GradientCheckReport(int seed, IReadOnlyList<TensorGradientCheck> tensors, string notes)
    {
        Seed = seed;
        Tensors = tensors;
        Notes = notes;
    }

    /// <summary>The seed the cotangents and directions were drawn with.</summary>
    public int Seed { get; }

    /// <summary>One entry per checked tensor.</summary>
    public IReadOnlyList<TensorGradientCheck> Tensors { get; }

    /// <summary>Findings of the differentiability analysis (unreachable tensors…), or empty.</summary>
    public string Notes { get; }

    /// <summary>True when at least one tensor was checked and every tensor passed.</summary>
    public bool Passed => Tensors.Count > 0 && Tensors.All(t => t.Passed);

    /// <summary>A table: tensor, elements, method, max abs error, max rel error, pass/FAIL; then the seed.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var t in Tensors)
            sb.AppendLine(CultureInfo.InvariantCulture, $"{(t.Passed ? "pass" : "FAIL")} {t.Name} elements={t.Elements} method={t.Method} max_abs_err={t.MaxAbsError:E3} max_rel_err={t.MaxRelError:E3}");
        if (Notes.Length > 0) sb.AppendLine(Notes);
        if (Tensors.Count == 0) sb.AppendLine("no floating-point tensor was checked");
        sb.Append(CultureInfo.InvariantCulture, $"seed={Seed} {(Passed ? "passed" : "FAILED")}");
        return sb.ToString();
    }
}

/// <summary>
/// Checks reverse-mode gradients against central finite differences in float64:
/// f(x) = Σ_o ⟨c_o, y_o(x)⟩ with seeded random cotangents c_o, and ∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h;
/// for large tensors, random directions t with ⟨t, VJP(c)⟩ ≈ (f(x + h t) − f(x − h t)) / 2h (JAX's check_vjp identity).
/// </summary>
public static class GradientCheck
{
    /// <summary>Runs the check; the model is converted to float64 first.</summary>
    /// <param name="model">The model (any float precision).</param>
    /// <param name="inputs">Runtime inputs by name (float inputs are converted to float64).</param>
    /// <param name="options">Seed, step, tolerances; null for defaults.</param>
    /// <exception cref="DifferentiationException">The model cannot be differentiated.</exception>
    public static GradientCheckReport Run(OnnxModel model, IReadOnlyDictionary<string, OnnxTensor> inputs, GradientCheckOptions? options = null)
    {
        options ??= new GradientCheckOptions();
        if (!(options.Step > 0) || options.MaxElementwise < 0 || options.Directions < 1 || !(options.RelativeTolerance >= 0) || !(options.AbsoluteTolerance >= 0))
            throw new ArgumentException("Gradient check options: Step must be positive, MaxElementwise non-negative, Directions at least 1, tolerances non-negative.");
        var m64 = Precision.ToDouble(model);
        var feeds = inputs.ToDictionary(kv => kv.Key, kv => Precision.ToDouble(kv.Value), StringComparer.Ordinal);
        var gradOptions = new GradientOptions { SeedInputs = true };
        foreach (var w in options.Wrt) gradOptions.Wrt.Add(w);
        var gm = ReverseMode.Differentiate(m64, gradOptions);

        var forward = ExecutionPlan.Compile(m64, new ExecutionOptions { Threads = 1 });
        var firstOutputs = forward.Run(feeds);
        var random = new Random(options.Seed);
        var cotangents = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var (output, seedName) in gm.Seeds)
        {
            var y = firstOutputs[output];
            var c = new double[y.ElementCount];
            for (int i = 0; i < c.Length; i++) c[i] = random.NextDouble() * 2 - 1;
            cotangents[output] = OnnxTensor.FromArray(c, y.Dims);
        }
        var gradFeeds = new Dictionary<string, OnnxTensor>(feeds, StringComparer.Ordinal);
        foreach (var (output, seedName) in gm.Seeds) gradFeeds[seedName] = cotangents[output];
        var gradPlan = ExecutionPlan.Compile(gm.Model, new ExecutionOptions { Threads = 1 });
        var gradResults = gradPlan.Run(gradFeeds);

        // f(x+) - f(x-) as the sum of c * (y(x+) - y(x-)) element by element: output elements the perturbation does not
        // reach cancel exactly, so large unrelated values cannot swamp the difference.
        double Delta(Dictionary<string, OnnxTensor> plusFeeds, Dictionary<string, OnnxTensor> minusFeeds)
        {
            var plusOuts = forward.Run(plusFeeds);
            var minusOuts = forward.Run(minusFeeds);
            double sum = 0;
            foreach (var (name, c) in cotangents)
            {
                var yp = plusOuts[name].AsSpan<double>();
                var ym = minusOuts[name].AsSpan<double>();
                var cs = c.AsSpan<double>();
                for (int i = 0; i < cs.Length; i++) if (yp[i] != ym[i]) sum += cs[i] * (yp[i] - ym[i]);
            }
            return sum;
        }

        var checks = new List<TensorGradientCheck>();
        foreach (var (wrt, gradName) in gm.Gradients)
        {
            OnnxTensor x = feeds.TryGetValue(wrt, out var fed) ? fed : m64.Graph.Initializers.TryGetValue(wrt, out var init) ? init
                : throw new InvalidInputException($"'{wrt}' is neither an input nor an initializer: finite differences need to perturb it");
            if (x.ElementType != DataType.Double) continue;
            var analytic = gradResults[gradName].AsSpan<double>().ToArray();
            var xs = x.AsSpan<double>().ToArray();
            var numericValues = new List<double>();
            var analyticValues = new List<double>();
            double Difference(double[] plus, double[] minus) => Delta(
                new Dictionary<string, OnnxTensor>(feeds, StringComparer.Ordinal) { [wrt] = OnnxTensor.FromArray(plus, x.Dims) },
                new Dictionary<string, OnnxTensor>(feeds, StringComparer.Ordinal) { [wrt] = OnnxTensor.FromArray(minus, x.Dims) });
            string method;
            if (xs.Length <= options.MaxElementwise)
            {
                method = "elementwise";
                for (int i = 0; i < xs.Length; i++)
                {
                    double h = options.Step * Math.Max(1, Math.Abs(xs[i]));
                    var plus = (double[])xs.Clone(); plus[i] += h;
                    var minus = (double[])xs.Clone(); minus[i] -= h;
                    numericValues.Add(Difference(plus, minus) / (plus[i] - minus[i]));
                    analyticValues.Add(analytic[i]);
                }
            }
            else
            {
                method = "directional";
                double scale = Math.Max(1, xs.Max(Math.Abs));
                double h = options.Step * scale;
                for (int d = 0; d < options.Directions; d++)
                {
                    var t = new double[xs.Length];
                    for (int i = 0; i < t.Length; i++) t[i] = random.NextDouble() * 2 - 1;
                    var plus = new double[xs.Length];
                    var minus = new double[xs.Length];
                    double dot = 0;
                    for (int i = 0; i < t.Length; i++) { plus[i] = xs[i] + h * t[i]; minus[i] = xs[i] - h * t[i]; dot += t[i] * analytic[i]; }
                    numericValues.Add(Difference(plus, minus) / (2 * h));
                    analyticValues.Add(dot);
                }
            }
            double tensorScale = numericValues.Concat(analyticValues).Select(Math.Abs).DefaultIfEmpty(0).Max();
            double maxAbs = 0, maxRel = 0;
            bool ok = true;
            for (int i = 0; i < numericValues.Count; i++)
            {
                double a = analyticValues[i], n = numericValues[i];
                double err = Math.Abs(a - n);
                if (double.IsNaN(a) != double.IsNaN(n) || double.IsNaN(err)) { ok = false; maxAbs = double.NaN; continue; }
                maxAbs = Math.Max(maxAbs, err);
                maxRel = Math.Max(maxRel, err / Math.Max(Math.Max(Math.Abs(n), Math.Abs(a)), 1e-12));
                if (err > options.AbsoluteTolerance + options.RelativeTolerance * Math.Max(tensorScale, Math.Abs(n))) ok = false;
            }
            checks.Add(new TensorGradientCheck(wrt, xs.Length, method, maxAbs, maxRel, ok));
        }
        return new GradientCheckReport(options.Seed, checks, gm.Report.Issues.Count == 0 ? "" : gm.Report.ToString());
    }
}
