//! The embedded nats-server against the real binary (`CRM_NATS_SERVER`, as exported by
//! `cargo xtask test`, or the pinned download under `target/nats-server/`).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use crm_server::nats_auth::NatsUser;
use crm_server::{
    DataDirLock, Durability, EmbeddedConfig, EmbeddedError, EmbeddedNats, LockError,
    NatsBinaryError,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const WAIT: Duration = Duration::from_secs(20);
const STREAM: &str = "CRM_EVENTS";

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

/// Whether a process with this pid exists (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"));
    stat.is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

async fn jsz_sync_always(nats: &EmbeddedNats) -> Option<bool> {
    let (code, body) = nats.monitor_get("/jsz").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let jsz: serde_json::Value = serde_json::from_str(&body).unwrap();
    jsz["config"]["sync_always"].as_bool()
}

async fn poll<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A JetStream context of one of the service's users (nobody else is admitted), with
/// short request timeouts: a refused request shows as an error at once.
async fn as_user(nats: &EmbeddedNats, user: NatsUser) -> jetstream::Context {
    let client = nats
        .users()
        .connect_options(user)
        .connect(nats.url())
        .await
        .unwrap();
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(client)
}

/// The event log's stream (the only one the users may touch) with one message.
async fn create_stream_and_publish(nats: &EmbeddedNats) -> (jetstream::Context, u64) {
    let js = as_user(nats, NatsUser::Writer).await;
    js.create_stream(stream::Config {
        name: STREAM.into(),
        subjects: vec!["crm.v1.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    let ack = js
        .publish("crm.v1.t.one", "first event".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.stream, STREAM);
    (js, ack.sequence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_start_jetstream_works_and_shutdown_leaves_nothing() {
    let (_dir, data) = data_dir();
    let nats = EmbeddedNats::start(EmbeddedConfig::new(&data))
        .await
        .unwrap();
    let url = nats.url().to_owned();
    assert_eq!(url, format!("nats://127.0.0.1:{}", nats.client_port()));
    assert_ne!(nats.client_port(), nats.monitor_port());
    assert!(nats.binary().version >= crm_server::nats_binary::MIN_VERSION);
    assert_eq!(nats.durability(), Durability::Durable);

    let data = fs::canonicalize(&data).unwrap();
    assert_eq!(nats.config_path(), data.join("nats/nats.conf"));
    assert_eq!(nats.store_dir(), data.join("nats/jetstream"));
    assert_eq!(nats.log_path(), data.join("nats/nats-server.log"));
    let conf = fs::read_to_string(nats.config_path()).unwrap();
    assert!(conf.contains("server_name: \"crm-embedded\""), "{conf}");
    assert!(conf.contains("sync_interval: always"), "{conf}");
    assert!(
        conf.contains(&format!("listen: \"127.0.0.1:{}\"", nats.client_port())),
        "{conf}"
    );

    let (js, seq) = create_stream_and_publish(&nats).await;
    assert_eq!(seq, 1);
    let msg = js
        .get_stream(STREAM)
        .await
        .unwrap()
        .get_raw_message(seq)
        .await
        .unwrap();
    assert_eq!(msg.payload.as_ref(), b"first event");
    // JetStream's data is in the configured store.
    assert!(data.join("nats/jetstream/jetstream").is_dir());

    assert_eq!(jsz_sync_always(&nats).await, Some(true));
    assert_eq!(nats.restarts(), 0);

    let pid = nats.pid().expect("running");
    assert!(alive(pid));
    let status = nats.shutdown().await.expect("an exit status");
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
    assert!(
        !alive(pid),
        "nats-server {pid} still running after shutdown"
    );
    let log = fs::read_to_string(data.join("nats/nats-server.log")).unwrap();
    assert!(log.contains("Server Exiting"), "{log}");
    // The data dir is free again.
    DataDirLock::acquire(&data).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_mode_does_not_sync_always() {
    let (_dir, data) = data_dir();
    let mut config = EmbeddedConfig::new(&data);
    config.durability = Durability::Lazy;
    let nats = EmbeddedNats::start(config).await.unwrap();
    assert_ne!(jsz_sync_always(&nats).await, Some(true));
    let conf = fs::read_to_string(nats.config_path()).unwrap();
    assert!(!conf.contains("sync_interval:"), "{conf}");
    nats.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_is_restarted_and_keeps_its_data() {
    let (_dir, data) = data_dir();
    let nats = EmbeddedNats::start(EmbeddedConfig::new(&data))
        .await
        .unwrap();
    let (js, seq) = create_stream_and_publish(&nats).await;
    let port = nats.client_port();

    let pid = nats.pid().unwrap();
    let killed_at = Instant::now();
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGKILL).unwrap();
    poll("the supervisor's restart", async || {
        (nats.restarts() == 1).then_some(())
    })
    .await;
    let restarted_after = killed_at.elapsed();
    let new_pid = nats.pid().expect("restarted");
    assert_ne!(new_pid, pid);
    assert!(!alive(pid));
    assert_eq!(nats.client_port(), port, "same port after restart");
    assert!(
        restarted_after >= Duration::from_secs(1),
        "first restart waits 1 s: {restarted_after:?}"
    );
    assert_eq!(jsz_sync_always(&nats).await, Some(true));

    // The same client reconnects by itself; the acknowledged message is still stored.
    let msg = poll("the client to reconnect and read", async || {
        let stream = js.get_stream(STREAM).await.ok()?;
        stream.get_raw_message(seq).await.ok()
    })
    .await;
    assert_eq!(msg.payload.as_ref(), b"first event");
    let ack = js
        .publish("crm.v1.t.two", "after restart".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, seq + 1);
    eprintln!(
        "restarted {restarted_after:?} after SIGKILL; client read again {:?} after SIGKILL",
        killed_at.elapsed()
    );

    let log = fs::read_to_string(nats.log_path()).unwrap();
    assert!(log.contains("restart after an unexpected exit"), "{log}");
    nats.shutdown().await;
    assert!(!alive(new_pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_on_the_same_data_dir_is_refused() {
    let (_dir, data) = data_dir();
    let first = EmbeddedNats::start(EmbeddedConfig::new(&data))
        .await
        .unwrap();
    let err = EmbeddedNats::start(EmbeddedConfig::new(&data))
        .await
        .unwrap_err();
    let EmbeddedError::Locked(LockError::Held { pid, .. }) = &err else {
        panic!("expected the lock error, got {err:?}")
    };
    assert_eq!(*pid, Some(std::process::id()));
    let msg = err.to_string();
    assert!(
        msg.contains("already in use by another crm process")
            && msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    // The first one is unaffected.
    assert!(first.pid().is_some_and(alive));
    first.shutdown().await;
    let second = EmbeddedNats::start(EmbeddedConfig::new(&data))
        .await
        .unwrap();
    second.shutdown().await;
}

fn fake_binary(dir: &Path, version_line: &str) -> PathBuf {
    let path = dir.join("nats-server");
    fs::write(&path, format!("#!/bin/sh\necho '{version_line}'\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_old_binary_is_refused() {
    let (dir, data) = data_dir();
    let old = fake_binary(dir.path(), "nats-server: v2.9.10");
    let mut config = EmbeddedConfig::new(&data);
    config.binary = Some(old.clone());
    let err = EmbeddedNats::start(config).await.unwrap_err();
    assert!(
        matches!(err, EmbeddedError::Binary(NatsBinaryError::TooOld { .. })),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&old.display().to_string())
            && msg.contains("version 2.9.10")
            && msg.contains("at least 2.14.4"),
        "{msg}"
    );
    assert!(
        !data.exists(),
        "nothing is created before the binary is accepted"
    );

    let mut config = EmbeddedConfig::new(&data);
    config.binary = Some(dir.path().join("no-such-binary"));
    let err = EmbeddedNats::start(config).await.unwrap_err();
    assert!(
        matches!(err, EmbeddedError::Binary(NatsBinaryError::Missing { .. })),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_without_shutdown_kills_the_server() {
    let (_dir, data) = data_dir();
    let nats = EmbeddedNats::start(EmbeddedConfig::new(&data))
        .await
        .unwrap();
    let pid = nats.pid().unwrap();
    drop(nats);
    assert!(!alive(pid), "nats-server {pid} survived the drop");
    DataDirLock::acquire(&data).unwrap();
}

/// A `crm serve` that died without stopping its server leaves it running (the lock goes with
/// the dead process, the child does not): the next start stops it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_server_is_stopped_and_a_fixed_port_is_used() {
    let (_dir, data) = data_dir();
    let nats = EmbeddedNats::start(EmbeddedConfig::new(&data))
        .await
        .unwrap();
    let binary = nats.binary().path.clone();
    let conf = nats.config_path().to_owned();
    let old_port = nats.client_port();
    let pid_file = conf.with_file_name("nats-server.pid");
    let (_, seq) = create_stream_and_publish(&nats).await;
    nats.shutdown().await;

    // The "orphan": the same binary and configuration, not supervised by anyone.
    let mut orphan = Command::new(&binary)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let orphan_pid = orphan.id();
    poll("the orphan's pid file", async || {
        let text = fs::read_to_string(&pid_file).ok()?;
        (text.trim() == orphan_pid.to_string()).then_some(())
    })
    .await;

    let fixed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut config = EmbeddedConfig::new(&data);
    config.client_port = Some(fixed);
    let nats = EmbeddedNats::start(config).await.unwrap();
    let status = orphan.try_wait().unwrap();
    assert!(status.is_some(), "the orphan is still running");
    assert_eq!(nats.client_port(), fixed);
    assert_ne!(nats.client_port(), old_port);
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{fixed}"));
    // The store of the first run is served by the new process.
    let js = as_user(&nats, NatsUser::Reader).await;
    let msg = js
        .get_stream(STREAM)
        .await
        .unwrap()
        .get_raw_message(seq)
        .await
        .unwrap();
    assert_eq!(msg.payload.as_ref(), b"first event");
    nats.shutdown().await;
}

/// Nobody but the service's users gets in, and each may do only its work: a stranger
/// cannot connect, the reader cannot append, neither can purge or delete the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_services_users_get_in_and_only_for_their_work() {
    let (_dir, data) = data_dir();
    let nats = EmbeddedNats::start(EmbeddedConfig::new(&data))
        .await
        .unwrap();
    let conf = fs::read_to_string(nats.config_path()).unwrap();
    assert!(conf.contains("authorization {"), "{conf}");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(nats.config_path()), 0o600);
    for user in NatsUser::ALL {
        let seed = crm_server::nats_auth::NatsUsers::seed_path(nats.users().dir(), user);
        assert_eq!(mode(&seed), 0o600, "{}", seed.display());
        // The configuration names public keys only.
        let seed_text = fs::read_to_string(&seed).unwrap();
        assert!(!conf.contains(seed_text.trim()), "a seed in nats.conf");
    }

    // A stranger (no credentials, or a key of its own) is refused.
    let anonymous = async_nats::connect(nats.url()).await;
    assert!(anonymous.is_err(), "an anonymous client was admitted");
    let stranger = async_nats::ConnectOptions::new()
        .nkey(nkeys::KeyPair::new_user().seed().unwrap())
        .connect(nats.url())
        .await;
    assert!(stranger.is_err(), "an unknown key was admitted");

    let (writer, _) = create_stream_and_publish(&nats).await;
    let reader = as_user(&nats, NatsUser::Reader).await;
    let count = async || {
        let mut s = reader.get_stream(STREAM).await.unwrap();
        s.info().await.unwrap().state.messages
    };
    assert_eq!(count().await, 1);

    // The reader reads (an ordered consumer, as projectors do) ...
    use futures::StreamExt as _;
    let consumer = reader
        .get_stream(STREAM)
        .await
        .unwrap()
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let first = messages.next().await.unwrap().unwrap();
    assert_eq!(first.payload.as_ref(), b"first event");
    // ... and cannot append: not on an aggregate's subject, not on any other.
    for subject in [
        "crm.v1.customer.0190a0a0a0a07000800000000000000a",
        "crm.v1.x",
    ] {
        let published = match reader.publish(subject, "forged".into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        assert!(!published, "the reader appended on {subject}");
    }
    // Neither user may purge or delete the log, or create another stream.
    for (who, js) in [("writer", &writer), ("reader", &reader)] {
        assert!(js.delete_stream(STREAM).await.is_err(), "{who} deleted it");
        let mut s = js.get_stream(STREAM).await.unwrap();
        assert!(s.purge().await.is_err(), "{who} purged it");
        let other = stream::Config {
            name: "OTHER".into(),
            subjects: vec!["other.>".into()],
            ..Default::default()
        };
        assert!(
            js.create_stream(other).await.is_err(),
            "{who} made a stream"
        );
        let _ = s.info().await.unwrap();
    }
    assert_eq!(count().await, 1, "the log changed");
    nats.shutdown().await;
}
