//! Keys of the 360 read model (inside the projection's tree).
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `c` | customer id | [`crate::CustomerRecord`] |
//! | `f` | customer id | [`crate::CustomerFacts`] (compact, for population statistics) |
//! | `t` | customer id, chunk number (u32) | up to [`TIMELINE_CHUNK`] [`crate::TimelineEntry`]s, each postcard-encoded, in the order applied |
//! | `g` | campaign id | [`crate::CampaignInfo`] |
//! | `l` | lead id | [`crate::LeadInfo`] |
//! | `it` | tag, 0, customer id | empty: customers by tag |
//! | `io` | owner, 0, customer id | empty: customers by owner |
//! | `sr` | inverted last order time, customer id | empty: most recent buyers first |
//! | `sv` | inverted revenue, customer id | empty: highest revenue first |

pub const CUSTOMER: u8 = b'c';
pub const FACTS: u8 = b'f';
pub const TIMELINE: u8 = b't';

/// Timeline entries per chunk. A timeline is kept in chunks (appended to, written back with
/// the record) rather than one key per event: sled writes ~70k keys/s on the bench machine,
/// which bounded a rebuild at a fraction of the stream's read rate.
pub const TIMELINE_CHUNK: u32 = 32;
pub const CAMPAIGN: u8 = b'g';
pub const LEAD: u8 = b'l';
pub const BY_TAG: &[u8] = b"it";
pub const BY_OWNER: &[u8] = b"io";
pub const BY_RECENCY: &[u8] = b"sr";
pub const BY_VALUE: &[u8] = b"sv";

#[must_use]
pub fn id_key(prefix: u8, id: [u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(prefix);
    k.extend_from_slice(&id);
    k
}

/// Order-preserving encoding of a signed time (microseconds).
#[must_use]
pub fn time_bytes(t: i64) -> [u8; 8] {
    (t.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

/// The chunk holding a customer's timeline entry number `n`.
#[must_use]
pub fn timeline_chunk(customer: [u8; 16], n: u32) -> Vec<u8> {
    let mut k = id_key(TIMELINE, customer);
    k.extend_from_slice(&(n / TIMELINE_CHUNK).to_be_bytes());
    k
}

/// Position of a timeline entry in timeline order (business time, then stream order): the
/// page cursor of `GetTimeline`.
#[must_use]
pub fn timeline_key(customer: [u8; 16], occurred_at: i64, seq: u64, index: u16) -> Vec<u8> {
    let mut k = id_key(TIMELINE, customer);
    k.extend_from_slice(&time_bytes(occurred_at));
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

#[must_use]
pub fn text_index(prefix: &[u8], text: &str, customer: [u8; 16]) -> Vec<u8> {
    let mut k = text_prefix(prefix, text);
    k.extend_from_slice(&customer);
    k
}

#[must_use]
pub fn text_prefix(prefix: &[u8], text: &str) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(text.as_bytes());
    k.push(0);
    k
}

/// Descending order of `value` (largest first), then customer id.
#[must_use]
pub fn desc_index(prefix: &[u8], value: i64, customer: [u8; 16]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for b in time_bytes(value) {
        k.push(!b);
    }
    k.extend_from_slice(&customer);
    k
}
