//! Quarantined positions: a message on an aggregate subject that is not ours (an
//! operator's publish, a message from a restored backup) breaks that aggregate's history,
//! and every command on it fails with a corrupt-history error. An admin records, with a
//! reason, that the position is quarantined; from then on the command handler (here) and
//! every projector (`crm-projection`) skip exactly that position.
//!
//! The records are stored on their own subject with their own hash chain
//! (`crm_events::quarantine`), appended with the same expected-sequence check as events.
//! Only a message that actually breaks its aggregate's history can be quarantined: a valid
//! event never can, so the mechanism cannot be used to hide history.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use crm_domain::{Rejection, RejectionKind};
use crm_events::EventHash;
use crm_events::quarantine::{Quarantine, decode_quarantine, encode_quarantine, payload_digest};

use crate::error::{AppendError, HandleError, StoreError};
use crate::handler::{CommandHandler, CommandMeta, Loaded, now};
use crate::log::{OutgoingMessage, StoredMessage};

/// Longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 1000;
/// Appends of a record tried before giving up on concurrent quarantines.
const ATTEMPTS: u32 = 5;

/// The quarantine log as read so far.
#[derive(Debug, Default)]
pub(crate) struct QuarantineLog {
    /// By quarantined position: the record and its own stream sequence.
    records: BTreeMap<u64, (u64, Quarantine)>,
    last_seq: u64,
    last_hash: EventHash,
    version: u64,
}

impl QuarantineLog {
    fn apply(&mut self, m: &StoredMessage) -> Result<(), StoreError> {
        let corrupt = |reason: String| StoreError::Unavailable {
            context: "quarantine log",
            message: format!("record at stream sequence {} {reason}", m.seq),
        };
        let (record, hash) =
            decode_quarantine(&m.payload).map_err(|e| corrupt(format!("does not decode: {e}")))?;
        if record.version != self.version + 1 || record.prev_hash != self.last_hash {
            return Err(corrupt(format!(
                "does not follow record {} in the chain",
                self.version
            )));
        }
        self.version = record.version;
        self.last_hash = hash;
        self.last_seq = m.seq;
        self.records.insert(record.seq, (m.seq, record));
        Ok(())
    }
}

/// A quarantine record, as [`CommandHandler::quarantine`] wrote or found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineOutcome {
    pub record: Quarantine,
    /// Stream sequence of the record itself.
    pub position: u64,
    /// The position was quarantined before (by this command id or another): nothing new
    /// was written.
    pub repeated: bool,
}

fn rejected(kind: RejectionKind, field: &str, rule: &'static str, message: String) -> HandleError {
    HandleError::Rejected(Rejection::new(kind, field, rule, message))
}

impl CommandHandler {
    fn quarantine_log(&self) -> std::sync::MutexGuard<'_, QuarantineLog> {
        self.quarantine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `seq` is quarantined, as of the last read of the quarantine log.
    pub(crate) fn is_quarantined(&self, seq: u64) -> bool {
        let log = self.quarantine_log();
        !log.records.is_empty() && log.records.contains_key(&seq)
    }

    /// Reads the quarantine log's records written since the last read.
    pub(crate) async fn refresh_quarantine(&self) -> Result<(), StoreError> {
        let subject = self.log().config().scheme().quarantine();
        let after = self.quarantine_log().last_seq;
        let messages = self.log().read_subject(&subject, after).await?;
        let mut log = self.quarantine_log();
        for m in &messages {
            if m.seq > log.last_seq {
                log.apply(m)?;
            }
        }
        Ok(())
    }

    /// Every quarantined position, in stream order, with the record's own sequence.
    pub async fn quarantined(&self) -> Result<Vec<QuarantineOutcome>, StoreError> {
        self.refresh_quarantine().await?;
        let log = self.quarantine_log();
        Ok(log
            .records
            .values()
            .map(|(position, record)| QuarantineOutcome {
                record: record.clone(),
                position: *position,
                repeated: true,
            })
            .collect())
    }

