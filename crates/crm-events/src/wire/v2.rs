//! Schema version 2.
//!
//! FROZEN once written to a log (see [`super`]), like `v1`. What changed from `v1`:
//!
//! - `campaign.sent` records the recipients a send left out and why (consent to the
//!   campaign's channel did not hold, or no such customer). A v1 send is read as one that
//!   left no one out: sends before v2 were not checked against consent.
//! - `customer.opportunity_won` records the stage the deal was won from (the funnel's
//!   "won from stage"). A v1 win is read with no stage.

use crm_domain as d;
use serde::{Deserialize, Serialize};

use super::Invalid;
use super::v1::{Id, Money};

/// Why a send left a recipient out. Variant order is the format.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum SkipReason {
    NoConsent,
    ConsentWithdrawn,
    UnknownCustomer,
}

impl From<d::SkipReason> for SkipReason {
    fn from(r: d::SkipReason) -> Self {
        match r {
            d::SkipReason::NoConsent => Self::NoConsent,
            d::SkipReason::ConsentWithdrawn => Self::ConsentWithdrawn,
            d::SkipReason::UnknownCustomer => Self::UnknownCustomer,
        }
    }
}

impl From<SkipReason> for d::SkipReason {
    fn from(r: SkipReason) -> Self {
        match r {
            SkipReason::NoConsent => Self::NoConsent,
            SkipReason::ConsentWithdrawn => Self::ConsentWithdrawn,
            SkipReason::UnknownCustomer => Self::UnknownCustomer,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct SkippedRecipient {
    pub customer_id: Id,
    pub reason: SkipReason,
}

/// `campaign.sent` v2
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CampaignSent {
    pub wave: u32,
    pub recipients: Vec<Id>,
    pub skipped: Vec<SkippedRecipient>,
}

impl CampaignSent {
    /// The wire form of a domain `Sent`.
    #[must_use]
    pub fn new(
        wave: u32,
        recipients: Vec<d::CustomerId>,
        skipped: Vec<d::SkippedRecipient>,
    ) -> Self {
        Self {
            wave,
            recipients: recipients.into_iter().map(Into::into).collect(),
            skipped: skipped
                .into_iter()
                .map(|s| SkippedRecipient {
                    customer_id: s.customer_id.into(),
                    reason: s.reason.into(),
                })
                .collect(),
        }
    }
}

impl From<CampaignSent> for d::CampaignEvent {
    fn from(w: CampaignSent) -> Self {
        Self::Sent {
            wave: w.wave,
            recipients: w.recipients.into_iter().map(Id::into).collect(),
            skipped: w
                .skipped
                .into_iter()
                .map(|s| d::SkippedRecipient {
                    customer_id: s.customer_id.into(),
                    reason: s.reason.into(),
                })
                .collect(),
        }
    }
}

/// `customer.opportunity_won` v2
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpportunityWon {
    pub opportunity_id: Id,
    pub amount: Money,
    pub stage: Option<String>,
}

impl TryFrom<OpportunityWon> for d::CustomerEvent {
    type Error = Invalid;
    fn try_from(w: OpportunityWon) -> Result<Self, Invalid> {
        Ok(Self::OpportunityWon {
            opportunity_id: w.opportunity_id.into(),
            amount: w.amount.try_into()?,
            stage: w.stage,
        })
    }
}
