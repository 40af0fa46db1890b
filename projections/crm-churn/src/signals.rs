//! The service and engagement signals the churn-risk score adds to 1 - P(alive), kept by
//! the fold in business time (key `s` + customer id: [`Service`]) and read at any `as_of`;
//! and the score itself ([`RiskRules`], versioned), with the drivers that moved it.

use std::collections::BTreeMap;

use crm_domain::{CampaignResponse, CustomerEvent, Timestamp};
use serde::{Deserialize, Serialize};

/// The key prefix of a customer's service record.
pub const SERVICE: u8 = b's';

/// The key of a customer's service record.
#[must_use]
pub fn key(customer: [u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(SERVICE);
    k.extend_from_slice(&customer);
    k
}

/// One ticket's life, in business time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketLife {
    pub opened_at: i64,
    pub category: String,
    pub first_response_target_mins: u32,
    pub first_response_at: Option<i64>,
    /// Every change of state after the opening: (time, open afterwards).
    pub changes: Vec<(i64, bool)>,
    /// The customer's rating when it was closed: (time, 1-5).
    pub csat: Option<(i64, u8)>,
}

/// What the score reads besides the purchases.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub tickets: BTreeMap<[u8; 16], TicketLife>,
    /// Interactions per day (days since the epoch).
    pub interactions: BTreeMap<i64, u32>,
    /// Times the customer unsubscribed from a campaign.
    pub unsubscribes: Vec<i64>,
}

impl Service {
    /// Folds one of the customer's events at business time `at`; whether it changed
    /// anything.
    pub fn apply(&mut self, at: i64, e: &CustomerEvent) -> bool {
        let ticket = |id: &crm_domain::TicketId| id.0.into_bytes();
        match e {
            CustomerEvent::TicketOpened(t) => {
                self.tickets.insert(
                    ticket(&t.ticket_id),
                    TicketLife {
                        opened_at: at,
                        category: t.category.clone(),
                        first_response_target_mins: t.sla.first_response_mins,
                        ..TicketLife::default()
                    },
                );
            }
            CustomerEvent::TicketResponded {
                ticket_id,
                first_response: true,
                ..
            } => {
                if let Some(t) = self.tickets.get_mut(&ticket(ticket_id)) {
                    t.first_response_at.get_or_insert(at);
                }
            }
            CustomerEvent::TicketResolved { ticket_id, .. } => {
                self.change(ticket(ticket_id), at, false);
            }
            CustomerEvent::TicketReopened { ticket_id, .. } => {
                self.change(ticket(ticket_id), at, true);
            }
            CustomerEvent::TicketClosed {
                ticket_id, csat, ..
            } => {
                self.change(ticket(ticket_id), at, false);
                if let (Some(t), Some(score)) = (self.tickets.get_mut(&ticket(ticket_id)), csat) {
                    t.csat = Some((at, *score));
                }
            }
            CustomerEvent::InteractionLogged(_) => {
                *self
                    .interactions
                    .entry(at.div_euclid(Timestamp::MICROS_PER_DAY))
                    .or_default() += 1;
            }
            CustomerEvent::CampaignResponseRecorded {
                response: CampaignResponse::Unsubscribed,
                ..
            } => self.unsubscribes.push(at),
            _ => return false,
        }
        true
    }

    fn change(&mut self, id: [u8; 16], at: i64, open: bool) {
        if let Some(t) = self.tickets.get_mut(&id) {
            t.changes.push((at, open));
        }
    }

    /// The signals as of `as_of`.
    #[must_use]
    pub fn signals(&self, as_of: i64) -> Signals {
        let day = Timestamp::MICROS_PER_DAY;
        let within = |at: i64, days: i64| at <= as_of && at > as_of - days * day;
        let mut s = Signals::default();
        let mut last_rating: Option<(i64, u8)> = None;
        for t in self.tickets.values().filter(|t| t.opened_at <= as_of) {
            let open = t
                .changes
                .iter()
                .filter(|(at, _)| *at <= as_of)
                .max_by_key(|(at, _)| *at)
                .is_none_or(|(_, open)| *open);
            s.open_tickets += u32::from(open);
            if within(t.opened_at, 90) {
                s.complaints += u32::from(t.category.eq_ignore_ascii_case("complaint"));
                let target = t.opened_at
                    + i64::from(t.first_response_target_mins) * Timestamp::MICROS_PER_MINUTE;
                let answered = t.first_response_at.filter(|at| *at <= as_of);
                let late = match answered {
                    Some(at) => at > target,
                    None => as_of > target,
                };
                s.sla_breaches += u32::from(late);
            }
            if let Some((at, score)) = t.csat.filter(|(at, _)| within(*at, 180))
                && last_rating.is_none_or(|(l, _)| at >= l)
            {
                last_rating = Some((at, score));
            }
        }
        s.last_csat = last_rating.map(|(_, score)| score);
        let today = as_of.div_euclid(day);
        let count =
            |from: i64, to: i64| -> u32 { self.interactions.range(from..to).map(|(_, n)| n).sum() };
        s.interactions_recent = count(today - 89, today + 1);
        s.interactions_before = count(today - 179, today - 89);
        s.unsubscribed = self.unsubscribes.iter().any(|at| within(*at, 180));
        s
    }
}

