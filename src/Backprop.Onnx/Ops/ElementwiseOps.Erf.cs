namespace Backprop.Onnx.Ops;

/// <summary>
/// The Gauss error function erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt to double precision (.NET has none).
/// Small |x|: the series erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n (2x^2)^n x / (1*3*...*(2n+1)) (Abramowitz and Stegun
/// 7.1.6), whose terms are all positive so nothing cancels. Large |x|: erf = 1 - erfc with erfc from its continued
/// fraction (A&amp;S 7.1.14) evaluated by the modified Lentz method. Both are smooth to rounding, which the float64
/// finite-difference gradient checks need.
/// </summary>
internal static class ErfFunction
{
    private const double TwoOverSqrtPi = 1.1283791670955126;
    private const double OneOverSqrtPi = 0.5641895835477563;
    private const double SeriesLimit = 2.5;

    /// <summary>erf(x); NaN for NaN, ±1 for ±infinity.</summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return x;
        double a = Math.Abs(x);
        if (a >= 6) return Math.CopySign(1.0, x);
        if (a < SeriesLimit) return Series(x);
        return Math.CopySign(1.0 - ErfcContinuedFraction(a), x);
    }

    private static double Series(double x)
    {
        double x2 = x * x, twoX2 = 2 * x2;
        double term = x, sum = x;
        for (int n = 1; n < 200; n++)
        {
            term *= twoX2 / (2 * n + 1);
            sum += term;
            if (Math.Abs(term) <= Math.Abs(sum) * 1e-17) break;
        }
        return TwoOverSqrtPi * Math.Exp(-x2) * sum;
    }

    /// <summary>erfc(x) for x &gt;= <see cref="SeriesLimit"/>: exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).</summary>
    private static double ErfcContinuedFraction(double x)
    {
        const double Tiny = 1e-300;
        double f = x, c = x, d = 0;
        for (int n = 1; n < 500; n++)
        {
            double an = 0.5 * n;
            d = x + an * d;
            if (Math.Abs(d) < Tiny) d = Tiny;
            d = 1 / d;
            c = x + an / c;
            if (Math.Abs(c) < Tiny) c = Tiny;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        return OneOverSqrtPi * Math.Exp(-x * x) / f;
    }
}
