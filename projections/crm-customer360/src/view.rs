//! What the 360 record means at a moment: everything time-relative, computed against an
//! explicit `as_of` (never stored, so the record does not pretend time stood still).
//!
//! Rules are versioned: [`LIFECYCLE_RULE`] and [`VALUE_RULE`] are reported with every view.

use std::collections::BTreeMap;

use crm_domain::Timestamp;

use crate::record::{CustomerFacts, CustomerRecord, DealStatus, Ticket, TicketState};

pub const LIFECYCLE_RULE: &str = "lifecycle-v1";
pub const VALUE_RULE: &str = "rfm-quintiles-v1";

const DAY: i64 = Timestamp::MICROS_PER_DAY;

/// Thresholds of the lifecycle rule.
#[derive(Clone, Copy, Debug)]
pub struct LifecyclePolicy {
    /// A one-order customer is `new` for this long after the order.
    pub new_days: i64,
    /// No order for this long: `churned`.
    pub churn_days: i64,
    /// A repeat customer is `dormant` after this many typical gaps without an order ...
    pub dormant_gaps: i64,
    /// ... but never before this many days.
    pub dormant_min_days: i64,
}

impl Default for LifecyclePolicy {
    fn default() -> Self {
        Self {
            new_days: 90,
            churn_days: 365,
            dormant_gaps: 3,
            dormant_min_days: 60,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lifecycle {
    /// Registered, no order yet.
    Prospect,
    New,
    Repeat,
    Dormant,
    Churned,
}

impl Lifecycle {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Prospect => "prospect",
            Self::New => "new",
            Self::Repeat => "repeat",
            Self::Dormant => "dormant",
            Self::Churned => "churned",
        }
    }
}

/// `lifecycle-v1`: no order -> prospect; no order for `churn_days` -> churned; one order
/// within `new_days` -> new, older -> dormant; several orders -> dormant once the time
/// since the last exceeds `dormant_gaps` typical gaps (mean gap between first and last
/// order) and `dormant_min_days`, else repeat.
#[must_use]
pub fn lifecycle(
    facts: &CustomerFacts,
    first_order_at: Option<i64>,
    as_of: i64,
    p: &LifecyclePolicy,
) -> Lifecycle {
    let Some(last) = facts.last_order_at else {
        return Lifecycle::Prospect;
    };
    let since = (as_of - last).max(0);
    if since > p.churn_days * DAY {
        return Lifecycle::Churned;
    }
    if facts.orders <= 1 {
        return if since <= p.new_days * DAY {
            Lifecycle::New
        } else {
            Lifecycle::Dormant
        };
    }
    let span = last - first_order_at.unwrap_or(last);
    let gap = span / i64::from(facts.orders - 1);
    if since > (gap * p.dormant_gaps).max(p.dormant_min_days * DAY) {
        Lifecycle::Dormant
    } else {
        Lifecycle::Repeat
    }
}

/// Recency, frequency and monetary value scored 1-5 by quintiles of the customers with
/// at least one order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfm {
    pub recency: u8,
    pub frequency: u8,
    pub monetary: u8,
}

/// The distribution RFM quintiles are taken from (every customer with an order).
#[derive(Clone, Debug, Default)]
pub struct Population {
    last_orders: Vec<i64>,
    frequencies: Vec<u32>,
    monetary: Vec<i64>,
}

impl Population {
    pub fn from_facts<'a>(facts: impl IntoIterator<Item = &'a CustomerFacts>) -> Self {
        let mut p = Self::default();
        for f in facts {
            p.push(f);
        }
        p.finish()
    }

    pub fn push(&mut self, f: &CustomerFacts) {
        if let Some(last) = f.last_order_at {
            self.last_orders.push(last);
            self.frequencies.push(f.orders);
            self.monetary.push(f.net_revenue_minor);
        }
    }

    #[must_use]
    pub fn finish(mut self) -> Self {
        self.last_orders.sort_unstable();
        self.frequencies.sort_unstable();
        self.monetary.sort_unstable();
        self
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.last_orders.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.last_orders.is_empty()
    }

    /// The customer's scores; `None` without an order. Ties share a score: the score is
    /// 1 + 5 x (share of the population strictly below the customer's value), so more
    /// recent, more frequent and more valuable customers score higher.
    #[must_use]
    pub fn score(&self, f: &CustomerFacts) -> Option<Rfm> {
        let last = f.last_order_at?;
        if self.is_empty() {
            return None;
        }
        Some(Rfm {
            recency: quintile(&self.last_orders, &last),
            frequency: quintile(&self.frequencies, &f.orders),
            monetary: quintile(&self.monetary, &f.net_revenue_minor),
        })
    }
}

