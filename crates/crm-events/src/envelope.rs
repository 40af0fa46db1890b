//! The envelope around every event, its canonical bytes and the per-aggregate hash chain.
//!
//! An event's body is
//!
//! ```text
//! [format: u8 = 1] [postcard(EnvelopeV1)] [sha256 of everything before: 32 bytes]
//! ```
//!
//! The hash covers the exact stored bytes (never a re-encoding), and `EnvelopeV1`
//! carries the previous event's hash of the same aggregate, so each aggregate's
//! history is a hash chain an auditor can verify without trusting the writer.
//!
//! A stored **message** is either one event's body (format 1), or a **group**: the
//! consecutive events one command appends to one aggregate, stored as one message so
//! they land atomically without a JetStream batch:
//!
//! ```text
//! [format: u8 = 2] [postcard(Vec<event body>)] [sha256 of everything before: 32 bytes]
//! ```
//!
//! Every event inside a group is a complete format-1 body with its own hash, so the hash
//! chain (and each event's identity) does not depend on how events were grouped. A group
//! holds at least two events of one aggregate and one command, with consecutive versions
//! linked by `prev_hash`. Read stored messages with [`decode_message`].

use std::fmt;

use crm_domain::{Actor, AggregateKind, AggregateRef, CommandId, DomainEvent, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::payload::{PayloadError, decode_payload, encode_payload, encode_sealed_payload};
use crate::seal::{NONCE, SealError, Sealing, open_text, random_nonce};

/// The first byte of every body: the envelope format.
pub const ENVELOPE_FORMAT_V1: u8 = 1;
/// The first byte of a grouped message (several events of one aggregate and command).
pub const MESSAGE_FORMAT_GROUP: u8 = 2;
const HASH_LEN: usize = 32;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EventHash(pub [u8; 32]);

impl EventHash {
    /// The `prev_hash` of an aggregate's first event.
    pub const GENESIS: Self = Self([0; 32]);

    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({})", self.to_hex())
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Everything about an event except its payload: supplied by the writer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EventMeta {
    /// UUIDv7, unique per event.
    pub event_id: Uuid,
    /// 1-based position of the event in its aggregate's history.
    pub version: u64,
    /// Business time (from the command; receipt time by default).
    pub occurred_at: Timestamp,
    /// When the writer recorded it.
    pub recorded_at: Timestamp,
    pub actor: Actor,
    pub command_id: CommandId,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// Position of this event in its command's commit (0-based) and the commit's size.
    pub commit_index: u16,
    pub commit_size: u16,
    /// Hash of the aggregate's previous event ([`EventHash::GENESIS`] for the first).
    pub prev_hash: EventHash,
}

/// A decoded event with its envelope.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Envelope {
    pub meta: EventMeta,
    pub aggregate: AggregateRef,
    pub event_type: String,
    /// Schema version the payload was written with (the event is upcast to the current one).
    pub schema_version: u16,
    pub event: DomainEvent,
    /// Hash of this event's stored bytes.
    pub hash: EventHash,
    /// Whether the event's personal text is in the clear, sealed, opened or erased.
    pub sealing: Sealing,
}

impl Envelope {
    /// Whose key seals the event's personal text: its customer or lead (campaign events
    /// have no data subject).
    #[must_use]
    pub const fn data_subject(&self) -> Option<Uuid> {
        match self.aggregate {
            AggregateRef::Customer(id) => Some(id.0),
            AggregateRef::Lead(id) => Some(id.0),
            AggregateRef::Campaign(_) => None,
        }
    }

    /// Whether the event waits for its data subject's key ([`Self::unseal`]).
    #[must_use]
    pub const fn is_sealed(&self) -> bool {
        matches!(self.sealing, Sealing::Sealed(_))
    }

    /// Opens the sealed personal text with the data subject's key, or, when the key is
    /// gone (`None`: the subject was forgotten), marks it erased (the text stays
    /// empty). Anything not sealed is left as it is.
    ///
    /// # Errors
    /// The key does not open a text (another key, or the event was altered): the
    /// envelope is left sealed.
    pub fn unseal(&mut self, key: Option<&[u8; 32]>) -> Result<(), SealError> {
        let Sealing::Sealed(seal) = &self.sealing else {
            return Ok(());
        };
        match key {
            None => self.sealing = Sealing::Erased,
            Some(key) => {
                open_text(&mut self.event, self.meta.event_id, seal, key)?;
                self.sealing = Sealing::Opened;
            }
        }
        Ok(())
    }
}

/// An encoded event, ready to append.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EncodedEvent {
    pub bytes: Vec<u8>,
    pub hash: EventHash,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is {0} bytes, too short for an event")]
    TooShort(usize),
    #[error("unknown envelope format {0}")]
    UnknownFormat(u8),
    #[error("hash mismatch: the stored bytes hash to {computed}, the event claims {stored}")]
    HashMismatch {
        stored: EventHash,
        computed: EventHash,
    },
    #[error("malformed envelope: {0}")]
    Envelope(postcard::Error),
    #[error("{0} unexpected bytes between the envelope and its hash")]
    TrailingBytes(usize),
    #[error("unknown aggregate kind {0}")]
    UnknownAggregate(u8),
    #[error("unknown actor kind {0} (or a system actor with an id)")]
    UnknownActor(u8),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("a grouped message of several events: read it with decode_message")]
    Grouped,
    #[error("malformed event group: {0}")]
    Group(String),
}

