//! `crm-demo`: what `cargo xtask demo` runs. It starts `crm serve` (embedded nats-server,
//! a fresh data directory, importer, admin and analyst tokens) or uses a running service
//! (`--addr`, `--token`), generates a realistic business ending today, ingests it through
//! the bulk API with a progress bar, waits until the read models have applied all of it,
//! and prints what the read models say: the customer base by lifecycle and value class,
//! the most valuable customers, a few customers' 360° views with their latest events (and
//! one as an analyst sees it), consent at a campaign send, a blue/green rebuild, a
//! stray message on a customer's subject set aside with the quarantine, and a customer's
//! data exported (subject access) and then forgotten (crypto-shredding). Then it stops
//! the service, or with `--serve` keeps it running and prints how to connect.

mod analyst;
mod audit;
mod churn;
mod funnel;
mod marketing;
mod privacy;
mod quarantine;
mod show;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use crm_testkit::{CrmServe, Principal};
use tonic::transport::Channel;

#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// Use this running service instead of starting one.
    #[arg(long, requires = "token")]
    pub addr: Option<String>,
    /// With --addr: a bearer token with the admin role.
    #[arg(long, env = "CRM_TOKEN")]
    pub token: Option<String>,
    /// The `crm` binary to start.
    #[arg(long, default_value = "target/release/crm", conflicts_with = "addr")]
    pub crm_bin: PathBuf,
    /// Data directory of the started service (emptied first).
    #[arg(long, default_value = "target/demo", conflicts_with = "addr")]
    pub data_dir: PathBuf,
    /// gRPC address of the started service.
    #[arg(long, default_value = "127.0.0.1:50051", conflicts_with = "addr")]
    pub listen: String,
    /// Keep the started service running after the demo (until Ctrl-C).
    #[arg(long, conflicts_with = "addr")]
    pub serve: bool,
    /// Customers in the generated business.
    #[arg(long, default_value_t = 2_000)]
    pub customers: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Length of the period, ending today, in days.
    #[arg(long, default_value_t = 730)]
    pub days: u32,
}

/// The started service and its principals: `demo-importer` (loads the history,
/// attributed as an import), `demo-admin` (reads everything, operates) and `demo-analyst`
/// (reads without personal data).
struct Started {
    process: CrmServe,
    importer: Principal,
    admin: Principal,
    analyst: Principal,
}

fn start(cli: &Cli) -> anyhow::Result<Started> {
    if cli.data_dir.exists() {
        std::fs::remove_dir_all(&cli.data_dir)
            .with_context(|| format!("cannot empty {}", cli.data_dir.display()))?;
    }
    let importer = Principal::service("demo-importer", &["importer"]);
    let admin = Principal::service("demo-admin", &["admin"]);
    let analyst = Principal::service("demo-analyst", &["analyst"]);
    let process = CrmServe::builder(&cli.crm_bin, &cli.data_dir)
        .listen(&cli.listen)
        .principals(&[importer.clone(), admin.clone(), analyst.clone()])
        .log(&std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .start()
        .with_context(|| format!("cannot start {}", cli.crm_bin.display()))?;
    Ok(Started {
        process,
        importer,
        admin,
        analyst,
    })
}

/// Runs the demo.
///
/// # Errors
/// The service cannot be started or reached, or a step of the demo fails.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut started = match (&cli.addr, &cli.token) {
        (Some(_), Some(_)) => None,
        _ => Some(start(&cli)?),
    };
    let (addr, import_token, read_token, analyst_token) = match (&started, &cli.addr, &cli.token) {
        (Some(s), ..) => {
            println!(
                "started crm serve on {} (data in {})",
                s.process.url(),
                cli.data_dir.display()
            );
            show::print_nats_users(&s.process.data().join("nats"));
            (
                s.process.url(),
                s.importer.token.clone(),
                s.admin.token.clone(),
                Some(s.analyst.token.clone()),
            )
        }
        (None, Some(addr), Some(token)) => (addr.clone(), token.clone(), token.clone(), None),
        (None, ..) => unreachable!("clap requires --token with --addr"),
    };
    let channel = Channel::from_shared(addr.clone())?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let picked = show::show(
        &cli,
        channel.clone(),
        &import_token,
        &read_token,
        analyst_token.as_deref(),
    )
    .await?;
    let mut offline = None;
    match (&started, picked.first()) {
        (Some(s), Some(customer)) => {
            quarantine::show(channel.clone(), &read_token, s.process.data(), customer).await?;
            audit::show(s.process.data(), customer).await?;
            // The customer won through a lead (the last pick), forgotten.
            if let Some(other) = picked.last().filter(|c| *c != customer) {
                privacy::show(channel.clone(), &read_token, s.process.data(), other).await?;
            }
            offline = Some(
                analyst::while_serving(s.process.data(), channel.clone(), &s.analyst.token).await?,
            );
        }
        _ => println!(
            "\n== Quarantine: skipped (it needs the service's NATS credentials: run without --addr)"
        ),
    }
    if let Some(s) = started.as_mut() {
        if cli.serve {
            println!(
                "\n== Serving on {addr} until Ctrl-C\n  admin token:    {read_token}\n  importer token: {import_token}\n  try: grpcurl -plaintext -H 'authorization: Bearer {read_token}' {} list",
                addr.trim_start_matches("http://")
            );
            tokio::signal::ctrl_c().await?;
        }
        println!("stopping crm serve");
        s.process
            .stop(std::time::Duration::from_secs(30))
            .await
            .context("stopping crm serve")?;
        if let Some(offline) = &offline {
            analyst::after_stop(s.process.data(), offline)?;
        }
    }
    Ok(())
}
