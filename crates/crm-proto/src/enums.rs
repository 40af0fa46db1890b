//! Proto enums to domain enums. Each mapping returns `None` for `UNSPECIFIED`.

use crm_domain::{
    AggregateKind, CallOutcome, Channel, ConsentChannel, Direction, RelationshipKind,
    TicketPriority,
};

use crate::v1;

pub(crate) const fn channel(c: v1::Channel) -> Option<Channel> {
    Some(match c {
        v1::Channel::Unspecified => return None,
        v1::Channel::Email => Channel::Email,
        v1::Channel::Sms => Channel::Sms,
        v1::Channel::Phone => Channel::Phone,
        v1::Channel::Chat => Channel::Chat,
        v1::Channel::Social => Channel::Social,
        v1::Channel::WebForm => Channel::WebForm,
        v1::Channel::Meeting => Channel::Meeting,
        v1::Channel::InPerson => Channel::InPerson,
        v1::Channel::Push => Channel::Push,
        v1::Channel::Post => Channel::Post,
    })
}

pub(crate) const fn consent_channel(c: v1::ConsentChannel) -> Option<ConsentChannel> {
    Some(match c {
        v1::ConsentChannel::Unspecified => return None,
        v1::ConsentChannel::Email => ConsentChannel::Email,
        v1::ConsentChannel::Sms => ConsentChannel::Sms,
        v1::ConsentChannel::Phone => ConsentChannel::Phone,
        v1::ConsentChannel::Social => ConsentChannel::Social,
        v1::ConsentChannel::Push => ConsentChannel::Push,
        v1::ConsentChannel::Post => ConsentChannel::Post,
    })
}

pub(crate) const fn relationship_kind(k: v1::RelationshipKind) -> Option<RelationshipKind> {
    Some(match k {
        v1::RelationshipKind::Unspecified => return None,
        v1::RelationshipKind::Household => RelationshipKind::Household,
        v1::RelationshipKind::Referrer => RelationshipKind::Referrer,
        v1::RelationshipKind::Referee => RelationshipKind::Referee,
        v1::RelationshipKind::EmployedBy => RelationshipKind::EmployedBy,
        v1::RelationshipKind::Employs => RelationshipKind::Employs,
        v1::RelationshipKind::LinkedAccount => RelationshipKind::LinkedAccount,
    })
}

pub(crate) const fn direction(d: v1::Direction) -> Option<Direction> {
    Some(match d {
        v1::Direction::Unspecified => return None,
        v1::Direction::Inbound => Direction::Inbound,
        v1::Direction::Outbound => Direction::Outbound,
    })
}

pub(crate) const fn call_outcome(o: v1::CallOutcome) -> Option<CallOutcome> {
    Some(match o {
        v1::CallOutcome::Unspecified => return None,
        v1::CallOutcome::Answered => CallOutcome::Answered,
        v1::CallOutcome::Missed => CallOutcome::Missed,
        v1::CallOutcome::Voicemail => CallOutcome::Voicemail,
    })
}

pub(crate) const fn ticket_priority(p: v1::TicketPriority) -> Option<TicketPriority> {
    Some(match p {
        v1::TicketPriority::Unspecified => return None,
        v1::TicketPriority::Low => TicketPriority::Low,
        v1::TicketPriority::Normal => TicketPriority::Normal,
        v1::TicketPriority::High => TicketPriority::High,
        v1::TicketPriority::Urgent => TicketPriority::Urgent,
    })
}

/// The aggregate kind of a proto aggregate type (`None` for `UNSPECIFIED`).
#[must_use]
pub const fn aggregate_kind(t: v1::AggregateType) -> Option<AggregateKind> {
    Some(match t {
        v1::AggregateType::Unspecified => return None,
        v1::AggregateType::Customer => AggregateKind::Customer,
        v1::AggregateType::Lead => AggregateKind::Lead,
        v1::AggregateType::Campaign => AggregateKind::Campaign,
    })
}

/// The proto aggregate type of an aggregate kind.
#[must_use]
pub const fn aggregate_type(kind: AggregateKind) -> v1::AggregateType {
    match kind {
        AggregateKind::Customer => v1::AggregateType::Customer,
        AggregateKind::Lead => v1::AggregateType::Lead,
        AggregateKind::Campaign => v1::AggregateType::Campaign,
    }
}
