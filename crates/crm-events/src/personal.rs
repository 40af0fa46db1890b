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
    ("customer.forgotten", "legal_basis", NotPersonal),
    // Kept forever as the erasure's justification: the API says never to put personal
    // data in it.
    ("customer.forgotten", "reason", NotPersonal),
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

/// A personal text value of an event, with its path in [`TEXT_FIELDS`]' form.
pub type PersonalText<'a> = (&'static str, &'a mut String);

/// Every personal text value of `event` that holds one, by path: what crypto-shredding
/// seals under the data subject's key. Exhaustive by construction (a new event variant
/// does not compile until it is listed here); a test checks that it agrees with
/// [`TEXT_FIELDS`]. Campaign events carry no data subject: a campaign cost's note is
/// personal by the list (free text) but has no one it could be shredded for.
pub fn personal_text_mut(event: &mut crm_domain::DomainEvent) -> Vec<PersonalText<'_>> {
    use crm_domain::{CampaignEvent as Ca, DomainEvent as D, LeadEvent as L};
    let mut out = Vec::new();
    match event {
        D::Customer(_, e) => customer_text(e, &mut out),
        D::Lead(_, e) => match e {
            L::Captured(c) => {
                out.push(("given_name", &mut c.given_name));
                out.push(("family_name", &mut c.family_name));
                out.extend(c.email.as_mut().map(|v| ("email", v)));
                out.extend(c.phone.as_mut().map(|v| ("phone", v)));
                out.push(("interest", &mut c.interest));
            }
            L::Qualified { note } => out.push(("note", note)),
            L::Assigned { .. }
            | L::Contacted { .. }
            | L::Disqualified { .. }
            | L::Converted { .. } => {}
        },
        D::Campaign(_, e) => match e {
            Ca::Created(_) | Ca::Sent { .. } | Ca::CostRecorded { .. } => {}
        },
    }
    out
}

/// A registration's profile (paths under `profile.`).
fn profile_text<'a>(p: &'a mut crm_domain::Profile, out: &mut Vec<PersonalText<'a>>) {
    let registered = true;
    let path = |registered: bool, plain: &'static str, nested: &'static str| {
        if registered { nested } else { plain }
    };
    out.push((
        path(registered, "given_name", "profile.given_name"),
        &mut p.given_name,
    ));
    out.push((
        path(registered, "family_name", "profile.family_name"),
        &mut p.family_name,
    ));
    for e in &mut p.emails {
        out.push((path(registered, "emails[]", "profile.emails[]"), e));
    }
    for ph in &mut p.phones {
        out.push((path(registered, "phones[]", "profile.phones[]"), ph));
    }
    if let Some(a) = p.address.as_mut() {
        address_text(registered, a, out);
    }
    if let Some(c) = p.country.as_mut() {
        out.push((path(registered, "country", "profile.country"), c));
    }
    for (system, id) in &mut p.external_ids {
        let at = path(registered, "external_ids[][]", "profile.external_ids[][]");
        out.push((at, system));
        out.push((at, id));
    }
}

fn address_text<'a>(
    registered: bool,
    a: &'a mut crm_domain::Address,
    out: &mut Vec<PersonalText<'a>>,
) {
    let fields: [(&'static str, &'static str, &'a mut String); 6] = [
        ("address.line1", "profile.address.line1", &mut a.line1),
        ("address.line2", "profile.address.line2", &mut a.line2),
        ("address.city", "profile.address.city", &mut a.city),
        ("address.region", "profile.address.region", &mut a.region),
        (
            "address.postal_code",
            "profile.address.postal_code",
            &mut a.postal_code,
        ),
        ("address.country", "profile.address.country", &mut a.country),
    ];
    for (plain, nested, v) in fields {
        out.push((if registered { nested } else { plain }, v));
    }
}

fn customer_text<'a>(e: &'a mut crm_domain::CustomerEvent, out: &mut Vec<PersonalText<'a>>) {
    use crm_domain::CustomerEvent as C;
    match e {
        C::Registered(r) => profile_text(&mut r.profile, out),
        C::ProfileUpdated(p) => {
            out.extend(p.given_name.as_mut().map(|v| ("given_name", v)));
            out.extend(p.family_name.as_mut().map(|v| ("family_name", v)));
            for v in p.emails.iter_mut().flatten() {
                out.push(("emails[]", v));
            }
            for v in p.phones.iter_mut().flatten() {
                out.push(("phones[]", v));
            }
            if let Some(Some(a)) = p.address.as_mut() {
                address_text(false, a, out);
            }
            if let Some(Some(c)) = p.country.as_mut() {
                out.push(("country", c));
            }
            for (system, id) in p.external_ids.iter_mut().flatten() {
                out.push(("external_ids[][]", system));
                out.push(("external_ids[][]", id));
            }
        }
        C::ConsentChanged { source, .. } => out.push(("source", source)),
        C::InteractionLogged(i) => {
            out.push(("subject", &mut i.subject));
            out.push(("summary", &mut i.summary));
        }
        C::ReturnRecorded(r) => out.push(("reason", &mut r.reason)),
        C::TicketOpened(t) => out.push(("subject", &mut t.subject)),
        C::TicketResolved { resolution, .. } => out.push(("resolution", resolution)),
        C::TicketReopened { reason, .. } => out.push(("reason", reason)),
        C::TicketClosed { comment, .. } => out.push(("comment", comment)),
        C::OpportunityReopened { reason, .. } => out.push(("reason", reason)),
        C::Tagged { .. }
        | C::Untagged { .. }
        | C::RelationshipLinked { .. }
        | C::OrderPlaced(_)
        | C::TicketAssigned { .. }
        | C::TicketResponded { .. }
        | C::TicketCustomerReplied { .. }
        | C::OpportunityOpened(_)
        | C::OpportunityStageMoved { .. }
        | C::OpportunityWon { .. }
        | C::OpportunityLost { .. }
        | C::OpportunityUpdated { .. }
        | C::CampaignResponseRecorded { .. }
        | C::LeadLinked { .. }
        | C::Forgotten { .. } => {}
    }
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
