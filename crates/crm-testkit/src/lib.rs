//! Test support: throwaway, real `nats-server` processes.
//!
//! - [`NatsServer`]: one JetStream-enabled server on free loopback ports, with its store in a
//!   temporary directory. It can be stopped gracefully, killed (simulated crash) and restarted on
//!   the same ports with the same store.
//! - [`NatsCluster`]: `n` such servers forming one JetStream cluster (`crm-test`).
//! - [`CrmServe`]: `crm serve` as a child process, ready once it printed its ready line:
//!   the one way tests, the bench and the demo start it.
//!
//! The binary comes from [`nats_server_binary`]: `CRM_NATS_SERVER`, or the pinned 2.15.1 that
//! `cargo xtask nats-server` / `cargo xtask test` fetch into `target/nats-server/2.15.1/`.
//!
//! Everything here panics with a descriptive message (including the tail of the server log)
//! when something goes wrong: it is test support.
//!
//! # Readiness
//!
//! A server counts as ready when its HTTP monitoring endpoint answers `200`:
//! - single server: `GET /healthz?js-enabled-only=true` (JetStream is up);
//! - cluster node: `GET /healthz` (the full check: JetStream is up, the node is in contact with
//!   the meta leader and its assets are current). [`NatsCluster`] waits for that on every node,
//!   then checks that `/jsz` on every node names the same meta leader.
//!
//! After the `200`, `/varz` must report the server's own client port: this guards against
//! a monitoring port that was grabbed by another process between choosing and binding it.
//! Free ports are chosen by binding `127.0.0.1:0` and releasing; if the server then fails with
//! "address already in use", the start is retried once with new ports.
//!
//! Polling runs every 25 ms for up to 15 s.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod crm;
pub use crm::{
    CrmServe, CrmServeBuilder, DEV_TOKEN_PREFIX, Principal, READY_PREFIX, peak_rss_mib_of,
    port_outside_the_ephemeral_range, tokens_toml,
};

/// Environment variable naming the nats-server binary to use.
pub const ENV_NATS_SERVER: &str = "CRM_NATS_SERVER";
/// The nats-server version the project pins (fetched by `cargo xtask nats-server`).
pub const PINNED_VERSION: &str = "2.15.1";
/// The `cluster.name` of clusters started by [`NatsCluster`].
pub const CLUSTER_NAME: &str = "crm-test";

const READY_TIMEOUT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(25);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
const LOG_TAIL_BYTES: u64 = 6000;

/// The nats-server binary to run: `$CRM_NATS_SERVER` if set, else the pinned binary under
/// `<workspace>/target/nats-server/2.15.1/nats-server` if present.
///
/// # Panics
/// If neither exists.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(ENV_NATS_SERVER).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        // Absolute, because the server is spawned in its temporary directory.
        return fs::canonicalize(&path).unwrap_or(path);
    }
    let pinned = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/nats-server")
        .join(PINNED_VERSION)
        .join("nats-server");
    if pinned.is_file() {
        return fs::canonicalize(&pinned).unwrap_or(pinned);
    }
    panic!(
        "no nats-server: run `cargo xtask test` (it fetches the pinned {PINNED_VERSION}) \
         or set {ENV_NATS_SERVER}"
    );
}

/// When JetStream's file store flushes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `sync_interval: always`: every write is fsynced before it is acknowledged.
    #[default]
    Always,
    /// The server default: acknowledged at once, fsynced every `sync_interval` (2 min).
    Lazy,
}

/// Ports one server listens on (all on 127.0.0.1).
#[derive(Debug, Clone, Copy)]
struct Ports {
    client: u16,
    monitor: u16,
    /// Route listener, for cluster nodes only.
    cluster: Option<u16>,
}

/// What "ready" means for a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readiness {
    /// `/healthz?js-enabled-only=true` answers 200.
    JetStreamEnabled,
    /// `/healthz` answers 200 (meta leader known, assets current).
    Full,
}

impl Readiness {
    fn path(self) -> &'static str {
        match self {
            Readiness::JetStreamEnabled => "/healthz?js-enabled-only=true",
            Readiness::Full => "/healthz",
        }
    }
}

/// Builder for a single [`NatsServer`].
#[derive(Debug, Clone, Default)]
pub struct NatsServerBuilder {
    durability: Durability,
    binary: Option<PathBuf>,
}

