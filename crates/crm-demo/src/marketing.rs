//! The lead funnel, the campaigns ranked by ROI and the deals behind a figure
//! (`FunnelService.GetLeadFunnel`, `GetCampaignPerformance`, `ListDeals`).

use crm_proto::v1::{self, funnel_service_client::FunnelServiceClient};
use tonic::transport::Channel;

use crate::funnel::pct;
use crate::show::authed;

fn consistency(position: u64) -> Option<v1::Consistency> {
    Some(v1::Consistency {
        min_position: position,
    })
}

pub(crate) async fn show(channel: Channel, token: &str, position: u64) -> anyhow::Result<()> {
    let mut f = FunnelServiceClient::new(channel);
    leads(&mut f, token, position).await?;
    campaigns(&mut f, token, position).await?;
    stale(&mut f, token, position).await
}

async fn leads(
    f: &mut FunnelServiceClient<Channel>,
    token: &str,
    position: u64,
) -> anyhow::Result<()> {
    let r = f
        .get_lead_funnel(authed(
            v1::GetLeadFunnelRequest {
                group_by: v1::LeadGroupBy::Source.into(),
                consistency: consistency(position),
                ..Default::default()
            },
            token,
        )?)
        .await?
        .into_inner();
    println!("\n== Lead funnel by source (FunnelService.GetLeadFunnel)");
    println!(
        "  {:<12} {:>8} {:>10} {:>10} {:>10} {:>8} {:>10} {:>16}",
        "source",
        "captured",
        "contacted",
        "qualified",
        "converted",
        "disq.",
        "conversion",
        "days to convert"
    );
    for g in &r.groups {
        println!(
            "  {:<12} {:>8} {:>10} {:>10} {:>10} {:>8} {:>10} {:>16.1}",
            g.group,
            g.captured,
            g.contacted,
            g.qualified,
            g.converted,
            g.disqualified,
            pct(g.conversion_rate),
            g.captured_to_converted
                .as_ref()
                .map_or(0.0, |d| d.median_days)
        );
    }
    Ok(())
}

async fn campaigns(
    f: &mut FunnelServiceClient<Channel>,
    token: &str,
    position: u64,
) -> anyhow::Result<()> {
    let r = f
        .get_campaign_performance(authed(
            v1::GetCampaignPerformanceRequest {
                limit: 5,
                consistency: consistency(position),
                ..Default::default()
            },
            token,
        )?)
        .await?
        .into_inner();
    println!("\n== Top campaigns by ROI (FunnelService.GetCampaignPerformance)");
    println!(
        "  {:>4} {:<18} {:>10} {:>9} {:>12} {:>10} {:>8} {:>12}",
        "rank", "campaign", "recipients", "response", "revenue", "cost", "ROI", "cost/won"
    );
    let money = |minor: i64| format!("{:.2}", minor as f64 / 100.0);
    for c in &r.campaigns {
        let currency = c.cost.as_ref().map(|c| c.currency.clone());
        let revenue: i64 = c
            .won_revenue
            .iter()
            .chain(&c.order_revenue)
            .filter(|a| Some(&a.currency) == currency.as_ref())
            .map(|a| a.minor)
            .sum();
        println!(
            "  {:>4} {:<18} {:>10} {:>9} {:>12} {:>10} {:>8} {:>12} {}",
            c.rank,
            c.name,
            c.recipients,
            pct(c.response_rate),
            money(revenue),
            c.cost
                .as_ref()
                .map_or_else(|| "-".into(), |x| money(x.minor)),
            c.roi.map_or_else(|| "-".into(), |r| format!("{r:.2}")),
            c.cost_per_won_deal
                .map_or_else(|| "-".into(), |x| format!("{:.2}", x / 100.0)),
            currency.unwrap_or_default()
        );
    }
    Ok(())
}

/// The deals behind the pipeline funnel's "stale" column.
async fn stale(
    f: &mut FunnelServiceClient<Channel>,
    token: &str,
    position: u64,
) -> anyhow::Result<()> {
    let r = f
        .list_deals(authed(
            v1::ListDealsRequest {
                state: v1::DealState::Open.into(),
                stale_after_days: 30,
                page_size: 5,
                consistency: consistency(position),
                ..Default::default()
            },
            token,
        )?)
        .await?
        .into_inner();
    println!("\n== Open deals over 30 days in their stage, first page (FunnelService.ListDeals)");
    for d in &r.deals {
        println!(
            "  {} {:<16} {:>7.0} days {:>10} {} owner {} team {} source {}",
            &d.opportunity_id[..8],
            d.stage,
            d.days_in_stage,
            d.amount
                .as_ref()
                .map_or_else(String::new, |a| format!("{:.2}", a.minor as f64 / 100.0)),
            d.amount.as_ref().map_or("", |a| a.currency.as_str()),
            d.owner,
            d.team,
            d.lead_source
        );
    }
    if !r.next_page_token.is_empty() {
        println!("  ... more with next_page_token");
    }
    Ok(())
}
