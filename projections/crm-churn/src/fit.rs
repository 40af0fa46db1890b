//! Both models fitted on every customer's statistics as of a calibration end.

use crate::model::{self, BgNbd, FitError, Fitted, GammaGamma, Spend, Stats};
use crate::purchases::Purchases;

/// The time unit of every statistic and parameter.
pub const TIME_UNIT: &str = "day";

/// A fit of both models at one calibration end.
#[derive(Clone, Debug, PartialEq)]
pub struct ChurnFit {
    /// Business time, microseconds.
    pub calibration_end: i64,
    pub bgnbd: Fitted<BgNbd>,
    pub gamma_gamma: Fitted<GammaGamma>,
    /// Customers with a purchase by the calibration end, and those with a repeat day.
    pub customers: u64,
    pub repeat_customers: u64,
}

/// Fits BG/NBD on every customer with a purchase by `calibration_end` and Gamma-Gamma on
/// the repeat customers' spend in `currency`. The customers may come in any order: the
/// statistics are grouped and summed in a fixed order.
///
/// # Errors
/// As [`model::bgnbd::fit`] and [`model::gamma_gamma::fit`]: a degenerate population or
/// no convergence. Never a half-fitted model.
pub fn fit_at<'a>(
    customers: impl IntoIterator<Item = &'a Purchases>,
    calibration_end: i64,
    currency: &str,
) -> Result<ChurnFit, FitError> {
    let mut stats: Vec<Stats> = Vec::new();
    let mut spends: Vec<Spend> = Vec::new();
    for p in customers {
        if let Some((s, spend)) = p.stats(calibration_end, currency) {
            stats.push(s);
            spends.extend(spend);
        }
    }
    let repeat_customers = stats.iter().filter(|s| s.x > 0).count() as u64;
    let bgnbd = model::bgnbd::fit(&model::group(stats.iter().copied()))?;
    // Spends grouped like the statistics, for the same determinism.
    let mut grouped: std::collections::BTreeMap<(u32, u64), u64> =
        std::collections::BTreeMap::new();
    for s in &spends {
        *grouped.entry((s.x, s.m_x.to_bits())).or_default() += 1;
    }
    let spends: Vec<(Spend, u64)> = grouped
        .into_iter()
        .map(|((x, m), n)| {
            (
                Spend {
                    x,
                    m_x: f64::from_bits(m),
                },
                n,
            )
        })
        .collect();
    let gamma_gamma = model::gamma_gamma::fit(&spends)?;
    Ok(ChurnFit {
        calibration_end,
        customers: stats.len() as u64,
        repeat_customers,
        bgnbd,
        gamma_gamma,
    })
}
