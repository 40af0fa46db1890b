//! Versioned payloads: which wire struct encodes each event type at which schema version,
//! and how every version ever written decodes (and upcasts) to the current domain event.
//! The payload holds only the event's own fields; the aggregate id is in the envelope.
//! See `wire` for the format rules and how to change an event.

use crm_domain::{
    AggregateKind, AggregateRef, CampaignEvent, CustomerEvent, DomainEvent, LeadEvent,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::seal::{Seal, SealError, check_fits, seal_text, sealed_versions};
use crate::wire::{Invalid, v1, v2};

/// Every event type with its current schema version, sorted by event type. The types in
/// [`crate::seal::SEALED`] are written at their sealed version (by `encode_sealed`).
const SCHEMA_VERSIONS: &[(&str, u16)] = &[
    ("campaign.cost_recorded", 1),
    ("campaign.created", 1),
    ("campaign.sent", 2),
    ("customer.campaign_response_recorded", 1),
    ("customer.consent_changed", 2),
    ("customer.forgotten", 1),
    ("customer.interaction_logged", 2),
    ("customer.lead_linked", 1),
    ("customer.opportunity_lost", 1),
    ("customer.opportunity_opened", 1),
    ("customer.opportunity_reopened", 2),
    ("customer.opportunity_stage_moved", 1),
    ("customer.opportunity_updated", 1),
    ("customer.opportunity_won", 2),
    ("customer.order_placed", 1),
    ("customer.profile_updated", 2),
    ("customer.registered", 2),
    ("customer.relationship_linked", 1),
    ("customer.return_recorded", 2),
    ("customer.tagged", 1),
    ("customer.ticket_assigned", 1),
    ("customer.ticket_closed", 2),
    ("customer.ticket_customer_replied", 1),
    ("customer.ticket_opened", 2),
    ("customer.ticket_reopened", 2),
    ("customer.ticket_resolved", 2),
    ("customer.ticket_responded", 1),
    ("customer.untagged", 1),
    ("lead.assigned", 1),
    ("lead.captured", 2),
    ("lead.contacted", 1),
    ("lead.converted", 1),
    ("lead.disqualified", 1),
    ("lead.qualified", 2),
];

/// Every (event_type, current schema version) pair, sorted by event type: for fixture
/// tests and docs.
#[must_use]
pub fn schema_versions() -> &'static [(&'static str, u16)] {
    SCHEMA_VERSIONS
}

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error(
        "unknown event type `{event_type}`: written by a newer release, or not an event of this CRM"
    )]
    UnknownEventType { event_type: String },
    #[error(
        "`{event_type}` has no schema version {version}: this release reads versions 1 to {current} (was it written by a newer release?)"
    )]
    UnknownSchemaVersion {
        event_type: &'static str,
        version: u16,
        current: u16,
    },
    #[error("a `{event_type}` event cannot belong to a {} aggregate", .aggregate.name())]
    WrongAggregate {
        event_type: &'static str,
        aggregate: AggregateKind,
    },
    #[error("malformed `{event_type}` v{version} payload: {source}")]
    Malformed {
        event_type: &'static str,
        version: u16,
        #[source]
        source: postcard::Error,
    },
    #[error(
        "malformed `{event_type}` v{version} payload: {count} unexpected bytes after its last field"
    )]
    TrailingBytes {
        event_type: &'static str,
        version: u16,
        count: usize,
    },
    #[error("invalid `{event_type}` v{version} payload: `{field}` {reason}")]
    Invalid {
        event_type: &'static str,
        version: u16,
        field: &'static str,
        reason: String,
    },
}

/// Encodes the payload of an event in the clear: (event_type, schema_version, postcard
/// bytes), at the current schema version, or for a type written sealed at the plain
/// version its sealed one wraps (what the service wrote before sealing).
#[must_use]
pub fn encode_payload(event: &DomainEvent) -> (&'static str, u16, Vec<u8>) {
    encode::<Postcard>(event)
}

