//! The special functions the models need: ln Gamma (from `libm`) and the Gauss
//! hypergeometric function 2F1 for z in [0, 1), which no well-kept Rust crate offers for
//! real parameters.

/// ln Gamma(x) for x > 0.
#[must_use]
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// ln(e^a + e^b) without overflow.
#[must_use]
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// Terms summed before the series is declared not converging.
const MAX_TERMS: usize = 100_000;

/// Gauss's hypergeometric function 2F1(a, b; c; z) for 0 <= z < 1 and c > 0.
///
/// The power series converges for |z| < 1 but slowly near 1. Where it does (z > 1/2) and
/// Euler's transformation `2F1(a,b;c;z) = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z)` has faster
/// falling terms (its numerator parameters are smaller), that side is summed instead. In
/// the models' use (c - a - b = a' - 1 + ... > -1) both sides are finite.
///
/// # Panics
/// Never for the models' arguments; `z` outside [0, 1) is a programming error.
#[must_use]
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    assert!((0.0..1.0).contains(&z), "2F1 needs 0 <= z < 1, got {z}");
    if z > 0.5 {
        let (ea, eb) = (c - a, c - b);
        // Euler's side when its terms shrink faster: |(c-a)(c-b)| < |ab|.
        if (ea * eb).abs() < (a * b).abs() {
            return (1.0 - z).powf(c - a - b) * series(ea, eb, c, z);
        }
    }
    series(a, b, c, z)
}

/// The power series sum_n (a)_n (b)_n / (c)_n z^n / n!, to double precision.
fn series(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 0..MAX_TERMS {
        #[allow(clippy::cast_precision_loss)]
        let n = n as f64;
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if term.abs() <= f64::EPSILON * sum.abs() {
            return sum;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // 2F1(1, 1; 2; z) = -ln(1-z)/z
        for z in [0.01, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999] {
            let want = -(1.0f64 - z).ln() / z;
            assert!(close(hyp2f1(1.0, 1.0, 2.0, z), want, 1e-12), "z {z}");
        }
        // 2F1(a, b; b; z) = (1-z)^-a
        for (a, z) in [(0.5, 0.2), (2.5, 0.8), (7.0, 0.95)] {
            let want = (1.0f64 - z).powf(-a);
            assert!(close(hyp2f1(a, 3.0, 3.0, z), want, 1e-12), "a {a} z {z}");
        }
        // 2F1(1/2, 1/2; 3/2; z^2) = asin(z)/z
        for z in [0.1f64, 0.6, 0.9, 0.99] {
            let want = z.asin() / z;
            assert!(close(hyp2f1(0.5, 0.5, 1.5, z * z), want, 1e-12), "z {z}");
        }
        assert_eq!(hyp2f1(3.0, 4.0, 5.0, 0.0), 1.0);
    }

    #[test]
    fn hyp2f1_takes_eulers_side_near_one_and_agrees_with_the_series() {
        // Large numerator parameters near z = 1 (a customer with many purchases, long
        // horizon): both sides agree where both converge.
        let (a, b, c, z) = (10.243, 12.426, 12.219, 0.93);
        let direct = series(a, b, c, z);
        let euler = (1.0f64 - z).powf(c - a - b) * series(c - a, c - b, c, z);
        assert!(close(direct, euler, 1e-10), "{direct} vs {euler}");
        assert!(close(hyp2f1(a, b, c, z), direct, 1e-10));
    }

    #[test]
    fn log_add_exp_is_stable() {
        assert!(close(
            log_add_exp(1000.0, 1000.0),
            1000.0 + 2f64.ln(),
            1e-15
        ));
        assert!(close(
            log_add_exp(-1000.0, -1001.0),
            -1000.0 + (-1f64).exp().ln_1p(),
            1e-15
        ));
        assert_eq!(log_add_exp(5.0, f64::NEG_INFINITY), 5.0);
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-14));
    }
}
