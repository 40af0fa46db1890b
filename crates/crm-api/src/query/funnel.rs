//! `FunnelService` over the funnel read model (`crm_funnel`).

use std::sync::Arc;

use crm_domain::DomainConfig;
use crm_funnel::{
    DAY_MICROS, DealAt, Durations, FunnelFilter, GroupBy, Movement, PeriodForecast, PipelineFunnel,
    deals_at, forecast_movements, period_forecast, pipeline_funnel,
};

mod campaigns;
mod deals;
mod leads;
use crm_projection::ReadModel;
use crm_proto::v1::{self, funnel_service_server::FunnelService};
use tonic::{Request, Response, Status};

use super::{QueryPermits, as_of, consistent, opt_time, parse_id, principal, ts};
use crate::auth::{Authenticator, Permission};
use crate::status::{invalid_query_field, projection_status};

/// Days in a stage after which a deal is stale when the request names none.
const DEFAULT_STALE_DAYS: u32 = 30;

#[derive(Clone, Debug)]
pub struct FunnelApi {
    model: ReadModel,
    /// The pipelines (their stage order) the command side decides with.
    config: Arc<DomainConfig>,
    auth: Arc<Authenticator>,
    permits: QueryPermits,
}

impl FunnelApi {
    pub(crate) fn new(
        model: ReadModel,
        config: Arc<DomainConfig>,
        auth: Arc<Authenticator>,
        permits: QueryPermits,
    ) -> Self {
        Self {
            model,
            config,
            auth,
            permits,
        }
    }
}

fn filter(f: Option<&v1::FunnelFilter>) -> Result<FunnelFilter, Status> {
    let Some(f) = f else {
        return Ok(FunnelFilter::default());
    };
    Ok(FunnelFilter {
        owner: Some(f.owner.clone()).filter(|o| !o.is_empty()),
        team: Some(f.team.clone()).filter(|t| !t.is_empty()),
        source: Some(f.lead_source.clone()).filter(|s| !s.is_empty()),
        campaign: if f.campaign_id.is_empty() {
            None
        } else {
            Some(parse_id(&f.campaign_id, "filter.campaign_id")?)
        },
        opened_from: opt_time(f.opened_from.as_ref(), "filter.opened_from")?,
        opened_to: opt_time(f.opened_to.as_ref(), "filter.opened_to")?,
    })
}

fn durations(d: &Durations) -> v1::Durations {
    v1::Durations {
        count: d.count,
        median_days: d.median_days,
        p90_days: d.p90_days,
        mean_days: d.mean_days,
    }
}

fn reply(f: &PipelineFunnel, pipeline: &str, position: u64) -> v1::PipelineFunnelReply {
    let amounts = |m: &std::collections::BTreeMap<String, i64>| {
        m.iter()
            .map(|(currency, minor)| v1::CurrencyAmount {
                currency: currency.clone(),
                minor: *minor,
            })
            .collect()
    };
    let values = |m: &std::collections::BTreeMap<String, f64>| {
        m.iter()
            .map(|(currency, value)| v1::CurrencyValue {
                currency: currency.clone(),
                value: *value,
            })
            .collect()
    };
    v1::PipelineFunnelReply {
        position,
        as_of: ts(f.as_of),
        pipeline: pipeline.to_owned(),
        deals: f.deals,
        stages: f
            .stages
            .iter()
            .map(|s| v1::FunnelStage {
                stage: s.stage.clone(),
                reached: s.reached,
                conversion_from_previous: s.conversion_from_previous,
                conversion_from_first: s.conversion_from_first,
                open: s.open,
                latest: Some(durations(&s.latest)),
                cumulative: Some(durations(&s.cumulative)),
                stale: s.stale,
            })
            .collect(),
        open: f.open,
        won: f.won,
        lost: f.lost,
        win_rate: f.win_rate,
        won_amount: amounts(&f.won_amount),
        lost_amount: amounts(&f.lost_amount),
        win_rate_by_amount: values(&f.win_rate_by_amount),
        loss_reasons: f
            .loss_reasons
            .iter()
            .map(|(reason, deals)| v1::LossReason {
                reason: reason.clone(),
                deals: *deals,
            })
            .collect(),
        cycle: Some(durations(&f.cycle)),
        velocity_per_day: values(&f.velocity_per_day),
    }
}

