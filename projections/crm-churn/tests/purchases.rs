//! The churn fold: purchases kept in business time, and the statistics the models need
//! taken from them at any cut (same-day orders one transaction, refunds by their own
//! time, other currencies counted for frequency only), then both models fitted on a
//! folded population.

use crm_churn::Churn;
use crm_churn::fit::{TimeUnit, fit_at};
use crm_churn::model::{Spend, Stats};
use crm_churn::purchases::{Purchases, key};
use crm_domain::{
    Actor, CommandId, Currency, CustomerEvent, CustomerId, DomainEvent, Money, OrderId,
    OrderPlaced, ReturnId, ReturnRecorded, Timestamp,
};
use crm_events::{Envelope, EventHash, EventMeta};
use crm_projection::{Event, FoldError, MemState, load};
use uuid::Uuid;

const DAY: i64 = Timestamp::MICROS_PER_DAY;
/// 2026-01-01T00:00:00Z.
const JAN1: i64 = 1_767_225_600_000_000;

fn order(customer: CustomerId, id: u128, minor: i64, currency: &str) -> DomainEvent {
    DomainEvent::Customer(
        customer,
        CustomerEvent::OrderPlaced(OrderPlaced {
            order_id: OrderId(Uuid::from_u128(id)),
            sales_channel: "web".into(),
            lines: vec![],
            discount_minor: 0,
            tax_minor: 0,
            shipping_minor: 0,
            total: Money {
                minor,
                currency: Currency::parse(currency).unwrap(),
            },
            campaign: None,
        }),
    )
}

fn refund(customer: CustomerId, order: u128, minor: i64) -> DomainEvent {
    DomainEvent::Customer(
        customer,
        CustomerEvent::ReturnRecorded(ReturnRecorded {
            return_id: ReturnId(Uuid::from_u128(order + 1_000)),
            order_id: OrderId(Uuid::from_u128(order)),
            lines: vec![],
            refund: Money {
                minor,
                currency: Currency::parse("EUR").unwrap(),
            },
            reason: String::new(),
        }),
    )
}

/// Folds `(business time, event)` pairs in stream order; the first refused event's error.
fn fold(events: &[(i64, DomainEvent)]) -> Result<MemState, FoldError> {
    let mut state = MemState::default();
    for (i, (at, event)) in events.iter().enumerate() {
        let seq = i as u64 + 1;
        let envelope = Envelope {
            meta: EventMeta {
                event_id: Uuid::from_u128(u128::from(seq)),
                version: seq,
                occurred_at: Timestamp(*at),
                recorded_at: Timestamp(*at),
                actor: Actor::User("alice".into()),
                command_id: CommandId(Uuid::from_u128(1000 + u128::from(seq))),
                correlation_id: Uuid::nil(),
                causation_id: None,
                commit_index: 0,
                commit_size: 1,
                prev_hash: EventHash::GENESIS,
            },
            aggregate: event.aggregate(),
            event_type: event.event_type().into(),
            schema_version: 1,
            event: event.clone(),
            hash: EventHash::GENESIS,
            sealing: crm_events::Sealing::Plain,
        };
        state.apply(
            &Churn::default(),
            &Event {
                seq,
                index: 0,
                subject: "crm.v1.test",
                envelope: &envelope,
            },
        )?;
    }
    Ok(state)
}

fn purchases(state: &mut MemState, c: CustomerId) -> Purchases {
    load(state, &key(c.0.into_bytes())).unwrap().unwrap()
}

