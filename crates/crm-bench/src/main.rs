//! `crm-bench`: see the library. `cargo xtask bench` builds and runs it.

use std::path::PathBuf;

use clap::Parser;
use crm_bench::{BenchConfig, run, table};

/// The same allocator as `crm` (the offline rebuild runs in this process).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "The project's figures next to raw JetStream baselines of the same run"
)]
struct Cli {
    /// The `crm` binary (release build).
    #[arg(long, default_value = "target/release/crm")]
    crm_bin: PathBuf,
    /// The `crm-analyst` binary (release build) for the export phase; default: beside
    /// `--crm-bin`.
    #[arg(long)]
    analyst_bin: Option<PathBuf>,
    /// Customers of the generated business loaded through bulk ingest.
    #[arg(long)]
    customers: Option<usize>,
    /// Unary commands (and raw publishes) per mode.
    #[arg(long)]
    unary: Option<usize>,
    /// Seconds of each fixed-rate phase.
    #[arg(long)]
    seconds: Option<u64>,
    /// The large run: 1,000,000 customers (~21M commands; hours on 2 cores).
    #[arg(long)]
    full: bool,
    /// Phases to run, comma-separated (churn, export, raw, unary, lag, queries, rebuild,
    /// bluegreen, soak); default all but soak. The generated business is ingested first for every
    /// phase but soak, which runs on its own servers.
    #[arg(long, value_parser = crm_bench::Phase::parse_list)]
    phases: Option<std::collections::BTreeSet<crm_bench::Phase>>,
    /// FunnelService queries per second of the queries phase.
    #[arg(long)]
    funnel_query_rate: Option<u64>,
    /// Write-back cache of a projection build, MiB (as `crm serve --fold-cache-mib`).
    #[arg(long)]
    fold_cache_mib: Option<u64>,
    /// Changed MiB that make a catching-up build write back (`crm serve --fold-flush-mib`).
    #[arg(long)]
    fold_flush_mib: Option<u64>,
    /// Seconds of load with faults of the soak phase (`--phases soak`).
    #[arg(long)]
    soak_seconds: Option<u64>,
    /// Seconds between two SIGKILLs of the soak phase.
    #[arg(long)]
    soak_kill_every: Option<u64>,
    /// Customers of the business the soak phase streams through Ingest.
    #[arg(long)]
    soak_customers: Option<usize>,
    /// Where the figures go as JSON.
    #[arg(long, default_value = "target/bench/latest.json")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let d = BenchConfig::default();
    let cfg = BenchConfig {
        analyst_bin: cli
            .analyst_bin
            .unwrap_or_else(|| cli.crm_bin.with_file_name("crm-analyst")),
        crm_bin: cli.crm_bin,
        customers: cli
            .customers
            .unwrap_or(if cli.full { 1_000_000 } else { d.customers }),
        unary: cli.unary.unwrap_or(d.unary),
        seconds: cli.seconds.unwrap_or(d.seconds),
        out_json: Some(cli.out.clone()),
        phases: cli.phases.unwrap_or_else(|| d.phases.clone()),
        funnel_query_rate: cli.funnel_query_rate.unwrap_or(d.funnel_query_rate),
        fold_cache_mib: cli.fold_cache_mib.unwrap_or(d.fold_cache_mib),
        fold_flush_mib: cli.fold_flush_mib.unwrap_or(d.fold_flush_mib),
        soak: crm_bench::SoakConfig {
            seconds: cli.soak_seconds.unwrap_or(d.soak.seconds),
            kill_every: cli.soak_kill_every.unwrap_or(d.soak.kill_every),
            customers: cli.soak_customers.unwrap_or(d.soak.customers),
            ..d.soak.clone()
        },
        ..d
    };
    let started = std::time::Instant::now();
    let report = run(&cfg, |line| {
        println!("[{:>5.0}s] {line}", started.elapsed().as_secs_f64());
    })
    .await;
    crm_bench::remove_master_key_file();
    let report = report?;
    println!("\n{}", table(&report));
    println!(
        "figures written to {} ({:.0}s in all)",
        cli.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
