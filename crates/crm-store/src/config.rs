//! Configuration of the event log.

use std::time::Duration;

use crm_domain::AggregateRef;

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
            subject_prefix: "crm.v1".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            request_timeout: Duration::from_secs(5),
            open_timeout: Duration::from_secs(30),
        }
    }
}

impl LogConfig {
    /// The subject that holds one aggregate's events.
    #[must_use]
    pub fn subject(&self, aggregate: AggregateRef) -> String {
        format!(
            "{}.{}.{}",
            self.subject_prefix,
            aggregate.kind().name(),
            aggregate.uuid().as_simple()
        )
    }

    /// The aggregate a subject of this log belongs to (`None` for any other subject).
    #[must_use]
    pub fn parse_subject(&self, subject: &str) -> Option<AggregateRef> {
        let rest = subject
            .strip_prefix(&self.subject_prefix)?
            .strip_prefix('.')?;
        let (kind, id) = rest.split_once('.')?;
        let id = uuid::Uuid::try_parse(id).ok()?;
        Some(match crm_domain::AggregateKind::from_name(kind)? {
            crm_domain::AggregateKind::Customer => {
                AggregateRef::Customer(crm_domain::CustomerId(id))
            }
            crm_domain::AggregateKind::Lead => AggregateRef::Lead(crm_domain::LeadId(id)),
            crm_domain::AggregateKind::Campaign => {
                AggregateRef::Campaign(crm_domain::CampaignId(id))
            }
        })
    }

    /// The stream's subject filter.
    #[must_use]
    pub fn subject_filter(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }
}
