//! What the 360 model stores: plain serde structs owned by this crate (the read model's
//! own format, versioned by [`crate::Customer360`]'s `VERSION`). Ids are raw UUID bytes,
//! times are microseconds since the epoch (business time, `occurred_at`), amounts are
//! minor units keyed by ISO currency code.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub type Id = [u8; 16];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub id: Id,
    /// `false` when the registration itself was dead-lettered and the record holds only
    /// what later events told.
    pub registered: bool,
    pub registered_at: i64,
    /// Who registered the customer (`user:alice`, `import:crm-import`, ...).
    pub registered_by: String,
    /// Aggregate version of the customer's last applied event.
    pub version: u64,
    /// Stream sequence of the last event that changed this record.
    pub last_seq: u64,
    pub updated_at: i64,
    pub profile: ProfileRecord,
    pub owner: Option<String>,
    pub team: Option<String>,
    pub acquisition: Option<AcquisitionRecord>,
    pub origin_lead: Option<LeadOrigin>,
    /// Consent per channel (`email`, `sms`, ...).
    pub consent: BTreeMap<String, ConsentRecord>,
    pub tags: BTreeSet<String>,
    /// `(kind, other customer)`.
    pub relationships: BTreeSet<(String, Id)>,
    pub commerce: Commerce,
    /// Interactions per channel.
    pub engagement: BTreeMap<String, ChannelEngagement>,
    pub opportunities: BTreeMap<Id, Opportunity>,
    pub marketing: Marketing,
    pub tickets: BTreeMap<Id, Ticket>,
    /// Stream sequences of this customer's dead-lettered events: the record is incomplete.
    pub dead_letters: Vec<u64>,
    /// Entries in the customer's timeline (they are stored in chunks of
    /// [`crate::keys::TIMELINE_CHUNK`], in the order they were applied).
    pub timeline_len: u32,
    /// The customer was forgotten (erased at their request): every personal field of
    /// the record and its timeline is empty.
    pub forgotten: Option<Erasure>,
}

