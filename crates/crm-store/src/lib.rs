//! The write side's storage: the event log on NATS JetStream and the command handler.
//!
//! - [`LogConfig`], [`ensure_stream`]: one stream, one subject per aggregate
//!   (`<prefix>.<kind>.<uuid>`), file storage, no limits, deny delete/purge, direct get
//!   and atomic publish allowed; an existing stream with weaker settings is refused.
//! - [`EventLog`]: atomic appends with `Nats-Expected-Last-Subject-Sequence` and
//!   `Nats-Msg-Id`, and per-subject reads with batched direct get.
//! - [`CommandHandler`]: decide + append with optimistic concurrency, bounded retries,
//!   durable idempotency and an aggregate cache; [`CommandHandler::quarantine`] sets
//!   aside a message that is not ours.
//! - [`keys`]: customers' data keys (crypto-shredding), wrapped under a master key in a
//!   key-value bucket beside the log, destroyed for good on request; the handler seals
//!   personal text under them and `ForgetCustomer` destroys them (`erasure`: marked
//!   first, so a crash between the event and the destruction is finished at restart).
//! - [`nats_auth`]: the service's NATS users (writer, reader) with their permissions and
//!   seeds; the auditors' tools connect as the reader from its seed file.

mod config;
mod erasure;
mod error;
mod handler;
pub mod keys;
mod log;
pub mod nats_auth;
mod quarantine;
mod stream;

pub use config::LogConfig;
pub use erasure::Finished;
pub use error::{AppendError, HandleError, StoreError};
pub use handler::{CommandHandler, CommandMeta, CommandOutcome, HandlerConfig, HandlerStats};
pub use log::{AppendAck, EventLog, MAX_BATCH, OutgoingMessage, StoredMessage};
pub use quarantine::{MAX_REASON_CHARS, QuarantineOutcome};
pub use stream::{desired_config, ensure_stream, weaknesses};
