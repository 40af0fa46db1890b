//! Configuration of the event log.

use std::time::Duration;

use crm_domain::AggregateRef;
use crm_events::SubjectScheme;

/// Where and how events are stored.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// JetStream stream name.
    pub stream: String,
    /// Subject prefix; an aggregate's subject is `<prefix>.<kind>.<uuid>`.
    pub subject_prefix: String,
    /// Stream replicas: 1 on one machine, 3 in a cluster.
    pub replicas: usize,
    /// JetStream's in-memory `Nats-Msg-Id` dedupe window (durable idempotency does not
    /// depend on it; it only short-cuts retries that come quickly).
    pub duplicate_window: Duration,
    /// How long to wait for the server's answer to one request.
    pub request_timeout: Duration,
    /// How long opening the log keeps retrying while JetStream is not ready yet.
    pub open_timeout: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            stream: "CRM_EVENTS".into(),
            subject_prefix: crm_events::DEFAULT_PREFIX.into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            request_timeout: Duration::from_secs(5),
            open_timeout: Duration::from_secs(30),
        }
    }
}

impl LogConfig {
    /// The log's subject scheme (owned by `crm-events`: subjects are persisted).
    #[must_use]
    pub fn scheme(&self) -> SubjectScheme {
        SubjectScheme::new(self.subject_prefix.clone())
    }

    /// The subject that holds one aggregate's events.
    #[must_use]
    pub fn subject(&self, aggregate: AggregateRef) -> String {
        self.scheme().subject(aggregate)
    }

    /// The aggregate a subject of this log belongs to (`None` for any other subject,
    /// including a look-alike that is not in the canonical form).
    #[must_use]
    pub fn parse_subject(&self, subject: &str) -> Option<AggregateRef> {
        self.scheme().parse(subject)
    }

    /// The stream's subject filter.
    #[must_use]
    pub fn subject_filter(&self) -> String {
        self.scheme().filter()
    }
}
