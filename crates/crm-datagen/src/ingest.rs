//! Streams a data set into the CRM's bulk-ingest RPC (`CommandService/Ingest`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crm_proto::IntoCommand as _;

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
    /// Streams opened again after one broke (the service restarted or went away) or the
    /// service refused a command for a reason a resend fixes (the event log unavailable).
    pub reconnects: u64,
    /// Commands sent again after a reconnect because their answer had not arrived
    /// (each is answered once: `repeated` if its first send had been applied).
    pub resent: u64,
    /// Commands without a command id whose answer was lost with a broken stream: not
    /// sent again (a second send could apply them twice), outcome unknown.
    pub unknown: u64,
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

/// How [`ingest`] rides out a service that goes away (a restart, a crash, a network cut).
#[derive(Clone, Copy, Debug)]
pub struct Reconnect {
    /// How long to keep trying without an answer before giving up.
    pub give_up_after: Duration,
    /// First pause before reconnecting; it doubles up to `max_pause`.
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            give_up_after: Duration::from_secs(120),
            first_pause: Duration::from_millis(100),
            max_pause: Duration::from_secs(5),
        }
    }
}

/// Commands sent and not yet answered, at most: the server's own window is 256.
const WINDOW: usize = 2048;

/// Sends every request of `requests` over `Ingest` streams (the server bounds the work in
/// flight and applies back-pressure) and collects the answers. `progress` is called with
/// the number of answered commands, at most every 100 ms and once at the end.
///
/// When the stream breaks (the service restarted or died), it reconnects with back-off
/// and sends again, in their original order and before anything new, every command it
/// has no answer for. That is safe because each carries its command id: one that had
/// been applied is answered `repeated` with its original outcome. A command without a
/// command id is never sent twice; if its answer is lost it is counted in
/// [`Report::unknown`].
///
/// # Errors
/// [`IngestError`]: the service refused the stream (authentication, permission), stayed
/// unreachable for [`Reconnect::give_up_after`], or `requests` failed.
pub async fn ingest<I, E>(
    channel: Channel,
    token: &str,
    requests: I,
    progress: impl FnMut(u64),
) -> Result<Report, IngestError>
where
    I: Iterator<Item = Result<v1::IngestRequest, E>> + Send + 'static,
    E: std::fmt::Display,
{
    ingest_with(channel, token, requests, Reconnect::default(), progress).await
}

/// [`ingest`] with explicit reconnection settings.
///
/// # Errors
/// As [`ingest`].
pub async fn ingest_with<I, E>(
    channel: Channel,
    token: &str,
    requests: I,
    reconnect: Reconnect,
    mut progress: impl FnMut(u64),
) -> Result<Report, IngestError>
where
    I: Iterator<Item = Result<v1::IngestRequest, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().map_err(
        |e: tonic::metadata::errors::InvalidMetadataValue| IngestError::Token(e.to_string()),
    )?;
    let (tx, source) = tokio::sync::mpsc::channel(1024);
    // The source may block (a file): read it on a blocking thread.
    let feeder = tokio::task::spawn_blocking(move || -> Result<u64, String> {
        let mut sent = 0;
        for request in requests {
            let request = request.map_err(|e| e.to_string())?;
            if tx.blocking_send(request).is_err() {
                break; // the run ended; its error is reported below
            }
            sent += 1;
        }
        Ok(sent)
    });
    let started = Instant::now();
    let client = CommandServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let mut run = Run {
        source,
        source_done: false,
        pending: BTreeMap::new(),
        resends: BTreeMap::new(),
        report: Report::default(),
        last_progress: Instant::now(),
    };
    let mut pause = reconnect.first_pause;
    let mut answered_at = Instant::now();
    loop {
        let answered_before = run.answered();
        match run.stream(client.clone(), &bearer, &mut progress).await {
            Ok(()) => break,
            Err(status) if !retryable(&status) => return Err(status.into()),
            Err(status) => {
                if run.answered() > answered_before {
                    answered_at = Instant::now();
                    pause = reconnect.first_pause;
                }
                if answered_at.elapsed() >= reconnect.give_up_after {
                    return Err(status.into());
                }
                run.lose_unretryable();
                run.report.reconnects += 1;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(reconnect.max_pause);
            }
        }
    }
    drop(run.source);
    let mut report = run.report;
    report.sent = feeder
        .await
        .map_err(|e| IngestError::Source(e.to_string()))?
        .map_err(IngestError::Source)?;
    report.elapsed = started.elapsed();
    progress(report.ok + report.failed);
    Ok(report)
}

/// A stream that broke because of the transport or the service's state (restarting,
/// overloaded) is worth opening again; one the service refused for its caller is not.
fn retryable(status: &tonic::Status) -> bool {
    use tonic::Code;
    !matches!(
        status.code(),
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::InvalidArgument
            | Code::Unimplemented
            | Code::FailedPrecondition
    )
}

