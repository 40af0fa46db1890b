//! What an analyst runs (`crm-analyst`, here through its library): the event stream
//! exported to Parquet without personal data while the service runs and every
//! projection built offline from the stream, the customers exported through the service
//! and the one-page HTML report written from the query API, both with the analyst's
//! token; once the service has stopped (its read models are then free to open), each
//! offline build compared key by key with what the service built live, and the 360
//! model, the funnel's deals and stage stays and the churn figures exported from its
//! directory.

use std::path::{Path, PathBuf};

use crm_analyst::export::{EventFilter, Format};
use crm_analyst::models::{self, FunnelTable};
use crm_analyst::{Named, build, compare, customers, export, report};
use crm_churn::service::ChurnConfig;

/// The offline builds, kept for the comparison after the service stopped.
pub(crate) struct Offline {
    dir: PathBuf,
}

pub(crate) async fn while_serving(
    data: &Path,
    channel: tonic::transport::Channel,
    analyst_token: &str,
) -> anyhow::Result<Offline> {
    let source = crate::audit::reader_source(data).await?;
    let dir = data.with_file_name("analyst");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("events.parquet");
    let e = export::export_events(
        &source,
        &EventFilter::default(),
        Format::Parquet,
        &out,
        false,
        |_, _| {},
    )
    .await?;
    println!(
        "\n== Analyst (crm-analyst, as the read-only NATS user): {} events exported to {} ({} KiB, Parquet, personal data withheld) in {:.1} s",
        e.rows,
        out.display(),
        e.bytes / 1024,
        e.seconds
    );
    for p in Named::ALL {
        let b = build::build(&source, p, &dir.join(p.name()), |_, _| {}).await?;
        println!(
            "  {} built offline from the stream: position {}, {} events in {:.1} s",
            b.projection, b.position, b.events, b.seconds
        );
    }
    let out = dir.join("customers-from-service.csv");
    let at = chrono_now()?;
    let c = customers::export_customers_from_service(
        channel.clone(),
        analyst_token,
        Format::Csv,
        &out,
        at.timestamp_micros(),
        |_| {},
    )
    .await?;
    println!(
        "  {} customers exported through the service as the analyst to {} in {:.1} s (crm-analyst export-customers --addr; no names, emails or phones: the token has no pii.read)",
        c.rows,
        out.display(),
        c.seconds
    );
    let page = dir.join("report.html");
    let r = report::write_report(channel, analyst_token, at, &page).await?;
    println!(
        "  the analyst's report of {} customers, funnel, forecast, leads, campaigns and churn written to {} ({} KiB, one self-contained page; crm-analyst report)",
        r.customers,
        page.display(),
        r.bytes / 1024
    );
    Ok(Offline { dir })
}

fn chrono_now() -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    chrono::DateTime::from_timestamp(i64::try_from(now.as_secs())?, 0)
        .ok_or_else(|| anyhow::anyhow!("the clock is out of range"))
}

pub(crate) fn after_stop(data: &Path, offline: &Offline) -> anyhow::Result<()> {
    println!(
        "\n== Analyst, the service stopped: its live builds against the offline ones (crm-analyst compare)"
    );
    for p in Named::ALL {
        let c = compare::compare(p, data, &offline.dir.join(p.name()), 3, false)?;
        println!(
            "  {}: {} keys equal, {} different, {} missing, {} extra: {}",
            c.projection,
            c.equal,
            c.different,
            c.missing,
            c.extra,
            if c.same() { "the same" } else { "they differ" }
        );
    }
    let out = offline.dir.join("customers.csv");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros();
    let done = customers::export_customers(
        data,
        Format::Csv,
        &out,
        i64::try_from(now)?,
        false,
        |_, _| {},
    )?;
    println!(
        "  {} customers exported to {} (crm-analyst export-customers; no names, emails or phones)",
        done.rows,
        out.display()
    );
    let at = i64::try_from(now)?;
    for (table, name) in [
        (FunnelTable::Deals, "deals"),
        (FunnelTable::Stages, "stages"),
    ] {
        let out = offline.dir.join(format!("funnel-{name}.parquet"));
        let f = models::export_funnel(data, table, Format::Parquet, &out, at, |_| {})?;
        println!(
            "  {} funnel {name} rows exported to {} (crm-analyst export-funnel --table {name})",
            f.rows,
            out.display()
        );
    }
    let out = offline.dir.join("churn.parquet");
    let c = models::export_churn(
        data,
        "",
        ChurnConfig::default(),
        Format::Parquet,
        &out,
        at,
        |_| {},
    )?;
    println!(
        "  {} customers' churn figures under the served model exported to {} (crm-analyst export-churn)",
        c.rows,
        out.display()
    );
    Ok(())
}
