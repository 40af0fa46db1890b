//! Which payload text is personal data: the one list, by event type and field. Every text
//! field of every event's payload (as [`crate::payload_json`] renders the current
//! version: `a.b` for a nested field, `[]` for the items of a list) is in
//! [`TEXT_FIELDS`], classified; a test (`tests/personal.rs`) fails when an event type
//! gains a text field that is not, or when the list names a field no event has. Tools
//! that show payloads to someone without `pii.read` keep a text value only when its
//! field is [`Class::NotPersonal`] (default deny: an unknown field is personal).
//!
//! Personal: names, emails, phones, addresses, the customer's country, external ids, and
//! free text that can hold personal data (interaction subjects and summaries, ticket
//! subjects, comments and resolutions, reopen and return reasons, notes, lead interest,
//! consent sources). Not personal: codes and categories (stages, channels, SKUs,
//! reasons chosen from a list such as loss and disqualification reasons), staff and
//! organisation names (owners, agents, teams, rules, pipelines), tags, campaign and deal
//! names. Ids are not text in the payload (16 bytes) and are not personal by this list.

/// Personal or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Personal,
    NotPersonal,
}

use Class::{NotPersonal, Personal};

/// (event type, field path, class), sorted by event type then path.
pub const TEXT_FIELDS: &[(&str, &str, Class)] = &[
    ("campaign.cost_recorded", "note", Personal),
    ("campaign.created", "channel", NotPersonal),
    ("campaign.created", "name", NotPersonal),
    ("campaign.created", "segment", NotPersonal),
    ("campaign.sent", "skipped[].reason", NotPersonal),
    (
        "customer.campaign_response_recorded",
        "response",
        NotPersonal,
    ),
    ("customer.consent_changed", "channel", NotPersonal),
    ("customer.consent_changed", "source", Personal),
    ("customer.interaction_logged", "agent", NotPersonal),
    ("customer.interaction_logged", "call.outcome", NotPersonal),
    ("customer.interaction_logged", "channel", NotPersonal),
    ("customer.interaction_logged", "direction", NotPersonal),
    ("customer.interaction_logged", "subject", Personal),
    ("customer.interaction_logged", "summary", Personal),
    ("customer.opportunity_lost", "reason", NotPersonal),
    ("customer.opportunity_lost", "stage", NotPersonal),
    ("customer.opportunity_opened", "forecast", NotPersonal),
    ("customer.opportunity_opened", "name", NotPersonal),
    ("customer.opportunity_opened", "owner", NotPersonal),
    ("customer.opportunity_opened", "pipeline", NotPersonal),
    ("customer.opportunity_opened", "stage", NotPersonal),
    ("customer.opportunity_reopened", "forecast", NotPersonal),
    ("customer.opportunity_reopened", "reason", Personal),
    ("customer.opportunity_reopened", "stage", NotPersonal),
    ("customer.opportunity_stage_moved", "forecast", NotPersonal),
    (
        "customer.opportunity_stage_moved",
        "from_stage",
        NotPersonal,
    ),
    ("customer.opportunity_stage_moved", "to_stage", NotPersonal),
    ("customer.opportunity_updated", "name", NotPersonal),
    ("customer.opportunity_updated", "owner", NotPersonal),
    ("customer.opportunity_won", "stage", NotPersonal),
    ("customer.order_placed", "lines[].category", NotPersonal),
    ("customer.order_placed", "lines[].sku", NotPersonal),
    ("customer.order_placed", "sales_channel", NotPersonal),
    ("customer.profile_updated", "address.city", Personal),
    ("customer.profile_updated", "address.country", Personal),
    ("customer.profile_updated", "address.line1", Personal),
    ("customer.profile_updated", "address.line2", Personal),
    ("customer.profile_updated", "address.postal_code", Personal),
    ("customer.profile_updated", "address.region", Personal),
    ("customer.profile_updated", "country", Personal),
    ("customer.profile_updated", "emails[]", Personal),
    ("customer.profile_updated", "external_ids[][]", Personal),
    ("customer.profile_updated", "family_name", Personal),
    ("customer.profile_updated", "given_name", Personal),
    ("customer.profile_updated", "language", NotPersonal),
    ("customer.profile_updated", "owner", NotPersonal),
    ("customer.profile_updated", "phones[]", Personal),
    ("customer.profile_updated", "team", NotPersonal),
    ("customer.registered", "acquisition.medium", NotPersonal),
    ("customer.registered", "acquisition.source", NotPersonal),
    ("customer.registered", "owner", NotPersonal),
    ("customer.registered", "profile.address.city", Personal),
    ("customer.registered", "profile.address.country", Personal),
    ("customer.registered", "profile.address.line1", Personal),
    ("customer.registered", "profile.address.line2", Personal),
    (
        "customer.registered",
        "profile.address.postal_code",
        Personal,
    ),
    ("customer.registered", "profile.address.region", Personal),
    ("customer.registered", "profile.country", Personal),
    ("customer.registered", "profile.emails[]", Personal),
    ("customer.registered", "profile.external_ids[][]", Personal),
    ("customer.registered", "profile.family_name", Personal),
    ("customer.registered", "profile.given_name", Personal),
    ("customer.registered", "profile.language", NotPersonal),
    ("customer.registered", "profile.phones[]", Personal),
    ("customer.registered", "team", NotPersonal),
    ("customer.relationship_linked", "kind", NotPersonal),
    ("customer.return_recorded", "lines[].sku", NotPersonal),
    ("customer.return_recorded", "reason", Personal),
    ("customer.tagged", "tag", NotPersonal),
    ("customer.ticket_assigned", "agent", NotPersonal),
    ("customer.ticket_assigned", "rule", NotPersonal),
    ("customer.ticket_closed", "comment", Personal),
    ("customer.ticket_opened", "category", NotPersonal),
    ("customer.ticket_opened", "channel", NotPersonal),
    ("customer.ticket_opened", "priority", NotPersonal),
    ("customer.ticket_opened", "sla.policy", NotPersonal),
    ("customer.ticket_opened", "subject", Personal),
    ("customer.ticket_reopened", "reason", Personal),
    ("customer.ticket_resolved", "resolution", Personal),
    ("customer.ticket_responded", "agent", NotPersonal),
    ("customer.untagged", "tag", NotPersonal),
    ("lead.assigned", "owner", NotPersonal),
    ("lead.assigned", "rule", NotPersonal),
    ("lead.captured", "email", Personal),
    ("lead.captured", "family_name", Personal),
    ("lead.captured", "given_name", Personal),
    ("lead.captured", "interest", Personal),
    ("lead.captured", "phone", Personal),
    ("lead.captured", "source", NotPersonal),
    ("lead.contacted", "agent", NotPersonal),
    ("lead.contacted", "channel", NotPersonal),
    ("lead.disqualified", "reason", NotPersonal),
    ("lead.qualified", "note", Personal),
];

