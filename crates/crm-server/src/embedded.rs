//! The embedded nats-server: a supervised child process used when `nats_urls` is empty.
//!
//! [`EmbeddedNats::start`]:
//! 1. locates and version-checks the binary ([`crate::nats_binary`], >= 2.14.4);
//! 2. locks the data directory ([`DataDirLock`]): a second `crm serve` on the same directory
//!    fails, naming the pid that holds it;
//! 3. stops an orphaned nats-server left running on this directory by a `crm serve` that died
//!    without stopping it (found through the server's pid file and `/proc/<pid>/cmdline`);
//! 4. writes `<data_dir>/nats/nats.conf`: client port on 127.0.0.1 (free, or fixed by
//!    [`EmbeddedConfig::client_port`]), HTTP monitoring on another free loopback port,
//!    `server_name: crm-embedded`, `pid_file: "<data_dir>/nats/nats-server.pid"`,
//!    `jetstream { store_dir: "<data_dir>/nats/jetstream", sync_interval: always }`
//!    (`sync_interval` omitted in lazy mode) and an `authorization` block admitting only
//!    the service's two NATS users, by public nkey, each with its own permissions
//!    ([`crate::nats_auth`]; seeds in `<data_dir>/nats/users/`, 0600). The file is 0600 too;
//! 5. spawns it in its own process group, stdout and stderr appended to
//!    `<data_dir>/nats/nats-server.log`. A terminal's Ctrl-C therefore reaches only `crm`,
//!    which is expected to handle SIGINT/SIGTERM and call [`EmbeddedNats::shutdown`] after
//!    draining its own work (otherwise the server would stop under it and be restarted). If
//!    `crm` dies without that, the server outlives it and is stopped by the next start (3.);
//! 6. waits (up to 30 s) until `/healthz?js-enabled-only=true` answers 200, checks `/varz`
//!    reports its client port (the monitoring port was not grabbed by another process) and,
//!    in durable mode, that `/jsz` reports `config.sync_always: true`; it refuses to continue
//!    otherwise;
//! 7. starts a supervisor task: when the process exits unexpectedly it is logged with
//!    `tracing::error!` and restarted on the same ports and store after 1 s, 2 s, 4 s, ...
//!    (at most 30 s; back to 1 s once it has run for a minute), with the same checks.
//!
//! [`EmbeddedNats::shutdown`] stops supervision, sends SIGTERM, waits up to 10 s and then
//! SIGKILLs. Dropping an [`EmbeddedNats`] without `shutdown` SIGKILLs the process (with
//! `sync_interval: always` nothing acknowledged is lost).

use std::fs::{self, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

use crate::config::{Durability, ServeConfig};
use crate::lock::{DataDirLock, LockError};
use crate::nats_auth::{NatsAuthError, NatsUsers};
use crate::nats_binary::{self, NatsBinary, NatsBinaryError};

/// `server_name` of the embedded server.
pub const SERVER_NAME: &str = "crm-embedded";
/// Default time allowed for the server to become ready.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

const POLL_INTERVAL: Duration = Duration::from_millis(25);
const SUPERVISE_INTERVAL: Duration = Duration::from_millis(50);
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A server that ran this long before exiting restarts with the initial backoff again.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// At start, a log larger than this is moved to `nats-server.log.1` (replacing it).
const LOG_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
const LOG_TAIL_BYTES: u64 = 3000;

/// Settings of the embedded nats-server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// The data directory; the server lives in `<data_dir>/nats/`.
    pub data_dir: PathBuf,
    /// Fsync policy.
    pub durability: Durability,
    /// The binary; `None`: [`nats_binary::locate`]'s search.
    pub binary: Option<PathBuf>,
    /// Fixed client port; `None`: a free port chosen at each start.
    pub client_port: Option<u16>,
    /// How long a (re)start may take to become ready.
    pub ready_timeout: Duration,
    /// The event log's stream and subject prefix: what the service's NATS users are
    /// allowed to touch ([`crate::nats_auth`]).
    pub stream: String,
    pub subject_prefix: String,
}

impl EmbeddedConfig {
    /// Durable, free port, binary found by search, 30 s to become ready.
    pub fn new(data_dir: impl Into<PathBuf>) -> EmbeddedConfig {
        EmbeddedConfig {
            data_dir: data_dir.into(),
            durability: Durability::Durable,
            binary: None,
            client_port: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            stream: crate::config::DEFAULT_STREAM.into(),
            subject_prefix: crm_events::DEFAULT_PREFIX.into(),
        }
    }

