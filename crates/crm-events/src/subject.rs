//! The subject scheme: where an aggregate's messages are stored.
//!
//! A subject is `<prefix>.<kind>.<uuid>` with the uuid as 32 lower-case hex digits
//! (`crm.v1.customer.0190c4d2...`). Like the message format, the scheme is persisted (every
//! stored message carries its subject) and therefore forever: readers accept only the
//! canonical form, so a message published on a look-alike subject (a hyphenated or
//! upper-case uuid) is never attributed to the aggregate it resembles.

use crm_domain::{AggregateKind, AggregateRef, CampaignId, CustomerId, LeadId};

/// The prefix of the default stream's subjects.
pub const DEFAULT_PREFIX: &str = "crm.v1";

/// The subjects of one event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectScheme {
    prefix: String,
}

impl Default for SubjectScheme {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl SubjectScheme {
    #[must_use]
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The subject that holds one aggregate's events.
    #[must_use]
    pub fn subject(&self, aggregate: AggregateRef) -> String {
        format!(
            "{}.{}.{}",
            self.prefix,
            aggregate.kind().name(),
            aggregate.uuid().as_simple()
        )
    }

    /// The aggregate a subject belongs to; `None` for any subject that is not exactly what
    /// [`Self::subject`] writes (another prefix or kind, or a uuid in another spelling).
    #[must_use]
    pub fn parse(&self, subject: &str) -> Option<AggregateRef> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix('.')?;
        let (kind, id) = rest.split_once('.')?;
        let canonical = id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !canonical {
            return None;
        }
        let id = uuid::Uuid::try_parse(id).ok()?;
        Some(match AggregateKind::from_name(kind)? {
            AggregateKind::Customer => AggregateRef::Customer(CustomerId(id)),
            AggregateKind::Lead => AggregateRef::Lead(LeadId(id)),
            AggregateKind::Campaign => AggregateRef::Campaign(CampaignId(id)),
        })
    }

    /// The subject of the quarantine log (see [`crate::quarantine`]): not an aggregate
    /// subject, so [`Self::parse`] returns `None` for it.
    #[must_use]
    pub fn quarantine(&self) -> String {
        format!("{}.system.quarantine", self.prefix)
    }

    /// The subject of the notary's signed anchors (see [`crate::anchor`]): not an
    /// aggregate subject either.
    #[must_use]
    pub fn anchors(&self) -> String {
        format!("{}.system.anchor", self.prefix)
    }

    /// Every subject of the log (the stream's subject filter).
    #[must_use]
    pub fn filter(&self) -> String {
        format!("{}.>", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0190c4d2a0b37c8e9f1a2b3c4d5e6f70";

    #[test]
    fn a_subject_parses_back_to_its_aggregate() {
        let scheme = SubjectScheme::default();
        let id = CustomerId(uuid::Uuid::try_parse(ID).unwrap());
        let subject = scheme.subject(AggregateRef::Customer(id));
        assert_eq!(subject, format!("crm.v1.customer.{ID}"));
        assert_eq!(scheme.parse(&subject), Some(AggregateRef::Customer(id)));
    }

    #[test]
    fn only_the_canonical_spelling_is_an_aggregate_subject() {
        let scheme = SubjectScheme::default();
        let hyphenated = uuid::Uuid::try_parse(ID).unwrap().hyphenated().to_string();
        for foreign in [
            format!("crm.v1.customer.{hyphenated}"),
            format!("crm.v1.customer.{}", ID.to_uppercase()),
            format!("crm.v1.customer.{{{ID}}}"),
            format!("crm.v1.customer.{ID}.x"),
            format!("crm.v1.order.{ID}"),
            format!("crm.v2.customer.{ID}"),
            format!("crm.v1customer.{ID}"),
            "crm.v1.customer.".to_owned(),
        ] {
            assert_eq!(scheme.parse(&foreign), None, "{foreign}");
        }
    }
}
