namespace Backprop.Onnx.Ops;

/// <summary>
/// The Gauss error function erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt to double precision (.NET has none).
/// <list type="bullet">
/// <item>|x| &lt;= 1: the Maclaurin series erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)) (Abramowitz and
/// Stegun 7.1.5) to 20 terms by Horner's rule in x^2; its terms shrink from the first, so little cancels.</item>
/// <item>1 &lt; |x| &lt; 6: erf = 1 - exp(-x^2) * q(x) with q = erfc * exp(x^2), smooth and slowly varying, as Chebyshev
/// interpolants of degree 24 on [1,2], [2,3], [3,4], [4,6]. Their coefficients are fitted from erfc computed below 4 by
/// the Maclaurin series summed in decimal (28 digits, so its cancellation costs nothing) and above by erfc's continued
/// fraction (A&amp;S 7.1.14, modified Lentz method), which converges quickly there. They are stored as literals so the
/// kernel does no start-up work; <see cref="FitTail"/> recomputes them and a test checks that they agree.</item>
/// <item>|x| &gt;= 6: ±1 (erfc(6) &lt; 3e-17).</item>
/// </list>
/// The pieces agree to rounding where they meet, which keeps float64 finite differences of erf smooth.
/// </summary>
internal static partial class ErfFunction
{
    private const double TwoOverSqrtPi = 1.1283791670955126;
    private const double OneOverSqrtPi = 0.5641895835477563;

    /// <summary>Degree of each tail interpolant.</summary>
    internal const int Degree = 24;

    /// <summary>The tail intervals' break points.</summary>
    internal static ReadOnlySpan<double> TailBreaks => [1, 2, 3, 4, 6];

    /// <summary>erf(x); NaN for NaN, ±1 for ±infinity.</summary>
    public static double Erf(double x)
    {
        double a = Math.Abs(x);
        if (!(a < 6)) return double.IsNaN(x) ? x : Math.CopySign(1.0, x);
        if (a <= 1) return x * Small(x * x);
        int i = a < 2 ? 0 : a < 3 ? 1 : a < 4 ? 2 : 3;
        double lo = TailBreaks[i], hi = TailBreaks[i + 1];
        double q = Clenshaw(TailCoefficients.Slice(i * (Degree + 1), Degree + 1), (2 * a - lo - hi) / (hi - lo));
        return Math.CopySign(1.0 - ExpMinusSquare(a) * q, x);
    }

    /// <summary>erf(x) without the interpolants, from the values they are fitted to (slow; for tests).</summary>
    internal static double Accurate(double x)
    {
        double a = Math.Abs(x);
        if (!(a < 6)) return double.IsNaN(x) ? x : Math.CopySign(1.0, x);
        return a <= 1 ? x * Small(x * x) : Math.CopySign(1.0 - Erfc(a), x);
    }

    /// <summary>The Maclaurin coefficients 2/sqrt(pi) * (-1)^n / (n! (2n+1)), n = 0..19.</summary>
    internal static double[] MaclaurinCoefficients() => [.. Enumerable.Range(0, 20).Select(n =>
        TwoOverSqrtPi * (n % 2 == 0 ? 1 : -1) / (Enumerable.Range(1, n).Aggregate(1.0, (f, k) => f * k) * (2 * n + 1)))];

    /// <summary>Fits the tail interpolants: q = erfc * exp(x^2) at the Chebyshev points of the first kind of each interval.</summary>
    internal static double[] FitTail()
    {
        var breaks = TailBreaks.ToArray();
        var all = new List<double>();
        for (int i = 0; i + 1 < breaks.Length; i++)
            all.AddRange(ChebyshevFit(breaks[i], breaks[i + 1], Degree, x => Erfc(x) / ExpMinusSquare(x)));
        return [.. all];
    }

    /// <summary>The stored constants (for the test that recomputes them).</summary>
    internal static (double[] Small, double[] Tail) StoredCoefficients() => (SmallCoefficients.ToArray(), TailCoefficients.ToArray());

    private static double Small(double u)
    {
        var c = SmallCoefficients;
        double p = c[^1];
        for (int n = c.Length - 2; n >= 0; n--) p = Math.FusedMultiplyAdd(p, u, c[n]);
        return p;
    }

    /// <summary>erfc(x) for 1 &lt;= x &lt; 6: the decimal series below 4, the continued fraction above.</summary>
    private static double Erfc(double x) => x < 4 ? ErfcInDecimal(x) : ErfcContinuedFraction(x);

    /// <summary>erfc(x) = 1 - 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)) in decimal arithmetic.</summary>
    private static double ErfcInDecimal(double x)
    {
        // The exact binary value of x ((decimal)x would keep 15 significant digits).
        long bits = BitConverter.DoubleToInt64Bits(x);
        int exponent = (int)((bits >> 52) & 0x7FF);
        decimal z = (bits & 0xFFFFFFFFFFFFFL) | (1L << 52);
        for (int e = exponent - 1075; e < 0; e++) z /= 2;
        decimal z2 = z * z, term = z, sum = z;
        for (int n = 1; n < 1000; n++)
        {
            term = -term * z2 / n;
            decimal add = term / (2 * n + 1);
            if (add == 0) break;
            sum += add;
        }
        return (double)(1m - sum * 1.1283791670955125738961589031m);
    }

    /// <summary>erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).</summary>
    private static double ErfcContinuedFraction(double x)
    {
        const double Tiny = 1e-300;
        double f = x, c = x, d = 0;
        for (int n = 1; n < 20000; n++)
        {
            double an = 0.5 * n;
            d = x + an * d;
            if (Math.Abs(d) < Tiny) d = Tiny;
            d = 1 / d;
            c = x + an / c;
            if (Math.Abs(c) < Tiny) c = Tiny;
            double delta = c * d;
            f *= delta;
            if (delta == 1) break;
        }
        return OneOverSqrtPi * ExpMinusSquare(x) / f;
    }

    /// <summary>exp(-x^2) without the rounding error of x^2 in the exponent (x^2 = hi + lo exactly, by a fused multiply-add).</summary>
    private static double ExpMinusSquare(double x)
    {
        double hi = x * x, lo = Math.FusedMultiplyAdd(x, x, -hi);
        return Math.Exp(-hi) * (1 - lo);
    }

    /// <summary>Chebyshev coefficients of the interpolant of f on [lo, hi] at the degree + 1 Chebyshev points of the first kind.</summary>
    private static double[] ChebyshevFit(double lo, double hi, int degree, Func<double, double> f)
    {
        double mid = (lo + hi) / 2, half = (hi - lo) / 2;
        int n = degree + 1;
        var values = new double[n];
        for (int k = 0; k < n; k++) values[k] = f(mid + half * Math.Cos(Math.PI * (k + 0.5) / n));
        var c = new double[n];
        for (int j = 0; j < n; j++)
        {
            double s = 0;
            for (int k = 0; k < n; k++) s += values[k] * Math.Cos(Math.PI * j * (k + 0.5) / n);
            c[j] = 2.0 * s / n;
        }
        c[0] /= 2;
        return c;
    }

    /// <summary>sum_j c_j T_j(t) by Clenshaw's recurrence, t in [-1, 1].</summary>
    private static double Clenshaw(ReadOnlySpan<double> c, double t)
    {
        double t2 = 2 * t, b1 = 0, b2 = 0;
        for (int j = c.Length - 1; j >= 1; j--)
        {
            double b0 = Math.FusedMultiplyAdd(t2, b1, c[j] - b2);
            b2 = b1;
            b1 = b0;
        }
        return Math.FusedMultiplyAdd(t, b1, c[0] - b2);
    }
}