impl NatsServerBuilder {
    /// Fsync policy of the JetStream file store (default [`Durability::Always`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Run this binary instead of [`nats_server_binary`].
    #[must_use]
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Start the server and wait until it is ready.
    ///
    /// # Panics
    /// If it does not become ready within 15 s (twice, if the first attempt lost a port race).
    pub fn start(self) -> NatsServer {
        let binary = self.binary.unwrap_or_else(nats_server_binary);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let [client, monitor] = free_ports::<2>();
            let ports = Ports {
                client,
                monitor,
                cluster: None,
            };
            let server = NatsServer::prepare(
                &binary,
                "crm-test-single".to_owned(),
                ports,
                self.durability,
                None,
                Readiness::JetStreamEnabled,
                None,
            );
            server.spawn();
            match server.wait_ready_result(READY_TIMEOUT) {
                Ok(()) => return server,
                Err(failure) if attempt == 1 && server.port_conflict() => {
                    eprintln!("crm-testkit: port taken, retrying with new ports ({failure})");
                }
                Err(failure) => server.fail(&failure),
            }
        }
    }
}

/// A running (or stopped) nats-server with JetStream, on free loopback ports, with its
/// configuration, store and log in a temporary directory that lives as long as this value.
///
/// Dropping it kills the process and removes the directory.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    name: String,
    ports: Ports,
    readiness: Readiness,
    config_path: PathBuf,
    log_path: PathBuf,
    store_dir: PathBuf,
    child: Mutex<Option<Child>>,
    // Last: dropped after the process is killed.
    dir: TempDir,
}

impl NatsServer {
    /// Start a single JetStream server with [`Durability::Always`] and wait until it is ready.
    ///
    /// # Panics
    /// If no binary is available or it does not become ready in time.
    pub fn start() -> NatsServer {
        NatsServer::builder().start()
    }

