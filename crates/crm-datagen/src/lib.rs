//! Realistic B2C CRM data, deterministic from a seed.
//!
//! [`generate`] produces the command stream of a business over a period (default: two
//! years, 2024-11-01 to 2026-11-01) for N customers, in business-time order, as gRPC
//! `IngestRequest`s with explicit `occurred_at` and command ids (so ingesting the same data
//! set twice appends nothing the second time):
//! - customers join over the period, a quarter through leads that are assigned, contacted,
//!   qualified and converted (some with an opportunity); more leads are disqualified or
//!   left open;
//! - purchasing follows BG/NBD: while active a customer buys at a Poisson rate drawn from
//!   a Gamma distribution, and after each purchase drops out for good with a probability
//!   drawn from a Beta distribution; order values are Gamma with a customer-specific rate
//!   drawn from a Gamma (Gamma-Gamma); some customers never buy;
//! - returns, interactions on every channel (calls with outcomes), tickets with priorities
//!   that meet or breach the SLA, customer waits, reopenings and CSAT (lower after a
//!   breach), opportunities that skip and regress stages and end won or lost with a reason,
//!   campaigns sent in waves to consenting customers with delivered/opened/clicked/
//!   unsubscribed/converted responses (a click followed by an order within a week
//!   attributes the order), consent withdrawals, tags, profile changes, households and
//!   referrals.
//!
//! The true per-customer parameters come with the commands ([`CustomerTruth`]), so the
//! churn and lifetime-value models can be checked against the truth. [`file`] stores a data
//! set; [`ingest`] streams one into the bulk-ingest RPC. [`FunnelTruth`] gives the win rate
//! and lead rates the funnel of a generated business should show.

pub mod file;
mod funnel;
mod generate;
pub mod ingest;
mod params;

pub use funnel::{EXTRA_LEAD_CONTACTED, EXTRA_LEAD_DISQUALIFIED, FunnelTruth, STAGES, WALK, Walk};
pub use generate::{Dataset, ParamsError, Planned, command_name, generate};
pub use params::{
    CustomerTruth, DAY, PEAK_BYTES_PER_CUSTOMER_DAY, Params, Purchasing, Spend, Summary,
    available_memory,
};
