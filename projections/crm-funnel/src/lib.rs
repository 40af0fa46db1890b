//! The sales funnel read model (issue "Sales funnel, forecast and campaign performance").
//!
//! The fold ([`Funnel`]) keeps facts in **business time**, sorted by business time then
//! stream position, so a backdated command lands where it belongs and every figure is
//! the same as if the events had arrived in order:
//! - per opportunity ([`DealRecord`]): its opening (pipeline, stage, probability and
//!   forecast category frozen at entry, amount, owner, expected close, lead and campaign
//!   links), every stage move, change, win, loss and reopening;
//! - per lead ([`LeadRecord`]): source, campaign and its path (captured, assigned,
//!   contacted, qualified or disqualified with reason, converted);
//! - per campaign ([`CampaignRecord`]): creation, budget, send waves and costs; per
//!   campaign member ([`TouchRecord`]): responses and attributed orders;
//! - per customer ([`CustomerRecord`]): team over time, lead and acquisition source, for
//!   a deal's attribution.
//!
//! Nothing time-dependent is stored: every record replays its facts up to a cut
//! (`as_of`), read through a [`Source`] ([`deals_at`], [`leads_at`], [`campaigns_at`],
//! [`members_at`]); [`pipeline_funnel`], [`period_forecast`], [`forecast_movements`],
//! [`lead_funnel`] and [`campaign_performance`] compute the figures, [`DealSelection`]
//! picks the deals behind one (definitions in the domain notes, "Funnel metrics").

mod campaign;
mod customer;
mod fold;
mod forecast;
pub mod keys;
mod lead;
mod lead_funnel;
mod list;
mod performance;
mod pipeline;
mod query;
mod record;
mod source;
mod stamped;

pub use campaign::{
    CampaignAt, CampaignFact, CampaignRecord, MemberAt, ResponseKind, Touch, TouchRecord,
};
pub use customer::CustomerRecord;
pub use fold::Funnel;
pub use forecast::{
    DealMovement, GroupBy, Movement, PeriodForecast, Rollup, category_name, forecast_movements,
    period_forecast,
};
pub use lead::{LeadAt, LeadFact, LeadRecord};
pub use lead_funnel::{LeadFigures, LeadFilter, LeadGroupBy, lead_funnel};
pub use list::DealSelection;
pub use performance::{CampaignFigures, campaign_performance};
pub use pipeline::{
    DAY_MICROS, Durations, FunnelFilter, PipelineFunnel, StageFigures, pipeline_funnel,
};
pub use query::{campaigns_at, deals_at, deals_page, leads_at, members_at};
pub use record::{DealAt, DealFact, DealRecord, DealStatus, Fact, Forecast, StageVisit};
pub use source::Source;
pub use stamped::{Stamp, Stamped};

/// An id as the API writes it (lower-case hyphenated UUID).
#[must_use]
pub fn uuid_string(id: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(id).to_string()
}
