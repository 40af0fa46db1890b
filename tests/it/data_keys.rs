//! Customers' data keys (crypto-shredding) in their bucket on a real nats-server: made
//! once and shared, kept across a restart, opened only with their master key, and
//! destroyed for good: after `destroy` not a byte of the wrapped key is left in any
//! stream file under the server's store (one server, and every node of a three-node
//! cluster, where no node returns it; a clustered stream's Raft log keeps the write
//! until nats-server compacts it, see `crm_store::keys`).

use std::path::Path;

use crm_store::keys::{DataKeys, KEYS_BUCKET, MasterKey};
use crm_testkit::{NatsCluster, NatsServer};

async fn keys(url: &str, replicas: usize, master: &MasterKey) -> DataKeys {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url)
        .await
        .unwrap();
    DataKeys::open(
        &async_nats::jetstream::new(client),
        replicas,
        master.clone(),
    )
    .await
    .unwrap()
}

/// The stored (wrapped) value of `customer`'s key, read from the bucket directly.
async fn wrapped(url: &str, customer: [u8; 16]) -> Vec<u8> {
    let client = async_nats::connect(url).await.unwrap();
    let kv = async_nats::jetstream::new(client)
        .get_key_value(KEYS_BUCKET)
        .await
        .unwrap();
    let name = uuid::Uuid::from_bytes(customer).simple().to_string();
    // A clustered bucket may answer "no responders" for a moment (as DataKeys knows).
    for _ in 0..100 {
        if let Ok(v) = kv.get(name.clone()).await {
            return v.unwrap().to_vec();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the bucket never answered");
}

/// Files under `dir` holding `needle`, but for the Raft logs of clustered streams
/// (`$SYS/_js_`), which keep a replicated write until nats-server compacts them.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    crm_testkit::files_under(dir)
        .into_iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "_js_"))
        .filter(|f| crm_testkit::holds(f, needle))
        .map(|f| f.display().to_string())
        .collect()
}

#[tokio::test]
async fn a_data_key_is_made_once_survives_a_restart_and_is_destroyed_for_good() {
    let mut server = NatsServer::start();
    let master = MasterKey::from_bytes(&[11; 32]);
    let (a, b) = (
        keys(&server.url(), 1, &master).await,
        keys(&server.url(), 1, &master).await,
    );
    let (ada, bob) = ([1; 16], [2; 16]);
    assert_eq!(a.get(ada).await.unwrap(), None);
    // Two processes asking at once get the same key.
    let (k1, k2) = tokio::join!(a.get_or_create(ada), b.get_or_create(ada));
    let key = k1.unwrap();
    assert_eq!(k2.unwrap(), key);
    let bobs = a.get_or_create(bob).await.unwrap();
    assert_ne!(bobs, key);
    let stored = wrapped(&server.url(), ada).await;
    assert!(
        !stored.windows(32).any(|w| w == key.0),
        "stored wrapped, not plain"
    );

    server.restart();
    let a = keys(&server.url(), 1, &master).await;
    assert_eq!(a.get(ada).await.unwrap(), Some(key.clone()));
    // Another master key is refused when the bucket is opened, before any key is read.
    let client = async_nats::connect(server.url()).await.unwrap();
    let err = DataKeys::open(
        &async_nats::jetstream::new(client),
        1,
        MasterKey::from_bytes(&[12; 32]),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("is not the master key"), "{err}");

    assert!(a.destroy(ada).await.unwrap());
    assert_eq!(a.get(ada).await.unwrap(), None);
    assert!(
        !a.destroy(ada).await.unwrap(),
        "destroying again is a no-op"
    );
    assert_eq!(a.get(bob).await.unwrap(), Some(bobs), "others untouched");
    server.restart();
    let a = keys(&server.url(), 1, &master).await;
    assert_eq!(a.get(ada).await.unwrap(), None);
    let left = files_holding(&server.store_dir(), &stored);
    assert!(left.is_empty(), "the wrapped key is still in {left:?}");
    let bob_stored = wrapped(&server.url(), bob).await;
    assert!(
        !files_holding(&server.store_dir(), &bob_stored).is_empty(),
        "the search finds a key that is there"
    );
}

#[tokio::test]
async fn master_key_rotation_rewraps_every_key_and_erases_the_old_wrapping() {
    let server = NatsServer::start();
    let old = MasterKey::from_bytes(&[21; 32]);
    let new = MasterKey::from_bytes(&[22; 32]);
    let store = keys(&server.url(), 1, &old).await;
    let customers: Vec<[u8; 16]> = (1..=5u8).map(|i| [i; 16]).collect();
    let mut made = Vec::new();
    for c in &customers {
        made.push(store.get_or_create(*c).await.unwrap());
    }
    let before = wrapped(&server.url(), customers[0]).await;
    assert_eq!(store.rewrap_all(&new).await.unwrap(), 5);
    let rotated = keys(&server.url(), 1, &new).await;
    for (c, k) in customers.iter().zip(&made) {
        assert_eq!(rotated.get(*c).await.unwrap().as_ref(), Some(k));
    }
    assert!(
        store.get(customers[0]).await.is_err(),
        "the old master key opens nothing"
    );
    let left = files_holding(&server.store_dir(), &before);
    assert!(left.is_empty(), "the old wrapping is still in {left:?}");
}

#[tokio::test]
async fn a_destroyed_key_is_gone_from_every_node_of_a_cluster() {
    let cluster = NatsCluster::start(3);
    let urls = cluster.urls();
    let master = MasterKey::from_bytes(&[31; 32]);
    let store = keys(&urls[0], 3, &master).await;
    let customer = [9; 16];
    store.get_or_create(customer).await.unwrap();
    let stored = wrapped(&urls[0], customer).await;
    // Written on every node before it is destroyed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cluster
        .nodes()
        .iter()
        .any(|n| files_holding(&n.store_dir(), &stored).is_empty())
    {
        assert!(std::time::Instant::now() < deadline, "not replicated");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(store.destroy(customer).await.unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: Vec<String> = cluster
            .nodes()
            .iter()
            .flat_map(|n| files_holding(&n.store_dir(), &stored))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the wrapped key is still in {left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for url in &urls {
        assert_eq!(
            keys(url, 3, &master).await.get(customer).await.unwrap(),
            None
        );
    }
}