/// A customer's service and engagement signals at a moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// Tickets open at the moment.
    pub open_tickets: u32,
    /// Tickets of category `complaint` opened in the last 90 days.
    pub complaints: u32,
    /// Tickets opened in the last 90 days whose first response came after its target
    /// (or has not come, the target passed).
    pub sla_breaches: u32,
    /// The latest rating given in the last 180 days.
    pub last_csat: Option<u8>,
    /// Interactions in the last 90 days and in the 90 before.
    pub interactions_recent: u32,
    pub interactions_before: u32,
    /// Unsubscribed from a campaign in the last 180 days.
    pub unsubscribed: bool,
}

/// One signal that moved the score, and by how much.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Driver {
    pub name: &'static str,
    pub delta: f64,
    pub detail: String,
}

/// The score's bands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Band {
    Low,
    Medium,
    High,
}

impl Band {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// A churn-risk score with its explanation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Risk {
    /// 1 - P(alive), before the signals.
    pub base: f64,
    /// In [0, 1].
    pub score: f64,
    pub band: Band,
    pub drivers: Vec<Driver>,
    /// The rules' version.
    pub rules: &'static str,
}

/// How signals move the score, and the bands: configuration with a version, so that a
/// score can always be explained by the rules it was computed with.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskRules {
    pub version: &'static str,
    pub per_open_ticket: f64,
    pub max_open_tickets: f64,
    pub per_complaint: f64,
    pub max_complaints: f64,
    pub per_sla_breach: f64,
    pub max_sla_breaches: f64,
    /// A latest rating at or below `low_csat` adds this; at or above `good_csat` adds
    /// `good_csat_delta` (negative).
    pub low_csat: u8,
    pub low_csat_delta: f64,
    pub good_csat: u8,
    pub good_csat_delta: f64,
    /// Interactions in the last 90 days at most half of the 90 before (which had at
    /// least `falling_min_before`).
    pub falling_engagement: f64,
    pub falling_min_before: u32,
    pub unsubscribed: f64,
    /// Scores below `medium` are low, below `high` medium, the rest high.
    pub medium: f64,
    pub high: f64,
}

impl Default for RiskRules {
    fn default() -> Self {
        Self {
            version: "risk-v1",
            per_open_ticket: 0.05,
            max_open_tickets: 0.15,
            per_complaint: 0.10,
            max_complaints: 0.20,
            per_sla_breach: 0.05,
            max_sla_breaches: 0.10,
            low_csat: 2,
            low_csat_delta: 0.10,
            good_csat: 4,
            good_csat_delta: -0.05,
            falling_engagement: 0.05,
            falling_min_before: 2,
            unsubscribed: 0.05,
            medium: 0.3,
            high: 0.6,
        }
    }
}

impl RiskRules {
    /// The score: 1 - `p_alive` moved by each signal that applies (capped per signal),
    /// kept in [0, 1], with the drivers in a fixed order.
    #[must_use]
    pub fn score(&self, p_alive: f64, s: &Signals) -> Risk {
        let base = (1.0 - p_alive).clamp(0.0, 1.0);
        let mut drivers = Vec::new();
        let mut add = |name, delta: f64, detail: String| {
            if delta != 0.0 {
                drivers.push(Driver {
                    name,
                    delta,
                    detail,
                });
            }
        };
        let capped = |n: u32, per: f64, max: f64| (f64::from(n) * per).min(max);
        add(
            "open_tickets",
            capped(s.open_tickets, self.per_open_ticket, self.max_open_tickets),
            format!("{} open ticket(s)", s.open_tickets),
        );
        add(
            "recent_complaints",
            capped(s.complaints, self.per_complaint, self.max_complaints),
            format!("{} complaint(s) in the last 90 days", s.complaints),
        );
        add(
            "sla_breaches",
            capped(s.sla_breaches, self.per_sla_breach, self.max_sla_breaches),
            format!(
                "{} late first response(s) in the last 90 days",
                s.sla_breaches
            ),
        );
        if let Some(csat) = s.last_csat {
            let delta = if csat <= self.low_csat {
                self.low_csat_delta
            } else if csat >= self.good_csat {
                self.good_csat_delta
            } else {
                0.0
            };
            add(
                "csat",
                delta,
                format!("latest satisfaction rating {csat}/5"),
            );
        }
        if s.interactions_before >= self.falling_min_before
            && s.interactions_recent * 2 <= s.interactions_before
        {
            add(
                "falling_engagement",
                self.falling_engagement,
                format!(
                    "{} interactions in the last 90 days, {} in the 90 before",
                    s.interactions_recent, s.interactions_before
                ),
            );
        }
        if s.unsubscribed {
            add(
                "unsubscribed",
                self.unsubscribed,
                "unsubscribed from a campaign in the last 180 days".into(),
            );
        }
        let score = (base + drivers.iter().map(|d| d.delta).sum::<f64>()).clamp(0.0, 1.0);
        let band = if score < self.medium {
            Band::Low
        } else if score < self.high {
            Band::Medium
        } else {
            Band::High
        };
        Risk {
            base,
            score,
            band,
            drivers,
            rules: self.version,
        }
    }
}
