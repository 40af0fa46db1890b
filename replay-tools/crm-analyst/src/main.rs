//! `crm-analyst`: build a projection offline from the event stream, compare two builds
//! key by key, and rebuild a projection on a running service, followed to the switch.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crm_analyst::export::{EventFilter, Format};
use crm_analyst::models::{self, FunnelTable};
use crm_analyst::{Named, build, compare, customers, export, rebuild, report};
use crm_audit::connect::{Source, Target};
use crm_churn::service::ChurnConfig;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "crm-analyst",
    version,
    about = "Analysts' tools over the CRM's read models"
)]
struct Cli {
    /// JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where the stream is, read as the read-only NATS user.
#[derive(clap::Args)]
struct StreamArgs {
    #[arg(long, env = "CRM_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The `crm-reader` nkey seed (`<data-dir>/nats/users/crm-reader.nk`): it may read
    /// the stream, not publish on it.
    #[arg(long, env = "CRM_ANALYST_READER_SEED")]
    reader_seed: Option<PathBuf>,
    /// The service's master key (`<data-dir>/keys/master.key`): opens sealed personal
    /// data for `--pii` exports and offline builds (without it they hold none).
    #[arg(long, env = "CRM_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    #[arg(long, default_value = "CRM_EVENTS")]
    stream: String,
    #[arg(long, default_value = "crm.v1")]
    subject_prefix: String,
}

impl StreamArgs {
    async fn connect(self) -> anyhow::Result<Source> {
        Ok(Source::connect(&Target {
            nats_url: self.nats_url,
            reader_seed: self.reader_seed,
            stream: self.stream,
            prefix: self.subject_prefix,
            master_key_file: self.master_key_file,
        })
        .await?)
    }
}

fn micros(rfc3339: &str) -> anyhow::Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(rfc3339)
        .with_context(|| format!("{rfc3339:?} is not an RFC 3339 time"))?
        .timestamp_micros())
}

