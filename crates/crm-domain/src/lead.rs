//! The lead aggregate: a prospect before it is a customer.

use crate::HistoryError;
use crate::values::{CampaignId, Channel, CustomerId, LeadId, OpportunityId};

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LeadCaptured {
    /// Where the lead came from: `web-form`, `referral`, `event`, `paid-social`, ...
    pub source: String,
    pub campaign: Option<CampaignId>,
    pub given_name: String,
    pub family_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// What the prospect is interested in.
    pub interest: String,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LeadEvent {
    Captured(LeadCaptured),
    Assigned {
        owner: String,
        /// The assignment rule, when assigned automatically.
        rule: Option<String>,
    },
    Contacted {
        channel: Channel,
        agent: Option<String>,
    },
    Qualified {
        note: String,
    },
    Disqualified {
        reason: String,
    },
    Converted {
        customer_id: CustomerId,
        /// The conversion created the customer (rather than linking an existing one).
        new_customer: bool,
        opportunity_id: Option<OpportunityId>,
    },
}

impl LeadEvent {
    #[must_use]
    pub const fn event_type(&self) -> &'static str {
        match self {
            Self::Captured(_) => "lead.captured",
            Self::Assigned { .. } => "lead.assigned",
            Self::Contacted { .. } => "lead.contacted",
            Self::Qualified { .. } => "lead.qualified",
            Self::Disqualified { .. } => "lead.disqualified",
            Self::Converted { .. } => "lead.converted",
        }
    }
}

/// new -> contacted -> qualified -> converted | disqualified
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LeadStatus {
    New,
    Contacted,
    Qualified,
    Converted,
    Disqualified,
}

impl LeadStatus {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Contacted => "contacted",
            Self::Qualified => "qualified",
            Self::Converted => "converted",
            Self::Disqualified => "disqualified",
        }
    }

    #[must_use]
    pub const fn is_closed(self) -> bool {
        matches!(self, Self::Converted | Self::Disqualified)
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Lead {
    pub id: LeadId,
    pub captured: LeadCaptured,
    pub status: LeadStatus,
    pub owner: Option<String>,
    pub customer: Option<CustomerId>,
}

impl Lead {
    /// Applies one event in place; on error the state is unchanged.
    pub fn evolve(
        state: &mut Option<Self>,
        id: LeadId,
        event: &LeadEvent,
    ) -> Result<(), HistoryError> {
        let lead = match (state.as_mut(), event) {
            (None, LeadEvent::Captured(c)) => {
                *state = Some(Self {
                    id,
                    captured: c.clone(),
                    status: LeadStatus::New,
                    owner: None,
                    customer: None,
                });
                return Ok(());
            }
            (Some(_), LeadEvent::Captured(_)) => {
                return Err(HistoryError::new("lead", "captured twice"));
            }
            (None, e) => {
                return Err(HistoryError::new(
                    "lead",
                    format!("{} before lead.captured", e.event_type()),
                ));
            }
            (Some(l), _) => l,
        };
        match event {
            LeadEvent::Captured(_) => {}
            LeadEvent::Assigned { owner, .. } => lead.owner = Some(owner.clone()),
            LeadEvent::Contacted { .. } => {
                if lead.status == LeadStatus::New {
                    lead.status = LeadStatus::Contacted;
                }
            }
            LeadEvent::Qualified { .. } => lead.status = LeadStatus::Qualified,
            LeadEvent::Disqualified { .. } => lead.status = LeadStatus::Disqualified,
            LeadEvent::Converted { customer_id, .. } => {
                lead.status = LeadStatus::Converted;
                lead.customer = Some(*customer_id);
            }
        }
        Ok(())
    }
}
