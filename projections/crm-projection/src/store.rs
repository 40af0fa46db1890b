//! A projection stored in a sled tree.
//!
//! Key layout inside the projection's tree (one tree, so one `apply_batch` is atomic):
//! `d<key>` the fold's keys, `m<name>` metadata (code version, checkpoint), `x<seq>` dead
//! letters (sequence big-endian, so they list in stream order).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use crm_domain::AggregateRef;
use crm_store::LogConfig;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{Event, Projection, ProjectionError, State};

const DATA: u8 = b'd';
const DEAD: u8 = b'x';
const META_VERSION: &[u8] = b"mversion";
const META_CHECKPOINT: &[u8] = b"mcheckpoint";

/// One message of the stream, as the runner hands it over.
#[derive(Clone, Debug)]
pub struct RawEvent {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
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

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events applied (every event of a grouped message counts).
    pub applied: u64,
    /// Messages dead-lettered (a group is dead-lettered whole).
    pub dead_lettered: u64,
    /// Messages at or below the checkpoint (already applied), skipped.
    pub skipped: u64,
    pub checkpoint: u64,
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
    /// The stream's last sequence as last seen (from delivered messages and a periodic
    /// look at the stream's state); `lag()` is the distance to the checkpoint.
    pub stream_head: AtomicU64,
    /// Times the data was cleared because it was built by another version.
    pub rebuilds: AtomicU64,
}

impl ProjectionStats {
    /// Events in the stream not yet applied: stream last sequence - checkpoint.
    pub fn lag(&self) -> u64 {
        self.stream_head
            .load(Ordering::Relaxed)
            .saturating_sub(self.checkpoint.load(Ordering::Relaxed))
    }
}

/// A projection and its sled tree.
#[derive(Debug)]
pub struct ProjectionStore<P> {
    projection: P,
    tree: sled::Tree,
    log: LogConfig,
    checkpoint: watch::Sender<u64>,
    stats: Arc<ProjectionStats>,
}

/// A read-only handle on a projection's data, for queries.
#[derive(Clone, Debug)]
pub struct ReadModel {
    tree: sled::Tree,
    checkpoint: watch::Receiver<u64>,
}

impl<P: Projection> ProjectionStore<P> {
    /// Opens (or creates) the projection's tree in `db`. Data written by another code
    /// version or configuration is cleared: the runner then rebuilds it from the start.
    pub fn open(db: &sled::Db, projection: P, log: LogConfig) -> Result<Self, ProjectionError> {
        let tree = db.open_tree(P::NAME)?;
        let info = StoreInfo {
            name: P::NAME.to_owned(),
            version: P::VERSION,
            fingerprint: projection.fingerprint(),
        };
        let stored = match tree.get(META_VERSION)? {
            Some(bytes) => Some(
                postcard::from_bytes::<StoreInfo>(&bytes)
                    .map_err(|e| ProjectionError::Meta(e.to_string()))?,
            ),
            None => None,
        };
        let stats = Arc::new(ProjectionStats::default());
        if stored.as_ref() != Some(&info) {
            if stored.is_some() || !tree.is_empty() {
                tracing::warn!(
                    projection = P::NAME,
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
        let checkpoint = match tree.get(META_CHECKPOINT)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| ProjectionError::Meta("checkpoint is not 8 bytes".into()))?,
            ),
            None => 0,
        };
        stats.checkpoint.store(checkpoint, Ordering::Relaxed);
        stats.stream_head.fetch_max(checkpoint, Ordering::Relaxed);
        Ok(Self {
            projection,
            tree,
            log,
            checkpoint: watch::Sender::new(checkpoint),
            stats,
        })
    }

    /// The last stream sequence whose effects are stored.
    pub fn checkpoint(&self) -> u64 {
        *self.checkpoint.borrow()
    }

    pub fn stats(&self) -> &Arc<ProjectionStats> {
        &self.stats
    }

    pub fn projection(&self) -> &P {
        &self.projection
    }

    pub fn reader(&self) -> ReadModel {
        ReadModel {
            tree: self.tree.clone(),
            checkpoint: self.checkpoint.subscribe(),
        }
    }