/// Encodes the payload of an event at its current schema version: a type in
/// [`SEALED`](crate::seal::SEALED) with its personal text sealed under `key` (see
/// [`crate::seal`]), any other in the clear.
pub(crate) fn encode_sealed_payload(
    event: &DomainEvent,
    event_id: uuid::Uuid,
    key: &[u8; 32],
    nonce: &mut dyn FnMut() -> Result<[u8; 24], SealError>,
) -> Result<(&'static str, u16, Vec<u8>), SealError> {
    let Some((plain, sealed)) = sealed_versions(event.event_type()) else {
        return Ok(encode_payload(event));
    };
    let mut emptied = event.clone();
    let seal = seal_text(&mut emptied, event_id, key, nonce)?;
    let (event_type, version, body) = encode_payload(&emptied);
    debug_assert_eq!(
        version, plain,
        "{event_type}: SEALED names its plain version"
    );
    // A struct of byte arrays and vectors into a Vec: cannot fail.
    let mut bytes = postcard::to_allocvec(&seal).expect("postcard encodes a seal");
    bytes.extend_from_slice(&body);
    Ok((event_type, sealed, bytes))
}

/// The payload of an event as JSON, with the stored shape's field names (those of its
/// current schema version, which every older version is upcast to): (event_type,
/// schema_version, JSON). For exports; the store keeps postcard.
#[must_use]
pub fn payload_json(event: &DomainEvent) -> (&'static str, u16, serde_json::Value) {
    encode::<Json>(event)
}

fn encode<S: Sink>(event: &DomainEvent) -> (&'static str, u16, S::Out) {
    let (version, out) = match event.clone() {
        DomainEvent::Customer(_, e) => encode_customer::<S>(e),
        DomainEvent::Lead(_, e) => encode_lead::<S>(e),
        DomainEvent::Campaign(_, e) => encode_campaign::<S>(e),
    };
    (event.event_type(), version, out)
}

/// What a payload is written as: one mapping from events to the wire shapes, two
/// serialisations.
trait Sink {
    type Out;
    fn put<T: Serialize>(payload: &T) -> Self::Out;
}

struct Postcard;

impl Sink for Postcard {
    type Out = Vec<u8>;
    fn put<T: Serialize>(payload: &T) -> Vec<u8> {
        // Plain structs into a Vec: cannot fail.
        postcard::to_allocvec(payload).expect("postcard encodes a payload")
    }
}

struct Json;

impl Sink for Json {
    type Out = serde_json::Value;
    fn put<T: Serialize>(payload: &T) -> serde_json::Value {
        // Plain structs with string or no map keys: cannot fail.
        serde_json::to_value(payload).unwrap_or(serde_json::Value::Null)
    }
}

fn at_v1<S: Sink, T: Serialize>(payload: T) -> (u16, S::Out) {
    at::<S, T>(1, payload)
}

fn at<S: Sink, T: Serialize>(version: u16, payload: T) -> (u16, S::Out) {
    (version, S::put(&payload))
}

