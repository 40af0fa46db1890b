//! The churn models fitted on a business made by the data generator recover the
//! generator's true BG/NBD and Gamma-Gamma parameters (`params.json`).

use std::collections::BTreeMap;

use crm_churn::fit::{TimeUnit, fit_at};
use crm_churn::purchases::{Order, Purchases};
use crm_proto::v1::ingest_request::Command;

#[test]
fn a_generated_business_gives_back_the_generators_parameters() {
    let params = crm_datagen::Params::new(11, 8_000);
    let data = crm_datagen::generate(&params).unwrap();
    let end = params.start + i64::from(params.days) * crm_datagen::DAY;
    // Every order at its business time, valued at its lines: the generator's Gamma draw
    // (shipping and returns are not part of the spend story).
    let mut customers: BTreeMap<String, Purchases> = BTreeMap::new();
    for planned in &data.commands {
        if let Command::PlaceOrder(o) = planned.command() {
            let value: i64 = o
                .lines
                .iter()
                .map(|l| i64::from(l.quantity) * l.unit_price_minor)
                .sum();
            let id = uuid::Uuid::parse_str(&o.order_id).unwrap().into_bytes();
            customers.entry(o.customer_id).or_default().orders.insert(
                id,
                Order {
                    at: planned.at,
                    currency: "EUR".into(),
                    total_minor: value,
                    refunds: Vec::new(),
                },
            );
        }
    }
    let fit = fit_at(customers.values(), end, "EUR", TimeUnit::Day).unwrap();
    let (b, t) = (fit.bgnbd.params, params.purchasing);
    let (g, s) = (fit.gamma_gamma.params, params.spend);
    eprintln!(
        "{} customers ({} repeat): BG/NBD {b:?} vs truth {t:?}; Gamma-Gamma {g:?} vs truth {s:?} (gamma in cents)",
        fit.customers, fit.repeat_customers
    );
    let within = |got: f64, want: f64, rel: f64| (got - want).abs() <= rel * want;
    assert!(
        within(b.r, t.r, 0.15) && within(b.alpha, t.alpha, 0.15),
        "{b:?} vs {t:?}"
    );
    assert!(
        within(b.a, t.a, 0.3) && within(b.b, t.b, 0.3),
        "{b:?} vs {t:?}"
    );
    assert!(
        within(g.p, s.p, 0.15) && within(g.q, s.q, 0.15) && within(g.gamma, s.gamma * 100.0, 0.15),
        "{g:?} vs {s:?}"
    );
}
