//! One build of a projection, stored in a sled tree.
//!
//! Key layout inside the build's tree (one tree, so one `apply_batch` is atomic):
//! `d<key>` the fold's keys, `m<name>` metadata (code version and fingerprint, the stream
//! the build reads, checkpoint, a quarantine the build passed without knowing), `x<seq>`
//! dead letters (sequence big-endian, so they list in stream order).
//!
//! Quarantined positions (`crm_events::quarantine`) are skipped: neither folded nor
//! dead-lettered. The runner tells a build which positions are quarantined before it reads
//! ([`ProjectionStore::set_quarantined`]); a record met in the stream for a position the
//! build already passed means the build holds what that message did, so the build records
//! that it must be rebuilt ([`ProjectionStore::quarantine_rebuild`]) and the host rebuilds
//! it beside the live one.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crm_domain::AggregateRef;
use crm_events::SubjectScheme;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::budget::{CacheBudget, Charge};
use crate::cache::{Cache, Value};
use crate::read::{Build, ReadModel};
use crate::state::{Entity, Held, Taken};
use crate::{Event, Projection, ProjectionError, State};

/// A build's tree: the fold's keys behind `DATA`, dead letters behind `DEAD`, the
/// runtime's metadata behind `m` (public for tools that read a directory offline).
pub const DATA: u8 = b'd';
pub const DEAD: u8 = b'x';
const META_VERSION: &[u8] = b"mversion";
const META_CHECKPOINT: &[u8] = b"mcheckpoint";
const META_STREAM: &[u8] = b"mstream";
/// A quarantined position this build folded or dead-lettered before it knew (big-endian).
const META_REBUILD: &[u8] = b"mrebuild";

/// One message of the stream, as the runner hands it over.
#[derive(Clone, Debug)]
pub struct RawEvent {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
}

/// A message as the fold receives it: decoded once (its hashes checked) and its personal
/// text opened, by [`ProjectionStore::decode`] on a blocking thread while the previous
/// batch applies.
#[derive(Debug)]
pub struct Decoded {
    pub raw: RawEvent,
    envelopes: Result<Vec<crm_events::Envelope>, Undecoded>,
}

/// Why a message reached the fold without its events.
#[derive(Debug, thiserror::Error)]
enum Undecoded {
    /// Not an event message of this log (dead-lettered unless the subject says what it is).
    #[error("{0}")]
    Malformed(String),
    /// The key store cannot answer: the batch stops and is applied again later.
    #[error("the key store cannot be read: {0}")]
    KeyStore(String),
    /// A sealed text does not open with its subject's key (dead-lettered).
    #[error("{reason}")]
    DoesNotOpen { event_type: String, reason: String },
}

/// Decodes one message and opens its personal text with `keys` (erased without).
fn decode_and_open(
    payload: &[u8],
    keys: Option<&dyn crate::Keys>,
) -> Result<Vec<crm_events::Envelope>, Undecoded> {
    let mut envelopes = crm_events::decode_message(payload)
        .map_err(|e| Undecoded::Malformed(format!("event does not decode: {e}")))?;
    for envelope in &mut envelopes {
        unseal(envelope, keys).map_err(|e| match e {
            Unsealed::KeyStore(e) => Undecoded::KeyStore(e),
            Unsealed::DoesNotOpen(reason) => Undecoded::DoesNotOpen {
                event_type: envelope.event_type.clone(),
                reason,
            },
        })?;
    }
    Ok(envelopes)
}

/// An event the projection could not apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub seq: u64,
    pub subject: String,
    /// The event type, when the envelope decoded.
    pub event_type: Option<String>,
    pub reason: String,
}

/// What the stored metadata says the data was built with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInfo {
    pub name: String,
    pub version: u32,
    pub fingerprint: String,
}

/// Which stream a build was made from: its name and creation time. A stream deleted and
/// created again under the same name (or restored from a backup) has another creation
/// time, and its sequences mean other messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamIdentity {
    pub name: String,
    /// The stream's creation time, nanoseconds since the Unix epoch.
    pub created_unix_nanos: i128,
}

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events applied (every event of a grouped message counts).
    pub applied: u64,
    /// Messages dead-lettered (a group is dead-lettered whole).
    pub dead_lettered: u64,
    /// Messages at or below the last applied sequence, skipped.
    pub skipped: u64,
    /// Messages at quarantined positions, skipped, and quarantine records read.
    pub quarantined: u64,
    /// The last sequence applied (in the write-back cache or stored).
    pub applied_seq: u64,
    /// The last sequence stored (what queries see).
    pub checkpoint: u64,
}

