//! `crm-datagen`: generate a realistic data set, write it to files, or stream it into a
//! running `crm serve` through the bulk-ingest RPC.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use crm_datagen::{Dataset, Params, file, generate, ingest};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a data set and write it to a directory (commands.pb, params.json,
    /// truth.jsonl).
    Generate {
        #[command(flatten)]
        shape: Shape,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Stream a data set (generated now, or read with --from) into `crm serve`.
    Ingest {
        #[command(flatten)]
        shape: Shape,
        /// Read the data set written by `generate` instead of generating one.
        #[arg(long, conflicts_with_all = ["params", "customers", "seed", "days", "start"])]
        from: Option<PathBuf>,
        /// The service's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:50051", env = "CRM_ADDR")]
        addr: String,
        /// A bearer token with the importer (or admin) role.
        #[arg(long, env = "CRM_TOKEN")]
        token: String,
    },
}

#[derive(Args)]
struct Shape {
    /// Generator parameters from a JSON file: a data set's `params.json` (to generate it
    /// again, or a variant of it after editing) or the parameters alone. The flags below
    /// override it.
    #[arg(long, value_name = "FILE")]
    params: Option<PathBuf>,
    /// Customers [default: 2000].
    #[arg(long)]
    customers: Option<usize>,
    /// Random seed: the same seed and shape give the same commands [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Length of the period in days.
    #[arg(long)]
    days: Option<u32>,
    /// Start of the period (YYYY-MM-DD, UTC) [default: 2024-11-01].
    #[arg(long)]
    start: Option<String>,
}

impl Shape {
    fn params(&self) -> anyhow::Result<Params> {
        let mut p = match &self.params {
            Some(path) => read_params(path)?,
            None => Params::new(42, 2_000),
        };
        if let Some(customers) = self.customers {
            p.customers = customers;
        }
        if let Some(seed) = self.seed {
            p.seed = seed;
        }
        if let Some(days) = self.days {
            p.days = days;
        }
        if let Some(start) = &self.start {
            p.start = parse_date(start).with_context(|| format!("--start {start}"))?;
        }
        Ok(p)
    }
}

/// Parameters from `path`: a data set's manifest (`params.json`) or bare parameters.
fn read_params(path: &std::path::Path) -> anyhow::Result<Params> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --params {}", path.display()))?;
    if let Ok(manifest) = serde_json::from_str::<file::Manifest>(&text) {
        return Ok(manifest.params);
    }
    serde_json::from_str::<Params>(&text).with_context(|| {
        format!(
            "--params {}: neither a data set's params.json nor generator parameters",
            path.display()
        )
    })
}

/// Midnight UTC of a `YYYY-MM-DD` date, in microseconds.
fn parse_date(s: &str) -> anyhow::Result<i64> {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        bail!("expected YYYY-MM-DD");
    };
    let (y, m, d): (i64, i64, i64) = (y.parse()?, m.parse()?, d.parse()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        bail!("expected YYYY-MM-DD");
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * crm_datagen::DAY)
}

fn generate_with_progress(params: &Params) -> anyhow::Result<Dataset> {
    if let Some(problem) =
        crm_datagen::available_memory().and_then(|free| params.memory_problem(free))
    {
        bail!("{problem}");
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!("generating {} customers", params.customers));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let started = std::time::Instant::now();
    let dataset = generate(params)?;
    spinner.finish_and_clear();
    let s = &dataset.summary;
    println!(
        "generated {} commands for {} customers ({} orders, {} returns, {} interactions, {} tickets, {} opportunities, {} leads, {} campaigns, {} campaign responses, {} relationships) in {:.1}s",
        s.commands,
        s.customers,
        s.orders,
        s.returns,
        s.interactions,
        s.tickets,
        s.opportunities,
        s.leads,
        s.campaigns,
        s.campaign_responses,
        s.relationships,
        started.elapsed().as_secs_f64()
    );
    Ok(dataset)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Generate { shape, out } => {
            let dataset = generate_with_progress(&shape.params()?)?;
            file::write(&dataset, &out)?;
            println!("wrote {}", out.display());
        }
        Cmd::Ingest {
            shape,
            from,
            addr,
            token,
        } => {
            let channel = tonic::transport::Channel::from_shared(addr.clone())?
                .connect()
                .await
                .with_context(|| format!("cannot connect to {addr}"))?;
            let report = match from {
                Some(dir) => {
                    let total = file::manifest(&dir)?.summary.commands;
                    run_ingest(channel, &token, total, file::requests(&dir)?).await?
                }
                None => {
                    let dataset = std::sync::Arc::new(generate_with_progress(&shape.params()?)?);
                    let total = dataset.summary.commands;
                    let requests = std::sync::Arc::clone(&dataset)
                        .shared_requests()
                        .map(Ok::<_, String>);
                    let report = run_ingest(channel, &token, total, requests).await?;
                    for f in report.failures.iter().take(5) {
                        if let Some(p) = usize::try_from(f.sequence)
                            .ok()
                            .and_then(|i| dataset.commands.get(i))
                        {
                            println!(
                                "  #{} refused: {}",
                                f.sequence,
                                crm_datagen::command_name(&p.command())
                            );
                        }
                    }
                    for &seq in report.noops.iter().take(10) {
                        if let Some(p) = usize::try_from(seq)
                            .ok()
                            .and_then(|i| dataset.commands.get(i))
                        {
                            println!("  #{seq} changed nothing: {:?}", p.command());
                        }
                    }
                    report
                }
            };
            if report.failed > 0 {
                bail!("{} commands were refused", report.failed);
            }
        }
    }
    Ok(())
}

async fn run_ingest<I, E>(
    channel: tonic::transport::Channel,
    token: &str,
    total: u64,
    requests: I,
) -> anyhow::Result<ingest::Report>
where
    I: Iterator<Item = Result<crm_proto::v1::IngestRequest, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "ingest {bar:40} {pos}/{len} commands, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = ingest::ingest(channel, token, requests, |n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    print_report(&report);
    Ok(report)
}

fn print_report(r: &ingest::Report) {
    #[allow(clippy::cast_precision_loss)]
    let rate = r.ok as f64 / r.elapsed.as_secs_f64().max(1e-9);
    println!(
        "ingested {} commands in {:.1}s ({rate:.0} commands/s): {} accepted ({} already present, {} changed nothing), {} refused; last position {}",
        r.sent,
        r.elapsed.as_secs_f64(),
        r.ok,
        r.repeated,
        r.noop,
        r.failed,
        r.max_position
    );
    if r.reconnects > 0 || r.unknown > 0 {
        println!(
            "  the stream broke {} time(s) (the service restarted or went away): reconnected and sent {} unanswered command(s) again by command id; {} without a command id have an unknown outcome",
            r.reconnects, r.resent, r.unknown
        );
    }
    for f in r.failures.iter().take(10) {
        println!("  #{}: code {}: {}", f.sequence, f.code, f.message);
    }
}