    /// The embedded server's settings from `crm serve`'s configuration.
    pub fn from_serve(config: &ServeConfig) -> EmbeddedConfig {
        EmbeddedConfig {
            data_dir: config.data_dir.clone(),
            durability: config.durability,
            binary: config.nats_server_bin.clone(),
            client_port: config.embedded_nats_port,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            stream: config.stream.clone(),
            subject_prefix: crm_events::DEFAULT_PREFIX.into(),
        }
    }
}

/// Why the embedded nats-server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No usable binary (missing, too old, not runnable).
    #[error(transparent)]
    Binary(#[from] NatsBinaryError),
    /// The data directory is in use by another process.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The NATS users' keys could not be read or created.
    #[error(transparent)]
    Users(#[from] NatsAuthError),
    /// A file or directory could not be created or written.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The process could not be spawned.
    #[error("could not start {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The process exited before it was ready.
    #[error("nats-server exited during start-up ({status}); tail of {}:\n{tail}", log.display())]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    /// The process did not become ready in time.
    #[error(
        "nats-server did not become ready within {timeout:?} (last answer: {last}); tail of {}:\n{tail}",
        log.display()
    )]
    NotReady {
        timeout: Duration,
        last: String,
        log: PathBuf,
        tail: String,
    },
    /// The monitoring port answered for another server, or answered nonsense.
    #[error("the monitoring endpoint 127.0.0.1:{monitor_port} {problem}")]
    Monitor { monitor_port: u16, problem: String },
    /// Durable mode was configured but the server does not report `sync_always`.
    #[error(
        "durable mode wrote `sync_interval: always` to {}, but the nats-server at {} reports \
         sync_always = {reported} in /jsz: refusing to run with lazy fsync (acknowledged writes \
         could be lost on a power loss or kernel crash)",
        config.display(), binary.display()
    )]
    NotDurable {
        config: PathBuf,
        binary: PathBuf,
        reported: String,
    },
    /// A nats-server left running on this data directory by an earlier process could not be
    /// stopped.
    #[error(
        "an orphaned nats-server (pid {pid}) is still running on {} and did not stop",
        config.display()
    )]
    Orphan { pid: i32, config: PathBuf },
}

impl EmbeddedError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedError {
        let context = context.into();
        move |source| EmbeddedError::Io { context, source }
    }

    /// Whether this start-up failure may be a lost free-port race (retried with new ports).
    fn port_race(&self) -> bool {
        match self {
            EmbeddedError::Monitor { .. } => true,
            EmbeddedError::Exited { tail, .. } | EmbeddedError::NotReady { tail, .. } => {
                tail.contains("address already in use")
            }
            _ => false,
        }
    }
}

/// A supervised nats-server child process with JetStream, on loopback ports, storing in
/// `<data_dir>/nats/jetstream`. See the module docs.
#[derive(Debug)]
pub struct EmbeddedNats {
    shared: Arc<Shared>,
    url: String,
    binary: NatsBinary,
    data_dir: PathBuf,
    users: NatsUsers,
    stop_tx: watch::Sender<bool>,
    supervisor: Option<JoinHandle<()>>,
    // Last: released after the process is gone.
    lock: DataDirLock,
}

/// What the supervisor and the handle share.
#[derive(Debug)]
struct Shared {
    binary: PathBuf,
    durability: Durability,
    ready_timeout: Duration,
    client_port: u16,
    monitor_port: u16,
    config_path: PathBuf,
    log_path: PathBuf,
    store_dir: PathBuf,
    child: Mutex<Option<Child>>,
    /// Set before taking the child for good: no new process is spawned after it.
    stopping: AtomicBool,
    restarts: AtomicU64,
}