/// How a build caches what its fold reads and writes, and how often it writes back while
/// it catches up (at the stream head every batch is written at once). Builds given clones
/// of one value share its cache budget (see [`CacheBudget`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteBack {
    /// Memory for the caches of every build that shares it (clean keys beyond it are
    /// evicted after a flush).
    pub cache: Arc<CacheBudget>,
    /// While catching up, write back after this many events...
    pub flush_events: u64,
    /// ... or once this many bytes of the cache are changed...
    pub flush_bytes: usize,
    /// ... or this long after the last write-back.
    pub flush_interval: Duration,
}

fn mib_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}

impl WriteBack {
    /// A budget of `cache_mib` for every build given a clone, written back once
    /// `flush_mib` changed (as the configuration gives them; saturating), with the other
    /// settings' defaults.
    #[must_use]
    pub fn with_mib(cache_mib: u64, flush_mib: u64) -> Self {
        Self {
            cache: CacheBudget::new(mib_bytes(cache_mib)),
            flush_bytes: mib_bytes(flush_mib),
            ..Self::default()
        }
    }

    /// For a build no query reads while it runs (an analyst's offline build): write back
    /// only when half of a `cache_mib` cache is changed, or a minute after the last
    /// write-back (what a crash loses at most). sled writes a key in a large batch for
    /// about half what it costs in a small one (BENCH.md), and a value changed many times
    /// between two write-backs is written once; in the service, a write-back holds every
    /// query of the process (sled's global lock), so there [`Self::with_mib`] keeps them
    /// small.
    #[must_use]
    pub fn offline(cache_mib: u64) -> Self {
        let cache = mib_bytes(cache_mib);
        Self {
            cache: CacheBudget::new(cache),
            flush_events: u64::MAX,
            flush_bytes: cache / 2,
            flush_interval: Duration::from_secs(60),
        }
    }
}

impl Default for WriteBack {
    fn default() -> Self {
        Self {
            cache: CacheBudget::new(128 << 20),
            flush_events: 100_000,
            flush_bytes: 2 << 20,
            flush_interval: Duration::from_secs(1),
        }
    }
}

/// Counters for metrics and logs.
#[derive(Debug, Default)]
pub struct ProjectionStats {
    pub events_applied: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub batches: AtomicU64,
    /// Sum of batch apply times, microseconds.
    pub batch_micros_total: AtomicU64,
    pub last_batch_micros: AtomicU64,
    pub last_batch_events: AtomicU64,
    /// The last stored stream sequence (mirrors the checkpoint, for metrics).
    pub checkpoint: AtomicU64,
    /// The last stream sequence applied to the write-back cache (ahead of the checkpoint
    /// between two write-backs): a build's progress, read without its batch lock.
    pub applied: AtomicU64,
    /// The stream's last sequence as last seen (from delivered messages and a periodic
    /// look at the stream's state); `lag()` is the distance to the checkpoint.
    pub stream_head: AtomicU64,
    /// Whether `stream_head` has been read from the stream at least once (until then it
    /// only mirrors the checkpoint, and a zero lag means nothing).
    pub head_known: AtomicBool,
    /// Messages delivered at or below the checkpoint (a consumer that started over from
    /// the beginning of the stream): skipped, and the consumer re-opened.
    pub replayed: AtomicU64,
    /// Times the consumer was opened (at start, and after every loss or replay).
    pub consumer_opens: AtomicU64,
    /// Times the data was cleared because it was built by another version.
    pub rebuilds: AtomicU64,
    /// Write-backs of the cache (sled batches with a checkpoint).
    pub flushes: AtomicU64,
    /// Keys written by write-backs.
    pub flushed_keys: AtomicU64,
    /// Time spent in sled applying write-backs (queries of the process wait meanwhile:
    /// sled 0.34 applies a batch under a process-wide lock), microseconds; and the longest.
    pub flush_micros_total: AtomicU64,
    pub flush_micros_max: AtomicU64,
    /// Bytes held by the write-back cache after the last flush.
    pub cache_bytes: AtomicU64,
    /// Reads of the fold answered by the cache, and those that went to sled.
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Messages skipped because their position is quarantined.
    pub quarantined_skipped: AtomicU64,
    /// A quarantined position this build passed before it knew (0: none): the build must
    /// be replaced by a rebuild.
    pub quarantine_rebuild: AtomicU64,
    /// Times the build went back to its checkpoint because a rejected message could not
    /// be undone in place (see `crm_projection::take`).
    pub reapplied: AtomicU64,
}

impl ProjectionStats {
    /// Events in the stream not yet applied: stream last sequence - checkpoint.
    pub fn lag(&self) -> u64 {
        self.stream_head
            .load(Ordering::Relaxed)
            .saturating_sub(self.checkpoint.load(Ordering::Relaxed))
    }

