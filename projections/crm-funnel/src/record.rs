//! What the funnel stores per deal, and the deal as of a moment.

use serde::{Deserialize, Serialize};

use crate::stamped::Stamped;

/// Forecast category frozen at a stage entry (Salesforce's categories).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Forecast {
    Omitted,
    Pipeline,
    BestCase,
    Commit,
    Closed,
}

impl From<crm_domain::ForecastCategory> for Forecast {
    fn from(f: crm_domain::ForecastCategory) -> Self {
        use crm_domain::ForecastCategory as F;
        match f {
            F::Omitted => Self::Omitted,
            F::Pipeline => Self::Pipeline,
            F::BestCase => Self::BestCase,
            F::Commit => Self::Commit,
            F::Closed => Self::Closed,
        }
    }
}

/// One thing that happened to a deal, in business time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fact {
    Opened {
        stage: String,
        probability_pct: u8,
        forecast: Forecast,
        amount_minor: i64,
        currency: String,
        owner: Option<String>,
        expected_close: Option<i64>,
    },
    Moved {
        stage: String,
        probability_pct: u8,
        forecast: Forecast,
    },
    Updated {
        name: Option<String>,
        amount_minor: Option<i64>,
        owner: Option<String>,
        expected_close: Option<i64>,
    },
    Won {
        amount_minor: i64,
        currency: String,
    },
    Lost {
        reason: String,
    },
    Reopened {
        stage: String,
        probability_pct: u8,
        forecast: Forecast,
    },
}

/// A deal's fact with its business time and stream position.
pub type DealFact = Stamped<Fact>;

/// A deal as stored: who it belongs to, its links, and its facts sorted by
/// `(at, seq, index)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRecord {
    pub id: [u8; 16],
    pub customer: [u8; 16],
    pub name: String,
    pub pipeline: String,
    pub lead: Option<[u8; 16]>,
    pub campaign: Option<[u8; 16]>,
    pub facts: Vec<DealFact>,
}

impl DealRecord {
    /// Inserts a fact in business-time order ([`crate::stamped::insert`]).
    pub fn insert(&mut self, fact: DealFact) {
        crate::stamped::insert(&mut self.facts, fact);
    }

    /// The deal as of `as_of` (business time, inclusive): its facts up to that moment
    /// replayed. `None` when it was not open yet. A fact dated before the opening (a
    /// backdated command) counts from the opening.
    #[must_use]
    pub fn at(&self, as_of: i64) -> Option<DealAt> {
        let opening = self
            .facts
            .iter()
            .find(|f| matches!(f.fact, Fact::Opened { .. }))?;
        if opening.at > as_of {
            return None;
        }
        let Fact::Opened {
            stage,
            probability_pct,
            forecast,
            amount_minor,
            currency,
            owner,
            expected_close,
        } = &opening.fact
        else {
            return None;
        };
        let mut d = DealAt {
            id: self.id,
            customer: self.customer,
            name: self.name.clone(),
            pipeline: self.pipeline.clone(),
            lead: self.lead,
            campaign: self.campaign,
            team: None,
            source: None,
            status: DealStatus::Open,
            stage: stage.clone(),
            probability_pct: *probability_pct,
            forecast: *forecast,
            amount_minor: *amount_minor,
            currency: currency.clone(),
            owner: owner.clone(),
            expected_close: *expected_close,
            opened_at: opening.at,
            closed_at: None,
            loss_reason: None,
            visits: vec![StageVisit {
                stage: stage.clone(),
                entered_at: opening.at,
                left_at: None,
            }],
        };
        for f in self.facts.iter().filter(|f| f.at <= as_of) {
            if !std::ptr::eq(f, opening) {
                d.apply(f, f.at.max(opening.at));
            }
        }
        Some(d)
    }
}

/// Whether a deal is open, won or lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DealStatus {
    Open,
    Won,
    Lost,
}

/// A time a deal spent in a stage: from its entry to its exit (`None`: still there, or
/// the deal closed in it, see [`DealAt::closed_at`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageVisit {
    pub stage: String,
    pub entered_at: i64,
    pub left_at: Option<i64>,
}