#[derive(Serialize, Deserialize)]
struct EnvelopeV1<'a> {
    event_id: [u8; 16],
    aggregate_kind: u8,
    aggregate_id: [u8; 16],
    version: u64,
    #[serde(borrow)]
    event_type: &'a str,
    schema_version: u16,
    occurred_at: i64,
    recorded_at: i64,
    actor_kind: u8,
    #[serde(borrow)]
    actor_id: &'a str,
    command_id: [u8; 16],
    correlation_id: [u8; 16],
    causation_id: Option<[u8; 16]>,
    commit_index: u16,
    commit_size: u16,
    prev_hash: [u8; 32],
    #[serde(borrow)]
    payload: &'a [u8],
}

const fn kind_code(kind: AggregateKind) -> u8 {
    match kind {
        AggregateKind::Customer => 1,
        AggregateKind::Lead => 2,
        AggregateKind::Campaign => 3,
    }
}

const fn kind_from_code(code: u8) -> Option<AggregateKind> {
    match code {
        1 => Some(AggregateKind::Customer),
        2 => Some(AggregateKind::Lead),
        3 => Some(AggregateKind::Campaign),
        _ => None,
    }
}

pub(crate) fn actor_parts(actor: &Actor) -> (u8, &str) {
    match actor {
        Actor::User(id) => (1, id),
        Actor::Service(id) => (2, id),
        Actor::Import(id) => (3, id),
        Actor::Automation(id) => (4, id),
        Actor::System => (5, ""),
    }
}

pub(crate) fn actor_from_parts(kind: u8, id: &str) -> Option<Actor> {
    Some(match kind {
        1 => Actor::User(id.to_owned()),
        2 => Actor::Service(id.to_owned()),
        3 => Actor::Import(id.to_owned()),
        4 => Actor::Automation(id.to_owned()),
        5 if id.is_empty() => Actor::System,
        _ => return None,
    })
}

/// Encodes an event with its envelope, in the clear: what the service wrote before
/// sealing (a sealed type at its plain version, see [`crate::seal`]). Such an event can
/// never be shredded: the service writes with [`encode_sealed`].
#[must_use]
pub fn encode(meta: &EventMeta, event: &DomainEvent) -> EncodedEvent {
    let (event_type, schema_version, payload) = encode_payload(event);
    encode_body(meta, event, event_type, schema_version, &payload)
}

/// Encodes an event with its envelope at its current schema version, its personal text
/// sealed under its data subject's `key` (random nonces).
///
/// # Errors
/// The operating system gives no random nonce.
pub fn encode_sealed(
    meta: &EventMeta,
    event: &DomainEvent,
    key: &[u8; 32],
) -> Result<EncodedEvent, SealError> {
    encode_sealed_with(meta, event, key, &mut random_nonce)
}

/// [`encode_sealed`] with the nonces from `nonce` (golden fixtures pin them; never
/// reuse a nonce under one key).
///
/// # Errors
/// `nonce` fails.
pub fn encode_sealed_with(
    meta: &EventMeta,
    event: &DomainEvent,
    key: &[u8; 32],
    nonce: &mut dyn FnMut() -> Result<[u8; NONCE], SealError>,
) -> Result<EncodedEvent, SealError> {
    let (event_type, schema_version, payload) =
        encode_sealed_payload(event, meta.event_id, key, nonce)?;
    Ok(encode_body(
        meta,
        event,
        event_type,
        schema_version,
        &payload,
    ))
}

