//! The CRM domain: aggregates (customer, lead, campaign), the commands they accept, the
//! events they record, and two pure functions:
//!
//! - [`decide`]: `(world, command, context) -> events | Rejection`, every business rule;
//! - [`World::apply`] (evolve): `(state, event) -> state`.
//!
//! This crate knows nothing about NATS, sled, protobuf or any encoding: events are plain
//! Rust values, and the wire format lives in `crm-events`.

mod campaign;
mod command;
mod config;
mod customer;
mod decide;
mod lead;
mod rejection;
mod validate;
mod values;

#[cfg(any(test, feature = "testing"))]
pub mod arb;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use campaign::{Campaign, CampaignCreated, CampaignEvent, SkipReason, SkippedRecipient};
pub use command::{
    AggregateKind, AggregateRef, Command, CommandKind, ConversionOpportunity, ConvertInto,
    LogInteraction, OpenOpportunity, OpenTicket, PlaceOrder, RecordReturn, RegisterCustomer,
    Target,
};
pub use config::{BusinessTimeBounds, DomainConfig, ForecastCategory, Pipeline, SlaPolicy, Stage};
pub use customer::{
    CallDetails, CallOutcome, CampaignResponse, Customer, CustomerEvent, CustomerRegistered,
    Direction, InteractionLogged, OpportunityOpened, OpportunityState, OpportunityStatus,
    OrderLine, OrderPlaced, OrderState, Profile, ProfilePatch, RelationshipKind, ReturnLine,
    ReturnRecorded, SlaTargets, TicketOpened, TicketPriority, TicketState, TicketStatus,
};
pub use decide::{DecideContext, decide};
pub use lead::{Lead, LeadCaptured, LeadEvent, LeadStatus};
pub use rejection::{HistoryError, Rejection, RejectionKind, Violation};
pub use values::{
    Acquisition, Actor, Address, CampaignId, Channel, CommandId, ConsentChannel, Currency,
    CustomerId, InteractionId, LeadId, Money, OpportunityId, OrderId, ReturnId, TicketId,
    Timestamp,
};

/// One event of one aggregate.
// Events are built once and moved; boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DomainEvent {
    Customer(CustomerId, CustomerEvent),
    Lead(LeadId, LeadEvent),
    Campaign(CampaignId, CampaignEvent),
}

impl DomainEvent {
    #[must_use]
    pub const fn aggregate(&self) -> AggregateRef {
        match self {
            Self::Customer(id, _) => AggregateRef::Customer(*id),
            Self::Lead(id, _) => AggregateRef::Lead(*id),
            Self::Campaign(id, _) => AggregateRef::Campaign(*id),
        }
    }

    /// The stable event type name, e.g. `customer.order_placed`.
    #[must_use]
    pub const fn event_type(&self) -> &'static str {
        match self {
            Self::Customer(_, e) => e.event_type(),
            Self::Lead(_, e) => e.event_type(),
            Self::Campaign(_, e) => e.event_type(),
        }
    }
}

/// The current state of the aggregates a decision looks at. An aggregate that is
/// absent does not exist (yet).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct World {
    pub customers: BTreeMap<CustomerId, Customer>,
    pub leads: BTreeMap<LeadId, Lead>,
    pub campaigns: BTreeMap<CampaignId, Campaign>,
}

impl World {
    /// Evolve: applies one event to the aggregate it belongs to.
    /// Evolve: applies one event to the aggregate it belongs to. On error the world is
    /// left exactly as it was.
    pub fn apply(&mut self, event: &DomainEvent) -> Result<(), HistoryError> {
        fn step<K: Ord + Copy, S, E>(
            map: &mut BTreeMap<K, S>,
            id: K,
            event: &E,
            evolve: impl FnOnce(&mut Option<S>, K, &E) -> Result<(), HistoryError>,
        ) -> Result<(), HistoryError> {
            let mut state = map.remove(&id);
            let result = evolve(&mut state, id, event);
            if let Some(s) = state {
                map.insert(id, s);
            }
            result
        }
        match event {
            DomainEvent::Customer(id, e) => step(&mut self.customers, *id, e, Customer::evolve),
            DomainEvent::Lead(id, e) => step(&mut self.leads, *id, e, Lead::evolve),
            DomainEvent::Campaign(id, e) => step(&mut self.campaigns, *id, e, Campaign::evolve),
        }
    }

    /// Whether the aggregate exists in this world.
    #[must_use]
    pub fn contains(&self, aggregate: AggregateRef) -> bool {
        match aggregate {
            AggregateRef::Customer(id) => self.customers.contains_key(&id),
            AggregateRef::Lead(id) => self.leads.contains_key(&id),
            AggregateRef::Campaign(id) => self.campaigns.contains_key(&id),
        }
    }
}