    /// A builder, to choose the durability or the binary.
    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder::default()
    }

    /// Client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports.client)
    }

    /// Client port.
    pub fn port(&self) -> u16 {
        self.ports.client
    }

    /// HTTP monitoring base URL, `http://127.0.0.1:PORT`.
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.monitor)
    }

    /// HTTP monitoring port.
    pub fn monitor_port(&self) -> u16 {
        self.ports.monitor
    }

    /// Route (cluster) port, for cluster nodes.
    pub fn cluster_port(&self) -> Option<u16> {
        self.ports.cluster
    }

    /// The configured `server_name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configured JetStream `store_dir`. The server keeps its data in the `jetstream`
    /// subdirectory of it.
    pub fn store_dir(&self) -> PathBuf {
        self.store_dir.clone()
    }

    /// The configuration file passed with `-c`.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The server's log (stdout and stderr, appended across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last few kilobytes of the log, for diagnostics.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path, LOG_TAIL_BYTES)
    }

    /// Whether the process is alive (reaps it if it has exited).
    pub fn is_running(&self) -> bool {
        let mut child = self.child();
        match child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) => {
                *child = None;
                false
            }
            None => false,
        }
    }

    /// GET a monitoring endpoint (e.g. `/routez`); returns the status code and the body.
    ///
    /// # Errors
    /// If the monitoring port does not answer (server down) or answers garbage.
    pub fn monitor_get(&self, path: &str) -> io::Result<(u16, String)> {
        http_get(self.ports.monitor, path)
    }

    /// Graceful shutdown (SIGTERM); after 10 s without exit, SIGKILL. No-op if not running.
    pub fn stop(&mut self) {
        let mut guard = self.child();
        let Some(child) = guard.as_mut() else { return };
        if let Ok(Some(_)) = child.try_wait() {
            *guard = None;
            return;
        }
        let term = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if term.is_ok_and(|s| s.success()) {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    *guard = None;
                    return;
                }
                thread::sleep(POLL_INTERVAL);
            }
            eprintln!(
                "crm-testkit: {} did not exit within {STOP_TIMEOUT:?} of SIGTERM; killing it",
                self.name
            );
        }
        let _ = child.kill();
        let _ = child.wait();
        *guard = None;
    }

    /// SIGSTOP: the process stays alive with its sockets open but does nothing (a
    /// stalled machine, a long GC or I/O pause) until [`resume`](Self::resume). No-op if
    /// not running.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let guard = self.child();
        let Some(child) = guard.as_ref() else { return };
        let sent = Command::new("kill")
            .arg(sig)
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "crm-testkit: kill {sig} {} failed",
            self.name
        );
    }

    /// SIGKILL, to simulate a crash. No-op if not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the process again with the same ports, configuration and store (stopping it
    /// gracefully first if it is running) and wait until it is ready (for a cluster node: the
    /// full `/healthz`, which needs a quorum of the cluster up).
    ///
    /// # Panics
    /// If it does not become ready within 15 s.
    pub fn restart(&mut self) {
        self.restart_no_wait();
        self.wait_ready();
    }

    /// Like [`restart`](Self::restart) but returns as soon as the process is spawned.
    /// Useful to bring several cluster nodes back at once; follow with
    /// [`wait_ready`](Self::wait_ready).
    pub fn restart_no_wait(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Wait until the server is ready (see the crate docs).
    ///
    /// # Panics
    /// If it is not ready within 15 s or the process exits.
    pub fn wait_ready(&self) {
        if let Err(failure) = self.wait_ready_result(READY_TIMEOUT) {
            self.fail(&failure);
        }
    }

    // ----- internals -----

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Create the temp dir and write the configuration (does not spawn).
    fn prepare(
        binary: &Path,
        name: String,
        ports: Ports,
        durability: Durability,
        routes: Option<&[u16]>,
        readiness: Readiness,
        auth: Option<&ClusterAuth>,
    ) -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("crm-nats-")
            .tempdir()
            .expect("create a temporary directory for nats-server");
        let store_dir = dir.path().join("js");
        let config_path = dir.path().join("nats-server.conf");
        let log_path = dir.path().join("nats-server.log");
        let config = render_config(&name, ports, &store_dir, durability, routes, auth);
        fs::write(&config_path, config)
            .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
        NatsServer {
            binary: binary.to_path_buf(),
            name,
            ports,
            readiness,
            config_path,
            log_path,
            store_dir,
            child: Mutex::new(None),
            dir,
        }
    }

    fn spawn(&self) {
        let mut guard = self.child();
        assert!(
            guard.is_none(),
            "nats-server {} is already running",
            self.name
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("clone log handle: {e}"));
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not run nats-server {}: {e} (set {ENV_NATS_SERVER} or run \
                     `cargo xtask nats-server`)",
                    self.binary.display()
                )
            });
        *guard = Some(child);
    }

    /// Poll the readiness endpoint until 200, the process exits, or the timeout passes.
    fn wait_ready_result(&self, timeout: Duration) -> Result<(), String> {
        let path = self.readiness.path();
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                return Err(format!(
                    "nats-server {} exited before it was ready",
                    self.name
                ));
            }
            let last = match http_get(self.ports.monitor, path) {
                Ok((200, _)) => match self.check_identity() {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                },
                Ok((code, body)) => format!("HTTP {code}: {}", body.trim()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "nats-server {} not ready after {timeout:?} (GET {path} on port {}: {last})",
                    self.name, self.ports.monitor
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Make sure the monitoring port that answered belongs to this process and not to another
    /// server that holds the port (this one would then die with "address already in use"):
    /// `/varz` must report our client port.
    fn check_identity(&self) -> Result<(), String> {
        let varz = http_get(self.ports.monitor, "/varz").map(|(_, body)| body);
        let port = varz
            .as_deref()
            .ok()
            .and_then(|v| json_number_field(v, "port"));
        if port == Some(u64::from(self.ports.client)) && self.is_running() {
            Ok(())
        } else {
            Err(format!(
                "the monitoring port {} of nats-server {} answered, but not for client port {} \
                 (/varz port: {port:?})",
                self.ports.monitor, self.name, self.ports.client
            ))
        }
    }

    /// Whether the log says a listener could not bind (lost the free-port race).
    fn port_conflict(&self) -> bool {
        fs::read_to_string(&self.log_path).is_ok_and(|log| log.contains("address already in use"))
    }

    fn fail(&self, failure: &str) -> ! {
        let tail = self.log_tail();
        panic!(
            "{failure}\n--- config {} ---\n{}\n--- tail of {} ---\n{tail}",
            self.config_path.display(),
            fs::read_to_string(&self.config_path).unwrap_or_default(),
            self.log_path.display(),
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Builder for a [`NatsCluster`].
#[derive(Debug, Clone)]
pub struct NatsClusterBuilder {
    nodes: usize,
    durability: Durability,
    binary: Option<PathBuf>,
    auth: Option<ClusterAuth>,
}

impl NatsClusterBuilder {
    /// Fsync policy of every node's file store (default [`Durability::Always`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Run this binary instead of [`nats_server_binary`].
    #[must_use]
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Every node's client `authorization { ... }` block (users and their permissions);
    /// the routes between nodes then authenticate with a generated password.
    #[must_use]
    pub fn authorization(mut self, block: impl Into<String>) -> Self {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        self.auth = Some(ClusterAuth {
            authorization: block.into(),
            route_password: format!("{:016x}", h.finish()),
        });
        self
    }

    /// Start all nodes and wait until the cluster is ready (see the crate docs).
    ///
    /// # Panics
    /// If it is not ready within 15 s (twice, if the first attempt lost a port race).
    pub fn start(self) -> NatsCluster {
        assert!(self.nodes >= 1, "a cluster needs at least one node");
        let binary = self.binary.clone().unwrap_or_else(nats_server_binary);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let cluster = self.prepare(&binary);
            for node in &cluster.nodes {
                node.spawn();
            }
            match cluster.wait_ready_result() {
                Ok(()) => return cluster,
                Err((i, failure)) => {
                    let conflict = cluster.nodes.iter().any(NatsServer::port_conflict);
                    if attempt == 1 && conflict {
                        eprintln!("crm-testkit: port taken, retrying with new ports ({failure})");
                        continue;
                    }
                    cluster.fail(i, &failure);
                }
            }
        }
    }

    fn prepare(&self, binary: &Path) -> NatsCluster {
        let n = self.nodes;
        let ports = free_port_vec(3 * n);
        let route_ports: Vec<u16> = ports[2 * n..].to_vec();
        let nodes = (0..n)
            .map(|i| {
                let node_ports = Ports {
                    client: ports[i],
                    monitor: ports[n + i],
                    cluster: Some(route_ports[i]),
                };
                NatsServer::prepare(
                    binary,
                    format!("{CLUSTER_NAME}-{i}"),
                    node_ports,
                    self.durability,
                    Some(&route_ports),
                    Readiness::Full,
                    self.auth.as_ref(),
                )
            })
            .collect();
        NatsCluster { nodes }
    }
}

/// A JetStream cluster of real nats-server processes on loopback (cluster name `crm-test`,
/// server names `crm-test-0`, `crm-test-1`, ...), each with its own ports, store and log.
///
/// Dropping it kills every node.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Start `nodes` servers with [`Durability::Always`] and wait until every node is healthy.
    ///
    /// # Panics
    /// If the cluster is not ready within 15 s.
    pub fn start(nodes: usize) -> NatsCluster {
        NatsCluster::builder(nodes).start()
    }

    /// Start `nodes` servers with the given durability.
    ///
    /// # Panics
    /// If the cluster is not ready within 15 s.
    pub fn start_with(nodes: usize, durability: Durability) -> NatsCluster {
        NatsCluster::builder(nodes).durability(durability).start()
    }

    /// A builder, to choose the durability or the binary.
    pub fn builder(nodes: usize) -> NatsClusterBuilder {
        NatsClusterBuilder {
            nodes,
            durability: Durability::default(),
            binary: None,
            auth: None,
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false (a cluster has at least one node); present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Client URLs of all nodes.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// Client URLs of all nodes, comma-separated (what NATS clients accept as a server list).
    pub fn url_list(&self) -> String {
        self.urls().join(",")
    }

    /// Node `i`.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// Node `i`, mutably: to [`stop`](NatsServer::stop), [`kill`](NatsServer::kill) or
    /// [`restart`](NatsServer::restart) it.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn node_mut(&mut self, i: usize) -> &mut NatsServer {
        &mut self.nodes[i]
    }

    /// All nodes.
    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    /// Start every node that is not running (e.g. after killing all of them), then wait until
    /// the whole cluster is ready. Nodes that are running are left alone.
    ///
    /// # Panics
    /// If the cluster is not ready within 15 s.
    pub fn restart_stopped(&mut self) {
        for node in &self.nodes {
            if !node.is_running() {
                node.spawn();
            }
        }
        self.wait_ready();
    }

    /// Wait until every node answers `/healthz` with 200 and all agree on a meta leader.
    ///
    /// # Panics
    /// If that does not happen within 15 s or a node is down.
    pub fn wait_ready(&self) {
        if let Err((i, failure)) = self.wait_ready_result() {
            self.fail(i, &failure);
        }
    }

    /// The server name of the JetStream meta leader according to node `i`'s `/jsz`, if any.
    pub fn meta_leader(&self, i: usize) -> Option<String> {
        let (code, body) = self.nodes[i].monitor_get("/jsz").ok()?;
        if code != 200 {
            return None;
        }
        let meta = &body[body.find("\"meta_cluster\"")?..];
        json_string_field(meta, "leader").filter(|l| !l.is_empty())
    }

    fn wait_ready_result(&self) -> Result<(), (usize, String)> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for (i, node) in self.nodes.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            node.wait_ready_result(left).map_err(|e| (i, e))?;
        }
        // /healthz already requires contact with a meta leader; make sure all nodes agree.
        loop {
            let leaders: Vec<Option<String>> =
                (0..self.nodes.len()).map(|i| self.meta_leader(i)).collect();
            let agreed = leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]);
            if agreed {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err((
                    0,
                    format!("nodes do not agree on a JetStream meta leader: {leaders:?}"),
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn fail(&self, i: usize, failure: &str) -> ! {
        let mut others = String::new();
        for (j, node) in self.nodes.iter().enumerate().filter(|(j, _)| *j != i) {
            let _ = write!(
                others,
                "\n--- tail of node {j} log {} ---\n{}",
                node.log_path.display(),
                log_tail(&node.log_path, 1500)
            );
        }
        let node = &self.nodes[i];
        panic!(
            "cluster node {i}: {failure}\n--- config {} ---\n{}\n--- tail of {} ---\n{}{others}",
            node.config_path.display(),
            fs::read_to_string(&node.config_path).unwrap_or_default(),
            node.log_path.display(),
            node.log_tail(),
        );
    }
}

fn render_config(
    name: &str,
    ports: Ports,
    store_dir: &Path,
    durability: Durability,
    routes: Option<&[u16]>,
    auth: Option<&ClusterAuth>,
) -> String {
    let mut conf = String::new();
    let _ = writeln!(conf, "server_name: {}", quote(name));
    let _ = writeln!(conf, "listen: 127.0.0.1:{}", ports.client);
    let _ = writeln!(conf, "http: 127.0.0.1:{}", ports.monitor);
    conf.push_str("jetstream {\n");
    let _ = writeln!(
        conf,
        "  store_dir: {}",
        quote(&store_dir.display().to_string())
    );
    if durability == Durability::Always {
        conf.push_str("  sync_interval: always\n");
    }
    conf.push_str("}\n");
    if let (Some(cport), Some(routes)) = (ports.cluster, routes) {
        conf.push_str("cluster {\n");
        let _ = writeln!(conf, "  name: {CLUSTER_NAME}");
        let _ = writeln!(conf, "  listen: 127.0.0.1:{cport}");
        // With client authorization, routes authenticate too: a stranger cannot join.
        let credentials = match auth {
            Some(a) => {
                let _ = writeln!(
                    conf,
                    "  authorization {{ user: \"route\", password: {} }}",
                    quote(&a.route_password)
                );
                format!("route:{}@", a.route_password)
            }
            None => String::new(),
        };
        let list: Vec<String> = routes
            .iter()
            .map(|p| format!("nats-route://{credentials}127.0.0.1:{p}"))
            .collect();
        let _ = writeln!(conf, "  routes: [{}]", list.join(", "));
        conf.push_str("}\n");
    }
    if let Some(a) = auth {
        conf.push_str(&a.authorization);
    }
    conf
}

/// Client authorization of a cluster's nodes (and the routes' own credentials).
#[derive(Debug, Clone)]
struct ClusterAuth {
    authorization: String,
    route_password: String,
}

/// A double-quoted config string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `N` distinct free ports (all listeners are held until every port is chosen).
fn free_ports<const N: usize>() -> [u16; N] {
    let ports = free_port_vec(N);
    std::array::from_fn(|i| ports[i])
}

fn free_port_vec(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"))
        })
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// Minimal HTTP/1.0 GET against 127.0.0.1:`port`.
fn http_get(port: u16, path: &str) -> io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .lines()
        .next()
        .and_then(|status| status.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad HTTP response: {head:?}"),
            )
        })?;
    Ok((code, body.to_owned()))
}