/// When and why a customer was erased (none of it personal).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub at: i64,
    pub legal_basis: String,
    pub reason: String,
    pub by: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRecord {
    pub given_name: String,
    pub family_name: String,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub address: Option<AddressRecord>,
    pub language: Option<String>,
    pub country: Option<String>,
    pub external_ids: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquisitionRecord {
    pub source: String,
    pub medium: String,
    pub campaign: Option<Id>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadOrigin {
    pub lead_id: Id,
    /// From the lead's capture, when the lead's events were seen.
    pub source: Option<String>,
    pub captured_at: Option<i64>,
    pub converted_at: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub granted: bool,
    pub source: String,
    pub changed_at: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commerce {
    pub orders: u32,
    pub first_order_at: Option<i64>,
    pub last_order_at: Option<i64>,
    /// Per currency.
    pub amounts: BTreeMap<String, Amounts>,
    pub returns: u32,
    pub items: u64,
    /// Per product category: units and line amount (order currency mixed: see `amounts`
    /// for money per currency).
    pub categories: BTreeMap<String, CategoryStats>,
    pub sales_channels: BTreeMap<String, u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts {
    pub orders: u32,
    /// Sum of order totals.
    pub revenue_minor: i64,
    pub refunded_minor: i64,
    pub discount_minor: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryStats {
    pub units: u64,
    pub orders: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEngagement {
    pub last_at: i64,
    pub inbound: u32,
    pub outbound: u32,
    /// Interactions per day (days since the epoch): windows are counted against `as_of`.
    pub per_day: BTreeMap<i64, u32>,
    pub sentiment_sum: i64,
    pub sentiment_count: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opportunity {
    pub name: String,
    pub pipeline: String,
    pub stage: String,
    /// Frozen at stage entry.
    pub probability_pct: u8,
    pub forecast: String,
    pub amount_minor: i64,
    pub currency: String,
    pub owner: Option<String>,
    pub status: DealStatus,
    pub opened_at: i64,
    pub stage_entered_at: i64,
    pub closed_at: Option<i64>,
    pub lost_reason: Option<String>,
    pub expected_close: Option<i64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DealStatus {
    #[default]
    Open,
    Won,
    Lost,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marketing {
    /// Campaign -> send waves that included the customer.
    pub received: BTreeMap<Id, u32>,
    /// Campaign -> the responses recorded.
    pub responses: BTreeMap<Id, ResponseFlags>,
    pub last_response_at: Option<i64>,
    pub last_response: Option<String>,
    pub unsubscribes: u32,
    /// Revenue attributed to campaign conversions, per currency.
    pub attributed_minor: BTreeMap<String, i64>,
    /// Sends received while the customer's consent to the campaign's channel did not
    /// hold (only sends recorded before consent was checked at the send can be such).
    pub received_without_consent: u32,
    /// Sends that left the customer out because their consent did not hold.
    pub skipped: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseFlags {
    pub delivered: bool,
    pub opened: bool,
    pub clicked: bool,
    pub unsubscribed: bool,
    pub converted: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub opened_at: i64,
    pub channel: String,
    pub category: String,
    pub priority: String,
    pub subject: String,
    pub sla_policy: String,
    pub first_response_target_mins: u32,
    pub resolution_target_mins: u32,
    pub status: TicketState,
    pub agent: Option<String>,
    pub first_response_at: Option<i64>,
    /// Since when the ticket waits on the customer (SLA clocks paused).
    pub awaiting_since: Option<i64>,
    /// Total time spent waiting on the customer, excluded from the resolution clock.
    pub paused_micros: i64,
    pub first_resolved_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// Paused time at the first resolution.
    pub paused_at_first_resolution: i64,
    pub reopened: u32,
    pub closed_at: Option<i64>,
    pub csat: Option<u8>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketState {
    #[default]
    Open,
    AwaitingCustomer,
    Resolved,
    Closed,
}

/// The few numbers population statistics (RFM quintiles) need, kept apart from the record
/// so a scan over every customer reads little.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerFacts {
    pub orders: u32,
    pub last_order_at: Option<i64>,
    /// Revenue net of refunds in the reporting currency.
    pub net_revenue_minor: i64,
}

/// The entries of a stored timeline chunk (see [`crate::keys::TIMELINE_CHUNK`]).
pub fn decode_chunk(mut bytes: &[u8], into: &mut Vec<TimelineEntry>) -> postcard::Result<()> {
    while !bytes.is_empty() {
        let (entry, rest) = postcard::take_from_bytes(bytes)?;
        into.push(entry);
        bytes = rest;
    }
    Ok(())
}

/// Timeline order: business time, then stream position (the order a page walks).
pub fn sort_timeline(entries: &mut [TimelineEntry]) {
    entries.sort_unstable_by_key(|e| (e.occurred_at, e.seq, e.index));
}

/// One entry of a customer's timeline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Where the event is stored: the stream sequence of its message and its position
    /// in the message (0 unless the message groups several events of one command).
    pub seq: u64,
    pub index: u16,
    pub event_id: Id,
    /// `customer.order_placed`, `campaign.sent`, `lead.converted`, ...
    pub event_type: String,
    /// The aggregate the event belongs to (`customer:<id>`, `campaign:<id>`, ...).
    pub source: String,
    pub version: u64,
    pub occurred_at: i64,
    pub recorded_at: i64,
    pub actor: String,
    pub summary: Summary,
}

/// A timeline entry's one-line description, stored in parts so personal data is kept
/// apart from the rest: a reader without `pii.read` gets the same line with every
/// personal part replaced by [`Summary::REDACTED`]. Which data is personal: names, free
/// text a person wrote or that can name one (interaction subjects, ticket subjects,
/// resolutions and reopen reasons, return reasons, consent sources).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary(pub Vec<Part>);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Part {
    Text(String),
    Personal(String),
}

impl Summary {
    /// What a reader without `pii.read` sees in place of a personal part.
    pub const REDACTED: &'static str = "[personal data]";

    /// A summary with no personal part.
    #[must_use]
    pub fn text(s: impl Into<String>) -> Self {
        Self(vec![Part::Text(s.into())])
    }

    /// Appends text that is not personal data.
    #[must_use]
    pub fn t(mut self, s: impl Into<String>) -> Self {
        self.0.push(Part::Text(s.into()));
        self
    }

    /// Appends personal data.
    #[must_use]
    pub fn p(mut self, s: impl Into<String>) -> Self {
        self.0.push(Part::Personal(s.into()));
        self
    }

    /// The line, with personal parts shown only when `pii`.
    #[must_use]
    pub fn render(&self, pii: bool) -> String {
        self.0
            .iter()
            .map(|part| match part {
                Part::Text(s) => s.as_str(),
                Part::Personal(s) if pii => s.as_str(),
                Part::Personal(_) => Self::REDACTED,
            })
            .collect()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignInfo {
    pub name: String,
    pub channel: String,
    pub created_at: i64,
    /// The consent its channel needs (`email`, ...; `None` for a channel that needs none).
    pub consent: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadInfo {
    pub source: String,
    pub campaign: Option<Id>,
    pub captured_at: i64,
    pub converted_to: Option<Id>,
}
