//! `history`: everything the stream holds about one customer, in stream order, each
//! event decoded with its envelope: the customer's own events, the lead they were
//! converted from, and the campaign sends that named them (as recipient or left out).
//! Quarantined positions are left out.

use std::collections::BTreeMap;

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
        actor: e.meta.actor.label(),
        command_id: e.meta.command_id.0.to_string(),
        correlation_id: e.meta.correlation_id.to_string(),
        causation_id: e.meta.causation_id.map(|c| c.to_string()),
        commit_index: e.meta.commit_index,
        commit_size: e.meta.commit_size,
        hash: hex::encode(e.hash.0),
        prev_hash: hex::encode(e.meta.prev_hash.0),
        event: format!("{:?}", e.event),
    }
}

/// The customer's history, filtered. A message that does not decode is an error naming
/// its position (`verify` reports every such message).
///
/// # Errors
/// The stream cannot be read, a message does not decode, or the customer has no events.
pub async fn history(
    source: &Source,
    customer: CustomerId,
    filter: &Filter,
) -> Result<Vec<Entry>, AuditError> {
    let undecodable = |seq: u64, e: crm_events::DecodeError| AuditError::Undecodable {
        seq,
        reason: e.to_string(),
    };
    // Positions set aside by the quarantine log are not events of ours: left out.
    let quarantined: std::collections::BTreeSet<u64> = crate::verify::quarantine_log(source)
        .await?
        .iter()
        .map(|r| r.seq)
        .collect();
    let mut entries: BTreeMap<(u64, u16), Entry> = BTreeMap::new();
    let mut own = source
        .messages_on(&source.scheme.subject(AggregateRef::Customer(customer)))
        .await?;
    own.retain(|(seq, ..)| !quarantined.contains(seq));
    if own.is_empty() {
        return Err(AuditError::NoSuchCustomer(customer.0.to_string()));
    }
    let mut lead = None;
    for (seq, subject, payload) in &own {
        for (i, e) in decode_message(payload)
            .map_err(|e| undecodable(*seq, e))?
            .iter()
            .enumerate()
        {
            if let DomainEvent::Customer(_, CustomerEvent::Registered(r)) = &e.event {
                lead = r.lead;
            }
            if filter.admits(e) {
                entries.insert((*seq, i as u16), entry(*seq, subject, "customer", e));
            }
        }
    }
    if let Some(lead) = lead {
        let subject = source.scheme.subject(AggregateRef::Lead(lead));
        for (seq, subject, payload) in source.messages_on(&subject).await? {
            if quarantined.contains(&seq) {
                continue;
            }
            for (i, e) in decode_message(&payload)
                .map_err(|e| undecodable(seq, e))?
                .iter()
                .enumerate()
            {
                if filter.admits(e) {
                    entries.insert((seq, i as u16), entry(seq, &subject, "origin_lead", e));
                }
            }
        }
    }
    let campaigns = format!("{}.campaign.>", source.scheme.prefix());
    for (seq, subject, payload) in source.messages_on(&campaigns).await? {
        if quarantined.contains(&seq) {
            continue;
        }
        for (i, e) in decode_message(&payload)
            .map_err(|e| undecodable(seq, e))?
            .iter()
            .enumerate()
        {
            let names = match &e.event {
                DomainEvent::Campaign(
                    _,
                    CampaignEvent::Sent {
                        recipients,
                        skipped,
                        ..
                    },
                ) => {
                    recipients.contains(&customer)
                        || skipped.iter().any(|s| s.customer_id == customer)
                }
                _ => false,
            };
            if names && filter.admits(e) {
                entries.insert((seq, i as u16), entry(seq, &subject, "campaign_send", e));
            }
        }
    }
    Ok(entries.into_values().collect())
}
