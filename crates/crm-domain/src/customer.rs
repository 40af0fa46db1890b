//! The customer aggregate: identity, consent, tags, relationships, and everything that
//! belongs to a customer (interactions, orders and returns, tickets, opportunities,
//! campaign responses).

use std::collections::{BTreeMap, BTreeSet};

use crate::values::{
    Acquisition, Address, CampaignId, Channel, ConsentChannel, CustomerId, InteractionId, LeadId,
    Money, OpportunityId, OrderId, ReturnId, TicketId, Timestamp,
};
use crate::{ForecastCategory, HistoryError};

/// Personal data of a customer.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Profile {
    pub given_name: String,
    pub family_name: String,
    /// Lower-cased; the first is the primary address.
    pub emails: Vec<String>,
    /// E.164 (`+` and digits); the first is the primary number.
    pub phones: Vec<String>,
    pub address: Option<Address>,
    /// BCP 47 language tag, e.g. `en` or `pt-BR`.
    pub language: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Ids of this customer in other systems, `(system, id)`, sorted by system.
    pub external_ids: Vec<(String, String)>,
}

/// A change to a profile: `None` leaves a field as it is.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ProfilePatch {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub emails: Option<Vec<String>>,
    pub phones: Option<Vec<String>>,
    /// `Some(None)` removes the address.
    pub address: Option<Option<Address>>,
    /// `Some(None)` removes the language.
    pub language: Option<Option<String>>,
    /// `Some(None)` removes the country.
    pub country: Option<Option<String>>,
    pub external_ids: Option<Vec<(String, String)>>,
    /// `Some(None)` removes the owner.
    pub owner: Option<Option<String>>,
    /// `Some(None)` removes the team.
    pub team: Option<Option<String>>,
}

impl ProfilePatch {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Typed relationships between customers. Every kind has an inverse, recorded on the
/// other customer in the same commit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum RelationshipKind {
    /// Same household (symmetric).
    Household,
    /// This customer referred the other.
    Referrer,
    /// This customer was referred by the other.
    Referee,
    /// The other is this customer's employer (a company customer).
    EmployedBy,
    /// The other is employed by this (company) customer.
    Employs,
    /// Another account of the same person (symmetric).
    LinkedAccount,
}

