//! `QueryService`: the customer 360° read model's queries.

use std::sync::Arc;

use crm_customer360::reply::{classification, customer360, read_info};
use crm_customer360::view::{Lifecycle, ValueClass};
use crm_customer360::{CustomerSort, ListFilter, Queries, TimelineFilter};
use crm_proto::v1::{self, query_service_server::QueryService};
use tonic::{Request, Response, Status};

use super::{
    QUERY_QUEUE_WAIT, QueryPermits, as_of, consistent, now, page_size, page_token, parse_id,
    principal, ts, uuid_str,
};
use crate::auth::{Authenticator, Permission, Principal};
use crate::status::{invalid_query_field, query_error_status};

#[derive(Clone, Debug)]
pub struct QueryApi {
    queries: Arc<Queries>,
    auth: Arc<Authenticator>,
    permits: QueryPermits,
    /// The churn models, for the 360's predictions (none when the read side hosts none).
    churn: Option<Arc<crm_churn::service::ChurnModels>>,
}

impl QueryApi {
    #[must_use]
    pub fn new(queries: Arc<Queries>, auth: Arc<Authenticator>, max_concurrent: usize) -> Self {
        Self {
            queries,
            auth,
            permits: QueryPermits::new(max_concurrent, QUERY_QUEUE_WAIT),
            churn: None,
        }
    }

    /// Fills GetCustomer360's predictions from the served churn model.
    #[must_use]
    pub fn with_churn(mut self, churn: Arc<crm_churn::service::ChurnModels>) -> Self {
        self.churn = Some(churn);
        self
    }

    /// The served churn model's figures for a customer at `as_of`: `None` without a
    /// served model, a purchase by then, or a churn read model being built.
    async fn predictions(
        &self,
        id: [u8; 16],
        as_of: i64,
    ) -> Result<Option<v1::Predictions>, Status> {
        use crm_churn::service::ChurnError as E;
        let Some(churn) = self.churn.clone() else {
            return Ok(None);
        };
        let permit = self.permits.admit().await?;
        let found = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let model = churn.model("")?;
            // The field is named for 90 days, whatever the configured default.
            churn.customer(id, as_of, &model, 90.0).map(|p| (model, p))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        match found {
            Ok((model, p)) => Ok(Some(v1::Predictions {
                model_version: model.model_id.clone(),
                p_alive: p.p_alive,
                expected_purchases_90d: p.expected_transactions,
                #[allow(clippy::cast_possible_truncation)]
                predicted_lifetime_value: Some(crm_proto::money(
                    p.clv.round() as i64,
                    &model.currency,
                )),
                churn_risk: p.risk.score,
                band: super::churn::band(p.risk.band).into(),
            })),
            Err(
                E::NoServedModel
                | E::NotInPopulation(_)
                | E::Projection(crm_projection::ProjectionError::NotServing(_)),
            ) => Ok(None),
            Err(e) => Err(crate::status::churn_error_status(&e)),
        }
    }

    /// The query limit, to share with the read side's other query services.
    pub(crate) fn permits(&self) -> QueryPermits {
        self.permits.clone()
    }

    /// Runs a query's storage work on a blocking thread (sled reads may wait for a
    /// write-back: never on a runtime worker), within the query limit.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Queries) -> Result<T, crm_customer360::QueryError> + Send + 'static,
    ) -> Result<T, Status> {
        let permit = self.permits.admit().await?;
        let queries = Arc::clone(&self.queries);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&queries)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| query_error_status(&e))
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        principal(
            &self.auth,
            request,
            Permission::CustomersRead,
            "read customers",
        )
    }

    async fn consistent<T>(
        &self,
        request: &Request<T>,
        consistency: Option<&v1::Consistency>,
    ) -> Result<u64, Status> {
        consistent(self.queries.model(), request, consistency).await
    }
}

fn lifecycle_from(s: &str) -> Result<Option<Lifecycle>, Status> {
    Ok(Some(match s {
        "" => return Ok(None),
        "prospect" => Lifecycle::Prospect,
        "new" => Lifecycle::New,
        "repeat" => Lifecycle::Repeat,
        "dormant" => Lifecycle::Dormant,
        "churned" => Lifecycle::Churned,
        _ => {
            return Err(invalid_query_field(
                "lifecycle",
                "must be one of prospect, new, repeat, dormant, churned",
            ));
        }
    }))
}

fn value_class_from(s: &str) -> Result<Option<ValueClass>, Status> {
    Ok(Some(match s {
        "" => return Ok(None),
        "unscored" => ValueClass::Unscored,
        "high_value" => ValueClass::High,
        "potential" => ValueClass::Potential,
        "general" => ValueClass::General,
        "lost" => ValueClass::Lost,
        _ => {
            return Err(invalid_query_field(
                "value_class",
                "must be one of unscored, high_value, potential, general, lost",
            ));
        }
    }))
}

