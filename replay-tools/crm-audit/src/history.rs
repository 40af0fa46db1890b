//! `history`: everything the stream holds about one customer, in stream order, each
//! event decoded with its envelope: the customer's own events, the lead they were
//! converted from, and the campaign sends that named them (as recipient or left out).
//! Quarantined positions are left out.

use crm_domain::{AggregateRef, CampaignEvent, CustomerEvent, CustomerId, DomainEvent};
use crm_events::{Envelope, decode_message};
use serde::Serialize;

use crate::AuditError;
use crate::connect::Source;

/// One event of a history, as the auditor sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Stream position of the message holding the event.
    pub position: u64,
    pub subject: String,
    pub aggregate: String,
    /// Why the event is in this customer's history: `customer`, `origin_lead` or
    /// `campaign_send`.
    pub concerns: &'static str,
    pub event_type: String,
    pub schema_version: u16,
    pub version: u64,
    /// Business time and recorded time, RFC 3339.
    pub occurred_at: String,
    pub recorded_at: String,
    /// The same two times in microseconds (for cuts; not exported).
    #[serde(skip)]
    pub occurred_micros: i64,
    #[serde(skip)]
    pub recorded_micros: i64,
    pub actor: String,
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    /// The event's place in its command's commit (`index` of `size`).
    pub commit_index: u16,
    pub commit_size: u16,
    pub hash: String,
    pub prev_hash: String,
    /// The decoded event (its fields as the domain names them).
    pub event: String,
    /// The event's personal text: `plain` (written before sealing), `opened`, `erased`
    /// (the customer was forgotten: its personal fields are empty) or `sealed` (read
    /// without the key store).
    pub personal_text: &'static str,
}

/// Which entries to keep. Empty fields admit all.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Business time, microseconds: `[from, to)`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Event types (e.g. `customer.order_placed`).
    pub types: Vec<String>,
}

impl Filter {
    fn admits(&self, e: &Envelope) -> bool {
        let at = e.meta.occurred_at.0;
        self.from.is_none_or(|t| at >= t)
            && self.to.is_none_or(|t| at < t)
            && (self.types.is_empty() || self.types.contains(&e.event_type))
    }
}

pub(crate) fn rfc3339(micros: i64) -> String {
    crm_proto::timestamp_to_proto(crm_domain::Timestamp(micros)).to_string()
}

fn entry(position: u64, subject: &str, concerns: &'static str, e: &Envelope) -> Entry {
    Entry {
        position,
        subject: subject.to_owned(),
        aggregate: e.aggregate.to_string(),
        concerns,
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        version: e.meta.version,
        occurred_at: rfc3339(e.meta.occurred_at.0),
        recorded_at: rfc3339(e.meta.recorded_at.0),
        occurred_micros: e.meta.occurred_at.0,
        recorded_micros: e.meta.recorded_at.0,
        actor: e.meta.actor.label(),
        command_id: e.meta.command_id.0.to_string(),
        correlation_id: e.meta.correlation_id.to_string(),
        causation_id: e.meta.causation_id.map(|c| c.to_string()),
        commit_index: e.meta.commit_index,
        commit_size: e.meta.commit_size,
        hash: hex::encode(e.hash.0),
        prev_hash: hex::encode(e.meta.prev_hash.0),
        event: format!("{:?}", e.event),
        personal_text: match e.sealing {
            crm_events::Sealing::Plain => "plain",
            crm_events::Sealing::Sealed(_) => "sealed",
            crm_events::Sealing::Opened => "opened",
            crm_events::Sealing::Erased => "erased",
        },
    }
}

/// One stored message that concerns a customer, decoded.
#[derive(Clone, Debug)]
pub struct Concerning {
    pub seq: u64,
    pub subject: String,
    /// `customer`, `origin_lead` or `campaign` (a campaign that sent to the customer or
    /// left them out: all its messages, as the customer's view needs its name).
    pub concerns: &'static str,
    pub events: Vec<Envelope>,
}

