//! Finding and version-checking a `nats-server` binary.
//!
//! [`locate`] picks the binary, in this order:
//! 1. an explicit path (`--nats-server-bin`, `nats_server_bin` in the config file);
//! 2. the `CRM_NATS_SERVER` environment variable;
//! 3. the pinned download next to the running executable:
//!    `<dir of current exe>/../nats-server/2.15.1/nats-server` (that is
//!    `target/nats-server/2.15.1/nats-server` next to `target/<profile>/crm`), and one level up
//!    again for executables in `target/<profile>/deps` or `examples` (tests, examples);
//! 4. `nats-server` on `PATH`.
//!
//! An explicit path or `CRM_NATS_SERVER` that does not exist is an error: it never silently
//! falls back to another binary. [`check`] runs `<binary> --version` and refuses versions below
//! [`MIN_VERSION`] (2.14.4: atomic batches and the fixes the event log relies on).

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Environment variable naming the nats-server binary to use.
pub const ENV_NATS_SERVER: &str = "CRM_NATS_SERVER";
/// The nats-server version the project pins (fetched by `cargo xtask nats-server`).
pub const PINNED_VERSION: &str = "2.15.1";
/// The oldest nats-server the project accepts.
pub const MIN_VERSION: Version = Version::new(2, 14, 4);

/// How long `nats-server --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// `ETXTBSY`: the binary is open for writing somewhere (e.g. it was just written and a
/// concurrent fork still holds the descriptor). Retried a few times.
const ETXTBSY: i32 = 26;

/// A nats-server version, `major.minor.patch` (pre-release suffixes are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    /// `major.minor.patch`.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// The first `vX.Y.Z` or `X.Y.Z` in `text` (e.g. `nats-server: v2.15.1`).
    pub fn parse(text: &str) -> Option<Version> {
        text.split(|c: char| c.is_whitespace() || c == ':' || c == ',')
            .find_map(|word| {
                let word = word.strip_prefix('v').unwrap_or(word);
                // Drop a pre-release or build suffix: 2.14.4-RC.2, 2.15.1+abc.
                let core = word.split(['-', '+']).next()?;
                let mut parts = core.split('.');
                let major = parts.next()?.parse().ok()?;
                let minor = parts.next()?.parse().ok()?;
                let patch = parts.next()?.parse().ok()?;
                parts
                    .next()
                    .is_none()
                    .then_some(Version::new(major, minor, patch))
            })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Where a binary was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinarySource {
    /// Given explicitly (flag or config file).
    Explicit,
    /// From `CRM_NATS_SERVER`.
    Env,
    /// The pinned download next to the running executable.
    BesideExecutable,
    /// `nats-server` on `PATH`.
    Path,
}

impl fmt::Display for BinarySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinarySource::Explicit => "nats_server_bin",
            BinarySource::Env => ENV_NATS_SERVER,
            BinarySource::BesideExecutable => "the pinned download next to the executable",
            BinarySource::Path => "PATH",
        })
    }
}

/// A located and version-checked nats-server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsBinary {
    /// Absolute path (canonicalised where possible).
    pub path: PathBuf,
    pub version: Version,
    pub source: BinarySource,
}