#[derive(Subcommand)]
enum Command {
    /// Export the event stream, one row per event (envelope fields and the payload as
    /// JSON), to JSON Lines, CSV or Parquet; written to FILE.partial and renamed when
    /// complete. Without --pii, payload text that may be personal is withheld.
    Export {
        #[arg(long)]
        format: Format,
        #[arg(long)]
        out: PathBuf,
        /// Only events whose business time is at or after this (RFC 3339) ...
        #[arg(long)]
        from: Option<String>,
        /// ... and before this.
        #[arg(long)]
        to: Option<String>,
        /// Only event types starting with this (repeat for several), e.g.
        /// `customer.order`.
        #[arg(long = "type")]
        types: Vec<String>,
        /// Include personal data (names, emails, phones, addresses, free text): only for
        /// someone entitled to it (`pii.read`).
        #[arg(long)]
        pii: bool,
        #[command(flatten)]
        stream: StreamArgs,
    },
    /// Export every customer of the 360° model as GetCustomer360 renders them (lifecycle,
    /// value class, commerce, service...), from a read-model directory (an offline
    /// build, a stopped service's data directory, a copy). Without --pii the name, email
    /// and phone columns are empty.
    ExportCustomers {
        /// The read-model directory.
        #[arg(long, required_unless_present = "addr", conflicts_with = "addr")]
        read_models: Option<PathBuf>,
        /// Or a running service (with --token): each customer through GetCustomer360,
        /// personal data as the token may see it; memory does not grow with the model.
        #[arg(long, requires = "token")]
        addr: Option<String>,
        #[arg(long, env = "CRM_TOKEN")]
        token: Option<String>,
        #[arg(long)]
        format: Format,
        #[arg(long)]
        out: PathBuf,
        /// The moment time-relative figures are computed at (RFC 3339); default now.
        #[arg(long)]
        as_of: Option<String>,
        /// From a directory: include names, emails and phones (with --addr the
        /// service decides, by the token's pii.read).
        #[arg(long, conflicts_with = "addr")]
        pii: bool,
    },
    /// Export the funnel's deals (one row per opportunity, as ListDeals renders them) or
    /// their stage stays (one row per stay in a stage) as of a moment, from a read-model
    /// directory.
    ExportFunnel {
        #[arg(long)]
        read_models: PathBuf,
        #[arg(long, value_enum)]
        table: FunnelTable,
        #[arg(long)]
        format: Format,
        #[arg(long)]
        out: PathBuf,
        /// The moment (RFC 3339); default now.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Export every customer with a purchase by a moment under a stored churn model:
    /// x, t_x, T, P(alive), expected transactions, spend, CLV, value at risk, risk score,
    /// band and drivers (as GetCustomerRisk computes them), from a read-model directory.
    ExportChurn {
        #[arg(long)]
        read_models: PathBuf,
        #[arg(long)]
        format: Format,
        #[arg(long)]
        out: PathBuf,
        /// The moment (RFC 3339); default now.
        #[arg(long)]
        as_of: Option<String>,
        /// A stored model's id; default the served one.
        #[arg(long, default_value = "")]
        model: String,
        /// Horizon of the expected transactions, days.
        #[arg(long, default_value_t = 90)]
        horizon_days: u32,
        /// CLV's monthly discount rate in basis points (the service's
        /// --churn-monthly-discount-bp).
        #[arg(long, default_value_t = 100)]
        monthly_discount_bp: u32,
    },
    /// Build a projection from the stream into a directory of its own (this code's
    /// version), without touching the service. Run again, it continues.
    Build {
        /// customer360, funnel or churn.
        #[arg(long)]
        projection: Named,
        /// The directory (created; an earlier build in it continues).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        stream: StreamArgs,
    },
    /// Compare two builds of a projection key by key; exit code 1 when they differ.
    Compare {
        #[arg(long)]
        projection: Named,
        /// Read-model directories (an offline build, a stopped service's data dir or
        /// its `read-models`, a copy).
        left: PathBuf,
        right: PathBuf,
        /// Differences shown decoded.
        #[arg(long, default_value_t = 10)]
        show: usize,
        /// Show text values (names, emails, subjects) in the differences; without it
        /// only their length.
        #[arg(long)]
        pii: bool,
    },
    /// Start a rebuild of a projection on a running service and follow it until
    /// queries switched to it (needs `projections.admin`).
    Rebuild {
        #[arg(long)]
        projection: Named,
        #[command(flatten)]
        service: ServiceArgs,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
    /// Write one self-contained HTML page (no script, no external resource) with the
    /// figures an analyst looks at first, all from the query API at one moment: the
    /// customer base by lifecycle and value class, the pipeline funnel, this quarter's
    /// forecast, leads by source, campaigns by ROI, churn risk bands and value at risk.
    Report {
        #[command(flatten)]
        service: ServiceArgs,
        #[arg(long)]
        out: PathBuf,
        /// The moment the figures are computed at (RFC 3339); default now.
        #[arg(long)]
        as_of: Option<String>,
    },
}

/// A running service and the caller's token.
#[derive(clap::Args)]
struct ServiceArgs {
    #[arg(long, env = "CRM_ADDR", default_value = "http://127.0.0.1:50051")]
    addr: String,
    #[arg(long, env = "CRM_TOKEN")]
    token: String,
}

impl ServiceArgs {
    async fn connect(&self) -> anyhow::Result<tonic::transport::Channel> {
        tonic::transport::Channel::from_shared(self.addr.clone())?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", self.addr))
    }
}

/// `--as-of` in microseconds; now when not given.
fn as_of_micros(as_of: Option<&str>) -> anyhow::Result<i64> {
    as_of.map_or_else(|| Ok(chrono::Utc::now().timestamp_micros()), micros)
}

/// A spinner counting rows of unknown total.
fn counter(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} {{pos}} {what}, {{per_sec}}"))
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec}, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Export {
            format,
            out,
            from,
            to,
            types,
            pii,
            stream,
        } => {
            let filter = EventFilter {
                from: from.as_deref().map(micros).transpose()?,
                to: to.as_deref().map(micros).transpose()?,
                types,
            };
            let source = stream.connect().await?;
            let bar = bar(0);
            let done = export::export_events(&source, &filter, format, &out, pii, |at, last| {
                bar.set_length(last);
                bar.set_position(at);
            })
            .await?;
            bar.finish_and_clear();
            print_export(cli.json, &done, "events", pii)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportCustomers {
            read_models,
            addr,
            token,
            format,
            out,
            as_of,
            pii,
        } => {
            let at = as_of_micros(as_of.as_deref())?;
            let from_service = addr.is_some();
            let done = match (read_models, addr, token) {
                (Some(dir), ..) => {
                    let bar = bar(0);
                    let done =
                        customers::export_customers(&dir, format, &out, at, pii, |n, total| {
                            bar.set_length(total);
                            bar.set_position(n);
                        })?;
                    bar.finish_and_clear();
                    done
                }
                (None, Some(addr), Some(token)) => {
                    let service = ServiceArgs { addr, token };
                    let channel = service.connect().await?;
                    let bar = counter("customers");
                    let done = customers::export_customers_from_service(
                        channel,
                        &service.token,
                        format,
                        &out,
                        at,
                        |n| bar.set_position(n),
                    )
                    .await?;
                    bar.finish_and_clear();
                    done
                }
                _ => anyhow::bail!("give --read-models, or --addr with --token"),
            };
            if from_service {
                print_export(cli.json, &done, "customers as the service shows them", true)?;
            } else {
                print_export(cli.json, &done, "customers", pii)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportFunnel {
            read_models,
            table,
            format,
            out,
            as_of,
        } => {
            let at = as_of_micros(as_of.as_deref())?;
            let bar = counter("deals");
            let done = models::export_funnel(&read_models, table, format, &out, at, |n| {
                bar.set_position(n);
            })?;
            bar.finish_and_clear();
            let what = match table {
                FunnelTable::Deals => "deals",
                FunnelTable::Stages => "stage stays",
            };
            print_export(cli.json, &done, what, true)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportChurn {
            read_models,
            format,
            out,
            as_of,
            model,
            horizon_days,
            monthly_discount_bp,
        } => {
            let at = as_of_micros(as_of.as_deref())?;
            let mut config = ChurnConfig::default();
            config.predict.horizon_days = f64::from(horizon_days);
            config.predict.monthly_discount = f64::from(monthly_discount_bp) / 10_000.0;
            let bar = counter("customers");
            let done = models::export_churn(&read_models, &model, config, format, &out, at, |n| {
                bar.set_position(n);
            })?;
            bar.finish_and_clear();
            print_export(cli.json, &done, "customers", true)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Build {
            projection,
            out,
            stream,
        } => {
            let source = stream.connect().await?;
            let bar = bar(0);
            let built = build::build(&source, projection, &out, |at, last| {
                bar.set_length(last);
                bar.set_position(at);
            })
            .await?;
            bar.finish_and_clear();
            if cli.json {
                println!("{}", serde_json::to_string(&built)?);
            } else {
                #[allow(clippy::cast_precision_loss)]
                let rate = built.messages as f64 / built.seconds.max(1e-9);
                println!(
                    "built {} in {}: position {}, {} messages ({} events, {} dead-lettered) in {:.1} s, {:.0} messages/s",
                    built.projection,
                    out.display(),
                    built.position,
                    built.messages,
                    built.events,
                    built.dead_lettered,
                    built.seconds,
                    rate
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare {
            projection,
            left,
            right,
            show,
            pii,
        } => {
            let c = compare::compare(projection, &left, &right, show, pii)?;
            if cli.json {
                println!("{}", serde_json::to_string(&c)?);
            } else {
                print_comparison(&c);
            }
            Ok(if c.same() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Rebuild {
            projection,
            service,
            timeout_secs,
        } => {
            let channel = service.connect().await?;
            let bar = bar(0);
            let done = rebuild::rebuild(
                channel,
                &service.token,
                projection,
                Duration::from_secs(timeout_secs),
                |p| {
                    bar.set_length(p.head);
                    bar.set_position(p.checkpoint);
                    bar.set_message(format!("{} at {:.0}/s", p.tree, p.rate_per_second));
                },
            )
            .await?;
            bar.finish_and_clear();
            if cli.json {
                println!("{}", serde_json::to_string(&done)?);
            } else {
                println!(
                    "{} rebuilt as {}: live at position {} after {:.1} s",
                    done.projection, done.tree, done.position, done.seconds
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            service,
            out,
            as_of,
        } => {
            let at = match as_of {
                Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                    .with_context(|| format!("{t:?} is not an RFC 3339 time"))?
                    .to_utc(),
                None => chrono::Utc::now(),
            };
            let channel = service.connect().await?;
            let done = report::write_report(channel, &service.token, at, &out).await?;
            if cli.json {
                println!("{}", serde_json::to_string(&done)?);
            } else {
                println!(
                    "report of {} customers written to {} ({} bytes) in {:.1} s",
                    done.customers,
                    out.display(),
                    done.bytes,
                    done.seconds
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_export(json: bool, done: &export::Exported, what: &str, pii: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(done)?);
    } else {
        #[allow(clippy::cast_precision_loss)]
        let rate = done.rows as f64 / done.seconds.max(1e-9);
        println!(
            "exported {} {what} (position {}) to {} ({} bytes) in {:.1} s, {:.0} rows/s{}",
            done.rows,
            done.messages,
            done.path,
            done.bytes,
            done.seconds,
            rate,
            if pii { "" } else { "; personal data withheld" }
        );
    }
    Ok(())
}

fn print_comparison(c: &compare::Comparison) {
    for (side, s) in [("left", &c.left), ("right", &c.right)] {
        println!(
            "{side}:  {} ({}) at position {}: {} keys, {} dead letters",
            s.dir, s.tree, s.checkpoint, s.entries, s.dead_letters
        );
    }
    println!(
        "{}: {} equal, {} different, {} missing (left only), {} extra (right only): {}",
        c.projection,
        c.equal,
        c.different,
        c.missing,
        c.extra,
        if c.same() { "the same" } else { "they differ" }
    );
    for d in &c.first {
        println!(
            "  {:?} {} ({} / {} bytes)",
            d.kind, d.key, d.bytes.0, d.bytes.1
        );
        for f in &d.fields {
            println!("    {}: {} -> {}", f.path, f.left, f.right);
        }
    }
}
