//! Customers' data keys, for crypto-shredding (issue 21): personal data in the log is
//! sealed under a random 256-bit key per customer, and forgetting the customer destroys
//! the key. The log itself never changes, so every hash chain still verifies.
//!
//! - **Where.** A JetStream key-value bucket beside the log ([`KEYS_BUCKET`], file
//!   storage, the stream's replicas), so a key is as durable and as replicated as the
//!   events it opens.
//! - **Wrapped.** A stored value is `[1][nonce: 24][XChaCha20-Poly1305(master, nonce,
//!   data key, aad = "crm-data-key/1" + customer id)]`: the bucket alone opens nothing,
//!   and a value moved to another customer's entry does not open.
//! - **Destroyed for good.** [`DataKeys::destroy`] erases every stored revision of the
//!   key (`STREAM.MSG.DELETE`, whose default overwrites the message in the file store
//!   on every replica) and then purges the entry; it is idempotent. In a cluster, the
//!   stream's Raft log on each node still holds the replicated write (wrapped: useless
//!   without the master key) until nats-server compacts that log after a snapshot.
//!
//! The master key is 32 bytes in a file ([`MasterKey::load_or_create`] writes a new one
//! with mode 0600). Rotating it means unwrapping every entry with the old key and
//! wrapping it with the new one ([`DataKeys::rewrap_all`]).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use async_nats::jetstream::{self, kv};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use futures::StreamExt as _;

/// The bucket holding the wrapped data keys.
pub const KEYS_BUCKET: &str = "CRM_KEYS";
const FORMAT: u8 = 1;
const AAD: &[u8] = b"crm-data-key/1";
const NONCE: usize = 24;

/// Why a data key could not be read, made or destroyed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key file {path}: {message}")]
    MasterFile { path: String, message: String },
    #[error("key store {KEYS_BUCKET}: {0}")]
    Store(String),
    #[error(
        "the data key of customer {0} does not open with this master key (another master key, or the entry was altered)"
    )]
    Unwrap(String),
}

fn store_error(e: impl std::fmt::Display) -> KeyError {
    KeyError::Store(e.to_string())
}

/// How long a call met by "no responders" is sent again: a clustered bucket whose
/// replicas are not serving yet (just created, or electing a leader) answers so.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// `op` until it succeeds, fails otherwise, or has met "no responders" for
/// [`PATIENCE`] (pauses of 25 ms doubling to 400 ms).
async fn patiently<T, E, F>(mut op: impl FnMut() -> F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: Future<Output = Result<T, E>>,
{
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(25);
    loop {
        match op().await {
            Err(e) if e.to_string().contains("no responders") && started.elapsed() < PATIENCE => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(400));
            }
            done => return done,
        }
    }
}

/// Random bytes from the operating system.
fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(store_error)?;
    Ok(b)
}

