//! `crm serve` as a child process: the one way tests, the bench and the demo start it.
//!
//! The contract it relies on (documented in the README, "Operation"): once `crm serve`
//! accepts gRPC connections it prints `crm serving on <host:port>` on stdout, and with
//! `--dev` the next line is `dev admin token: <token>`. Everything else it prints is
//! drained so the child never blocks on a full pipe.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The ready line's prefix.
pub const READY_PREFIX: &str = "crm serving on ";
/// The line after it with `--dev`.
pub const DEV_TOKEN_PREFIX: &str = "dev admin token: ";

/// A principal of a tokens file.
#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
    /// `user`, `service` or `automation`.
    pub kind: String,
    pub roles: Vec<String>,
    /// The bearer token (the file holds its SHA-256 only).
    pub token: String,
}

impl Principal {
    /// A `service` principal with `roles` and a random token.
    #[must_use]
    pub fn service(name: &str, roles: &[&str]) -> Self {
        Self::new(name, "service", roles, &random_token(name))
    }

    #[must_use]
    pub fn new(name: &str, kind: &str, roles: &[&str], token: &str) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            token: token.into(),
        }
    }

    /// `Bearer <token>`.
    #[must_use]
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

fn random_token(name: &str) -> String {
    // Not a secret of any consequence (a throwaway service), but unguessable enough:
    // the process id, the time and a counter, hashed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{name}:{}:{nanos}:{n}", std::process::id());
    format!("{name}-{}", &hex(&Sha256::digest(seed.as_bytes()))[..32])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A tokens file (`--tokens-file`) granting each principal its roles.
#[must_use]
pub fn tokens_toml(principals: &[Principal]) -> String {
    let mut out = String::new();
    for p in principals {
        let roles: Vec<String> = p.roles.iter().map(|r| format!("{r:?}")).collect();
        let _ = writeln!(
            out,
            "[[principal]]\nname = {:?}\nkind = {:?}\nroles = [{}]\ntoken_sha256 = \"{}\"\n",
            p.name,
            p.kind,
            roles.join(", "),
            hex(&Sha256::digest(p.token.as_bytes()))
        );
    }
    out
}

/// A free loopback port below Linux's ephemeral range (32768-60999): a process restarted
/// on it finds it free again, since no `bind(0)` (servers and clients alike) can take it
/// meanwhile.
///
/// # Panics
/// If no port in 20000-29999 can be bound after many tries.
#[must_use]
pub fn port_outside_the_ephemeral_range() -> u16 {
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    for i in 0..10_000u32 {
        let port = 20_000
            + u16::try_from((start.wrapping_add(i.wrapping_mul(7919))) % 10_000)
                .expect("below 10000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 20000-29999");
}

/// How to start `crm serve`.
#[derive(Clone, Debug)]
pub struct CrmServeBuilder {
    bin: PathBuf,
    listen: String,
    dir: PathBuf,
    data: Option<PathBuf>,
    tokens_file: Option<PathBuf>,
    principals: Vec<Principal>,
    args: Vec<OsString>,
    log: String,
}

impl CrmServeBuilder {
    /// Listen address (default `127.0.0.1:0`: a free port, read from the ready line).
    #[must_use]
    pub fn listen(mut self, addr: &str) -> Self {
        addr.clone_into(&mut self.listen);
        self
    }

    /// Principals written to `<dir>/tokens.toml`, passed as `--tokens-file`.
    #[must_use]
    pub fn principals(mut self, principals: &[Principal]) -> Self {
        self.principals = principals.to_vec();
        self
    }

    /// An existing tokens file instead (with principals, those are written instead).
    #[must_use]
    pub fn tokens_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tokens_file = Some(path.into());
        self
    }

    /// The service's `--data-dir` (default `<dir>/data`).
    #[must_use]
    pub fn data_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.data = Some(path.into());
        self
    }

    /// More arguments for `crm serve`.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `RUST_LOG` of the child (default `warn`).
    #[must_use]
    pub fn log(mut self, filter: &str) -> Self {
        filter.clone_into(&mut self.log);
        self
    }

    /// Starts the process and waits for its ready line.
    ///
    /// # Errors
    /// The binary cannot be started, the tokens file cannot be written, or the process
    /// exits before it is ready (its stderr, inherited, says why).
    pub fn start(self) -> io::Result<CrmServe> {
        std::fs::create_dir_all(&self.dir)?;
        let data = self.data.unwrap_or_else(|| self.dir.join("data"));
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .args(["--listen", &self.listen])
            .arg("--data-dir")
            .arg(&data);
        let tokens = if self.principals.is_empty() {
            self.tokens_file
        } else {
            let tokens = self.dir.join("tokens.toml");
            std::fs::write(&tokens, tokens_toml(&self.principals))?;
            Some(tokens)
        };
        if let Some(tokens) = tokens {
            cmd.arg("--tokens-file").arg(tokens);
        }
        let mut child = cmd
            .args(&self.args)
            .env("RUST_LOG", &self.log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.bin.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        let mut dev_token = None;
        let dev = self.args.iter().any(|a| a == "--dev");
        for line in lines.by_ref() {
            let line = line?;
            if let Some(a) = line.strip_prefix(READY_PREFIX) {
                addr = Some(a.to_owned());
                if !dev {
                    break;
                }
            } else if let Some(t) = line.strip_prefix(DEV_TOKEN_PREFIX) {
                dev_token = Some(t.to_owned());
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let Some(addr) = addr else {
            let status = child.wait()?;
            return Err(io::Error::other(format!(
                "crm serve exited ({status}) before it was ready"
            )));
        };
        Ok(CrmServe {
            child,
            addr,
            dev_token,
            data,
            principals: self.principals,
        })
    }
}

/// A running `crm serve`. Dropping it stops it (SIGTERM, SIGKILL after 10 s), so its
/// embedded nats-server stops too.
#[derive(Debug)]
pub struct CrmServe {
    child: Child,
    addr: String,
    dev_token: Option<String>,
    data: PathBuf,
    principals: Vec<Principal>,
}

impl CrmServe {
    /// `crm serve` from `bin`, with its data in `<dir>/data` and its tokens file in `dir`.
    pub fn builder(bin: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> CrmServeBuilder {
        CrmServeBuilder {
            bin: bin.into(),
            listen: "127.0.0.1:0".into(),
            dir: dir.into(),
            data: None,
            tokens_file: None,
            principals: Vec::new(),
            args: Vec::new(),
            log: "warn".into(),
        }
    }

    /// `host:port` from the ready line.
    #[must_use]
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://host:port`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin token `--dev` printed.
    #[must_use]
    pub fn dev_token(&self) -> Option<&str> {
        self.dev_token.as_deref()
    }

    /// The service's `--data-dir`.
    #[must_use]
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The principal named `name` of the tokens file.
    ///
    /// # Panics
    /// If there is none.
    #[must_use]
    pub fn principal(&self, name: &str) -> &Principal {
        self.principals
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no principal {name}"))
    }

    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"TERM"`, `"KILL"`, `"STOP"`, ...) with `kill(1)`.
    ///
    /// # Errors
    /// If `kill` cannot be run or fails (the process is gone).
    pub fn signal(&self, signal: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -{signal} failed ({status})"
            )))
        }
    }

    /// Whether it exited, and how (reaps it).
    ///
    /// # Errors
    /// As [`Child::try_wait`].
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// SIGKILL (a crash) and reap.
    ///
    /// # Errors
    /// As [`Child::kill`].
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }

    /// SIGTERM, then waits up to `timeout` for the exit without blocking the async
    /// runtime (the caller's client connections must be able to close meanwhile).
    ///
    /// # Errors
    /// If the signal fails, or it has not exited within `timeout`.
    pub async fn stop(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.signal("TERM")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("crm serve did not exit within {timeout:?} of SIGTERM"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The highest resident set size so far (`VmHWM`), MiB; 0 when unknown.
    #[must_use]
    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib_of(self.child.id())
    }
}

/// The highest resident set size of process `pid` so far (`VmHWM`), MiB; 0 when unknown
/// (e.g. it has exited).
#[must_use]
pub fn peak_rss_mib_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

impl Drop for CrmServe {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if self.signal("TERM").is_ok() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_file_holds_hashes_not_tokens() {
        let p = Principal::new("ops", "user", &["admin", "auditor"], "s3cret");
        let file = tokens_toml(&[p]);
        assert!(!file.contains("s3cret"));
        assert!(file.contains(&hex(&Sha256::digest(b"s3cret"))));
        assert!(file.contains("roles = [\"admin\", \"auditor\"]"));
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(random_token("a"), random_token("a"));
    }
}
