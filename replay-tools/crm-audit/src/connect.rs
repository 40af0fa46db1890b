//! Where the tools read from: a NATS server holding the event stream, reached as the
//! service's read-only user.

use std::path::PathBuf;
use std::time::Duration;

use crm_events::SubjectScheme;
use crm_store::nats_auth::{NatsUser, connect_options_from_seed_file};

use crate::AuditError;

/// How to reach the stream.
#[derive(Clone, Debug)]
pub struct Target {
    pub nats_url: String,
    /// The `crm-reader` user's nkey seed (`<data-dir>/nats/users/crm-reader.nk` for the
    /// embedded default, or in the directory `crm nats-users` wrote): that user may read
    /// the stream but not publish on it, so an auditor needs nothing else. Without it the
    /// tools connect unauthenticated, as the server allows.
    pub reader_seed: Option<PathBuf>,
    pub stream: String,
    /// The subject prefix (`crm.v1`).
    pub prefix: String,
}

/// A connection to the stream.
#[derive(Clone, Debug)]
pub struct Source {
    pub js: async_nats::jetstream::Context,
    pub stream_name: String,
    pub scheme: SubjectScheme,
}

impl Source {
    /// Connects to `target`.
    ///
    /// # Errors
    /// The users directory does not hold the reader's seed, or the server cannot be
    /// reached.
    pub async fn connect(target: &Target) -> Result<Self, AuditError> {
        let options = match &target.reader_seed {
            Some(path) => connect_options_from_seed_file(path, NatsUser::Reader)
                .map_err(|e| AuditError::Credentials(e.to_string()))?,
            None => async_nats::ConnectOptions::new(),
        };
        let client = options
            .connection_timeout(Duration::from_secs(5))
            .connect(&target.nats_url)
            .await
            .map_err(|e| AuditError::Nats(format!("{}: {e}", target.nats_url)))?;
        Ok(Self {
            js: async_nats::jetstream::new(client),
            stream_name: target.stream.clone(),
            scheme: SubjectScheme::new(target.prefix.clone()),
        })
    }

    /// The stream.
    ///
    /// # Errors
    /// The stream does not exist or the server cannot be reached.
    pub async fn stream(&self) -> Result<async_nats::jetstream::stream::Stream, AuditError> {
        self.js
            .get_stream(&self.stream_name)
            .await
            .map_err(|e| AuditError::Nats(format!("stream {}: {e}", self.stream_name)))
    }

    /// Every message on `subject` (a wildcard reads several subjects), in stream order:
    /// position, subject and payload.
    ///
    /// # Errors
    /// The stream cannot be read.
    pub async fn messages_on(
        &self,
        subject: &str,
    ) -> Result<Vec<(u64, String, bytes::Bytes)>, AuditError> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        let stream = self.stream().await?;
        let mut out = Vec::new();
        let mut next = 1;
        loop {
            match stream
                .direct_get_next_for_subject(subject, Some(next))
                .await
            {
                Ok(m) => {
                    next = m.sequence + 1;
                    out.push((m.sequence, m.subject.to_string(), m.payload));
                }
                Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => return Ok(out),
                Err(e) => return Err(AuditError::Nats(e.to_string())),
            }
        }
    }
}