/// The key that wraps every data key.
#[derive(Clone)]
pub struct MasterKey(XChaCha20Poly1305);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    #[must_use]
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(bytes.into()))
    }

    /// Reads the key from `path` (32 bytes), or creates the file with a new random key
    /// (mode 0600, never overwriting one that appeared meanwhile).
    ///
    /// # Errors
    /// The file cannot be read or written, or does not hold 32 bytes.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let fail = |message: String| KeyError::MasterFile {
            path: path.display().to_string(),
            message,
        };
        if !path.exists() {
            let key: [u8; 32] = random()?;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(mut f) => {
                    f.write_all(&key)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| fail(e.to_string()))?;
                    return Ok(Self::from_bytes(&key));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        let mode = std::fs::metadata(path)
            .map_err(|e| fail(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(fail(format!(
                "is readable by others (mode {:o}): chmod 600 it",
                mode & 0o777
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| fail(format!("holds {} bytes, not 32", b.len())))?;
        Ok(Self::from_bytes(&key))
    }

    fn wrap(&self, customer: [u8; 16], key: &DataKey) -> Result<Vec<u8>, KeyError> {
        let nonce: [u8; NONCE] = random()?;
        let aad = aad(customer);
        let sealed = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &key.0,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Store("cannot wrap a data key".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn unwrap(&self, customer: [u8; 16], stored: &[u8]) -> Result<DataKey, KeyError> {
        let bad = || KeyError::Unwrap(uuid::Uuid::from_bytes(customer).to_string());
        let (&format, rest) = stored.split_first().ok_or_else(bad)?;
        if format != FORMAT || rest.len() < NONCE {
            return Err(bad());
        }
        let (nonce, sealed) = rest.split_at(NONCE);
        let aad = aad(customer);
        let key = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| bad())?;
        Ok(DataKey(key.try_into().map_err(|_| bad())?))
    }
}

fn aad(customer: [u8; 16]) -> Vec<u8> {
    let mut a = AAD.to_vec();
    a.extend_from_slice(&customer);
    a
}

/// One customer's data key.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey(pub [u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

fn entry_name(customer: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(customer).simple().to_string()
}

/// The entry that tells whether a master key is the bucket's (see
/// [`DataKeys::check_master`]), and the id its check key is bound to.
const MASTER_CHECK: &str = "master-check";
const MASTER_CHECK_ID: [u8; 16] = *b"crm-master-check";

/// Entries `erase.<customer>` mark an erasure in progress (see [`DataKeys::mark_erasure`]).
const ERASURE: &str = "erase";

fn erasure_name(customer: [u8; 16]) -> String {
    format!("{ERASURE}.{}", uuid::Uuid::from_bytes(customer).simple())
}

/// The data keys of every customer, in their bucket.
#[derive(Clone, Debug)]
pub struct DataKeys {
    kv: kv::Store,
    stream: jetstream::stream::Stream,
    master: MasterKey,
}

impl DataKeys {
    /// Opens the bucket, creating it with `replicas` when it does not exist.
    ///
    /// # Errors
    /// JetStream refuses (e.g. not enough servers for `replicas`).
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
        master: MasterKey,
    ) -> Result<Self, KeyError> {
        // The bucket's stream is made here rather than by `create_key_value`, which
        // denies deleting a message for good: erasing a destroyed key is exactly that.
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: format!("KV_{KEYS_BUCKET}"),
                description: Some("customers' data keys, wrapped (crypto-shredding)".into()),
                subjects: vec![format!("$KV.{KEYS_BUCKET}.>")],
                // Two: a rewrapped key's old wrapping stays until it is erased (a
                // per-subject limit would drop it without overwriting it).
                max_messages_per_subject: 2,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                discard: jetstream::stream::DiscardPolicy::New,
                allow_rollup: true,
                // Reads go to the stream leader: a key made just before its first event
                // must be found by whoever reads that event (a follower may lag).
                allow_direct: false,
                deny_delete: false,
                deny_purge: false,
                ..Default::default()
            })
            .await
            .map_err(store_error)?;
        let kv = js.get_key_value(KEYS_BUCKET).await.map_err(store_error)?;
        let keys = Self { kv, stream, master };
        keys.check_master(true).await?;
        Ok(keys)
    }

    /// Checks that this master key is the one the bucket's keys are wrapped with: the
    /// entry [`MASTER_CHECK`] holds a key wrapped by it (made by the first writer). A
    /// process given another master key stops here rather than failing on every event.
    async fn check_master(&self, make: bool) -> Result<(), KeyError> {
        let check = || async {
            patiently(|| self.kv.get(MASTER_CHECK))
                .await
                .map_err(store_error)
        };
        match check().await? {
            Some(v) => self.master.unwrap(MASTER_CHECK_ID, &v).map(|_| ()).map_err(|_| {
                KeyError::MasterFile {
                    path: "(the configured master key)".into(),
                    message: format!(
                        "is not the master key the data keys in {KEYS_BUCKET} are wrapped with: give every process of a deployment the same master key file"
                    ),
                }
            }),
            None if make => {
                let wrapped = self.master.wrap(MASTER_CHECK_ID, &DataKey(random()?))?;
                match patiently(|| self.kv.create(MASTER_CHECK, wrapped.clone().into())).await {
                    Ok(_) => Ok(()),
                    // Another process made it first: check against theirs.
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                        Box::pin(self.check_master(false)).await
                    }
                    Err(e) => Err(store_error(e)),
                }
            }
            None => Ok(()),
        }
    }

    /// Opens the bucket the command side made, waiting up to `patience` for it to
    /// exist: what readers (projectors, tools) do, who may not create it.
    ///
    /// # Errors
    /// The bucket is still missing after `patience`, or JetStream refuses.
    pub async fn open_existing(
        js: &jetstream::Context,
        master: MasterKey,
        patience: std::time::Duration,
    ) -> Result<Self, KeyError> {
        let started = std::time::Instant::now();
        loop {
            match js.get_stream(format!("KV_{KEYS_BUCKET}")).await {
                Ok(stream) => {
                    let kv = js.get_key_value(KEYS_BUCKET).await.map_err(store_error)?;
                    let keys = Self { kv, stream, master };
                    keys.check_master(false).await?;
                    return Ok(keys);
                }
                Err(e) if started.elapsed() < patience => {
                    tracing::info!(error = %e, "waiting for the data keys' bucket to be made by the command side");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    /// The customer's data key, if it has one (none yet, or destroyed).
    ///
    /// # Errors
    /// The bucket cannot be read; the entry does not open with this master key.
    pub async fn get(&self, customer: [u8; 16]) -> Result<Option<DataKey>, KeyError> {
        let name = entry_name(customer);
        match patiently(|| self.kv.get(name.clone()))
            .await
            .map_err(store_error)?
        {
            Some(v) => self.master.unwrap(customer, &v).map(Some),
            None => Ok(None),
        }
    }

    /// The customer's data key, made (and stored before it is returned) when it has none.
    /// Two callers at once get the same key.
    ///
    /// # Errors
    /// As [`Self::get`], or the bucket cannot be written.
    pub async fn get_or_create(&self, customer: [u8; 16]) -> Result<DataKey, KeyError> {
        if let Some(k) = self.get(customer).await? {
            return Ok(k);
        }
        let key = DataKey(random()?);
        let wrapped = self.master.wrap(customer, &key)?;
        let (name, value) = (entry_name(customer), bytes::Bytes::from(wrapped));
        match patiently(|| self.kv.create(&name, value.clone())).await {
            Ok(_) => Ok(key),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                self.get(customer).await?.ok_or_else(|| {
                    KeyError::Store("a data key created at the same time vanished".into())
                })
            }
            Err(e) => Err(store_error(e)),
        }
    }

    /// Destroys the customer's data key: every stored revision erased (overwritten in
    /// the file store of every replica), then the entry purged. True when there was a
    /// key; destroying again is a no-op.
    ///
    /// # Errors
    /// The bucket cannot be read or written.
    pub async fn destroy(&self, customer: [u8; 16]) -> Result<bool, KeyError> {
        let name = entry_name(customer);
        let mut found = false;
        let mut history = patiently(|| self.kv.history(&name))
            .await
            .map_err(store_error)?;
        let mut revisions = Vec::new();
        while let Some(entry) = history.next().await {
            let entry = entry.map_err(store_error)?;
            if entry.operation == kv::Operation::Put {
                revisions.push(entry.revision);
            }
        }
        for seq in revisions {
            found = true;
            patiently(|| self.stream.delete_message(seq))
                .await
                .map_err(store_error)?;
        }
        if found {
            patiently(|| self.kv.purge(&name))
                .await
                .map_err(store_error)?;
        }
        Ok(found)
    }

    /// Records that the customer is being forgotten, before `customer.forgotten` is
    /// appended: a restart finds the mark and finishes destroying the keys.
    ///
    /// # Errors
    /// The bucket cannot be written.
    pub async fn mark_erasure(&self, customer: [u8; 16]) -> Result<(), KeyError> {
        let name = erasure_name(customer);
        patiently(|| self.kv.put(&name, bytes::Bytes::from_static(b"1")))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Removes the customer's erasure mark (every message of it, no marker left).
    ///
    /// # Errors
    /// The bucket cannot be written.
    pub async fn clear_erasure(&self, customer: [u8; 16]) -> Result<(), KeyError> {
        let subject = format!("$KV.{KEYS_BUCKET}.{}", erasure_name(customer));
        patiently(|| self.stream.purge().filter(&subject).into_future())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The customers whose erasure was started and not finished.
    ///
    /// # Errors
    /// The bucket cannot be read.
    pub async fn pending_erasures(&self) -> Result<Vec<[u8; 16]>, KeyError> {
        let filter = format!("$KV.{KEYS_BUCKET}.{ERASURE}.>");
        let mut subjects = patiently(|| self.stream.info_with_subjects(&filter))
            .await
            .map_err(store_error)?;
        let mut out = Vec::new();
        while let Some(item) = subjects.next().await {
            let (subject, _) = item.map_err(store_error)?;
            let Some(id) = subject
                .rsplit('.')
                .next()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
            else {
                continue;
            };
            if patiently(|| self.kv.get(erasure_name(*id.as_bytes())))
                .await
                .map_err(store_error)?
                .is_some()
            {
                out.push(*id.as_bytes());
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Wraps every data key with `new` instead of this store's master key (master key
    /// rotation); returns how many. Run with the service stopped, then start it with
    /// the new key.
    ///
    /// # Errors
    /// A key that does not open with the current master key, or the bucket.
    pub async fn rewrap_all(&self, new: &MasterKey) -> Result<u64, KeyError> {
        let mut keys = self.kv.keys().await.map_err(store_error)?;
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            names.push(k.map_err(store_error)?);
        }
        let mut n = 0;
        for name in names {
            let customer = match uuid::Uuid::parse_str(&name) {
                Ok(id) => *id.as_bytes(),
                // The master check is rewrapped too, so the new key passes it.
                Err(_) if name == MASTER_CHECK => MASTER_CHECK_ID,
                Err(_) => continue,
            };
            let Some(entry) = self.kv.entry(&name).await.map_err(store_error)? else {
                continue;
            };
            let key = self.master.unwrap(customer, &entry.value)?;
            let wrapped = new.wrap(customer, &key)?;
            self.kv
                .update(&name, wrapped.into(), entry.revision)
                .await
                .map_err(store_error)?;
            // The old wrapping is erased, not only superseded.
            self.stream
                .delete_message(entry.revision)
                .await
                .map_err(store_error)?;
            n += u64::from(customer != MASTER_CHECK_ID);
        }
        Ok(n)
    }
}

/// Keys a [`KeyRing`] keeps in memory by default (about 100 bytes each).
pub const RING_CAPACITY: usize = 100_000;

/// The data keys as the service uses them: each key kept in memory once read (up to a
/// number of keys, least recently used out first), dropped when it is destroyed. A
/// subject found without a key is never remembered so: a key may be made at any moment.
#[derive(Debug)]
pub struct KeyRing {
    keys: DataKeys,
    cache: std::sync::Mutex<lru::LruCache<[u8; 16], DataKey>>,
    /// The runtime the ring was made in: [`crm_events::seal::KeySource`] callers on
    /// blocking threads wait on it.
    runtime: Option<tokio::runtime::Handle>,
}

impl KeyRing {
    /// Made inside a Tokio runtime for [`crm_events::seal::KeySource`] to work.
    #[must_use]
    pub fn new(keys: DataKeys, capacity: std::num::NonZeroUsize) -> Self {
        Self {
            keys,
            cache: std::sync::Mutex::new(lru::LruCache::new(capacity)),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Opens the key ring readers use (projectors, tools): the master key from its file,
    /// the bucket the command side made (waited for up to `patience`).
    ///
    /// # Errors
    /// The master key file cannot be read, is not the bucket's, or the bucket is missing.
    pub async fn open_for_reading(
        js: &jetstream::Context,
        master_key_file: &Path,
        patience: std::time::Duration,
    ) -> Result<Self, KeyError> {
        if !master_key_file.exists() {
            return Err(KeyError::MasterFile {
                path: master_key_file.display().to_string(),
                message: "does not exist".into(),
            });
        }
        let master = MasterKey::load_or_create(master_key_file)?;
        let keys = DataKeys::open_existing(js, master, patience).await?;
        Ok(Self::new(
            keys,
            std::num::NonZeroUsize::new(RING_CAPACITY).expect("non-zero"),
        ))
    }

    /// The store underneath.
    #[must_use]
    pub const fn store(&self) -> &DataKeys {
        &self.keys
    }

    fn cached(&self, subject: [u8; 16]) -> Option<DataKey> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&subject).cloned()
    }

    fn remember(&self, subject: [u8; 16], key: &DataKey) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.put(subject, key.clone());
    }

    /// The subject's key, or `None` when it has none (none made yet, or destroyed).
    ///
    /// # Errors
    /// As [`DataKeys::get`].
    pub async fn key(&self, subject: [u8; 16]) -> Result<Option<DataKey>, KeyError> {
        if let Some(k) = self.cached(subject) {
            return Ok(Some(k));
        }
        let key = self.keys.get(subject).await?;
        if let Some(k) = &key {
            self.remember(subject, k);
        }
        Ok(key)
    }

    /// The key to seal the subject's personal text with: made and stored first when the
    /// subject has none.
    ///
    /// # Errors
    /// As [`DataKeys::get_or_create`].
    pub async fn key_for_sealing(&self, subject: [u8; 16]) -> Result<DataKey, KeyError> {
        if let Some(k) = self.cached(subject) {
            return Ok(k);
        }
        let key = self.keys.get_or_create(subject).await?;
        self.remember(subject, &key);
        Ok(key)
    }

    /// Drops the subjects' keys from memory (they were forgotten).
    pub fn evict(&self, subjects: &[[u8; 16]]) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for s in subjects {
            cache.pop(s);
        }
    }

    /// Destroys the subjects' keys (see [`DataKeys::destroy`]), memory first. How many
    /// had a key.
    ///
    /// # Errors
    /// As [`DataKeys::destroy`].
    pub async fn destroy(&self, subjects: &[[u8; 16]]) -> Result<usize, KeyError> {
        self.evict(subjects);
        let mut found = 0;
        for s in subjects {
            found += usize::from(self.keys.destroy(*s).await?);
        }
        Ok(found)
    }
}

impl crm_events::seal::KeySource for KeyRing {
    fn key(&self, subject: uuid::Uuid) -> Result<Option<[u8; 32]>, String> {
        // Most calls find the key in memory: no runtime round trip for them.
        if let Some(k) = self.cached(*subject.as_bytes()) {
            return Ok(Some(k.0));
        }
        let Some(runtime) = &self.runtime else {
            return Err("the key ring was made outside a Tokio runtime".into());
        };
        // On a runtime worker, the runtime moves its other tasks away first; on a
        // blocking thread this only runs the closure.
        tokio::task::block_in_place(|| runtime.block_on(Self::key(self, *subject.as_bytes())))
            .map(|k| k.map(|k| k.0))
            .map_err(|e| e.to_string())
    }

    fn evict(&self, subjects: &[uuid::Uuid]) {
        let ids: Vec<[u8; 16]> = subjects.iter().map(|s| *s.as_bytes()).collect();
        Self::evict(self, &ids);
    }

    fn prefetch<'a>(
        &'a self,
        subjects: &'a [uuid::Uuid],
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let missing: std::collections::BTreeSet<[u8; 16]> = subjects
                .iter()
                .map(|s| *s.as_bytes())
                .filter(|s| self.cached(*s).is_none())
                .collect();
            futures::stream::iter(missing)
                .for_each_concurrent(PREFETCH_IN_FLIGHT, |s| async move {
                    // A failure shows again when the fold asks for the key.
                    let _ = Self::key(self, s).await;
                })
                .await;
        })
    }
}

/// Key reads [`KeyRing`] keeps in flight while it prefetches.
const PREFETCH_IN_FLIGHT: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_only_for_its_customer_under_its_master_key() {
        let master = MasterKey::from_bytes(&[7; 32]);
        let key = DataKey([42; 32]);
        let wrapped = master.wrap([1; 16], &key).unwrap();
        assert_eq!(wrapped.len(), 1 + 24 + 32 + 16);
        assert_eq!(master.unwrap([1; 16], &wrapped).unwrap(), key);
        assert!(
            master.unwrap([2; 16], &wrapped).is_err(),
            "another customer"
        );
        let other = MasterKey::from_bytes(&[8; 32]);
        assert!(
            other.unwrap([1; 16], &wrapped).is_err(),
            "another master key"
        );
        let mut altered = wrapped.clone();
        altered[30] ^= 1;
        assert!(master.unwrap([1; 16], &altered).is_err(), "altered");
        // A fresh nonce each time.
        assert_ne!(master.wrap([1; 16], &key).unwrap(), wrapped);
    }

    #[test]
    fn the_master_key_file_is_made_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let made = MasterKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = MasterKey::load_or_create(&path).unwrap();
        let wrapped = made.wrap([3; 16], &DataKey([9; 32])).unwrap();
        assert_eq!(again.unwrap([3; 16], &wrapped).unwrap(), DataKey([9; 32]));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("readable by others"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"short").unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("holds 5 bytes"), "{err}");
    }
}