fn forecast_reply(
    f: &PeriodForecast,
    movements: &[crm_funnel::DealMovement],
    at: i64,
    position: u64,
) -> v1::ForecastReply {
    use v1::ForecastMovementKind as K;
    v1::ForecastReply {
        position,
        as_of: ts(at),
        period_start: ts(f.start),
        period_end: ts(f.end),
        groups: f
            .groups
            .iter()
            .map(|(group, by_currency)| v1::ForecastGroup {
                group: group.clone(),
                rollups: by_currency
                    .iter()
                    .map(|(currency, r)| v1::ForecastRollup {
                        currency: currency.clone(),
                        closed: r.closed,
                        commit: r.commit,
                        best_case: r.best_case,
                        pipeline: r.pipeline,
                        weighted: r.weighted,
                    })
                    .collect(),
            })
            .collect(),
        movements: movements
            .iter()
            .map(|m| v1::ForecastMovement {
                opportunity_id: uuid::Uuid::from_bytes(m.deal).to_string(),
                kind: match m.movement {
                    Movement::New => K::New,
                    Movement::MovedIn => K::MovedIn,
                    Movement::MovedOut => K::MovedOut,
                    Movement::Won => K::Won,
                    Movement::Lost => K::Lost,
                    Movement::AmountChanged => K::AmountChanged,
                }
                .into(),
                currency: m.currency.clone(),
                amount_before: m.amount_before,
                amount_after: m.amount_after,
            })
            .collect(),
    }
}

/// The deals of `pipeline` (all when empty) that `filter` admits, as of `at`.
fn admitted(
    model: &ReadModel,
    at: i64,
    pipeline: &str,
    filter: &FunnelFilter,
) -> Result<Vec<DealAt>, crm_projection::ProjectionError> {
    Ok(deals_at(model, at)?
        .into_iter()
        .filter(|d| (pipeline.is_empty() || d.pipeline == pipeline) && filter.admits(d))
        .collect())
}

#[tonic::async_trait]
impl FunnelService for FunnelApi {
    async fn get_pipeline_funnel(
        &self,
        request: Request<v1::GetPipelineFunnelRequest>,
    ) -> Result<Response<v1::PipelineFunnelReply>, Status> {
        self.authorize(&request)?;
        let r = request.get_ref();
        let key = if r.pipeline.is_empty() {
            self.config.default_pipeline.clone()
        } else {
            r.pipeline.clone()
        };
        let Some(pipeline) = self.config.pipelines.get(&key) else {
            let known: Vec<&str> = self.config.pipelines.keys().map(String::as_str).collect();
            return Err(Status::not_found(format!(
                "pipeline: no pipeline {key:?}; configured pipelines are {}",
                known.join(", ")
            )));
        };
        let stages: Vec<String> = pipeline.stages.iter().map(|s| s.key.clone()).collect();
        let at = as_of(r.as_of.as_ref(), "as_of")?;
        let filter = filter(r.filter.as_ref())?;
        let stale_days = match r.stale_after_days {
            0 => DEFAULT_STALE_DAYS,
            1..=3650 => r.stale_after_days,
            _ => {
                return Err(invalid_query_field(
                    "stale_after_days",
                    "must be 1-3650 (0: the default, 30)",
                ));
            }
        };
        let name = key.clone();
        let (funnel, position) = self
            .run(&request, r.consistency.as_ref(), move |model| {
                deals_at(model, at).map(|deals| {
                    pipeline_funnel(
                        &deals,
                        &key,
                        &stages,
                        at,
                        i64::from(stale_days) * DAY_MICROS,
                        &filter,
                    )
                })
            })
            .await?;
        Ok(Response::new(reply(&funnel, &name, position)))
    }

