//! Which deals a list request selects: the deals behind a figure (the stale deals in a
//! stage, the deals in commit for a quarter, the lost deals of a cohort, ...).

use crate::forecast::in_period;
use crate::record::{DealAt, DealStatus, Forecast};

/// What selects a deal, beyond the [`crate::FunnelFilter`]. Empty fields admit all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DealSelection {
    pub pipeline: Option<String>,
    pub status: Option<DealStatus>,
    /// The deal's current stage (for a closed deal, the stage it closed in).
    pub stage: Option<String>,
    /// Open deals longer than this in their stage (microseconds).
    pub stale_after: Option<i64>,
    /// Deals the forecast of `[start, end)` counts.
    pub period: Option<(i64, i64)>,
    /// With `period`: deals counted under this category (not the cumulative roll-up:
    /// `Closed` are the won, `Commit` the open deals in commit).
    pub category: Option<Forecast>,
}

impl DealSelection {
    /// Whether the selection takes `d` (a deal as of `as_of`).
    #[must_use]
    pub fn selects(&self, d: &DealAt, as_of: i64) -> bool {
        self.pipeline.as_ref().is_none_or(|p| d.pipeline == *p)
            && self.status.is_none_or(|s| d.status == s)
            && self.stage.as_ref().is_none_or(|s| d.stage == *s)
            && self.stale_after.is_none_or(|limit| {
                d.status == DealStatus::Open && as_of.saturating_sub(d.stage_entered_at()) > limit
            })
            && self.period.is_none_or(|(start, end)| {
                in_period(d, start, end).is_some_and(|c| self.category.is_none_or(|w| w == c))
            })
    }
}
