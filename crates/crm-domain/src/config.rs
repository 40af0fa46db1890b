//! Configuration the domain decides with: sales pipelines and SLA policies. Pure data,
//! passed in explicitly; what a command froze from it is recorded on its events.

use std::collections::BTreeMap;

use crate::customer::{SlaTargets, TicketPriority};

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
                stage("initial_contact", "Initial contact", 10, ForecastCategory::Pipeline),
                stage("needs_confirmed", "Needs confirmed", 25, ForecastCategory::Pipeline),
                stage("proposal", "Proposal", 50, ForecastCategory::BestCase),
                stage("negotiation", "Negotiation", 70, ForecastCategory::Commit),
                stage("contract_signed", "Contract signed", 90, ForecastCategory::Commit),
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
        }
    }
}
