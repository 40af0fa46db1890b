//! `GetLeadFunnel`.

use crm_funnel::{LeadFigures, LeadFilter, LeadGroupBy, lead_funnel, leads_at};
use crm_proto::v1;
use tonic::{Request, Response, Status};

use super::super::{as_of, opt_time, parse_id, ts};
use super::{FunnelApi, durations};
use crate::status::invalid_query_field;

pub(super) async fn get(
    api: &FunnelApi,
    request: Request<v1::GetLeadFunnelRequest>,
) -> Result<Response<v1::LeadFunnelReply>, Status> {
    api.authorize(&request)?;
    let r = request.get_ref();
    let at = as_of(r.as_of.as_ref(), "as_of")?;
    let group_by = match v1::LeadGroupBy::try_from(r.group_by) {
        Ok(v1::LeadGroupBy::Unspecified) => LeadGroupBy::Nothing,
        Ok(v1::LeadGroupBy::Source) => LeadGroupBy::Source,
        Ok(v1::LeadGroupBy::Campaign) => LeadGroupBy::Campaign,
        Err(_) => return Err(invalid_query_field("group_by", "not a known grouping")),
    };
    let filter = LeadFilter {
        source: Some(r.lead_source.clone()).filter(|s| !s.is_empty()),
        campaign: (!r.campaign_id.is_empty())
            .then(|| parse_id(&r.campaign_id, "campaign_id"))
            .transpose()?,
        owner: Some(r.owner.clone()).filter(|o| !o.is_empty()),
        captured_from: opt_time(r.captured_from.as_ref(), "captured_from")?,
        captured_to: opt_time(r.captured_to.as_ref(), "captured_to")?,
    };
    let (groups, position) = api
        .run(&request, r.consistency.as_ref(), move |model| {
            Ok(lead_funnel(&leads_at(model, at)?, &filter, group_by))
        })
        .await?;
    Ok(Response::new(v1::LeadFunnelReply {
        position,
        as_of: ts(at),
        groups: groups.iter().map(|(g, f)| group(g, f)).collect(),
    }))
}

fn group(name: &str, f: &LeadFigures) -> v1::LeadFunnelGroup {
    v1::LeadFunnelGroup {
        group: name.to_owned(),
        captured: f.captured,
        contacted: f.contacted,
        qualified: f.qualified,
        converted: f.converted,
        disqualified: f.disqualified,
        open: f.open,
        disqualified_by_reason: f
            .disqualified_by_reason
            .iter()
            .map(|(reason, n)| v1::ReasonCount {
                reason: reason.clone(),
                count: u32::try_from(*n).unwrap_or(u32::MAX),
            })
            .collect(),
        contact_rate: f.contact_rate,
        qualification_rate: f.qualification_rate,
        conversion_from_qualified: f.conversion_from_qualified,
        conversion_rate: f.conversion_rate,
        captured_to_contacted: Some(durations(&f.captured_to_contacted)),
        contacted_to_qualified: Some(durations(&f.contacted_to_qualified)),
        qualified_to_converted: Some(durations(&f.qualified_to_converted)),
        captured_to_converted: Some(durations(&f.captured_to_converted)),
    }
}