    async fn get_forecast(
        &self,
        request: Request<v1::GetForecastRequest>,
    ) -> Result<Response<v1::ForecastReply>, Status> {
        self.authorize(&request)?;
        let r = request.get_ref();
        let start = opt_time(r.period_start.as_ref(), "period_start")?
            .ok_or_else(|| invalid_query_field("period_start", "required"))?;
        let end = opt_time(r.period_end.as_ref(), "period_end")?
            .ok_or_else(|| invalid_query_field("period_end", "required"))?;
        if end <= start {
            return Err(invalid_query_field(
                "period_end",
                "must be after period_start",
            ));
        }
        let at = as_of(r.as_of.as_ref(), "as_of")?;
        let compare_to = opt_time(r.compare_to.as_ref(), "compare_to")?;
        if compare_to.is_some_and(|t| t > at) {
            return Err(invalid_query_field("compare_to", "must not be after as_of"));
        }
        let group_by = match v1::ForecastGroupBy::try_from(r.group_by) {
            Ok(v1::ForecastGroupBy::Unspecified) => GroupBy::Nothing,
            Ok(v1::ForecastGroupBy::Owner) => GroupBy::Owner,
            Ok(v1::ForecastGroupBy::Category) => GroupBy::Category,
            Ok(v1::ForecastGroupBy::Team) => GroupBy::Team,
            Err(_) => return Err(invalid_query_field("group_by", "not a known grouping")),
        };
        if !r.pipeline.is_empty() && !self.config.pipelines.contains_key(&r.pipeline) {
            return Err(Status::not_found(format!(
                "pipeline: no pipeline {:?}",
                r.pipeline
            )));
        }
        let filter = filter(r.filter.as_ref())?;
        let pipeline = r.pipeline.clone();
        let ((forecast, movements), position) = self
            .run(&request, r.consistency.as_ref(), move |model| {
                let now = admitted(model, at, &pipeline, &filter)?;
                let movements = match compare_to {
                    Some(then) => {
                        let before = admitted(model, then, &pipeline, &filter)?;
                        forecast_movements(&before, &now, start, end)
                    }
                    None => Vec::new(),
                };
                Ok((period_forecast(&now, start, end, group_by), movements))
            })
            .await?;
        Ok(Response::new(forecast_reply(
            &forecast, &movements, at, position,
        )))
    }

    async fn get_lead_funnel(
        &self,
        request: Request<v1::GetLeadFunnelRequest>,
    ) -> Result<Response<v1::LeadFunnelReply>, Status> {
        leads::get(self, request).await
    }

    async fn get_campaign_performance(
        &self,
        request: Request<v1::GetCampaignPerformanceRequest>,
    ) -> Result<Response<v1::CampaignPerformanceReply>, Status> {
        campaigns::get(self, request).await
    }

    async fn list_deals(
        &self,
        request: Request<v1::ListDealsRequest>,
    ) -> Result<Response<v1::ListDealsReply>, Status> {
        deals::list(self, request).await
    }
}

impl FunnelApi {
    /// Authorizes, waits for the consistency token, takes a query permit and runs `work`
    /// on the served build in a blocking thread: what every funnel query shares.
    async fn run<T: Send + 'static, R>(
        &self,
        request: &Request<R>,
        consistency: Option<&v1::Consistency>,
        work: impl FnOnce(&ReadModel) -> Result<T, crm_projection::ProjectionError> + Send + 'static,
    ) -> Result<(T, u64), Status> {
        let position = consistent(&self.model, request, consistency).await?;
        let permit = self.permits.admit().await?;
        let model = self.model.clone();
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&model)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| projection_status(&e))?;
        Ok((out, position))
    }

    fn authorize<R>(&self, request: &Request<R>) -> Result<(), Status> {
        principal(
            &self.auth,
            request,
            Permission::FunnelRead,
            "read the funnel",
        )
        .map(|_| ())
    }
}