    /// Share of the fold's reads the write-back cache answered (0 before any read).
    pub fn cache_hit_ratio(&self) -> f64 {
        let hits = self.cache_hits.load(Ordering::Relaxed);
        let reads = hits.saturating_add(self.cache_misses.load(Ordering::Relaxed));
        #[allow(clippy::cast_precision_loss)]
        if reads == 0 {
            0.0
        } else {
            hits as f64 / reads as f64
        }
    }

    /// Whether the build has applied everything the stream held when last looked at.
    pub fn caught_up(&self) -> bool {
        self.head_known.load(Ordering::Relaxed) && self.lag() == 0
    }
}

/// A projection and one build of it in a sled tree.
#[derive(Debug)]
pub struct ProjectionStore<P> {
    projection: Arc<P>,
    tree_name: String,
    tree: sled::Tree,
    scheme: SubjectScheme,
    checkpoint: watch::Sender<u64>,
    stats: Arc<ProjectionStats>,
    /// Held while a batch applies or is written back.
    inner: Mutex<Inner>,
    /// Opens sealed personal text; without, it reads as erased. Apart from `inner` so
    /// the runner reaches it while a batch applies.
    keys: Mutex<Option<Arc<dyn crate::Keys>>>,
    /// Data subjects forgotten (`customer.forgotten`) while this build applied: a message
    /// decoded before the build met the erasure had their key still, and is read again
    /// with their text erased.
    forgotten: Mutex<BTreeSet<uuid::Uuid>>,
}

#[derive(Debug)]
struct Inner {
    /// `true` once the build is retired (another build took its place), after which
    /// nothing is applied to it.
    retired: bool,
    cache: Cache,
    /// The cache's part of the write-back's budget.
    charge: Charge,
    write_back: WriteBack,
    /// The last sequence applied into the cache (the checkpoint, or past it).
    applied: u64,
    /// Messages applied since the last write-back.
    unflushed: u64,
    last_flush: Instant,
    /// Quarantined positions ahead of the build, or met as records in the stream.
    quarantined: BTreeSet<u64>,
}

impl<P: Projection> ProjectionStore<P> {
    /// Opens (or creates) the projection's tree `P::NAME` in `db`. Data written by another
    /// code version or configuration is cleared: the runner then rebuilds it from the start.
    pub fn open(
        db: &sled::Db,
        projection: P,
        scheme: SubjectScheme,
    ) -> Result<Self, ProjectionError> {
        Self::open_tree(db, P::NAME, Arc::new(projection), scheme, true)
    }

    /// Opens the build in tree `tree_name`. With `clear_other` data of another version or
    /// fingerprint is cleared; without, it is kept as it is ([`Self::info`] tells which).
    pub fn open_tree(
        db: &sled::Db,
        tree_name: &str,
        projection: Arc<P>,
        scheme: SubjectScheme,
        clear_other: bool,
    ) -> Result<Self, ProjectionError> {
        let tree = db.open_tree(tree_name)?;
        let info = current_info(&*projection);
        let stored = stored_info(&tree)?;
        let stats = Arc::new(ProjectionStats::default());
        if stored.as_ref() != Some(&info) && (clear_other || stored.is_none()) {
            if stored.is_some() || !tree.is_empty() {
                tracing::warn!(
                    projection = P::NAME,
                    tree = tree_name,
                    stored = ?stored,
                    current = ?info,
                    "read model was built by another version: clearing it to rebuild from the stream"
                );
                stats.rebuilds.fetch_add(1, Ordering::Relaxed);
            }
            tree.clear()?;
            tree.insert(META_VERSION, postcard::to_stdvec(&info).unwrap_or_default())?;
            tree.flush()?;
        }
        let checkpoint = tree_checkpoint(&tree)?;
        stats.checkpoint.store(checkpoint, Ordering::Relaxed);
        stats.stream_head.fetch_max(checkpoint, Ordering::Relaxed);
        if let Some(b) = tree.get(META_REBUILD)?
            && let Ok(seq) = <[u8; 8]>::try_from(b.as_ref())
        {
            stats
                .quarantine_rebuild
                .store(u64::from_be_bytes(seq), Ordering::Relaxed);
        }
        let write_back = WriteBack::default();
        Ok(Self {
            projection,
            tree_name: tree_name.to_owned(),
            tree,
            scheme,
            checkpoint: watch::Sender::new(checkpoint),
            stats,
            inner: Mutex::new(Inner {
                retired: false,
                cache: Cache::default(),
                charge: Charge::new(Arc::clone(&write_back.cache)),
                write_back,
                applied: checkpoint,
                unflushed: 0,
                last_flush: Instant::now(),
                quarantined: BTreeSet::new(),
            }),
            keys: Mutex::new(None),
            forgotten: Mutex::new(BTreeSet::new()),
        })
    }

