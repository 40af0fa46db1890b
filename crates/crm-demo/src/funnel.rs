//! The sales funnel of the generated business (`FunnelService`).

use crm_proto::v1::{self, funnel_service_client::FunnelServiceClient};
use tonic::transport::Channel;

use crate::show::authed;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar quarter holding `secs` (Unix seconds): its start and end, and a label.
fn quarter(secs: i64) -> (i64, i64, String) {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let q = (m - 1) / 3;
    let start = days_from_civil(y, q * 3 + 1, 1) * 86_400;
    let end = if q == 3 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, q * 3 + 4, 1)
    } * 86_400;
    (start, end, format!("Q{} {y}", q + 1))
}

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
    let (start, end, label) = quarter(now);
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

#[cfg(test)]
mod tests {
    #[test]
    fn quarters_start_on_their_first_day() {
        // 2026-12-05 12:00 UTC: Q4 2026, from 2026-10-01 to 2027-01-01.
        let (start, end, label) = super::quarter(1_796_472_000);
        assert_eq!(label, "Q4 2026");
        assert_eq!(start, 1_790_812_800);
        assert_eq!(end, 1_798_761_600);
        let (start, _, label) = super::quarter(1_767_225_600);
        assert_eq!((start, label.as_str()), (1_767_225_600, "Q1 2026"));
    }
}
