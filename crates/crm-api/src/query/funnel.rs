//! `FunnelService` over the funnel read model (`crm_funnel`).

use std::sync::Arc;

use crm_domain::DomainConfig;
use crm_funnel::{DAY_MICROS, Durations, FunnelFilter, PipelineFunnel, deals_at, pipeline_funnel};
use crm_projection::ReadModel;
use crm_proto::timestamp_from_proto;
use crm_proto::v1::{self, funnel_service_server::FunnelService};
use tonic::{Request, Response, Status};

use super::{QueryPermits, as_of, consistent, parse_id, principal, ts};
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

fn opt_time(t: Option<&prost_types::Timestamp>, field: &str) -> Result<Option<i64>, Status> {
    t.map(|t| {
        timestamp_from_proto(t)
            .map(|t| t.0)
            .ok_or_else(|| invalid_query_field(field, "not a valid timestamp"))
    })
    .transpose()
}

fn filter(f: Option<&v1::FunnelFilter>) -> Result<FunnelFilter, Status> {
    let Some(f) = f else {
        return Ok(FunnelFilter::default());
    };
    Ok(FunnelFilter {
        owner: Some(f.owner.clone()).filter(|o| !o.is_empty()),
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

#[tonic::async_trait]
impl FunnelService for FunnelApi {
    async fn get_pipeline_funnel(
        &self,
        request: Request<v1::GetPipelineFunnelRequest>,
    ) -> Result<Response<v1::PipelineFunnelReply>, Status> {
        principal(
            &self.auth,
            &request,
            Permission::FunnelRead,
            "read the funnel",
        )?;
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
        let position = consistent(&self.model, &request, r.consistency.as_ref()).await?;
        let permit = self.permits.admit().await?;
        let model = self.model.clone();
        let funnel = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            deals_at(&model, at).map(|deals| {
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
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| projection_status(&e))?;
        Ok(Response::new(reply(&funnel, &name, position)))
    }
}
