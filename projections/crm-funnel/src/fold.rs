//! The fold: opportunity, lead, campaign, response and attributed order events in, facts
//! per deal, lead, campaign and campaign member out. No clock, no randomness, ordered
//! maps only.

use crm_domain::{CampaignEvent, CampaignResponse, CustomerEvent, DomainEvent, LeadEvent};
use crm_projection::{Event, FoldError, Projection, State, load, save};

use crate::campaign::{CampaignFact, CampaignRecord, ResponseKind, Touch, TouchRecord};
use crate::customer::CustomerRecord;
use crate::keys::{campaign_key, customer_key, deal_key, lead_key, touch_key};
use crate::lead::{LeadFact, LeadRecord};
use crate::record::{DealRecord, Fact};
use crate::stamped::Stamp;

/// The sales funnel projection.
#[derive(Clone, Debug, Default)]
pub struct Funnel;

impl Projection for Funnel {
    const NAME: &'static str = "funnel";
    /// 2: leads, campaigns, campaign members and customers' attribution (keys `l`, `c`,
    /// `r`, `u`).
    const VERSION: u32 = 2;
    /// Stages, amounts, owners, sources and reasons chosen from lists: no personal text,
    /// so a build fetches no data key.
    const PERSONAL_TEXT: bool = false;

    fn apply(&self, state: &mut dyn State, event: &Event<'_>) -> Result<(), FoldError> {
        let stamp = Stamp {
            at: event.envelope.meta.occurred_at.0,
            seq: event.seq,
            index: event.index,
        };
        match &event.envelope.event {
            DomainEvent::Customer(customer, e) => {
                let customer = customer.0.into_bytes();
                apply_attribution(state, customer, e, stamp)?;
                apply_touch(state, customer, e, stamp)?;
                apply_deal(state, customer, e, stamp)
            }
            DomainEvent::Lead(id, e) => apply_lead(state, id.0.into_bytes(), e, stamp),
            DomainEvent::Campaign(id, e) => apply_campaign(state, id.0.into_bytes(), e, stamp),
        }
    }
}