/// Every message concerning `customer`, in stream order, quarantined positions left out:
/// the customer's own, the leads converted into them, and the messages of every
/// campaign whose sends named them. What the history lists and the as-of views fold.
///
/// # Errors
/// The stream cannot be read, a message does not decode, or the customer has no events.
pub async fn concerning(
    source: &Source,
    customer: CustomerId,
) -> Result<Vec<Concerning>, AuditError> {
    // Positions set aside by the quarantine log are not events of ours: left out.
    let quarantined: std::collections::BTreeSet<u64> = crate::verify::quarantine_log(source)
        .await?
        .iter()
        .map(|r| r.seq)
        .collect();
    let decoded = |concerns, messages: Vec<(u64, String, bytes::Bytes)>| {
        messages
            .into_iter()
            .filter(|(seq, ..)| !quarantined.contains(seq))
            .map(|(seq, subject, payload)| {
                let mut events = decode_message(&payload).map_err(|e| AuditError::Undecodable {
                    seq,
                    reason: e.to_string(),
                })?;
                source.open_personal(seq, &mut events, false)?;
                Ok(Concerning {
                    events,
                    seq,
                    subject,
                    concerns,
                })
            })
            .collect::<Result<Vec<_>, AuditError>>()
    };
    let own_subject = source.scheme.subject(AggregateRef::Customer(customer));
    let mut out = decoded("customer", source.messages_on(&own_subject).await?)?;
    if out.is_empty() {
        return Err(AuditError::NoSuchCustomer(customer.0.to_string()));
    }
    // The leads converted into the customer: the one registered from, and those linked
    // to the customer later.
    let leads: std::collections::BTreeSet<_> = out
        .iter()
        .flat_map(|m| &m.events)
        .filter_map(|e| match &e.event {
            DomainEvent::Customer(_, CustomerEvent::Registered(r)) => r.lead,
            DomainEvent::Customer(_, CustomerEvent::LeadLinked { lead_id }) => Some(*lead_id),
            _ => None,
        })
        .collect();
    for lead in leads {
        let subject = source.scheme.subject(AggregateRef::Lead(lead));
        out.extend(decoded("origin_lead", source.messages_on(&subject).await?)?);
    }
    let campaigns = format!("{}.campaign.>", source.scheme.prefix());
    let campaign_messages = decoded("campaign", source.messages_on(&campaigns).await?)?;
    let naming: std::collections::BTreeSet<&str> = campaign_messages
        .iter()
        .filter(|m| m.events.iter().any(|e| names(e, customer)))
        .map(|m| m.subject.as_str())
        .collect();
    let naming: Vec<Concerning> = campaign_messages
        .iter()
        .filter(|m| naming.contains(m.subject.as_str()))
        .cloned()
        .collect();
    out.extend(naming);
    out.sort_by_key(|m| m.seq);
    Ok(out)
}

/// Whether a campaign send named the customer (as recipient or left out).
fn names(e: &Envelope, customer: CustomerId) -> bool {
    match &e.event {
        DomainEvent::Campaign(
            _,
            CampaignEvent::Sent {
                recipients,
                skipped,
                ..
            },
        ) => recipients.contains(&customer) || skipped.iter().any(|s| s.customer_id == customer),
        _ => false,
    }
}

/// The customer's history, filtered: [`concerning`]'s events, of the campaigns only the
/// sends that named them.
///
/// # Errors
/// As [`concerning`].
pub async fn history(
    source: &Source,
    customer: CustomerId,
    filter: &Filter,
) -> Result<Vec<Entry>, AuditError> {
    Ok(entries(
        &concerning(source, customer).await?,
        customer,
        filter,
    ))
}

/// The entries of `messages` that `filter` admits.
#[must_use]
pub fn entries(messages: &[Concerning], customer: CustomerId, filter: &Filter) -> Vec<Entry> {
    let mut out = Vec::new();
    for m in messages {
        for e in &m.events {
            let concerns = match m.concerns {
                "campaign" if !names(e, customer) => continue,
                "campaign" => "campaign_send",
                other => other,
            };
            if filter.admits(e) {
                out.push(entry(m.seq, &m.subject, concerns, e));
            }
        }
    }
    out
}