#[test]
fn statistics_count_days_refunds_by_their_time_and_money_in_the_reporting_currency() {
    let c = CustomerId(Uuid::from_u128(7));
    let mut state = fold(&[
        // Day 0: two orders, one transaction worth 30 + 20.
        (JAN1 + 9 * 3_600_000_000, order(c, 1, 3_000, "EUR")),
        (JAN1 + 15 * 3_600_000_000, order(c, 2, 2_000, "EUR")),
        // Day 10: 40, of which 15 refunded on day 12.
        (JAN1 + 10 * DAY, order(c, 3, 4_000, "EUR")),
        (JAN1 + 12 * DAY, refund(c, 3, 1_500)),
        // Day 20: only dollars: a transaction, no money.
        (JAN1 + 20 * DAY, order(c, 4, 9_900, "USD")),
        // Day 30: 60.
        (JAN1 + 30 * DAY, order(c, 5, 6_000, "EUR")),
    ])
    .unwrap();
    let p = purchases(&mut state, c);
    // At day 40: repeat days 10, 20, 30; money on days 10 (25) and 30 (60).
    let (s, spend) = p.stats(JAN1 + 40 * DAY, "EUR").unwrap();
    assert_eq!(
        s,
        Stats {
            x: 3,
            t_x: 30.0,
            t: 40.0
        }
    );
    assert_eq!(spend, Some(Spend { x: 2, m_x: 4_250.0 }));
    // At day 11 (noon): the refund of day 12 not yet recorded, day 20 not yet there.
    let (s, spend) = p.stats(JAN1 + 11 * DAY + DAY / 2, "EUR").unwrap();
    assert_eq!(
        s,
        Stats {
            x: 1,
            t_x: 10.0,
            t: 11.0
        }
    );
    assert_eq!(spend, Some(Spend { x: 1, m_x: 4_000.0 }));
    // Before the first purchase: not in the population.
    assert_eq!(p.stats(JAN1 - 1, "EUR"), None);
    // In dollars: one repeat day with money.
    assert_eq!(
        p.stats(JAN1 + 40 * DAY, "USD").unwrap().1,
        Some(Spend { x: 1, m_x: 9_900.0 })
    );
}

#[test]
fn a_return_against_an_order_never_placed_is_refused() {
    let c = CustomerId(Uuid::from_u128(8));
    let e = fold(&[(JAN1, order(c, 1, 100, "EUR")), (JAN1, refund(c, 2, 50))]).unwrap_err();
    assert!(e.to_string().contains("never placed"), "{e}");
}

#[test]
fn both_models_fit_on_a_folded_population_deterministically() {
    // 400 customers: every third buys once; the others come back at different paces.
    let mut events = Vec::new();
    for i in 0..400u128 {
        let c = CustomerId(Uuid::from_u128(10_000 + i));
        let first = JAN1 + (i as i64 % 60) * DAY;
        events.push((
            first,
            order(c, i * 100, 2_000 + (i as i64 % 7) * 500, "EUR"),
        ));
        if i % 3 != 0 {
            let gap = 5 + (i as i64 % 23);
            for k in 1..=(i as i64 % 5) {
                events.push((
                    first + k * gap * DAY,
                    order(
                        c,
                        i * 100 + k as u128,
                        1_500 + (i as i64 % 11) * 400 + k * 100,
                        "EUR",
                    ),
                ));
            }
        }
    }
    // Stream order is not business order.
    events.sort_by_key(|(at, e)| (at % 17, *at, format!("{e:?}")));
    let state = fold(&events).unwrap();
    let again = fold(&events).unwrap();
    assert_eq!(state.entries, again.entries, "the fold is deterministic");
    let all = |s: &MemState| -> Vec<Purchases> {
        s.entries
            .values()
            .map(|v| postcard::from_bytes(v).unwrap())
            .collect()
    };
    let end = JAN1 + 200 * DAY;
    let fit = fit_at(&all(&state), end, "EUR", TimeUnit::Day).unwrap();
    assert_eq!(fit.customers, 400);
    assert_eq!(fit.repeat_customers, 400 - 134 - 53);
    // The same population in another order: the same parameters, bit for bit.
    let mut reversed = all(&state);
    reversed.reverse();
    assert_eq!(fit_at(&reversed, end, "EUR", TimeUnit::Day).unwrap(), fit);
    // In weeks (days / 7): alpha scales by 7; r and P(alive) do not move. (This
    // population drops out so rarely that a and b run off together: only their mean
    // dropout a / (a + b) is pinned down.)
    let weeks = fit_at(&all(&state), end, "EUR", TimeUnit::Week).unwrap();
    assert_eq!(weeks.time_unit, TimeUnit::Week);
    let (d, w) = (fit.bgnbd.params, weeks.bgnbd.params);
    for (name, day, week) in [
        ("r", d.r, w.r),
        ("alpha / 7", d.alpha / 7.0, w.alpha),
        ("a / (a + b)", d.a / (d.a + d.b), w.a / (w.a + w.b)),
    ] {
        assert!(
            (day / week - 1.0).abs() < 1e-3,
            "{name}: {day} in days, {week} in weeks"
        );
    }
    let s = Stats {
        x: 3,
        t_x: 70.0,
        t: 150.0,
    };
    let (pd, pw) = (d.p_alive(s), w.p_alive(TimeUnit::Week.scale(s)));
    assert!(
        (pd - pw).abs() < 1e-4,
        "P(alive) {pd} in days, {pw} in weeks"
    );
    let p = fit.bgnbd.params;
    assert!(
        p.r > 0.0 && p.alpha > 0.0 && p.a > 0.0 && p.b > 0.0,
        "{p:?}"
    );
}