/// The class of the text field `path` of `event_type`'s payload; `None` when it is not
/// in the list (treat it as personal).
#[must_use]
pub fn class_of(event_type: &str, path: &str) -> Option<Class> {
    TEXT_FIELDS
        .binary_search_by(|(t, p, _)| (*t, *p).cmp(&(event_type, path)))
        .ok()
        .map(|i| TEXT_FIELDS[i].2)
}

/// Whether the text field may be shown to someone without `pii.read`.
#[must_use]
pub fn may_show(event_type: &str, path: &str) -> bool {
    class_of(event_type, path) == Some(NotPersonal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_without_duplicates() {
        for w in TEXT_FIELDS.windows(2) {
            assert!(
                (w[0].0, w[0].1) < (w[1].0, w[1].1),
                "{:?} then {:?}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn names_are_personal_and_stages_are_not() {
        assert_eq!(
            class_of("customer.registered", "profile.given_name"),
            Some(Personal)
        );
        assert_eq!(class_of("lead.captured", "email"), Some(Personal));
        assert_eq!(
            class_of("customer.opportunity_opened", "stage"),
            Some(NotPersonal)
        );
        assert_eq!(class_of("customer.registered", "nickname"), None);
        assert!(!may_show("customer.registered", "nickname"));
    }
}
