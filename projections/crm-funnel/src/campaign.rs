//! What the funnel stores per campaign and per campaign member, and both as of a moment.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::stamped::Stamped;

/// One thing that happened to a campaign, in business time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CampaignFact {
    Created {
        budget: Option<(i64, String)>,
    },
    Sent {
        recipients: Vec<[u8; 16]>,
        skipped: u32,
    },
    Cost {
        amount_minor: i64,
        currency: String,
    },
}

/// A campaign as stored: its name, channel and facts in business-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub id: [u8; 16],
    pub name: String,
    pub channel: String,
    pub facts: Vec<Stamped<CampaignFact>>,
}

/// A campaign as of a moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CampaignAt {
    pub id: [u8; 16],
    pub name: String,
    pub channel: String,
    pub created_at: i64,
    pub budget: Option<(i64, String)>,
    /// Deliveries over every wave (a customer sent two waves counts twice).
    pub sends: u64,
    /// Distinct customers sent to.
    pub recipients: u64,
    pub skipped: u64,
    /// Cost in minor units, and its currency (a campaign's costs share one).
    pub cost_minor: i64,
    pub currency: Option<String>,
}

impl CampaignRecord {
    /// The campaign as of `as_of` (business time, inclusive); `None` before its creation.
    #[must_use]
    pub fn at(&self, as_of: i64) -> Option<CampaignAt> {
        let created = self
            .facts
            .iter()
            .find(|f| matches!(f.fact, CampaignFact::Created { .. }))?;
        if created.at > as_of {
            return None;
        }
        let mut c = CampaignAt {
            id: self.id,
            name: self.name.clone(),
            channel: self.channel.clone(),
            created_at: created.at,
            ..CampaignAt::default()
        };
        // Distinct recipients by sorting (a set per query costs more than the rest of the
        // campaign's figures).
        let mut recipients: Vec<[u8; 16]> = Vec::new();
        for f in self.facts.iter().filter(|f| f.at <= as_of) {
            match &f.fact {
                CampaignFact::Created { budget } => {
                    c.budget.clone_from(budget);
                    if c.currency.is_none() {
                        c.currency = budget.as_ref().map(|b| b.1.clone());
                    }
                }
                CampaignFact::Sent {
                    recipients: to,
                    skipped,
                } => {
                    c.sends += to.len() as u64;
                    recipients.extend_from_slice(to);
                    c.skipped += u64::from(*skipped);
                }
                CampaignFact::Cost {
                    amount_minor,
                    currency,
                } => {
                    c.cost_minor = c.cost_minor.saturating_add(*amount_minor);
                    c.currency = Some(currency.clone());
                }
            }
        }
        recipients.sort_unstable();
        recipients.dedup();
        c.recipients = recipients.len() as u64;
        Some(c)
    }
}

/// How a campaign member responded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResponseKind {
    Delivered,
    Opened,
    Clicked,
    Unsubscribed,
    Converted,
}

impl ResponseKind {
    pub const ALL: [Self; 5] = [
        Self::Delivered,
        Self::Opened,
        Self::Clicked,
        Self::Unsubscribed,
        Self::Converted,
    ];

    /// Whether the kind is an engagement: what the response rate counts (a delivery is
    /// not an answer, an unsubscribe is not a positive one).
    #[must_use]
    pub const fn engages(self) -> bool {
        matches!(self, Self::Opened | Self::Clicked | Self::Converted)
    }

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Opened => "opened",
            Self::Clicked => "clicked",
            Self::Unsubscribed => "unsubscribed",
            Self::Converted => "converted",
        }
    }
}

/// What a campaign member did that the campaign is credited with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Touch {
    Response {
        kind: ResponseKind,
        /// The revenue a conversion reported, with the order it names (if any).
        revenue: Option<(i64, String)>,
        order: Option<[u8; 16]>,
    },
    /// An order placed with the campaign as its attribution.
    Order {
        order: [u8; 16],
        amount_minor: i64,
        currency: String,
    },
}

/// One customer's touches of one campaign, in business-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TouchRecord {
    pub campaign: [u8; 16],
    pub customer: [u8; 16],
    pub touches: Vec<Stamped<Touch>>,
}

/// One customer's touches of one campaign as of a moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberAt {
    pub campaign: [u8; 16],
    pub customer: [u8; 16],
    pub responses: BTreeSet<ResponseKind>,
    /// Attributed revenue per currency: orders placed with the campaign, and the revenue
    /// of conversions whose order is not one of those (counted once).
    pub revenue: std::collections::BTreeMap<String, i64>,
}

impl TouchRecord {
    /// The member as of `as_of`; `None` when nothing was recorded by then.
    #[must_use]
    pub fn at(&self, as_of: i64) -> Option<MemberAt> {
        let touches: Vec<&Touch> = self
            .touches
            .iter()
            .filter(|t| t.at <= as_of)
            .map(|t| &t.fact)
            .collect();
        if touches.is_empty() {
            return None;
        }
        let mut m = MemberAt {
            campaign: self.campaign,
            customer: self.customer,
            ..MemberAt::default()
        };
        let orders: BTreeSet<[u8; 16]> = touches
            .iter()
            .filter_map(|t| match t {
                Touch::Order { order, .. } => Some(*order),
                Touch::Response { .. } => None,
            })
            .collect();
        for t in touches {
            match t {
                Touch::Response {
                    kind,
                    revenue,
                    order,
                } => {
                    m.responses.insert(*kind);
                    if let Some((minor, currency)) = revenue
                        && order.is_none_or(|o| !orders.contains(&o))
                    {
                        *m.revenue.entry(currency.clone()).or_default() += minor;
                    }
                }
                Touch::Order {
                    amount_minor,
                    currency,
                    ..
                } => *m.revenue.entry(currency.clone()).or_default() += amount_minor,
            }
        }
        Some(m)
    }
}