fn encode_body(
    meta: &EventMeta,
    event: &DomainEvent,
    event_type: &str,
    schema_version: u16,
    payload: &[u8],
) -> EncodedEvent {
    let aggregate = event.aggregate();
    let (actor_kind, actor_id) = actor_parts(&meta.actor);
    let env = EnvelopeV1 {
        event_id: *meta.event_id.as_bytes(),
        aggregate_kind: kind_code(aggregate.kind()),
        aggregate_id: *aggregate.uuid().as_bytes(),
        version: meta.version,
        event_type,
        schema_version,
        occurred_at: meta.occurred_at.as_micros(),
        recorded_at: meta.recorded_at.as_micros(),
        actor_kind,
        actor_id,
        command_id: *meta.command_id.0.as_bytes(),
        correlation_id: *meta.correlation_id.as_bytes(),
        causation_id: meta.causation_id.map(|c| *c.as_bytes()),
        commit_index: meta.commit_index,
        commit_size: meta.commit_size,
        prev_hash: meta.prev_hash.0,
        payload,
    };
    let mut bytes = Vec::with_capacity(payload.len() + 160);
    bytes.push(ENVELOPE_FORMAT_V1);
    // Serializing plain fields into a Vec cannot fail.
    bytes = postcard::to_extend(&env, bytes).expect("postcard encodes an envelope");
    let hash = EventHash(Sha256::digest(&bytes).into());
    bytes.extend_from_slice(&hash.0);
    EncodedEvent { bytes, hash }
}

/// Verifies a body's own hash without decoding it. Returns the hash.
pub fn verify_hash(bytes: &[u8]) -> Result<EventHash, DecodeError> {
    if bytes.len() < 1 + HASH_LEN {
        return Err(DecodeError::TooShort(bytes.len()));
    }
    let (body, stored) = bytes.split_at(bytes.len() - HASH_LEN);
    let computed = EventHash(Sha256::digest(body).into());
    let stored = EventHash(stored.try_into().expect("32 bytes"));
    if computed == stored {
        Ok(stored)
    } else {
        Err(DecodeError::HashMismatch { stored, computed })
    }
}

