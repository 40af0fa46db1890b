//! The campaign aggregate: a marketing campaign, its sends and its cost.

use crate::HistoryError;
use crate::values::{CampaignId, Channel, Currency, CustomerId, Money};

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CampaignCreated {
    pub name: String,
    pub channel: Channel,
    /// The target segment, as a name or rule understood by marketing.
    pub segment: String,
    pub budget: Option<Money>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CampaignEvent {
    Created(CampaignCreated),
    /// One send wave: to the recipients who may receive it, and the ones left out with
    /// the reason (their consent to the campaign's channel did not hold at the send).
    /// Sends recorded before consent was checked (schema v1) list no one left out.
    Sent {
        wave: u32,
        recipients: Vec<CustomerId>,
        skipped: Vec<SkippedRecipient>,
    },
    CostRecorded {
        amount: Money,
        note: String,
    },
}

/// A recipient a send left out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SkippedRecipient {
    pub customer_id: CustomerId,
    pub reason: SkipReason,
}

/// Why a send left a recipient out.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum SkipReason {
    /// The customer never consented to the campaign's channel.
    NoConsent,
    /// The customer withdrew their consent to the campaign's channel.
    ConsentWithdrawn,
    /// No such customer.
    UnknownCustomer,
}

impl SkipReason {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoConsent => "no_consent",
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::UnknownCustomer => "unknown_customer",
        }
    }
}

impl CampaignEvent {
    #[must_use]
    pub const fn event_type(&self) -> &'static str {
        match self {
            Self::Created(_) => "campaign.created",
            Self::Sent { .. } => "campaign.sent",
            Self::CostRecorded { .. } => "campaign.cost_recorded",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub channel: Channel,
    /// The currency of the budget or of the first cost; all costs must use it.
    pub currency: Option<Currency>,
    pub total_cost_minor: i64,
    pub waves: u32,
    pub recipients: u64,
}

impl Campaign {
    /// Applies one event in place; on error the state is unchanged.
    pub fn evolve(
        state: &mut Option<Self>,
        id: CampaignId,
        event: &CampaignEvent,
    ) -> Result<(), HistoryError> {
        let c = match (state.as_mut(), event) {
            (None, CampaignEvent::Created(c)) => {
                *state = Some(Self {
                    id,
                    name: c.name.clone(),
                    channel: c.channel,
                    currency: c.budget.map(|b| b.currency),
                    total_cost_minor: 0,
                    waves: 0,
                    recipients: 0,
                });
                return Ok(());
            }
            (Some(_), CampaignEvent::Created(_)) => {
                return Err(HistoryError::new("campaign", "created twice"));
            }
            (None, e) => {
                return Err(HistoryError::new(
                    "campaign",
                    format!("{} before campaign.created", e.event_type()),
                ));
            }
            (Some(c), _) => c,
        };
        match event {
            CampaignEvent::Created(_) => {}
            CampaignEvent::Sent {
                wave, recipients, ..
            } => {
                c.waves = c.waves.max(*wave);
                c.recipients = c.recipients.saturating_add(recipients.len() as u64);
            }
            CampaignEvent::CostRecorded { amount, .. } => {
                c.currency.get_or_insert(amount.currency);
                c.total_cost_minor = c.total_cost_minor.saturating_add(amount.minor);
            }
        }
        Ok(())
    }
}
