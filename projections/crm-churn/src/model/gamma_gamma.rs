//! Gamma-Gamma spend (Fader, Hardie & Lee 2005; Hardie's note 025): each customer's
//! transaction values are Gamma(p, nu), nu ~ Gamma(q, gamma) across customers. Fitted over
//! repeat customers only (x > 0) on the mean of their repeat transactions.

use super::optimize::{Minimum, minimize};
use super::special::ln_gamma;
use super::{FitError, Fitted};

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

/// A repeat customer's spend statistics: `x` repeat transactions of mean value `m_x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spend {
    pub x: u32,
    pub m_x: f64,
}

impl GammaGamma {
    /// ln f of one customer's mean repeat spend.
    #[must_use]
    pub fn log_likelihood(&self, s: Spend) -> f64 {
        let Self { p, q, gamma } = *self;
        let x = f64::from(s.x);
        let px = p * x;
        ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q)
            + q * gamma.ln()
            + (px - 1.0) * s.m_x.ln()
            + px * x.ln()
            - (px + q) * (x * s.m_x + gamma).ln()
    }

    /// E[M]: the customer's expected average transaction value, a blend of the
    /// population mean p gamma / (q - 1) and their own mean (needs q > 1). Without
    /// repeat transactions, the population mean.
    #[must_use]
    pub fn expected_spend(&self, s: Spend) -> f64 {
        let Self { p, q, gamma } = *self;
        let x = f64::from(s.x);
        p * (gamma + x * s.m_x) / (p * x + q - 1.0)
    }
}

/// Maximum-likelihood fit over the repeat customers' spends (each with a weight).
///
/// # Errors
/// Fewer than two repeat customers with a positive mean, or no convergence.
pub fn fit(spends: &[(Spend, u64)]) -> Result<Fitted<GammaGamma>, FitError> {
    let usable: Vec<(Spend, u64)> = spends
        .iter()
        .copied()
        .filter(|(s, n)| s.x > 0 && s.m_x > 0.0 && *n > 0)
        .collect();
    let customers: u64 = usable.iter().map(|(_, n)| n).sum();
    if customers < 2 {
        return Err(FitError::Degenerate(format!(
            "{customers} repeat customer(s) with a positive spend: the spend model needs several"
        )));
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = usable.iter().map(|(s, n)| s.m_x * *n as f64).sum::<f64>() / customers as f64;
    if usable.iter().all(|(s, _)| s.m_x == usable[0].0.m_x) {
        // The likelihood grows without bound as the spend variance shrinks to zero.
        return Err(FitError::Degenerate(format!(
            "every repeat customer's mean spend is {mean}: no spread to fit the spend model to"
        )));
    }
    let params = |theta: &[f64]| GammaGamma {
        p: theta[0].exp(),
        q: theta[1].exp(),
        gamma: theta[2].exp(),
    };
    // Sorted by x so that the ln Gamma terms are computed once per distinct x; ln m_x
    // and ln x once for the whole fit.
    let mut usable = usable;
    usable.sort_by(|(a, _), (b, _)| a.x.cmp(&b.x).then(a.m_x.total_cmp(&b.m_x)));
    let logs: Vec<(f64, f64)> = usable
        .iter()
        .map(|(s, _)| (s.m_x.ln(), f64::from(s.x).ln()))
        .collect();
    let negative_ll = |theta: &[f64]| -> f64 {
        let GammaGamma { p, q, gamma } = params(theta);
        let constant = q * gamma.ln() - ln_gamma(q);
        let mut total = 0.0;
        let mut current: Option<(u32, f64)> = None;
        for ((s, n), (ln_m, ln_x)) in usable.iter().zip(&logs) {
            let x = f64::from(s.x);
            let px = p * x;
            let per_x = match current {
                Some((cx, v)) if cx == s.x => v,
                _ => {
                    let v = constant + ln_gamma(px + q) - ln_gamma(px) + px * ln_x;
                    current = Some((s.x, v));
                    v
                }
            };
            let ll = per_x + (px - 1.0) * ln_m - (px + q) * (x * s.m_x + gamma).ln();
            #[allow(clippy::cast_precision_loss)]
            let weight = *n as f64;
            total += weight * ll;
        }
        -total
    };
    let Minimum {
        at,
        value,
        iterations,
    } = minimize(&negative_ll, &[0.0, 0.0, mean.ln()])?;
    Ok(Fitted {
        params: params(&at),
        log_likelihood: -value,
        iterations,
        customers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CDNOW: GammaGamma = GammaGamma {
        p: 6.25,
        q: 3.74,
        gamma: 15.44,
    };

    #[test]
    fn expected_spend_blends_the_population_and_the_customer() {
        let g = CDNOW;
        let population = g.p * g.gamma / (g.q - 1.0);
        assert!((g.expected_spend(Spend { x: 0, m_x: 0.0 }) - population).abs() < 1e-12);
        // By hand for x = 2, m_x = 50: p (gamma + 100) / (2p + q - 1).
        let want = 6.25 * (15.44 + 100.0) / (12.5 + 2.74);
        assert!((g.expected_spend(Spend { x: 2, m_x: 50.0 }) - want).abs() < 1e-12);
        // Many transactions: close to the customer's own mean.
        let own = g.expected_spend(Spend { x: 500, m_x: 50.0 });
        assert!((own - 50.0).abs() < 0.5, "{own}");
    }

    #[test]
    fn the_likelihood_is_the_gamma_mixture_density() {
        // x = 1: the mean of one value z ~ Gamma(p, nu), nu ~ Gamma(q, gamma), has density
        // Gamma(p+q)/(Gamma(p)Gamma(q)) gamma^q z^(p-1) / (z + gamma)^(p+q).
        let g = CDNOW;
        let z: f64 = 30.0;
        let want = ln_gamma(g.p + g.q) - ln_gamma(g.p) - ln_gamma(g.q)
            + g.q * g.gamma.ln()
            + (g.p - 1.0) * z.ln()
            - (g.p + g.q) * (z + g.gamma).ln();
        assert!((g.log_likelihood(Spend { x: 1, m_x: z }) - want).abs() < 1e-12);
    }

    #[test]
    fn spends_without_spread_are_refused() {
        let e = fit(&[
            (Spend { x: 1, m_x: 30.0 }, 5),
            (Spend { x: 3, m_x: 30.0 }, 7),
        ]);
        assert!(matches!(e, Err(FitError::Degenerate(_))), "{e:?}");
    }

    #[test]
    fn too_few_repeat_customers_are_refused() {
        let e = fit(&[
            (Spend { x: 1, m_x: 10.0 }, 1),
            (Spend { x: 0, m_x: 0.0 }, 9),
        ]);
        assert!(matches!(e, Err(FitError::Degenerate(_))));
    }
}
