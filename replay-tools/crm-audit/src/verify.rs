//! `verify`: every message of the stream checked, in stream order, against what the
//! service writes.
//!
//! [`Verifier`] is the pure part (messages in, findings out); [`verify_stream`] reads
//! the stream with an ordered consumer and feeds it. A finding names the stream
//! position; the verifier then resynchronises on what it found, so one bad message gives
//! one finding rather than one per later event of its aggregate.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crm_domain::AggregateRef;
use crm_events::anchor::{Anchor, AnchorCheck, Checked, VerifyingKey, verify_anchor};
use crm_events::quarantine::{Quarantine, decode_quarantine, payload_digest};
use crm_events::{EventHash, SubjectScheme, decode_message};
use futures::StreamExt;
use serde::Serialize;

use crate::AuditError;
use crate::connect::Source;

/// Something in the stream the service would not have written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The message does not decode as events (a foreign or damaged message, a body
    /// whose hash does not match).
    Undecodable {
        seq: u64,
        subject: String,
        reason: String,
    },
    /// A message on a subject that is neither an aggregate's nor the quarantine log's.
    ForeignSubject { seq: u64, subject: String },
    /// An event of another aggregate than its subject names.
    WrongSubject {
        seq: u64,
        subject: String,
        aggregate: String,
    },
    /// The aggregate's version does not follow the previous one.
    VersionGap {
        seq: u64,
        aggregate: String,
        expected: u64,
        found: u64,
    },
    /// The event's `prev_hash` is not the hash of the aggregate's previous event.
    BrokenLink {
        seq: u64,
        aggregate: String,
        version: u64,
    },
    /// A command id already applied to the aggregate by an earlier message (commands are
    /// idempotent: a second application is a copy).
    DuplicateCommand {
        seq: u64,
        aggregate: String,
        command_id: String,
        first_seq: u64,
    },
    /// A quarantine record that does not decode, breaks the quarantine log's chain, or
    /// names bytes other than those stored at its position.
    Quarantine { seq: u64, reason: String },
    /// Positions missing from the stream from `seq` on (`count` of them): the stream
    /// denies deletes, so a message removed from the store (or dropped by the server as
    /// damaged) leaves a hole.
    MissingPositions { seq: u64, count: u64 },
    /// A notary anchor (at `seq`; 0 for one the auditor kept) that does not decode, is
    /// not signed by a trusted key, or that the stream no longer matches: rewritten,
    /// truncated or forked below its position.
    Anchor { seq: u64, reason: String },
}

impl Finding {
    /// The stream position the finding is about.
    #[must_use]
    pub const fn seq(&self) -> u64 {
        match self {
            Self::Undecodable { seq, .. }
            | Self::ForeignSubject { seq, .. }
            | Self::WrongSubject { seq, .. }
            | Self::VersionGap { seq, .. }
            | Self::BrokenLink { seq, .. }
            | Self::DuplicateCommand { seq, .. }
            | Self::Quarantine { seq, .. }
            | Self::MissingPositions { seq, .. }
            | Self::Anchor { seq, .. } => *seq,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Undecodable {
                seq,
                subject,
                reason,
            } => write!(f, "position {seq} on {subject}: undecodable: {reason}"),
            Self::ForeignSubject { seq, subject } => {
                write!(
                    f,
                    "position {seq}: a message on a foreign subject {subject}"
                )
            }
            Self::WrongSubject {
                seq,
                subject,
                aggregate,
            } => write!(f, "position {seq}: an event of {aggregate} on {subject}"),
            Self::VersionGap {
                seq,
                aggregate,
                expected,
                found,
            } => write!(
                f,
                "position {seq}: {aggregate} version {found} where {expected} was next"
            ),
            Self::BrokenLink {
                seq,
                aggregate,
                version,
            } => write!(
                f,
                "position {seq}: {aggregate} version {version} does not link to the previous event's hash"
            ),
            Self::DuplicateCommand {
                seq,
                aggregate,
                command_id,
                first_seq,
            } => write!(
                f,
                "position {seq}: command {command_id} applied to {aggregate} again (first at position {first_seq})"
            ),
            Self::Quarantine { seq, reason } => {
                write!(f, "position {seq}: quarantine log: {reason}")
            }
            Self::MissingPositions { seq, count } => write!(
                f,
                "positions {seq} to {}: missing from the stream ({count})",
                seq + count - 1
            ),
            Self::Anchor { seq: 0, reason } => write!(f, "the kept anchor: {reason}"),
            Self::Anchor { seq, reason } => write!(f, "anchor at position {seq}: {reason}"),
        }
    }
}

