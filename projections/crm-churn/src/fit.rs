//! Both models fitted on every customer's statistics as of a calibration end.

use crm_domain::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{self, BgNbd, FitError, Fitted, GammaGamma, Spend, Stats};
use crate::purchases::Purchases;

/// The time unit of the statistics, the parameters and the log-likelihood. The
/// purchases are counted in UTC days either way; weeks are days / 7 (as in the CDNOW
/// data of the BG/NBD paper), which scales alpha by 7 and leaves r, a, b, P(alive) and
/// every expectation over the same span unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    #[default]
    Day,
    Week,
}

impl TimeUnit {
    /// As the API writes it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
        }
    }

    /// Days in one unit.
    #[must_use]
    pub const fn days(self) -> f64 {
        match self {
            Self::Day => 1.0,
            Self::Week => 7.0,
        }
    }

    /// Statistics counted in days, in this unit.
    #[must_use]
    pub fn scale(self, s: Stats) -> Stats {
        Stats {
            x: s.x,
            t_x: s.t_x / self.days(),
            t: s.t / self.days(),
        }
    }
}

impl std::str::FromStr for TimeUnit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Self::Day),
            "week" => Ok(Self::Week),
            other => Err(format!("time unit {other:?}: must be day or week")),
        }
    }
}

/// The last moment of the calibration period that ends on `calibration_end`'s UTC day:
/// the whole day counts (the models count in days), so 1997-09-30 at any time is the
/// CDNOW paper's calibration end.
#[must_use]
pub fn end_of_day(calibration_end: i64) -> i64 {
    let day = calibration_end.div_euclid(Timestamp::MICROS_PER_DAY);
    (day + 1) * Timestamp::MICROS_PER_DAY - 1
}

/// A fit of both models at one calibration end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChurnFit {
    /// Business time, microseconds, as asked (its whole UTC day is in the period).
    pub calibration_end: i64,
    pub time_unit: TimeUnit,
    pub bgnbd: Fitted<BgNbd>,
    pub gamma_gamma: Fitted<GammaGamma>,
    /// Customers with a purchase by the calibration end, and those with a repeat day.
    pub customers: u64,
    pub repeat_customers: u64,
}

/// Fits BG/NBD on every customer with a purchase by the end of `calibration_end`'s UTC
/// day and Gamma-Gamma on the repeat customers' spend in `currency`, in `unit`. The
/// customers may come in any order: the statistics are grouped and summed in a fixed
/// order.
///
/// # Errors
/// As [`model::bgnbd::fit`] and [`model::gamma_gamma::fit`]: a degenerate population or
/// no convergence. Never a half-fitted model.
pub fn fit_at<'a>(
    customers: impl IntoIterator<Item = &'a Purchases>,
    calibration_end: i64,
    currency: &str,
    unit: TimeUnit,
) -> Result<ChurnFit, FitError> {
    let cut = end_of_day(calibration_end);
    fit_stats(
        customers.into_iter().filter_map(|p| p.stats(cut, currency)),
        calibration_end,
        unit,
    )
}

/// [`fit_at`] on the customers' statistics in days at the calibration end (as
/// [`Purchases::stats`] takes them at [`end_of_day`]), streamed: the purchases are not
/// kept, only the statistics (about 40 bytes a customer).
///
/// # Errors
/// As [`fit_at`].
pub fn fit_stats(
    customers: impl IntoIterator<Item = (Stats, Option<Spend>)>,
    calibration_end: i64,
    unit: TimeUnit,
) -> Result<ChurnFit, FitError> {
    let mut stats: Vec<Stats> = Vec::new();
    let mut spends: Vec<Spend> = Vec::new();
    for (s, spend) in customers {
        stats.push(unit.scale(s));
        spends.extend(spend);
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
        time_unit: unit,
        customers: stats.len() as u64,
        repeat_customers,
        bgnbd,
        gamma_gamma,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calibration_end_day_counts_whole() {
        const DAY: i64 = Timestamp::MICROS_PER_DAY;
        let midnight = 10_000 * DAY;
        assert_eq!(end_of_day(midnight), midnight + DAY - 1);
        assert_eq!(end_of_day(midnight + DAY - 1), midnight + DAY - 1);
        assert_eq!(end_of_day(midnight + 5), midnight + DAY - 1);
        assert_eq!(end_of_day(-1), -1, "before 1970 too");
    }

    #[test]
    fn time_units_parse_and_scale() {
        assert_eq!("week".parse::<TimeUnit>(), Ok(TimeUnit::Week));
        assert!(
            "month"
                .parse::<TimeUnit>()
                .unwrap_err()
                .contains("day or week")
        );
        let s = TimeUnit::Week.scale(Stats {
            x: 2,
            t_x: 14.0,
            t: 35.0,
        });
        assert_eq!((s.x, s.t_x, s.t), (2, 2.0, 5.0));
    }
}