/// How often one command is sent again after a refusal a resend can fix.
const MAX_RESENDS: u32 = 10;

/// A reply refusing a command for a reason a resend with the same command id can fix:
/// the event log was unavailable, a conflict outlasted the service's retries, or an
/// earlier command on the same aggregate was not applied.
fn resend(reply: &v1::IngestReply) -> bool {
    matches!(
        &reply.result,
        Some(v1::ingest_reply::Result::Error(e)) if crm_proto::resendable(tonic::Code::from(e.code))
    )
}

/// The state of one ingest run across its streams.
struct Run {
    source: tokio::sync::mpsc::Receiver<v1::IngestRequest>,
    source_done: bool,
    /// Sent and not answered, by sequence (the order they are sent again in).
    pending: BTreeMap<u64, v1::IngestRequest>,
    /// Commands sent again because the service refused them for a reason a resend can
    /// fix, and how often.
    resends: BTreeMap<u64, u32>,
    report: Report,
    last_progress: Instant,
}

impl Run {
    fn answered(&self) -> u64 {
        self.report.ok + self.report.failed
    }

    /// After a broken stream: commands without a command id are not sent again (a
    /// second send could apply them twice); their outcome is unknown.
    fn lose_unretryable(&mut self) {
        let before = self.pending.len();
        self.pending
            .retain(|_, r| r.options().is_some_and(|o| !o.command_id.is_empty()));
        self.report.unknown += (before - self.pending.len()) as u64;
        self.report.resent += self.pending.len() as u64;
    }

    /// One `Ingest` stream: first every unanswered command again, then new ones while
    /// the window allows, until everything is answered (`Ok`) or the stream breaks.
    async fn stream(
        &mut self,
        mut client: CommandServiceClient<Channel>,
        bearer: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
        progress: &mut impl FnMut(u64),
    ) -> Result<(), tonic::Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(WINDOW * 2);
        for r in self.pending.values() {
            // The channel holds the whole window: this cannot fail.
            let _ = tx.try_send(r.clone());
        }
        let mut tx = Some(tx);
        if self.source_done {
            tx = None;
        }
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        let mut replies = client.ingest(request).await?.into_inner();
        loop {
            if self.source_done && self.pending.is_empty() {
                return Ok(());
            }
            let room = tx.is_some() && self.pending.len() < WINDOW;
            tokio::select! {
                next = self.source.recv(), if room => match next {
                    Some(r) => {
                        self.pending.insert(r.sequence, r.clone());
                        if let Some(tx) = &tx {
                            let _ = tx.send(r).await;
                        }
                    }
                    None => {
                        self.source_done = true;
                        tx = None; // the server ends the stream once it answered all
                    }
                },
                reply = replies.message() => match reply? {
                    Some(reply)
                        if resend(&reply)
                            && self.keeps_id(reply.sequence)
                            && self.may_resend(reply.sequence) =>
                    {
                        // The service could not apply it now (and holds back what follows
                        // on its aggregates): open the stream again, which sends every
                        // unanswered command again, in order.
                        let message = match reply.result {
                            Some(v1::ingest_reply::Result::Error(e)) => e.message,
                            _ => String::new(),
                        };
                        return Err(tonic::Status::unavailable(format!(
                            "command {} could not be applied now: {message}",
                            reply.sequence
                        )));
                    }
                    Some(reply) => self.record(reply, progress),
                    None if self.pending.is_empty() && self.source_done => return Ok(()),
                    None => {
                        return Err(tonic::Status::unavailable(
                            "the ingest stream ended with commands unanswered",
                        ));
                    }
                },
            }
        }
    }

    /// Whether the unanswered command `sequence` has a command id (so sending it again
    /// cannot apply it twice).
    fn keeps_id(&self, sequence: u64) -> bool {
        self.pending
            .get(&sequence)
            .and_then(|r| r.options())
            .is_some_and(|o| !o.command_id.is_empty())
    }

    /// Counts a resend of `sequence`; false once it was sent [`MAX_RESENDS`] times (then
    /// its refusal is reported like any other).
    fn may_resend(&mut self, sequence: u64) -> bool {
        let n = self.resends.entry(sequence).or_default();
        *n += 1;
        *n <= MAX_RESENDS
    }

    fn record(&mut self, reply: v1::IngestReply, progress: &mut impl FnMut(u64)) {
        // An answer to a command already answered (it was sent again) counts once.
        if self.pending.remove(&reply.sequence).is_none() {
            return;
        }
        self.resends.remove(&reply.sequence);
        let report = &mut self.report;
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
            None => report.failed += 1,
        }
        if self.last_progress.elapsed() >= Duration::from_millis(100) {
            progress(report.ok + report.failed);
            self.last_progress = Instant::now();
        }
    }
}