/// The next link an aggregate's chain expects.
#[derive(Clone, Copy, Debug)]
struct Link {
    next_version: u64,
    last_hash: EventHash,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            next_version: 1,
            last_hash: EventHash::GENESIS,
        }
    }
}

/// Counts of what was verified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub messages: u64,
    pub events: u64,
    pub aggregates: u64,
    /// Positions set aside by a quarantine record (not verified as events).
    pub quarantined: u64,
    pub quarantine_records: u64,
    /// Notary anchors in the stream, and those (in the stream or kept by the auditor)
    /// whose signature and digest were checked and hold.
    pub anchors: u64,
    pub anchors_verified: u64,
    /// The highest position a verified anchor covers; messages after it are not
    /// anchored yet (or, with no key given, anchors were not checked).
    pub anchored_position: u64,
}

/// Checks messages in stream order.
#[derive(Debug)]
pub struct Verifier {
    scheme: SubjectScheme,
    quarantine_subject: String,
    /// The quarantined positions and the payload digest each record names.
    quarantined: BTreeMap<u64, EventHash>,
    chains: HashMap<AggregateRef, Link>,
    commands: HashMap<(uuid::Uuid, AggregateRef), u64>,
    quarantine_log: Link,
    /// Only this aggregate's chain, when set.
    only: Option<AggregateRef>,
    anchors_subject: String,
    /// The whole stream's digest and the anchors to check against it (whole-stream
    /// verification with trusted keys only).
    anchor_check: Option<AnchorCheck>,
    pub counts: Counts,
}

impl Verifier {
    /// A verifier for a stream under `scheme` whose quarantine log holds `records` (read
    /// beforehand: a record comes after the position it sets aside). With `only`, the
    /// chains of other aggregates are not checked.
    #[must_use]
    pub fn new(scheme: SubjectScheme, records: &[Quarantine], only: Option<AggregateRef>) -> Self {
        Self {
            quarantine_subject: scheme.quarantine(),
            anchors_subject: scheme.anchors(),
            scheme,
            quarantined: records.iter().map(|r| (r.seq, r.payload_sha256)).collect(),
            chains: HashMap::new(),
            commands: HashMap::new(),
            quarantine_log: Link::default(),
            only,
            anchor_check: None,
            counts: Counts::default(),
        }
    }

    /// Also checks these anchors (signatures already verified) against the whole
    /// stream's running digest.
    #[must_use]
    pub fn with_anchors(mut self, anchors: Vec<(u64, Anchor)>) -> Self {
        self.anchor_check = Some(AnchorCheck::new(self.scheme.anchors(), anchors));
        self
    }

    /// The anchors left when the stream ends: each one covers a position the stream no
    /// longer reaches.
    pub fn finish(&mut self) -> Vec<Finding> {
        match self.anchor_check.take() {
            Some(check) => {
                let (_, left) = check.finish();
                self.anchor_findings(left)
            }
            None => Vec::new(),
        }
    }

    fn check_anchors(&mut self, seq: u64, subject: &str, payload: &[u8]) -> Vec<Finding> {
        match self.anchor_check.as_mut() {
            Some(check) => {
                let checked = check.push(seq, subject, payload);
                self.anchor_findings(checked)
            }
            None => Vec::new(),
        }
    }

