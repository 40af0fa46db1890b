//! The forecast of a period, and how it moved between two moments.
//!
//! A deal belongs to a period (`[start, end)` in business time) by its **expected close**
//! while open, and by the day it was **won** once won; lost deals and open deals without
//! an expected close are in no period. Categories are frozen at stage entry (Salesforce's
//! forecast categories); the roll-ups are cumulative, as Salesforce defines them:
//!
//! - **closed** = won;
//! - **commit** = commit + closed;
//! - **best case** = best case + commit + closed;
//! - **pipeline** = every open deal (pipeline, best case and commit; not omitted);
//! - **weighted** = the sum over open deals of amount x probability frozen at stage entry.
//!
//! Amounts are in minor units, per currency (no exchange rates are applied).

use std::collections::BTreeMap;

use crate::record::{DealAt, DealStatus, Forecast};

/// Roll-ups of one currency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollup {
    pub closed: i64,
    pub commit: i64,
    pub best_case: i64,
    pub pipeline: i64,
    /// Minor units x probability, summed, then divided by 100 (rounded down).
    pub weighted: i64,
}

/// How figures are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// One group, "all".
    Nothing,
    /// By owner ("" for deals without one).
    Owner,
    /// By forecast category (`closed`, `commit`, `best_case`, `pipeline`).
    Category,
    /// By the customer's team as of the cut ("" for none; deals attributed, see
    /// [`crate::deals_at`]).
    Team,
}

/// The forecast of a period: per group, per currency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeriodForecast {
    pub start: i64,
    pub end: i64,
    pub groups: BTreeMap<String, BTreeMap<String, Rollup>>,
}

/// Whether a deal counts in `[start, end)` as of its cut, and with which category.
pub(crate) fn in_period(d: &DealAt, start: i64, end: i64) -> Option<Forecast> {
    let inside = |t: i64| t >= start && t < end;
    match d.status {
        DealStatus::Won => d.closed_at.filter(|t| inside(*t)).map(|_| Forecast::Closed),
        DealStatus::Lost => None,
        DealStatus::Open => match d.forecast {
            Forecast::Omitted | Forecast::Closed => None,
            f => d.expected_close.filter(|t| inside(*t)).map(|_| f),
        },
    }
}

/// The API name of a forecast category.
#[must_use]
pub fn category_name(f: Forecast) -> &'static str {
    match f {
        Forecast::Omitted => "omitted",
        Forecast::Pipeline => "pipeline",
        Forecast::BestCase => "best_case",
        Forecast::Commit => "commit",
        Forecast::Closed => "closed",
    }
}

/// The forecast of `[start, end)` from deals as of one moment.
#[must_use]
pub fn period_forecast(
    deals: &[DealAt],
    start: i64,
    end: i64,
    group_by: GroupBy,
) -> PeriodForecast {
    let mut out = PeriodForecast {
        start,
        end,
        groups: BTreeMap::new(),
    };
    for d in deals {
        let Some(category) = in_period(d, start, end) else {
            continue;
        };
        let group = match group_by {
            GroupBy::Nothing => "all".to_owned(),
            GroupBy::Owner => d.owner.clone().unwrap_or_default(),
            GroupBy::Category => category_name(category).to_owned(),
            GroupBy::Team => d.team.clone().unwrap_or_default(),
        };
        let r = out
            .groups
            .entry(group)
            .or_default()
            .entry(d.currency.clone())
            .or_default();
        let a = d.amount_minor;
        match category {
            Forecast::Closed => {
                r.closed = r.closed.saturating_add(a);
                r.commit = r.commit.saturating_add(a);
                r.best_case = r.best_case.saturating_add(a);
            }
            Forecast::Commit => {
                r.commit = r.commit.saturating_add(a);
                r.best_case = r.best_case.saturating_add(a);
                r.pipeline = r.pipeline.saturating_add(a);
            }
            Forecast::BestCase => {
                r.best_case = r.best_case.saturating_add(a);
                r.pipeline = r.pipeline.saturating_add(a);
            }
            Forecast::Pipeline => r.pipeline = r.pipeline.saturating_add(a),
            Forecast::Omitted => {}
        }
        if d.status == DealStatus::Open {
            let w = i128::from(a) * i128::from(d.probability_pct) / 100;
            r.weighted = r
                .weighted
                .saturating_add(i64::try_from(w).unwrap_or(i64::MAX));
        }
    }
    out
}

/// What happened to one deal of the period between two moments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Movement {
    /// In the period at the second moment; did not exist at the first.
    New,
    /// Existed outside the period at the first moment, in it at the second.
    MovedIn,
    /// In the period at the first moment; open outside it (or without an expected close,
    /// or omitted) at the second.
    MovedOut,
    /// Open at the first moment (in the period or not), won in it by the second.
    Won,
    /// In the period at the first moment, lost by the second.
    Lost,
    /// In the period, open at both moments, with another amount.
    AmountChanged,
}

/// One deal's movement, with its amount at each moment (0 where it was not counted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DealMovement {
    pub deal: [u8; 16],
    pub movement: Movement,
    pub currency: String,
    pub amount_before: i64,
    pub amount_after: i64,
}

/// How the forecast of `[start, end)` moved from one moment to another: every deal in the
/// period at either moment whose presence, status or amount differs, in deal-id order.
/// `before` and `after` are the deals as of the two moments.
#[must_use]
pub fn forecast_movements(
    before: &[DealAt],
    after: &[DealAt],
    start: i64,
    end: i64,
) -> Vec<DealMovement> {
    let index = |ds: &[DealAt]| -> BTreeMap<[u8; 16], DealAt> {
        ds.iter().map(|d| (d.id, d.clone())).collect()
    };
    let (b, a) = (index(before), index(after));
    let mut out = Vec::new();
    let ids: std::collections::BTreeSet<[u8; 16]> = b.keys().chain(a.keys()).copied().collect();
    for id in ids {
        let (was, is) = (b.get(&id), a.get(&id));
        let was_in = was.and_then(|d| in_period(d, start, end));
        let is_in = is.and_then(|d| in_period(d, start, end));
        let movement = match (was, was_in, is, is_in) {
            (None, _, Some(_), Some(_)) => Movement::New,
            // Won in the period, whether or not it counted in it before.
            (Some(w), _, Some(d), Some(_))
                if w.status == DealStatus::Open && d.status == DealStatus::Won =>
            {
                Movement::Won
            }
            (Some(_), None, Some(_), Some(_)) => Movement::MovedIn,
            (Some(w), Some(_), Some(d), _) if w.status == DealStatus::Open => match d.status {
                DealStatus::Won if is_in.is_some() => Movement::Won,
                DealStatus::Lost => Movement::Lost,
                _ if is_in.is_none() => Movement::MovedOut,
                _ if d.amount_minor != w.amount_minor => Movement::AmountChanged,
                _ => continue,
            },
            _ => continue,
        };
        let amount = |d: Option<&DealAt>, counted: Option<Forecast>| {
            d.filter(|_| counted.is_some())
                .map_or(0, |d| d.amount_minor)
        };
        out.push(DealMovement {
            deal: id,
            movement,
            currency: is.or(was).map(|d| d.currency.clone()).unwrap_or_default(),
            amount_before: amount(was, was_in),
            amount_after: amount(is, is_in),
        });
    }
    out
}
