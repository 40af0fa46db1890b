//! `ChurnService` over the churn models (`crm_churn::service`): fits, stored models,
//! one customer's risk, and the customers ranked by value at risk.

use std::sync::Arc;

use crm_churn::models::StoredModel;
use crm_churn::predict::Prediction;
use crm_churn::service::{AtRisk, ChurnError, ChurnModels, RiskOrder};
use crm_churn::signals::Band;
use crm_proto::v1::{self, churn_service_server::ChurnService};
use tonic::{Request, Response, Status};

use super::{QueryPermits, as_of, consistent, now, opt_time, page_size, parse_id, principal, ts};
use crate::auth::{Authenticator, Permission};
use crate::status::{churn_error_status, invalid_query_field};

/// Horizon of the expected transactions when the request names none.
const DEFAULT_HORIZON_DAYS: u32 = 90;

#[derive(Clone, Debug)]
pub struct ChurnApi {
    churn: Arc<ChurnModels>,
    auth: Arc<Authenticator>,
    permits: QueryPermits,
    /// One FitModel at a time: a fit holds a query permit for seconds at a million
    /// customers, and concurrent fits would hold every permit.
    fitting: Arc<tokio::sync::Semaphore>,
}

impl ChurnApi {
    pub(crate) fn new(
        churn: Arc<ChurnModels>,
        auth: Arc<Authenticator>,
        permits: QueryPermits,
    ) -> Self {
        Self {
            churn,
            auth,
            permits,
            fitting: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    /// Runs `work` on a blocking thread once the churn read model reached the request's
    /// consistency token; returns its result and the read model's position.
    async fn run<T: Send + 'static, R>(
        &self,
        request: &Request<R>,
        consistency: Option<&v1::Consistency>,
        work: impl FnOnce(&ChurnModels, u64) -> Result<T, ChurnError> + Send + 'static,
    ) -> Result<(T, u64), Status> {
        let position = consistent(self.churn.read_model(), request, consistency).await?;
        let permit = self.permits.admit().await?;
        let churn = Arc::clone(&self.churn);
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&churn, position)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| churn_error_status(&e))?;
        Ok((out, position))
    }
}

/// The band as the API writes it.
pub(crate) fn band(b: Band) -> v1::RiskBand {
    match b {
        Band::Low => v1::RiskBand::Low,
        Band::Medium => v1::RiskBand::Medium,
        Band::High => v1::RiskBand::High,
    }
}

fn drivers(p: &Prediction) -> Vec<v1::RiskDriver> {
    p.risk
        .drivers
        .iter()
        .map(|d| v1::RiskDriver {
            name: d.name.to_owned(),
            delta: d.delta,
            detail: d.detail.clone(),
        })
        .collect()
}

fn model_reply(m: &StoredModel, served: bool, rules: &str) -> v1::ChurnModel {
    let (bg, gg) = (&m.fit.bgnbd, &m.fit.gamma_gamma);
    v1::ChurnModel {
        model_id: m.model_id.clone(),
        calibration_end: ts(m.fit.calibration_end),
        time_unit: m.fit.time_unit.name().to_owned(),
        customers: m.fit.customers,
        repeat_customers: m.fit.repeat_customers,
        bgnbd: Some(v1::BgNbdParameters {
            r: bg.params.r,
            alpha: bg.params.alpha,
            a: bg.params.a,
            b: bg.params.b,
        }),
        log_likelihood: bg.log_likelihood,
        gamma_gamma: Some(v1::GammaGammaParameters {
            p: gg.params.p,
            q: gg.params.q,
            gamma: gg.params.gamma,
        }),
        iterations: bg.iterations,
        converged: true,
        position: m.position,
        gamma_gamma_log_likelihood: gg.log_likelihood,
        gamma_gamma_iterations: gg.iterations,
        gamma_gamma_customers: gg.customers,
        currency: m.currency.clone(),
        served,
        fitted_at: ts(m.fitted_at),
        fitted_by: m.fitted_by.clone(),
        risk_rules: rules.to_owned(),
    }
}

