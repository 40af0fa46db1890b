//! The churn projection's fold: per customer, the purchases the models need, in business
//! time, so the statistics of every customer can be taken as of any cut.
//!
//! | key | value |
//! |---|---|
//! | `p` + customer id (16 bytes) | [`Purchases`]: every order (day, currency, total) with the refunds recorded against it |
//! | `s` + customer id | [`crate::signals::Service`]: tickets, interactions and unsubscribes, for the risk score |
//!
//! Counting follows the BG/NBD literature: orders on the same UTC day are one
//! transaction. Every currency counts for frequency; only the reporting currency (the
//! fold's configuration) counts for money, and a day's value is its orders' net revenue
//! in it (lines less discount: tax and shipping are passed on, not earned) minus the
//! refunds recorded against them by the cut (no exchange rates: a customer who buys
//! only in other currencies has no spend statistics).

use std::collections::BTreeMap;

use crm_domain::{CustomerEvent, DomainEvent, Timestamp};
use crm_projection::{Event, FoldError, Projection, State, load, save};
use serde::{Deserialize, Serialize};

use crate::model::{Spend, Stats};

/// The key prefix of a customer's purchases.
pub const PURCHASES: u8 = b'p';

/// The churn projection.
#[derive(Clone, Debug)]
pub struct Churn {
    /// The currency whose amounts make the spend statistics.
    pub reporting_currency: String,
}

impl Default for Churn {
    fn default() -> Self {
        Self {
            reporting_currency: "EUR".into(),
        }
    }
}

/// One order as the models see it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Business time of the order, microseconds.
    pub at: i64,
    pub currency: String,
    /// Net revenue: lines less discount (the order's total without tax and shipping).
    pub total_minor: i64,
    /// Refunds recorded against it: (business time, amount in the order's currency).
    pub refunds: Vec<(i64, i64)>,
}

/// A customer's orders, by order id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchases {
    pub orders: BTreeMap<[u8; 16], Order>,
}

/// The key of a customer's purchases.
#[must_use]
pub fn key(customer: [u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(PURCHASES);
    k.extend_from_slice(&customer);
    k
}

impl Projection for Churn {
    const NAME: &'static str = "churn";
    /// 2: an order's value is its net revenue (was its total with tax and shipping).
    const VERSION: u32 = 2;
    /// Purchases and service signals: no personal text, so a build fetches no data key.
    const PERSONAL_TEXT: bool = false;

    fn fingerprint(&self) -> String {
        format!("reporting-currency={}", self.reporting_currency)
    }

    fn apply(&self, state: &mut dyn State, event: &Event<'_>) -> Result<(), FoldError> {
        let DomainEvent::Customer(customer, e) = &event.envelope.event else {
            return Ok(());
        };
        let at = event.envelope.meta.occurred_at.0;
        let k = key(customer.0.into_bytes());
        match e {
            CustomerEvent::OrderPlaced(o) => {
                let mut p: Purchases = load(state, &k)?.unwrap_or_default();
                let order = p.orders.entry(o.order_id.0.into_bytes()).or_default();
                order.at = at;
                o.total.currency.as_str().clone_into(&mut order.currency);
                order.total_minor = o.total.minor - o.tax_minor - o.shipping_minor;
                save(state, &k, &p);
            }
            CustomerEvent::ReturnRecorded(r) => {
                let mut p: Purchases = load(state, &k)?.unwrap_or_default();
                let order = p
                    .orders
                    .get_mut(&r.order_id.0.into_bytes())
                    .ok_or_else(|| {
                        FoldError::Rejected(format!(
                            "a return against order {}, which this customer never placed",
                            r.order_id.0
                        ))
                    })?;
                order.refunds.push((at, r.refund.minor));
                save(state, &k, &p);
            }
            other => {
                let k = crate::signals::key(customer.0.into_bytes());
                let mut service: crate::signals::Service = load(state, &k)?.unwrap_or_default();
                if service.apply(at, other) {
                    save(state, &k, &service);
                }
            }
        }
        Ok(())
    }
}

impl Purchases {
    /// The customer's statistics as of `cut` (business time, microseconds) in days, and
    /// their spend statistics in `currency` (minor units: the repeat days with an order in
    /// it, and their mean net value when positive). `None`: no purchase by the cut.
    #[must_use]
    pub fn stats(&self, cut: i64, currency: &str) -> Option<(Stats, Option<Spend>)> {
        let day = |t: i64| t.div_euclid(Timestamp::MICROS_PER_DAY);
        // Per day: its value in the reporting currency (`None`: other currencies only).
        let mut days: BTreeMap<i64, Option<i64>> = BTreeMap::new();
        for o in self.orders.values().filter(|o| o.at <= cut) {
            let value = days.entry(day(o.at)).or_default();
            if o.currency == currency {
                let refunded: i64 = o
                    .refunds
                    .iter()
                    .filter(|(at, _)| *at <= cut)
                    .map(|(_, m)| m)
                    .sum();
                *value = Some(value.unwrap_or(0) + o.total_minor - refunded);
            }
        }
        let (&first, _) = days.first_key_value()?;
        let (&last, _) = days.last_key_value()?;
        let x = u32::try_from(days.len() - 1).unwrap_or(u32::MAX);
        #[allow(clippy::cast_precision_loss)]
        let stats = Stats {
            x,
            t_x: (last - first) as f64,
            t: (day(cut) - first) as f64,
        };
        // The repeat days with a value in the reporting currency, and their mean.
        let repeat: Vec<i64> = days.values().skip(1).filter_map(|v| *v).collect();
        let counted = u32::try_from(repeat.len()).unwrap_or(u32::MAX);
        #[allow(clippy::cast_precision_loss)]
        let mean = repeat.iter().sum::<i64>() as f64 / f64::from(counted.max(1));
        let spend = (counted > 0 && mean > 0.0).then_some(Spend {
            x: counted,
            m_x: mean,
        });
        Some((stats, spend))
    }
}
