//! What an auditor runs (`crm-audit`, here through its library): the whole stream
//! verified as the read-only NATS user, and one customer's history with envelopes.

use std::path::Path;

use crm_audit::connect::{Source, Target};
use crm_audit::{as_of, history, verify};

use crate::quarantine::embedded_nats_url;

/// The embedded server's stream, as the read-only NATS user.
pub(crate) async fn reader_source(data: &Path) -> anyhow::Result<Source> {
    Ok(Source::connect(&Target {
        nats_url: embedded_nats_url(data)?,
        reader_seed: Some(reader_seed(data)),
        stream: "CRM_EVENTS".into(),
        prefix: "crm.v1".into(),
        master_key_file: Some(data.join("keys").join("master.key")),
    })
    .await?)
}

fn reader_seed(data: &Path) -> std::path::PathBuf {
    data.join("nats").join("users").join("crm-reader.nk")
}

pub(crate) async fn show(data: &Path, customer: &str) -> anyhow::Result<()> {
    let reader_seed = reader_seed(data);
    let source = reader_source(data).await?;
    println!(
        "\n== For auditors: crm-audit verify (as crm-reader, {}: may read, never publish)",
        reader_seed.display()
    );
    // The notary's public key, as an auditor would be given it, and the stream's latest
    // anchor, as an auditor would have kept it.
    let public_key = std::fs::read_to_string(data.join("notary").join("notary.key.pub"))?;
    let keys = vec![crm_events::anchor::parse_public_key(&public_key)?];
    let kept = verify::stream_anchors(&source, u64::MAX)
        .await?
        .last()
        .map(|(_, bytes)| bytes.to_vec());
    let trust = verify::Trust {
        keys,
        kept: kept.into_iter().collect(),
    };
    println!("  notary public key {}", public_key.trim());
    let report = verify::verify_stream(&source, None, &trust, &mut |_, _| {}).await?;
    let c = &report.counts;
    println!(
        "  {} messages, {} events of {} aggregates verified in {:.1}s ({:.0} messages/s); {} quarantined position(s) skipped, {} quarantine record(s) checked; {} finding(s)",
        c.messages,
        c.events,
        c.aggregates,
        report.seconds,
        report.messages_per_s,
        c.quarantined,
        c.quarantine_records,
        report.findings.len()
    );
    println!(
        "  anchors: {} signed anchors in the stream, {} verified against it (the latest kept one included); anchored up to position {} of {}",
        c.anchors, c.anchors_verified, c.anchored_position, report.last_seq
    );
    for f in report.findings.iter().take(5) {
        println!("  FINDING {f}");
    }
    let id = uuid::Uuid::parse_str(customer)?;
    let entries = history::history(
        &source,
        crm_domain::CustomerId(id),
        &history::Filter::default(),
    )
    .await?;
    println!(
        "\n== crm-audit history --customer {customer}: {} events; the last five",
        entries.len()
    );
    for e in entries.iter().rev().take(5).rev() {
        println!(
            "  {:>7} {} {:<13} {:<36} v{:<3} by {:<22} hash {}…",
            e.position,
            &e.occurred_at[..19],
            e.concerns,
            e.event_type,
            e.version,
            e.actor,
            &e.hash[..12]
        );
    }
    as_of_and_diff(&source, crm_domain::CustomerId(id), &entries).await
}

/// The customer as of the middle of their history (business time) and what changed
/// from there to their last event.
async fn as_of_and_diff(
    source: &Source,
    id: crm_domain::CustomerId,
    entries: &[history::Entry],
) -> anyhow::Result<()> {
    let (Some(middle), Some(last)) = (entries.get(entries.len() / 2), entries.last()) else {
        return Ok(());
    };
    let from = as_of::Cut::Occurred(middle.occurred_micros);
    let view = as_of::customer_as_of(source, id, from, true).await?;
    let lifecycle = view
        .reply
        .as_ref()
        .and_then(|r| r.classification.as_ref())
        .map_or("-", |c| c.lifecycle.as_str());
    println!(
        "\n== crm-audit as-of --occurred {}: {} events applied, {} after it left out; lifecycle then: {lifecycle}",
        &middle.occurred_at[..19],
        view.point.applied,
        view.point.cut_off
    );
    let diff = as_of::diff(
        source,
        id,
        from,
        as_of::Cut::Occurred(last.occurred_micros),
        true,
    )
    .await?;
    let fields: Vec<&str> = diff.changes.iter().map(|c| c.field).collect();
    println!(
        "== crm-audit diff to {}: {} events changed {}",
        &last.occurred_at[..19],
        diff.events.len(),
        fields.join(", ")
    );
    Ok(())
}