/// Where a listing continues: the snapshot and the last customer of the page before.
#[derive(Debug, PartialEq)]
struct Cursor {
    as_of: i64,
    order: u8,
    key: f64,
    customer: [u8; 16],
    model_id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        let mut b = Vec::with_capacity(33 + self.model_id.len());
        b.extend_from_slice(&self.as_of.to_be_bytes());
        b.push(self.order);
        b.extend_from_slice(&self.key.to_bits().to_be_bytes());
        b.extend_from_slice(&self.customer);
        b.extend_from_slice(self.model_id.as_bytes());
        hex::encode(b)
    }

    fn decode(token: &str) -> Result<Option<Self>, Status> {
        let bad = || invalid_query_field("page_token", "not a token this service issued");
        let Some(b) = super::page_token(token)? else {
            return Ok(None);
        };
        if b.len() < 33 {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> [u8; 8] { b[r].try_into().unwrap_or([0; 8]) };
        Ok(Some(Self {
            as_of: i64::from_be_bytes(num(0..8)),
            order: b[8],
            key: f64::from_bits(u64::from_be_bytes(num(9..17))),
            customer: b[17..33].try_into().map_err(|_| bad())?,
            model_id: String::from_utf8(b[33..].to_vec()).map_err(|_| bad())?,
        }))
    }
}

fn order(o: v1::AtRiskOrder) -> RiskOrder {
    match o {
        v1::AtRiskOrder::Unspecified | v1::AtRiskOrder::ValueAtRisk => RiskOrder::ValueAtRisk,
        v1::AtRiskOrder::Risk => RiskOrder::Risk,
        v1::AtRiskOrder::Clv => RiskOrder::Clv,
    }
}

fn at_risk(e: &AtRisk) -> v1::AtRiskCustomer {
    let p = &e.prediction;
    v1::AtRiskCustomer {
        customer_id: uuid::Uuid::from_bytes(e.customer).to_string(),
        p_alive: p.p_alive,
        clv: p.clv,
        value_at_risk: e.value_at_risk,
        risk_score: p.risk.score,
        band: band(p.risk.band).into(),
        expected_transactions: p.expected_transactions,
        drivers: drivers(p),
    }
}

#[tonic::async_trait]
impl ChurnService for ChurnApi {
    async fn fit_model(
        &self,
        request: Request<v1::FitModelRequest>,
    ) -> Result<Response<v1::ChurnModel>, Status> {
        let who = principal(
            &self.auth,
            &request,
            Permission::ChurnRead,
            "fit a churn model",
        )?;
        let r = request.get_ref();
        if r.serve {
            principal(
                &self.auth,
                &request,
                Permission::ChurnAdmin,
                "serve a churn model",
            )?;
        }
        let end = opt_time(r.calibration_end.as_ref(), "calibration_end")?
            .ok_or_else(|| invalid_query_field("calibration_end", "is required"))?;
        let serve = r.serve;
        let rules = self.churn.config().predict.rules.version;
        let _fitting = self.fitting.try_acquire().map_err(|_| {
            Status::resource_exhausted(
                "another FitModel is running (one at a time); retry when it has answered",
            )
        })?;
        let (model, _) = self
            .run(&request, r.consistency.as_ref(), move |churn, _| {
                churn.fit(end, serve, &who.name, now())
            })
            .await?;
        let served = serve || self.served_id().await? == Some(model.model_id.clone());
        Ok(Response::new(model_reply(&model, served, rules)))
    }

    async fn get_model(
        &self,
        request: Request<v1::GetModelRequest>,
    ) -> Result<Response<v1::ChurnModel>, Status> {
        principal(
            &self.auth,
            &request,
            Permission::ChurnRead,
            "read churn models",
        )?;
        let id = request.get_ref().model_id.clone();
        let (model, _) = self
            .run(&request, None, move |churn, _| churn.model(&id))
            .await?;
        let served = self.served_id().await? == Some(model.model_id.clone());
        let rules = self.churn.config().predict.rules.version;
        Ok(Response::new(model_reply(&model, served, rules)))
    }

    async fn get_customer_risk(
        &self,
        request: Request<v1::GetCustomerRiskRequest>,
    ) -> Result<Response<v1::CustomerRisk>, Status> {
        principal(
            &self.auth,
            &request,
            Permission::ChurnRead,
            "read churn risk",
        )?;
        let r = request.get_ref();
        let customer = parse_id(&r.customer_id, "customer_id")?;
        let at = as_of(r.as_of.as_ref(), "as_of")?;
        let horizon = match r.horizon_days {
            0 => DEFAULT_HORIZON_DAYS,
            1..=3650 => r.horizon_days,
            _ => {
                return Err(invalid_query_field(
                    "horizon_days",
                    "must be 1-3650 (0: the default, 90)",
                ));
            }
        };
        let id = r.model_id.clone();
        let ((model, p), position) = self
            .run(&request, r.consistency.as_ref(), move |churn, _| {
                let model = churn.model(&id)?;
                let p = churn.customer(customer, at, &model, f64::from(horizon))?;
                Ok((model, p))
            })
            .await?;
        Ok(Response::new(v1::CustomerRisk {
            customer_id: r.customer_id.to_lowercase(),
            model_id: model.model_id.clone(),
            as_of: ts(at),
            time_unit: model.fit.time_unit.name().to_owned(),
            x: p.stats.x,
            t_x: p.stats.t_x,
            t: p.stats.t,
            p_alive: p.p_alive,
            expected_transactions: p.expected_transactions,
            expected_average_spend: p.expected_average_spend,
            clv: p.clv,
            risk_score: p.risk.score,
            band: band(p.risk.band).into(),
            drivers: drivers(&p),
            horizon_days: horizon,
            currency: model.currency,
            value_at_risk: p.clv * (1.0 - p.p_alive),
            position,
            base_risk: p.risk.base,
        }))
    }

