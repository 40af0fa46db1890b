//! Streams a data set into the CRM's bulk-ingest RPC (`CommandService/Ingest`).

use std::time::{Duration, Instant};

use crm_proto::v1::{self, command_service_client::CommandServiceClient};
use tonic::transport::Channel;

/// One command the service refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub sequence: u64,
    /// gRPC status code the unary RPC would have returned.
    pub code: i32,
    pub message: String,
}

/// What an ingest run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub sent: u64,
    /// Commands accepted (appended now, or found already appended: `repeated`).
    pub ok: u64,
    /// Of `ok`, commands that had been appended before (same command id).
    pub repeated: u64,
    /// Of `ok`, commands that changed nothing (no event appended), with their sequences
    /// (the first [`MAX_FAILURES_KEPT`]).
    pub noop: u64,
    pub noops: Vec<u64>,
    /// Refused commands (the first [`MAX_FAILURES_KEPT`] are kept; `failed` counts all).
    pub failures: Vec<Failure>,
    pub failed: u64,
    /// Highest stream position of an accepted command: the consistency token that covers
    /// the whole run.
    pub max_position: u64,
    pub elapsed: Duration,
}

/// Failures kept in a [`Report`].
pub const MAX_FAILURES_KEPT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid token: {0}")]
    Token(String),
    #[error("ingest call failed: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("reading the commands: {0}")]
    Source(String),
}

/// Sends every request of `requests` over one `Ingest` stream (the server bounds the work
/// in flight and applies back-pressure) and collects the answers. `progress` is called with
/// the number of answered commands, at most every 100 ms and once at the end.
///
/// # Errors
/// [`IngestError`]: the stream could not be opened or broke, or `requests` failed.
pub async fn ingest<I, E>(
    channel: Channel,
    token: &str,
    requests: I,
    mut progress: impl FnMut(u64),
) -> Result<Report, IngestError>
where
    I: Iterator<Item = Result<v1::IngestRequest, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().map_err(
        |e: tonic::metadata::errors::InvalidMetadataValue| IngestError::Token(e.to_string()),
    )?;
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    // The source may block (a file): read it on a blocking thread.
    let feeder = tokio::task::spawn_blocking(move || -> Result<u64, String> {
        let mut sent = 0;
        for request in requests {
            let request = request.map_err(|e| e.to_string())?;
            if tx.blocking_send(request).is_err() {
                break; // the call ended; its error is reported below
            }
            sent += 1;
        }
        Ok(sent)
    });
    let started = Instant::now();
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    request.metadata_mut().insert("authorization", bearer);
    let mut replies = CommandServiceClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .ingest(request)
        .await?
        .into_inner();
    let mut report = Report::default();
    let mut last = Instant::now();
    while let Some(reply) = replies.message().await? {
        match reply.result {
            Some(v1::ingest_reply::Result::Ok(ok)) => {
                report.ok += 1;
                report.repeated += u64::from(ok.repeated);
                if !ok.repeated && ok.events_appended == 0 {
                    report.noop += 1;
                    if report.noops.len() < MAX_FAILURES_KEPT {
                        report.noops.push(reply.sequence);
                    }
                }
                report.max_position = report.max_position.max(ok.position);
            }
            Some(v1::ingest_reply::Result::Error(e)) => {
                report.failed += 1;
                if report.failures.len() < MAX_FAILURES_KEPT {
                    report.failures.push(Failure {
                        sequence: reply.sequence,
                        code: e.code,
                        message: e.message,
                    });
                }
            }
            None => {
                report.failed += 1;
            }
        }
        if last.elapsed() >= Duration::from_millis(100) {
            progress(report.ok + report.failed);
            last = Instant::now();
        }
    }
    report.sent = feeder
        .await
        .map_err(|e| IngestError::Source(e.to_string()))?
        .map_err(IngestError::Source)?;
    report.elapsed = started.elapsed();
    progress(report.ok + report.failed);
    Ok(report)
}
