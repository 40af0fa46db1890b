//! The sales funnel of the generated business (`FunnelService`).

use crm_proto::v1::{self, funnel_service_client::FunnelServiceClient};
use tonic::transport::Channel;

use crate::show::authed;

fn pct(v: Option<f64>) -> String {
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
    Ok(())
}
