//! The customer's 360° view as `crm.v1` replies carry it (`GetCustomer360`, and the
//! auditors' as-of views, which must show exactly what the live query showed): one
//! rendering from the stored record, with personal data only for readers with
//! `pii.read`.

use crm_domain::Timestamp;
use crm_proto::{money, ts, v1};

use crate::view::{self, LIFECYCLE_RULE, VALUE_RULE};
use crate::{Classes, CustomerRecord, DealStatus, TicketState};

/// What a reply was read at: the position, the moment and the classification rules.
#[must_use]
pub fn read_info(position: u64, as_of: i64) -> Option<v1::ReadInfo> {
    Some(v1::ReadInfo {
        position,
        as_of: ts(as_of),
        rules: vec![LIFECYCLE_RULE.into(), VALUE_RULE.into()],
    })
}

fn uuid_str(id: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(id).to_string()
}

/// The classification part of the view.
#[must_use]
pub fn classification(c: &Classes, r: &CustomerRecord, as_of: i64) -> v1::Classification {
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
pub fn personal(pii: bool, text: &str) -> String {
    if pii { text.to_owned() } else { String::new() }
}

/// The customer's 360° view as the API answers it: `as_of` is the moment windows, SLA
/// states and day counts are measured at, `pii` whether the reader may see personal data
/// (without it every personal field is empty and `pii_redacted` is set), `position` the
/// stream position the record is as of.
#[allow(clippy::cast_precision_loss, clippy::too_many_lines)]
#[must_use]
pub fn customer360(
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
        forgotten: r.forgotten.as_ref().map(|f| v1::Erasure {
            at: ts(f.at),
            legal_basis: f.legal_basis.clone(),
            reason: f.reason.clone(),
            by: f.by.clone(),
        }),
    }
}
