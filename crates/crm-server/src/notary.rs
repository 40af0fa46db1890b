//! The notary: signed anchors over the whole stream (format and digest in
//! [`crm_events::anchor`]).
//!
//! It reads every message of the stream in order with an ordered consumer, folds it
//! into the running digest, and every `every_messages` new messages (or `every` after
//! the last anchor while some are unanchored, once it has caught up) appends a signed
//! anchor on `<prefix>.system.anchor`. Each append expects the last anchor it knows of,
//! so two notaries never interleave blindly.
//!
//! On every start it reads the stream from the beginning and checks the anchors it
//! signed before: if the stream no longer matches one of them (a message changed,
//! removed or added below an anchored position) it stops with
//! [`NotaryError::Tampered`] and never signs the changed stream. Anchors signed by
//! other keys are left to the auditor's `crm-audit verify`.
//!
//! The key is an Ed25519 seed, hex, in a file only its owner may read (0600). The
//! embedded default generates it into the data dir; `crm notary-key` prints the public
//! key auditors verify with.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use crm_domain::Timestamp;
use crm_events::SubjectScheme;
use crm_events::anchor::{AnchorCheck, AnchorError, SigningKey, sign_anchor, verify_anchor};
use futures::StreamExt as _;

/// What the notary needs besides its key.
#[derive(Clone, Debug)]
pub struct NotaryConfig {
    pub stream: String,
    pub scheme: SubjectScheme,
    /// An anchor after this many new messages.
    pub every_messages: u64,
    /// ... or this long after the last one, when messages are unanchored.
    pub every: Duration,
}

/// The notary's progress, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct NotaryStats {
    /// Last stream position folded.
    pub position: AtomicU64,
    /// Anchors appended by this process.
    pub anchors_written: AtomicU64,
    /// The last position an anchor of this process covers.
    pub anchored_position: AtomicU64,
    /// Earlier anchors of this key checked against the stream on start.
    pub anchors_checked: AtomicU64,
    /// Earlier anchors the stream no longer matches (the notary stops on the first).
    pub disagreements: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    #[error("notary key {path}: {message}")]
    Key { path: String, message: String },
    #[error("NATS: {0}")]
    Nats(String),
    #[error(
        "the stream no longer matches the anchor at position {anchor_seq} (covering position {position}): {problem}. The notary stops: it never signs a changed stream. Run `crm-audit verify` with the notary's public key"
    )]
    Tampered {
        anchor_seq: u64,
        position: u64,
        problem: String,
    },
}

fn nats(e: impl std::fmt::Display) -> NotaryError {
    NotaryError::Nats(e.to_string())
}

/// Reads the key at `path`; when it is missing and `generate`, creates it (0600, in a
/// 0700 directory). A key others may read is refused.
pub fn load_or_generate_key(path: &Path, generate: bool) -> Result<SigningKey, NotaryError> {
    let err = |message: String| NotaryError::Key {
        path: path.display().to_string(),
        message,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "mode {mode:o}: others may read the signing key; chmod 600 it"
                )));
            }
            let text = fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let seed: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| err("not 64 hex digits (an Ed25519 seed)".into()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| err(format!("no randomness: {e}")))?;
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| err(e.to_string()))?;
            }
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(e.to_string()))?;
            writeln!(file, "{}", hex::encode(seed)).map_err(|e| err(e.to_string()))?;
            file.sync_all().map_err(|e| err(e.to_string()))?;
            let key = SigningKey::from_bytes(&seed);
            fs::write(public_key_path(path), public_key_hex(&key) + "\n")
                .map_err(|e| err(e.to_string()))?;
            tracing::info!(key = %path.display(), public_key = %public_key_hex(&key), "generated the notary's signing key");
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// Where the public key is written beside a generated key (`notary.key.pub`).
#[must_use]
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// The public key as auditors pass it to `crm-audit verify --notary-key`.
#[must_use]
pub fn public_key_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// Runs the notary until the task is dropped or the stream no longer matches one of its
/// own anchors. `reader` reads the stream; `writer` may publish on the anchor subject.
pub async fn run(
    key: SigningKey,
    cfg: NotaryConfig,
    reader: jetstream::Context,
    writer: jetstream::Context,
    stats: Arc<NotaryStats>,
) -> Result<(), NotaryError> {
    let subject = cfg.scheme.anchors();
    let stream = reader.get_stream(&cfg.stream).await.map_err(nats)?;
    let earlier = own_anchors(&stream, &subject, &key).await?;
    let mut state = State {
        last_anchor_seq: earlier.last().map_or(0, |(seq, _)| *seq),
        check: AnchorCheck::new(subject.clone(), earlier),
        published: Vec::new(),
        unanchored: 0,
        last_anchor_at: Instant::now(),
    };
    tracing::info!(public_key = %public_key_hex(&key), earlier = state.check.pending(), "notary: reading the stream from its start");
    let mut messages = stream
        .create_consumer(OrderedConfig::default())
        .await
        .map_err(nats)?
        .messages()
        .await
        .map_err(nats)?;
    let mut tick = tokio::time::interval(cfg.every.min(Duration::from_secs(1)));
    let mut caught_up = false;
    loop {
        tokio::select! {
            m = messages.next() => {
                let m = m.ok_or_else(|| nats("the stream's consumer ended"))?.map_err(nats)?;
                let info = m.info().map_err(nats)?;
                let seq = info.stream_sequence;
                caught_up = info.pending == 0;
                state.fold(seq, &m.subject, &m.payload, &subject, &stats)?;
                if state.unanchored >= cfg.every_messages {
                    state.anchor(&key, &cfg, &writer, &stats).await?;
                }
            }
            _ = tick.tick() => {
                if caught_up && state.unanchored > 0 && state.last_anchor_at.elapsed() >= cfg.every {
                    state.anchor(&key, &cfg, &writer, &stats).await?;
                }
            }
        }
    }
}