    /// The subject of the stream's quarantine records.
    pub fn quarantine_subject(&self) -> String {
        self.scheme.quarantine()
    }

    /// Tells the build the quarantine records the stream holds, as `(record's sequence,
    /// quarantined position)`: positions ahead of the build are skipped when met. A
    /// record for a position the build already passed is left out, so that meeting it in
    /// the stream marks the build for a rebuild (unless the build read it already).
    pub fn set_quarantined(&self, records: &[(u64, u64)]) {
        let mut inner = self.lock();
        let applied = inner.applied;
        inner.quarantined = records
            .iter()
            .filter(|(record, position)| !(*position <= applied && *record > applied))
            .map(|(_, position)| *position)
            .collect();
    }

    /// A quarantined position this build passed before it knew, if any: what it holds
    /// includes that message's effect (or its dead letter), so it must be replaced by a
    /// rebuild.
    pub fn quarantine_rebuild(&self) -> Option<u64> {
        Some(self.stats.quarantine_rebuild.load(Ordering::Relaxed)).filter(|s| *s > 0)
    }

    /// The last stream sequence whose effects are stored (and seen by queries).
    pub fn checkpoint(&self) -> u64 {
        *self.checkpoint.borrow()
    }

    pub fn stats(&self) -> &Arc<ProjectionStats> {
        &self.stats
    }

    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The sled tree this build lives in.
    pub fn tree_name(&self) -> &str {
        &self.tree_name
    }

    /// What the stored data was built with.
    pub fn info(&self) -> Result<Option<StoreInfo>, ProjectionError> {
        stored_info(&self.tree)
    }

    /// Whether the stored data was built by this code version and configuration.
    pub fn is_current(&self) -> Result<bool, ProjectionError> {
        Ok(self.info()? == Some(current_info(&*self.projection)))
    }

    /// The stream this build was made from (`None` until it first read one).
    pub fn stream_identity(&self) -> Result<Option<StreamIdentity>, ProjectionError> {
        self.tree
            .get(META_STREAM)?
            .map(|b| postcard::from_bytes(&b).map_err(|e| ProjectionError::Meta(e.to_string())))
            .transpose()
    }

    /// Records the stream this build reads (before its first message is applied).
    pub fn set_stream_identity(&self, identity: &StreamIdentity) -> Result<(), ProjectionError> {
        self.tree.insert(
            META_STREAM,
            postcard::to_stdvec(identity).unwrap_or_default(),
        )?;
        self.tree.flush()?;
        Ok(())
    }

    /// A query handle on this build alone.
    pub fn reader(&self) -> ReadModel {
        ReadModel::fixed(P::NAME, self.build())
    }

    pub(crate) fn build(&self) -> Arc<Build> {
        Arc::new(Build {
            name: self.tree_name.clone(),
            tree: self.tree.clone(),
            checkpoint: self.checkpoint.subscribe(),
        })
    }