fn quintile<T: Ord>(sorted: &[T], x: &T) -> u8 {
    let below = sorted.partition_point(|v| v < x);
    let q = 1 + 5 * below / sorted.len().max(1);
    u8::try_from(q.min(5)).unwrap_or(5)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ValueClass {
    /// No order: not scored.
    Unscored,
    High,
    Potential,
    General,
    Lost,
}

impl ValueClass {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unscored => "unscored",
            Self::High => "high_value",
            Self::Potential => "potential",
            Self::General => "general",
            Self::Lost => "lost",
        }
    }
}

/// `rfm-quintiles-v1`: lost when churned or in the least recent quintile; high value with
/// recency >= 3, frequency >= 4 and monetary >= 4; potential with recency >= 3 and
/// frequency or monetary >= 3; general otherwise.
#[must_use]
pub fn value_class(rfm: Option<Rfm>, lifecycle: Lifecycle) -> ValueClass {
    let Some(s) = rfm else {
        return ValueClass::Unscored;
    };
    if lifecycle == Lifecycle::Churned || s.recency == 1 {
        ValueClass::Lost
    } else if s.recency >= 3 && s.frequency >= 4 && s.monetary >= 4 {
        ValueClass::High
    } else if s.recency >= 3 && (s.frequency >= 3 || s.monetary >= 3) {
        ValueClass::Potential
    } else {
        ValueClass::General
    }
}

/// The classic RFM segment from recency and frequency scores.
#[must_use]
pub const fn segment(rfm: Option<Rfm>) -> &'static str {
    let Some(s) = rfm else {
        return "prospect";
    };
    match (s.recency, s.frequency) {
        (4..=5, 4..=5) => "champions",
        (3..=5, 3..=5) => "loyal",
        (4..=5, _) => "promising",
        (3, _) => "needs_attention",
        (_, 4..=5) => "cant_lose",
        (_, 3) => "at_risk",
        _ => "hibernating",
    }
}

/// Interaction counts in windows ending at `as_of`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Windows {
    pub last_30d: u32,
    pub prev_30d: u32,
    pub last_90d: u32,
    pub prev_90d: u32,
}

impl Windows {
    /// `last_30d - prev_30d`: positive when engagement grows.
    #[must_use]
    pub fn trend_30d(&self) -> i64 {
        i64::from(self.last_30d) - i64::from(self.prev_30d)
    }
}

/// Counts days in `(as_of - n days, as_of]` and the window before it.
#[must_use]
pub fn windows(per_day: &BTreeMap<i64, u32>, as_of: i64) -> Windows {
    let today = as_of.div_euclid(DAY);
    let count = |from: i64, to: i64| -> u32 { per_day.range(from..=to).map(|(_, n)| *n).sum() };
    Windows {
        last_30d: count(today - 29, today),
        prev_30d: count(today - 59, today - 30),
        last_90d: count(today - 89, today),
        prev_90d: count(today - 179, today - 90),
    }
}

/// Service figures at `as_of`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceView {
    pub open: u32,
    pub opened_30d: u32,
    pub opened_90d: u32,
    pub complaints_30d: u32,
    pub complaints_90d: u32,
    pub first_response_breaches: u32,
    pub resolution_breaches: u32,
    pub median_first_response_mins: Option<f64>,
    pub median_resolution_mins: Option<f64>,
    pub reopened: u32,
    pub last_csat: Option<u8>,
    pub average_csat: Option<f64>,
    /// Share of ratings that are 4 or 5.
    pub csat_pct: Option<f64>,
}

