//! The quarantine log: records that a stream position holds a message that is not ours
//! (a stranger's publish, an operator's mistake, a message from a restored backup) so
//! the command handler and every projector skip exactly that position.
//!
//! Records are stored on their own subject ([`SubjectScheme::quarantine`]), never on an
//! aggregate subject, and form their own hash chain:
//!
//! ```text
//! [format: u8 = 3] [postcard(QuarantineV1)] [sha256 of everything before: 32 bytes]
//! ```
//!
//! Like every stored format this one is forever: a new field means a new format byte,
//! and this one keeps decoding (golden fixture `tests/fixtures/messages/quarantine.v1.bin`).
//!
//! [`SubjectScheme::quarantine`]: crate::SubjectScheme::quarantine

use crm_domain::{Actor, CommandId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::envelope::{actor_from_parts, actor_parts};
use crate::{DecodeError, EncodedEvent, EventHash, verify_hash};

/// The first byte of a quarantine record.
pub const QUARANTINE_FORMAT_V1: u8 = 3;
const HASH_LEN: usize = 32;

/// One quarantined position, as recorded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Quarantine {
    /// The stream sequence of the message set aside.
    pub seq: u64,
    /// The subject it is stored on.
    pub subject: String,
    /// SHA-256 of the message's payload: the record names exactly those bytes.
    pub payload_sha256: EventHash,
    /// Why, in the operator's words.
    pub reason: String,
    /// Who quarantined it (from authentication).
    pub actor: Actor,
    pub command_id: CommandId,
    pub recorded_at: Timestamp,
    /// 1-based position of the record in the quarantine log.
    pub version: u64,
    /// Hash of the previous record ([`EventHash::GENESIS`] for the first).
    pub prev_hash: EventHash,
}

#[derive(Serialize, Deserialize)]
struct QuarantineV1<'a> {
    seq: u64,
    #[serde(borrow)]
    subject: &'a str,
    payload_sha256: [u8; 32],
    #[serde(borrow)]
    reason: &'a str,
    actor_kind: u8,
    #[serde(borrow)]
    actor_id: &'a str,
    command_id: [u8; 16],
    recorded_at: i64,
    version: u64,
    prev_hash: [u8; 32],
}

/// Encodes a quarantine record (its body and hash, like an event's).
#[must_use]
pub fn encode_quarantine(q: &Quarantine) -> EncodedEvent {
    let (actor_kind, actor_id) = actor_parts(&q.actor);
    let v1 = QuarantineV1 {
        seq: q.seq,
        subject: &q.subject,
        payload_sha256: q.payload_sha256.0,
        reason: &q.reason,
        actor_kind,
        actor_id,
        command_id: *q.command_id.0.as_bytes(),
        recorded_at: q.recorded_at.as_micros(),
        version: q.version,
        prev_hash: q.prev_hash.0,
    };
    let mut bytes = vec![QUARANTINE_FORMAT_V1];
    bytes = postcard::to_extend(&v1, bytes).expect("postcard encodes a quarantine record");
    let hash = EventHash(Sha256::digest(&bytes).into());
    bytes.extend_from_slice(&hash.0);
    EncodedEvent { bytes, hash }
}

/// Decodes a stored quarantine record, verifying its hash. Returns the record and its
/// hash (the next record's `prev_hash`).
pub fn decode_quarantine(bytes: &[u8]) -> Result<(Quarantine, EventHash), DecodeError> {
    let hash = verify_hash(bytes)?;
    let body = &bytes[..bytes.len() - HASH_LEN];
    if body[0] != QUARANTINE_FORMAT_V1 {
        return Err(DecodeError::UnknownFormat(body[0]));
    }
    let (v1, rest): (QuarantineV1<'_>, _) =
        postcard::take_from_bytes(&body[1..]).map_err(DecodeError::Envelope)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    let actor = actor_from_parts(v1.actor_kind, v1.actor_id)
        .ok_or(DecodeError::UnknownActor(v1.actor_kind))?;
    Ok((
        Quarantine {
            seq: v1.seq,
            subject: v1.subject.to_owned(),
            payload_sha256: EventHash(v1.payload_sha256),
            reason: v1.reason.to_owned(),
            actor,
            command_id: CommandId(Uuid::from_bytes(v1.command_id)),
            recorded_at: Timestamp::from_micros(v1.recorded_at),
            version: v1.version,
            prev_hash: EventHash(v1.prev_hash),
        },
        hash,
    ))
}

/// SHA-256 of a stored message's payload, as a record names it.
#[must_use]
pub fn payload_digest(payload: &[u8]) -> EventHash {
    EventHash(Sha256::digest(payload).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Quarantine {
        Quarantine {
            seq: 42,
            subject: "crm.v1.customer.0190c4d2a1b27c3d8e4f5a6b7c8d9e0f".into(),
            payload_sha256: payload_digest(b"not ours"),
            reason: "published by a test harness".into(),
            actor: Actor::User("ops@example.com".into()),
            command_id: CommandId(Uuid::from_u128(7)),
            recorded_at: Timestamp::from_micros(1_700_000_000_000_000),
            version: 1,
            prev_hash: EventHash::GENESIS,
        }
    }

    #[test]
    fn a_record_round_trips_and_its_hash_covers_every_byte() {
        let encoded = encode_quarantine(&record());
        let (back, hash) = decode_quarantine(&encoded.bytes).unwrap();
        assert_eq!(back, record());
        assert_eq!(hash, encoded.hash);
        for i in 0..encoded.bytes.len() {
            let mut tampered = encoded.bytes.clone();
            tampered[i] ^= 1;
            assert!(decode_quarantine(&tampered).is_err(), "byte {i} flipped");
        }
    }

    #[test]
    fn an_event_is_not_a_quarantine_record() {
        assert!(matches!(
            decode_quarantine(&[1; 40]),
            Err(DecodeError::HashMismatch { .. })
        ));
        let mut event = vec![1u8; 8];
        let hash: [u8; 32] = Sha256::digest(&event).into();
        event.extend_from_slice(&hash);
        assert!(matches!(
            decode_quarantine(&event),
            Err(DecodeError::UnknownFormat(1))
        ));
    }
}
