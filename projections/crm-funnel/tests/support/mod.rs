//! Folding test events into the funnel, as the runtime does.

use crm_domain::{Actor, CommandId, DomainEvent, Timestamp};
use crm_events::{Envelope, EventHash, EventMeta};
use crm_funnel::Funnel;
use crm_projection::{Event, MemState};
use uuid::Uuid;

/// Folds `(business time in microseconds, event)` pairs in the given (stream) order.
pub fn fold(events: &[(i64, DomainEvent)]) -> MemState {
    let mut state = MemState::default();
    for (i, (at, event)) in events.iter().enumerate() {
        let seq = i as u64 + 1;
        let envelope = Envelope {
            meta: EventMeta {
                event_id: Uuid::from_u128(u128::from(seq)),
                version: seq,
                occurred_at: Timestamp(*at),
                recorded_at: Timestamp(*at),
                actor: Actor::User("alice".into()),
                command_id: CommandId(Uuid::from_u128(1000 + u128::from(seq))),
                correlation_id: Uuid::nil(),
                causation_id: None,
                commit_index: 0,
                commit_size: 1,
                prev_hash: EventHash::GENESIS,
            },
            aggregate: event.aggregate(),
            event_type: event.event_type().into(),
            schema_version: 1,
            event: event.clone(),
            hash: EventHash::GENESIS,
            sealing: crm_events::Sealing::Plain,
        };
        state
            .apply(
                &Funnel,
                &Event {
                    seq,
                    index: 0,
                    subject: "crm.v1.test",
                    envelope: &envelope,
                },
            )
            .unwrap();
    }
    state
}
