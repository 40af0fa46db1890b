//! What the funnel keeps per customer: what a deal is attributed to through its
//! customer (the team over time, the lead it came from, its acquisition source).

use serde::{Deserialize, Serialize};

use crate::stamped::Stamped;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    /// The acquisition source at registration.
    pub source: Option<String>,
    /// The lead the customer was converted from.
    pub lead: Option<[u8; 16]>,
    /// The team over time (`None`: removed), in business-time order.
    pub teams: Vec<Stamped<Option<String>>>,
}

impl CustomerRecord {
    /// The customer's team as of `as_of`.
    #[must_use]
    pub fn team_at(&self, as_of: i64) -> Option<String> {
        self.teams
            .iter()
            .take_while(|t| t.at <= as_of)
            .last()
            .and_then(|t| t.fact.clone())
    }
}
