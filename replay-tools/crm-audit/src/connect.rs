//! Where the tools read from: a NATS server holding the event stream, reached as the
//! service's read-only user.

use std::path::PathBuf;
use std::time::Duration;

use crm_events::SubjectScheme;
use crm_server::nats_auth::NatsUser;

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
            Some(path) => {
                let seed = std::fs::read_to_string(path)
                    .map_err(|e| AuditError::Credentials(format!("{}: {e}", path.display())))?;
                let seed = seed.trim();
                if !seed.starts_with("SU") {
                    return Err(AuditError::Credentials(format!(
                        "{}: not a user nkey seed",
                        path.display()
                    )));
                }
                async_nats::ConnectOptions::new()
                    .nkey(seed.to_owned())
                    .custom_inbox_prefix(NatsUser::Reader.inbox_prefix())
            }
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
}
