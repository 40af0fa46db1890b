//! The fold: opportunity events in, deal facts out. No clock, no randomness, ordered
//! maps only.

use crm_domain::{CustomerEvent, DomainEvent};
use crm_projection::{Event, FoldError, Projection, State, load, save};

use crate::keys::deal_key;
use crate::record::{DealFact, DealRecord, Fact};

/// The sales funnel projection.
#[derive(Clone, Debug, Default)]
pub struct Funnel;

impl Projection for Funnel {
    const NAME: &'static str = "funnel";
    const VERSION: u32 = 1;

    fn apply(&self, state: &mut dyn State, event: &Event<'_>) -> Result<(), FoldError> {
        let DomainEvent::Customer(customer, e) = &event.envelope.event else {
            return Ok(());
        };
        let Some((id, fact)) = fact_of(e) else {
            return Ok(());
        };
        let key = deal_key(id);
        let mut deal: DealRecord = match (load(state, &key)?, e) {
            (Some(d), _) => d,
            (None, CustomerEvent::OpportunityOpened(_)) => DealRecord {
                id,
                customer: customer.0.into_bytes(),
                ..DealRecord::default()
            },
            (None, _) => {
                return Err(FoldError::Rejected(format!(
                    "{} of an opportunity the funnel never saw opened",
                    e.event_type()
                )));
            }
        };
        if let CustomerEvent::OpportunityOpened(o) = e {
            o.name.clone_into(&mut deal.name);
            o.pipeline.clone_into(&mut deal.pipeline);
            deal.lead = o.lead.map(|l| l.0.into_bytes());
            deal.campaign = o.campaign.map(|c| c.0.into_bytes());
        }
        deal.insert(DealFact {
            at: event.envelope.meta.occurred_at.0,
            seq: event.seq,
            index: event.index,
            fact,
        });
        save(state, &key, &deal);
        Ok(())
    }
}

/// The deal an event concerns and what it says, for the opportunity events; `None` for
/// every other event.
fn fact_of(e: &CustomerEvent) -> Option<([u8; 16], Fact)> {
    use CustomerEvent as E;
    Some(match e {
        E::OpportunityOpened(o) => (
            o.opportunity_id.0.into_bytes(),
            Fact::Opened {
                stage: o.stage.clone(),
                probability_pct: o.probability_pct,
                forecast: o.forecast.into(),
                amount_minor: o.amount.minor,
                currency: o.amount.currency.as_str().to_owned(),
                owner: o.owner.clone(),
                expected_close: o.expected_close.map(|t| t.0),
            },
        ),
        E::OpportunityStageMoved {
            opportunity_id,
            to_stage,
            probability_pct,
            forecast,
            ..
        } => (
            opportunity_id.0.into_bytes(),
            Fact::Moved {
                stage: to_stage.clone(),
                probability_pct: *probability_pct,
                forecast: (*forecast).into(),
            },
        ),
        E::OpportunityUpdated {
            opportunity_id,
            name,
            amount,
            owner,
            expected_close,
        } => (
            opportunity_id.0.into_bytes(),
            Fact::Updated {
                name: name.clone(),
                amount_minor: amount.map(|a| a.minor),
                owner: owner.clone(),
                expected_close: expected_close.map(|t| t.0),
            },
        ),
        E::OpportunityWon {
            opportunity_id,
            amount,
            ..
        } => (
            opportunity_id.0.into_bytes(),
            Fact::Won {
                amount_minor: amount.minor,
                currency: amount.currency.as_str().to_owned(),
            },
        ),
        E::OpportunityLost {
            opportunity_id,
            reason,
            ..
        } => (
            opportunity_id.0.into_bytes(),
            Fact::Lost {
                reason: reason.clone(),
            },
        ),
        E::OpportunityReopened {
            opportunity_id,
            stage,
            probability_pct,
            forecast,
            ..
        } => (
            opportunity_id.0.into_bytes(),
            Fact::Reopened {
                stage: stage.clone(),
                probability_pct: *probability_pct,
                forecast: (*forecast).into(),
            },
        ),
        E::Registered(_)
        | E::ProfileUpdated(_)
        | E::ConsentChanged { .. }
        | E::Tagged { .. }
        | E::Untagged { .. }
        | E::RelationshipLinked { .. }
        | E::InteractionLogged(_)
        | E::OrderPlaced(_)
        | E::ReturnRecorded(_)
        | E::TicketOpened(_)
        | E::TicketAssigned { .. }
        | E::TicketResponded { .. }
        | E::TicketCustomerReplied { .. }
        | E::TicketResolved { .. }
        | E::TicketReopened { .. }
        | E::TicketClosed { .. }
        | E::CampaignResponseRecorded { .. } => return None,
    })
}
