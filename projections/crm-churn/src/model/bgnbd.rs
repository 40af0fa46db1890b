//! BG/NBD (Fader, Hardie & Lee 2005): purchases while alive are Poisson(lambda), lambda ~
//! Gamma(r, alpha) across customers; after each purchase a customer drops out with
//! probability p, p ~ Beta(a, b). Formulas as in `../shared/notes/churn-models.md`.

use super::optimize::{Minimum, minimize};
use super::special::{hyp2f1, ln_gamma, log_add_exp};
use super::{FitError, Fitted, Stats};

/// The population's parameters, in the time unit of the statistics they were fitted on.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

impl BgNbd {
    /// ln L of one customer's (x, t_x, T).
    #[must_use]
    pub fn log_likelihood(&self, s: Stats) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = f64::from(s.x);
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + s.t).ln();
        if s.x == 0 {
            return a1 + a2 + a3;
        }
        let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + s.t_x).ln();
        a1 + a2 + log_add_exp(a3, a4)
    }

    /// The probability the customer has not dropped out by T.
    #[must_use]
    pub fn p_alive(&self, s: Stats) -> f64 {
        if s.x == 0 {
            return 1.0;
        }
        let x = f64::from(s.x);
        1.0 / (1.0 + self.odds_dead(s, x))
    }

    /// a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x), in log space until the end.
    fn odds_dead(&self, s: Stats, x: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        (a.ln() - (b + x - 1.0).ln() + (r + x) * ((alpha + s.t).ln() - (alpha + s.t_x).ln())).exp()
    }

    /// Expected purchases of a new customer in (0, t] (a != 1; for a < 1 both factors
    /// are negative).
    #[must_use]
    pub fn expected_new(&self, t: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let z = t / (alpha + t);
        (a + b - 1.0) / (a - 1.0)
            * (1.0 - (alpha / (alpha + t)).powf(r) * hyp2f1(r, b, a + b - 1.0, z))
    }

    /// Expected purchases in (T, T+t] of a customer with history `s` (a != 1).
    #[must_use]
    pub fn expected(&self, s: Stats, t: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = f64::from(s.x);
        let z = t / (alpha + s.t + t);
        let ratio = ((alpha + s.t).ln() - (alpha + s.t + t).ln()) * (r + x);
        let num = (a + b + x - 1.0) / (a - 1.0)
            * (1.0 - ratio.exp() * hyp2f1(r + x, b + x, a + b + x - 1.0, z));
        let den = if s.x == 0 {
            1.0
        } else {
            1.0 + self.odds_dead(s, x)
        };
        num / den
    }
}

/// Maximum-likelihood fit over `population` (each distinct (x, t_x, T) with how many
/// customers have it), in log space from (r, alpha, a, b) = (1, mean T, 1, 1).
///
/// # Errors
/// An empty or degenerate population (no repeat purchase at all: a and b are not
/// identified), or an optimisation that does not converge.
pub fn fit(population: &[(Stats, u64)]) -> Result<Fitted<BgNbd>, FitError> {
    let customers: u64 = population.iter().map(|(_, n)| n).sum();
    if customers == 0 {
        return Err(FitError::Degenerate("no customers".into()));
    }
    if population.iter().all(|(s, _)| s.x == 0) {
        return Err(FitError::Degenerate(
            "no customer made a repeat purchase: the dropout parameters are not identified".into(),
        ));
    }
    #[allow(clippy::cast_precision_loss)]
    let mean_t = population.iter().map(|(s, n)| s.t * *n as f64).sum::<f64>() / customers as f64;
    let params = |theta: &[f64]| BgNbd {
        r: theta[0].exp(),
        alpha: theta[1].exp(),
        a: theta[2].exp(),
        b: theta[3].exp(),
    };
    let negative_ll = |theta: &[f64]| -> f64 { -total_log_likelihood(&params(theta), population) };
    let Minimum {
        at,
        value,
        iterations,
    } = minimize(&negative_ll, &[0.0, mean_t.max(1e-6).ln(), 0.0, 0.0])?;
    Ok(Fitted {
        params: params(&at),
        log_likelihood: -value,
        iterations,
        customers,
    })
}