impl EmbeddedNats {
    /// Start the server, wait until it is ready and verified, and supervise it.
    ///
    /// Must be called within a tokio runtime (the supervisor is a task on it).
    ///
    /// # Errors
    /// [`EmbeddedError`]: no usable binary, data directory locked, the server did not come up
    /// (the error carries the tail of its log), or durable mode is not in effect.
    pub async fn start(config: EmbeddedConfig) -> Result<EmbeddedNats, EmbeddedError> {
        let binary = nats_binary::find(config.binary.as_deref())?;
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let data_dir = fs::canonicalize(&config.data_dir).map_err(EmbeddedError::io(format!(
            "resolve the data dir {}",
            config.data_dir.display()
        )))?;
        let nats_dir = data_dir.join("nats");
        let store_dir = nats_dir.join("jetstream");
        fs::create_dir_all(&store_dir)
            .map_err(EmbeddedError::io(format!("create {}", store_dir.display())))?;
        let config_path = nats_dir.join("nats.conf");
        let log_path = nats_dir.join("nats-server.log");
        let pid_path = nats_dir.join("nats-server.pid");

        stop_orphan(&pid_path, &config_path).await?;
        rotate_log(&log_path);
        let users = NatsUsers::load_or_create(&nats_dir.join("users"))?;
        let authorization = users.authorization(&config.stream, &config.subject_prefix);

        let mut attempt = 0;
        let shared = loop {
            attempt += 1;
            let (client_port, monitor_port) = choose_ports(config.client_port)?;
            let conf = render_config(
                client_port,
                monitor_port,
                &store_dir,
                &pid_path,
                config.durability,
                &authorization,
            );
            write_private(&config_path, &conf).map_err(EmbeddedError::io(format!(
                "write {}",
                config_path.display()
            )))?;
            let shared = Arc::new(Shared {
                binary: binary.path.clone(),
                durability: config.durability,
                ready_timeout: config.ready_timeout,
                client_port,
                monitor_port,
                config_path: config_path.clone(),
                log_path: log_path.clone(),
                store_dir: store_dir.clone(),
                child: Mutex::new(None),
                stopping: AtomicBool::new(false),
                restarts: AtomicU64::new(0),
            });
            shared.spawn("start")?;
            match shared.wait_ready().await {
                Ok(()) => break shared,
                Err(e) => {
                    shared.kill_and_reap().await;
                    if attempt == 1 && config.client_port.is_none() && e.port_race() {
                        tracing::warn!(error = %e, "embedded nats-server lost a port race; retrying with new ports");
                        continue;
                    }
                    return Err(e);
                }
            }
        };

        let url = format!("nats://127.0.0.1:{}", shared.client_port);
        match config.durability {
            Durability::Durable => tracing::info!(
                %url,
                version = %binary.version,
                binary = %binary.path.display(),
                store = %store_dir.display(),
                "embedded nats-server ready (durable: sync_interval always)"
            ),
            Durability::Lazy => tracing::warn!(
                %url,
                version = %binary.version,
                binary = %binary.path.display(),
                store = %store_dir.display(),
                "embedded nats-server ready in LAZY durability mode: acknowledged writes can be \
                 lost on a power loss or kernel crash"
            ),
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(Arc::clone(&shared), stop_rx));
        Ok(EmbeddedNats {
            shared,
            url,
            binary,
            data_dir,
            users,
            stop_tx,
            supervisor: Some(supervisor),
            lock,
        })
    }

    /// Client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The NATS users the server admits (nobody else): connect with
    /// [`NatsUsers::connect_options`].
    pub fn users(&self) -> &NatsUsers {
        &self.users
    }

    /// Client port.
    pub fn client_port(&self) -> u16 {
        self.shared.client_port
    }

