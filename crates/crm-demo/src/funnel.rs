//! The sales funnel of the generated business (`FunnelService`).

use crm_proto::v1::{self, funnel_service_client::FunnelServiceClient};
use tonic::transport::Channel;

use crate::show::authed;

pub(crate) fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.0}%", v * 100.0))
}

pub(crate) async fn show(channel: Channel, token: &str, position: u64) -> anyhow::Result<()> {
    let mut f = FunnelServiceClient::new(channel);
    let r = f
        .get_pipeline_funnel(authed(
            v1::GetPipelineFunnelRequest {
                consistency: Some(v1::Consistency {
                    min_position: position,
                }),
                ..Default::default()
            },
            token,
        )?)
        .await?
        .into_inner();
    println!(
        "\n== Pipeline funnel of {:?} today (FunnelService.GetPipelineFunnel)",
        r.pipeline
    );
    println!(
        "  {:<16} {:>8} {:>10} {:>10} {:>6} {:>12} {:>6}",
        "stage", "reached", "from prev", "from first", "open", "median days", "stale"
    );
    for s in &r.stages {
        println!(
            "  {:<16} {:>8} {:>10} {:>10} {:>6} {:>12.1} {:>6}",
            s.stage,
            s.reached,
            pct(s.conversion_from_previous),
            pct(s.conversion_from_first),
            s.open,
            s.cumulative.as_ref().map_or(0.0, |d| d.median_days),
            s.stale
        );
    }
    let eur = |m: &[v1::CurrencyAmount]| {
        m.iter()
            .map(|a| format!("{:.2} {}", a.minor as f64 / 100.0, a.currency))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  {} deals: {} open, {} won ({}), {} lost ({}); win rate {}",
        r.deals,
        r.open,
        r.won,
        eur(&r.won_amount),
        r.lost,
        eur(&r.lost_amount),
        pct(r.win_rate)
    );
    let reasons: Vec<String> = r
        .loss_reasons
        .iter()
        .take(3)
        .map(|l| format!("{} ({})", l.reason, l.deals))
        .collect();
    println!("  top loss reasons: {}", reasons.join(", "));
    if let Some(c) = &r.cycle {
        println!(
            "  won after {:.0} days (median; p90 {:.0}); sales velocity {}",
            c.median_days,
            c.p90_days,
            r.velocity_per_day
                .iter()
                .map(|v| format!("{:.2} {}/day", v.value / 100.0, v.currency))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    forecast(&mut f, token, position).await
}

/// This quarter's forecast by owner, and how it moved over the last 30 days.
async fn forecast(
    f: &mut FunnelServiceClient<Channel>,
    token: &str,
    position: u64,
) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let now = i64::try_from(now)?;
    let q = crm_analyst::report::quarter(
        chrono::DateTime::from_timestamp(now, 0)
            .ok_or_else(|| anyhow::anyhow!("clock out of range"))?,
    );
    let (start, end, label) = (q.start.timestamp(), q.end.timestamp(), q.label);
    let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
    let r = f
        .get_forecast(authed(
            v1::GetForecastRequest {
                period_start: Some(at(start)),
                period_end: Some(at(end)),
                group_by: v1::ForecastGroupBy::Owner.into(),
                compare_to: Some(at(now - 30 * 86_400)),
                consistency: Some(v1::Consistency {
                    min_position: position,
                }),
                ..Default::default()
            },
            token,
        )?)
        .await?
        .into_inner();
    println!("\n== Forecast for {label} by owner (FunnelService.GetForecast)");
    println!(
        "  {:<16} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "owner", "closed", "commit", "best case", "pipeline", "weighted"
    );
    let eur = |minor: i64| format!("{:.2}", minor as f64 / 100.0);
    for g in &r.groups {
        for x in &g.rollups {
            println!(
                "  {:<16} {:>12} {:>12} {:>12} {:>12} {:>12} {}",
                if g.group.is_empty() {
                    "(none)"
                } else {
                    &g.group
                },
                eur(x.closed),
                eur(x.commit),
                eur(x.best_case),
                eur(x.pipeline),
                eur(x.weighted),
                x.currency
            );
        }
    }
    let mut kinds: std::collections::BTreeMap<String, (u64, i64)> =
        std::collections::BTreeMap::new();
    for m in &r.movements {
        let k = kinds.entry(format!("{:?}", m.kind())).or_default();
        k.0 += 1;
        k.1 += m.amount_after - m.amount_before;
    }
    let moves: Vec<String> = kinds
        .iter()
        .map(|(k, (n, delta))| format!("{k} {n} ({:+.2})", *delta as f64 / 100.0))
        .collect();
    println!(
        "  moved over the last 30 days: {}",
        if moves.is_empty() {
            "nothing".to_owned()
        } else {
            moves.join(", ")
        }
    );
    Ok(())
}
