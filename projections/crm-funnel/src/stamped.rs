//! Facts in business-time order: what every record of the funnel keeps.

use serde::{Deserialize, Serialize};

/// A fact with its business time and stream position (the order among facts of the
/// same business time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub at: i64,
    pub seq: u64,
    pub index: u16,
    pub fact: T,
}

/// Inserts a fact where it belongs in business time (after facts of the same time that
/// came earlier in the stream); a fact already recorded (same stream position, as when a
/// batch is applied again after a crash) is not added twice. Backdated commands therefore
/// give the same records as if they had arrived in order.
pub fn insert<T>(facts: &mut Vec<Stamped<T>>, fact: Stamped<T>) {
    let key = (fact.at, fact.seq, fact.index);
    if let Err(i) = facts.binary_search_by_key(&key, |f| (f.at, f.seq, f.index)) {
        facts.insert(i, fact);
    }
}

/// The business time and stream position of the event a fold is applying.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    pub at: i64,
    pub seq: u64,
    pub index: u16,
}

impl Stamp {
    #[must_use]
    pub fn of<T>(self, fact: T) -> Stamped<T> {
        Stamped {
            at: self.at,
            seq: self.seq,
            index: self.index,
            fact,
        }
    }
}