    async fn list_at_risk(
        &self,
        request: Request<v1::ListAtRiskRequest>,
    ) -> Result<Response<v1::ListAtRiskReply>, Status> {
        principal(
            &self.auth,
            &request,
            Permission::ChurnRead,
            "list customers at risk",
        )?;
        let r = request.get_ref();
        let size = page_size(r.page_size)?;
        let cursor = Cursor::decode(&r.page_token)?;
        let by = order(r.order_by());
        if cursor.as_ref().is_some_and(|c| c.order != by as u8) {
            return Err(invalid_query_field(
                "page_token",
                "was issued for another order_by: keep the order while paging",
            ));
        }
        let wanted_band = match r.band() {
            v1::RiskBand::Unspecified => None,
            b => Some(b),
        };
        if !r.min_clv.is_finite() {
            return Err(invalid_query_field("min_clv", "must be a finite number"));
        }
        let min_clv = r.min_clv;
        let min_position = r.consistency.as_ref().map_or(0, |c| c.min_position);
        let started = now();
        let ((page, next, total, ranking), _) = self
            .run(&request, r.consistency.as_ref(), move |churn, _| {
                let model = match &cursor {
                    Some(c) => churn.model(&c.model_id)?,
                    None => churn.model("")?,
                };
                let ranking = churn.ranking(
                    &model,
                    cursor.as_ref().map(|c| c.as_of),
                    started,
                    min_position,
                )?;
                let admits = |e: &AtRisk| {
                    e.prediction.clv >= min_clv
                        && wanted_band.is_none_or(|b| band(e.prediction.risk.band) == b)
                };
                let ordered = ranking.ordered(by);
                let after = |e: &AtRisk| match &cursor {
                    None => true,
                    Some(c) => {
                        let k = e.key(by);
                        k < c.key || (k.to_bits() == c.key.to_bits() && e.customer > c.customer)
                    }
                };
                let total = ordered
                    .iter()
                    .filter(|&&i| admits(&ranking.entries[i as usize]))
                    .count() as u64;
                let mut page: Vec<&AtRisk> = ordered
                    .iter()
                    .map(|&i| &ranking.entries[i as usize])
                    .filter(|e| admits(e) && after(e))
                    .take(size + 1)
                    .collect();
                let more = page.len() > size;
                page.truncate(size);
                let next = page.last().filter(|_| more).map(|e| Cursor {
                    as_of: ranking.as_of,
                    order: by as u8,
                    key: e.key(by),
                    customer: e.customer,
                    model_id: ranking.model_id.clone(),
                });
                let page: Vec<v1::AtRiskCustomer> = page.into_iter().map(at_risk).collect();
                Ok((page, next, total, ranking))
            })
            .await?;
        Ok(Response::new(v1::ListAtRiskReply {
            customers: page,
            next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
            model_id: ranking.model_id.clone(),
            as_of: ts(ranking.as_of),
            position: ranking.position,
            total,
            currency: self.churn.config().currency.clone(),
        }))
    }
}

impl ChurnApi {
    async fn served_id(&self) -> Result<Option<String>, Status> {
        let churn = Arc::clone(&self.churn);
        tokio::task::spawn_blocking(move || churn.served_id())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| churn_error_status(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_tokens_are_refused() {
        let c = Cursor {
            as_of: -5,
            order: 2,
            key: 12.5,
            customer: [7; 16],
            model_id: "20260101-42-day".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), Some(c));
        assert_eq!(Cursor::decode("").unwrap(), None);
        let e = Cursor::decode("abcd").unwrap_err();
        assert!(e.message().contains("page_token"), "{e:?}");
    }
}