/// The anchors on `subject` this key signed, in stream order (others are logged).
async fn own_anchors(
    stream: &jetstream::stream::Stream,
    subject: &str,
    key: &SigningKey,
) -> Result<Vec<(u64, crm_events::anchor::Anchor)>, NotaryError> {
    use async_nats::jetstream::stream::DirectGetErrorKind;
    let trusted = [key.verifying_key()];
    let mut out = Vec::new();
    let mut next = 1;
    loop {
        let m = match stream
            .direct_get_next_for_subject(subject, Some(next))
            .await
        {
            Ok(m) => m,
            Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => return Ok(out),
            Err(e) => return Err(nats(e)),
        };
        next = m.sequence + 1;
        match verify_anchor(&m.payload, &trusted) {
            Ok(a) => out.push((m.sequence, a)),
            Err(AnchorError::UntrustedKey(k)) => {
                tracing::warn!(seq = m.sequence, key = %k, "an anchor signed by another notary key: left to crm-audit verify");
            }
            Err(e) => {
                tracing::warn!(seq = m.sequence, error = %e, "an anchor that does not verify: left to crm-audit verify");
            }
        }
    }
}

struct State {
    check: AnchorCheck,
    /// The last anchor on the subject (read or appended): the next append expects it.
    last_anchor_seq: u64,
    /// Anchors appended by this run, by their stream position.
    published: Vec<u64>,
    /// Messages folded and not covered by an anchor (anchors not counted).
    unanchored: u64,
    last_anchor_at: Instant,
}

impl State {
    fn fold(
        &mut self,
        seq: u64,
        subject: &str,
        payload: &[u8],
        anchors: &str,
        stats: &NotaryStats,
    ) -> Result<(), NotaryError> {
        for c in self.check.push(seq, subject, payload) {
            stats.anchors_checked.fetch_add(1, Ordering::Relaxed);
            if let Some(problem) = c.problem {
                stats.disagreements.fetch_add(1, Ordering::Relaxed);
                return Err(NotaryError::Tampered {
                    anchor_seq: c.anchor_seq,
                    position: c.anchor.position,
                    problem,
                });
            }
        }
        stats.position.store(seq, Ordering::Relaxed);
        if subject == anchors {
            self.last_anchor_seq = self.last_anchor_seq.max(seq);
            // An anchor of an earlier run covers what was folded before it; one this run
            // appended was counted when it was appended.
            if !self.published.contains(&seq) {
                self.unanchored = 0;
                self.last_anchor_at = Instant::now();
            }
        } else {
            self.unanchored += 1;
        }
        Ok(())
    }

    async fn anchor(
        &mut self,
        key: &SigningKey,
        cfg: &NotaryConfig,
        writer: &jetstream::Context,
        stats: &NotaryStats,
    ) -> Result<(), NotaryError> {
        let digest = self.check.digest();
        let anchor = digest.anchor(&cfg.stream, now());
        let bytes = sign_anchor(&anchor, key);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            self.last_anchor_seq.to_string().as_str(),
        );
        let ack = writer
            .publish_with_headers(cfg.scheme.anchors(), headers, bytes.into())
            .await
            .map_err(nats)?
            .await;
        match ack {
            Ok(ack) => {
                self.last_anchor_seq = ack.sequence;
                self.published.push(ack.sequence);
                if self.published.len() > 64 {
                    self.published.remove(0);
                }
                self.unanchored = 0;
                self.last_anchor_at = Instant::now();
                stats.anchors_written.fetch_add(1, Ordering::Relaxed);
                stats
                    .anchored_position
                    .store(anchor.position, Ordering::Relaxed);
                tracing::debug!(
                    position = anchor.position,
                    at = ack.sequence,
                    "anchor appended"
                );
            }
            Err(e) => {
                // Another notary's anchor landed first (or the server is unavailable):
                // reading it moves the expectation on; the next trigger tries again.
                tracing::warn!(error = %e, position = anchor.position, "anchor not appended");
                self.last_anchor_at = Instant::now();
            }
        }
        Ok(())
    }
}

fn now() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_owner_only_loads_again_and_has_its_public_key_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notary").join("notary.key");
        let key = load_or_generate_key(&path, true).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load_or_generate_key(&path, false).unwrap().to_bytes(),
            key.to_bytes()
        );
        assert_eq!(
            fs::read_to_string(public_key_path(&path)).unwrap().trim(),
            public_key_hex(&key)
        );
    }

    #[test]
    fn a_missing_key_is_not_generated_unless_asked_and_a_readable_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notary.key");
        assert!(load_or_generate_key(&path, false).is_err());
        load_or_generate_key(&path, true).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_generate_key(&path, false).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