impl RelationshipKind {
    #[must_use]
    pub const fn inverse(self) -> Self {
        match self {
            Self::Household => Self::Household,
            Self::Referrer => Self::Referee,
            Self::Referee => Self::Referrer,
            Self::EmployedBy => Self::Employs,
            Self::Employs => Self::EmployedBy,
            Self::LinkedAccount => Self::LinkedAccount,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CallOutcome {
    Answered,
    Missed,
    Voicemail,
}

/// Call-centre details of a phone interaction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CallDetails {
    pub duration_secs: u32,
    pub outcome: CallOutcome,
}

/// Any touch between the business and the customer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InteractionLogged {
    pub interaction_id: InteractionId,
    pub channel: Channel,
    pub direction: Direction,
    pub agent: Option<String>,
    pub subject: String,
    pub summary: String,
    /// -100 (very negative) to 100 (very positive).
    pub sentiment: Option<i8>,
    pub ticket: Option<TicketId>,
    pub opportunity: Option<OpportunityId>,
    pub campaign: Option<CampaignId>,
    pub call: Option<CallDetails>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OrderLine {
    pub sku: String,
    pub category: String,
    pub quantity: u32,
    /// Price of one unit in minor units of the order's currency.
    pub unit_price_minor: i64,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    /// Sales channel, e.g. `web`, `app`, `store`, `phone`.
    pub sales_channel: String,
    pub lines: Vec<OrderLine>,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub shipping_minor: i64,
    /// lines + tax + shipping - discount.
    pub total: Money,
    pub campaign: Option<CampaignId>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReturnLine {
    pub sku: String,
    pub quantity: u32,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReturnRecorded {
    pub return_id: ReturnId,
    pub order_id: OrderId,
    pub lines: Vec<ReturnLine>,
    /// Refunded amount (may be zero for an exchange).
    pub refund: Money,
    pub reason: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum TicketPriority {
    Low,
    Normal,
    High,
    Urgent,
}

/// SLA targets frozen on the ticket when it opens (changing the policy later does not
/// rewrite history). Time waiting on the customer is excluded by the read side.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SlaTargets {
    pub policy: String,
    pub first_response_mins: u32,
    pub resolution_mins: u32,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TicketOpened {
    pub ticket_id: TicketId,
    pub channel: Channel,
    pub category: String,
    pub priority: TicketPriority,
    pub subject: String,
    pub sla: SlaTargets,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OpportunityOpened {
    pub opportunity_id: OpportunityId,
    pub name: String,
    pub pipeline: String,
    pub stage: String,
    /// Win probability frozen at stage entry, 0-100.
    pub probability_pct: u8,
    pub forecast: ForecastCategory,
    pub amount: Money,
    pub owner: Option<String>,
    pub expected_close: Option<Timestamp>,
    pub lead: Option<LeadId>,
    pub campaign: Option<CampaignId>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CampaignResponse {
    Delivered,
    Opened,
    Clicked,
    Unsubscribed,
    Converted {
        revenue: Option<Money>,
        order: Option<OrderId>,
    },
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CustomerRegistered {
    pub profile: Profile,
    pub acquisition: Option<Acquisition>,
    pub owner: Option<String>,
    pub team: Option<String>,
    /// The lead this customer was converted from, if any.
    pub lead: Option<LeadId>,
}

/// Everything that can happen to a customer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CustomerEvent {
    Registered(CustomerRegistered),
    ProfileUpdated(ProfilePatch),
    ConsentChanged {
        channel: ConsentChannel,
        granted: bool,
        /// Where the consent was given or withdrawn (form, campaign unsubscribe, ...).
        source: String,
    },
    Tagged {
        tag: String,
    },
    Untagged {
        tag: String,
    },
    RelationshipLinked {
        other: CustomerId,
        kind: RelationshipKind,
    },
    InteractionLogged(InteractionLogged),
    OrderPlaced(OrderPlaced),
    ReturnRecorded(ReturnRecorded),
    TicketOpened(TicketOpened),
    TicketAssigned {
        ticket_id: TicketId,
        agent: String,
        /// The assignment rule, when assigned automatically.
        rule: Option<String>,
    },
    TicketResponded {
        ticket_id: TicketId,
        agent: String,
        first_response: bool,
        /// The reply asks the customer for something: SLA clocks pause.
        awaiting_customer: bool,
    },
    /// The customer answered a ticket that was waiting on them: clocks resume.
    TicketCustomerReplied {
        ticket_id: TicketId,
    },
    TicketResolved {
        ticket_id: TicketId,
        resolution: String,
    },
    TicketReopened {
        ticket_id: TicketId,
        reason: String,
    },
    TicketClosed {
        ticket_id: TicketId,
        /// Satisfaction 1-5, if the customer rated.
        csat: Option<u8>,
        comment: String,
    },
    OpportunityOpened(OpportunityOpened),
    OpportunityStageMoved {
        opportunity_id: OpportunityId,
        from_stage: String,
        to_stage: String,
        /// Frozen at stage entry.
        probability_pct: u8,
        forecast: ForecastCategory,
    },
    OpportunityWon {
        opportunity_id: OpportunityId,
        amount: Money,
        /// The stage the deal was won from; `None` for wins recorded before it was kept
        /// (schema v1 of `customer.opportunity_won`).
        stage: Option<String>,
    },
    OpportunityLost {
        opportunity_id: OpportunityId,
        reason: String,
        stage: String,
    },
    /// An open deal's name, amount, owner or expected close changed: the fields that
    /// changed are set, the others `None`.
    OpportunityUpdated {
        opportunity_id: OpportunityId,
        name: Option<String>,
        amount: Option<Money>,
        owner: Option<String>,
        expected_close: Option<Timestamp>,
    },
    /// A lost deal is open again, at `stage` (probability and forecast category frozen
    /// at this entry, as for a stage move).
    OpportunityReopened {
        opportunity_id: OpportunityId,
        stage: String,
        probability_pct: u8,
        forecast: ForecastCategory,
        reason: String,
    },
    CampaignResponseRecorded {
        campaign_id: CampaignId,
        response: CampaignResponse,
    },
    /// A lead was converted into this (existing) customer: its history is the customer's
    /// too, and forgetting the customer forgets the lead.
    LeadLinked {
        lead_id: LeadId,
    },
    /// The customer was erased at their request (right to be forgotten): their data key
    /// and those of the leads converted into them are destroyed after this event, so
    /// every personal field they ever had reads as erased. No command changes them
    /// afterwards.
    Forgotten {
        /// Why (free text kept forever: never personal data).
        reason: String,
        /// The law the erasure answers, e.g. `gdpr-art-17-1-a`.
        legal_basis: String,
        /// The leads converted into the customer, whose keys were destroyed too.
        leads: Vec<LeadId>,
    },
}

impl CustomerEvent {
    /// The stable event type name written into every envelope.
    #[must_use]
    pub const fn event_type(&self) -> &'static str {
        match self {
            Self::Registered(_) => "customer.registered",
            Self::ProfileUpdated(_) => "customer.profile_updated",
            Self::ConsentChanged { .. } => "customer.consent_changed",
            Self::Tagged { .. } => "customer.tagged",
            Self::Untagged { .. } => "customer.untagged",
            Self::RelationshipLinked { .. } => "customer.relationship_linked",
            Self::InteractionLogged(_) => "customer.interaction_logged",
            Self::OrderPlaced(_) => "customer.order_placed",
            Self::ReturnRecorded(_) => "customer.return_recorded",
            Self::TicketOpened(_) => "customer.ticket_opened",
            Self::TicketAssigned { .. } => "customer.ticket_assigned",
            Self::TicketResponded { .. } => "customer.ticket_responded",
            Self::TicketCustomerReplied { .. } => "customer.ticket_customer_replied",
            Self::TicketResolved { .. } => "customer.ticket_resolved",
            Self::TicketReopened { .. } => "customer.ticket_reopened",
            Self::TicketClosed { .. } => "customer.ticket_closed",
            Self::OpportunityOpened(_) => "customer.opportunity_opened",
            Self::OpportunityStageMoved { .. } => "customer.opportunity_stage_moved",
            Self::OpportunityWon { .. } => "customer.opportunity_won",
            Self::OpportunityLost { .. } => "customer.opportunity_lost",
            Self::OpportunityUpdated { .. } => "customer.opportunity_updated",
            Self::OpportunityReopened { .. } => "customer.opportunity_reopened",
            Self::CampaignResponseRecorded { .. } => "customer.campaign_response_recorded",
            Self::LeadLinked { .. } => "customer.lead_linked",
            Self::Forgotten { .. } => "customer.forgotten",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TicketStatus {
    Open,
    AwaitingCustomer,
    Resolved,
    Closed,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TicketState {
    pub status: TicketStatus,
    pub priority: TicketPriority,
    pub assignee: Option<String>,
    pub responded: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpportunityStatus {
    Open,
    Won,
    Lost,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OpportunityState {
    pub name: String,
    pub pipeline: String,
    pub stage: String,
    pub status: OpportunityStatus,
    pub amount: Money,
    pub owner: Option<String>,
    pub expected_close: Option<Timestamp>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OrderState {
    pub total: Money,
    pub refunded_minor: i64,
    /// Quantity per SKU still returnable.
    pub returnable: BTreeMap<String, u32>,
}

/// What the command side needs to know about a customer to validate commands.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Customer {
    pub id: CustomerId,
    pub profile: Profile,
    pub owner: Option<String>,
    pub team: Option<String>,
    pub consent: BTreeMap<ConsentChannel, bool>,
    pub tags: BTreeSet<String>,
    pub relationships: BTreeSet<(CustomerId, RelationshipKind)>,
    pub orders: BTreeMap<OrderId, OrderState>,
    pub returns: BTreeSet<ReturnId>,
    pub tickets: BTreeMap<TicketId, TicketState>,
    pub opportunities: BTreeMap<OpportunityId, OpportunityState>,
    /// Ids of logged interactions (an id is logged once).
    pub interactions: BTreeSet<InteractionId>,
    pub campaign_responses: u64,
    /// The leads converted into this customer (their keys go with the customer's).
    pub leads: BTreeSet<LeadId>,
    /// Erased: no command changes the customer any more.
    pub forgotten: bool,
}

impl Customer {
    /// Applies one event in place. `state` is `None` before the customer exists. On
    /// error the state is left exactly as it was.
    pub fn evolve(
        state: &mut Option<Self>,
        id: CustomerId,
        event: &CustomerEvent,
    ) -> Result<(), HistoryError> {
        let c = match (state.as_mut(), event) {
            (None, CustomerEvent::Registered(r)) => {
                *state = Some(Self {
                    id,
                    profile: r.profile.clone(),
                    owner: r.owner.clone(),
                    team: r.team.clone(),
                    consent: BTreeMap::new(),
                    tags: BTreeSet::new(),
                    relationships: BTreeSet::new(),
                    orders: BTreeMap::new(),
                    returns: BTreeSet::new(),
                    tickets: BTreeMap::new(),
                    opportunities: BTreeMap::new(),
                    interactions: BTreeSet::new(),
                    campaign_responses: 0,
                    leads: r.lead.into_iter().collect(),
                    forgotten: false,
                });
                return Ok(());
            }
            (Some(_), CustomerEvent::Registered(_)) => {
                return Err(HistoryError::new("customer", "registered twice"));
            }
            (None, e) => {
                return Err(HistoryError::new(
                    "customer",
                    format!("{} before customer.registered", e.event_type()),
                ));
            }
            (Some(c), _) => c,
        };
        match event {
            CustomerEvent::Registered(_) => {}
            CustomerEvent::ProfileUpdated(p) => apply_patch(c, p),
            CustomerEvent::ConsentChanged {
                channel, granted, ..
            } => {
                c.consent.insert(*channel, *granted);
            }
            CustomerEvent::Tagged { tag } => {
                c.tags.insert(tag.clone());
            }
            CustomerEvent::Untagged { tag } => {
                c.tags.remove(tag);
            }
            CustomerEvent::RelationshipLinked { other, kind } => {
                c.relationships.insert((*other, *kind));
            }
            CustomerEvent::InteractionLogged(i) => {
                c.interactions.insert(i.interaction_id);
            }
            CustomerEvent::OrderPlaced(o) => {
                let mut returnable = BTreeMap::new();
                for line in &o.lines {
                    let q = returnable.entry(line.sku.clone()).or_insert(0u32);
                    *q = q.saturating_add(line.quantity);
                }
                c.orders.insert(
                    o.order_id,
                    OrderState {
                        total: o.total,
                        refunded_minor: 0,
                        returnable,
                    },
                );
            }
            CustomerEvent::ReturnRecorded(r) => {
                let order = c
                    .orders
                    .get_mut(&r.order_id)
                    .ok_or_else(|| HistoryError::new("customer", "return of unknown order"))?;
                order.refunded_minor = order.refunded_minor.saturating_add(r.refund.minor);
                for line in &r.lines {
                    if let Some(q) = order.returnable.get_mut(&line.sku) {
                        *q = q.saturating_sub(line.quantity);
                    }
                }
                c.returns.insert(r.return_id);
            }
            CustomerEvent::TicketOpened(t) => {
                c.tickets.insert(
                    t.ticket_id,
                    TicketState {
                        status: TicketStatus::Open,
                        priority: t.priority,
                        assignee: None,
                        responded: false,
                    },
                );
            }
            CustomerEvent::TicketAssigned {
                ticket_id, agent, ..
            } => ticket(c, *ticket_id)?.assignee = Some(agent.clone()),
            CustomerEvent::TicketResponded {
                ticket_id,
                awaiting_customer,
                ..
            } => {
                let t = ticket(c, *ticket_id)?;
                t.responded = true;
                t.status = if *awaiting_customer {
                    TicketStatus::AwaitingCustomer
                } else {
                    TicketStatus::Open
                };
            }
            CustomerEvent::TicketCustomerReplied { ticket_id }
            | CustomerEvent::TicketReopened { ticket_id, .. } => {
                ticket(c, *ticket_id)?.status = TicketStatus::Open;
            }
            CustomerEvent::TicketResolved { ticket_id, .. } => {
                ticket(c, *ticket_id)?.status = TicketStatus::Resolved;
            }
            CustomerEvent::TicketClosed { ticket_id, .. } => {
                ticket(c, *ticket_id)?.status = TicketStatus::Closed;
            }
            CustomerEvent::OpportunityOpened(o) => {
                c.leads.extend(o.lead);
                c.opportunities.insert(
                    o.opportunity_id,
                    OpportunityState {
                        name: o.name.clone(),
                        pipeline: o.pipeline.clone(),
                        stage: o.stage.clone(),
                        status: OpportunityStatus::Open,
                        amount: o.amount,
                        owner: o.owner.clone(),
                        expected_close: o.expected_close,
                    },
                );
            }
            CustomerEvent::OpportunityStageMoved {
                opportunity_id,
                to_stage,
                ..
            } => opportunity(c, *opportunity_id)?.stage.clone_from(to_stage),
            CustomerEvent::OpportunityWon {
                opportunity_id,
                amount,
                ..
            } => {
                let o = opportunity(c, *opportunity_id)?;
                o.status = OpportunityStatus::Won;
                o.amount = *amount;
            }
            CustomerEvent::OpportunityLost { opportunity_id, .. } => {
                opportunity(c, *opportunity_id)?.status = OpportunityStatus::Lost;
            }
            CustomerEvent::OpportunityUpdated {
                opportunity_id,
                name,
                amount,
                owner,
                expected_close,
            } => {
                let o = opportunity(c, *opportunity_id)?;
                if let Some(name) = name {
                    o.name.clone_from(name);
                }
                if let Some(amount) = amount {
                    o.amount = *amount;
                }
                if owner.is_some() {
                    o.owner.clone_from(owner);
                }
                if expected_close.is_some() {
                    o.expected_close = *expected_close;
                }
            }
            CustomerEvent::OpportunityReopened {
                opportunity_id,
                stage,
                ..
            } => {
                let o = opportunity(c, *opportunity_id)?;
                o.status = OpportunityStatus::Open;
                o.stage.clone_from(stage);
            }
            CustomerEvent::CampaignResponseRecorded { .. } => {
                c.campaign_responses = c.campaign_responses.saturating_add(1);
            }
            CustomerEvent::LeadLinked { lead_id } => {
                c.leads.insert(*lead_id);
            }
            CustomerEvent::Forgotten { .. } => {
                c.forgotten = true;
                // The command side keeps no personal data of an erased customer.
                c.profile = Profile::default();
            }
        }
        Ok(())
    }
}

fn apply_patch(c: &mut Customer, p: &ProfilePatch) {
    let prof = &mut c.profile;
    if let Some(v) = &p.given_name {
        prof.given_name.clone_from(v);
    }
    if let Some(v) = &p.family_name {
        prof.family_name.clone_from(v);
    }
    if let Some(v) = &p.emails {
        prof.emails.clone_from(v);
    }
    if let Some(v) = &p.phones {
        prof.phones.clone_from(v);
    }
    if let Some(v) = &p.address {
        prof.address.clone_from(v);
    }
    if let Some(v) = &p.language {
        prof.language.clone_from(v);
    }
    if let Some(v) = &p.country {
        prof.country.clone_from(v);
    }
    if let Some(v) = &p.external_ids {
        prof.external_ids.clone_from(v);
    }
    if let Some(v) = &p.owner {
        c.owner.clone_from(v);
    }
    if let Some(v) = &p.team {
        c.team.clone_from(v);
    }
}

fn ticket(c: &mut Customer, id: TicketId) -> Result<&mut TicketState, HistoryError> {
    c.tickets
        .get_mut(&id)
        .ok_or_else(|| HistoryError::new("customer", format!("unknown ticket {id}")))
}

fn opportunity(c: &mut Customer, id: OpportunityId) -> Result<&mut OpportunityState, HistoryError> {
    c.opportunities
        .get_mut(&id)
        .ok_or_else(|| HistoryError::new("customer", format!("unknown opportunity {id}")))
}