/// The value of the first `"key": "value"` string field in `json` (no escapes handled).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let rest = &json[json.find(&needle)? + needle.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// The last `max_bytes` of a file, lossily decoded.
fn log_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The value of the first numeric field `key` in `json`, e.g. `num_routes`.
fn json_number_field(json: &str, key: &str) -> Option<u64> {
    let needle = format!("\"{key}\"");
    let rest = &json[json.find(&needle)? + needle.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Every file under `dir`, recursively (what a search of a data directory reads).
///
/// # Panics
/// A directory cannot be read.
#[must_use]
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Whether the file at `path` holds the bytes `needle` (false when it cannot be read).
#[must_use]
pub fn holds(path: &Path, needle: &[u8]) -> bool {
    fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_healthy(server: &NatsServer, path: &str) {
        let (code, body) = server
            .monitor_get(path)
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", server.name()));
        assert_eq!(code, 200, "GET {path} on {}: {body}", server.name());
    }

    #[test]
    fn single_server_starts_restarts_and_survives_a_kill() {
        let mut server = NatsServer::start();
        assert!(server.is_running());
        assert!(server.url().starts_with("nats://127.0.0.1:"));
        assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
        assert_healthy(&server, "/healthz?js-enabled-only=true");

        let (_, jsz) = server.monitor_get("/jsz").expect("GET /jsz");
        assert!(
            jsz.contains("\"sync_always\": true"),
            "sync_interval: always not in effect: {jsz}"
        );
        let store = server.store_dir();
        assert!(store.join("jetstream").is_dir(), "{}", store.display());

        let port = server.port();
        server.restart();
        assert!(server.is_running());
        assert_eq!(server.port(), port);
        assert_healthy(&server, "/healthz");
        TcpStream::connect(("127.0.0.1", port)).expect("client port answers after restart");

        server.kill();
        assert!(!server.is_running());
        assert!(server.monitor_get("/healthz").is_err());
        server.restart();
        assert_healthy(&server, "/healthz?js-enabled-only=true");

        server.stop();
        assert!(!server.is_running());
        assert!(server.log_tail().contains("Server Exiting"));
    }

    #[test]
    fn lazy_durability_leaves_the_default_sync() {
        let server = NatsServer::builder().durability(Durability::Lazy).start();
        let (_, jsz) = server.monitor_get("/jsz").expect("GET /jsz");
        assert!(!jsz.contains("\"sync_always\": true"), "{jsz}");
        assert!(
            !fs::read_to_string(server.config_path())
                .unwrap()
                .contains("sync_interval")
        );
    }

    #[test]
    fn three_node_cluster_forms() {
        let mut cluster = NatsCluster::start(3);
        assert_eq!(cluster.len(), 3);
        assert_eq!(cluster.urls().len(), 3);
        assert_eq!(cluster.url_list().split(',').count(), 3);
        for node in cluster.nodes() {
            assert_healthy(node, "/healthz");
        }
        let (code, routez) = cluster.node(0).monitor_get("/routez").expect("GET /routez");
        assert_eq!(code, 200);
        let routes = json_number_field(&routez, "num_routes").expect("num_routes in /routez");
        assert!(routes >= 2, "node 0 has {routes} routes: {routez}");
        for peer in ["crm-test-1", "crm-test-2"] {
            assert!(routez.contains(peer), "no route to {peer}: {routez}");
        }
        let leader = cluster.meta_leader(0).expect("a meta leader");
        assert!(leader.starts_with("crm-test-"), "{leader}");

        // A follower crashes and comes back on the same ports. (Not the meta leader: that would
        // add a leader election of several seconds to the test.)
        let follower = (0..3)
            .find(|&i| cluster.node(i).name() != leader)
            .expect("a follower");
        let port = cluster.node(follower).port();
        cluster.node_mut(follower).kill();
        assert!(!cluster.node(follower).is_running());
        cluster.node_mut(follower).restart();
        assert_eq!(cluster.node(follower).port(), port);
        cluster.wait_ready();
        for node in cluster.nodes() {
            assert_healthy(node, "/healthz");
        }
    }

    #[test]
    fn json_helpers() {
        let json =
            r#"{"meta_cluster": {"name": "crm-test", "leader": "crm-test-1"}, "num_routes": 8,}"#;
        assert_eq!(
            json_string_field(json, "leader").as_deref(),
            Some("crm-test-1")
        );
        assert_eq!(json_number_field(json, "num_routes"), Some(8));
        assert_eq!(json_number_field(json, "missing"), None);
    }
}