    /// Counts the anchors that hold; the others become findings.
    fn anchor_findings(&mut self, checked: Vec<Checked>) -> Vec<Finding> {
        let mut out = Vec::new();
        for c in checked {
            match c.problem {
                None => {
                    self.counts.anchors_verified += 1;
                    self.counts.anchored_position =
                        self.counts.anchored_position.max(c.anchor.position);
                }
                Some(reason) => out.push(Finding::Anchor {
                    seq: c.anchor_seq,
                    reason: format!("covering position {}: {reason}", c.anchor.position),
                }),
            }
        }
        out
    }

    /// Checks the message at `seq`; returns what is wrong with it.
    pub fn push(&mut self, seq: u64, subject: &str, payload: &[u8]) -> Vec<Finding> {
        let mut findings = self.check_anchors(seq, subject, payload);
        findings.extend(self.push_message(seq, subject, payload));
        findings
    }

    fn push_message(&mut self, seq: u64, subject: &str, payload: &[u8]) -> Vec<Finding> {
        self.counts.messages += 1;
        if subject == self.anchors_subject {
            // Signatures were checked before the pass, digests in `check_anchors`.
            self.counts.anchors += 1;
            return Vec::new();
        }
        if subject == self.quarantine_subject {
            return self.push_quarantine(seq, payload);
        }
        if let Some(digest) = self.quarantined.get(&seq) {
            self.counts.quarantined += 1;
            if payload_digest(payload) != *digest {
                return vec![Finding::Quarantine {
                    seq,
                    reason: "the record names other bytes than those stored at the position".into(),
                }];
            }
            return Vec::new();
        }
        let Some(aggregate) = self.scheme.parse(subject) else {
            return vec![Finding::ForeignSubject {
                seq,
                subject: subject.to_owned(),
            }];
        };
        if self.only.is_some_and(|a| a != aggregate) {
            return Vec::new();
        }
        let events = match decode_message(payload) {
            Ok(events) => events,
            Err(e) => {
                return vec![Finding::Undecodable {
                    seq,
                    subject: subject.to_owned(),
                    reason: e.to_string(),
                }];
            }
        };
        let mut findings = Vec::new();
        for e in &events {
            self.counts.events += 1;
            if e.aggregate != aggregate {
                findings.push(Finding::WrongSubject {
                    seq,
                    subject: subject.to_owned(),
                    aggregate: e.aggregate.to_string(),
                });
                continue;
            }
            let link = self.chains.entry(aggregate).or_default();
            if e.meta.version != link.next_version {
                findings.push(Finding::VersionGap {
                    seq,
                    aggregate: aggregate.to_string(),
                    expected: link.next_version,
                    found: e.meta.version,
                });
            } else if e.meta.prev_hash != link.last_hash {
                findings.push(Finding::BrokenLink {
                    seq,
                    aggregate: aggregate.to_string(),
                    version: e.meta.version,
                });
            }
            // Go on from what is there: one finding per break, not one per later event.
            *link = Link {
                next_version: e.meta.version + 1,
                last_hash: e.hash,
            };
            let first = *self
                .commands
                .entry((e.meta.command_id.0, aggregate))
                .or_insert(seq);
            if first != seq {
                findings.push(Finding::DuplicateCommand {
                    seq,
                    aggregate: aggregate.to_string(),
                    command_id: e.meta.command_id.0.to_string(),
                    first_seq: first,
                });
            }
        }
        self.counts.aggregates = self.chains.len() as u64;
        findings
    }