fn apply_deal(
    state: &mut dyn State,
    customer: [u8; 16],
    e: &CustomerEvent,
    stamp: Stamp,
) -> Result<(), FoldError> {
    let Some((id, fact)) = fact_of(e) else {
        return Ok(());
    };
    let key = deal_key(id);
    let mut deal: DealRecord = match (load(state, &key)?, e) {
        (Some(d), _) => d,
        (None, CustomerEvent::OpportunityOpened(_)) => DealRecord {
            id,
            customer,
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
    deal.insert(stamp.of(fact));
    save(state, &key, &deal);
    Ok(())
}

/// The customer's team over time, lead and acquisition source.
fn apply_attribution(
    state: &mut dyn State,
    customer: [u8; 16],
    e: &CustomerEvent,
    stamp: Stamp,
) -> Result<(), FoldError> {
    let key = customer_key(customer);
    match e {
        CustomerEvent::Registered(r) => {
            let mut c: CustomerRecord = load(state, &key)?.unwrap_or_default();
            c.source = r.acquisition.as_ref().map(|a| a.source.clone());
            c.lead = r.lead.map(|l| l.0.into_bytes());
            crate::stamped::insert(&mut c.teams, stamp.of(r.team.clone()));
            save(state, &key, &c);
        }
        CustomerEvent::ProfileUpdated(p) => {
            if let Some(team) = &p.team {
                let mut c: CustomerRecord = load(state, &key)?.unwrap_or_default();
                crate::stamped::insert(&mut c.teams, stamp.of(team.clone()));
                save(state, &key, &c);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Campaign responses and orders attributed to a campaign, per member.
fn apply_touch(
    state: &mut dyn State,
    customer: [u8; 16],
    e: &CustomerEvent,
    stamp: Stamp,
) -> Result<(), FoldError> {
    let (campaign, touch) = match e {
        CustomerEvent::OrderPlaced(o) => {
            let Some(campaign) = o.campaign else {
                return Ok(());
            };
            (
                campaign,
                Touch::Order {
                    order: o.order_id.0.into_bytes(),
                    amount_minor: o.total.minor,
                    currency: o.total.currency.as_str().to_owned(),
                },
            )
        }
        CustomerEvent::CampaignResponseRecorded {
            campaign_id,
            response,
        } => (*campaign_id, response_touch(response)),
        _ => return Ok(()),
    };
    let campaign = campaign.0.into_bytes();
    let key = touch_key(campaign, customer);
    let mut t: TouchRecord = load(state, &key)?.unwrap_or_else(|| TouchRecord {
        campaign,
        customer,
        touches: Vec::new(),
    });
    crate::stamped::insert(&mut t.touches, stamp.of(touch));
    save(state, &key, &t);
    Ok(())
}

fn response_touch(r: &CampaignResponse) -> Touch {
    let (kind, revenue, order) = match r {
        CampaignResponse::Delivered => (ResponseKind::Delivered, None, None),
        CampaignResponse::Opened => (ResponseKind::Opened, None, None),
        CampaignResponse::Clicked => (ResponseKind::Clicked, None, None),
        CampaignResponse::Unsubscribed => (ResponseKind::Unsubscribed, None, None),
        CampaignResponse::Converted { revenue, order } => (
            ResponseKind::Converted,
            revenue.map(|m| (m.minor, m.currency.as_str().to_owned())),
            order.map(|o| o.0.into_bytes()),
        ),
    };
    Touch::Response {
        kind,
        revenue,
        order,
    }
}

fn apply_lead(
    state: &mut dyn State,
    id: [u8; 16],
    e: &LeadEvent,
    stamp: Stamp,
) -> Result<(), FoldError> {
    let key = lead_key(id);
    let mut lead: LeadRecord = match (load(state, &key)?, e) {
        (Some(l), _) => l,
        (None, LeadEvent::Captured(c)) => LeadRecord {
            id,
            source: c.source.clone(),
            campaign: c.campaign.map(|c| c.0.into_bytes()),
            facts: Vec::new(),
        },
        (None, _) => {
            return Err(FoldError::Rejected(format!(
                "{} of a lead the funnel never saw captured",
                e.event_type()
            )));
        }
    };
    let fact = match e {
        LeadEvent::Captured(_) => LeadFact::Captured,
        LeadEvent::Assigned { owner, .. } => LeadFact::Assigned {
            owner: owner.clone(),
        },
        LeadEvent::Contacted { .. } => LeadFact::Contacted,
        LeadEvent::Qualified { .. } => LeadFact::Qualified,
        LeadEvent::Disqualified { reason } => LeadFact::Disqualified {
            reason: reason.clone(),
        },
        LeadEvent::Converted {
            customer_id,
            opportunity_id,
            ..
        } => LeadFact::Converted {
            customer: customer_id.0.into_bytes(),
            opportunity: opportunity_id.map(|o| o.0.into_bytes()),
        },
    };
    crate::stamped::insert(&mut lead.facts, stamp.of(fact));
    save(state, &key, &lead);
    Ok(())
}

fn apply_campaign(
    state: &mut dyn State,
    id: [u8; 16],
    e: &CampaignEvent,
    stamp: Stamp,
) -> Result<(), FoldError> {
    let key = campaign_key(id);
    let mut campaign: CampaignRecord = match (load(state, &key)?, e) {
        (Some(c), _) => c,
        (None, CampaignEvent::Created(c)) => CampaignRecord {
            id,
            name: c.name.clone(),
            channel: c.channel.name().to_owned(),
            facts: Vec::new(),
        },
        (None, _) => {
            return Err(FoldError::Rejected(format!(
                "{} of a campaign the funnel never saw created",
                e.event_type()
            )));
        }
    };
    let fact = match e {
        CampaignEvent::Created(c) => CampaignFact::Created {
            budget: c.budget.map(|b| (b.minor, b.currency.as_str().to_owned())),
        },
        CampaignEvent::Sent {
            recipients,
            skipped,
            ..
        } => CampaignFact::Sent {
            recipients: recipients.iter().map(|r| r.0.into_bytes()).collect(),
            skipped: u32::try_from(skipped.len()).unwrap_or(u32::MAX),
        },
        CampaignEvent::CostRecorded { amount, .. } => CampaignFact::Cost {
            amount_minor: amount.minor,
            currency: amount.currency.as_str().to_owned(),
        },
    };
    crate::stamped::insert(&mut campaign.facts, stamp.of(fact));
    save(state, &key, &campaign);
    Ok(())
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
        | E::CampaignResponseRecorded { .. }
        | E::LeadLinked { .. }
        | E::Forgotten { .. } => return None,
    })
}