    /// Runs `f` with no batch applying (the checkpoint is stable meanwhile); if `f`
    /// returns `true` the build is retired: every later [`Self::apply_batch`] fails with
    /// [`ProjectionError::Retired`].
    pub(crate) fn retire_if(&self, f: impl FnOnce(u64) -> bool) -> bool {
        let mut inner = self.lock();
        if !inner.retired && f(self.checkpoint()) {
            inner.retired = true;
            // Nothing is applied to it again: its cache goes back to the budget now, not
            // when the last query lets go of the build.
            inner.cache = Cache::default();
            inner.charge.set(0);
        }
        inner.retired
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets how the build caches and writes back (the runner's [`WriteBack`]).
    pub fn set_write_back(&self, write_back: WriteBack) {
        let mut inner = self.lock();
        inner.charge = Charge::new(Arc::clone(&write_back.cache));
        let bytes = inner.cache.bytes();
        inner.charge.set(bytes);
        inner.write_back = write_back;
    }

    /// The key ring that opens sealed personal text before the fold sees it. Without
    /// one, every sealed text is folded as erased.
    pub fn set_keys(&self, keys: Option<Arc<dyn crate::Keys>>) {
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    fn keys(&self) -> Option<Arc<dyn crate::Keys>> {
        // A fold that reads no personal text gets it as erased, with no key fetched.
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|_| P::PERSONAL_TEXT)
    }

    /// The data subjects (customers, leads) of `events` whose keys the fold will ask
    /// for: none when it reads no personal text or has no key ring.
    pub fn subjects(&self, events: &[RawEvent]) -> (Option<Arc<dyn crate::Keys>>, Vec<uuid::Uuid>) {
        let keys = self.keys();
        if keys.is_none() {
            return (None, Vec::new());
        }
        let subjects = events
            .iter()
            .filter_map(|e| match self.scheme.parse(&e.subject)? {
                AggregateRef::Customer(id) => Some(id.0),
                AggregateRef::Lead(id) => Some(id.0),
                AggregateRef::Campaign(_) => None,
            })
            .collect();
        (keys, subjects)
    }

    /// Decodes a batch read from the stream and opens its personal text: the part of
    /// applying a message that needs no state, so the runner runs it beside the previous
    /// batch's fold (each message is decoded and its hashes checked once per build).
    pub fn decode(&self, events: Vec<RawEvent>) -> Vec<Decoded> {
        let keys = self.keys();
        let skip = [self.scheme.anchors(), self.scheme.quarantine()];
        events
            .into_iter()
            .map(|raw| {
                let envelopes = if skip.contains(&raw.subject) {
                    Ok(Vec::new())
                } else {
                    decode_and_open(&raw.payload, keys.as_deref())
                };
                Decoded { raw, envelopes }
            })
            .collect()
    }

    /// The last stream sequence applied, stored or still in the write-back cache (at least
    /// the checkpoint).
    pub fn applied(&self) -> u64 {
        self.lock().applied
    }

    /// Applies events in stream order to the build's write-back cache. Events at or below
    /// the last applied sequence are skipped. The changes and the new checkpoint are written
    /// in one atomic sled batch (a *flush*) when `at_head` (the runner has nothing more to
    /// read: a query must see this batch now) or when a flush is due by the [`WriteBack`]
    /// policy; until then the checkpoint, and what queries see, stay at the last flush.
    pub fn apply_batch(
        &self,
        events: &[Decoded],
        at_head: bool,
    ) -> Result<BatchOutcome, ProjectionError> {
        let mut inner = self.lock();
        if inner.retired {
            return Err(ProjectionError::Retired(self.tree_name.clone()));
        }
        let started = Instant::now();
        let mut out = BatchOutcome::default();
        let mut applied = inner.applied;
        {
            let Inner {
                cache, quarantined, ..
            } = &mut *inner;
            let mut state = Working {
                cache,
                tree: &self.tree,
                error: None,
            };
            let quarantine_subject = self.scheme.quarantine();
            let anchors_subject = self.scheme.anchors();
            for decoded in events {
                let raw = &decoded.raw;
                if raw.seq <= applied {
                    out.skipped += 1;
                    continue;
                }
                if raw.subject == anchors_subject {
                    // The notary's signed anchors concern the stream, not a read model.
                    applied = raw.seq;
                    continue;
                }
                if raw.subject == quarantine_subject || quarantined.contains(&raw.seq) {
                    if raw.subject == quarantine_subject {
                        self.note_quarantine(&mut state, quarantined, raw);
                    } else {
                        self.stats
                            .quarantined_skipped
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    out.quarantined += 1;
                    applied = raw.seq;
                    continue;
                }
                match self.apply_message(&mut state, decoded) {
                    Ok(events) => out.applied += events,
                    Err((aggregate, event_type, reason)) => {
                        self.dead_letter(&mut state, aggregate, raw, event_type, reason);
                        out.dead_lettered += 1;
                    }
                }
                if state.cache.broken() {
                    state.error.get_or_insert(ProjectionError::Reapply(raw.seq));
                }
                if let Some(e) = state.error.take() {
                    // What this batch cached may be incomplete, or a message could not be
                    // undone: forget it all and go on from the last flush.
                    let careful = matches!(e, ProjectionError::Reapply(_));
                    if careful {
                        tracing::info!(projection = P::NAME, tree = %self.tree_name, seq = raw.seq, "a rejected message could not be undone in place: applying again from the checkpoint");
                    }
                    inner.cache = Cache::default();
                    inner.cache.careful = careful;
                    inner.charge.set(0);
                    inner.applied = self.checkpoint();
                    inner.unflushed = 0;
                    return Err(e);
                }
                applied = raw.seq;
            }
        }
        inner.applied = applied;
        inner.unflushed += out.applied + out.dead_lettered;
        let s = &self.stats;
        s.applied.store(applied, Ordering::Relaxed);
        s.events_applied.fetch_add(out.applied, Ordering::Relaxed);
        s.dead_lettered
            .fetch_add(out.dead_lettered, Ordering::Relaxed);
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.last_batch_events
            .store(events.len() as u64, Ordering::Relaxed);
        let wb = &inner.write_back;
        let due = inner.unflushed >= wb.flush_events
            || inner.cache.dirty_bytes() >= wb.flush_bytes
            || inner.last_flush.elapsed() >= wb.flush_interval;
        if at_head || due {
            self.write_back(&mut inner)?;
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        s.batch_micros_total.fetch_add(micros, Ordering::Relaxed);
        s.last_batch_micros.store(micros, Ordering::Relaxed);
        out.applied_seq = inner.applied;
        out.checkpoint = self.checkpoint();
        Ok(out)
    }

    /// Writes every dirty key and the applied sequence as the checkpoint in one sled batch,
    /// then publishes the checkpoint and trims the cache to its budget.
    fn write_back(&self, inner: &mut Inner) -> Result<(), ProjectionError> {
        inner.last_flush = Instant::now();
        if inner.applied == self.checkpoint() {
            return Ok(());
        }
        let changes = inner.cache.take_dirty();
        let mut batch = sled::Batch::default();
        for (k, v) in &changes {
            match v {
                Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                None => batch.remove(k.as_slice()),
            }
        }
        batch.insert(META_CHECKPOINT, &inner.applied.to_be_bytes());
        let started = Instant::now();
        if let Err(e) = self.tree.apply_batch(batch) {
            inner.cache.restore_dirty(changes);
            return Err(e.into());
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        inner.unflushed = 0;
        // Over budget (with the builds that share it), evict down to three quarters of
        // it: one pass over the cache now and then, not at every write-back.
        let bytes = inner.cache.bytes();
        inner.charge.set(bytes);
        if let Some(target) = inner.charge.trim_target(bytes) {
            inner.cache.evict_to(target);
            let bytes = inner.cache.bytes();
            inner.charge.set(bytes);
        }
        let s = &self.stats;
        s.flushes.fetch_add(1, Ordering::Relaxed);
        s.flushed_keys
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        s.flush_micros_total.fetch_add(micros, Ordering::Relaxed);
        s.flush_micros_max.fetch_max(micros, Ordering::Relaxed);
        s.cache_bytes
            .store(inner.cache.bytes() as u64, Ordering::Relaxed);
        s.cache_hits.store(inner.cache.hits, Ordering::Relaxed);
        s.cache_misses.store(inner.cache.misses, Ordering::Relaxed);
        s.checkpoint.store(inner.applied, Ordering::Relaxed);
        s.stream_head.fetch_max(inner.applied, Ordering::Relaxed);
        // Published last: whoever waits for this position also sees the batch's counters.
        self.checkpoint.send_replace(inner.applied);
        Ok(())
    }

    /// Applies one message (one event, or a command's group of events on one aggregate)
    /// whole, or leaves no change and says why it is dead-lettered.
    #[allow(clippy::type_complexity)]
    fn apply_message(
        &self,
        state: &mut Working<'_>,
        decoded: &Decoded,
    ) -> Result<u64, (Option<AggregateRef>, Option<String>, String)> {
        let raw = &decoded.raw;
        let aggregate = self.scheme.parse(&raw.subject);
        let envelopes = match &decoded.envelopes {
            Ok(envelopes) if self.forgotten_meanwhile(envelopes) => {
                // Decoded before the erasure was applied: read as the erased text it is.
                Cow::Owned(
                    decode_and_open(&raw.payload, None)
                        .map_err(|e| (aggregate, None, e.to_string()))?,
                )
            }
            Ok(envelopes) => Cow::Borrowed(envelopes.as_slice()),
            Err(Undecoded::Malformed(reason)) => return Err((aggregate, None, reason.clone())),
            Err(Undecoded::KeyStore(e)) => {
                state.error.get_or_insert(ProjectionError::Keys(e.clone()));
                return Ok(0);
            }
            Err(Undecoded::DoesNotOpen { event_type, reason }) => {
                return Err((aggregate, Some(event_type.clone()), reason.clone()));
            }
        };
        let Some(aggregate) = aggregate else {
            return Err((
                None,
                envelopes.first().map(|e| e.event_type.clone()),
                format!(
                    "foreign subject {}: not an aggregate subject of this log",
                    raw.subject
                ),
            ));
        };
        state.cache.begin();
        for (index, envelope) in envelopes.iter().enumerate() {
            let refused =
                |reason: String| (Some(aggregate), Some(envelope.event_type.clone()), reason);
            let result = if envelope.aggregate == aggregate {
                let event = Event {
                    seq: raw.seq,
                    index: u16::try_from(index).unwrap_or(u16::MAX),
                    subject: &raw.subject,
                    envelope,
                };
                self.projection.apply(state, &event).map_err(|e| {
                    if envelopes.len() == 1 {
                        refused(format!("rejected by the {} fold: {e}", P::NAME))
                    } else {
                        refused(format!(
                            "event {index} of the {}-event group rejected by the {} fold: {e}",
                            envelopes.len(),
                            P::NAME
                        ))
                    }
                })
            } else {
                Err(refused(format!(
                    "subject {} does not hold events of {:?}",
                    raw.subject, envelope.aggregate
                )))
            };
            if let Err(failure) = result {
                if !state.cache.rollback() {
                    // Undone by applying again from the checkpoint (see `apply_batch`).
                    return Ok(0);
                }
                return Err(failure);
            }
        }
        if !state.cache.end() {
            return Ok(0);
        }
        if let Some(keys) = self.keys() {
            for e in envelopes.iter() {
                if let crm_domain::DomainEvent::Customer(
                    id,
                    crm_domain::CustomerEvent::Forgotten { leads, .. },
                ) = &e.event
                {
                    let mut gone = vec![id.0];
                    gone.extend(leads.iter().map(|l| l.0));
                    keys.evict(&gone);
                    self.lock_forgotten().extend(gone);
                }
            }
        }
        Ok(envelopes.len() as u64)
    }

    fn lock_forgotten(&self) -> std::sync::MutexGuard<'_, BTreeSet<uuid::Uuid>> {
        self.forgotten
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a message's personal text was opened for a data subject this build has
    /// since seen forgotten.
    fn forgotten_meanwhile(&self, envelopes: &[crm_events::Envelope]) -> bool {
        let opened =
            |e: &&crm_events::Envelope| matches!(e.sealing, crm_events::seal::Sealing::Opened);
        let mut subjects = envelopes
            .iter()
            .filter(opened)
            .filter_map(crm_events::Envelope::data_subject)
            .peekable();
        if subjects.peek().is_none() {
            return false;
        }
        let forgotten = self.lock_forgotten();
        !forgotten.is_empty() && subjects.any(|s| forgotten.contains(&s))
    }

    /// A quarantine record met in the stream: its position is now known. If this build
    /// did not know it when it passed that position, it must be rebuilt; that is recorded
    /// with the batch. An undecodable record is dead-lettered like any poison message.
    fn note_quarantine(
        &self,
        state: &mut Working<'_>,
        quarantined: &mut BTreeSet<u64>,
        raw: &RawEvent,
    ) {
        let record = match crm_events::quarantine::decode_quarantine(&raw.payload) {
            Ok((record, _)) => record,
            Err(e) => {
                let reason = format!("quarantine record does not decode: {e}");
                self.dead_letter(state, None, raw, None, reason);
                return;
            }
        };
        if !quarantined.insert(record.seq) || record.seq >= raw.seq {
            return;
        }
        tracing::warn!(
            projection = P::NAME,
            tree = %self.tree_name,
            position = record.seq,
            "a position this build passed was quarantined: the build will be rebuilt"
        );
        if self.stats.quarantine_rebuild.load(Ordering::Relaxed) == 0 {
            self.stats
                .quarantine_rebuild
                .store(record.seq, Ordering::Relaxed);
            state.cache.set(
                META_REBUILD,
                Some(Value::Bytes(record.seq.to_be_bytes().to_vec())),
            );
        }
    }

    fn dead_letter(
        &self,
        state: &mut Working<'_>,
        aggregate: Option<AggregateRef>,
        raw: &RawEvent,
        event_type: Option<String>,
        reason: String,
    ) {
        let letter = DeadLetter {
            seq: raw.seq,
            subject: raw.subject.clone(),
            event_type,
            reason,
        };
        tracing::warn!(
            projection = P::NAME,
            seq = letter.seq,
            subject = %letter.subject,
            reason = %letter.reason,
            "event dead-lettered"
        );
        state.cache.begin();
        self.projection.on_dead_letter(state, aggregate, &letter);
        let mut key = vec![DEAD];
        key.extend_from_slice(&raw.seq.to_be_bytes());
        state.cache.set(
            &key,
            Some(Value::Bytes(
                postcard::to_stdvec(&letter).unwrap_or_default(),
            )),
        );
    }

    /// Writes what the write-back cache holds past the checkpoint (see
    /// [`Self::apply_batch`]).
    pub fn write_pending(&self) -> Result<(), ProjectionError> {
        let mut inner = self.lock();
        if inner.retired {
            return Ok(());
        }
        self.write_back(&mut inner)
    }

    /// Writes what the write-back cache holds and flushes sled's buffers to disk.
    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.write_pending()?;
        self.sync()
    }

    /// Flushes sled's buffers to disk (what is only in the write-back cache stays there).
    pub fn sync(&self) -> Result<(), ProjectionError> {
        self.tree.flush()?;
        Ok(())
    }
}

pub(crate) fn current_info<P: Projection>(projection: &P) -> StoreInfo {
    StoreInfo {
        name: P::NAME.to_owned(),
        version: P::VERSION,
        fingerprint: projection.fingerprint(),
    }
}

fn stored_info(tree: &sled::Tree) -> Result<Option<StoreInfo>, ProjectionError> {
    tree.get(META_VERSION)?
        .map(|b| postcard::from_bytes(&b).map_err(|e| ProjectionError::Meta(e.to_string())))
        .transpose()
}

pub(crate) fn data_key(key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(key.len() + 1);
    full.push(DATA);
    full.extend_from_slice(key);
    full
}

/// The fold's view of a build: its write-back cache over its tree.
struct Working<'a> {
    cache: &'a mut Cache,
    tree: &'a sled::Tree,
    /// What stops the batch: storage failed, or the key store cannot answer.
    error: Option<ProjectionError>,
}

impl Working<'_> {
    /// Makes sure the cache knows the key `full` (reading sled on a miss).
    fn known(&mut self, full: &[u8]) {
        if self.cache.lookup(full) {
            return;
        }
        match self.tree.get(full) {
            Ok(v) => self.cache.fill(full, v.map(|v| v.to_vec())),
            Err(e) => {
                self.error.get_or_insert(e.into());
            }
        }
    }
}

impl State for Working<'_> {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let full = data_key(key);
        self.known(&full);
        self.cache.value(&full).map(Value::to_bytes)
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.cache.set(&data_key(key), Some(Value::Bytes(value)));
    }
    fn delete(&mut self, key: &[u8]) {
        self.cache.set(&data_key(key), None);
    }
    fn held(&mut self, key: &[u8]) -> Held<'_> {
        let full = data_key(key);
        self.known(&full);
        match self.cache.value(&full) {
            // Taken by this event: the cache is broken and the message applied again.
            None | Some(Value::Taken { .. }) => Held::Bytes(None),
            Some(Value::Bytes(b)) => Held::Bytes(Some(Cow::Borrowed(b))),
            Some(Value::Entity { entity, .. }) => Held::Entity(&**entity),
        }
    }
    fn put_entity(&mut self, key: &[u8], entity: Box<dyn Entity>) {
        let full = data_key(key);
        // Counted at the size it had (it changes little per event) until written back.
        let size = self.cache.decoded_size(&full).max(entity.size_hint());
        self.cache.set(&full, Some(Value::Entity { entity, size }));
    }
    fn take(&mut self, key: &[u8]) -> Taken {
        let full = data_key(key);
        self.known(&full);
        if let Some(entity) = self.cache.take(&full) {
            return Taken::Entity(entity);
        }
        self.cache
            .value(&full)
            .map_or(Taken::Absent, |v| Taken::Bytes(v.to_bytes()))
    }
    fn append(&mut self, key: &[u8], bytes: &[u8]) {
        let full = data_key(key);
        self.known(&full);
        if !self.cache.append(&full, bytes) {
            let mut value = self
                .cache
                .value(&full)
                .map(Value::to_bytes)
                .unwrap_or_default();
            value.extend_from_slice(bytes);
            self.cache.set(&full, Some(Value::Bytes(value)));
        }
    }
}