    fn push_quarantine(&mut self, seq: u64, payload: &[u8]) -> Vec<Finding> {
        self.counts.quarantine_records += 1;
        let (record, hash) = match decode_quarantine(payload) {
            Ok(r) => r,
            Err(e) => {
                return vec![Finding::Quarantine {
                    seq,
                    reason: format!("the record does not decode: {e}"),
                }];
            }
        };
        let link = self.quarantine_log;
        self.quarantine_log = Link {
            next_version: record.version + 1,
            last_hash: hash,
        };
        if record.version != link.next_version || record.prev_hash != link.last_hash {
            return vec![Finding::Quarantine {
                seq,
                reason: format!(
                    "record {} does not follow record {} in the chain",
                    record.version,
                    link.next_version - 1
                ),
            }];
        }
        if record.seq >= seq {
            return vec![Finding::Quarantine {
                seq,
                reason: format!(
                    "the record sets aside position {}, not before it",
                    record.seq
                ),
            }];
        }
        Vec::new()
    }
}

/// What the auditor trusts: the notary's public keys, and anchors kept from earlier
/// (their stored bytes; see [`kept_anchor_json`]).
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub keys: Vec<VerifyingKey>,
    pub kept: Vec<Vec<u8>>,
}

/// An anchor as an auditor keeps it: its stored bytes (what `verify --anchor` reads
/// back) and, for reading, what they say.
#[must_use]
pub fn kept_anchor_json(anchor_seq: u64, bytes: &[u8]) -> serde_json::Value {
    let decoded = crm_events::anchor::decode_anchor(bytes);
    let mut v = serde_json::json!({ "anchor_seq": anchor_seq, "bytes": hex::encode(bytes) });
    if let Ok(a) = decoded {
        v["stream"] = a.stream.into();
        v["position"] = a.position.into();
        v["messages"] = a.messages.into();
        v["digest"] = hex::encode(a.digest).into();
        v["subjects"] = a.subjects.into();
        v["heads"] = hex::encode(a.heads).into();
        v["signed_at"] = crate::history::rfc3339(a.signed_at.as_micros()).into();
        v["public_key"] = hex::encode(a.public_key).into();
    }
    v
}

/// The stored bytes of a kept anchor ([`kept_anchor_json`]'s `bytes`).
///
/// # Errors
/// Not such a document.
pub fn kept_anchor_bytes(json: &str) -> Result<Vec<u8>, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let hex_bytes = v["bytes"]
        .as_str()
        .ok_or("no \"bytes\" field (write it with `crm-audit anchor`)")?;
    hex::decode(hex_bytes).map_err(|e| format!("bytes: {e}"))
}

/// The anchors stored in the stream up to `end`, as `(position, bytes)`.
///
/// # Errors
/// The stream cannot be read.
pub async fn stream_anchors(
    source: &Source,
    end: u64,
) -> Result<Vec<(u64, bytes::Bytes)>, AuditError> {
    Ok(source
        .messages_on(&source.scheme.anchors())
        .await?
        .into_iter()
        .filter(|(seq, _, _)| *seq <= end)
        .map(|(seq, _, payload)| (seq, payload))
        .collect())
}

/// The anchors to check while verifying: those stored up to `end` and those kept, each
/// signed by a trusted key for this stream (the others become findings).
async fn trusted_anchors(
    source: &Source,
    trust: &Trust,
    end: u64,
    findings: &mut Vec<Finding>,
) -> Result<Vec<(u64, Anchor)>, AuditError> {
    let stored = stream_anchors(source, end).await?;
    let kept = trust
        .kept
        .iter()
        .map(|b| (0, bytes::Bytes::from(b.clone())));
    let mut out = Vec::new();
    for (seq, bytes) in stored.into_iter().chain(kept) {
        match verify_anchor(&bytes, &trust.keys) {
            Ok(a) if a.stream != source.stream_name => findings.push(Finding::Anchor {
                seq,
                reason: format!("an anchor of stream {}, not of this one", a.stream),
            }),
            Ok(a) => out.push((seq, a)),
            Err(e) => findings.push(Finding::Anchor {
                seq,
                reason: e.to_string(),
            }),
        }
    }
    Ok(out)
}

