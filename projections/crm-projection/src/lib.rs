//! The projection runtime.
//!
//! A projection is a **pure fold**: [`Projection::apply`] turns one event into changes of a
//! key-value [`State`], with no I/O, clock or randomness. Where the state lives is the
//! runtime's business: [`MemState`] (a `BTreeMap`, for tests and point-in-time
//! reconstruction) or a sled tree through [`ProjectionStore`], whose fold works on a
//! write-back cache kept across batches and writes what changed **and the checkpoint in one
//! sled batch** (every batch at the stream head; while catching up, by the [`WriteBack`]
//! policy), so a crash at any point resumes from the last write with no gap and no double
//! application. [`run`] feeds a store from the
//! JetStream stream with an ordered consumer starting at checkpoint + 1. A [`ReadSide`] hosts
//! many projections, each with a live build and, while one is rebuilt (new code version or
//! configuration, another stream, or on request), a second build beside it that replaces
//! the live one atomically once it has caught up ([`Hosted`]).
//!
//! Poison events (undecodable, on a subject that does not match their aggregate, or rejected
//! by the fold) are written to the dead-letter keys with their sequence, subject and reason;
//! the fold's [`Projection::on_dead_letter`] may mark the affected entity, and the stream
//! goes on. Quarantined positions (see `crm_store`'s quarantine) are skipped altogether; a
//! build that passed one before it was quarantined is replaced by a rebuild.

mod budget;
mod cache;
mod host;
mod read;
mod runner;
mod state;
mod store;

pub use budget::CacheBudget;
pub use host::{
    BuildState, BuildStatus, Hosted, HostedProjection, ProjectionStatus, ReadSide, live_tree,
};
pub use read::{Entries, ReadModel};
pub use runner::{RunnerConfig, quarantine_records, run, track_stream_head};
pub use state::{Entity, Held, MemState, State, Taken, load, save, store, take};
pub use store::{
    BatchOutcome, DATA as DATA_PREFIX, DEAD as DEAD_LETTER_PREFIX, DeadLetter, Decoded,
    ProjectionStats, ProjectionStore, RawEvent, StoreInfo, StreamIdentity, Unsealed, WriteBack,
    tree_checkpoint, unseal,
};

use crm_domain::AggregateRef;
use crm_events::Envelope;

/// The data subjects' keys that open sealed personal text (see `crm_events::seal`):
/// `crm_store`'s key ring. A build given none reads every sealed text as erased.
pub use crm_events::seal::KeySource as Keys;

/// One event as a fold sees it.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// Stream sequence of the message holding the event: the position every query's
    /// consistency token refers to.
    pub seq: u64,
    /// Position of the event in its message (0 unless the message is a group of one
    /// command's events): `(seq, index)` identifies an event in the stream.
    pub index: u16,
    pub subject: &'a str,
    pub envelope: &'a Envelope,
}

/// Why a fold refused an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FoldError {
    /// The event contradicts what the projection knows (e.g. a ticket it never saw open).
    #[error("{0}")]
    Rejected(String),
    /// A stored value does not decode with this code version.
    #[error("stored value under key {key} does not decode: {reason}")]
    Corrupt { key: String, reason: String },
}

/// A read model defined as a pure fold over events.
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the sled tree the projection lives in.
    const NAME: &'static str;
    /// Code version of the stored shapes and rules. Opening data written by another version
    /// clears it and rebuilds from the start of the stream.
    const VERSION: u32;

    /// Whether the fold reads personal text (names, subjects, ...; see
    /// `crm_events::personal`). A projection that does not is folded without opening
    /// sealed text (no key is fetched; the text reads as empty): it must then never use a
    /// personal field, or it would build something else than it served.
    const PERSONAL_TEXT: bool = true;

    /// Configuration that changes what the fold writes (e.g. a reporting currency): data
    /// built with another fingerprint is rebuilt like data of another version.
    fn fingerprint(&self) -> String {
        String::new()
    }

    /// Applies one event. On error every change made by this call is discarded and the
    /// event is dead-lettered.
    fn apply(&self, state: &mut dyn State, event: &Event<'_>) -> Result<(), FoldError>;

    /// Called after an event of `aggregate` (if the subject names one) was dead-lettered,
    /// so the projection can flag what is now incomplete.
    fn on_dead_letter(
        &self,
        _state: &mut dyn State,
        _aggregate: Option<AggregateRef>,
        _letter: &DeadLetter,
    ) {
    }
}

/// Errors of the runtime itself (never caused by an event's content).
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read-model storage failed: {0}")]
    Storage(#[from] sled::Error),
    #[error("read-model metadata is unreadable: {0}")]
    Meta(String),
    /// The blocking task that applies a batch panicked or was cancelled.
    #[error("the task applying a batch failed: {0}")]
    Task(String),
    /// The build was replaced by another; nothing more is applied to it.
    #[error("build {0} was replaced")]
    Retired(String),
    /// No build of the projection can be served yet (the first build is in progress).
    #[error("read model {0} is being built and not served yet")]
    NotServing(String),
    /// The stream is not the one the build was made from.
    #[error("build {build} does not belong to this stream: {reason}")]
    StreamChanged { build: String, reason: String },
    /// The key store could not give a data subject's key: the batch is applied again
    /// from the checkpoint once it answers.
    #[error("the key store cannot be read: {0}")]
    Keys(String),
    /// A message the fold rejected had changed values it took without a copy: the build
    /// went back to its checkpoint and applies again from there, copying what it takes
    /// until its next write-back (message at this sequence).
    #[error("message {0} must be applied again from the checkpoint")]
    Reapply(u64),
    /// A rebuild was asked for while one is in progress.
    #[error("projection {projection} is already building {build}")]
    AlreadyBuilding { projection: String, build: String },
}