    /// HTTP monitoring base URL, `http://127.0.0.1:PORT`.
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.shared.monitor_port)
    }

    /// HTTP monitoring port.
    pub fn monitor_port(&self) -> u16 {
        self.shared.monitor_port
    }

    /// How many times the supervisor brought the server back (restarted and verified ready)
    /// after it exited unexpectedly.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::SeqCst)
    }

    /// The pid of the current server process, if one is running.
    pub fn pid(&self) -> Option<u32> {
        self.shared.child().as_ref().and_then(Child::id)
    }

    /// The binary in use, its version and where it was found.
    pub fn binary(&self) -> &NatsBinary {
        &self.binary
    }

    /// The fsync policy in effect.
    pub fn durability(&self) -> Durability {
        self.shared.durability
    }

    /// The data directory (absolute).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `<data_dir>/nats/nats.conf`.
    pub fn config_path(&self) -> &Path {
        &self.shared.config_path
    }

    /// `<data_dir>/nats/nats-server.log` (appended across starts).
    pub fn log_path(&self) -> &Path {
        &self.shared.log_path
    }

    /// The JetStream `store_dir`, `<data_dir>/nats/jetstream` (the server keeps its data in
    /// its `jetstream` subdirectory).
    pub fn store_dir(&self) -> &Path {
        &self.shared.store_dir
    }

    /// The data directory's lock, held as long as this value lives.
    pub fn lock(&self) -> &DataDirLock {
        &self.lock
    }

    /// GET a monitoring endpoint (e.g. `/jsz`); returns the status code and the body.
    ///
    /// # Errors
    /// If the monitoring port does not answer (server down) or answers garbage.
    pub async fn monitor_get(&self, path: &str) -> io::Result<(u16, String)> {
        http_get(self.shared.monitor_port, path).await
    }

    /// Stop supervising, send SIGTERM, wait up to 10 s for the process to exit (then
    /// SIGKILL), and release the data directory. Returns the server's exit status, if a
    /// process was running.
    pub async fn shutdown(mut self) -> Option<ExitStatus> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.stop_tx.send_replace(true);
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.await;
        }
        let status = self.shared.stop_gracefully().await;
        tracing::info!(status = ?status, "embedded nats-server stopped");
        status
    }
}

impl Drop for EmbeddedNats {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.stop_tx.send_replace(true);
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
        let child = self.shared.child().take();
        if let Some(mut child) = child {
            // SIGKILL, then wait (briefly, it dies at once) so that the store is released
            // before the data-dir lock is.
            let _ = child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

impl Shared {
    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spawn the server (unless stopping), its output appended to the log.
    fn spawn(&self, why: &str) -> Result<(), EmbeddedError> {
        let mut guard = self.child();
        if self.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(EmbeddedError::io(format!(
                "open {}",
                self.log_path.display()
            )))?;
        let _ = writeln!(
            log,
            "--- crm: {why}: {} -c {} ---",
            self.binary.display(),
            self.config_path.display()
        );
        let stderr = log.try_clone().map_err(EmbeddedError::io(format!(
            "open {}",
            self.log_path.display()
        )))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config_path)
            .current_dir(self.config_path.parent().unwrap_or(Path::new("/")))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            // Own process group: a terminal's Ctrl-C goes to crm, which stops the server.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| EmbeddedError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        *guard = Some(child);
        Ok(())
    }

    /// The exit status if the process has exited (reaping it), `None` while it runs.
    /// `Err(())` if there is no process (taken by shutdown).
    fn try_wait(&self) -> Result<Option<ExitStatus>, ()> {
        let mut guard = self.child();
        let child = guard.as_mut().ok_or(())?;
        match child.try_wait() {
            Ok(Some(status)) => {
                *guard = None;
                Ok(Some(status))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "cannot poll the embedded nats-server process");
                Ok(None)
            }
        }
    }

