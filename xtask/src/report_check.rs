//! `cargo xtask report-check`: the analyst's HTML report rendered in a real headless
//! browser. A small business is loaded by `crm-demo` (which writes the report with the
//! analyst's token), then Playwright drives Debian's Chromium over the page: a full-page
//! screenshot, and a failure on any console error or warning, uncaught exception, failed
//! load or request beyond the file. Not part of `cargo xtask test` (it needs Chromium
//! and Node.js, installed here when missing).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{ENV_SERVER, ensure_nats_server, find_on_path, release_tools, step, workspace_root};

/// Pinned: the Playwright version checked against Debian's Chromium here.
const PLAYWRIGHT: &str = "playwright-core@1.64.1";
const SCRIPT: &str = include_str!("../assets/report-check.js");

pub(crate) fn report_check(demo_args: &[OsString]) -> Result<()> {
    let root = workspace_root();
    let chromium = ensure_chromium()?;
    let node = find_on_path("node")
        .context("report-check needs Node.js and npm (Debian: apt-get install nodejs npm)")?;
    let server = ensure_nats_server()?;
    let (target, release) = release_tools(&root)?;
    let dir = target.join("report-check");
    std::fs::create_dir_all(&dir)?;
    ensure_playwright(&dir)?;

    step("crm-demo (a small business; its analyst pass writes the report)");
    let log = dir.join("demo.log");
    let status = Command::new(release.join("crm-demo"))
        .current_dir(&root)
        .arg("--crm-bin")
        .arg(release.join("crm"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--listen",
            "127.0.0.1:50071",
            "--customers",
            "1000",
            "--days",
            "365",
        ])
        .args(demo_args)
        .env(ENV_SERVER, &server)
        .stdout(std::fs::File::create(&log)?)
        .status()
        .context("could not run crm-demo")?;
    if !status.success() {
        bail!(
            "crm-demo failed ({status}); its output is in {}",
            log.display()
        );
    }
    // crm-demo keeps its service's data in `<data-dir>/data` and the analyst's files beside it.
    let report = dir.join("data").join("analyst").join("report.html");
    let screenshot = dir.join("report.png");

    step("headless Chromium over the report");
    std::fs::write(dir.join("report-check.js"), SCRIPT)?;
    let out = Command::new(node)
        .current_dir(&dir)
        .arg("report-check.js")
        .arg(&report)
        .arg(&screenshot)
        .arg(&chromium)
        .stderr(Stdio::inherit())
        .output()
        .context("could not run node")?;
    let seen = String::from_utf8_lossy(&out.stdout);
    println!("{}", seen.trim());
    if !out.status.success() {
        bail!(
            "the report did not render cleanly ({}): {}",
            out.status,
            seen.trim()
        );
    }
    println!(
        "report {} rendered without console errors or outside requests; screenshot {}",
        report.display(),
        screenshot.display()
    );
    Ok(())
}

/// Debian's Chromium, installed with apt-get when missing.
fn ensure_chromium() -> Result<PathBuf> {
    let found = || {
        find_on_path("chromium").or_else(|| {
            let p = Path::new("/usr/bin/chromium");
            p.exists().then(|| p.to_path_buf())
        })
    };
    if let Some(path) = found() {
        return Ok(path);
    }
    step("apt-get install -y chromium");
    let status = Command::new("apt-get")
        .args(["install", "-y", "chromium"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("Chromium is missing and apt-get could not run: install Debian's chromium")?;
    if !status.success() {
        bail!("apt-get install chromium failed ({status}): install Debian's chromium");
    }
    found().context("apt-get installed chromium but it is not on PATH")
}

/// `playwright-core` (the driver only: it uses the Chromium above) in `dir/node_modules`.
fn ensure_playwright(dir: &Path) -> Result<()> {
    if dir.join("node_modules").join("playwright-core").exists() {
        return Ok(());
    }
    step(&format!("npm install {PLAYWRIGHT}"));
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(dir)
        .arg(PLAYWRIGHT)
        .status()
        .context("could not run npm")?;
    if !status.success() {
        bail!("npm install {PLAYWRIGHT} failed ({status})");
    }
    Ok(())
}
