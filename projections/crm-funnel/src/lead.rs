//! What the funnel stores per lead, and the lead as of a moment.

use serde::{Deserialize, Serialize};

use crate::stamped::Stamped;

/// One thing that happened to a lead, in business time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeadFact {
    Captured,
    Assigned {
        owner: String,
    },
    Contacted,
    Qualified,
    Disqualified {
        reason: String,
    },
    Converted {
        customer: [u8; 16],
        opportunity: Option<[u8; 16]>,
    },
}

/// A lead as stored: where it came from and its facts in business-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadRecord {
    pub id: [u8; 16],
    pub source: String,
    pub campaign: Option<[u8; 16]>,
    pub facts: Vec<Stamped<LeadFact>>,
}

/// A lead as of a moment: when it reached each step (the first time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeadAt {
    pub id: [u8; 16],
    pub source: String,
    pub campaign: Option<[u8; 16]>,
    pub owner: Option<String>,
    pub captured_at: i64,
    pub contacted_at: Option<i64>,
    pub qualified_at: Option<i64>,
    pub converted_at: Option<i64>,
    pub disqualified_at: Option<i64>,
    pub disqualified_reason: Option<String>,
    pub customer: Option<[u8; 16]>,
    pub opportunity: Option<[u8; 16]>,
}

impl LeadRecord {
    /// The lead as of `as_of` (business time, inclusive); `None` before its capture. A
    /// fact dated before the capture (a backdated command) counts from the capture.
    #[must_use]
    pub fn at(&self, as_of: i64) -> Option<LeadAt> {
        let captured = self.facts.iter().find(|f| f.fact == LeadFact::Captured)?.at;
        if captured > as_of {
            return None;
        }
        let mut l = LeadAt {
            id: self.id,
            source: self.source.clone(),
            campaign: self.campaign,
            captured_at: captured,
            ..LeadAt::default()
        };
        for f in self.facts.iter().filter(|f| f.at <= as_of) {
            let at = f.at.max(captured);
            match &f.fact {
                LeadFact::Captured => {}
                LeadFact::Assigned { owner } => l.owner = Some(owner.clone()),
                LeadFact::Contacted => {
                    l.contacted_at.get_or_insert(at);
                }
                LeadFact::Qualified => {
                    l.qualified_at.get_or_insert(at);
                }
                LeadFact::Disqualified { reason } => {
                    l.disqualified_at.get_or_insert(at);
                    l.disqualified_reason.get_or_insert_with(|| reason.clone());
                }
                LeadFact::Converted {
                    customer,
                    opportunity,
                } => {
                    l.converted_at.get_or_insert(at);
                    l.customer = Some(*customer);
                    l.opportunity = *opportunity;
                }
            }
        }
        Some(l)
    }
}