/// The population's ln L: [`BgNbd::log_likelihood`] summed with weights, its ln Gamma
/// terms computed once per distinct x (they depend on nothing else) instead of once per
/// group. `population` is sorted by x ([`super::group`]'s order).
#[must_use]
pub fn total_log_likelihood(m: &BgNbd, population: &[(Stats, u64)]) -> f64 {
    let BgNbd { r, alpha, a, b } = *m;
    let constant = r * alpha.ln() - ln_gamma(r) + ln_gamma(a + b) - ln_gamma(b);
    let mut total = 0.0;
    let mut current: Option<(u32, f64, f64)> = None;
    for (s, n) in population {
        let x = f64::from(s.x);
        let (per_x, ln_dead) = match current {
            Some((cx, per_x, ln_dead)) if cx == s.x => (per_x, ln_dead),
            _ => {
                let per_x = constant + ln_gamma(r + x) + ln_gamma(b + x) - ln_gamma(a + b + x);
                let ln_dead = if s.x > 0 {
                    a.ln() - (b + x - 1.0).ln()
                } else {
                    0.0
                };
                current = Some((s.x, per_x, ln_dead));
                (per_x, ln_dead)
            }
        };
        let a3 = -(r + x) * (alpha + s.t).ln();
        let ll = if s.x == 0 {
            per_x + a3
        } else {
            per_x + log_add_exp(a3, ln_dead - (r + x) * (alpha + s.t_x).ln())
        };
        #[allow(clippy::cast_precision_loss)]
        let weight = *n as f64;
        total += weight * ll;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const CDNOW: BgNbd = BgNbd {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };

    fn s(x: u32, t_x: f64, t: f64) -> Stats {
        Stats { x, t_x, t }
    }

    #[test]
    fn the_likelihood_of_a_customer_without_repeat_purchases_is_its_closed_form() {
        // x = 0: ln L = r ln(alpha) - r ln(alpha+T) (the Beta terms cancel).
        let p = CDNOW;
        let want = p.r * p.alpha.ln() - p.r * (p.alpha + 30.0).ln();
        assert!((p.log_likelihood(s(0, 0.0, 30.0)) - want).abs() < 1e-12);
    }

    #[test]
    fn the_likelihood_with_repeat_purchases_adds_both_branches() {
        // x = 1, t_x = 10, T = 30 by hand: L = B(a, b+1)/B(a, b) ... written out:
        let p = CDNOW;
        let (r, al, a, b) = (p.r, p.alpha, p.a, p.b);
        let a1 = r * al.ln() + (r).ln(); // Gamma(r+1)/Gamma(r) = r
        let a2 = (b / (a + b)).ln(); // B(a, b+1)/B(a, b)
        let alive = (-(r + 1.0) * (al + 30.0).ln()).exp();
        let dead = a / b * (-(r + 1.0) * (al + 10.0).ln()).exp();
        let want = a1 + a2 + (alive + dead).ln();
        assert!((p.log_likelihood(s(1, 10.0, 30.0)) - want).abs() < 1e-12);
    }

    #[test]
    fn p_alive_is_one_without_repeats_and_falls_with_silence() {
        let p = CDNOW;
        assert_eq!(p.p_alive(s(0, 0.0, 38.0)), 1.0);
        // By hand: 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).
        let want =
            1.0 / (1.0 + 0.793 / (2.426 + 1.0) * ((4.414 + 38.0f64) / (4.414 + 20.0)).powf(2.243));
        assert!((p.p_alive(s(2, 20.0, 38.0)) - want).abs() < 1e-12);
        // The same customer, the last purchase longer ago: less likely alive.
        assert!(p.p_alive(s(2, 5.0, 38.0)) < p.p_alive(s(2, 20.0, 38.0)));
        // A recent purchase: nearly certainly alive.
        assert!(p.p_alive(s(5, 38.0, 38.0)) > 0.7);
    }

    #[test]
    fn expected_purchases_grow_with_the_horizon_and_vanish_at_zero() {
        let p = CDNOW;
        assert!(p.expected_new(0.0).abs() < 1e-12);
        assert!(p.expected(s(3, 30.0, 38.0), 0.0).abs() < 1e-12);
        let ys: Vec<f64> = [1.0, 10.0, 39.0, 78.0, 500.0]
            .iter()
            .map(|t| p.expected(s(3, 30.0, 38.0), *t))
            .collect();
        assert!(ys.windows(2).all(|w| w[0] < w[1]), "{ys:?}");
        // An active repeat buyer is expected to buy more than a new customer.
        assert!(p.expected(s(3, 36.0, 38.0), 39.0) > p.expected_new(39.0));
        // At first a new customer buys at the population's mean rate r/alpha (nobody
        // has dropped out yet); a < 1 here, where the formula holds as well.
        let dt = 1e-4;
        let slope = p.expected_new(dt) / dt;
        assert!((slope - p.r / p.alpha).abs() < 1e-4, "{slope}");
    }

    #[test]
    fn the_population_sum_equals_the_customers_likelihoods() {
        let population = super::super::group([
            s(0, 0.0, 30.0),
            s(0, 0.0, 12.0),
            s(1, 3.0, 30.0),
            s(1, 3.0, 30.0),
            s(4, 20.0, 25.0),
            s(9, 29.0, 30.0),
        ]);
        #[allow(clippy::cast_precision_loss)]
        let each: f64 = population
            .iter()
            .map(|(c, n)| *n as f64 * CDNOW.log_likelihood(*c))
            .sum();
        let total = total_log_likelihood(&CDNOW, &population);
        assert!(
            (total - each).abs() < 1e-9 * each.abs(),
            "{total} vs {each}"
        );
    }

    #[test]
    fn a_population_without_repeat_purchases_is_refused() {
        let e = fit(&[(s(0, 0.0, 10.0), 50)]).unwrap_err();
        assert!(matches!(e, FitError::Degenerate(_)), "{e}");
        assert!(matches!(fit(&[]).unwrap_err(), FitError::Degenerate(_)));
    }
}