/// Why no usable nats-server binary was found.
#[derive(Debug, thiserror::Error)]
pub enum NatsBinaryError {
    #[error("the nats-server binary {path} (from {from}) does not exist or is not a file")]
    Missing { path: PathBuf, from: BinarySource },
    #[error(
        "no nats-server binary found (looked at: {searched}); run `cargo xtask nats-server` to \
         fetch the pinned {PINNED_VERSION}, or set {ENV_NATS_SERVER} or --nats-server-bin to a \
         nats-server >= {MIN_VERSION}"
    )]
    NotFound { searched: String },
    #[error("could not run `{} --version`: {source}", path.display())]
    Run {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{} --version` did not finish within {timeout:?}", path.display())]
    Timeout { path: PathBuf, timeout: Duration },
    #[error(
        "could not read a version from `{} --version` (exit status {status}, output {output:?})",
        path.display()
    )]
    NoVersion {
        path: PathBuf,
        status: String,
        output: String,
    },
    #[error(
        "the nats-server at {} is version {version}, but at least {MIN_VERSION} is required \
         (the project pins {PINNED_VERSION}; run `cargo xtask nats-server` to fetch it)",
        path.display()
    )]
    TooOld { path: PathBuf, version: Version },
}

/// Locate a nats-server (see the module docs for the order) and check its version.
///
/// # Errors
/// [`NatsBinaryError`] naming the path and what is wrong with it.
pub fn find(explicit: Option<&Path>) -> Result<NatsBinary, NatsBinaryError> {
    let (path, source) = locate(explicit)?;
    let version = check(&path)?;
    Ok(NatsBinary {
        path,
        version,
        source,
    })
}

/// Locate a nats-server without running it (see the module docs for the order).
///
/// # Errors
/// [`NatsBinaryError::Missing`] if an explicit path or `CRM_NATS_SERVER` names a file that does
/// not exist, [`NatsBinaryError::NotFound`] if no candidate exists.
pub fn locate(explicit: Option<&Path>) -> Result<(PathBuf, BinarySource), NatsBinaryError> {
    locate_in(
        explicit,
        std::env::var_os(ENV_NATS_SERVER),
        std::env::current_exe().ok(),
        std::env::var_os("PATH"),
    )
}

/// [`locate`] with its inputs given (for tests).
fn locate_in(
    explicit: Option<&Path>,
    env: Option<OsString>,
    current_exe: Option<PathBuf>,
    path_var: Option<OsString>,
) -> Result<(PathBuf, BinarySource), NatsBinaryError> {
    let given = explicit
        .map(|p| (p.to_path_buf(), BinarySource::Explicit))
        .or_else(|| {
            env.filter(|v| !v.is_empty())
                .map(|v| (PathBuf::from(v), BinarySource::Env))
        });
    if let Some((path, source)) = given {
        return if path.is_file() {
            Ok((absolute(&path), source))
        } else {
            Err(NatsBinaryError::Missing { path, from: source })
        };
    }
    let mut searched = Vec::new();
    if let Some(exe_dir) = current_exe.as_deref().and_then(Path::parent) {
        // target/<profile>/crm -> target/nats-server/..., and target/<profile>/deps/<test> ->
        // target/nats-server/... for test and example executables.
        for up in [exe_dir.parent(), exe_dir.parent().and_then(Path::parent)]
            .into_iter()
            .flatten()
        {
            let candidate = up
                .join("nats-server")
                .join(PINNED_VERSION)
                .join("nats-server");
            if candidate.is_file() {
                return Ok((absolute(&candidate), BinarySource::BesideExecutable));
            }
            searched.push(candidate.display().to_string());
        }
    }
    if let Some(path_var) = path_var {
        for dir in std::env::split_paths(&path_var) {
            let candidate = dir.join("nats-server");
            if is_executable(&candidate) {
                return Ok((absolute(&candidate), BinarySource::Path));
            }
        }
    }
    searched.push("nats-server on PATH".to_owned());
    Err(NatsBinaryError::NotFound {
        searched: searched.join(", "),
    })
}

/// Run `<path> --version` and return the version if it is at least [`MIN_VERSION`].
///
/// # Errors
/// [`NatsBinaryError::TooOld`] naming the path and the version; other variants when the binary
/// cannot be run or prints no version.
pub fn check(path: &Path) -> Result<Version, NatsBinaryError> {
    let version = version_of(path)?;
    if version < MIN_VERSION {
        return Err(NatsBinaryError::TooOld {
            path: path.to_path_buf(),
            version,
        });
    }
    Ok(version)
}

/// Run `<path> --version` and parse its output (`nats-server: v2.15.1`).
///
/// # Errors
/// If the binary cannot be run, takes longer than 10 s, or prints no version.
pub fn version_of(path: &Path) -> Result<Version, NatsBinaryError> {
    let run_err = |source| NatsBinaryError::Run {
        path: path.to_path_buf(),
        source,
    };
    let mut attempt = 0;
    let mut child = loop {
        attempt += 1;
        match Command::new(path)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => break child,
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && attempt < 5 => {
                thread::sleep(Duration::from_millis(20 * attempt));
            }
            Err(e) => return Err(run_err(e)),
        }
    };
    let deadline = Instant::now() + VERSION_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(run_err)? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NatsBinaryError::Timeout {
                path: path.to_path_buf(),
                timeout: VERSION_TIMEOUT,
            });
        }
        thread::sleep(Duration::from_millis(5));
    };
    // `--version` prints one short line: it fits in the pipe buffer, so reading after exit
    // cannot deadlock.
    let mut output = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut output);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut output);
    }
    match Version::parse(&output) {
        Some(version) if status.success() => Ok(version),
        _ => Err(NatsBinaryError::NoVersion {
            path: path.to_path_buf(),
            status: status.to_string(),
            output: output.trim().to_owned(),
        }),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt as _;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn parses_versions() {
        assert_eq!(
            Version::parse("nats-server: v2.15.1\n"),
            Some(Version::new(2, 15, 1))
        );
        assert_eq!(
            Version::parse("nats-server: v2.9.10"),
            Some(Version::new(2, 9, 10))
        );
        assert_eq!(
            Version::parse("nats-server: v2.14.4-RC.2"),
            Some(Version::new(2, 14, 4))
        );
        assert_eq!(Version::parse("2.12.0"), Some(Version::new(2, 12, 0)));
        assert_eq!(Version::parse("garbage 1.2"), None);
        assert!(Version::new(2, 9, 10) < MIN_VERSION);
        assert!(Version::new(2, 14, 4) >= MIN_VERSION);
        assert!(Version::new(2, 15, 1) > MIN_VERSION);
        assert_eq!(MIN_VERSION.to_string(), "2.14.4");
    }

    #[test]
    fn too_old_binary_is_refused_naming_path_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let old = script(dir.path(), "nats-server", "echo 'nats-server: v2.9.10'");
        let err = check(&old).unwrap_err();
        assert!(matches!(err, NatsBinaryError::TooOld { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&old.display().to_string()), "{msg}");
        assert!(msg.contains("2.9.10") && msg.contains("2.14.4"), "{msg}");

        let new = script(dir.path(), "new", "echo 'nats-server: v2.14.4'");
        assert_eq!(check(&new).unwrap(), Version::new(2, 14, 4));

        let silent = script(dir.path(), "silent", "echo hello");
        let err = check(&silent).unwrap_err();
        assert!(matches!(err, NatsBinaryError::NoVersion { .. }), "{err}");
    }

    #[test]
    fn locate_order_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // target/debug/crm and target/nats-server/2.15.1/nats-server
        let pinned_dir = root.join("target/nats-server").join(PINNED_VERSION);
        fs::create_dir_all(&pinned_dir).unwrap();
        fs::create_dir_all(root.join("target/debug/deps")).unwrap();
        let pinned = script(&pinned_dir, "nats-server", "echo 'nats-server: v2.15.1'");
        let exe = root.join("target/debug/crm");
        let test_exe = root.join("target/debug/deps/crm_server-0123");
        let on_path_dir = root.join("bin");
        fs::create_dir_all(&on_path_dir).unwrap();
        let on_path = script(&on_path_dir, "nats-server", "echo 'nats-server: v2.15.1'");
        let path_var = std::env::join_paths([root.join("nowhere"), on_path_dir]).ok();
        let explicit = script(root, "explicit", "echo 'nats-server: v2.15.1'");
        let canon = |p: &Path| fs::canonicalize(p).unwrap();

        let got = locate_in(
            Some(&explicit),
            Some(on_path.clone().into()),
            Some(exe.clone()),
            path_var.clone(),
        )
        .unwrap();
        assert_eq!(got, (canon(&explicit), BinarySource::Explicit));

        let got = locate_in(None, Some(on_path.clone().into()), Some(exe.clone()), None).unwrap();
        assert_eq!(got, (canon(&on_path), BinarySource::Env));

        let got = locate_in(None, Some("".into()), Some(exe.clone()), None).unwrap();
        assert_eq!(got, (canon(&pinned), BinarySource::BesideExecutable));
        let got = locate_in(None, None, Some(test_exe), None).unwrap();
        assert_eq!(got, (canon(&pinned), BinarySource::BesideExecutable));

        let elsewhere = root.join("elsewhere/bin/crm");
        let got = locate_in(None, None, Some(elsewhere.clone()), path_var).unwrap();
        assert_eq!(got, (canon(&on_path), BinarySource::Path));

        let err = locate_in(None, None, Some(elsewhere), None).unwrap_err();
        assert!(matches!(err, NatsBinaryError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("cargo xtask nats-server"), "{err}");

        // A named binary that does not exist is an error, not a silent fallback.
        let missing = root.join("missing");
        let err = locate_in(None, Some(missing.clone().into()), Some(exe), None).unwrap_err();
        assert!(matches!(err, NatsBinaryError::Missing { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&missing.display().to_string()) && msg.contains(ENV_NATS_SERVER),
            "{msg}"
        );
    }
}
