//! The `export` phase: `crm-analyst export` (the binary, as an analyst runs it) of the
//! whole stream to each format, `crm-analyst export-customers` of the 360 model and
//! `export-funnel` of the funnel's deals and stage stays (both models built offline
//! first), and `export-customers --addr` through the running service, without personal data: rows/s and the tool's peak RSS, which
//! must not grow with the data.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

/// One export's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ExportRun {
    /// `events` or `customers`.
    pub what: &'static str,
    pub format: &'static str,
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// The tool's highest resident set size, sampled every 20 ms.
    pub peak_rss_mib: f64,
}

/// Exports the stream at `nats_url` to each format in a temporary directory, then builds
/// the 360 model offline and exports its customers to each format.
///
/// # Errors
/// The tool failing or not answering in JSON, the offline build.
pub async fn run(
    analyst_bin: &Path,
    nats_url: &str,
    (addr, token): (&str, &str),
    log: &dyn Fn(String),
) -> anyhow::Result<Vec<ExportRun>> {
    let dir = tempfile::tempdir()?;
    let mut runs = Vec::new();
    for format in ["jsonl", "csv", "parquet"] {
        let out = dir.path().join(format!("events.{format}"));
        let args = ["export", "--format", format, "--nats-url", nats_url];
        runs.push(one(analyst_bin, "events", format, &args, &out, log).await?);
    }
    let source = crm_audit::connect::Source::connect(&crm_audit::connect::Target {
        nats_url: nats_url.to_owned(),
        reader_seed: None,
        stream: "CRM_EVENTS".into(),
        prefix: "crm.v1".into(),
        master_key_file: Some(crate::bench_master_key_file()?),
    })
    .await?;
    let models = dir.path().join("read-models");
    crm_analyst::build::build(&source, crm_analyst::Named::Customer360, &models, |_, _| {}).await?;
    let models = models.to_string_lossy().into_owned();
    for format in ["jsonl", "csv", "parquet"] {
        let out = dir.path().join(format!("customers.{format}"));
        let args = [
            "export-customers",
            "--format",
            format,
            "--read-models",
            &models,
        ];
        runs.push(one(analyst_bin, "customers", format, &args, &out, log).await?);
    }
    // The same customers through the running service (GetCustomer360 each, as an
    // analyst): memory that does not grow with the model.
    for format in ["csv", "parquet"] {
        let out = dir.path().join(format!("customers-api.{format}"));
        let args = [
            "export-customers",
            "--format",
            format,
            "--addr",
            addr,
            "--token",
            token,
        ];
        runs.push(
            one(
                analyst_bin,
                "customers via the service",
                format,
                &args,
                &out,
                log,
            )
            .await?,
        );
    }
    let funnel = dir.path().join("funnel");
    crm_analyst::build::build(&source, crm_analyst::Named::Funnel, &funnel, |_, _| {}).await?;
    let funnel = funnel.to_string_lossy().into_owned();
    for (what, table) in [("deals", "deals"), ("stage stays", "stages")] {
        let out = dir.path().join(format!("{table}.parquet"));
        let args = [
            "export-funnel",
            "--table",
            table,
            "--format",
            "parquet",
            "--read-models",
            &funnel,
        ];
        runs.push(one(analyst_bin, what, "parquet", &args, &out, log).await?);
    }
    Ok(runs)
}

/// One run of the tool with `args` and `--out out`: its figures.
async fn one(
    analyst_bin: &Path,
    what: &'static str,
    format: &'static str,
    args: &[&str],
    out: &Path,
    log: &dyn Fn(String),
) -> anyhow::Result<ExportRun> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(analyst_bin)
        .arg("--json")
        .args(args)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", analyst_bin.display()))?;
    let pid = child.id().unwrap_or(0);
    let mut peak = 0.0_f64;
    let status = loop {
        peak = peak.max(crm_testkit::peak_rss_mib_of(pid));
        tokio::select! {
            s = child.wait() => break s?,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut stdout = String::new();
    if let Some(mut o) = child.stdout.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut o, &mut stdout).await?;
    }
    anyhow::ensure!(status.success(), "crm-analyst {args:?} failed ({status})");
    let done: serde_json::Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("crm-analyst answered {stdout:?}"))?;
    let rows = done["rows"].as_u64().unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let run = ExportRun {
        what,
        format,
        rows,
        bytes: done["bytes"].as_u64().unwrap_or(0),
        seconds,
        rows_per_s: rows as f64 / seconds,
        peak_rss_mib: peak,
    };
    log(format!(
        "export {what} {format}: {} rows in {:.1} s, {:.0} rows/s, {} MiB, peak RSS {:.0} MiB",
        run.rows,
        run.seconds,
        run.rows_per_s,
        run.bytes / (1024 * 1024),
        run.peak_rss_mib
    ));
    Ok(run)
}

/// The phase's table.
#[must_use]
pub fn table(runs: &[ExportRun]) -> String {
    let mut t = String::from(
        "| crm-analyst export (no personal data) | rows | rows/s | file | peak RSS | target |\n|---|---|---|---|---|---|\n",
    );
    for r in runs {
        t.push_str(&format!(
            "| {} to {} | {} | {:.0} | {:.0} MiB | {:.0} MiB | bounded (< 200 MiB) |\n",
            r.what,
            r.format,
            r.rows,
            r.rows_per_s,
            r.bytes as f64 / 1_048_576.0,
            r.peak_rss_mib
        ));
    }
    t
}
