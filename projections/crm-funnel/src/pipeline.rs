//! The pipeline funnel of a set of deals as of a moment (definitions: the domain notes,
//! "Funnel metrics").
//!
//! - **Reached(stage)**: the deal entered the stage or any later one of the pipeline's
//!   order (skipped stages count); a won deal reached the stage it was won from.
//! - **Conversion** from the previous stage `reached(i) / reached(i-1)`, and from the
//!   first `reached(i) / reached(0)`.
//! - **Time in stage**: *latest* is the age in the stage of the deals open in it;
//!   *cumulative* sums every stay of a deal in the stage (stays end at the next entry, at
//!   the close, or at the cut). Median and p90 by nearest rank, mean; in days.
//! - **Stale**: open deals whose age in their stage exceeds the limit.
//! - **Win rate** = won / (won + lost) by count, and by amount per currency; **cycle** is
//!   opening to win of the won deals; **sales velocity** per day and currency = open deals
//!   x average won amount x win rate / average cycle in days.

use std::collections::BTreeMap;

use crate::record::{DealAt, DealStatus};

/// Microseconds in a day.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// Which deals count. Empty fields admit all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunnelFilter {
    pub owner: Option<String>,
    /// The customer's team as of the cut.
    pub team: Option<String>,
    /// The lead source (see [`crate::deals_at`]).
    pub source: Option<String>,
    pub campaign: Option<[u8; 16]>,
    /// The cohort: deals opened in `[from, to)` (business time).
    pub opened_from: Option<i64>,
    pub opened_to: Option<i64>,
}

impl FunnelFilter {
    #[must_use]
    pub fn admits(&self, d: &DealAt) -> bool {
        self.owner
            .as_ref()
            .is_none_or(|o| d.owner.as_ref() == Some(o))
            && self
                .team
                .as_ref()
                .is_none_or(|t| d.team.as_ref() == Some(t))
            && self
                .source
                .as_ref()
                .is_none_or(|s| d.source.as_ref() == Some(s))
            && self.campaign.is_none_or(|c| d.campaign == Some(c))
            && self.opened_from.is_none_or(|t| d.opened_at >= t)
            && self.opened_to.is_none_or(|t| d.opened_at < t)
    }
}

/// Durations summarized, in days.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Durations {
    pub count: u64,
    pub median_days: f64,
    pub p90_days: f64,
    pub mean_days: f64,
}

impl Durations {
    /// Nearest-rank median and p90, and the mean, of durations in microseconds.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn of(mut micros: Vec<i64>) -> Self {
        if micros.is_empty() {
            return Self::default();
        }
        micros.sort_unstable();
        let n = micros.len();
        let rank = |q: f64| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let r = (q * n as f64).ceil() as usize;
            micros[r.clamp(1, n) - 1]
        };
        let days = |m: i64| m as f64 / DAY_MICROS as f64;
        let sum: i128 = micros.iter().map(|m| i128::from(*m)).sum();
        Self {
            count: n as u64,
            median_days: days(rank(0.5)),
            p90_days: days(rank(0.9)),
            mean_days: sum as f64 / n as f64 / DAY_MICROS as f64,
        }
    }
}

/// One stage of the funnel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageFigures {
    pub stage: String,
    pub reached: u64,
    /// `None` for the first stage, or when the previous stage was reached by none.
    pub conversion_from_previous: Option<f64>,
    pub conversion_from_first: Option<f64>,
    /// Open deals in the stage now.
    pub open: u64,
    pub latest: Durations,
    pub cumulative: Durations,
    pub stale: u64,
}

/// The funnel of one pipeline as of a moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineFunnel {
    pub as_of: i64,
    pub deals: u64,
    pub stages: Vec<StageFigures>,
    pub open: u64,
    pub won: u64,
    pub lost: u64,
    pub win_rate: Option<f64>,
    pub won_amount: BTreeMap<String, i64>,
    pub lost_amount: BTreeMap<String, i64>,
    pub win_rate_by_amount: BTreeMap<String, f64>,
    /// Loss reasons, most frequent first (then by name).
    pub loss_reasons: Vec<(String, u64)>,
    pub cycle: Durations,
    pub velocity_per_day: BTreeMap<String, f64>,
}

