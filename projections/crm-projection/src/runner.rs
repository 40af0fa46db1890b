//! Feeds a [`ProjectionStore`] from the JetStream stream.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt;
use tokio::sync::watch;

use crate::{Projection, ProjectionError, ProjectionStore, RawEvent};

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
    /// How often the stream's last sequence is read for the lag metric.
    pub head_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            stream: "CRM_EVENTS".into(),
            batch_max: 1000,
            retry_pause: Duration::from_millis(500),
            head_interval: Duration::from_secs(2),
        }
    }
}

/// Runs the projection until `shutdown` turns true: reads the stream from checkpoint + 1
/// with an unfiltered ordered consumer and applies what arrives in batches. A lost server
/// or consumer is re-created from the checkpoint; only a storage failure ends the run.
pub async fn run<P: Projection>(
    store: Arc<ProjectionStore<P>>,
    js: jetstream::Context,
    cfg: RunnerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProjectionError> {
    // The stream's head, looked at now and then, so lag shows even when no message
    // arrives (a stalled consumer, a server away).
    let head = tokio::spawn(track_stream_head(
        js.clone(),
        cfg.stream.clone(),
        Arc::clone(store.stats()),
        cfg.head_interval,
    ));
    let result = project(&store, &js, &cfg, &mut shutdown).await;
    head.abort();
    result
}

/// Keeps `stats.stream_head` up to date with the stream's last sequence, reading it every
/// `every`, so [`crate::ProjectionStats::lag`] shows a projector that is stuck or not
/// running. [`run`] runs this itself; it never returns.
pub async fn track_stream_head(
    js: jetstream::Context,
    stream: String,
    stats: Arc<crate::ProjectionStats>,
    every: Duration,
) {
    loop {
        match js.get_stream(&stream).await {
            Ok(s) => {
                stats
                    .stream_head
                    .fetch_max(s.cached_info().state.last_sequence, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the stream's state"),
        }
        tokio::time::sleep(every).await;
    }
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
        let start = store.checkpoint() + 1;
        let messages = tokio::select! {
            m = open(js, &cfg.stream, start) => m,
            _ = shutdown.changed() => break,
        };
        let messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(projection = P::NAME, error = %e, "cannot read the stream; retrying");
                tokio::select! {
                    () = tokio::time::sleep(cfg.retry_pause) => continue,
                    _ = shutdown.changed() => break,
                }
            }
        };
        tracing::info!(projection = P::NAME, from = start, "projecting");
        let mut chunks = messages.ready_chunks(cfg.batch_max);
        loop {
            let chunk = tokio::select! {
                c = chunks.next() => c,
                _ = shutdown.changed() => None,
            };
            let Some(chunk) = chunk else { break };
            let mut batch = Vec::with_capacity(chunk.len());
            let mut lag = None;
            let mut failed = None;
            for message in chunk {
                match message {
                    Ok(m) => match m.info() {
                        Ok(info) => {
                            lag = Some(info.pending);
                            batch.push(RawEvent {
                                seq: info.stream_sequence,
                                subject: m.subject.to_string(),
                                payload: m.payload.clone(),
                            });
                        }
                        Err(e) => failed = Some(e.to_string()),
                    },
                    Err(e) => failed = Some(e.to_string()),
                }
                if failed.is_some() {
                    break;
                }
            }
            // The fold and sled's writes are blocking work: they run on a blocking thread
            // so a large batch never holds up a runtime worker that the gRPC API shares.
            let applying = Arc::clone(store);
            let out = tokio::task::spawn_blocking(move || applying.apply_batch(&batch))
                .await
                .map_err(|e| ProjectionError::Task(e.to_string()))??;
            if let Some(pending) = lag {
                store
                    .stats()
                    .stream_head
                    .fetch_max(out.checkpoint + pending, Ordering::Relaxed);
            }
            if let Some(e) = failed {
                tracing::warn!(projection = P::NAME, error = %e, "stream read failed; re-creating the consumer");
                break;
            }
        }
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(cfg.retry_pause) => {}
            _ = shutdown.changed() => break,
        }
    }
    store.flush()?;
    tracing::info!(
        projection = P::NAME,
        checkpoint = store.checkpoint(),
        "projector stopped"
    );
    Ok(())
}

async fn open(
    js: &jetstream::Context,
    stream: &str,
    start: u64,
) -> Result<jetstream::consumer::pull::Ordered, async_nats::Error> {
    let stream = js.get_stream(stream).await?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..OrderedConfig::default()
        })
        .await?;
    Ok(consumer.messages().await?)
}
