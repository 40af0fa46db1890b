//! Point-in-time reconstruction with the live fold, on both clocks (no I/O).

use crm_customer360::{Customer360, Cut, reconstruct};
use crm_domain::{
    Actor, CommandId, Currency, CustomerEvent, CustomerId, CustomerRegistered, DomainEvent, Money,
    OrderId, OrderLine, OrderPlaced, Profile, Timestamp,
};
use crm_events::{Envelope, EventHash, EventMeta};
use crm_projection::{Event, MemState};
use uuid::Uuid;

const DAY: i64 = Timestamp::MICROS_PER_DAY;
/// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600 * 1_000_000;

/// `(seq, subject, envelope)` of a customer's events, with business and recording times.
fn history(id: CustomerId, events: &[(i64, i64, CustomerEvent)]) -> Vec<(u64, String, Envelope)> {
    let subject = format!("crm.v1.customer.{}", id.0.simple());
    events
        .iter()
        .enumerate()
        .map(|(i, (occurred, recorded, e))| {
            let seq = i as u64 + 1;
            let event = DomainEvent::Customer(id, e.clone());
            let envelope = Envelope {
                meta: EventMeta {
                    event_id: Uuid::from_u128(u128::from(seq)),
                    version: seq,
                    occurred_at: Timestamp(*occurred),
                    recorded_at: Timestamp(*recorded),
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
                event,
                hash: EventHash::GENESIS,
                sealing: crm_events::Sealing::Plain,
            };
            (seq, subject.clone(), envelope)
        })
        .collect()
}

fn events(h: &[(u64, String, Envelope)]) -> impl Iterator<Item = Event<'_>> {
    h.iter().map(|(seq, subject, envelope)| Event {
        seq: *seq,
        index: 0,
        subject,
        envelope,
    })
}

fn order(n: u128, total: i64) -> CustomerEvent {
    CustomerEvent::OrderPlaced(OrderPlaced {
        order_id: OrderId(Uuid::from_u128(n)),
        sales_channel: "web".into(),
        lines: vec![OrderLine {
            sku: "BOOK".into(),
            category: "books".into(),
            quantity: 1,
            unit_price_minor: total,
        }],
        discount_minor: 0,
        tax_minor: 0,
        shipping_minor: 0,
        total: Money::new(total, Currency::parse("EUR").unwrap()),
        campaign: None,
    })
}

#[test]
fn a_customer_as_of_a_moment_on_either_clock() {
    let id = CustomerId(Uuid::from_u128(7));
    let registered = CustomerEvent::Registered(CustomerRegistered {
        profile: Profile {
            given_name: "Ann".into(),
            emails: vec!["ann@example.com".into()],
            ..Profile::default()
        },
        acquisition: None,
        owner: None,
        team: None,
        lead: None,
    });
    // Registered day 0; orders of 10.00 on day 1 and 20.00 on day 5 (recorded the same
    // day); an order of 40.00 that happened on day 2 but was imported on day 10.
    let h = history(
        id,
        &[
            (T0, T0, registered),
            (T0 + DAY, T0 + DAY, order(1, 1_000)),
            (T0 + 5 * DAY, T0 + 5 * DAY, order(2, 2_000)),
            (T0 + 2 * DAY, T0 + 10 * DAY, order(3, 4_000)),
        ],
    );
    let fold = Customer360::default();
    let key = id.0.into_bytes();

    // Before the registration: no customer.
    let before = reconstruct(&fold, key, events(&h), Cut::Recorded(T0 - 1)).unwrap();
    assert_eq!(before.record, None);
    assert_eq!((before.applied, before.cut_off), (0, 4));

    // What the CRM knew on day 3: the day-1 order only (the day-2 order was not known).
    let known = reconstruct(&fold, key, events(&h), Cut::Recorded(T0 + 3 * DAY)).unwrap();
    assert_eq!((known.applied, known.cut_off), (2, 2));
    assert_eq!(known.facts.orders, 1);
    assert_eq!(known.facts.net_revenue_minor, 1_000);
    assert_eq!(known.facts.last_order_at, Some(T0 + DAY));
    assert_eq!(known.timeline.len(), 2);

    // What had happened by day 3, as known now: both the day-1 and day-2 orders.
    let happened = reconstruct(&fold, key, events(&h), Cut::Occurred(T0 + 3 * DAY)).unwrap();
    assert_eq!((happened.applied, happened.cut_off), (3, 1));
    assert_eq!(happened.facts.orders, 2);
    assert_eq!(happened.facts.net_revenue_minor, 5_000);
    assert_eq!(happened.facts.last_order_at, Some(T0 + 2 * DAY));
    let record = happened.record.unwrap();
    assert_eq!(record.commerce.orders, 2);
    assert_eq!(record.last_seq, 4);

    // With nothing cut, the reconstruction is the live fold's record.
    let all = reconstruct(&fold, key, events(&h), Cut::Recorded(i64::MAX)).unwrap();
    let mut live = MemState::default();
    for e in events(&h) {
        live.apply(&fold, &e).unwrap();
    }
    let live_record: crm_customer360::CustomerRecord = crm_projection::load(
        &mut live,
        &crm_customer360::keys::id_key(crm_customer360::keys::CUSTOMER, key),
    )
    .unwrap()
    .unwrap();
    assert_eq!(all.record, Some(live_record));
    assert_eq!(all.facts.orders, 3);
    assert!(all.rejected.is_empty());
}
