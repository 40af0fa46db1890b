//! The churn models on the demo's business (issue 17, in progress: no `ChurnService`
//! yet, so the demo folds the stream itself, as the read side will): both models fitted
//! now on every customer's purchases, and the ten customers with the most value at risk
//! (CLV x (1 - P(alive))) with the drivers of their risk score.

use std::path::Path;

use crm_churn::Churn;
use crm_churn::fit::{TimeUnit, fit_at};
use crm_churn::predict::{PredictConfig, predict};
use crm_churn::purchases::{PURCHASES, Purchases};
use crm_churn::signals::{SERVICE, Service};
use crm_projection::{Event, MemState};
use futures::StreamExt;

pub(crate) async fn show(data: &Path, cli: &crate::Cli) -> anyhow::Result<()> {
    let source = crate::audit::reader_source(data).await?;
    let mut stream = source.stream().await?;
    let last = stream.info().await?.state.last_sequence;
    let mut state = MemState::default();
    let fold = Churn::default();
    let mut messages = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await?
        .messages()
        .await?;
    while let Some(m) = messages.next().await {
        let m = m?;
        let seq = m
            .info()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .stream_sequence;
        // Anchors, quarantine records and strangers' messages are no customer's events.
        if let Ok(envelopes) = crm_events::decode_message(&m.payload) {
            let events: Vec<Event<'_>> = envelopes
                .iter()
                .enumerate()
                .map(|(i, e)| Event {
                    seq,
                    index: u16::try_from(i).unwrap_or(u16::MAX),
                    subject: &m.subject,
                    envelope: e,
                })
                .collect();
            // A message the live projector would dead-letter is left out here too.
            let _ = state.apply_message(&fold, &events);
        }
        if seq >= last {
            break;
        }
    }
    let mut customers: Vec<([u8; 16], Purchases, Option<Service>)> = Vec::new();
    let mut services = std::collections::BTreeMap::new();
    for (k, v) in &state.entries {
        let id: [u8; 16] = k[1..].try_into()?;
        match k[0] {
            PURCHASES => customers.push((id, postcard::from_bytes(v)?, None)),
            SERVICE => {
                services.insert(id, postcard::from_bytes::<Service>(v)?);
            }
            _ => {}
        }
    }
    for c in &mut customers {
        c.2 = services.remove(&c.0);
    }
    let now = now_micros();
    let fit = fit_at(customers.iter().map(|c| &c.1), now, "EUR", TimeUnit::Day)?;
    let b = &fit.bgnbd.params;
    let g = &fit.gamma_gamma.params;
    println!(
        "\n== Churn and CLV (issue 17, first part; fitted now on {} customers, {} with repeat purchases, days):",
        fit.customers, fit.repeat_customers
    );
    println!(
        "  BG/NBD r {:.3} alpha {:.2} a {:.3} b {:.3} (log-likelihood {:.1}, {} iterations); Gamma-Gamma p {:.2} q {:.2} gamma {:.0} (mean spend {:.2} EUR)",
        b.r,
        b.alpha,
        b.a,
        b.b,
        fit.bgnbd.log_likelihood,
        fit.bgnbd.iterations,
        g.p,
        g.q,
        g.gamma,
        g.p * g.gamma / (g.q - 1.0) / 100.0
    );
    // What the generator drew the business from (its `params.json`).
    let truth = crm_datagen::Params::new(cli.seed, cli.customers);
    let (tp, ts) = (truth.purchasing, truth.spend);
    println!(
        "  the generator's truth: r {:.3} alpha {:.2} a {:.3} b {:.3}; p {:.2} q {:.2} gamma {:.0} (cents; mean spend {:.2} EUR)",
        tp.r,
        tp.alpha,
        tp.a,
        tp.b,
        ts.p,
        ts.q,
        ts.gamma * 100.0,
        ts.p * ts.gamma / (ts.q - 1.0)
    );
    let cfg = PredictConfig::default();
    let mut at_risk: Vec<_> = customers
        .iter()
        .filter_map(|(id, p, s)| predict(&fit, p, s.as_ref(), now, "EUR", &cfg).map(|f| (*id, f)))
        .collect();
    let value_at_risk = |f: &crm_churn::predict::Prediction| f.clv * (1.0 - f.p_alive);
    at_risk.sort_by(|a, b| {
        value_at_risk(&b.1)
            .total_cmp(&value_at_risk(&a.1))
            .then(a.0.cmp(&b.0))
    });
    println!("  the ten customers with the most value at risk (CLV x (1 - P(alive))):");
    for (id, f) in at_risk.iter().take(10) {
        let drivers: Vec<String> = f
            .risk
            .drivers
            .iter()
            .map(|d| format!("{} {:+.2}", d.name, d.delta))
            .collect();
        println!(
            "  {} P(alive) {:.2} CLV {:>8.2} EUR at risk {:>8.2}; risk {:.2} {} {}",
            &uuid::Uuid::from_bytes(*id).to_string()[..8],
            f.p_alive,
            f.clv / 100.0,
            value_at_risk(f) / 100.0,
            f.risk.score,
            f.risk.band.name(),
            if drivers.is_empty() {
                String::new()
            } else {
                format!("({})", drivers.join(", "))
            }
        );
    }
    Ok(())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
