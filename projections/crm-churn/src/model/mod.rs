//! The models, pure and deterministic: BG/NBD for purchases and dropout, Gamma-Gamma for
//! spend, and CLV from both. Every function takes its "now" as an argument; fits sum
//! over customers grouped by identical statistics in a fixed order, so the same
//! population gives the same parameters bit for bit.

pub mod bgnbd;
pub mod gamma_gamma;
mod optimize;
pub mod special;

use std::collections::BTreeMap;

pub use bgnbd::BgNbd;
pub use gamma_gamma::{GammaGamma, Spend};

/// One customer's purchase statistics in the model's time unit: `x` repeat purchases
/// (days with a purchase after the first), the last one `t_x` after the first, which was
/// `t` (the literature's T) before the calibration end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub x: u32,
    pub t_x: f64,
    pub t: f64,
}

/// A fitted model: its parameters, the maximised log-likelihood, the optimiser's
/// iterations and the customers it was fitted on. Only converged fits exist.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fitted<P> {
    pub params: P,
    pub log_likelihood: f64,
    pub iterations: u64,
    pub customers: u64,
}

/// Why there is no model (never a half-fitted one).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FitError {
    #[error("degenerate population: {0}")]
    Degenerate(String),
    #[error("the fit did not converge after {iterations} iterations: {reason}")]
    NotConverged { iterations: u64, reason: String },
    #[error("optimiser: {0}")]
    Optimizer(String),
}

/// Groups identical statistics (weights instead of repeats), in a fixed order.
#[must_use]
pub fn group(stats: impl IntoIterator<Item = Stats>) -> Vec<(Stats, u64)> {
    let mut groups: BTreeMap<(u32, u64, u64), u64> = BTreeMap::new();
    for s in stats {
        *groups
            .entry((s.x, s.t_x.to_bits(), s.t.to_bits()))
            .or_default() += 1;
    }
    groups
        .into_iter()
        .map(|((x, t_x, t), n)| {
            (
                Stats {
                    x,
                    t_x: f64::from_bits(t_x),
                    t: f64::from_bits(t),
                },
                n,
            )
        })
        .collect()
}

/// CLV over `months` months of `days_per_month` model time units each: the expected
/// spend times the expected purchases in each month, discounted monthly at `discount`.
#[must_use]
pub fn clv(
    bgnbd: &BgNbd,
    spend: f64,
    s: Stats,
    months: u32,
    units_per_month: f64,
    discount: f64,
) -> f64 {
    let mut total = 0.0;
    let mut before = 0.0;
    for k in 1..=months {
        let now = bgnbd.expected(s, f64::from(k) * units_per_month);
        total +=
            spend * (now - before) / (1.0 + discount).powi(i32::try_from(k).unwrap_or(i32::MAX));
        before = now;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_weights_identical_statistics_in_a_fixed_order() {
        let s = |x, t_x, t| Stats { x, t_x, t };
        let g = group([s(1, 2.0, 9.0), s(0, 0.0, 9.0), s(1, 2.0, 9.0)]);
        assert_eq!(g, vec![(s(0, 0.0, 9.0), 1), (s(1, 2.0, 9.0), 2)]);
    }

    #[test]
    fn clv_without_discount_is_spend_times_expected_purchases() {
        let m = BgNbd {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        };
        let s = Stats {
            x: 2,
            t_x: 30.0,
            t: 38.0,
        };
        let undiscounted = clv(&m, 40.0, s, 12, 4.0, 0.0);
        assert!((undiscounted - 40.0 * m.expected(s, 48.0)).abs() < 1e-9);
        assert!(clv(&m, 40.0, s, 12, 4.0, 0.01) < undiscounted);
    }
}