#[test]
fn service_events_reach_the_service_record_and_nothing_else_is_stored() {
    let c = CustomerId(Uuid::from_u128(9));
    let mut state = fold(&[
        (
            JAN1,
            DomainEvent::Customer(c, CustomerEvent::Tagged { tag: "vip".into() }),
        ),
        (
            JAN1 + DAY,
            DomainEvent::Customer(
                c,
                CustomerEvent::CampaignResponseRecorded {
                    campaign_id: crm_domain::CampaignId(Uuid::from_u128(3)),
                    response: crm_domain::CampaignResponse::Unsubscribed,
                },
            ),
        ),
    ])
    .unwrap();
    assert_eq!(state.entries.len(), 1, "only the service record");
    let service: crm_churn::signals::Service =
        load(&mut state, &crm_churn::signals::key(c.0.into_bytes()))
            .unwrap()
            .unwrap();
    assert_eq!(service.unsubscribes, vec![JAN1 + DAY]);
}

#[test]
fn a_customers_figures_follow_their_history_under_the_fitted_model() {
    use crm_churn::predict::{PredictConfig, predict};
    // The folded population of the determinism test, fitted at day 200.
    let mut events = Vec::new();
    for i in 0..400u128 {
        let c = CustomerId(Uuid::from_u128(20_000 + i));
        let first = JAN1 + (i as i64 % 60) * DAY;
        events.push((first, order(c, i * 100, 2_000, "EUR")));
        if i % 3 != 0 {
            let gap = 5 + (i as i64 % 23);
            for k in 1..=(i as i64 % 5) {
                events.push((
                    first + k * gap * DAY,
                    order(c, i * 100 + k as u128, 2_500 + (i as i64 % 9) * 250, "EUR"),
                ));
            }
        }
    }
    let mut state = fold(&events).unwrap();
    let all: Vec<Purchases> = state
        .entries
        .values()
        .map(|v| postcard::from_bytes(v).unwrap())
        .collect();
    let end = JAN1 + 200 * DAY;
    let fit = fit_at(&all, end, "EUR", TimeUnit::Day).unwrap();
    let cfg = PredictConfig::default();
    // Customer 4 (i = 4): first on day 4, then every 9 days, 4 repeats: last day 40.
    let regular = purchases(&mut state, CustomerId(Uuid::from_u128(20_004)));
    let p = predict(&fit, &regular, None, end, "EUR", &cfg).unwrap();
    assert_eq!(
        p.stats,
        Stats {
            x: 4,
            t_x: 36.0,
            t: 196.0
        }
    );
    assert!((p.p_alive - fit.bgnbd.params.p_alive(p.stats)).abs() < 1e-15);
    assert!((p.expected_transactions - fit.bgnbd.params.expected(p.stats, 90.0)).abs() < 1e-12);
    let spend = fit
        .gamma_gamma
        .params
        .expected_spend(Spend { x: 4, m_x: 3_500.0 });
    assert!((p.expected_average_spend - spend).abs() < 1e-9);
    assert!(p.clv > 0.0 && p.clv < spend * 200.0, "{p:?}");
    assert!((p.risk.base - (1.0 - p.p_alive)).abs() < 1e-15);
    // Earlier, right after the last purchase, the same customer was more likely alive
    // and worth more.
    let then = predict(&fit, &regular, None, JAN1 + 41 * DAY, "EUR", &cfg).unwrap();
    assert!(
        then.p_alive > p.p_alive && then.clv > p.clv,
        "{then:?} vs {p:?}"
    );
    // Before the first purchase: not in the population.
    assert!(predict(&fit, &regular, None, JAN1, "EUR", &cfg).is_none());
}
