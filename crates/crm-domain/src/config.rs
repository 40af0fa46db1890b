//! Configuration the domain decides with: sales pipelines and SLA policies. Pure data,
//! passed in explicitly; what a command froze from it is recorded on its events.

use std::collections::BTreeMap;

use crate::customer::{SlaTargets, TicketPriority};
use crate::rejection::{Rejection, RejectionKind};
use crate::values::Timestamp;

/// Forecast categories of an open deal (closed deals are `Closed`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum ForecastCategory {
    Pipeline,
    BestCase,
    Commit,
    Closed,
    Omitted,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Stage {
    pub key: String,
    pub name: String,
    /// Default win probability, 0-100, frozen on the deal when it enters the stage.
    pub probability_pct: u8,
    pub forecast: ForecastCategory,
}

/// An ordered list of stages; won and lost are outcomes, not stages.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Pipeline {
    pub key: String,
    pub stages: Vec<Stage>,
}

impl Pipeline {
    #[must_use]
    pub fn stage(&self, key: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.key == key)
    }
}

/// First-response and resolution targets per priority.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SlaPolicy {
    pub name: String,
    pub targets: BTreeMap<TicketPriority, (u32, u32)>,
}

impl SlaPolicy {
    /// The targets for `priority` (zero when the policy has none: [`DomainConfig::validate`]
    /// refuses such a policy at start-up).
    #[must_use]
    pub fn targets_for(&self, priority: TicketPriority) -> SlaTargets {
        let (first_response_mins, resolution_mins) =
            self.targets.get(&priority).copied().unwrap_or((0, 0));
        SlaTargets {
            policy: self.name.clone(),
            first_response_mins,
            resolution_mins,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DomainConfig {
    pub pipelines: BTreeMap<String, Pipeline>,
    pub default_pipeline: String,
    pub sla: SlaPolicy,
    pub business_time: BusinessTimeBounds,
}

/// Which business times (`options.occurred_at`) a command may carry, against the time the
/// service received it. A business time says when something happened: it may lie in the
/// past (a historical import reaches back decades) but not in the future beyond the clock
/// skew between services. An order dated 9999 would keep its customer "new" for ever.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BusinessTimeBounds {
    /// How far after receipt a business time may be (clock skew), minutes.
    pub future_tolerance_mins: u32,
    /// The earliest business time accepted.
    pub earliest: Timestamp,
}

impl BusinessTimeBounds {
    /// 1900-01-01T00:00:00Z: before any customer record a CRM imports.
    pub const EARLIEST: Timestamp = Timestamp::from_micros(-2_208_988_800 * 1_000_000);
    pub const FUTURE_TOLERANCE_MINS: u32 = 5;

    /// Checks a command's business time against its receipt; the rejection names
    /// `options.occurred_at`.
    pub fn check(&self, occurred_at: Timestamp, received_at: Timestamp) -> Result<(), Rejection> {
        let latest = received_at.plus_minutes(self.future_tolerance_mins);
        if occurred_at > latest {
            return Err(Rejection::new(
                RejectionKind::Invalid,
                "options.occurred_at",
                "not_in_future",
                format!(
                    "must not be later than the time of receipt plus {} minute(s) of clock skew: a business time says when something happened",
                    self.future_tolerance_mins
                ),
            ));
        }
        if occurred_at < self.earliest {
            return Err(Rejection::new(
                RejectionKind::Invalid,
                "options.occurred_at",
                "not_before_earliest",
                format!(
                    "must not be earlier than {} (microseconds since the epoch; 1900-01-01 by default)",
                    self.earliest.as_micros()
                ),
            ));
        }
        Ok(())
    }
}

impl Default for BusinessTimeBounds {
    fn default() -> Self {
        Self {
            future_tolerance_mins: Self::FUTURE_TOLERANCE_MINS,
            earliest: Self::EARLIEST,
        }
    }
}

impl DomainConfig {
    /// Checks the configuration is usable: every pipeline has uniquely keyed stages with
    /// probabilities 0-100, the default pipeline exists, and the SLA policy has targets for
    /// every priority. One sentence per problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !self.pipelines.contains_key(&self.default_pipeline) {
            problems.push(format!(
                "default pipeline {:?} is not configured",
                self.default_pipeline
            ));
        }
        for (key, p) in &self.pipelines {
            if *key != p.key {
                problems.push(format!(
                    "pipeline {key:?} is registered under another key than its own ({:?})",
                    p.key
                ));
            }
            if p.stages.is_empty() {
                problems.push(format!("pipeline {key:?} has no stages"));
            }
            let mut seen = std::collections::BTreeSet::new();
            for s in &p.stages {
                if !seen.insert(s.key.as_str()) {
                    problems.push(format!("pipeline {key:?} has stage {:?} twice", s.key));
                }
                if s.probability_pct > 100 {
                    problems.push(format!(
                        "stage {key}/{} has probability {} > 100",
                        s.key, s.probability_pct
                    ));
                }
                if matches!(s.forecast, ForecastCategory::Closed) {
                    problems.push(format!(
                        "stage {key}/{} is an open stage but has forecast category closed",
                        s.key
                    ));
                }
            }
        }
        for priority in [
            TicketPriority::Low,
            TicketPriority::Normal,
            TicketPriority::High,
            TicketPriority::Urgent,
        ] {
            match self.sla.targets.get(&priority) {
                None => problems.push(format!(
                    "SLA policy {} has no targets for {priority:?} tickets",
                    self.sla.name
                )),
                Some((first, resolution)) if *first == 0 || *resolution == 0 => {
                    problems.push(format!(
                        "SLA policy {} has a zero target for {priority:?} tickets",
                        self.sla.name
                    ));
                }
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl Default for DomainConfig {
    /// The B2C defaults: one sales pipeline with the usual five stages and the
    /// `standard-v1` SLA policy.
    fn default() -> Self {
        let stage = |key: &str, name: &str, p: u8, f: ForecastCategory| Stage {
            key: key.into(),
            name: name.into(),
            probability_pct: p,
            forecast: f,
        };
        let sales = Pipeline {
            key: "sales".into(),
            stages: vec![
                stage(
                    "initial_contact",
                    "Initial contact",
                    10,
                    ForecastCategory::Pipeline,
                ),
                stage(
                    "needs_confirmed",
                    "Needs confirmed",
                    25,
                    ForecastCategory::Pipeline,
                ),
                stage("proposal", "Proposal", 50, ForecastCategory::BestCase),
                stage("negotiation", "Negotiation", 70, ForecastCategory::Commit),
                stage(
                    "contract_signed",
                    "Contract signed",
                    90,
                    ForecastCategory::Commit,
                ),
            ],
        };
        let targets = BTreeMap::from([
            (TicketPriority::Urgent, (60, 4 * 60)),
            (TicketPriority::High, (4 * 60, 24 * 60)),
            (TicketPriority::Normal, (8 * 60, 48 * 60)),
            (TicketPriority::Low, (24 * 60, 120 * 60)),
        ]);
        Self {
            pipelines: BTreeMap::from([(sales.key.clone(), sales)]),
            default_pipeline: "sales".into(),
            sla: SlaPolicy {
                name: "standard-v1".into(),
                targets,
            },
            business_time: BusinessTimeBounds::default(),
        }
    }
}