    /// Applies events in stream order and stores their changes together with the new
    /// checkpoint in one atomic sled batch. Events at or below the checkpoint are skipped.
    pub fn apply_batch(&self, events: &[RawEvent]) -> Result<BatchOutcome, ProjectionError> {
        let started = Instant::now();
        let mut overlay = Overlay::new(&self.tree);
        let mut out = BatchOutcome {
            checkpoint: self.checkpoint(),
            ..BatchOutcome::default()
        };
        for raw in events {
            if raw.seq <= out.checkpoint {
                out.skipped += 1;
                continue;
            }
            let aggregate = self.log.parse_subject(&raw.subject);
            // A message (one event, or a command's group of events on one aggregate) is
            // applied whole or dead-lettered whole.
            let mut events = 0;
            let failure = match crm_events::decode_message(&raw.payload) {
                Err(e) => Some((None, format!("event does not decode: {e}"))),
                Ok(envelopes) => {
                    events = envelopes.len() as u64;
                    overlay.begin();
                    let mut failure = None;
                    for (index, envelope) in envelopes.iter().enumerate() {
                        if Some(envelope.aggregate) != aggregate {
                            failure = Some((
                                Some(envelope.event_type.clone()),
                                format!(
                                    "subject {} does not hold events of {:?}",
                                    raw.subject, envelope.aggregate
                                ),
                            ));
                            break;
                        }
                        let event = Event {
                            seq: raw.seq,
                            index: u16::try_from(index).unwrap_or(u16::MAX),
                            subject: &raw.subject,
                            envelope,
                        };
                        if let Err(e) = self.projection.apply(&mut overlay, &event) {
                            let event_type = envelope.event_type.clone();
                            let reason = if envelopes.len() == 1 {
                                format!("rejected by the {} fold: {e}", P::NAME)
                            } else {
                                format!(
                                    "event {index} of the {}-event group rejected by the {} fold: {e}",
                                    envelopes.len(),
                                    P::NAME
                                )
                            };
                            failure = Some((Some(event_type), reason));
                            break;
                        }
                    }
                    if failure.is_some() {
                        overlay.rollback();
                    }
                    failure
                }
            };
            if let Some((event_type, reason)) = failure {
                self.dead_letter(&mut overlay, aggregate, raw, event_type, reason);
                out.dead_lettered += 1;
            } else {
                out.applied += events;
            }
            if let Some(e) = overlay.error.take() {
                return Err(e.into());
            }
            out.checkpoint = raw.seq;
        }
        if out.checkpoint == self.checkpoint() {
            return Ok(out);
        }
        let mut batch = overlay.into_batch();
        batch.insert(META_CHECKPOINT, &out.checkpoint.to_be_bytes());
        self.tree.apply_batch(batch)?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let s = &self.stats;
        s.checkpoint.store(out.checkpoint, Ordering::Relaxed);
        s.stream_head.fetch_max(out.checkpoint, Ordering::Relaxed);
        s.events_applied.fetch_add(out.applied, Ordering::Relaxed);
        s.dead_lettered
            .fetch_add(out.dead_lettered, Ordering::Relaxed);
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.batch_micros_total.fetch_add(micros, Ordering::Relaxed);
        s.last_batch_micros.store(micros, Ordering::Relaxed);
        s.last_batch_events
            .store(events.len() as u64, Ordering::Relaxed);
        // Published last: whoever waits for this position also sees the batch's counters.
        self.checkpoint.send_replace(out.checkpoint);
        Ok(out)
    }

    fn dead_letter(
        &self,
        overlay: &mut Overlay<'_>,
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
        overlay.begin();
        self.projection.on_dead_letter(overlay, aggregate, &letter);
        let mut key = vec![DEAD];
        key.extend_from_slice(&raw.seq.to_be_bytes());
        overlay.put_raw(key, postcard::to_stdvec(&letter).unwrap_or_default());
    }

    /// Flushes sled's buffers to disk.
    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.tree.flush()?;
        Ok(())
    }
}