impl StageVisit {
    /// Time in the stage up to `end` (the cut, or the deal's close).
    #[must_use]
    pub fn duration(&self, end: i64) -> i64 {
        self.left_at
            .unwrap_or(end)
            .saturating_sub(self.entered_at)
            .max(0)
    }
}

/// A deal as of a moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DealAt {
    pub id: [u8; 16],
    pub customer: [u8; 16],
    pub name: String,
    pub pipeline: String,
    pub lead: Option<[u8; 16]>,
    /// The deal's campaign link; once attributed ([`crate::deals_at`]), else its lead's
    /// campaign.
    pub campaign: Option<[u8; 16]>,
    /// Set by attribution ([`crate::deals_at`]): the customer's team as of the cut.
    pub team: Option<String>,
    /// Set by attribution: the lead source (the deal's lead, else its customer's lead,
    /// else the customer's acquisition source).
    pub source: Option<String>,
    pub status: DealStatus,
    /// The current stage (for a closed deal: the stage it was closed in).
    pub stage: String,
    pub probability_pct: u8,
    pub forecast: Forecast,
    pub amount_minor: i64,
    pub currency: String,
    pub owner: Option<String>,
    pub expected_close: Option<i64>,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    pub loss_reason: Option<String>,
    /// Every stay in a stage, in order (a stage entered twice has two).
    pub visits: Vec<StageVisit>,
}

impl DealAt {
    fn enter(&mut self, stage: &str, at: i64) {
        if let Some(v) = self.visits.last_mut()
            && v.left_at.is_none()
        {
            v.left_at = Some(at);
        }
        self.visits.push(StageVisit {
            stage: stage.to_owned(),
            entered_at: at,
            left_at: None,
        });
        stage.clone_into(&mut self.stage);
    }

    fn apply(&mut self, f: &DealFact, at: i64) {
        match &f.fact {
            // A second opening of the same id cannot be decided; ignore it.
            Fact::Opened { .. } => {}
            Fact::Moved {
                stage,
                probability_pct,
                forecast,
            } => {
                if self.status == DealStatus::Open {
                    self.enter(stage, at);
                    self.probability_pct = *probability_pct;
                    self.forecast = *forecast;
                }
            }
            Fact::Updated {
                name,
                amount_minor,
                owner,
                expected_close,
            } => {
                if let Some(n) = name {
                    n.clone_into(&mut self.name);
                }
                if let Some(a) = amount_minor {
                    self.amount_minor = *a;
                }
                if owner.is_some() {
                    self.owner.clone_from(owner);
                }
                if expected_close.is_some() {
                    self.expected_close = *expected_close;
                }
            }
            Fact::Won {
                amount_minor,
                currency,
            } => {
                self.status = DealStatus::Won;
                self.closed_at = Some(at);
                self.amount_minor = *amount_minor;
                currency.clone_into(&mut self.currency);
                self.probability_pct = 100;
                self.forecast = Forecast::Closed;
                self.close_visit(at);
            }
            Fact::Lost { reason } => {
                self.status = DealStatus::Lost;
                self.closed_at = Some(at);
                self.loss_reason = Some(reason.clone());
                self.probability_pct = 0;
                self.forecast = Forecast::Omitted;
                self.close_visit(at);
            }
            Fact::Reopened {
                stage,
                probability_pct,
                forecast,
            } => {
                self.status = DealStatus::Open;
                self.closed_at = None;
                self.loss_reason = None;
                self.visits.push(StageVisit {
                    stage: stage.clone(),
                    entered_at: at,
                    left_at: None,
                });
                stage.clone_into(&mut self.stage);
                self.probability_pct = *probability_pct;
                self.forecast = *forecast;
            }
        }
    }

    fn close_visit(&mut self, at: i64) {
        if let Some(v) = self.visits.last_mut()
            && v.left_at.is_none()
        {
            v.left_at = Some(at);
        }
    }

    /// When the deal entered its current stage (its last visit).
    #[must_use]
    pub fn stage_entered_at(&self) -> i64 {
        self.visits.last().map_or(self.opened_at, |v| v.entered_at)
    }
}
