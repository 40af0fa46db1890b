//! Auditors' tools over the event stream (issue "replay-tools for auditors"): the library
//! under the `crm-audit` binary.
//!
//! - [`verify`]: every message of the stream, in order, checked against what the service
//!   writes: each aggregate's hash chain (versions and `prev_hash` links), decodable
//!   bodies with matching hashes, events on their aggregate's subject, no command applied
//!   twice to one aggregate, the quarantine log's own chain and the bytes its records
//!   name. Each finding names its stream position.
//! - [`history`]: one customer's complete history in stream order, every event decoded
//!   with its envelope, with the lead they came from and the campaign sends that named
//!   them.
//! - [`as_of`]: the customer's 360° view as of a moment, through the live fold and the
//!   API's rendering, and the diff between two moments with the events behind it.
//! - [`subject`]: subject access (GDPR Art. 15): everything the log holds about one
//!   customer, personal data opened, as one JSON document.
//!
//! The tools only read: they connect as the service's `crm-reader` NATS user
//! ([`connect::Target::reader_seed`]), which may read the stream but not publish on it,
//! and they never open a read model.

pub mod as_of;
pub mod connect;
pub mod history;
pub mod subject;
pub mod verify;

/// What stops a tool (a finding is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("the message at position {seq} does not decode: {reason} (run `crm-audit verify`)")]
    Undecodable { seq: u64, reason: String },
    #[error("no customer {0} in the stream")]
    NoSuchCustomer(String),
    #[error("the 360 fold: {0}")]
    Fold(String),
    /// Personal data could not be opened (the replay has no key store).
    #[error("{0}")]
    Sealed(String),
}
