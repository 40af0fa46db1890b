//! `QueryService`: the customer 360° read model's queries.

use std::sync::Arc;

use crm_customer360::view::{self, LIFECYCLE_RULE, Lifecycle, VALUE_RULE, ValueClass};
use crm_customer360::{
    Classes, CustomerRecord, CustomerSort, DealStatus, ListFilter, Queries, TicketState,
    TimelineFilter,
};
use crm_domain::Timestamp;
use crm_proto::v1::{self, query_service_server::QueryService};
use tonic::{Request, Response, Status};

use super::{
    QUERY_QUEUE_WAIT, QueryPermits, as_of, consistent, money, now, page_size, page_token, parse_id,
    principal, ts, uuid_str,
};
use crate::auth::{Authenticator, Permission, Principal};
use crate::status::{invalid_query_field, query_error_status};

#[derive(Clone, Debug)]
pub struct QueryApi {
    queries: Arc<Queries>,
    auth: Arc<Authenticator>,
    permits: QueryPermits,
}

impl QueryApi {
    #[must_use]
    pub fn new(queries: Arc<Queries>, auth: Arc<Authenticator>, max_concurrent: usize) -> Self {
        Self {
            queries,
            auth,
            permits: QueryPermits::new(max_concurrent, QUERY_QUEUE_WAIT),
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

fn read_info(position: u64, as_of: i64) -> Option<v1::ReadInfo> {
    Some(v1::ReadInfo {
        position,
        as_of: ts(as_of),
        rules: vec![LIFECYCLE_RULE.into(), VALUE_RULE.into()],
    })
}

fn classification(c: &Classes, r: &CustomerRecord, as_of: i64) -> v1::Classification {
    v1::Classification {
        lifecycle: c.lifecycle.name().into(),
        value_class: c.value_class.name().into(),
        segment: c.segment.into(),
        recency_score: c.rfm.map_or(0, |s| u32::from(s.recency)),
        frequency_score: c.rfm.map_or(0, |s| u32::from(s.frequency)),
        monetary_score: c.rfm.map_or(0, |s| u32::from(s.monetary)),
        days_since_last_order: r
            .commerce
            .last_order_at
            .map(|l| (as_of - l).div_euclid(Timestamp::MICROS_PER_DAY)),
    }
}

/// Free text that can hold personal data: empty for a reader without `pii.read`.
fn personal(pii: bool, text: &str) -> String {
    if pii { text.to_owned() } else { String::new() }
}

#[allow(clippy::cast_precision_loss, clippy::too_many_lines)]
fn customer360(
    r: &CustomerRecord,
    c: &Classes,
    as_of: i64,
    pii: bool,
    position: u64,
) -> v1::Customer360 {
    let p = &r.profile;
    let profile = pii.then(|| v1::Profile {
        given_name: p.given_name.clone(),
        family_name: p.family_name.clone(),
        emails: p.emails.clone(),
        phones: p.phones.clone(),
        address: p.address.as_ref().map(|a| v1::Address {
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            region: a.region.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        }),
        language: p.language.clone().unwrap_or_default(),
        country: p.country.clone().unwrap_or_default(),
        external_ids: p
            .external_ids
            .iter()
            .map(|(system, id)| v1::ExternalId {
                system: system.clone(),
                id: id.clone(),
            })
            .collect(),
    });
    let cm = &r.commerce;
    let mut categories: Vec<_> = cm.categories.iter().collect();
    categories.sort_by(|a, b| b.1.units.cmp(&a.1.units).then(a.0.cmp(b.0)));
    let commerce = v1::CommerceSummary {
        orders: cm.orders,
        repeat_orders: cm.orders.saturating_sub(1),
        first_order_at: cm.first_order_at.and_then(ts),
        last_order_at: cm.last_order_at.and_then(ts),
        amounts: cm
            .amounts
            .iter()
            .map(|(cur, a)| v1::CurrencyAmounts {
                currency: cur.clone(),
                orders: a.orders,
                revenue_minor: a.revenue_minor,
                refunded_minor: a.refunded_minor,
                discount_minor: a.discount_minor,
                average_order_minor: a.revenue_minor / i64::from(a.orders.max(1)),
                refund_rate: if a.revenue_minor > 0 {
                    a.refunded_minor as f64 / a.revenue_minor as f64
                } else {
                    0.0
                },
            })
            .collect(),
        returns: cm.returns,
        items: cm.items,
        top_categories: categories
            .into_iter()
            .take(5)
            .map(|(name, s)| v1::CategoryCount {
                category: name.clone(),
                units: s.units,
                orders: s.orders,
            })
            .collect(),
    };
    let mut engagement = v1::EngagementSummary::default();
    for (channel, e) in &r.engagement {
        let w = view::windows(&e.per_day, as_of);
        engagement.interactions_last_30d += w.last_30d;
        engagement.interactions_previous_30d += w.prev_30d;
        engagement.interactions_last_90d += w.last_90d;
        engagement.interactions_previous_90d += w.prev_90d;
        engagement.channels.push(v1::ChannelEngagementSummary {
            channel: channel.clone(),
            last_contact_at: ts(e.last_at),
            inbound: e.inbound,
            outbound: e.outbound,
            last_30d: w.last_30d,
            previous_30d: w.prev_30d,
            last_90d: w.last_90d,
            previous_90d: w.prev_90d,
            mean_sentiment: (e.sentiment_count > 0)
                .then(|| e.sentiment_sum as f64 / f64::from(e.sentiment_count)),
        });
    }
    engagement.trend_30d = i64::from(engagement.interactions_last_30d)
        - i64::from(engagement.interactions_previous_30d);
    let s = view::sales(r);
    let amounts = |m: &std::collections::BTreeMap<String, i64>| -> Vec<v1::Money> {
        m.iter().map(|(c, v)| money(*v, c)).collect()
    };
    let sales = v1::SalesSummary {
        open: s.open,
        won: s.won,
        lost: s.lost,
        open_amount: amounts(&s.open_amount),
        weighted_pipeline: amounts(&s.weighted_pipeline),
        won_amount: amounts(&s.won_amount),
        lost_reasons: s
            .lost_reasons
            .iter()
            .map(|(reason, count)| v1::ReasonCount {
                reason: reason.clone(),
                count: *count,
            })
            .collect(),
        opportunities: r
            .opportunities
            .iter()
            .map(|(id, o)| v1::OpportunitySummary {
                opportunity_id: uuid_str(*id),
                name: o.name.clone(),
                pipeline: o.pipeline.clone(),
                stage: o.stage.clone(),
                probability_pct: u32::from(o.probability_pct),
                forecast_category: o.forecast.clone(),
                amount: Some(money(o.amount_minor, &o.currency)),
                status: match o.status {
                    DealStatus::Open => "open",
                    DealStatus::Won => "won",
                    DealStatus::Lost => "lost",
                }
                .into(),
                owner: o.owner.clone().unwrap_or_default(),
                opened_at: ts(o.opened_at),
                stage_entered_at: ts(o.stage_entered_at),
                closed_at: o.closed_at.and_then(ts),
                lost_reason: o.lost_reason.clone().unwrap_or_default(),
            })
            .collect(),
    };
    let m = &r.marketing;
    let marketing = v1::MarketingSummary {
        campaigns_received: u32::try_from(m.received.len()).unwrap_or(u32::MAX),
        campaigns_responded: u32::try_from(m.responses.len()).unwrap_or(u32::MAX),
        last_response_at: m.last_response_at.and_then(ts),
        last_response: m.last_response.clone().unwrap_or_default(),
        unsubscribes: m.unsubscribes,
        attributed_revenue: amounts(&m.attributed_minor),
        campaigns_received_without_consent: m.received_without_consent,
        campaigns_skipped: m.skipped,
    };
    let sv = view::service(r, as_of);
    let mut tickets: Vec<_> = r.tickets.iter().collect();
    tickets.sort_by_key(|(_, t)| {
        (
            !matches!(t.status, TicketState::Open | TicketState::AwaitingCustomer),
            std::cmp::Reverse(t.opened_at),
        )
    });
    let service = v1::ServiceSummary {
        open_tickets: sv.open,
        tickets_last_30d: sv.opened_30d,
        tickets_last_90d: sv.opened_90d,
        complaints_last_30d: sv.complaints_30d,
        complaints_last_90d: sv.complaints_90d,
        first_response_breaches: sv.first_response_breaches,
        resolution_breaches: sv.resolution_breaches,
        median_first_response_mins: sv.median_first_response_mins,
        median_resolution_mins: sv.median_resolution_mins,
        reopened: sv.reopened,
        last_csat: sv.last_csat.map(u32::from),
        average_csat: sv.average_csat,
        csat_share: sv.csat_pct,
        tickets: tickets
            .into_iter()
            .take(20)
            .map(|(id, t)| {
                let (frt, res) = view::sla_breaches(t, as_of);
                v1::TicketSummary {
                    ticket_id: uuid_str(*id),
                    subject: personal(pii, &t.subject),
                    category: t.category.clone(),
                    priority: t.priority.clone(),
                    status: match t.status {
                        TicketState::Open => "open",
                        TicketState::AwaitingCustomer => "awaiting_customer",
                        TicketState::Resolved => "resolved",
                        TicketState::Closed => "closed",
                    }
                    .into(),
                    agent: t.agent.clone().unwrap_or_default(),
                    opened_at: ts(t.opened_at),
                    first_response_at: t.first_response_at.and_then(ts),
                    resolved_at: t.resolved_at.and_then(ts),
                    closed_at: t.closed_at.and_then(ts),
                    reopened: t.reopened,
                    first_response_breached: frt,
                    resolution_breached: res,
                    csat: t.csat.map(u32::from),
                }
            })
            .collect(),
    };
    v1::Customer360 {
        read: read_info(position, as_of),
        customer_id: uuid_str(r.id),
        version: r.version,
        registered: r.registered,
        registered_at: r.registered.then(|| ts(r.registered_at)).flatten(),
        registered_by: r.registered_by.clone(),
        profile,
        pii_redacted: !pii,
        owner: r.owner.clone().unwrap_or_default(),
        team: r.team.clone().unwrap_or_default(),
        acquisition: r.acquisition.as_ref().map(|a| v1::Acquisition {
            source: a.source.clone(),
            medium: a.medium.clone(),
            campaign_id: a.campaign.map(uuid_str).unwrap_or_default(),
        }),
        origin_lead: r.origin_lead.as_ref().map(|l| v1::LeadOrigin {
            lead_id: uuid_str(l.lead_id),
            source: l.source.clone().unwrap_or_default(),
            captured_at: l.captured_at.and_then(ts),
            converted_at: l.converted_at.and_then(ts),
        }),
        consent: r
            .consent
            .iter()
            .map(|(channel, c)| v1::ConsentState {
                channel: channel.clone(),
                granted: c.granted,
                source: personal(pii, &c.source),
                changed_at: ts(c.changed_at),
            })
            .collect(),
        tags: r.tags.iter().cloned().collect(),
        relationships: r
            .relationships
            .iter()
            .map(|(kind, other)| v1::Relationship {
                kind: kind.clone(),
                other_customer_id: uuid_str(*other),
            })
            .collect(),
        classification: Some(classification(c, r, as_of)),
        commerce: Some(commerce),
        engagement: Some(engagement),
        sales: Some(sales),
        marketing: Some(marketing),
        service: Some(service),
        predictions: None,
        dead_lettered_positions: r.dead_letters.clone(),
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
        Ok(Response::new(customer360(
            &record,
            &classes,
            as_of,
            principal.allows(Permission::PiiRead),
            position,
        )))
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
