//! The generator's parameters: everything that shapes the data set, written next to the
//! output so models fitted on the data can be checked against the truth.

use serde::{Deserialize, Serialize};

/// Microseconds per day.
pub const DAY: i64 = 86_400_000_000;

/// BG/NBD purchasing truth (time unit: days): while active a customer buys at Poisson rate
/// `lambda ~ Gamma(shape r, rate alpha)`; after each repeat purchase (not the first) they
/// drop out for good with probability `p ~ Beta(a, b)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Purchasing {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// Gamma-Gamma spend truth (EUR): each order's value is `Gamma(shape p, rate nu)` with the
/// customer's `nu ~ Gamma(shape q, rate gamma)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

/// Everything that shapes a data set. The same parameters give the same commands, byte for
/// byte (for a given `Cargo.lock`: the distributions come from `rand_distr`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub seed: u64,
    pub customers: usize,
    /// Start of the period, microseconds since the Unix epoch.
    pub start: i64,
    /// Length of the period in days.
    pub days: u32,
    pub purchasing: Purchasing,
    pub spend: Spend,
    /// Share of registered customers who never order.
    pub never_buy: f64,
    /// Share of customers acquired through a lead (created, worked, converted).
    pub from_leads: f64,
    /// Leads that never convert, per customer (disqualified or left open).
    pub extra_leads: f64,
    /// Share of orders partly returned.
    pub return_rate: f64,
    /// Interactions per active customer per day.
    pub interaction_rate: f64,
    /// Spontaneous tickets per active customer per day (plus a share of orders that
    /// lead to a ticket, `order_ticket_rate`).
    pub ticket_rate: f64,
    pub order_ticket_rate: f64,
    /// Share of customers with an opportunity (an upsell moving through the pipeline).
    pub opportunity_rate: f64,
    /// Campaigns per month (of 30.44 days), spread evenly over the period: a business
    /// sends about as many campaigns whatever its size, so campaign responses grow with
    /// the customers, not with their square. (Data sets written before this field had
    /// one campaign per 400 customers; reading their `params.json` gives the default.)
    #[serde(default = "default_campaign_share")]
    pub campaigns_per_month: f64,
    /// Share of the customers consenting to a campaign's channel that it is sent to.
    #[serde(default = "default_campaign_share")]
    pub campaign_audience: f64,
    /// Share of customers linked to another (household or referral).
    pub relationship_rate: f64,
}

impl Params {
    /// A plausible two-year B2C business of `customers` customers.
    #[must_use]
    pub fn new(seed: u64, customers: usize) -> Self {
        Self {
            seed,
            customers,
            // 2024-11-01T00:00:00Z
            start: 1_730_419_200 * 1_000_000,
            days: 730,
            // Mean rate r/alpha = 0.02 purchases/day (one every ~7 weeks) with a wide
            // spread; mean dropout a/(a+b) = 0.2 per purchase.
            purchasing: Purchasing {
                r: 0.9,
                alpha: 45.0,
                a: 0.8,
                b: 3.2,
            },
            // Mean order ~ p * gamma / (q - 1) = 6 * 120 / 11 = 65 EUR.
            spend: Spend {
                p: 6.0,
                q: 12.0,
                gamma: 120.0,
            },
            never_buy: 0.15,
            from_leads: 0.25,
            extra_leads: 0.35,
            return_rate: 0.07,
            interaction_rate: 1.0 / 40.0,
            ticket_rate: 1.0 / 300.0,
            order_ticket_rate: 0.04,
            opportunity_rate: 0.06,
            // 12 campaigns over two years, each to half the consenting customers.
            campaigns_per_month: 0.5,
            campaign_audience: 0.5,
            relationship_rate: 0.05,
        }
    }

    /// End of the period (exclusive), microseconds since the Unix epoch.
    #[must_use]
    pub fn end(&self) -> i64 {
        self.start + i64::from(self.days) * DAY
    }