impl ReadModel {
    /// The last stream sequence applied.
    pub fn checkpoint(&self) -> u64 {
        *self.checkpoint.borrow()
    }

    /// Waits until the checkpoint reaches `seq`; `false` if `timeout` passed first.
    pub async fn wait_for(&self, seq: u64, timeout: std::time::Duration) -> bool {
        let mut rx = self.checkpoint.clone();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<sled::IVec>, ProjectionError> {
        Ok(self.tree.get(data_key(key))?)
    }

    /// The fold's entries whose key starts with `prefix`, in key order (or reversed),
    /// strictly after (before, when reversed) the fold key `cursor`; keys are returned
    /// without the runtime's prefix.
    pub fn scan(&self, prefix: &[u8], cursor: Option<&[u8]>, reverse: bool) -> Entries {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let full_prefix = data_key(prefix);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + Send> =
            match (cursor, reverse) {
                (None, false) => Box::new(self.tree.scan_prefix(&full_prefix)),
                (None, true) => Box::new(self.tree.scan_prefix(&full_prefix).rev()),
                (Some(c), false) => Box::new(
                    self.tree
                        .range::<Vec<u8>, _>((Excluded(data_key(c)), Unbounded)),
                ),
                (Some(c), true) => Box::new(
                    self.tree
                        .range::<Vec<u8>, _>((Included(full_prefix.clone()), Excluded(data_key(c))))
                        .rev(),
                ),
            };
        Box::new(
            iter.take_while(move |r| {
                r.as_ref().is_err() || r.as_ref().is_ok_and(|(k, _)| k.starts_with(&full_prefix))
            })
            .map(|r| {
                let (k, v) = r?;
                Ok((k[1..].to_vec(), v))
            }),
        )
    }

    /// Dead letters in stream order.
    pub fn dead_letters(
        &self,
    ) -> impl Iterator<Item = Result<DeadLetter, ProjectionError>> + use<> {
        self.tree.scan_prefix([DEAD]).map(|r| {
            let (_, v) = r?;
            postcard::from_bytes(&v).map_err(|e| ProjectionError::Meta(e.to_string()))
        })
    }

    /// Every stored key and value, metadata included, in key order: two builds of the
    /// same stream give identical contents.
    pub fn contents(
        &self,
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), ProjectionError>> + use<> {
        self.tree.iter().map(|r| r.map_err(ProjectionError::from))
    }
}

/// Entries of a [`ReadModel::scan`]: fold key and value.
pub type Entries = Box<dyn Iterator<Item = Result<(Vec<u8>, sled::IVec), ProjectionError>> + Send>;

/// A pending change: `None` deletes.
type Pending = Option<Vec<u8>>;

fn data_key(key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(key.len() + 1);
    full.push(DATA);
    full.extend_from_slice(key);
    full
}

/// A batch's pending changes over the tree, with an undo journal for the current event.
struct Overlay<'a> {
    tree: &'a sled::Tree,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Key and its previous pending entry (`None`: none was pending).
    undo: Vec<(Vec<u8>, Option<Pending>)>,
    error: Option<sled::Error>,
}

impl<'a> Overlay<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Self {
            tree,
            pending: BTreeMap::new(),
            undo: Vec::new(),
            error: None,
        }
    }

    fn begin(&mut self) {
        self.undo.clear();
    }

    fn rollback(&mut self) {
        for (key, old) in self.undo.drain(..).rev() {
            match old {
                Some(v) => self.pending.insert(key, v),
                None => self.pending.remove(&key),
            };
        }
    }

    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.set(key, Some(value));
    }

    fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let old = self.pending.insert(key.clone(), value);
        self.undo.push((key, old));
    }

    fn into_batch(self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (k, v) in self.pending {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        batch
    }
}

impl State for Overlay<'_> {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let full = data_key(key);
        if let Some(v) = self.pending.get(&full) {
            return v.clone();
        }
        match self.tree.get(&full) {
            Ok(v) => v.map(|v| v.to_vec()),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.set(data_key(key), Some(value));
    }
    fn delete(&mut self, key: &[u8]) {
        self.set(data_key(key), None);
    }
}
