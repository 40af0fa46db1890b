//! A projection built offline: the stream folded by this version's code into a read-model
//! directory of its own, without touching the service (its NATS user only reads). Run
//! again on the same directory, a build continues where it stopped; a build made by
//! another code version or configuration is cleared and made again.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crm_audit::connect::Source;
use crm_projection::{Projection, ProjectionStore, RunnerConfig, WriteBack};

use crate::{AnalystError, Named};

/// What a build did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Built {
    pub projection: &'static str,
    /// The stream's last sequence when the build started: the build applied up to it.
    pub position: u64,
    /// Messages applied by this run (a continued build counts only its own).
    pub messages: u64,
    pub events: u64,
    pub dead_lettered: u64,
    pub seconds: f64,
}

/// Builds `projection` from `source`'s stream into `dir` up to the stream's last
/// sequence at the start, with an offline build's write-back cache of
/// [`CACHE_MIB`] (no query reads the directory meanwhile, so the cache is written back in
/// large batches); `progress(applied, last)` is called a few times a second.
///
/// # Errors
/// The directory (e.g. held by a running process), the stream, or the fold's storage.
pub async fn build(
    source: &Source,
    projection: Named,
    dir: &Path,
    progress: impl FnMut(u64, u64),
) -> Result<Built, AnalystError> {
    let at = (source, dir, WriteBack::offline(CACHE_MIB));
    match projection {
        Named::Customer360 => {
            build_with(at, crm_customer360::Customer360::default(), progress).await
        }
        Named::Funnel => build_with(at, crm_funnel::Funnel, progress).await,
        Named::Churn => build_with(at, crm_churn::Churn::default(), progress).await,
    }
}

/// The write-back cache of [`build`], MiB.
pub const CACHE_MIB: u64 = 256;

/// sled's page cache for a directory the tools open (sled's default is 1 GiB): the
/// tools read each value about once, so a small cache bounds their memory.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Opens a read-model directory, naming it in the error (sled refuses one another process
/// holds).
pub(crate) fn open_dir(dir: &Path) -> Result<sled::Db, AnalystError> {
    let config = sled::Config::new().path(dir).cache_capacity(CACHE_BYTES);
    config.open().map_err(|e| AnalystError::Directory {
        dir: dir.display().to_string(),
        message: format!(
            "{e} (is a running crm serve holding it? use a stopped service's directory or a copy)"
        ),
    })
}

async fn build_with<P: Projection>(
    (source, dir, write_back): (&Source, &Path, WriteBack),
    projection: P,
    mut progress: impl FnMut(u64, u64),
) -> Result<Built, AnalystError> {
    let mut stream = source.stream().await?;
    let last = stream
        .info()
        .await
        .map_err(|e| AnalystError::Stream(crm_audit::AuditError::Nats(e.to_string())))?
        .state
        .last_sequence;
    let db = open_dir(dir)?;
    let store = Arc::new(ProjectionStore::open(
        &db,
        projection,
        source.scheme.clone(),
    )?);
    let reader = store.reader();
    let from = reader.checkpoint();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(crm_projection::run(
        Arc::clone(&store),
        source.js.clone(),
        RunnerConfig {
            stream: source.stream_name.clone(),
            write_back,
            // Without the key store, sealed personal text is built as erased.
            keys: source.keys.clone(),
            ..RunnerConfig::default()
        },
        stopped,
    ));
    let stats = Arc::clone(store.stats());
    while !reader.wait_for(last, Duration::from_millis(250)).await {
        progress(stats.applied.load(Ordering::Relaxed).max(from), last);
        if task.is_finished() {
            break;
        }
    }
    progress(reader.checkpoint(), last);
    let _ = stop.send(true);
    task.await
        .map_err(|e| crm_projection::ProjectionError::Task(e.to_string()))??;
    db.flush().map_err(crm_projection::ProjectionError::from)?;
    let stats = store.stats();
    Ok(Built {
        projection: P::NAME,
        position: reader.checkpoint(),
        messages: reader.checkpoint().saturating_sub(from),
        events: stats.events_applied.load(Ordering::Relaxed),
        dead_lettered: stats.dead_lettered.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    })
}
