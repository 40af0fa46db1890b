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
    /// The service's master key file (`<data-dir>/keys/master.key` for the embedded
    /// default): with it, sealed personal data is opened (a forgotten customer's reads
    /// as erased); without, it stays sealed.
    pub master_key_file: Option<PathBuf>,
}

/// A connection to the stream.
#[derive(Clone, Debug)]
pub struct Source {
    pub js: async_nats::jetstream::Context,
    pub stream_name: String,
    pub scheme: SubjectScheme,
    /// Opens sealed personal text (the service's key ring, or the tools' with the master
    /// key). Without, sealed text stays sealed: shown empty, marked `sealed`.
    pub keys: Option<std::sync::Arc<dyn crm_projection::Keys>>,
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
        let js = async_nats::jetstream::new(client);
        let keys = match &target.master_key_file {
            Some(path) => Some(std::sync::Arc::new(
                crm_store::keys::KeyRing::open_for_reading(&js, path, Duration::from_secs(10))
                    .await
                    .map_err(|e| AuditError::Credentials(e.to_string()))?,
            ) as std::sync::Arc<dyn crm_projection::Keys>),
            None => None,
        };
        Ok(Self {
            js,
            stream_name: target.stream.clone(),
            scheme: SubjectScheme::new(target.prefix.clone()),
            keys,
        })
    }

    /// Opens the sealed personal text of one message's events (at position `seq`) with
    /// the key store. Without one, sealed text stays sealed; with `required` that is an
    /// error (an answer that promised personal data must not silently lack it).
    ///
    /// # Errors
    /// The key store cannot answer, a text does not open, or `required` without keys.
    pub fn open_personal(
        &self,
        seq: u64,
        events: &mut [crm_events::Envelope],
        required: bool,
    ) -> Result<(), AuditError> {
        for e in events.iter_mut().filter(|e| e.is_sealed()) {
            let Some(keys) = &self.keys else {
                if required {
                    return Err(AuditError::Sealed(
                        "personal data is sealed: opening it needs --master-key-file".into(),
                    ));
                }
                return Ok(());
            };
            crm_projection::unseal(e, Some(keys.as_ref())).map_err(|e| match e {
                crm_projection::Unsealed::KeyStore(m) => AuditError::Nats(m),
                crm_projection::Unsealed::DoesNotOpen(reason) => {
                    AuditError::Undecodable { seq, reason }
                }
            })?;
        }
        Ok(())
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
    /// Read with an ordered consumer filtered on the subject: the stream's leader serves
    /// it (a direct get may be answered by a follower that has not applied the newest
    /// messages), and it delivers in batches. It stops at the messages pending when it
    /// was created.
    ///
    /// # Errors
    /// The stream cannot be read.
    pub async fn messages_on(
        &self,
        subject: &str,
    ) -> Result<Vec<(u64, String, bytes::Bytes)>, AuditError> {
        use futures::StreamExt as _;
        let nats = |e: &dyn std::fmt::Display| AuditError::Nats(format!("{subject}: {e}"));
        let stream = self.stream().await?;
        let mut consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: subject.to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|e| nats(&e))?;
        let pending = consumer.info().await.map_err(|e| nats(&e))?.num_pending;
        let mut out = Vec::with_capacity(usize::try_from(pending).unwrap_or(0));
        if pending == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await.map_err(|e| nats(&e))?;
        while (out.len() as u64) < pending {
            let m = messages
                .next()
                .await
                .ok_or_else(|| nats(&"the consumer ended early"))?
                .map_err(|e| nats(&e))?;
            let seq = m.info().map_err(|e| nats(&e))?.stream_sequence;
            out.push((seq, m.subject.to_string(), m.payload.clone()));
        }
        Ok(out)
    }
}
