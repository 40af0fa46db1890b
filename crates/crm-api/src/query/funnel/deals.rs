//! `ListDeals`: the deals behind a figure, paged in opportunity id order.

use crm_funnel::{DAY_MICROS, DealAt, DealSelection, DealStatus, Forecast, deals_page, keys};
use crm_proto::v1;
use tonic::{Request, Response, Status};

use super::super::{as_of, money, opt_time, page_size, page_token, ts, uuid_str};
use super::{FunnelApi, filter};
use crate::status::invalid_query_field;

pub(super) async fn list(
    api: &FunnelApi,
    request: Request<v1::ListDealsRequest>,
) -> Result<Response<v1::ListDealsReply>, Status> {
    api.authorize(&request)?;
    let r = request.get_ref();
    let at = as_of(r.as_of.as_ref(), "as_of")?;
    let selection = selection(r)?;
    let admits = filter(r.filter.as_ref())?;
    let size = page_size(r.page_size)?;
    let after = page_token(&r.page_token)?;
    if after
        .as_ref()
        .is_some_and(|k| k.len() != 17 || k[0] != keys::DEAL)
    {
        return Err(invalid_query_field(
            "page_token",
            "not a token this service issued",
        ));
    }
    let (mut deals, position) = api
        .run(&request, r.consistency.as_ref(), move |model| {
            // One more than a page tells whether another page follows.
            deals_page(model, at, after.as_deref(), size + 1, &|d| {
                admits.admits(d) && selection.selects(d, at)
            })
        })
        .await?;
    let next_page_token = if deals.len() > size {
        deals.truncate(size);
        deals
            .last()
            .map(|d| hex::encode(keys::deal_key(d.id)))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Response::new(v1::ListDealsReply {
        position,
        as_of: ts(at),
        deals: deals.iter().map(|d| item(d, at)).collect(),
        next_page_token,
    }))
}

fn selection(r: &v1::ListDealsRequest) -> Result<DealSelection, Status> {
    let status = match v1::DealState::try_from(r.state) {
        Ok(v1::DealState::Unspecified) => None,
        Ok(v1::DealState::Open) => Some(DealStatus::Open),
        Ok(v1::DealState::Won) => Some(DealStatus::Won),
        Ok(v1::DealState::Lost) => Some(DealStatus::Lost),
        Err(_) => return Err(invalid_query_field("state", "not a known deal state")),
    };
    let stale_after = match r.stale_after_days {
        0 => None,
        1..=3650 => Some(i64::from(r.stale_after_days) * DAY_MICROS),
        _ => {
            return Err(invalid_query_field(
                "stale_after_days",
                "must be 1-3650 (0: no limit)",
            ));
        }
    };
    let start = opt_time(r.period_start.as_ref(), "period_start")?;
    let end = opt_time(r.period_end.as_ref(), "period_end")?;
    let period = match (start, end) {
        (None, None) => None,
        (Some(s), Some(e)) if e > s => Some((s, e)),
        (Some(_), Some(_)) => {
            return Err(invalid_query_field(
                "period_end",
                "must be after period_start",
            ));
        }
        (Some(_), None) => {
            return Err(invalid_query_field(
                "period_end",
                "required with period_start",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid_query_field(
                "period_start",
                "required with period_end",
            ));
        }
    };
    let category = match v1::ForecastCategory::try_from(r.category) {
        Ok(v1::ForecastCategory::Unspecified) => None,
        Ok(v1::ForecastCategory::Pipeline) => Some(Forecast::Pipeline),
        Ok(v1::ForecastCategory::BestCase) => Some(Forecast::BestCase),
        Ok(v1::ForecastCategory::Commit) => Some(Forecast::Commit),
        Ok(v1::ForecastCategory::Closed) => Some(Forecast::Closed),
        Err(_) => {
            return Err(invalid_query_field(
                "category",
                "not a known forecast category",
            ));
        }
    };
    if category.is_some() && period.is_none() {
        return Err(invalid_query_field(
            "category",
            "needs period_start and period_end",
        ));
    }
    Ok(DealSelection {
        pipeline: Some(r.pipeline.clone()).filter(|p| !p.is_empty()),
        status,
        stage: Some(r.stage.clone()).filter(|s| !s.is_empty()),
        stale_after,
        period,
        category,
    })
}

#[allow(clippy::cast_precision_loss)]
fn item(d: &DealAt, at: i64) -> v1::DealItem {
    v1::DealItem {
        opportunity_id: uuid_str(d.id),
        customer_id: uuid_str(d.customer),
        name: d.name.clone(),
        pipeline: d.pipeline.clone(),
        stage: d.stage.clone(),
        state: match d.status {
            DealStatus::Open => v1::DealState::Open,
            DealStatus::Won => v1::DealState::Won,
            DealStatus::Lost => v1::DealState::Lost,
        }
        .into(),
        amount: Some(money(d.amount_minor, &d.currency)),
        probability_pct: u32::from(d.probability_pct),
        forecast_category: crm_funnel::category_name(d.forecast).to_owned(),
        owner: d.owner.clone().unwrap_or_default(),
        team: d.team.clone().unwrap_or_default(),
        lead_source: d.source.clone().unwrap_or_default(),
        campaign_id: d.campaign.map(uuid_str).unwrap_or_default(),
        opened_at: ts(d.opened_at),
        expected_close: d.expected_close.and_then(ts),
        stage_entered_at: ts(d.stage_entered_at()),
        days_in_stage: if d.status == DealStatus::Open {
            at.saturating_sub(d.stage_entered_at()).max(0) as f64 / DAY_MICROS as f64
        } else {
            0.0
        },
        closed_at: d.closed_at.and_then(ts),
        loss_reason: d.loss_reason.clone().unwrap_or_default(),
    }
}