    /// Problems with the parameters, one sentence each.
    #[must_use]
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.customers == 0 {
            p.push("customers must be at least 1".into());
        }
        if self.days < 30 {
            p.push(format!("days must be at least 30 (got {})", self.days));
        }
        let positive = [
            ("purchasing.r", self.purchasing.r),
            ("purchasing.alpha", self.purchasing.alpha),
            ("purchasing.a", self.purchasing.a),
            ("purchasing.b", self.purchasing.b),
            ("spend.p", self.spend.p),
            ("spend.q", self.spend.q),
            ("spend.gamma", self.spend.gamma),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                p.push(format!("{name} must be a positive number (got {v})"));
            }
        }
        let shares = [
            ("never_buy", self.never_buy),
            ("from_leads", self.from_leads),
            ("return_rate", self.return_rate),
            ("order_ticket_rate", self.order_ticket_rate),
            ("opportunity_rate", self.opportunity_rate),
            ("relationship_rate", self.relationship_rate),
            ("campaign_audience", self.campaign_audience),
        ];
        for (name, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                p.push(format!("{name} must be between 0 and 1 (got {v})"));
            }
        }
        let rates = [
            ("extra_leads", self.extra_leads),
            ("interaction_rate", self.interaction_rate),
            ("ticket_rate", self.ticket_rate),
            ("campaigns_per_month", self.campaigns_per_month),
        ];
        for (name, v) in rates {
            if !(v.is_finite() && v >= 0.0) {
                p.push(format!("{name} must be zero or more (got {v})"));
            }
        }
        p
    }

    /// The generator's estimated peak memory for these parameters, bytes (see
    /// [`PEAK_BYTES_PER_CUSTOMER_DAY`]).
    #[must_use]
    pub fn estimated_peak_bytes(&self) -> u64 {
        (self.customers as u64)
            .saturating_mul(u64::from(self.days))
            .saturating_mul(PEAK_BYTES_PER_CUSTOMER_DAY)
    }

    /// Why generating this data set with `available` bytes of memory would fail, if it
    /// would: checked before generating rather than being killed by the kernel halfway.
    #[must_use]
    pub fn memory_problem(&self, available: u64) -> Option<String> {
        let need = self.estimated_peak_bytes();
        if need <= available {
            return None;
        }
        let per_customer = u64::from(self.days).max(1) * PEAK_BYTES_PER_CUSTOMER_DAY;
        #[allow(clippy::cast_precision_loss)]
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        Some(format!(
            "generating {} customers over {} days needs about {:.1} GiB of memory (the \
             generator holds the whole data set to sort it by business time) but {:.1} GiB \
             is available: at most about {} customers fit",
            self.customers,
            self.days,
            gib(need),
            gib(available),
            available / per_customer
        ))
    }

    /// Campaigns over the period.
    #[must_use]
    pub fn campaigns(&self) -> usize {
        let months = f64::from(self.days) / 30.44;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = (self.campaigns_per_month * months).round().max(0.0) as usize;
        count
    }
}

/// Peak memory of [`crate::generate`] per customer and day of the period, bytes: the
/// generator holds the whole data set (encoded, ~160 bytes per command) to sort it by
/// business time. Measured with the default parameters on 2026-11-23: 100,000 customers
/// over 730 days (2.1M commands) peaked at 588 MiB resident (8.2 bytes per customer-day),
/// 1,000,000 customers (21.1M commands) at 5.7 GiB; 10 leaves some room.
pub const PEAK_BYTES_PER_CUSTOMER_DAY: u64 = 10;

/// `MemAvailable` of `/proc/meminfo`, bytes (`None` where there is no such file).
#[must_use]
pub fn available_memory() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

const fn default_campaign_share() -> f64 {
    0.5
}

/// One customer's true parameters and what the generator made of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomerTruth {
    pub customer_id: String,
    /// Registration (business time, microseconds).
    pub joined_at: i64,
    /// Purchases per day while active (0 for customers who never buy).
    pub lambda: f64,
    /// Dropout probability after each repeat purchase.
    pub p_dropout: f64,
    /// Rate of the customer's spend distribution (mean order = spend.p / nu).
    pub nu: f64,
    /// When the customer dropped out (after their last purchase), if within the period.
    pub dropped_out_at: Option<i64>,
    pub orders: u32,
    /// Total order value, EUR cents (before returns).
    pub spend_minor: i64,
    pub came_from_lead: bool,
}

/// Counts of what was generated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub commands: u64,
    pub customers: u64,
    pub orders: u64,
    pub returns: u64,
    pub interactions: u64,
    pub tickets: u64,
    pub opportunities: u64,
    pub leads: u64,
    pub campaigns: u64,
    pub campaign_responses: u64,
    pub relationships: u64,
    pub by_command: std::collections::BTreeMap<String, u64>,
}
