//! The sales funnel read model (issue "Sales funnel, forecast and campaign performance";
//! this crate holds its deal part so far).
//!
//! The fold ([`Funnel`]) keeps, per opportunity, the facts the funnel needs in **business
//! time**: its opening (pipeline, stage, probability and forecast category frozen at
//! entry, amount, owner, expected close, lead and campaign links), every stage move,
//! change, win, loss and reopening ([`DealRecord`]). Facts are kept sorted by business
//! time, then stream position, so a backdated command lands where it belongs and every
//! figure is the same as if the events had arrived in order.
//!
//! Nothing time-dependent is stored: [`DealRecord::at`] replays a deal's facts up to a cut
//! (`as_of`); [`pipeline_funnel`] computes the funnel of the deals as of that moment,
//! [`period_forecast`] the forecast of a period and [`forecast_movements`] how it moved
//! between two moments (definitions in the domain notes, "Funnel metrics").

mod fold;
mod forecast;
pub mod keys;
mod pipeline;
mod query;
mod record;

pub use fold::Funnel;
pub use forecast::{
    DealMovement, GroupBy, Movement, PeriodForecast, Rollup, forecast_movements, period_forecast,
};
pub use pipeline::{
    DAY_MICROS, Durations, FunnelFilter, PipelineFunnel, StageFigures, pipeline_funnel,
};
pub use query::deals_at;
pub use record::{DealAt, DealFact, DealRecord, DealStatus, Fact, Forecast, StageVisit};