    /// SIGKILL the process, if any, and wait for it.
    async fn kill_and_reap(&self) {
        let child = self.child().take();
        if let Some(mut child) = child {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGTERM, wait up to 10 s, then SIGKILL.
    async fn stop_gracefully(&self) -> Option<ExitStatus> {
        let mut child = self.child().take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        match timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "waiting for the embedded nats-server failed");
                None
            }
            Err(_) => {
                tracing::warn!(
                    "embedded nats-server did not exit within {STOP_TIMEOUT:?} of SIGTERM; killing it"
                );
                let _ = child.start_kill();
                child.wait().await.ok()
            }
        }
    }

    /// Wait for `/healthz?js-enabled-only=true`, then check `/varz` and `/jsz`.
    async fn wait_ready(&self) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + self.ready_timeout;
        let mut last: String;
        loop {
            match self.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => {
                    return Err(EmbeddedError::Exited {
                        status: status.to_string(),
                        log: self.log_path.clone(),
                        tail: log_tail(&self.log_path),
                    });
                }
                Err(()) => {
                    return Err(EmbeddedError::Exited {
                        status: "stopped".to_owned(),
                        log: self.log_path.clone(),
                        tail: log_tail(&self.log_path),
                    });
                }
            }
            match http_get(self.monitor_port, "/healthz?js-enabled-only=true").await {
                Ok((200, _)) => break,
                Ok((code, body)) => last = format!("HTTP {code}: {}", body.trim()),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(EmbeddedError::NotReady {
                    timeout: self.ready_timeout,
                    last,
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path),
                });
            }
            sleep(POLL_INTERVAL).await;
        }

        let varz = self.monitor_json("/varz").await?;
        if varz["port"].as_u64() != Some(u64::from(self.client_port)) {
            return Err(EmbeddedError::Monitor {
                monitor_port: self.monitor_port,
                problem: format!(
                    "answers for client port {} (server_name {}), not for ours ({})",
                    varz["port"], varz["server_name"], self.client_port
                ),
            });
        }

        let jsz = self.monitor_json("/jsz").await?;
        let sync_always = &jsz["config"]["sync_always"];
        if self.durability == Durability::Durable && sync_always.as_bool() != Some(true) {
            return Err(EmbeddedError::NotDurable {
                config: self.config_path.clone(),
                binary: self.binary.clone(),
                reported: if sync_always.is_null() {
                    "(absent)".to_owned()
                } else {
                    sync_always.to_string()
                },
            });
        }
        Ok(())
    }

    async fn monitor_json(&self, path: &str) -> Result<serde_json::Value, EmbeddedError> {
        let monitor_err = |problem: String| EmbeddedError::Monitor {
            monitor_port: self.monitor_port,
            problem,
        };
        let (code, body) = http_get(self.monitor_port, path)
            .await
            .map_err(|e| monitor_err(format!("did not answer GET {path}: {e}")))?;
        if code != 200 {
            return Err(monitor_err(format!("answered GET {path} with HTTP {code}")));
        }
        serde_json::from_str(&body)
            .map_err(|e| monitor_err(format!("answered GET {path} with invalid JSON: {e}")))
    }
}

/// Watch the process; restart it with backoff when it exits unexpectedly.
async fn supervise(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut backoff = INITIAL_BACKOFF;
    let mut up_since = Instant::now();
    loop {
        let status = loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = sleep(SUPERVISE_INTERVAL) => {}
            }
            if *stop.borrow() {
                return;
            }
            match shared.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => break status,
                Err(()) => return,
            }
        };
        let uptime = up_since.elapsed();
        if uptime >= STABLE_AFTER {
            backoff = INITIAL_BACKOFF;
        }
        tracing::error!(
            %status,
            uptime_secs = uptime.as_secs(),
            log = %shared.log_path.display(),
            "embedded nats-server exited unexpectedly; restarting it in {backoff:?}"
        );
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            let attempt = async {
                shared.spawn("restart after an unexpected exit")?;
                shared.wait_ready().await
            };
            let result = tokio::select! {
                _ = stop.changed() => return,
                result = attempt => result,
            };
            match result {
                Ok(()) => {
                    let restarts = shared.restarts.fetch_add(1, Ordering::SeqCst) + 1;
                    tracing::info!(restarts, "embedded nats-server restarted and ready");
                    up_since = Instant::now();
                    break;
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        "restarting the embedded nats-server failed; retrying in {backoff:?}"
                    );
                    shared.kill_and_reap().await;
                }
            }
        }
    }
}

/// The client port (fixed or free) and a free monitoring port, distinct.
fn choose_ports(fixed_client: Option<u16>) -> Result<(u16, u16), EmbeddedError> {
    let bind = || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| Ok((l.local_addr()?.port(), l)))
            .map_err(EmbeddedError::io("choose a free loopback port"))
    };
    // Both listeners are held until both ports are known, so they differ.
    let (monitor, _monitor_listener) = bind()?;
    let client = match fixed_client {
        Some(port) => port,
        None => bind()?.0,
    };
    Ok((client, monitor))
}

fn render_config(
    client_port: u16,
    monitor_port: u16,
    store_dir: &Path,
    pid_path: &Path,
    durability: Durability,
    authorization: &str,
) -> String {
    let mut conf = String::from(
        "# Written by `crm serve` at every start of the embedded nats-server: edits are lost.\n",
    );
    conf.push_str(&format!("server_name: {}\n", quote(SERVER_NAME)));
    conf.push_str(&format!("listen: \"127.0.0.1:{client_port}\"\n"));
    conf.push_str(&format!("http: \"127.0.0.1:{monitor_port}\"\n"));
    conf.push_str(&format!(
        "pid_file: {}\n",
        quote(&pid_path.display().to_string())
    ));
    conf.push_str("jetstream {\n");
    conf.push_str(&format!(
        "  store_dir: {}\n",
        quote(&store_dir.display().to_string())
    ));
    match durability {
        Durability::Durable => conf.push_str("  sync_interval: always\n"),
        Durability::Lazy => conf.push_str(
            "  # lazy durability: the server's default sync_interval (acknowledged writes can be\n  \
             # lost on a power loss or kernel crash)\n",
        ),
    }
    conf.push_str("}\n");
    conf.push_str(authorization);
    conf
}

