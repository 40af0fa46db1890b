//! The sales and lead funnel the generator plays out, and what it implies: the rates a
//! funnel built from the generated events should show (within sampling error).

use crate::params::Params;

/// How an opportunity walks the pipeline: at each step it is lost with probability
/// `lose`; else it goes back a stage with `back` (from the first stage it cannot, and
/// skips instead), skips a stage with `skip`, or moves to the next. Moving past the last
/// stage wins it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Walk {
    pub lose: f64,
    pub back: f64,
    pub skip: f64,
}

/// The walk every generated opportunity takes.
pub const WALK: Walk = Walk {
    lose: 0.12,
    back: 0.06,
    skip: 0.10,
};

/// Stages of the generated pipeline (the default `sales` pipeline's).
pub const STAGES: &[&str] = &[
    "initial_contact",
    "needs_confirmed",
    "proposal",
    "negotiation",
    "contract_signed",
];

/// Shares of the leads that never convert which are contacted, and which are
/// disqualified.
pub const EXTRA_LEAD_CONTACTED: f64 = 0.7;
pub const EXTRA_LEAD_DISQUALIFIED: f64 = 0.8;

impl Walk {
    /// The probability that a deal starting at the first of `stages` stages is won
    /// (solved exactly by iterating the walk's equations to a fixed point).
    #[must_use]
    pub fn win_probability(&self, stages: usize) -> f64 {
        // p[s]: the chance of winning from stage s; p[s] = 1 past the last stage.
        let mut p = vec![0.0_f64; stages + 2];
        p[stages] = 1.0;
        p[stages + 1] = 1.0;
        let forward = 1.0 - self.lose - self.back - self.skip;
        for _ in 0..10_000 {
            let mut next = p.clone();
            for s in 0..stages {
                next[s] = if s == 0 {
                    (self.back + self.skip) * p[2] + forward * p[1]
                } else {
                    self.back * p[s - 1] + self.skip * p[s + 2] + forward * p[s + 1]
                };
            }
            p = next;
        }
        p[0]
    }
}

/// The rates a funnel of the generated business should show.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FunnelTruth {
    /// Won / (won + lost).
    pub win_rate: f64,
    /// Leads converted / captured.
    pub lead_conversion: f64,
    /// Leads contacted (or further) / captured.
    pub lead_contact_rate: f64,
    /// Leads disqualified / captured.
    pub lead_disqualified: f64,
}

impl FunnelTruth {
    /// What `params` imply: every lead behind a customer is worked and converted;
    /// `extra_leads` per customer never convert.
    #[must_use]
    pub fn of(params: &Params) -> Self {
        let converted = params.from_leads;
        let extra = params.extra_leads;
        let leads = converted + extra;
        Self {
            win_rate: WALK.win_probability(STAGES.len()),
            lead_conversion: converted / leads,
            lead_contact_rate: (converted + EXTRA_LEAD_CONTACTED * extra) / leads,
            lead_disqualified: EXTRA_LEAD_DISQUALIFIED * extra / leads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_that_always_moves_on_always_wins_and_one_that_always_loses_never_does() {
        let sure = Walk {
            lose: 0.0,
            back: 0.0,
            skip: 0.0,
        };
        assert!((sure.win_probability(5) - 1.0).abs() < 1e-12);
        let never = Walk {
            lose: 1.0,
            back: 0.0,
            skip: 0.0,
        };
        assert!(never.win_probability(5).abs() < 1e-12);
    }

    #[test]
    fn one_stage_with_a_fixed_loss_wins_by_hand() {
        // One stage: lose 0.2, otherwise move on (back and skip both end past it).
        let w = Walk {
            lose: 0.2,
            back: 0.1,
            skip: 0.1,
        };
        assert!((w.win_probability(1) - 0.8).abs() < 1e-12);
        // Two stages, no back or skip: 0.8 * 0.8.
        let w = Walk {
            lose: 0.2,
            back: 0.0,
            skip: 0.0,
        };
        assert!((w.win_probability(2) - 0.64).abs() < 1e-12);
    }
}
