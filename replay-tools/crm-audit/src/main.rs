//! `crm-audit`: verify the event stream, and read a customer's complete history.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crm_audit::connect::{Source, Target};
use crm_audit::{history, verify};
use crm_domain::{AggregateKind, AggregateRef, CustomerId};

#[derive(Parser)]
#[command(
    name = "crm-audit",
    version,
    about = "Auditors' tools over the CRM's event stream"
)]
struct Cli {
    #[arg(long, env = "CRM_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The `crm-reader` nkey seed (e.g. `<data-dir>/nats/users/crm-reader.nk`): a user
    /// that may read the stream and not publish on it.
    #[arg(long, env = "CRM_AUDIT_READER_SEED")]
    reader_seed: Option<PathBuf>,
    #[arg(long, default_value = "CRM_EVENTS")]
    stream: String,
    #[arg(long, default_value = "crm.v1")]
    subject_prefix: String,
    /// JSON on stdout instead of text (history: JSON Lines).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every hash chain of the stream (or one aggregate's); exit code 1 on any
    /// finding.
    Verify {
        /// Only this aggregate, `customer:<uuid>`, `lead:<uuid>` or `campaign:<uuid>`.
        #[arg(long)]
        aggregate: Option<String>,
    },
    /// A customer's complete history in stream order.
    History {
        #[arg(long)]
        customer: String,
        /// Business time from (RFC 3339, inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Business time to (RFC 3339, exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Only these event types (repeat the flag).
        #[arg(long = "type")]
        types: Vec<String>,
        /// Also write the entries as JSON Lines to this file.
        #[arg(long)]
        jsonl: Option<PathBuf>,
    },
}

fn aggregate(s: &str) -> anyhow::Result<AggregateRef> {
    let (kind, id) = s
        .split_once(':')
        .context("--aggregate: expected <kind>:<uuid>")?;
    let kind = match kind {
        "customer" => AggregateKind::Customer,
        "lead" => AggregateKind::Lead,
        "campaign" => AggregateKind::Campaign,
        other => anyhow::bail!("--aggregate: unknown kind {other:?} (customer, lead, campaign)"),
    };
    let id = uuid::Uuid::try_parse(id).context("--aggregate: not a UUID")?;
    Ok(AggregateRef::new(kind, id))
}

fn micros(flag: &str, s: Option<&String>) -> anyhow::Result<Option<i64>> {
    s.map(|s| {
        let t = prost_types::Timestamp::from_str(s)
            .map_err(|e| anyhow::anyhow!("--{flag}: not an RFC 3339 time ({e})"))?;
        Ok(t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
    })
    .transpose()
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let source = Source::connect(&Target {
        nats_url: cli.nats_url.clone(),
        reader_seed: cli.reader_seed.clone(),
        stream: cli.stream.clone(),
        prefix: cli.subject_prefix.clone(),
    })
    .await?;
    match &cli.command {
        Command::Verify { aggregate: a } => {
            let only = a.as_deref().map(aggregate).transpose()?;
            run_verify(&source, only, cli.json).await
        }
        Command::History {
            customer,
            from,
            to,
            types,
            jsonl,
        } => {
            let id = uuid::Uuid::try_parse(customer).context("--customer: not a UUID")?;
            let filter = history::Filter {
                from: micros("from", from.as_ref())?,
                to: micros("to", to.as_ref())?,
                types: types.clone(),
            };
            let entries = history::history(&source, CustomerId(id), &filter).await?;
            print_history(&entries, cli.json, jsonl.as_ref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run_verify(
    source: &Source,
    only: Option<AggregateRef>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} verifying [{bar:40}] {pos}/{len} messages ({per_sec}, eta {eta})",
            )?
            .progress_chars("=> "),
        )
    };
    let report = verify::verify_stream(source, only, &mut |at, last| {
        bar.set_length(last);
        bar.set_position(at);
    })
    .await?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for f in &report.findings {
            println!("FINDING {f}");
        }
        let c = &report.counts;
        println!(
            "verified {} messages ({} events of {} aggregates; {} quarantined positions, {} quarantine records) of stream {} up to position {} in {:.1}s ({:.0} messages/s): {} finding(s)",
            c.messages,
            c.events,
            c.aggregates,
            c.quarantined,
            c.quarantine_records,
            report.stream,
            report.last_seq,
            report.seconds,
            report.messages_per_s,
            report.findings.len()
        );
    }
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_history(
    entries: &[history::Entry],
    json: bool,
    jsonl: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for e in entries {
        if json {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
        } else {
            writeln!(
                out,
                "{:>8} {} {:<13} {:<40} v{:<4} {} by {} cmd {}",
                e.position,
                e.occurred_at,
                e.concerns,
                e.event_type,
                e.version,
                e.aggregate,
                e.actor,
                &e.command_id[..8]
            )?;
        }
    }
    if let Some(path) = jsonl {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| path.display().to_string())?,
        );
        for e in entries {
            writeln!(file, "{}", serde_json::to_string(e)?)?;
        }
        file.flush()?;
    }
    if !json {
        println!("{} events", entries.len());
    }
    Ok(())
}
