//! `GetCampaignPerformance`.

use std::collections::BTreeMap;

use crm_funnel::{
    CampaignFigures, LeadFilter, campaign_performance, campaigns_at, deals_at, leads_at, members_at,
};
use crm_proto::v1;
use tonic::{Request, Response, Status};

use super::super::{as_of, parse_id, ts, uuid_str};
use super::{FunnelApi, filter};

pub(super) async fn get(
    api: &FunnelApi,
    request: Request<v1::GetCampaignPerformanceRequest>,
) -> Result<Response<v1::CampaignPerformanceReply>, Status> {
    api.authorize(&request)?;
    let r = request.get_ref();
    let at = as_of(r.as_of.as_ref(), "as_of")?;
    let only = (!r.campaign_id.is_empty())
        .then(|| parse_id(&r.campaign_id, "campaign_id"))
        .transpose()?;
    let deal_filter = filter(r.filter.as_ref())?;
    let lead_filter = LeadFilter {
        source: deal_filter.source.clone(),
        campaign: None,
        owner: deal_filter.owner.clone(),
        captured_from: deal_filter.opened_from,
        captured_to: deal_filter.opened_to,
    };
    let limit = if r.limit == 0 {
        usize::MAX
    } else {
        r.limit as usize
    };
    let (ranked, position) = api
        .run(&request, r.consistency.as_ref(), move |model| {
            let mut campaigns = campaigns_at(model, at)?;
            campaigns.retain(|c| only.is_none_or(|id| c.id == id));
            let mut deals = deals_at(model, at)?;
            deals.retain(|d| deal_filter.admits(d));
            let mut leads = leads_at(model, at)?;
            leads.retain(|l| lead_filter.admits(l));
            Ok(campaign_performance(
                &campaigns,
                &members_at(model, at)?,
                &leads,
                &deals,
            ))
        })
        .await?;
    Ok(Response::new(v1::CampaignPerformanceReply {
        position,
        as_of: ts(at),
        campaigns: ranked
            .iter()
            .take(limit)
            .zip(1u32..)
            .map(|(f, rank)| figures(f, rank))
            .collect(),
    }))
}

fn amounts(m: &BTreeMap<String, i64>) -> Vec<v1::CurrencyAmount> {
    m.iter()
        .map(|(currency, minor)| v1::CurrencyAmount {
            currency: currency.clone(),
            minor: *minor,
        })
        .collect()
}

fn figures(f: &CampaignFigures, rank: u32) -> v1::CampaignPerformance {
    v1::CampaignPerformance {
        campaign_id: uuid_str(f.id),
        name: f.name.clone(),
        channel: f.channel.clone(),
        created_at: ts(f.created_at),
        sends: f.sends,
        recipients: f.recipients,
        skipped: f.skipped,
        responses: f
            .responses
            .iter()
            .map(|(kind, n)| v1::ResponseCount {
                kind: kind.name().to_owned(),
                customers: *n,
            })
            .collect(),
        responders: f.responders,
        response_rate: f.response_rate,
        leads: f.leads,
        opportunities: f.opportunities,
        won: f.won,
        won_revenue: amounts(&f.won_revenue),
        order_revenue: amounts(&f.order_revenue),
        cost: f.currency.as_ref().map(|c| v1::CurrencyAmount {
            currency: c.clone(),
            minor: f.cost_minor,
        }),
        roi: f.roi,
        cost_per_lead: f.cost_per_lead,
        cost_per_won_deal: f.cost_per_won_deal,
        rank,
    }
}