#[tonic::async_trait]
impl QueryService for QueryApi {
    async fn get_customer360(
        &self,
        request: Request<v1::GetCustomer360Request>,
    ) -> Result<Response<v1::Customer360>, Status> {
        let principal = self.principal(&request)?;
        let req = request.get_ref();
        let id = parse_id(&req.customer_id, "customer_id")?;
        let as_of = as_of(req.as_of.as_ref(), "as_of")?;
        let position = self.consistent(&request, req.consistency.as_ref()).await?;
        let found = self
            .read(move |q| {
                let Some(record) = q.customer(id)? else {
                    return Ok(None);
                };
                let facts = q.facts(id)?;
                // A recomputation scans every customer's facts.
                let population = match q.fresh_population() {
                    Some(p) => p,
                    None => q.population()?,
                };
                let classes = q.classify(&record, &facts, &population, as_of);
                Ok(Some((record, classes)))
            })
            .await?;
        let (record, classes) = found.ok_or_else(|| {
            Status::not_found(format!(
                "no customer {} in the read model (at position {position})",
                req.customer_id
            ))
        })?;
        let mut reply = customer360(
            &record,
            &classes,
            as_of,
            principal.allows(Permission::PiiRead),
            position,
        );
        if principal.allows(Permission::ChurnRead) {
            reply.predictions = self.predictions(id, as_of).await?;
        }
        Ok(Response::new(reply))
    }

    async fn list_customers(
        &self,
        request: Request<v1::ListCustomersRequest>,
    ) -> Result<Response<v1::ListCustomersReply>, Status> {
        let principal = self.principal(&request)?;
        let req = request.get_ref();
        let as_of = as_of(req.as_of.as_ref(), "as_of")?;
        let filter = ListFilter {
            tag: Some(req.tag.clone()).filter(|s| !s.is_empty()),
            owner: Some(req.owner.clone()).filter(|s| !s.is_empty()),
            lifecycle: lifecycle_from(&req.lifecycle)?,
            value_class: value_class_from(&req.value_class)?,
            segment: Some(req.segment.clone()).filter(|s| !s.is_empty()),
        };
        let sort = match v1::CustomerSort::try_from(req.sort) {
            Ok(v1::CustomerSort::Unspecified | v1::CustomerSort::Id) => CustomerSort::Id,
            Ok(v1::CustomerSort::Recency) => CustomerSort::Recency,
            Ok(v1::CustomerSort::Value) => CustomerSort::Value,
            Err(_) => return Err(invalid_query_field("sort", "unknown sort order")),
        };
        let limit = page_size(req.page_size)?;
        let cursor = page_token(&req.page_token)?;
        let position = self.consistent(&request, req.consistency.as_ref()).await?;
        let page = self
            .read(move |q| q.list(&filter, sort, cursor.as_deref(), limit, as_of))
            .await?;
        let pii = principal.allows(Permission::PiiRead);
        Ok(Response::new(v1::ListCustomersReply {
            read: read_info(position, as_of),
            customers: page
                .customers
                .iter()
                .map(|l| v1::CustomerListItem {
                    customer_id: uuid_str(l.record.id),
                    display_name: if pii {
                        format!(
                            "{} {}",
                            l.record.profile.given_name, l.record.profile.family_name
                        )
                    } else {
                        String::new()
                    },
                    owner: l.record.owner.clone().unwrap_or_default(),
                    classification: Some(classification(&l.classes, &l.record, as_of)),
                    orders: l.record.commerce.orders,
                    last_order_at: l.record.commerce.last_order_at.and_then(ts),
                    tags: l.record.tags.iter().cloned().collect(),
                })
                .collect(),
            next_page_token: page.next_cursor.map(hex::encode).unwrap_or_default(),
        }))
    }

    async fn get_timeline(
        &self,
        request: Request<v1::GetTimelineRequest>,
    ) -> Result<Response<v1::GetTimelineReply>, Status> {
        let principal = self.principal(&request)?;
        let pii = principal.allows(Permission::PiiRead);
        let req = request.get_ref();
        let id = parse_id(&req.customer_id, "customer_id")?;
        let filter = TimelineFilter {
            event_types: req.event_types.clone(),
            from: req
                .from
                .as_ref()
                .map(|t| as_of(Some(t), "from"))
                .transpose()?,
            to: req.to.as_ref().map(|t| as_of(Some(t), "to")).transpose()?,
            newest_first: req.newest_first,
        };
        let limit = page_size(req.page_size)?;
        let cursor = page_token(&req.page_token)?;
        let position = self.consistent(&request, req.consistency.as_ref()).await?;
        let page = self
            .read(move |q| {
                if q.customer(id)?.is_none() {
                    return Ok(None);
                }
                q.timeline(id, &filter, cursor.as_deref(), limit).map(Some)
            })
            .await?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no customer {} in the read model (at position {position})",
                    req.customer_id
                ))
            })?;
        Ok(Response::new(v1::GetTimelineReply {
            read: read_info(position, now()),
            entries: page
                .entries
                .into_iter()
                .map(|e| v1::TimelineEntry {
                    position: e.seq,
                    event_id: uuid_str(e.event_id),
                    event_type: e.event_type,
                    source: e.source,
                    version: e.version,
                    occurred_at: ts(e.occurred_at),
                    recorded_at: ts(e.recorded_at),
                    actor: e.actor,
                    summary: e.summary.render(pii),
                })
                .collect(),
            next_page_token: page.next_cursor.map(hex::encode).unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::QueryPermits;

    #[tokio::test]
    async fn queries_beyond_the_limit_wait_for_a_turn_and_are_refused_after_the_wait() {
        let permits = QueryPermits::new(2, std::time::Duration::from_millis(50));
        let a = permits.admit().await.unwrap();
        let _b = permits.admit().await.unwrap();
        let refused = permits.admit().await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("limit of 2"),
            "{}",
            refused.message()
        );
        // A waiting query gets the turn of one that finishes.
        let waiting = tokio::spawn({
            let permits = permits.clone();
            async move { permits.admit().await.map(|_| ()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        drop(a);
        assert!(waiting.await.unwrap().is_ok());
    }
}