/// Why a sealed event's personal text was not opened.
#[derive(Debug, thiserror::Error)]
pub enum Unsealed {
    /// The key store cannot answer now: try again later (never fold the text erased).
    #[error("the key store cannot be read: {0}")]
    KeyStore(String),
    /// The key does not open the text (another key, or the event was altered).
    #[error("{0}")]
    DoesNotOpen(String),
}

/// Opens a sealed event's personal text with its subject's key (erased when the subject
/// has none, or when there is no key ring). Anything not sealed is left as it is.
///
/// # Errors
/// See [`Unsealed`].
pub fn unseal(
    envelope: &mut crm_events::Envelope,
    keys: Option<&dyn crate::Keys>,
) -> Result<(), Unsealed> {
    if !envelope.is_sealed() {
        return Ok(());
    }
    let key = match (keys, envelope.data_subject()) {
        (Some(keys), Some(subject)) => keys.key(subject).map_err(Unsealed::KeyStore)?,
        _ => None,
    };
    envelope
        .unseal(key.as_ref())
        .map_err(|e| Unsealed::DoesNotOpen(format!("personal text does not open: {e}")))
}

/// The last stream sequence a build's tree applied (0 for none).
///
/// # Errors
/// sled's, or a checkpoint that is not 8 bytes.
pub fn tree_checkpoint(tree: &sled::Tree) -> Result<u64, ProjectionError> {
    Ok(match tree.get(META_CHECKPOINT)? {
        Some(bytes) => u64::from_be_bytes(
            bytes
                .as_ref()
                .try_into()
                .map_err(|_| ProjectionError::Meta("checkpoint is not 8 bytes".into()))?,
        ),
        None => 0,
    })
}