/// Decodes a stored body: verifies its hash, reads the envelope and decodes (and
/// upcasts) the payload.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    let hash = verify_hash(bytes)?;
    let body = &bytes[..bytes.len() - HASH_LEN];
    match body[0] {
        ENVELOPE_FORMAT_V1 => {}
        MESSAGE_FORMAT_GROUP => return Err(DecodeError::Grouped),
        other => return Err(DecodeError::UnknownFormat(other)),
    }
    let (env, rest): (EnvelopeV1<'_>, _) =
        postcard::take_from_bytes(&body[1..]).map_err(DecodeError::Envelope)?;
    if !rest.is_empty() {
        // One event has exactly one valid body.
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    let kind = kind_from_code(env.aggregate_kind)
        .ok_or(DecodeError::UnknownAggregate(env.aggregate_kind))?;
    let aggregate = AggregateRef::new(kind, Uuid::from_bytes(env.aggregate_id));
    let actor = actor_from_parts(env.actor_kind, env.actor_id)
        .ok_or(DecodeError::UnknownActor(env.actor_kind))?;
    let (event, seal) = decode_payload(aggregate, env.event_type, env.schema_version, env.payload)?;
    Ok(Envelope {
        meta: EventMeta {
            event_id: Uuid::from_bytes(env.event_id),
            version: env.version,
            occurred_at: Timestamp::from_micros(env.occurred_at),
            recorded_at: Timestamp::from_micros(env.recorded_at),
            actor,
            command_id: CommandId(Uuid::from_bytes(env.command_id)),
            correlation_id: Uuid::from_bytes(env.correlation_id),
            causation_id: env.causation_id.map(Uuid::from_bytes),
            commit_index: env.commit_index,
            commit_size: env.commit_size,
            prev_hash: EventHash(env.prev_hash),
        },
        aggregate,
        event_type: env.event_type.to_owned(),
        schema_version: env.schema_version,
        event,
        hash,
        sealing: seal.map_or(Sealing::Plain, Sealing::Sealed),
    })
}

/// The stored message of consecutive events of one aggregate from one command: the
/// event's own body for one event, a group (format 2) for several.
///
/// # Panics
/// If `events` is empty.
#[must_use]
pub fn encode_message(events: &[EncodedEvent]) -> Vec<u8> {
    match events {
        [] => panic!("a message holds at least one event"),
        [one] => one.bytes.clone(),
        many => {
            let bodies: Vec<&[u8]> = many.iter().map(|e| e.bytes.as_slice()).collect();
            let len: usize = many.iter().map(|e| e.bytes.len() + 3).sum();
            let mut bytes = Vec::with_capacity(len + 4 + HASH_LEN);
            bytes.push(MESSAGE_FORMAT_GROUP);
            bytes = postcard::to_extend(&bodies, bytes).expect("postcard encodes byte slices");
            let hash: [u8; 32] = Sha256::digest(&bytes).into();
            bytes.extend_from_slice(&hash);
            bytes
        }
    }
}

/// Decodes a stored message into its events, in order: one for an event body (format
/// 1), several for a group (format 2). A group must hold at least two events of one
/// aggregate and one command, each following the previous one in the hash chain.
pub fn decode_message(bytes: &[u8]) -> Result<Vec<Envelope>, DecodeError> {
    if bytes.first() != Some(&MESSAGE_FORMAT_GROUP) {
        return decode(bytes).map(|e| vec![e]);
    }
    verify_hash(bytes)?;
    let body = &bytes[1..bytes.len() - HASH_LEN];
    let (bodies, rest): (Vec<&[u8]>, _) =
        postcard::take_from_bytes(body).map_err(DecodeError::Envelope)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    if bodies.len() < 2 {
        return Err(DecodeError::Group(format!(
            "{} events (a group holds at least two)",
            bodies.len()
        )));
    }
    let mut out: Vec<Envelope> = Vec::with_capacity(bodies.len());
    for (i, b) in bodies.into_iter().enumerate() {
        let env = decode(b).map_err(|e| match e {
            DecodeError::Grouped => DecodeError::Group(format!("event {i} is itself a group")),
            other => other,
        })?;
        if let Some(prev) = out.last() {
            let problem = if env.aggregate != prev.aggregate {
                Some(format!(
                    "event {i} belongs to {}, not {}",
                    env.aggregate, prev.aggregate
                ))
            } else if env.meta.command_id != prev.meta.command_id {
                Some(format!("event {i} was written by another command"))
            } else if env.meta.version != prev.meta.version + 1 || env.meta.prev_hash != prev.hash {
                Some(format!(
                    "event {i} does not follow event {} in the hash chain",
                    i - 1
                ))
            } else {
                None
            };
            if let Some(p) = problem {
                return Err(DecodeError::Group(p));
            }
        }
        out.push(env);
    }
    Ok(out)
}

/// A break in an aggregate's hash chain.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ChainError {
    #[error("event {event_id} belongs to {found}, not {expected}")]
    WrongAggregate {
        event_id: Uuid,
        expected: AggregateRef,
        found: AggregateRef,
    },
    #[error("version gap: expected version {expected}, found {found} (event {event_id})")]
    VersionGap {
        event_id: Uuid,
        expected: u64,
        found: u64,
    },
    #[error(
        "broken chain at version {version}: prev_hash {found} does not match the previous event's hash {expected}"
    )]
    PrevHashMismatch {
        version: u64,
        expected: EventHash,
        found: EventHash,
    },
}

/// Walks one aggregate's history in order and checks versions and hash links.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    aggregate: AggregateRef,
    next_version: u64,
    last_hash: EventHash,
}

impl ChainVerifier {
    #[must_use]
    pub const fn new(aggregate: AggregateRef) -> Self {
        Self {
            aggregate,
            next_version: 1,
            last_hash: EventHash::GENESIS,
        }
    }

    /// Checks that `env` is the next link of the chain.
    pub fn push(&mut self, env: &Envelope) -> Result<(), ChainError> {
        if env.aggregate != self.aggregate {
            return Err(ChainError::WrongAggregate {
                event_id: env.meta.event_id,
                expected: self.aggregate,
                found: env.aggregate,
            });
        }
        if env.meta.version != self.next_version {
            return Err(ChainError::VersionGap {
                event_id: env.meta.event_id,
                expected: self.next_version,
                found: env.meta.version,
            });
        }
        if env.meta.prev_hash != self.last_hash {
            return Err(ChainError::PrevHashMismatch {
                version: env.meta.version,
                expected: self.last_hash,
                found: env.meta.prev_hash,
            });
        }
        self.next_version += 1;
        self.last_hash = env.hash;
        Ok(())
    }

    /// Events verified so far.
    #[must_use]
    pub const fn len(&self) -> u64 {
        self.next_version - 1
    }

    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.next_version == 1
    }

    /// Hash of the last verified event (the chain's head).
    #[must_use]
    pub const fn head(&self) -> EventHash {
        self.last_hash
    }
}
