//! Campaign performance as of a moment, and campaigns ranked by ROI (domain notes,
//! "Funnel metrics").
//!
//! Per campaign:
//! - **recipients**: distinct customers sent to (over every wave); **sends** counts
//!   deliveries (a customer in two waves twice);
//! - **responses** per kind: distinct members who recorded it; **responders**: members who
//!   opened, clicked or converted (a delivery is not an answer and an unsubscribe not a
//!   positive one); **response rate** = responders / recipients;
//! - **leads**: leads captured with the campaign; **opportunities**: deals attributed to
//!   it (their own link, else their lead's campaign, see [`crate::deals_at`]); **won** and
//!   **won revenue**: those won;
//! - **order revenue**: orders placed with the campaign as attribution, plus the revenue
//!   a conversion reports for an order not attributed that way (each order counted once);
//! - **cost**: the recorded costs, in the campaign's one currency;
//! - **ROI** = (won revenue + order revenue - cost) / cost, in the cost's currency
//!   (revenue in other currencies is reported but not converted); **cost per lead** and
//!   **per won deal** in minor units. None of these when nothing was spent.
//!
//! The ranking puts the highest ROI first; campaigns without one (no cost) last, then by
//! name and id.

use std::collections::BTreeMap;

use crate::campaign::{CampaignAt, MemberAt, ResponseKind};
use crate::lead::LeadAt;
use crate::pipeline::ratio;
use crate::record::{DealAt, DealStatus};

/// The figures of one campaign.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CampaignFigures {
    pub id: [u8; 16],
    pub name: String,
    pub channel: String,
    pub created_at: i64,
    pub sends: u64,
    pub recipients: u64,
    pub skipped: u64,
    pub responses: BTreeMap<ResponseKind, u64>,
    pub responders: u64,
    pub response_rate: Option<f64>,
    pub leads: u64,
    pub opportunities: u64,
    pub won: u64,
    pub won_revenue: BTreeMap<String, i64>,
    pub order_revenue: BTreeMap<String, i64>,
    pub cost_minor: i64,
    pub currency: Option<String>,
    pub roi: Option<f64>,
    pub cost_per_lead: Option<f64>,
    pub cost_per_won_deal: Option<f64>,
}

/// The figures of every campaign, ranked by ROI. `leads` and `deals` are the ones that
/// count (already filtered), as of the same moment as `campaigns` and `members`.
#[must_use]
pub fn campaign_performance(
    campaigns: &[CampaignAt],
    members: &[MemberAt],
    leads: &[LeadAt],
    deals: &[DealAt],
) -> Vec<CampaignFigures> {
    let mut by_id: BTreeMap<[u8; 16], CampaignFigures> =
        campaigns.iter().map(|c| (c.id, started(c))).collect();
    for m in members {
        if let Some(f) = by_id.get_mut(&m.campaign) {
            for kind in &m.responses {
                *f.responses.entry(*kind).or_default() += 1;
            }
            f.responders += u64::from(m.responses.iter().any(|k| k.engages()));
            for (currency, minor) in &m.revenue {
                *f.order_revenue.entry(currency.clone()).or_default() += minor;
            }
        }
    }
    for l in leads {
        if let Some(f) = l.campaign.and_then(|c| by_id.get_mut(&c)) {
            f.leads += 1;
        }
    }
    for d in deals {
        if let Some(f) = d.campaign.and_then(|c| by_id.get_mut(&c)) {
            f.opportunities += 1;
            if d.status == DealStatus::Won {
                f.won += 1;
                *f.won_revenue.entry(d.currency.clone()).or_default() += d.amount_minor;
            }
        }
    }
    let mut out: Vec<CampaignFigures> = by_id.into_values().map(finished).collect();
    out.sort_by(|a, b| {
        match (a.roi, b.roi) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
        .then_with(|| a.name.cmp(&b.name))
        .then_with(|| a.id.cmp(&b.id))
    });
    out
}

fn started(c: &CampaignAt) -> CampaignFigures {
    CampaignFigures {
        id: c.id,
        name: c.name.clone(),
        channel: c.channel.clone(),
        created_at: c.created_at,
        sends: c.sends,
        recipients: c.recipients,
        skipped: c.skipped,
        cost_minor: c.cost_minor,
        currency: c.currency.clone(),
        ..CampaignFigures::default()
    }
}

#[allow(clippy::cast_precision_loss)]
fn finished(mut f: CampaignFigures) -> CampaignFigures {
    f.response_rate = ratio(f.responders, f.recipients);
    if f.cost_minor > 0
        && let Some(currency) = &f.currency
    {
        let revenue = f.won_revenue.get(currency).copied().unwrap_or(0)
            + f.order_revenue.get(currency).copied().unwrap_or(0);
        let cost = f.cost_minor as f64;
        f.roi = Some((revenue - f.cost_minor) as f64 / cost);
        f.cost_per_lead = (f.leads > 0).then(|| cost / f.leads as f64);
        f.cost_per_won_deal = (f.won > 0).then(|| cost / f.won as f64);
    }
    f
}
