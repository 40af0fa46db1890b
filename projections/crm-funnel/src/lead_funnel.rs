//! The lead funnel as of a moment (domain notes, "Funnel metrics": leads -> contacted ->
//! qualified -> converted, with conversion and time between).
//!
//! - A lead **reached** a step when it recorded it or a later one (a lead converted
//!   without being marked contacted counts as contacted and qualified), as deals reach
//!   stages. Disqualified leads count in the steps they reached before.
//! - **Rates**: contacted / captured, qualified / contacted, converted / qualified, and
//!   converted / captured.
//! - **Times** between steps use the first time each step was recorded, only for leads
//!   that recorded both; in days (median and p90 by nearest rank, mean).

use std::collections::BTreeMap;

use crate::lead::LeadAt;
use crate::pipeline::{Durations, ratio};

/// Which leads count. Empty fields admit all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeadFilter {
    pub source: Option<String>,
    pub campaign: Option<[u8; 16]>,
    pub owner: Option<String>,
    /// The cohort: leads captured in `[from, to)` (business time).
    pub captured_from: Option<i64>,
    pub captured_to: Option<i64>,
}

impl LeadFilter {
    #[must_use]
    pub fn admits(&self, l: &LeadAt) -> bool {
        self.source.as_ref().is_none_or(|s| l.source == *s)
            && self.campaign.is_none_or(|c| l.campaign == Some(c))
            && self
                .owner
                .as_ref()
                .is_none_or(|o| l.owner.as_ref() == Some(o))
            && self.captured_from.is_none_or(|t| l.captured_at >= t)
            && self.captured_to.is_none_or(|t| l.captured_at < t)
    }
}

/// How leads are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadGroupBy {
    /// One group, "all".
    Nothing,
    Source,
    /// By campaign id ("" for leads without one).
    Campaign,
}

/// The lead funnel of one group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeadFigures {
    pub captured: u64,
    pub contacted: u64,
    pub qualified: u64,
    pub converted: u64,
    pub disqualified: u64,
    /// Neither converted nor disqualified.
    pub open: u64,
    /// Most frequent first, then by reason.
    pub disqualified_by_reason: Vec<(String, u64)>,
    pub contact_rate: Option<f64>,
    pub qualification_rate: Option<f64>,
    pub conversion_from_qualified: Option<f64>,
    pub conversion_rate: Option<f64>,
    pub captured_to_contacted: Durations,
    pub contacted_to_qualified: Durations,
    pub qualified_to_converted: Durations,
    pub captured_to_converted: Durations,
}

/// The lead funnel of the leads `filter` admits, per group.
#[must_use]
pub fn lead_funnel(
    leads: &[LeadAt],
    filter: &LeadFilter,
    group_by: LeadGroupBy,
) -> BTreeMap<String, LeadFigures> {
    let mut groups: BTreeMap<String, Vec<&LeadAt>> = BTreeMap::new();
    for l in leads.iter().filter(|l| filter.admits(l)) {
        let group = match group_by {
            LeadGroupBy::Nothing => "all".to_owned(),
            LeadGroupBy::Source => l.source.clone(),
            LeadGroupBy::Campaign => l.campaign.map(crate::uuid_string).unwrap_or_default(),
        };
        groups.entry(group).or_default().push(l);
    }
    groups
        .into_iter()
        .map(|(g, leads)| (g, figures(&leads)))
        .collect()
}

fn figures(leads: &[&LeadAt]) -> LeadFigures {
    let mut f = LeadFigures::default();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let between = |a: fn(&LeadAt) -> Option<i64>, b: fn(&LeadAt) -> Option<i64>| {
        Durations::of(
            leads
                .iter()
                .filter_map(|l| Some(b(l)?.saturating_sub(a(l)?).max(0)))
                .collect(),
        )
    };
    for l in leads {
        let converted = l.converted_at.is_some();
        let qualified = converted || l.qualified_at.is_some();
        let contacted = qualified || l.contacted_at.is_some();
        f.captured += 1;
        f.contacted += u64::from(contacted);
        f.qualified += u64::from(qualified);
        f.converted += u64::from(converted);
        if l.disqualified_at.is_some() {
            f.disqualified += 1;
            let reason = l.disqualified_reason.clone().unwrap_or_default();
            *reasons.entry(reason).or_default() += 1;
        } else if !converted {
            f.open += 1;
        }
    }
    let mut ranked: Vec<(String, u64)> = reasons.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    f.disqualified_by_reason = ranked;
    f.contact_rate = ratio(f.contacted, f.captured);
    f.qualification_rate = ratio(f.qualified, f.contacted);
    f.conversion_from_qualified = ratio(f.converted, f.qualified);
    f.conversion_rate = ratio(f.converted, f.captured);
    f.captured_to_contacted = between(|l| Some(l.captured_at), |l| l.contacted_at);
    f.contacted_to_qualified = between(|l| l.contacted_at, |l| l.qualified_at);
    f.qualified_to_converted = between(|l| l.qualified_at, |l| l.converted_at);
    f.captured_to_converted = between(|l| Some(l.captured_at), |l| l.converted_at);
    f
}
