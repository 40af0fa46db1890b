//! Point-in-time reconstruction: one customer as of a past moment, computed by the same
//! fold that builds the live read model, over an in-memory state.
//!
//! Two clocks, two questions (both are asked by auditors):
//! - [`Cut::Recorded`]: *what did the CRM know at `t`?* Events recorded after `t` are left
//!   out, even if they describe earlier business (a late import).
//! - [`Cut::Occurred`]: *what had happened by `t`, as we know it now?* Events whose business
//!   time is after `t` are left out, whenever they were recorded.
//!
//! Events are applied in stream order either way, so the result is exactly the live
//! record the fold would have produced from the kept events.

use crm_projection::{Event, FoldError, MemState, load};

use crate::keys;
use crate::record::{CustomerRecord, Id, TimelineEntry};
use crate::{Customer360, CustomerFacts};

/// Where a point-in-time view cuts the history (microseconds since the epoch, inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Keep events recorded at or before the time.
    Recorded(i64),
    /// Keep events whose business time (`occurred_at`) is at or before the time.
    Occurred(i64),
}

impl Cut {
    fn keeps(self, event: &Event<'_>) -> bool {
        let meta = &event.envelope.meta;
        match self {
            Cut::Recorded(t) => meta.recorded_at.0 <= t,
            Cut::Occurred(t) => meta.occurred_at.0 <= t,
        }
    }
}

/// One customer as of a [`Cut`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointInTime {
    /// The record (`None`: the customer did not exist yet).
    pub record: Option<CustomerRecord>,
    pub facts: CustomerFacts,
    /// The customer's timeline, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Events applied (kept by the cut).
    pub applied: u64,
    /// Events left out by the cut.
    pub cut_off: u64,
    /// Messages the fold refused (by stream sequence), with the reason (as the live
    /// projector would dead-letter them: a group of events is refused whole).
    pub rejected: Vec<(u64, String)>,
}

/// Folds `events` (in stream order: the customer's own events and any lead or campaign
/// events the view should reflect) into a fresh in-memory state, keeping those `cut`
/// keeps, and returns customer `id` as it then stands.
///
/// # Errors
/// A stored value that does not decode (cannot happen with values this fold wrote).
pub fn reconstruct<'a>(
    fold: &Customer360,
    id: Id,
    events: impl IntoIterator<Item = Event<'a>>,
    cut: Cut,
) -> Result<PointInTime, FoldError> {
    let mut state = MemState::default();
    let (mut applied, mut cut_off, mut rejected) = (0, 0, Vec::new());
    // The events of one stored message (same `seq`) apply whole or not at all, as live.
    let mut message: Vec<Event<'a>> = Vec::new();
    let mut flush = |state: &mut MemState, message: &mut Vec<Event<'a>>| {
        if let Some(first) = message.first() {
            match state.apply_message(fold, message) {
                Ok(()) => applied += message.len() as u64,
                Err(e) => rejected.push((first.seq, e.to_string())),
            }
        }
        message.clear();
    };
    for event in events {
        if !cut.keeps(&event) {
            cut_off += 1;
            continue;
        }
        if message.first().is_some_and(|m| m.seq != event.seq) {
            flush(&mut state, &mut message);
        }
        message.push(event);
    }
    flush(&mut state, &mut message);
    let record = load::<CustomerRecord>(&mut state, &keys::id_key(keys::CUSTOMER, id))?;
    let facts =
        load::<CustomerFacts>(&mut state, &keys::id_key(keys::FACTS, id))?.unwrap_or_default();
    let prefix = keys::id_key(keys::TIMELINE, id);
    let mut timeline = Vec::new();
    for (k, v) in state
        .entries
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
    {
        crate::record::decode_chunk(v, &mut timeline).map_err(|e| FoldError::Corrupt {
            key: String::from_utf8_lossy(k).into_owned(),
            reason: e.to_string(),
        })?;
    }
    crate::record::sort_timeline(&mut timeline);
    Ok(PointInTime {
        record,
        facts,
        timeline,
        applied,
        cut_off,
        rejected,
    })
}
