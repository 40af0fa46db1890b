//! `crm-audit`: verify the event stream and its signed anchors; a customer's complete
//! history, their view as of a moment and what changed between two.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crm_audit::connect::{Source, Target};
use crm_audit::{as_of, history, verify};
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
    /// The service's master key (`<data-dir>/keys/master.key`): opens sealed personal
    /// data in histories and as-of views (without it, it shows as sealed).
    #[arg(long, env = "CRM_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
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
        /// The notary's public key (64 hex digits, or a file holding them such as
        /// `<data-dir>/notary/notary.key.pub`; repeat for several): the stream's anchors
        /// are checked against the whole stream. Without it anchors are not checked.
        #[arg(long = "notary-key", value_name = "KEY")]
        notary_keys: Vec<String>,
        /// An anchor kept from earlier (`crm-audit anchor --out FILE`; repeat for
        /// several): the stream must still hold exactly what it covered.
        #[arg(long = "anchor", value_name = "FILE")]
        anchors: Vec<PathBuf>,
    },
    /// The customer's 360° view as of a moment, through the live service's fold and
    /// rendering (RFM scores, value class and segment are left unscored).
    AsOf {
        #[arg(long)]
        customer: String,
        /// The moment (RFC 3339).
        #[arg(long)]
        at: String,
        /// Cut on business time (what had happened by then, as known now) instead of
        /// recorded time (what the CRM knew then).
        #[arg(long)]
        occurred: bool,
    },
    /// What changed in the customer's view between two moments, and the events (with
    /// their actors) that changed it.
    Diff {
        #[arg(long)]
        customer: String,
        /// From and to (RFC 3339).
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Both moments on business time instead of recorded time.
        #[arg(long)]
        occurred: bool,
    },
    /// The stream's latest notary anchor as JSON, to keep outside the servers and pass
    /// to a later `verify --anchor`.
    Anchor {
        /// Checked against these keys before it is written (see `verify`).
        #[arg(long = "notary-key", value_name = "KEY")]
        notary_keys: Vec<String>,
        /// Write it to this file (else stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Subject access (GDPR Art. 15): everything the log holds about a customer and the
    /// leads converted into them, personal data opened (needs `--master-key-file`), as
    /// one JSON document.
    SubjectAccess {
        #[arg(long)]
        customer: String,
        /// Write the document here (else stdout).
        #[arg(long)]
        out: Option<PathBuf>,
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
        master_key_file: cli.master_key_file.clone(),
    })
    .await?;
    match &cli.command {
        Command::Verify {
            aggregate: a,
            notary_keys,
            anchors,
        } => {
            let only = a.as_deref().map(aggregate).transpose()?;
            let trust = verify::Trust {
                keys: keys(notary_keys)?,
                kept: anchors
                    .iter()
                    .map(|p| {
                        let text = std::fs::read_to_string(p)
                            .with_context(|| format!("--anchor {}", p.display()))?;
                        verify::kept_anchor_bytes(&text)
                            .map_err(|e| anyhow::anyhow!("--anchor {}: {e}", p.display()))
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            run_verify(&source, only, &trust, cli.json).await
        }
        Command::AsOf {
            customer,
            at,
            occurred,
        } => {
            let id = customer_id(customer)?;
            let cut = cut(*occurred, micros("at", Some(at))?.expect("given"));
            let view = as_of::customer_as_of(&source, id, cut, true).await?;
            print_view(&view, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff {
            customer,
            from,
            to,
            occurred,
        } => {
            let id = customer_id(customer)?;
            let (from, to) = (
                micros("from", Some(from))?.expect("given"),
                micros("to", Some(to))?.expect("given"),
            );
            anyhow::ensure!(from <= to, "--to: must not be before --from");
            let diff =
                as_of::diff(&source, id, cut(*occurred, from), cut(*occurred, to), true).await?;
            print_diff(&diff, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Anchor { notary_keys, out } => {
            latest_anchor(&source, &keys(notary_keys)?, out.as_ref()).await
        }
        Command::SubjectAccess { customer, out } => {
            let data = crm_audit::subject::subject_data(&source, customer_id(customer)?).await?;
            let text = serde_json::to_string_pretty(&data.document)?;
            match out {
                Some(path) => {
                    std::fs::write(path, text)
                        .with_context(|| format!("--out {}", path.display()))?;
                    eprintln!(
                        "{} events, {} personal fields{} written to {}",
                        data.events,
                        data.personal_fields,
                        if data.forgotten { " (forgotten)" } else { "" },
                        path.display()
                    );
                }
                None => println!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::History {
            customer,
            from,
            to,
            types,
            jsonl,
        } => {
            let id = customer_id(customer)?;
            let filter = history::Filter {
                from: micros("from", from.as_ref())?,
                to: micros("to", to.as_ref())?,
                types: types.clone(),
            };
            let entries = history::history(&source, id, &filter).await?;
            print_history(&entries, cli.json, jsonl.as_ref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn customer_id(s: &str) -> anyhow::Result<CustomerId> {
    Ok(CustomerId(
        uuid::Uuid::try_parse(s).context("--customer: not a UUID")?,
    ))
}

fn cut(occurred: bool, at: i64) -> as_of::Cut {
    if occurred {
        as_of::Cut::Occurred(at)
    } else {
        as_of::Cut::Recorded(at)
    }
}

fn print_view(view: &as_of::View, json: bool) -> anyhow::Result<()> {
    let p = &view.point;
    let refused: Vec<u64> = p.rejected.iter().map(|(seq, _)| *seq).collect();
    if json {
        let v = serde_json::json!({
            "cut": format!("{:?}", view.cut),
            "existed": view.reply.is_some(),
            "events_applied": p.applied,
            "events_cut_off": p.cut_off,
            "refused_positions": refused,
            "view": view.reply.as_ref().map(|r| format!("{r:#?}")),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match &view.reply {
        Some(r) => println!("{r:#?}"),
        None => println!("the customer did not exist yet"),
    }
    println!(
        "{:?}: {} events applied, {} cut off, refused positions {refused:?}",
        view.cut, p.applied, p.cut_off
    );
    Ok(())
}

fn print_diff(diff: &as_of::Diff, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(diff)?);
        return Ok(());
    }
    for c in &diff.changes {
        println!(
            "{}:\n  before: {}\n  after:  {}",
            c.field, c.before, c.after
        );
    }
    println!("by {} event(s):", diff.events.len());
    for e in &diff.events {
        println!(
            "  {:>8} recorded {} {:<40} by {}",
            e.position, e.recorded_at, e.event_type, e.actor
        );
    }
    Ok(())
}

/// Public keys given as hex or as files holding it.
fn keys(given: &[String]) -> anyhow::Result<Vec<crm_events::anchor::VerifyingKey>> {
    given
        .iter()
        .map(|k| {
            let path = std::path::Path::new(k);
            let hex_key = if path.is_file() {
                std::fs::read_to_string(path).with_context(|| format!("--notary-key {k}"))?
            } else {
                k.clone()
            };
            crm_events::anchor::parse_public_key(&hex_key)
                .map_err(|e| anyhow::anyhow!("--notary-key {k}: {e}"))
        })
        .collect()
}

async fn latest_anchor(
    source: &Source,
    keys: &[crm_events::anchor::VerifyingKey],
    out: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let anchors = verify::stream_anchors(source, u64::MAX).await?;
    let Some((seq, bytes)) = anchors.last() else {
        anyhow::bail!("the stream holds no anchor yet (is the notary running?)");
    };
    if !keys.is_empty() {
        crm_events::anchor::verify_anchor(bytes, keys)
            .map_err(|e| anyhow::anyhow!("the latest anchor, at position {seq}: {e}"))?;
    }
    let text = serde_json::to_string_pretty(&verify::kept_anchor_json(*seq, bytes))?;
    match out {
        Some(path) => {
            std::fs::write(path, text + "\n").with_context(|| path.display().to_string())?;
            eprintln!("anchor at position {seq} written to {}", path.display());
        }
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_verify(
    source: &Source,
    only: Option<AggregateRef>,
    trust: &verify::Trust,
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
    let report = verify::verify_stream(source, only, trust, &mut |at, last| {
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
        if report.notary_keys.is_empty() {
            println!(
                "anchors: {} in the stream, not checked (pass --notary-key for the whole stream)",
                c.anchors
            );
        } else {
            println!(
                "anchors: {} in the stream, {} verified (kept ones included); anchored up to position {}, {} later position(s) not anchored yet",
                c.anchors,
                c.anchors_verified,
                c.anchored_position,
                report.last_seq.saturating_sub(c.anchored_position)
            );
        }
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
