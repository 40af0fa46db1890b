//! The library under the `crm` binary: the configuration of `crm serve` ([`config`]) and the
//! embedded, supervised nats-server it runs when no external NATS is configured
//! ([`embedded`]), with the helpers to find and version-check a nats-server binary
//! ([`nats_binary`]) and the data directory's lock ([`lock`]); the [`notary`] that signs
//! anchors over the stream.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use clap::Parser;
//! use crm_server::{EmbeddedConfig, EmbeddedNats, ServeArgs, ServeConfig};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     serve: ServeArgs,
//! }
//!
//! let config = ServeConfig::load(Cli::parse().serve)?;
//! let embedded = if config.embedded() {
//!     Some(EmbeddedNats::start(EmbeddedConfig::from_serve(&config)).await?)
//! } else {
//!     None
//! };
//! let urls = match &embedded {
//!     Some(nats) => vec![nats.url().to_owned()],
//!     None => config.nats_urls.clone(),
//! };
//! // ... connect to `urls`, serve gRPC on `config.listen` ...
//! # let _ = urls;
//! if let Some(nats) = embedded {
//!     nats.shutdown().await;
//! }
//! # Ok(())
//! # }
//! ```

pub mod app;
mod churn_refit;
pub mod config;
pub mod data_keys;
pub mod embedded;
pub mod lock;
pub mod metrics;
pub mod nats_binary;
pub mod notary;
pub mod read_side;

pub use app::{OnReady, RunError, run};
pub use config::{ConfigError, Durability, Role, ServeArgs, ServeConfig};
/// The service's NATS users (owned by the log's crate, where the tools reach it too).
pub use crm_store::nats_auth;
pub use embedded::{EmbeddedConfig, EmbeddedError, EmbeddedNats};
pub use lock::{DataDirLock, LockError};
pub use nats_binary::{NatsBinary, NatsBinaryError, Version};
