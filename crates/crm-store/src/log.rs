//! The event log on JetStream: atomic appends with per-subject optimistic concurrency,
//! and reading one subject's messages with batched direct get.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, Request, client::RequestErrorKind, jetstream};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;

use crate::config::LogConfig;
use crate::error::{AppendError, StoreError};
use crate::stream::ensure_stream;

const MSG_ID: &str = "Nats-Msg-Id";
const EXPECTED_LAST_SUBJECT_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
const BATCH_ID: &str = "Nats-Batch-Id";
const BATCH_SEQ: &str = "Nats-Batch-Sequence";
const BATCH_COMMIT: &str = "Nats-Batch-Commit";
/// The server's limit on messages in one atomic batch.
pub const MAX_BATCH: usize = 1000;
/// Messages per batched direct get request (the server's limit).
const READ_BATCH: usize = 1000;

/// One message of a commit.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    pub subject: String,
    pub payload: Bytes,
    /// Unique per message (JetStream dedupes on it inside its window).
    pub msg_id: String,
    /// The stream sequence of the last message on `subject` this commit was decided
    /// against (0: the subject must be empty). Set it on the first message of each
    /// subject in a commit; every write of an aggregate carries one.
    pub expected_last_subject_seq: Option<u64>,
}

/// A successful append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendAck {
    /// Stream sequence of the commit's first message.
    pub first_seq: u64,
    /// Stream sequence of the commit's last message (the commit's position).
    pub last_seq: u64,
    /// JetStream reported the message as a duplicate of one already stored (same
    /// `Nats-Msg-Id` within the dedupe window): nothing new was written, and
    /// `last_seq` is the original's sequence.
    pub duplicate: bool,
}

/// One stored message.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub seq: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    pub payload: Bytes,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
struct PubAckResponse {
    error: Option<ApiError>,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    count: Option<u64>,
}

/// JetStream error codes the log treats as a concurrent write.
const CONFLICT_CODES: [u64; 3] = [
    10071, // wrong last sequence
    10164, // wrong last sequence (in-flight write, or subject written earlier in the batch)
    10163, // expected last sequence per subject not ready (clustered catch-up)
];
/// JetStream error codes after which the same commit may succeed a moment later.
const BUSY_CODES: [u64; 2] = [
    10210, // atomic publish: too many batches in flight on the stream
    10176, // atomic publish: incomplete batch (a middle message was lost, e.g. reconnect)
];
/// Open atomic batches one process allows itself (the server allows 50 per stream, for
/// all writers together).
const MAX_OPEN_BATCHES: usize = 16;
/// A message of the batch duplicates a stored `Nats-Msg-Id`.
const BATCH_DUPLICATE: u64 = 10201;

/// Injected failures, for tests of the ambiguous-failure path.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Default)]
struct Faults {
    /// Report this many commits as unanswered without sending them.
    lose_requests: std::sync::atomic::AtomicU32,
    /// Store this many commits but report them as unanswered (the ack is lost).
    lose_acks: std::sync::atomic::AtomicU32,
    /// Send this many direct get requests where nothing answers (the request is lost).
    lose_reads: std::sync::atomic::AtomicU32,
    /// Send this many direct get requests to a stream nobody serves (no responders).
    unserved_reads: std::sync::atomic::AtomicU32,
    /// Answer this many subject reads as a replica behind the leader would: with
    /// nothing newer than what the reader already has.
    stale_reads: std::sync::atomic::AtomicU32,
}