fn encode_customer<S: Sink>(e: CustomerEvent) -> (u16, S::Out) {
    use CustomerEvent as E;
    match e {
        E::Registered(r) => at_v1::<S, _>(v1::CustomerRegistered::from(r)),
        E::ProfileUpdated(p) => at_v1::<S, _>(v1::ProfilePatch::from(p)),
        E::ConsentChanged {
            channel,
            granted,
            source,
        } => at_v1::<S, _>(v1::ConsentChanged {
            channel: channel.into(),
            granted,
            source,
        }),
        E::Tagged { tag } => at_v1::<S, _>(v1::Tagged { tag }),
        E::Untagged { tag } => at_v1::<S, _>(v1::Untagged { tag }),
        E::RelationshipLinked { other, kind } => at_v1::<S, _>(v1::RelationshipLinked {
            other: other.into(),
            kind: kind.into(),
        }),
        E::InteractionLogged(i) => at_v1::<S, _>(v1::InteractionLogged::from(i)),
        E::OrderPlaced(o) => at_v1::<S, _>(v1::OrderPlaced::from(o)),
        E::ReturnRecorded(r) => at_v1::<S, _>(v1::ReturnRecorded::from(r)),
        E::TicketOpened(t) => at_v1::<S, _>(v1::TicketOpened::from(t)),
        E::TicketAssigned {
            ticket_id,
            agent,
            rule,
        } => at_v1::<S, _>(v1::TicketAssigned {
            ticket_id: ticket_id.into(),
            agent,
            rule,
        }),
        E::TicketResponded {
            ticket_id,
            agent,
            first_response,
            awaiting_customer,
        } => at_v1::<S, _>(v1::TicketResponded {
            ticket_id: ticket_id.into(),
            agent,
            first_response,
            awaiting_customer,
        }),
        E::TicketCustomerReplied { ticket_id } => at_v1::<S, _>(v1::TicketCustomerReplied {
            ticket_id: ticket_id.into(),
        }),
        E::TicketResolved {
            ticket_id,
            resolution,
        } => at_v1::<S, _>(v1::TicketResolved {
            ticket_id: ticket_id.into(),
            resolution,
        }),
        E::TicketReopened { ticket_id, reason } => at_v1::<S, _>(v1::TicketReopened {
            ticket_id: ticket_id.into(),
            reason,
        }),
        E::TicketClosed {
            ticket_id,
            csat,
            comment,
        } => at_v1::<S, _>(v1::TicketClosed {
            ticket_id: ticket_id.into(),
            csat,
            comment,
        }),
        E::OpportunityOpened(o) => at_v1::<S, _>(v1::OpportunityOpened::from(o)),
        E::OpportunityStageMoved {
            opportunity_id,
            from_stage,
            to_stage,
            probability_pct,
            forecast,
        } => at_v1::<S, _>(v1::OpportunityStageMoved {
            opportunity_id: opportunity_id.into(),
            from_stage,
            to_stage,
            probability_pct,
            forecast: forecast.into(),
        }),
        E::OpportunityWon {
            opportunity_id,
            amount,
            stage,
        } => at::<S, _>(
            2,
            v2::OpportunityWon {
                opportunity_id: opportunity_id.into(),
                amount: amount.into(),
                stage,
            },
        ),
        E::OpportunityLost {
            opportunity_id,
            reason,
            stage,
        } => at_v1::<S, _>(v1::OpportunityLost {
            opportunity_id: opportunity_id.into(),
            reason,
            stage,
        }),
        E::OpportunityUpdated {
            opportunity_id,
            name,
            amount,
            owner,
            expected_close,
        } => at_v1::<S, _>(v1::OpportunityUpdated {
            opportunity_id: opportunity_id.into(),
            name,
            amount: amount.map(Into::into),
            owner,
            expected_close: expected_close.map(crm_domain::Timestamp::as_micros),
        }),
        E::OpportunityReopened {
            opportunity_id,
            stage,
            probability_pct,
            forecast,
            reason,
        } => at_v1::<S, _>(v1::OpportunityReopened {
            opportunity_id: opportunity_id.into(),
            stage,
            probability_pct,
            forecast: forecast.into(),
            reason,
        }),
        E::CampaignResponseRecorded {
            campaign_id,
            response,
        } => at_v1::<S, _>(v1::CampaignResponseRecorded {
            campaign_id: campaign_id.into(),
            response: response.into(),
        }),
        E::LeadLinked { lead_id } => at_v1::<S, _>(v1::LeadLinked {
            lead_id: lead_id.into(),
        }),
        E::Forgotten {
            reason,
            legal_basis,
            leads,
        } => at_v1::<S, _>(v1::CustomerForgotten {
            reason,
            legal_basis,
            leads: leads.into_iter().map(Into::into).collect(),
        }),
    }
}

fn encode_lead<S: Sink>(e: LeadEvent) -> (u16, S::Out) {
    use LeadEvent as E;
    match e {
        E::Captured(c) => at_v1::<S, _>(v1::LeadCaptured::from(c)),
        E::Assigned { owner, rule } => at_v1::<S, _>(v1::LeadAssigned { owner, rule }),
        E::Contacted { channel, agent } => at_v1::<S, _>(v1::LeadContacted {
            channel: channel.into(),
            agent,
        }),
        E::Qualified { note } => at_v1::<S, _>(v1::LeadQualified { note }),
        E::Disqualified { reason } => at_v1::<S, _>(v1::LeadDisqualified { reason }),
        E::Converted {
            customer_id,
            new_customer,
            opportunity_id,
        } => at_v1::<S, _>(v1::LeadConverted {
            customer_id: customer_id.into(),
            new_customer,
            opportunity_id: opportunity_id.map(Into::into),
        }),
    }
}

fn encode_campaign<S: Sink>(e: CampaignEvent) -> (u16, S::Out) {
    use CampaignEvent as E;
    match e {
        E::Created(c) => at_v1::<S, _>(v1::CampaignCreated::from(c)),
        E::Sent {
            wave,
            recipients,
            skipped,
        } => at::<S, _>(2, v2::CampaignSent::new(wave, recipients, skipped)),
        E::CostRecorded { amount, note } => at_v1::<S, _>(v1::CampaignCostRecorded {
            amount: amount.into(),
            note,
        }),
    }
}