pub(crate) fn ratio(a: u64, b: u64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    (b > 0).then(|| a as f64 / b as f64)
}

/// The funnel of the deals of `pipeline` (whose stages, in order, are `stages`) that
/// `filter` admits, as of `as_of`; deals are given as of that moment
/// ([`crate::DealRecord::at`]). A deal is stale once `stale_after` (microseconds) in its
/// stage.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn pipeline_funnel(
    deals: &[DealAt],
    pipeline: &str,
    stages: &[String],
    as_of: i64,
    stale_after: i64,
    filter: &FunnelFilter,
) -> PipelineFunnel {
    let deals: Vec<&DealAt> = deals
        .iter()
        .filter(|d| d.pipeline == pipeline && filter.admits(d))
        .collect();
    let index = |stage: &str| stages.iter().position(|s| s == stage);
    let mut f = PipelineFunnel {
        as_of,
        deals: deals.len() as u64,
        ..PipelineFunnel::default()
    };
    let mut reached = vec![0u64; stages.len()];
    let mut latest: Vec<Vec<i64>> = vec![Vec::new(); stages.len()];
    let mut cumulative: Vec<BTreeMap<[u8; 16], i64>> = vec![BTreeMap::new(); stages.len()];
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut cycles = Vec::new();
    let mut open_by_currency: BTreeMap<String, u64> = BTreeMap::new();
    for d in &deals {
        let end = d.closed_at.unwrap_or(as_of);
        if let Some(max) = d.visits.iter().filter_map(|v| index(&v.stage)).max() {
            for r in reached.iter_mut().take(max + 1) {
                *r += 1;
            }
        }
        for v in &d.visits {
            if let Some(i) = index(&v.stage) {
                *cumulative[i].entry(d.id).or_default() += v.duration(end);
            }
        }
        match d.status {
            DealStatus::Open => {
                f.open += 1;
                *open_by_currency.entry(d.currency.clone()).or_default() += 1;
                if let Some(i) = index(&d.stage) {
                    let age = as_of.saturating_sub(d.stage_entered_at()).max(0);
                    latest[i].push(age);
                }
            }
            DealStatus::Won => {
                f.won += 1;
                *f.won_amount.entry(d.currency.clone()).or_default() += d.amount_minor;
                cycles.push(end.saturating_sub(d.opened_at).max(0));
            }
            DealStatus::Lost => {
                f.lost += 1;
                *f.lost_amount.entry(d.currency.clone()).or_default() += d.amount_minor;
                if let Some(r) = &d.loss_reason {
                    *reasons.entry(r.clone()).or_default() += 1;
                }
            }
        }
    }
    for (i, stage) in stages.iter().enumerate() {
        f.stages.push(StageFigures {
            stage: stage.clone(),
            reached: reached[i],
            conversion_from_previous: (i > 0).then(|| ratio(reached[i], reached[i - 1])).flatten(),
            conversion_from_first: (i > 0).then(|| ratio(reached[i], reached[0])).flatten(),
            open: latest[i].len() as u64,
            stale: latest[i].iter().filter(|a| **a > stale_after).count() as u64,
            latest: Durations::of(latest[i].clone()),
            cumulative: Durations::of(cumulative[i].values().copied().collect()),
        });
    }
    f.win_rate = ratio(f.won, f.won + f.lost);
    for (currency, won) in &f.won_amount {
        let lost = f.lost_amount.get(currency).copied().unwrap_or(0);
        if won + lost > 0 {
            f.win_rate_by_amount
                .insert(currency.clone(), *won as f64 / (won + lost) as f64);
        }
    }
    let mut ranked: Vec<(String, u64)> = reasons.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    f.loss_reasons = ranked;
    f.cycle = Durations::of(cycles);
    if let Some(rate) = f.win_rate
        && f.cycle.mean_days > 0.0
    {
        for (currency, open) in &open_by_currency {
            let won_deals = deals
                .iter()
                .filter(|d| d.status == DealStatus::Won && d.currency == *currency)
                .count();
            if won_deals > 0 {
                let avg =
                    f.won_amount.get(currency).copied().unwrap_or(0) as f64 / won_deals as f64;
                f.velocity_per_day.insert(
                    currency.clone(),
                    *open as f64 * avg * rate / f.cycle.mean_days,
                );
            }
        }
    }
    f
}