#[cfg(feature = "fault-injection")]
fn take(counter: &std::sync::atomic::AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Attempts of one batched direct get before a read fails.
const READ_ATTEMPTS: u32 = 3;

/// Why one batched direct get failed.
enum ReadFailure {
    /// Nothing (more) came within the request timeout: worth sending again.
    TimedOut,
    /// Nothing serves the stream right now (no responders): a clustered stream while it
    /// elects a leader or its replicas catch up. Worth sending again after a pause.
    NoResponders,
    Failed(StoreError),
}

/// First pause before a direct get that met no responders is sent again; it doubles up
/// to [`NO_RESPONDERS_PAUSE_MAX`], and the read gives up after the request timeout.
const NO_RESPONDERS_PAUSE: Duration = Duration::from_millis(25);
const NO_RESPONDERS_PAUSE_MAX: Duration = Duration::from_millis(400);

/// Whether one batch of a read is sent again after a failure, and after what pause.
#[derive(Default)]
struct ReadRetry {
    /// Attempts that went unanswered.
    timed_out: u32,
    /// Since when nothing served the stream, and the next pause.
    unserved: Option<(Instant, Duration)>,
}

impl ReadRetry {
    /// The pause before sending the batch again, or the read's error. An unanswered
    /// request (lost, or a starved server answering late) is sent again at once, up to
    /// [`READ_ATTEMPTS`] in all; one met by no responders after a pause that doubles,
    /// for up to `timeout`.
    fn after(&mut self, failure: ReadFailure, timeout: Duration) -> Result<Duration, StoreError> {
        match failure {
            ReadFailure::TimedOut => {
                self.timed_out += 1;
                if self.timed_out >= READ_ATTEMPTS {
                    return Err(StoreError::unavailable(
                        "direct get",
                        format!("no answer within {timeout:?}, {READ_ATTEMPTS} attempts"),
                    ));
                }
                Ok(Duration::ZERO)
            }
            ReadFailure::NoResponders => {
                let (since, pause) = self
                    .unserved
                    .get_or_insert((Instant::now(), NO_RESPONDERS_PAUSE));
                if since.elapsed() + *pause > timeout {
                    return Err(StoreError::unavailable(
                        "direct get",
                        format!("no responders (stream unavailable) for {timeout:?}"),
                    ));
                }
                let now = *pause;
                *pause = (now * 2).min(NO_RESPONDERS_PAUSE_MAX);
                Ok(now)
            }
            ReadFailure::Failed(e) => Err(e),
        }
    }
}

/// The append-only event log.
#[derive(Clone, Debug)]
pub struct EventLog {
    client: Client,
    js: jetstream::Context,
    cfg: Arc<LogConfig>,
    open_batches: Arc<tokio::sync::Semaphore>,
    /// The stream has more than one replica: a direct get may be answered by a follower
    /// behind the leader (see [`EventLog::leader_last_seq`]).
    replicated: bool,
    /// Direct gets sent again (unanswered within `request_timeout`, or no responders).
    read_retries: Arc<AtomicU64>,
    #[cfg(feature = "fault-injection")]
    faults: Arc<Faults>,
}

impl EventLog {
    /// Opens the log on a connected client: creates the stream if needed and refuses a
    /// stream whose configuration would weaken the guarantees.
    pub async fn open(client: Client, cfg: LogConfig) -> Result<Self, StoreError> {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(cfg.request_timeout);
        // A freshly started server or cluster may not answer JetStream requests yet (meta
        // leader election, stream placement): retry until `open_timeout`. Creating the
        // stream is idempotent, so a timed-out create that did happen is verified next.
        let deadline = tokio::time::Instant::now() + cfg.open_timeout;
        let mut pause = Duration::from_millis(100);
        let stream = loop {
            match ensure_stream(&js, &cfg).await {
                Ok(stream) => break stream,
                Err(StoreError::Unavailable { context, message })
                    if tokio::time::Instant::now() + pause < deadline =>
                {
                    tracing::warn!(context, %message, "event log not ready yet; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Self {
            client,
            js,
            cfg: Arc::new(cfg),
            open_batches: Arc::new(tokio::sync::Semaphore::new(MAX_OPEN_BATCHES)),
            replicated: stream.num_replicas > 1,
            read_retries: Arc::default(),
            #[cfg(feature = "fault-injection")]
            faults: Arc::default(),
        })
    }

    #[must_use]
    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }

    /// Direct gets sent again since start because no answer came within the request
    /// timeout, or the stream had no responders (for metrics).
    #[must_use]
    pub fn read_retries(&self) -> u64 {
        self.read_retries.load(Ordering::Relaxed)
    }

    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    #[must_use]
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Appends one commit: a single message, or an atomic batch (all stored or none).
    pub async fn append(&self, messages: &[OutgoingMessage]) -> Result<AppendAck, AppendError> {
        #[cfg(feature = "fault-injection")]
        if take(&self.faults.lose_requests) {
            return Err(AppendError::Ambiguous(
                "injected: the commit never reached the server".into(),
            ));
        }
        let result = self.append_commit(messages).await;
        #[cfg(feature = "fault-injection")]
        if result.is_ok() && take(&self.faults.lose_acks) {
            return Err(AppendError::Ambiguous(
                "injected: the commit was stored but its ack was lost".into(),
            ));
        }
        result
    }

    /// The next `n` commits are reported as unanswered without being sent.
    #[cfg(feature = "fault-injection")]
    pub fn inject_lost_requests(&self, n: u32) {
        self.faults.lose_requests.store(n, Ordering::SeqCst);
    }

    /// The next `n` direct get requests go where nothing answers (lost reads): each
    /// costs the reader one request timeout.
    #[cfg(feature = "fault-injection")]
    pub fn inject_lost_reads(&self, n: u32) {
        self.faults.lose_reads.store(n, Ordering::SeqCst);
    }

    /// The next `n` direct get requests go to a stream nobody serves: the server answers
    /// each at once with "no responders", as while a clustered stream elects a leader.
    #[cfg(feature = "fault-injection")]
    pub fn inject_unserved_reads(&self, n: u32) {
        self.faults.unserved_reads.store(n, Ordering::SeqCst);
    }

    /// The next `n` subject reads answer as a replica that has none of the subject's
    /// newer messages yet (a follower behind the stream leader).
    #[cfg(feature = "fault-injection")]
    pub fn inject_stale_reads(&self, n: u32) {
        self.faults.stale_reads.store(n, Ordering::SeqCst);
    }

    /// The next `n` commits are stored but reported as unanswered (lost acks).
    #[cfg(feature = "fault-injection")]
    pub fn inject_lost_acks(&self, n: u32) {
        self.faults.lose_acks.store(n, Ordering::SeqCst);
    }

    async fn append_commit(&self, messages: &[OutgoingMessage]) -> Result<AppendAck, AppendError> {
        match messages {
            [] => Err(AppendError::Refused {
                code: 0,
                description: "empty commit".into(),
            }),
            [one] => self.append_one(one).await,
            many if many.len() > MAX_BATCH => Err(AppendError::Refused {
                code: 10199,
                description: format!(
                    "{} messages exceed the batch limit of {MAX_BATCH}",
                    many.len()
                ),
            }),
            many => self.append_batch(many, None).await,
        }
    }

    /// Appends an atomic batch but stops before sending message `stop_before` (0-based),
    /// never committing. For fault-injection tests: the server must store nothing.
    #[cfg(feature = "fault-injection")]
    pub async fn append_batch_without_commit(
        &self,
        messages: &[OutgoingMessage],
        stop_before: usize,
    ) -> Result<(), AppendError> {
        self.append_batch(messages, Some(stop_before))
            .await
            .map(|_| ())
    }

    fn headers(m: &OutgoingMessage) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(MSG_ID, m.msg_id.as_str());
        if let Some(seq) = m.expected_last_subject_seq {
            h.insert(EXPECTED_LAST_SUBJECT_SEQ, seq.to_string().as_str());
        }
        h
    }

    async fn request(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Bytes, AppendError> {
        let req = Request::new()
            .headers(headers)
            .payload(payload)
            .timeout(Some(self.cfg.request_timeout));
        match self.client.send_request(subject.to_owned(), req).await {
            Ok(msg) => Ok(msg.payload),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::NoResponders => {
                    AppendError::Unavailable(format!("no JetStream stream answered on {subject}"))
                }
                RequestErrorKind::MaxPayloadExceeded | RequestErrorKind::InvalidSubject => {
                    AppendError::Refused {
                        code: 0,
                        description: e.to_string(),
                    }
                }
                RequestErrorKind::TimedOut | RequestErrorKind::Other => {
                    AppendError::Ambiguous(e.to_string())
                }
            }),
        }
    }

    fn parse_ack(payload: &[u8]) -> Result<PubAckResponse, AppendError> {
        let resp: PubAckResponse = serde_json::from_slice(payload).map_err(|e| {
            AppendError::Ambiguous(format!(
                "unreadable answer from JetStream ({e}): {:?}",
                String::from_utf8_lossy(payload)
            ))
        })?;
        if let Some(err) = resp.error {
            return Err(if CONFLICT_CODES.contains(&err.err_code) {
                AppendError::Conflict {
                    code: err.err_code,
                    description: err.description,
                }
            } else if BUSY_CODES.contains(&err.err_code) {
                AppendError::Busy {
                    code: err.err_code,
                    description: err.description,
                }
            } else if err.err_code == BATCH_DUPLICATE {
                AppendError::Duplicate(err.description)
            } else {
                AppendError::Refused {
                    code: err.err_code,
                    description: err.description,
                }
            });
        }
        Ok(resp)
    }

    async fn append_one(&self, m: &OutgoingMessage) -> Result<AppendAck, AppendError> {
        let payload = self
            .request(&m.subject, Self::headers(m), m.payload.clone())
            .await?;
        let ack = Self::parse_ack(&payload)?;
        if ack.seq == 0 {
            return Err(AppendError::Ambiguous(format!(
                "ack without a sequence: {:?}",
                String::from_utf8_lossy(&payload)
            )));
        }
        Ok(AppendAck {
            first_seq: ack.seq,
            last_seq: ack.seq,
            duplicate: ack.duplicate,
        })
    }

    async fn append_batch(
        &self,
        messages: &[OutgoingMessage],
        stop_before: Option<usize>,
    ) -> Result<AppendAck, AppendError> {
        let _open = self
            .open_batches
            .acquire()
            .await
            .map_err(|e| AppendError::Unavailable(e.to_string()))?;
        let batch_id = uuid::Uuid::new_v4().simple().to_string();
        let last = messages.len() - 1;
        for (i, m) in messages.iter().enumerate() {
            if stop_before == Some(i) {
                return Ok(AppendAck {
                    first_seq: 0,
                    last_seq: 0,
                    duplicate: false,
                });
            }
            let mut h = Self::headers(m);
            h.insert(BATCH_ID, batch_id.as_str());
            h.insert(BATCH_SEQ, (i + 1).to_string().as_str());
            if i == last {
                h.insert(BATCH_COMMIT, "1");
                let payload = self.request(&m.subject, h, m.payload.clone()).await?;
                let ack = Self::parse_ack(&payload)?;
                let count = ack.count.unwrap_or(messages.len() as u64);
                if count != messages.len() as u64 {
                    return Err(AppendError::Ambiguous(format!(
                        "batch ack counts {count} messages, {} were sent",
                        messages.len()
                    )));
                }
                let Some(first_seq) = (ack.seq + 1).checked_sub(count).filter(|f| *f > 0) else {
                    return Err(AppendError::Ambiguous(format!(
                        "batch ack with sequence {} cannot hold {count} messages",
                        ack.seq
                    )));
                };
                return Ok(AppendAck {
                    first_seq,
                    last_seq: ack.seq,
                    duplicate: false,
                });
            }
            // Before the commit nothing can land: every failure here is a clean one.
            let unsent = |e: AppendError| match e {
                AppendError::Ambiguous(m) => AppendError::Unavailable(m),
                other => other,
            };
            if i == 0 {
                // The first message opens the batch and is answered with an empty reply.
                let payload = self
                    .request(&m.subject, h, m.payload.clone())
                    .await
                    .map_err(unsent)?;
                if !payload.is_empty() {
                    Self::parse_ack(&payload).map_err(unsent)?;
                }
            } else {
                self.client
                    .publish_with_headers(m.subject.clone(), h, m.payload.clone())
                    .await
                    .map_err(|e| AppendError::Unavailable(e.to_string()))?;
            }
        }
        unreachable!("the last message commits the batch")
    }

    /// Reads the messages stored on `subject` after stream sequence `after_seq`, in
    /// order, with batched direct get (no consumer is created).
    pub async fn read_subject(
        &self,
        subject: &str,
        after_seq: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        #[cfg(feature = "fault-injection")]
        if take(&self.faults.stale_reads) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut from = after_seq + 1;
        let mut retry = ReadRetry::default();
        loop {
            let kept = out.len();
            let more = match self.read_batch(subject, from, &mut out).await {
                Ok(more) => more,
                Err(failure) => {
                    // A read changes nothing, so it is sent again (the partial batch
                    // dropped) while `retry` allows.
                    let pause = retry.after(failure, self.cfg.request_timeout)?;
                    out.truncate(kept);
                    self.read_retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(subject, from, ?pause, "direct get failed; sending it again");
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            retry = ReadRetry::default();
            match out.last() {
                Some(last) if more && last.seq >= from => from = last.seq + 1,
                _ => return Ok(out),
            }
        }
    }

    /// Reads one batch into `out`; returns whether the subject has more after it. The
    /// server may end a batch early (at its byte limit), so the end-of-batch marker's
    /// `Nats-Num-Pending` decides, not the batch's size.
    async fn read_batch(
        &self,
        subject: &str,
        from: u64,
        out: &mut Vec<StoredMessage>,
    ) -> Result<bool, ReadFailure> {
        let unavailable = |e: &dyn std::fmt::Display| {
            ReadFailure::Failed(StoreError::unavailable("direct get", e))
        };
        let inbox = self.client.new_inbox();
        let mut sub = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        let body = serde_json::json!({ "seq": from, "next_by_subj": subject, "batch": READ_BATCH });
        #[cfg(feature = "fault-injection")]
        let (lost, stream) = (
            take(&self.faults.lose_reads),
            if take(&self.faults.unserved_reads) {
                "CRM_FAULT_UNSERVED"
            } else {
                self.cfg.stream.as_str()
            },
        );
        #[cfg(not(feature = "fault-injection"))]
        let (lost, stream) = (false, self.cfg.stream.as_str());
        if !lost {
            self.client
                .publish_with_reply(
                    format!("$JS.API.DIRECT.GET.{stream}"),
                    inbox,
                    Bytes::from(body.to_string()),
                )
                .await
                .map_err(|e| unavailable(&e))?;
        }
        let mut got = 0;
        loop {
            let msg = tokio::time::timeout(self.cfg.request_timeout, sub.next())
                .await
                .map_err(|_| ReadFailure::TimedOut)?
                .ok_or_else(|| unavailable(&"subscription closed"))?;
            let pending = msg.headers.as_ref().and_then(|h| {
                h.get("Nats-Num-Pending")
                    .and_then(|v| v.as_str().parse::<u64>().ok())
            });
            let more = || pending.map_or(got == READ_BATCH, |p| p > 0);
            if let Some(status) = msg.status {
                match status.as_u16() {
                    // 404: nothing (more) on the subject.
                    404 => return Ok(false),
                    // 204: end of this batch.
                    204 => return Ok(more()),
                    503 => return Err(ReadFailure::NoResponders),
                    other => {
                        return Err(unavailable(&format!(
                            "status {other} {}",
                            msg.description.unwrap_or_default()
                        )));
                    }
                }
            }
            let headers = msg
                .headers
                .ok_or_else(|| unavailable(&"direct get answer without headers"))?;
            let Some(seq) = headers
                .get("Nats-Sequence")
                .and_then(|v| v.as_str().parse::<u64>().ok())
            else {
                // End-of-batch marker without a status line (older servers).
                return Ok(more());
            };
            out.push(StoredMessage {
                seq,
                subject: headers
                    .get("Nats-Subject")
                    .map_or_else(|| subject.to_owned(), |v| v.as_str().to_owned()),
                msg_id: headers.get(MSG_ID).map(|v| v.as_str().to_owned()),
                payload: msg.payload,
            });
            got += 1;
        }
    }

    /// Whether the stream has more than one replica, so that a direct get may be
    /// answered by a follower that has not applied the newest messages yet.
    #[must_use]
    pub fn replicated(&self) -> bool {
        self.replicated
    }

    /// The stream sequence of the last message on `subject` as the stream's leader
    /// knows it (0: the subject is empty). Direct gets may be answered by any replica,
    /// and a follower can be behind the leader by the messages it has not applied yet
    /// (milliseconds normally, longer after a pause); the leader has every acknowledged
    /// message. The pinned nats-server has no `min_last_seq` for direct gets, so an
    /// outcome no sequence check guards is confirmed with this instead.
    pub async fn leader_last_seq(&self, subject: &str) -> Result<u64, StoreError> {
        #[derive(Deserialize)]
        struct Stored {
            seq: u64,
        }
        #[derive(Deserialize)]
        struct MsgGetResponse {
            error: Option<ApiError>,
            message: Option<Stored>,
        }
        /// JetStream's "no message found".
        const NO_MESSAGE: u64 = 10037;
        let body = serde_json::json!({ "last_by_subj": subject }).to_string();
        let req = Request::new()
            .payload(Bytes::from(body))
            .timeout(Some(self.cfg.request_timeout));
        let reply = self
            .client
            .send_request(format!("$JS.API.STREAM.MSG.GET.{}", self.cfg.stream), req)
            .await
            .map_err(|e| StoreError::unavailable("stream leader get", e))?;
        let resp: MsgGetResponse = serde_json::from_slice(&reply.payload)
            .map_err(|e| StoreError::unavailable("stream leader get", e))?;
        match (resp.error, resp.message) {
            (Some(e), _) if e.err_code == NO_MESSAGE => Ok(0),
            (Some(e), _) => Err(StoreError::unavailable(
                "stream leader get",
                format!("JetStream error {}: {}", e.err_code, e.description),
            )),
            (None, Some(m)) => Ok(m.seq),
            (None, None) => Err(StoreError::unavailable(
                "stream leader get",
                "answer without a message or an error",
            )),
        }
    }

    /// The message stored at `seq`, read through the stream's leader; `None` when the
    /// stream holds no message there.
    pub async fn message_at(&self, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let stream = self
            .js
            .get_stream_no_info(&self.cfg.stream)
            .await
            .map_err(|e| StoreError::unavailable("get stream", e))?;
        match stream.get_raw_message(seq).await {
            Ok(m) => Ok(Some(StoredMessage {
                seq: m.sequence,
                subject: m.subject.to_string(),
                msg_id: m.headers.get(MSG_ID).map(|v| v.as_str().to_owned()),
                payload: m.payload,
            })),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) => Err(StoreError::unavailable("get message", e)),
        }
    }

    /// The subject of the message stored at `seq` (read through the stream's leader).
    pub async fn subject_at(&self, seq: u64) -> Result<String, StoreError> {
        match self.message_at(seq).await? {
            Some(m) => Ok(m.subject),
            None => Err(StoreError::unavailable(
                "get message",
                format!("no message at stream sequence {seq}"),
            )),
        }
    }

    /// The stream's last sequence (0 when empty).
    pub async fn last_sequence(&self) -> Result<u64, StoreError> {
        let mut stream = self
            .js
            .get_stream(&self.cfg.stream)
            .await
            .map_err(|e| StoreError::unavailable("get stream", e))?;
        let info = stream
            .info()
            .await
            .map_err(|e| StoreError::unavailable("stream info", e))?;
        Ok(info.state.last_sequence)
    }
}
