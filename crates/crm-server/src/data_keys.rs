//! The customers' data keys as `crm serve` opens them (crypto-shredding, see
//! `crm_store::keys`): the master key from its file (made on first start), the bucket
//! made by the command side or waited for by a process that only reads, one key ring per
//! process shared by the command handler (which seals) and the projectors (which open).

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use crm_store::keys::{DataKeys, KeyError, KeyRing, MasterKey, RING_CAPACITY};

use crate::config::ServeConfig;

/// Opens the key ring: with `writer` (the command side's connection) the bucket is made
/// when missing; a process that only reads waits for it.
///
/// # Errors
/// The master key file cannot be read or made, or the bucket cannot be opened.
pub async fn open(
    config: &ServeConfig,
    writer: Option<&async_nats::jetstream::Context>,
    reader: &async_nats::jetstream::Context,
) -> Result<Arc<KeyRing>, KeyError> {
    let path = config.master_key_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| KeyError::MasterFile {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let made = !path.exists();
    let master = MasterKey::load_or_create(&path)?;
    if made {
        tracing::info!(path = %path.display(), "made a new master key: back it up with the key store, and give every process of this deployment the same file (--master-key-file)");
    }
    let keys = match writer {
        Some(js) => DataKeys::open(js, config.replicas, master).await?,
        None => DataKeys::open_existing(reader, master, Duration::from_secs(60)).await?,
    };
    Ok(Arc::new(KeyRing::new(
        keys,
        NonZeroUsize::new(RING_CAPACITY).expect("non-zero"),
    )))
}