/// Decodes a payload written with (event_type, schema_version) and upcasts it to the
/// current domain event. A sealed payload decodes with its personal text empty, and its
/// [`Seal`] (checked to fit the event: one sealed text per emptied field).
pub fn decode_payload(
    aggregate: AggregateRef,
    event_type: &str,
    schema_version: u16,
    bytes: &[u8],
) -> Result<(DomainEvent, Option<Seal>), PayloadError> {
    let Ok(i) = SCHEMA_VERSIONS.binary_search_by(|(t, _)| (*t).cmp(event_type)) else {
        return Err(PayloadError::UnknownEventType {
            event_type: event_type.to_owned(),
        });
    };
    let (event_type, current) = SCHEMA_VERSIONS[i];
    if event_type.split_once('.').map(|(kind, _)| kind) != Some(aggregate.kind().name()) {
        return Err(PayloadError::WrongAggregate {
            event_type,
            aggregate: aggregate.kind(),
        });
    }
    let mut cx = Cx {
        event_type,
        version: schema_version,
        current,
    };
    if !(1..=current).contains(&schema_version) {
        return Err(cx.unknown_version());
    }
    // A sealed payload: its seal, then the plain version's struct.
    let (seal, bytes) = match sealed_versions(event_type) {
        Some((plain, sealed)) if schema_version == sealed => {
            let (seal, rest) = postcard::take_from_bytes::<Seal>(bytes).map_err(|source| {
                PayloadError::Malformed {
                    event_type,
                    version: schema_version,
                    source,
                }
            })?;
            cx.version = plain;
            (Some(seal), rest)
        }
        _ => (None, bytes),
    };
    let mut event = match aggregate {
        AggregateRef::Customer(id) => DomainEvent::Customer(id, decode_customer(cx, bytes)?),
        AggregateRef::Lead(id) => DomainEvent::Lead(id, decode_lead(cx, bytes)?),
        AggregateRef::Campaign(id) => DomainEvent::Campaign(id, decode_campaign(cx, bytes)?),
    };
    if let Some(seal) = &seal {
        check_fits(&mut event, seal).map_err(|reason| PayloadError::Invalid {
            event_type,
            version: schema_version,
            field: "seal",
            reason,
        })?;
    }
    Ok((event, seal))
}

/// The event type and schema version being decoded, for errors.
#[derive(Clone, Copy)]
struct Cx {
    event_type: &'static str,
    version: u16,
    current: u16,
}

impl Cx {
    /// Reads wire struct `W` (all of `bytes`) and converts it to the domain value `E`.
    fn read<W, E>(self, bytes: &[u8]) -> Result<E, PayloadError>
    where
        W: DeserializeOwned,
        E: TryFrom<W>,
        Invalid: From<E::Error>,
    {
        let Self {
            event_type,
            version,
            ..
        } = self;
        let (wire, rest) =
            postcard::take_from_bytes::<W>(bytes).map_err(|source| PayloadError::Malformed {
                event_type,
                version,
                source,
            })?;
        if !rest.is_empty() {
            return Err(PayloadError::TrailingBytes {
                event_type,
                version,
                count: rest.len(),
            });
        }
        E::try_from(wire).map_err(|e| {
            let Invalid { field, reason } = e.into();
            PayloadError::Invalid {
                event_type,
                version,
                field,
                reason,
            }
        })
    }

    const fn unknown_version(self) -> PayloadError {
        PayloadError::UnknownSchemaVersion {
            event_type: self.event_type,
            version: self.version,
            current: self.current,
        }
    }
}

