//! Errors of the event log and the command handler.

use crm_domain::{AggregateRef, HistoryError, Rejection};

/// Failures talking to, or reading from, the event log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The log cannot be reached (server down, no JetStream, timeout before sending).
    /// Nothing was written.
    #[error("event log unavailable ({context}): {message}")]
    Unavailable {
        context: &'static str,
        message: String,
    },
    /// The stream exists but its configuration would weaken the log's guarantees.
    #[error("refusing to use stream {stream}: {}", problems.join("; "))]
    UnsafeStream {
        stream: String,
        problems: Vec<String>,
    },
    /// A stored event cannot be decoded or breaks its aggregate's hash chain.
    #[error("corrupt history of {aggregate} at stream sequence {seq}: {reason}")]
    Corrupt {
        aggregate: AggregateRef,
        seq: u64,
        reason: String,
    },
    #[error(transparent)]
    History(#[from] HistoryError),
}

impl StoreError {
    pub(crate) fn unavailable(context: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            context,
            message: e.to_string(),
        }
    }
}

/// Why an append did not (certainly) happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// An expected-sequence check failed (JetStream 10071 / 10164, or 10163 while a
    /// clustered stream catches up): another writer got there first. Nothing written.
    #[error("concurrent write ({code}): {description}")]
    Conflict { code: u64, description: String },
    /// The server is temporarily unable to take the commit (too many open atomic
    /// batches, a batch broken by a reconnect). Nothing written; retry after a pause.
    #[error("event log busy ({code}): {description}")]
    Busy { code: u64, description: String },
    /// The server refused the commit for another reason. Nothing written.
    #[error("append refused ({code}): {description}")]
    Refused { code: u64, description: String },
    /// A message of the commit carries a `Nats-Msg-Id` that is already stored
    /// (JetStream 10201): the commit most likely landed before. Nothing new written.
    #[error("commit already stored: {0}")]
    Duplicate(String),
    /// Nothing was sent, or nothing was listening: nothing written.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The request went out but its answer did not come back (timeout, disconnect): the
    /// commit may or may not have landed.
    #[error("no answer from the event log: {0}")]
    Ambiguous(String),
}

/// The outcome of handling a command that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The command breaks a rule; nothing was appended.
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// The caller's expected version does not match the aggregate's.
    #[error("{aggregate} is at version {actual}, not the expected {expected}")]
    VersionMismatch {
        aggregate: AggregateRef,
        expected: u64,
        actual: u64,
    },
    /// Still conflicting after the bounded number of re-decisions.
    #[error("gave up after {attempts} attempts: {aggregate} kept changing concurrently")]
    Conflict {
        aggregate: AggregateRef,
        attempts: u32,
    },
    /// The log is unreachable. `maybe_applied` tells whether a commit might have landed
    /// (retrying with the same command id is always safe).
    #[error("event log unavailable{}: {message}", if *maybe_applied { " (the command may have been applied; retry with the same command id)" } else { " (this call wrote nothing; retrying with the same command id is safe)" })]
    Unavailable {
        message: String,
        maybe_applied: bool,
    },
    /// A commit would exceed what one atomic commit can hold.
    #[error("command too large: {0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
