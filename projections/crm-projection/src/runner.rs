//! Feeds a [`ProjectionStore`] from the JetStream stream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt;
use tokio::sync::watch;

use crate::store::StreamIdentity;
use crate::{Projection, ProjectionError, ProjectionStore, RawEvent, WriteBack};

/// How the runner reads.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// JetStream stream name.
    pub stream: String,
    /// At most this many events per sled batch (a batch takes whatever has arrived, up to
    /// this, so an idle stream is applied one event at a time without waiting).
    pub batch_max: usize,
    /// Pause before re-creating the consumer after the server went away.
    pub retry_pause: Duration,
    /// How often the stream's state is read: its last sequence for the lag metric, its
    /// identity to notice a stream recreated under the build.
    pub head_interval: Duration,
    /// The build's write-back cache and how often it is written while catching up.
    pub write_back: WriteBack,
    /// Opens sealed personal text before the fold; `None` folds it as erased.
    pub keys: Option<Arc<dyn crate::Keys>>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            stream: "CRM_EVENTS".into(),
            batch_max: 1000,
            retry_pause: Duration::from_millis(500),
            head_interval: Duration::from_secs(2),
            write_back: WriteBack::default(),
            keys: None,
        }
    }
}

/// Runs the projection until `shutdown` turns true: reads the stream from checkpoint + 1
/// with an unfiltered ordered consumer and applies what arrives in batches. A lost server
/// or consumer is re-created from the checkpoint. The run ends with an error when storage
/// fails, when the build was retired, or when the stream is not the one the build was made
/// from ([`ProjectionError::StreamChanged`]): recreated, or behind the checkpoint.
pub async fn run<P: Projection>(
    store: Arc<ProjectionStore<P>>,
    js: jetstream::Context,
    cfg: RunnerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProjectionError> {
    store.set_write_back(cfg.write_back.clone());
    store.set_keys(cfg.keys.clone());
    let watchdog = watch_stream(&store, &js, &cfg);
    tokio::select! {
        result = project(&store, &js, &cfg, &mut shutdown) => result,
        e = watchdog => {
            // What the cache holds may come from another stream: not written.
            store.sync()?;
            Err(e)
        }
    }
}

/// Every quarantine record in the stream, as `(record's sequence, quarantined position)`,
/// read with direct gets (records are few: one request each). An undecodable record is
/// left out here; the build dead-letters it when it meets it.
pub async fn quarantine_records(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<Vec<(u64, u64)>, String> {
    use async_nats::jetstream::stream::DirectGetErrorKind;
    let stream = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut next = 1;
    loop {
        match stream
            .direct_get_next_for_subject(subject, Some(next))
            .await
        {
            Ok(m) => {
                if let Ok((record, _)) = crm_events::quarantine::decode_quarantine(&m.payload) {
                    out.push((m.sequence, record.seq));
                }
                next = m.sequence + 1;
            }
            Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => return Ok(out),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Keeps `stats.stream_head` up to date with the stream's last sequence, reading it every
/// `every`, so [`crate::ProjectionStats::lag`] shows a projector that is stuck or not
/// running. [`run`] does this itself; this never returns.
pub async fn track_stream_head(
    js: jetstream::Context,
    stream: String,
    stats: Arc<crate::ProjectionStats>,
    every: Duration,
) {
    loop {
        if let Some(info) = stream_state(&js, &stream).await {
            note_head(&stats, info.1);
        }
        tokio::time::sleep(every).await;
    }
}

/// Reads the stream's state every `head_interval`: records its head and returns the
/// reason as soon as it is not the stream the build was made from.
async fn watch_stream<P: Projection>(
    store: &ProjectionStore<P>,
    js: &jetstream::Context,
    cfg: &RunnerConfig,
) -> ProjectionError {
    loop {
        // Read before the stream's state: the checkpoint then cannot be past the last
        // sequence the state reports (the projector goes on meanwhile).
        let checkpoint = store.checkpoint();
        if let Some((identity, last)) = stream_state(js, &cfg.stream).await {
            note_head(store.stats(), last);
            if let Err(e) = check_stream(store, checkpoint, &identity, last) {
                return e;
            }
        }
        tokio::time::sleep(cfg.head_interval).await;
    }
}

fn note_head(stats: &crate::ProjectionStats, last: u64) {
    stats.stream_head.fetch_max(last, Ordering::Relaxed);
    stats.head_known.store(true, Ordering::Relaxed);
}

async fn stream_state(js: &jetstream::Context, stream: &str) -> Option<(StreamIdentity, u64)> {
    match js.get_stream(stream).await {
        Ok(s) => {
            let info = s.cached_info();
            Some((
                StreamIdentity {
                    name: info.config.name.clone(),
                    created_unix_nanos: info.created.unix_timestamp_nanos(),
                },
                info.state.last_sequence,
            ))
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the stream's state");
            None
        }
    }
}

/// The build may read this stream: it is the one the build was made from (the first one
/// it reads becomes that) and holds at least everything the build applied.
fn check_stream<P: Projection>(
    store: &ProjectionStore<P>,
    checkpoint: u64,
    identity: &StreamIdentity,
    last: u64,
) -> Result<(), ProjectionError> {
    match store.stream_identity()? {
        None => store.set_stream_identity(identity)?,
        Some(stored) if stored != *identity => {
            return Err(ProjectionError::StreamChanged {
                build: store.tree_name().to_owned(),
                reason: format!(
                    "the build was made from stream {} created at {} ns, the stream is now {} created at {} ns",
                    stored.name,
                    stored.created_unix_nanos,
                    identity.name,
                    identity.created_unix_nanos
                ),
            });
        }
        Some(_) => {}
    }
    if last < checkpoint {
        return Err(ProjectionError::StreamChanged {
            build: store.tree_name().to_owned(),
            reason: format!(
                "the stream ends at {last}, behind the build's checkpoint {checkpoint} (restored from a backup?)"
            ),
        });
    }
    Ok(())
}

async fn project<P: Projection>(
    store: &Arc<ProjectionStore<P>>,
    js: &jetstream::Context,
    cfg: &RunnerConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ProjectionError> {
    loop {
        if *shutdown.borrow() {
            break;
        }
        // The consumer starts after the checkpoint: what the cache applied past it is
        // written first.
        store.write_pending()?;
        // The positions quarantined so far, so that the build skips them when it meets
        // them.
        let subject = store.quarantine_subject();
        let records = tokio::select! {
            r = quarantine_records(js, &cfg.stream, &subject) => r,
            _ = shutdown.changed() => break,
        };
        match records {
            Ok(records) => store.set_quarantined(&records),
            Err(e) => {
                tracing::warn!(projection = P::NAME, build = store.tree_name(), error = %e, "cannot read the quarantine log; retrying");
                tokio::select! {
                    () = tokio::time::sleep(cfg.retry_pause) => continue,
                    _ = shutdown.changed() => break,
                }
            }
        }
        let start = store.checkpoint() + 1;
        let messages = tokio::select! {
            m = open(store, js, &cfg.stream, start) => m,
            _ = shutdown.changed() => break,
        };
        let messages = match messages {
            Ok(m) => m,
            Err(Opened::Refused(e)) => return Err(e),
            Err(Opened::Failed(e)) => {
                tracing::warn!(projection = P::NAME, build = store.tree_name(), error = %e, "cannot read the stream; retrying");
                tokio::select! {
                    () = tokio::time::sleep(cfg.retry_pause) => continue,
                    _ = shutdown.changed() => break,
                }
            }
        };
        store.stats().consumer_opens.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            projection = P::NAME,
            build = store.tree_name(),
            from = start,
            "projecting"
        );
        let mut chunks = messages.ready_chunks(cfg.batch_max);
        // Batches in flight, in stream order: up to `READ_AHEAD` read, one decoded (its
        // data keys fetched, its messages decoded and opened) and one applying on a
        // blocking thread. Reading ahead keeps the consumer's pulls going while the
        // others work.
        let mut read_ahead: VecDeque<Staged<Vec<RawEvent>>> = VecDeque::new();
        let mut decoding: Option<Decoding> = None;
        let mut ready: Option<Staged<Vec<crate::Decoded>>> = None;
        let mut applying: Option<Applying> = None;
        let mut handed = store.applied();
        let reapplied = store.stats().reapplied.load(Ordering::Relaxed);
        loop {
            if applying.is_none()
                && let Some(r) = ready.take()
            {
                applying = Some(apply(store, r));
            }
            if decoding.is_none()
                && let Some(read) = read_ahead.pop_front()
            {
                decoding = Some(decode(store, read));
            }
            tokio::select! {
                c = chunks.next(), if read_ahead.len() < READ_AHEAD => {
                    let Some(chunk) = c else { break };
                    let read = read_chunk(chunk, handed);
                    if let Some(seq) = read.replayed {
                        // async-nats re-creates an ordered consumer that had delivered
                        // nothing yet (idle since it was opened) from the start of the
                        // stream. Skipping would be correct but reads the whole stream
                        // again: open a new one instead.
                        store.stats().replayed.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            projection = P::NAME,
                            build = store.tree_name(),
                            seq,
                            applied = handed,
                            "the consumer started over; re-opening it after the checkpoint"
                        );
                        break;
                    }
                    if let Some(last) = read.batch.last() {
                        handed = last.seq;
                    }
                    if let Some(e) = read.failed {
                        // What was read before the failure is read again by the next
                        // consumer, from the checkpoint.
                        tracing::warn!(projection = P::NAME, build = store.tree_name(), error = %e, "stream read failed; re-creating the consumer");
                        break;
                    }
                    // Nearly nothing more to read: written now, so queries see it at once.
                    // Catching up: written back when the policy says.
                    let at_head = read.pending.is_none_or(|p| p < cfg.batch_max as u64);
                    read_ahead.push_back(Staged {
                        batch: read.batch,
                        pending: read.pending,
                        at_head,
                    });
                }
                d = decoded(&mut decoding), if ready.is_none() => ready = Some(d?),
                done = finish(&mut applying) => {
                    if !settle(store, done)? {
                        break;
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        // Batches read but not applied are read again from the checkpoint.
        if applying.is_some() {
            settle(store, finish(&mut applying).await)?;
        }
        if *shutdown.borrow() {
            break;
        }
        if store.stats().reapplied.load(Ordering::Relaxed) != reapplied {
            // Nothing failed: the build applies again from its checkpoint at once.
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(cfg.retry_pause) => {}
            _ = shutdown.changed() => break,
        }
    }
    store.flush()?;
    tracing::info!(
        projection = P::NAME,
        build = store.tree_name(),
        checkpoint = store.checkpoint(),
        "projector stopped"
    );
    Ok(())
}

/// Batches read and waiting to be decoded, at most.
const READ_AHEAD: usize = 4;

/// A batch on its way through the stages, with what the runner read about the stream
/// when it arrived.
struct Staged<T> {
    batch: T,
    /// Messages pending in the stream after the batch.
    pending: Option<u64>,
    /// Written back as soon as applied (nearly nothing more to read).
    at_head: bool,
}

/// A batch whose data keys are fetched and whose messages are decoded.
type Decoding =
    Staged<tokio::task::JoinHandle<Result<Vec<crate::Decoded>, tokio::task::JoinError>>>;

/// Fetches the data keys of a batch many at once, then decodes it on a blocking thread.
fn decode<P: Projection>(store: &Arc<ProjectionStore<P>>, read: Staged<Vec<RawEvent>>) -> Decoding {
    let store = Arc::clone(store);
    let Staged {
        batch,
        pending,
        at_head,
    } = read;
    let task = tokio::spawn(async move {
        if let (Some(keys), subjects) = store.subjects(&batch) {
            keys.prefetch(&subjects).await;
        }
        tokio::task::spawn_blocking(move || store.decode(batch)).await
    });
    Staged {
        batch: task,
        pending,
        at_head,
    }
}

/// Waits for the batch being decoded (forever if there is none).
async fn decoded(
    decoding: &mut Option<Decoding>,
) -> Result<Staged<Vec<crate::Decoded>>, ProjectionError> {
    let Some(d) = decoding else {
        return std::future::pending().await;
    };
    let joined = (&mut d.batch).await;
    let (pending, at_head) = (d.pending, d.at_head);
    *decoding = None;
    let batch = joined
        .and_then(|r| r)
        .map_err(|e| ProjectionError::Task(e.to_string()))?;
    Ok(Staged {
        batch,
        pending,
        at_head,
    })
}

/// Applies a decoded batch on a blocking thread: the fold and sled's writes are blocking
/// work, and a large batch must never hold up a runtime worker that the gRPC API shares.
fn apply<P: Projection>(
    store: &Arc<ProjectionStore<P>>,
    ready: Staged<Vec<crate::Decoded>>,
) -> Applying {
    let store = Arc::clone(store);
    let Staged {
        batch,
        pending,
        at_head,
    } = ready;
    Applying {
        task: tokio::task::spawn_blocking(move || store.apply_batch(&batch, at_head)),
        pending,
    }
}

/// A batch being applied on a blocking thread.
struct Applying {
    task: tokio::task::JoinHandle<Result<crate::BatchOutcome, ProjectionError>>,
    /// Messages pending in the stream after the batch, when it was read.
    pending: Option<u64>,
}

/// Waits for the batch being applied (forever if there is none).
async fn finish(
    applying: &mut Option<Applying>,
) -> Result<(crate::BatchOutcome, Option<u64>), ProjectionError> {
    let Some(a) = applying else {
        return std::future::pending().await;
    };
    let joined = (&mut a.task).await;
    let pending = a.pending;
    *applying = None;
    let out = joined.map_err(|e| ProjectionError::Task(e.to_string()))??;
    Ok((out, pending))
}

/// Counts what an applied batch tells about the stream. `Ok(false)` when the batch was
/// not applied because the key store could not answer: the store went back to its
/// checkpoint, and the consumer is opened again from there after a pause.
fn settle<P: Projection>(
    store: &ProjectionStore<P>,
    done: Result<(crate::BatchOutcome, Option<u64>), ProjectionError>,
) -> Result<bool, ProjectionError> {
    let (out, pending) = match done {
        Err(ProjectionError::Keys(e)) => {
            tracing::warn!(projection = P::NAME, build = store.tree_name(), error = %e, "cannot read a data key; applying again from the checkpoint");
            return Ok(false);
        }
        Err(ProjectionError::Reapply(_)) => {
            store.stats().reapplied.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        done => done?,
    };
    // Messages already applied, delivered again: counted with the replays.
    store
        .stats()
        .replayed
        .fetch_add(out.skipped, Ordering::Relaxed);
    if let Some(pending) = pending {
        note_head(store.stats(), out.applied_seq + pending);
    }
    Ok(true)
}

/// One chunk of delivered messages, ready to apply.
struct Chunk {
    batch: Vec<RawEvent>,
    /// Messages still pending in the stream after the last one.
    pending: Option<u64>,
    /// The consumer failed after the messages in `batch`.
    failed: Option<String>,
    /// The consumer delivered a message at or below the checkpoint (this sequence).
    replayed: Option<u64>,
}

fn read_chunk(
    chunk: Vec<Result<jetstream::Message, jetstream::consumer::pull::OrderedError>>,
    checkpoint: u64,
) -> Chunk {
    let mut out = Chunk {
        batch: Vec::with_capacity(chunk.len()),
        pending: None,
        failed: None,
        replayed: None,
    };
    for message in chunk {
        let m = match message {
            Ok(m) => m,
            Err(e) => {
                out.failed = Some(e.to_string());
                return out;
            }
        };
        let (seq, pending) = match m.info() {
            Ok(info) => (info.stream_sequence, info.pending),
            Err(e) => {
                out.failed = Some(e.to_string());
                return out;
            }
        };
        if seq <= checkpoint || out.batch.last().is_some_and(|l| seq <= l.seq) {
            out.replayed = Some(seq);
            return out;
        }
        out.pending = Some(pending);
        out.batch.push(RawEvent {
            seq,
            subject: m.subject.to_string(),
            payload: m.payload.clone(),
        });
    }
    out
}

enum Opened {
    /// The stream cannot be read now (server away): try again.
    Failed(async_nats::Error),
    /// The stream is not the build's: stop.
    Refused(ProjectionError),
}

async fn open<P: Projection>(
    store: &ProjectionStore<P>,
    js: &jetstream::Context,
    stream: &str,
    start: u64,
) -> Result<jetstream::consumer::pull::Ordered, Opened> {
    let checkpoint = store.checkpoint();
    let stream = js
        .get_stream(stream)
        .await
        .map_err(|e| Opened::Failed(e.into()))?;
    let info = stream.cached_info();
    let identity = StreamIdentity {
        name: info.config.name.clone(),
        created_unix_nanos: info.created.unix_timestamp_nanos(),
    };
    note_head(store.stats(), info.state.last_sequence);
    check_stream(store, checkpoint, &identity, info.state.last_sequence)
        .map_err(Opened::Refused)?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..OrderedConfig::default()
        })
        .await
        .map_err(|e| Opened::Failed(e.into()))?;
    consumer
        .messages()
        .await
        .map_err(|e| Opened::Failed(e.into()))
}