/// Whether a ticket breached its first-response and its resolution target at `as_of`
/// (time waiting on the customer does not count against the resolution clock).
#[must_use]
pub fn sla_breaches(t: &Ticket, as_of: i64) -> (bool, bool) {
    let minutes = |m: u32| i64::from(m) * Timestamp::MICROS_PER_MINUTE;
    let stopped = t.closed_at.or(t.resolved_at);
    let responded = t.first_response_at.or(stopped).unwrap_or(as_of);
    let frt_breach = responded - t.opened_at > minutes(t.first_response_target_mins);
    let (end, paused) = match t.first_resolved_at.or(t.closed_at) {
        Some(r) if t.first_resolved_at.is_some() => (r, t.paused_at_first_resolution),
        Some(r) => (r, t.paused_micros),
        None => (
            as_of,
            t.paused_micros + t.awaiting_since.map_or(0, |s| (as_of - s).max(0)),
        ),
    };
    let res_breach = end - t.opened_at - paused > minutes(t.resolution_target_mins);
    (frt_breach, res_breach)
}

#[must_use]
pub fn service(r: &CustomerRecord, as_of: i64) -> ServiceView {
    let mut v = ServiceView::default();
    let mut frt = Vec::new();
    let mut res = Vec::new();
    let mut ratings = Vec::new();
    let mut last_rated: Option<(i64, u8)> = None;
    for t in r.tickets.values() {
        let age = as_of - t.opened_at;
        let complaint = t.category.eq_ignore_ascii_case("complaint");
        if (0..30 * DAY).contains(&age) {
            v.opened_30d += 1;
            v.complaints_30d += u32::from(complaint);
        }
        if (0..90 * DAY).contains(&age) {
            v.opened_90d += 1;
            v.complaints_90d += u32::from(complaint);
        }
        if matches!(t.status, TicketState::Open | TicketState::AwaitingCustomer) {
            v.open += 1;
        }
        let (f, rb) = sla_breaches(t, as_of);
        v.first_response_breaches += u32::from(f);
        v.resolution_breaches += u32::from(rb);
        v.reopened += t.reopened;
        if let Some(at) = t.first_response_at {
            frt.push(minutes_between(t.opened_at, at));
        }
        if let Some(at) = t.first_resolved_at {
            res.push(minutes_between(
                t.opened_at + t.paused_at_first_resolution,
                at,
            ));
        }
        if let (Some(c), Some(at)) = (t.csat, t.closed_at) {
            ratings.push(c);
            if last_rated.is_none_or(|(l, _)| l <= at) {
                last_rated = Some((at, c));
            }
        }
    }
    v.median_first_response_mins = median(&mut frt);
    v.median_resolution_mins = median(&mut res);
    v.last_csat = last_rated.map(|(_, c)| c);
    if !ratings.is_empty() {
        let n = ratings.len() as f64;
        v.average_csat = Some(ratings.iter().map(|c| f64::from(*c)).sum::<f64>() / n);
        v.csat_pct = Some(ratings.iter().filter(|c| **c >= 4).count() as f64 / n);
    }
    v
}

#[allow(clippy::cast_precision_loss)]
fn minutes_between(from: i64, to: i64) -> f64 {
    (to - from) as f64 / Timestamp::MICROS_PER_MINUTE as f64
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    })
}

/// Sales figures (amounts per currency).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SalesView {
    pub open: u32,
    pub won: u32,
    pub lost: u32,
    /// Sum of open amounts.
    pub open_amount: BTreeMap<String, i64>,
    /// Sum over open deals of amount x probability frozen at stage entry.
    pub weighted_pipeline: BTreeMap<String, i64>,
    pub won_amount: BTreeMap<String, i64>,
    /// Lost deals per reason.
    pub lost_reasons: BTreeMap<String, u32>,
}

#[must_use]
pub fn sales(r: &CustomerRecord) -> SalesView {
    let mut v = SalesView::default();
    for o in r.opportunities.values() {
        match o.status {
            DealStatus::Open => {
                v.open += 1;
                let open = v.open_amount.entry(o.currency.clone()).or_default();
                *open = open.saturating_add(o.amount_minor);
                let weighted = i128::from(o.amount_minor) * i128::from(o.probability_pct) / 100;
                let sum = v.weighted_pipeline.entry(o.currency.clone()).or_default();
                *sum = sum.saturating_add(i64::try_from(weighted).unwrap_or(i64::MAX));
            }
            DealStatus::Won => {
                v.won += 1;
                let won = v.won_amount.entry(o.currency.clone()).or_default();
                *won = won.saturating_add(o.amount_minor);
            }
            DealStatus::Lost => {
                v.lost += 1;
                *v.lost_reasons
                    .entry(o.lost_reason.clone().unwrap_or_default())
                    .or_default() += 1;
            }
        }
    }
    v
}
