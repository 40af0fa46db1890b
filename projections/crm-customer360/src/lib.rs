//! The customer 360° read model.
//!
//! [`Customer360`] is a pure fold ([`crm_projection::Projection`]) of the event stream into
//! per-customer records ([`CustomerRecord`]: identity, consent, tags, relationships,
//! commerce, engagement, sales, marketing, service), secondary indexes (tag, owner, last
//! order, revenue) and a timeline per customer. Nothing time-relative is stored: recency,
//! lifecycle, "last 30 days", SLA breaches of open tickets and the RFM value class are
//! computed by [`view`] against an explicit `as_of`.
//!
//! After one of a customer's events is dead-lettered the customer's record is flagged
//! (`dead_letters` lists the sequences) and later events still apply where they can: a
//! query shows the customer with the flag rather than hiding them or pretending the view
//! is complete. An event that depends on the lost one (a reply to a ticket whose opening
//! was lost) is dead-lettered in turn.

pub mod as_of;
mod fold;
pub mod keys;
mod query;
mod record;
pub mod reply;
pub mod view;

pub use as_of::{Cut, PointInTime, reconstruct};
pub use fold::Customer360;
pub use query::{
    Classes, CustomerSort, ListFilter, ListPage, Listed, Queries, QueryError, TimelineFilter,
    TimelinePage,
};
pub use record::*;
