//! Subject access (GDPR Art. 15), the other half of the right to be forgotten:
//! everything the event log holds about one customer, as one JSON document. The
//! customer's own events and those of the leads converted into them, each with its
//! envelope and payload, personal data opened; and, flattened, every personal field
//! ever recorded (`personal_data`: event, field path, value). Campaign sends are left
//! out: they list other customers. A forgotten customer's export says so and holds no
//! personal data: there is none left to give.

use crm_domain::CustomerId;
use crm_events::Sealing;
use crm_events::personal::personal_text_mut;
use serde_json::{Value, json};

use crate::AuditError;
use crate::connect::Source;
use crate::history::{concerning, rfc3339};

/// The format of the document (its `format` field).
pub const FORMAT: &str = "crm-subject-access/1";

/// A customer's data, ready to hand over.
#[derive(Clone, Debug)]
pub struct SubjectData {
    pub document: Value,
    pub events: usize,
    pub personal_fields: usize,
    pub forgotten: bool,
}

/// Everything the log holds about `customer` (see the module documentation).
///
/// # Errors
/// As [`concerning`]; [`AuditError::Sealed`] when the replay cannot open personal data
/// (it has no key store): an export missing it would mislead.
pub async fn subject_data(
    source: &Source,
    customer: CustomerId,
) -> Result<SubjectData, AuditError> {
    let messages = concerning(source, customer).await?;
    let mut events = Vec::new();
    let mut personal = Vec::new();
    let mut forgotten = false;
    for m in messages.iter().filter(|m| m.concerns != "campaign") {
        for e in &m.events {
            if e.is_sealed() {
                return Err(AuditError::Sealed(
                    "personal data is sealed and this replay has no key store to open it".into(),
                ));
            }
            forgotten |= matches!(
                e.event,
                crm_domain::DomainEvent::Customer(_, crm_domain::CustomerEvent::Forgotten { .. })
            );
            let mut event = e.event.clone();
            for (field, value) in personal_text_mut(&mut event) {
                if !value.is_empty() {
                    personal.push(json!({
                        "event_id": e.meta.event_id.to_string(),
                        "event_type": e.event_type,
                        "field": field,
                        "value": value.as_str(),
                    }));
                }
            }
            let (_, _, payload) = crm_events::payload_json(&e.event);
            events.push(json!({
                "position": m.seq,
                "aggregate": e.aggregate.to_string(),
                "event_id": e.meta.event_id.to_string(),
                "event_type": e.event_type,
                "schema_version": e.schema_version,
                "occurred_at": rfc3339(e.meta.occurred_at.0),
                "recorded_at": rfc3339(e.meta.recorded_at.0),
                "actor": e.meta.actor.label(),
                "personal_text": match e.sealing {
                    Sealing::Plain => "plain",
                    Sealing::Sealed(_) => "sealed",
                    Sealing::Opened => "opened",
                    Sealing::Erased => "erased",
                },
                "payload": payload,
            }));
        }
    }
    let (n_events, n_personal) = (events.len(), personal.len());
    Ok(SubjectData {
        document: json!({
            "format": FORMAT,
            "customer_id": customer.0.to_string(),
            "forgotten": forgotten,
            "personal_data": personal,
            "events": events,
        }),
        events: n_events,
        personal_fields: n_personal,
        forgotten,
    })
}
