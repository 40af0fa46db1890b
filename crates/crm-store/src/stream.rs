//! Creating the stream, and refusing one whose configuration would weaken the log's
//! guarantees (an audit-grade, append-only, never-expiring history).

use async_nats::jetstream::{
    self, ErrorCode,
    context::GetStreamErrorKind,
    stream::{Config, DiscardPolicy, PersistenceMode, RetentionPolicy, StorageType},
};

use crate::config::LogConfig;
use crate::error::StoreError;

/// The stream configuration the log requires.
#[must_use]
pub fn desired_config(cfg: &LogConfig) -> Config {
    Config {
        name: cfg.stream.clone(),
        description: Some("CRM event log: append-only, one subject per aggregate".into()),
        subjects: vec![cfg.subject_filter()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        discard: DiscardPolicy::New,
        max_age: std::time::Duration::ZERO,
        max_bytes: -1,
        max_messages: -1,
        max_messages_per_subject: -1,
        max_consumers: -1,
        num_replicas: cfg.replicas,
        duplicate_window: cfg.duplicate_window,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        allow_direct: true,
        allow_atomic_publish: true,
        ..Default::default()
    }
}

/// What in an existing stream's configuration weakens the guarantees, one sentence
/// each. Empty when the stream is safe to use.
#[must_use]
pub fn weaknesses(existing: &Config, cfg: &LogConfig) -> Vec<String> {
    let mut out = Vec::new();
    let filter = cfg.subject_filter();
    if !existing.subjects.contains(&filter) {
        out.push(format!(
            "subjects {:?} do not include {filter:?}",
            existing.subjects
        ));
    }
    if existing.storage != StorageType::File {
        out.push("storage is memory; the log needs file storage".into());
    }
    if existing.retention != RetentionPolicy::Limits {
        out.push(format!(
            "retention is {:?}; the log needs limits retention (nothing is ever removed)",
            existing.retention
        ));
    }
    if !existing.max_age.is_zero() {
        out.push(format!(
            "max_age is {:?}: events would expire",
            existing.max_age
        ));
    }
    if existing.max_bytes > 0 {
        out.push(format!(
            "max_bytes is {}: old events would be dropped or writes refused",
            existing.max_bytes
        ));
    }
    if existing.max_messages > 0 {
        out.push(format!(
            "max_msgs is {}: old events would be dropped or writes refused",
            existing.max_messages
        ));
    }
    if existing.max_messages_per_subject > 0 {
        out.push(format!(
            "max_msgs_per_subject is {}: an aggregate's history would be truncated",
            existing.max_messages_per_subject
        ));
    }
    if existing.discard != DiscardPolicy::New {
        out.push("discard is old: reaching a limit would silently delete history".into());
    }
    if !existing.deny_delete {
        out.push("deny_delete is off: single events could be deleted".into());
    }
    if !existing.deny_purge {
        out.push("deny_purge is off: history could be purged".into());
    }
    if existing.allow_rollup {
        out.push("allow_rollup is on: a rollup could replace an aggregate's history".into());
    }
    if !existing.allow_atomic_publish {
        out.push(
            "allow_atomic is off: multi-event commands could not be committed atomically".into(),
        );
    }
    if !existing.allow_direct {
        out.push(
            "allow_direct is off: aggregates could not be loaded with batched direct get".into(),
        );
    }
    if existing.num_replicas < cfg.replicas {
        out.push(format!(
            "replicas is {}, fewer than the configured {}",
            existing.num_replicas, cfg.replicas
        ));
    }
    if matches!(existing.persist_mode, Some(PersistenceMode::Async)) {
        out.push(
            "persist_mode is async: writes would be acknowledged before they are stored".into(),
        );
    }
    if existing.no_ack {
        out.push("no_ack is on: appends could not be confirmed".into());
    }
    if existing.allow_message_ttl || existing.subject_delete_marker_ttl.is_some() {
        out.push("per-message TTLs are allowed: events could expire".into());
    }
    if existing.allow_message_schedules {
        out.push(
            "message schedules are allowed: events could land without a sequence check".into(),
        );
    }
    if existing.allow_message_counter {
        out.push("message counters are allowed: the stream would not be an event log".into());
    }
    if existing.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        out.push(
            "the stream sources other streams: foreign messages could appear on event subjects"
                .into(),
        );
    }
    if existing.subject_transform.is_some() {
        out.push(
            "a subject transform is set: events would not be stored on their aggregate's subject"
                .into(),
        );
    }
    if existing.mirror.is_some() {
        out.push("the stream is a mirror; the log must accept writes".into());
    }
    if existing.sealed {
        out.push("the stream is sealed; the log must accept writes".into());
    }
    out
}

/// Creates the stream if it is missing; verifies it if it exists. Idempotent.
/// Refuses (without changing anything) a stream whose configuration would weaken the
/// log's guarantees.
pub async fn ensure_stream(js: &jetstream::Context, cfg: &LogConfig) -> Result<Config, StoreError> {
    match js.get_stream(&cfg.stream).await {
        Ok(mut stream) => {
            let info = stream
                .info()
                .await
                .map_err(|e| StoreError::unavailable("stream info", e))?;
            let problems = weaknesses(&info.config, cfg);
            if problems.is_empty() {
                Ok(info.config.clone())
            } else {
                Err(StoreError::UnsafeStream {
                    stream: cfg.stream.clone(),
                    problems,
                })
            }
        }
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(err) if err.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            let created = js
                .create_stream(desired_config(cfg))
                .await
                .map_err(|e| StoreError::unavailable("create stream", e))?;
            tracing::info!(stream = %cfg.stream, replicas = cfg.replicas, "created event log stream");
            Ok(created.cached_info().config.clone())
        }
        Err(e) => Err(StoreError::unavailable("look up stream", e)),
    }
}