fn decode_customer(cx: Cx, b: &[u8]) -> Result<CustomerEvent, PayloadError> {
    use CustomerEvent as E;
    Ok(match (cx.event_type, cx.version) {
        ("customer.registered", 1) => E::Registered(cx.read::<v1::CustomerRegistered, _>(b)?),
        ("customer.profile_updated", 1) => E::ProfileUpdated(cx.read::<v1::ProfilePatch, _>(b)?),
        ("customer.consent_changed", 1) => cx.read::<v1::ConsentChanged, _>(b)?,
        ("customer.tagged", 1) => cx.read::<v1::Tagged, _>(b)?,
        ("customer.untagged", 1) => cx.read::<v1::Untagged, _>(b)?,
        ("customer.relationship_linked", 1) => cx.read::<v1::RelationshipLinked, _>(b)?,
        ("customer.interaction_logged", 1) => {
            E::InteractionLogged(cx.read::<v1::InteractionLogged, _>(b)?)
        }
        ("customer.order_placed", 1) => E::OrderPlaced(cx.read::<v1::OrderPlaced, _>(b)?),
        ("customer.return_recorded", 1) => E::ReturnRecorded(cx.read::<v1::ReturnRecorded, _>(b)?),
        ("customer.ticket_opened", 1) => E::TicketOpened(cx.read::<v1::TicketOpened, _>(b)?),
        ("customer.ticket_assigned", 1) => cx.read::<v1::TicketAssigned, _>(b)?,
        ("customer.ticket_responded", 1) => cx.read::<v1::TicketResponded, _>(b)?,
        ("customer.ticket_customer_replied", 1) => cx.read::<v1::TicketCustomerReplied, _>(b)?,
        ("customer.ticket_resolved", 1) => cx.read::<v1::TicketResolved, _>(b)?,
        ("customer.ticket_reopened", 1) => cx.read::<v1::TicketReopened, _>(b)?,
        ("customer.ticket_closed", 1) => cx.read::<v1::TicketClosed, _>(b)?,
        ("customer.opportunity_opened", 1) => {
            E::OpportunityOpened(cx.read::<v1::OpportunityOpened, _>(b)?)
        }
        ("customer.opportunity_stage_moved", 1) => cx.read::<v1::OpportunityStageMoved, _>(b)?,
        ("customer.opportunity_won", 1) => cx.read::<v1::OpportunityWon, _>(b)?,
        ("customer.opportunity_won", 2) => cx.read::<v2::OpportunityWon, _>(b)?,
        ("customer.opportunity_lost", 1) => cx.read::<v1::OpportunityLost, _>(b)?,
        ("customer.opportunity_updated", 1) => cx.read::<v1::OpportunityUpdated, _>(b)?,
        ("customer.opportunity_reopened", 1) => cx.read::<v1::OpportunityReopened, _>(b)?,
        ("customer.campaign_response_recorded", 1) => {
            cx.read::<v1::CampaignResponseRecorded, _>(b)?
        }
        ("customer.lead_linked", 1) => cx.read::<v1::LeadLinked, _>(b)?,
        ("customer.forgotten", 1) => cx.read::<v1::CustomerForgotten, _>(b)?,
        _ => return Err(cx.unknown_version()),
    })
}

fn decode_lead(cx: Cx, b: &[u8]) -> Result<LeadEvent, PayloadError> {
    Ok(match (cx.event_type, cx.version) {
        ("lead.captured", 1) => LeadEvent::Captured(cx.read::<v1::LeadCaptured, _>(b)?),
        ("lead.assigned", 1) => cx.read::<v1::LeadAssigned, _>(b)?,
        ("lead.contacted", 1) => cx.read::<v1::LeadContacted, _>(b)?,
        ("lead.qualified", 1) => cx.read::<v1::LeadQualified, _>(b)?,
        ("lead.disqualified", 1) => cx.read::<v1::LeadDisqualified, _>(b)?,
        ("lead.converted", 1) => cx.read::<v1::LeadConverted, _>(b)?,
        _ => return Err(cx.unknown_version()),
    })
}

fn decode_campaign(cx: Cx, b: &[u8]) -> Result<CampaignEvent, PayloadError> {
    Ok(match (cx.event_type, cx.version) {
        ("campaign.created", 1) => CampaignEvent::Created(cx.read::<v1::CampaignCreated, _>(b)?),
        ("campaign.sent", 1) => cx.read::<v1::CampaignSent, _>(b)?,
        ("campaign.sent", 2) => cx.read::<v2::CampaignSent, _>(b)?,
        ("campaign.cost_recorded", 1) => cx.read::<v1::CampaignCostRecorded, _>(b)?,
        _ => return Err(cx.unknown_version()),
    })
}

#[cfg(test)]
mod tests {
    use super::SCHEMA_VERSIONS;

    #[test]
    fn schema_versions_are_sorted_unique_and_name_their_aggregate() {
        assert!(
            SCHEMA_VERSIONS.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        for (event_type, version) in SCHEMA_VERSIONS {
            let kind = event_type.split_once('.').map(|(k, _)| k);
            assert!(
                matches!(kind, Some("customer" | "lead" | "campaign")),
                "{event_type}"
            );
            assert!(*version >= 1, "{event_type}");
        }
    }
}