    /// Quarantines the message at stream sequence `seq`, with the actor and command id of
    /// `meta`. Refused unless that message breaks its aggregate's history (undecodable,
    /// another aggregate's event, a version or hash that does not follow) and is the first
    /// position that does; idempotent (a quarantined position returns its record).
    pub async fn quarantine(
        &self,
        seq: u64,
        reason: &str,
        meta: &CommandMeta,
    ) -> Result<QuarantineOutcome, HandleError> {
        if reason.trim().is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(rejected(
                RejectionKind::Invalid,
                "reason",
                "length",
                format!("a reason of 1 to {MAX_REASON_CHARS} characters is required"),
            ));
        }
        if seq == 0 {
            return Err(rejected(
                RejectionKind::Invalid,
                "sequence",
                "required",
                "a stream sequence (1 or more) is required".into(),
            ));
        }
        for _ in 0..ATTEMPTS {
            self.refresh_quarantine().await?;
            if let Some(outcome) = self.recorded_quarantine(seq, meta) {
                return outcome;
            }
            let message = self.message_to_quarantine(seq).await?;
            let (record, expected) = {
                let log = self.quarantine_log();
                let record = Quarantine {
                    seq,
                    subject: message.subject.clone(),
                    payload_sha256: payload_digest(&message.payload),
                    reason: reason.trim().to_owned(),
                    actor: meta.actor.clone(),
                    command_id: meta.command_id,
                    recorded_at: now(),
                    version: log.version + 1,
                    prev_hash: log.last_hash,
                };
                (record, log.last_seq)
            };
            let encoded = encode_quarantine(&record);
            let out = OutgoingMessage {
                subject: self.log().config().scheme().quarantine(),
                payload: encoded.bytes.into(),
                msg_id: format!("{}:q", meta.command_id.0),
                expected_last_subject_seq: Some(expected),
            };
            match self.log().append(std::slice::from_ref(&out)).await {
                Ok(ack) if !ack.duplicate => {
                    tracing::warn!(seq, subject = %record.subject, actor = ?record.actor, reason = %record.reason, "position quarantined");
                    let stored = StoredMessage {
                        seq: ack.last_seq,
                        subject: out.subject,
                        msg_id: Some(out.msg_id),
                        payload: out.payload,
                    };
                    self.quarantine_log().apply(&stored)?;
                    return Ok(QuarantineOutcome {
                        record,
                        position: ack.last_seq,
                        repeated: false,
                    });
                }
                // Landed before (a retry), or another admin's record came first: read
                // the log again and decide again.
                Ok(_) | Err(AppendError::Conflict { .. } | AppendError::Duplicate(_)) => {}
                Err(AppendError::Ambiguous(message)) => {
                    return Err(HandleError::Unavailable {
                        message,
                        maybe_applied: true,
                    });
                }
                Err(e) => {
                    return Err(HandleError::Unavailable {
                        message: e.to_string(),
                        maybe_applied: false,
                    });
                }
            }
        }
        Err(HandleError::Unavailable {
            message: "the quarantine log kept changing concurrently".into(),
            maybe_applied: false,
        })
    }

    /// The outcome when `seq` is already quarantined.
    fn recorded_quarantine(
        &self,
        seq: u64,
        meta: &CommandMeta,
    ) -> Option<Result<QuarantineOutcome, HandleError>> {
        let log = self.quarantine_log();
        if let Some((position, record)) = log.records.get(&seq) {
            return Some(Ok(QuarantineOutcome {
                record: record.clone(),
                position: *position,
                repeated: true,
            }));
        }
        log.records
            .values()
            .map(|(_, r)| r)
            .find(|r| r.command_id == meta.command_id)
            .map(|r| {
            Err(rejected(
                RejectionKind::Invalid,
                "options.command_id",
                "reused",
                format!(
                    "command id {} already quarantined stream sequence {}; a new command needs a new command id",
                    meta.command_id, r.seq
                ),
            ))
        })
    }

    /// The message at `seq` if it may be quarantined: it exists, it is not a quarantine
    /// record, and on an aggregate subject it is the first message that breaks the
    /// aggregate's history. A message on a subject that is no aggregate's is never read
    /// by the handler; recording it is allowed (projectors skip it then).
    async fn message_to_quarantine(&self, seq: u64) -> Result<StoredMessage, HandleError> {
        let unavailable = |e: StoreError| HandleError::Store(e);
        let Some(message) = self.log().message_at(seq).await.map_err(unavailable)? else {
            return Err(rejected(
                RejectionKind::NotFound,
                "sequence",
                "not_found",
                format!("the stream holds no message at sequence {seq}"),
            ));
        };
        let cfg = self.log().config();
        if message.subject == cfg.scheme().quarantine() {
            return Err(rejected(
                RejectionKind::FailedPrecondition,
                "sequence",
                "quarantine_record",
                format!("stream sequence {seq} is a quarantine record itself"),
            ));
        }
        if message.subject == cfg.scheme().anchors() {
            return Err(rejected(
                RejectionKind::FailedPrecondition,
                "sequence",
                "notary_anchor",
                format!(
                    "stream sequence {seq} is a notary anchor: no read model applies anchors, and an anchor is evidence, never set aside"
                ),
            ));
        }
        let Some(aggregate) = cfg.parse_subject(&message.subject) else {
            return Ok(message);
        };
        let history = self
            .log()
            .read_subject(&message.subject, 0)
            .await
            .map_err(unavailable)?;
        let upto: Vec<StoredMessage> = history.into_iter().filter(|m| m.seq <= seq).collect();
        if upto.last().map(|m| m.seq) != Some(seq) {
            return Err(HandleError::Unavailable {
                message: format!(
                    "the replica answering reads does not hold stream sequence {seq} yet"
                ),
                maybe_applied: false,
            });
        }
        let mut loaded = Loaded::empty(aggregate);
        let key = self
            .subject_key(aggregate, true)
            .await
            .map_err(unavailable)?;
        match self.fold_stored(&mut loaded, &upto, key.as_ref()) {
            Err((first, _)) if first == seq => Ok(message),
            Err((first, e)) => Err(rejected(
                RejectionKind::FailedPrecondition,
                "sequence",
                "earlier_break",
                format!(
                    "stream sequence {first} breaks the history of {aggregate} first ({e}); quarantine that position first"
                ),
            )),
            Ok(()) => Err(rejected(
                RejectionKind::FailedPrecondition,
                "sequence",
                "valid_event",
                format!(
                    "stream sequence {seq} holds a valid event of {aggregate} (version {}); only a message that breaks its aggregate's history can be quarantined",
                    loaded.version
                ),
            )),
        }
    }
}