/// Writes a file only its owner can read (the configuration names the users' keys).
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// A double-quoted config string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Stop a nats-server still running with our configuration file (left behind by a `crm serve`
/// that died without stopping it: the data-dir lock is gone with its holder, the child is
/// not). We hold the lock, so no live `crm serve` owns it.
async fn stop_orphan(pid_path: &Path, config_path: &Path) -> Result<(), EmbeddedError> {
    let Some(pid) = fs::read_to_string(pid_path)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 0)
    else {
        return Ok(());
    };
    let runs_our_config = |pid: i32| {
        fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            let config = config_path.as_os_str().as_encoded_bytes();
            cmdline.split(|b| *b == 0).any(|arg| arg == config)
        })
    };
    if !runs_our_config(pid) {
        return Ok(());
    }
    tracing::warn!(
        pid,
        config = %config_path.display(),
        "an orphaned embedded nats-server from an earlier crm process is still running; stopping it"
    );
    let target = Pid::from_raw(pid);
    for (signal, wait) in [
        (Signal::SIGTERM, STOP_TIMEOUT),
        (Signal::SIGKILL, Duration::from_secs(2)),
    ] {
        let _ = kill(target, signal);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            // Gone, or a zombie waiting for its (new) parent: either way it has let go of
            // the store and the ports.
            if !runs_our_config(pid) || is_zombie(pid) {
                return Ok(());
            }
            sleep(POLL_INTERVAL).await;
        }
    }
    Err(EmbeddedError::Orphan {
        pid,
        config: config_path.to_path_buf(),
    })
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Move a large log aside (one generation is kept).
fn rotate_log(log_path: &Path) {
    if fs::metadata(log_path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let mut rotated = log_path.as_os_str().to_owned();
        rotated.push(".1");
        if let Err(e) = fs::rename(log_path, &rotated) {
            tracing::warn!(error = %e, log = %log_path.display(), "could not rotate the nats-server log");
        }
    }
}

/// The last few kilobytes of the log, lossily decoded.
fn log_tail(path: &Path) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Minimal HTTP/1.0 GET against 127.0.0.1:`port`.
async fn http_get(port: u16, path: &str) -> io::Result<(u16, String)> {
    let request = async {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        stream
            .write_all(
                format!(
                    "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, io::Error>(response)
    };
    let response = timeout(HTTP_TIMEOUT, request)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "HTTP request timed out"))??;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_durable_and_lazy() {
        let durable = render_config(
            4222,
            8222,
            Path::new("/d/nats/jetstream"),
            Path::new("/d/nats/nats-server.pid"),
            Durability::Durable,
            "authorization {}\n",
        );
        assert!(
            durable.contains("server_name: \"crm-embedded\"\n"),
            "{durable}"
        );
        assert!(
            durable.contains("listen: \"127.0.0.1:4222\"\n"),
            "{durable}"
        );
        assert!(durable.contains("http: \"127.0.0.1:8222\"\n"), "{durable}");
        assert!(
            durable.contains(
                "jetstream {\n  store_dir: \"/d/nats/jetstream\"\n  sync_interval: always\n}"
            ),
            "{durable}"
        );
        let lazy = render_config(
            4222,
            8222,
            Path::new("/d/nats/jetstream"),
            Path::new("/d/nats/nats-server.pid"),
            Durability::Lazy,
            "",
        );
        assert!(!lazy.contains("sync_interval:"), "{lazy}");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn ports_are_distinct_and_fixed_port_is_kept() {
        let (client, monitor) = choose_ports(None).unwrap();
        assert_ne!(client, monitor);
        let (client, monitor) = choose_ports(Some(4222)).unwrap();
        assert_eq!(client, 4222);
        assert_ne!(monitor, 4222);
    }
}