/// What [`verify_stream`] found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub stream: String,
    /// The notary keys anchors were checked with (none: anchors not checked).
    pub notary_keys: Vec<String>,
    pub first_seq: u64,
    pub last_seq: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub findings: Vec<Finding>,
    pub seconds: f64,
    pub messages_per_s: f64,
}

/// Reads the quarantine log (every record, in order).
///
/// # Errors
/// The stream cannot be read.
pub async fn quarantine_log(source: &Source) -> Result<Vec<Quarantine>, AuditError> {
    // A record that does not decode is a finding of the verification pass.
    Ok(source
        .messages_on(&source.scheme.quarantine())
        .await?
        .iter()
        .filter_map(|(_, _, payload)| decode_quarantine(payload).ok().map(|(r, _)| r))
        .collect())
}

/// Verifies the whole stream (or, with `only`, one aggregate's chain) up to its last
/// position when the call starts. `progress` is told the position reached and the last.
///
/// # Errors
/// The stream cannot be read (a finding is not an error: see the report).
pub async fn verify_stream(
    source: &Source,
    only: Option<AggregateRef>,
    trust: &Trust,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, AuditError> {
    let mut stream = source.stream().await?;
    let info = stream
        .info()
        .await
        .map_err(|e| AuditError::Nats(e.to_string()))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let records = quarantine_log(source).await?;
    let mut v = Verifier::new(source.scheme.clone(), &records, only);
    let mut findings = Vec::new();
    let started = Instant::now();
    // Where to stop: the stream's last position when the call started (or the one
    // aggregate's last).
    let end = match only {
        Some(a) => last_on(&stream, &source.scheme.subject(a)).await?,
        None => last,
    };
    // Anchors need the whole stream's digest, and a key to trust.
    let checks_anchors = only.is_none() && !trust.keys.is_empty();
    if checks_anchors {
        v = v.with_anchors(trusted_anchors(source, trust, end, &mut findings).await?);
    }
    if end > 0 {
        let config = async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: only.map(|a| source.scheme.subject(a)).unwrap_or_default(),
            ..Default::default()
        };
        let mut messages = stream
            .create_consumer(config)
            .await
            .map_err(|e| AuditError::Nats(e.to_string()))?
            .messages()
            .await
            .map_err(|e| AuditError::Nats(e.to_string()))?;
        let mut reported = Instant::now();
        let mut expected = first.max(1);
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| AuditError::Nats(e.to_string()))?;
            let seq = m
                .info()
                .map_err(|e| AuditError::Nats(e.to_string()))?
                .stream_sequence;
            // A filtered read skips other subjects' positions; the whole stream has none
            // to skip.
            if only.is_none() && seq > expected {
                findings.push(Finding::MissingPositions {
                    seq: expected,
                    count: seq - expected,
                });
            }
            expected = seq + 1;
            findings.extend(v.push(seq, &m.subject, &m.payload));
            if seq >= end {
                progress(seq, end);
                break;
            }
            if reported.elapsed() > Duration::from_millis(100) {
                progress(seq, end);
                reported = Instant::now();
            }
        }
    }
    findings.extend(v.finish());
    let seconds = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let messages_per_s = if seconds > 0.0 {
        v.counts.messages as f64 / seconds
    } else {
        0.0
    };
    Ok(Report {
        stream: source.stream_name.clone(),
        notary_keys: if checks_anchors {
            trust
                .keys
                .iter()
                .map(|k| hex::encode(k.to_bytes()))
                .collect()
        } else {
            Vec::new()
        },
        first_seq: first,
        last_seq: last,
        counts: v.counts,
        findings,
        seconds,
        messages_per_s,
    })
}

/// The last position on `subject` (0 when it has none).
async fn last_on(
    stream: &async_nats::jetstream::stream::Stream,
    subject: &str,
) -> Result<u64, AuditError> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => Ok(m.sequence),
        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(0),
        Err(e) => Err(AuditError::Nats(e.to_string())),
    }
}
