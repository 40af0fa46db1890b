//! Given/when/then helpers for decide tests, and proptest strategies (feature `testing`).
//!
//! ```text
//! Scenario::new()
//!     .given([registered(c)])
//!     .when(Command::TagCustomer { customer_id: c, tag: "vip".into() })
//!     .then_events([DomainEvent::Customer(c, CustomerEvent::Tagged { tag: "vip".into() })]);
//! ```

use crate::{
    Command, DecideContext, DomainConfig, DomainEvent, Rejection, RejectionKind, Timestamp, World,
    decide,
};

/// A fixed business time for tests: 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp(1_767_225_600_000_000);

/// A decide test: past events, one command, and an expectation.
#[derive(Debug)]
pub struct Scenario {
    world: World,
    config: DomainConfig,
    at: Timestamp,
}

impl Default for Scenario {
    fn default() -> Self {
        Self::new()
    }
}

/// The outcome of [`Scenario::when`], to assert on.
#[derive(Debug)]
pub struct Outcome {
    pub world: World,
    pub command: Command,
    pub result: Result<Vec<DomainEvent>, Rejection>,
}

impl Scenario {
    #[must_use]
    pub fn new() -> Self {
        Self {
            world: World::default(),
            config: DomainConfig::default(),
            at: T0,
        }
    }

    /// Past events (they must form a valid history).
    #[must_use]
    pub fn given(mut self, events: impl IntoIterator<Item = DomainEvent>) -> Self {
        for e in events {
            if let Err(err) = self.world.apply(&e) {
                panic!("given history is not valid: {err} (event {e:?})");
            }
        }
        self
    }

    /// Past commands, which must all be accepted.
    #[must_use]
    pub fn given_commands(mut self, commands: impl IntoIterator<Item = Command>) -> Self {
        for c in commands {
            let ctx = DecideContext {
                config: &self.config,
                occurred_at: self.at,
            };
            let events = decide(&self.world, &c, &ctx)
                .unwrap_or_else(|r| panic!("given command {} was rejected: {r}", c.name()));
            for e in &events {
                self.world.apply(e).expect("decided events evolve");
            }
        }
        self
    }

    #[must_use]
    pub fn with_config(mut self, config: DomainConfig) -> Self {
        self.config = config;
        self
    }

    #[must_use]
    pub fn at(mut self, at: Timestamp) -> Self {
        self.at = at;
        self
    }

    pub fn when(self, command: Command) -> Outcome {
        let ctx = DecideContext {
            config: &self.config,
            occurred_at: self.at,
        };
        let result = decide(&self.world, &command, &ctx);
        Outcome {
            world: self.world,
            command,
            result,
        }
    }
}

impl Outcome {
    /// Asserts the command was accepted with exactly these events, and that they evolve
    /// the world. Returns the world after them.
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = DomainEvent>) -> World {
        let expected: Vec<DomainEvent> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(
                    events,
                    expected,
                    "{} decided other events",
                    self.command.name()
                );
                let mut world = self.world;
                for e in &events {
                    world.apply(e).expect("decided events evolve");
                }
                world
            }
            Err(r) => panic!("{} was rejected: {r}", self.command.name()),
        }
    }

    /// Asserts the command was accepted and returns its events and the world after them.
    #[track_caller]
    pub fn accepted(self) -> (Vec<DomainEvent>, World) {
        match self.result {
            Ok(events) => {
                let mut world = self.world;
                for e in &events {
                    world.apply(e).expect("decided events evolve");
                }
                (events, world)
            }
            Err(r) => panic!("{} was rejected: {r}", self.command.name()),
        }
    }

    /// Asserts a rejection of `kind` whose violations include `field` breaking `rule`.
    #[track_caller]
    pub fn then_rejects(self, kind: RejectionKind, field: &str, rule: &str) -> Rejection {
        match self.result {
            Ok(events) => panic!(
                "{} was accepted with {events:?}; expected {field}/{rule}",
                self.command.name()
            ),
            Err(r) => {
                assert_eq!(r.kind, kind, "wrong rejection kind: {r}");
                assert!(
                    r.violations
                        .iter()
                        .any(|v| v.field == field && v.rule == rule),
                    "expected {field}/{rule}, got: {r}"
                );
                assert!(
                    r.violations.iter().all(|v| !v.message.is_empty()),
                    "every violation needs a message: {r:?}"
                );
                r
            }
        }
    }
}
