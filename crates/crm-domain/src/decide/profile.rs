//! Registration, profile changes, consent, tags, relationships and interactions.

use super::*;

/// Decides [`Command::RegisterCustomer`].
pub(super) fn register_customer(
    world: &World,
    c: &RegisterCustomer,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    let profile = normalize_profile(&c.profile);
    check_profile(&mut check, &profile);
    check.opt_text("owner", c.owner.as_ref(), SHORT_MAX);
    check.opt_text("team", c.team.as_ref(), SHORT_MAX);
    if let Some(a) = &c.acquisition {
        check.text("acquisition.source", &a.source, SHORT_MAX);
        check.text("acquisition.medium", &a.medium, SHORT_MAX);
    }
    let tags: Vec<String> = c.tags.iter().map(|t| normalize_tag(t)).collect();
    check.list_len("tags", tags.len(), LIST_MAX);
    for (i, t) in tags.iter().enumerate() {
        check.key(&format!("tags[{i}]"), t, TAG_MAX);
    }
    if !c.consents.is_empty() {
        check.required("consent_source", &c.consent_source, SHORT_MAX);
    }
    let mut channels: Vec<ConsentChannel> = c.consents.iter().map(|(ch, _)| *ch).collect();
    channels.sort();
    if channels.windows(2).any(|w| w[0] == w[1]) {
        check.fail("consents", "unique", "must name each channel at most once");
    }
    check.finish()?;
    if world.customers.contains_key(&c.customer_id) {
        return Err(Rejection::already_exists(
            "customer_id",
            format!("customer {} already exists", c.customer_id),
        ));
    }
    let id = c.customer_id;
    let mut events = vec![customer_event(
        id,
        CustomerEvent::Registered(CustomerRegistered {
            profile,
            acquisition: c.acquisition.clone(),
            owner: c.owner.clone(),
            team: c.team.clone(),
            lead: None,
        }),
    )];
    for (channel, granted) in &c.consents {
        events.push(customer_event(
            id,
            CustomerEvent::ConsentChanged {
                channel: *channel,
                granted: *granted,
                source: c.consent_source.clone(),
            },
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for tag in tags {
        if seen.insert(tag.clone()) {
            events.push(customer_event(id, CustomerEvent::Tagged { tag }));
        }
    }
    Ok(events)
}

/// Decides [`Command::UpdateProfile`].
pub(super) fn update_profile(
    world: &World,
    customer_id: &CustomerId,
    patch: &ProfilePatch,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    let mut patch = patch.clone();
    if let Some(e) = &mut patch.emails {
        *e = e.iter().map(|x| x.trim().to_lowercase()).collect();
    }
    if let Some(p) = &mut patch.phones {
        *p = p.iter().map(|x| x.trim().to_owned()).collect();
    }
    for name in [&mut patch.given_name, &mut patch.family_name]
        .into_iter()
        .flatten()
    {
        *name = name.trim().to_owned();
    }
    if let Some(ids) = &mut patch.external_ids {
        ids.sort();
    }
    if let Some(v) = &patch.given_name {
        check.text("given_name", v, NAME_MAX);
    }
    if let Some(v) = &patch.family_name {
        check.text("family_name", v, NAME_MAX);
    }
    check_contacts(
        &mut check,
        patch.emails.as_deref().unwrap_or_default(),
        patch.phones.as_deref().unwrap_or_default(),
    );
    if let Some(Some(a)) = &patch.address {
        check_address(&mut check, a);
    }
    if let Some(Some(l)) = &patch.language {
        check.language("language", l);
    }
    if let Some(Some(c)) = &patch.country {
        check.country("country", c);
    }
    if let Some(ids) = &patch.external_ids {
        check_external_ids(&mut check, ids);
    }
    if let Some(Some(o)) = &patch.owner {
        check.required("owner", o, SHORT_MAX);
    }
    if let Some(Some(t)) = &patch.team {
        check.required("team", t, SHORT_MAX);
    }
    check.finish()?;
    let customer = existing_customer(world, *customer_id, "customer_id")?;
    let patch = effective_patch(customer, patch);
    if patch.is_empty() {
        return Ok(vec![]);
    }
    let mut after = customer.profile.clone();
    apply_profile(&mut after, &patch);
    if after.given_name.is_empty()
        && after.family_name.is_empty()
        && after.emails.is_empty()
        && after.phones.is_empty()
    {
        // Name each field the change clears (the customer had one of them, so
        // there is at least one; the whole profile only if history says otherwise).
        let cleared = [
            ("given_name", patch.given_name.is_some()),
            ("family_name", patch.family_name.is_some()),
            ("emails", patch.emails.is_some()),
            ("phones", patch.phones.is_some()),
        ];
        let violations: Vec<Violation> = cleared
            .into_iter()
            .filter(|(_, clears)| *clears)
            .map(|(field, _)| Violation {
                field: field.into(),
                rule: "identifiable",
                message: "clearing it would leave the customer with no name, email or phone".into(),
            })
            .collect();
        if violations.is_empty() {
            return Err(Rejection::precondition(
                "profile",
                "identifiable",
                "the customer has no name, email or phone",
            ));
        }
        return Err(Rejection {
            kind: RejectionKind::FailedPrecondition,
            violations,
        });
    }
    Ok(vec![customer_event(
        *customer_id,
        CustomerEvent::ProfileUpdated(patch),
    )])
}

/// Decides [`Command::SetConsent`].
pub(super) fn set_consent(
    world: &World,
    customer_id: &CustomerId,
    channel: &ConsentChannel,
    granted: &bool,
    source: &str,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.required("source", source, SHORT_MAX);
    check.finish()?;
    let customer = existing_customer(world, *customer_id, "customer_id")?;
    if customer.consent.get(channel) == Some(granted) {
        return Ok(vec![]);
    }
    Ok(vec![customer_event(
        *customer_id,
        CustomerEvent::ConsentChanged {
            channel: *channel,
            granted: *granted,
            source: source.to_owned(),
        },
    )])
}

/// Decides [`Command::TagCustomer`].
pub(super) fn tag(
    world: &World,
    customer_id: &CustomerId,
    tag: &str,
    adding: bool,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    let tag = normalize_tag(tag);
    check.key("tag", &tag, TAG_MAX);
    check.finish()?;
    let customer = existing_customer(world, *customer_id, "customer_id")?;
    if customer.tags.contains(&tag) == adding {
        return Ok(vec![]);
    }
    if adding && customer.tags.len() >= TAGS_PER_CUSTOMER_MAX {
        return Err(Rejection::precondition(
            "tag",
            "max_items",
            format!("a customer can have at most {TAGS_PER_CUSTOMER_MAX} tags"),
        ));
    }
    let event = if adding {
        CustomerEvent::Tagged { tag }
    } else {
        CustomerEvent::Untagged { tag }
    };
    Ok(vec![customer_event(*customer_id, event)])
}

/// Decides [`Command::LinkCustomers`].
pub(super) fn link_customers(
    world: &World,
    customer_id: &CustomerId,
    other: &CustomerId,
    kind: &RelationshipKind,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    if customer_id == other {
        check.fail(
            "other",
            "distinct",
            "a customer cannot be related to itself",
        );
    }
    check.finish()?;
    let customer = existing_customer(world, *customer_id, "customer_id")?;
    existing_customer(world, *other, "other")?;
    if customer.relationships.contains(&(*other, *kind)) {
        return Ok(vec![]);
    }
    let inverse = kind.inverse();
    if inverse != *kind && customer.relationships.contains(&(*other, inverse)) {
        return Err(Rejection::precondition(
            "kind",
            "contradicts",
            format!(
                "customer {customer_id} is already linked to {other} as {inverse:?}, which contradicts {kind:?}"
            ),
        ));
    }
    Ok(vec![
        customer_event(
            *customer_id,
            CustomerEvent::RelationshipLinked {
                other: *other,
                kind: *kind,
            },
        ),
        customer_event(
            *other,
            CustomerEvent::RelationshipLinked {
                other: *customer_id,
                kind: kind.inverse(),
            },
        ),
    ])
}

/// Decides [`Command::LogInteraction`].
pub(super) fn log_interaction(
    world: &World,
    c: &LogInteraction,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.opt_text("agent", c.agent.as_ref(), SHORT_MAX);
    check.text("subject", &c.subject, SUBJECT_MAX);
    check.text("summary", &c.summary, TEXT_MAX);
    if let Some(s) = c.sentiment
        && !(-100..=100).contains(&s)
    {
        check.fail(
            "sentiment",
            "range",
            format!("must be between -100 and 100 (got {s})"),
        );
    }
    if c.call.is_some() && c.channel != Channel::Phone {
        check.fail(
            "call",
            "channel",
            "call details are only allowed on phone interactions",
        );
    }
    check.finish()?;
    let customer = existing_customer(world, c.customer_id, "customer_id")?;
    if customer.interactions.contains(&c.interaction_id) {
        return Err(Rejection::already_exists(
            "interaction_id",
            format!("interaction {} is already logged", c.interaction_id),
        ));
    }
    let mut resumes = None;
    if let Some(t) = c.ticket {
        let ticket = customer.tickets.get(&t).ok_or_else(|| {
            Rejection::not_found(
                "ticket",
                format!("ticket {t} does not exist on this customer"),
            )
        })?;
        if ticket.status == TicketStatus::AwaitingCustomer && c.direction == Direction::Inbound {
            resumes = Some(t);
        }
    }
    if let Some(o) = c.opportunity
        && !customer.opportunities.contains_key(&o)
    {
        return Err(Rejection::not_found(
            "opportunity",
            format!("opportunity {o} does not exist on this customer"),
        ));
    }
    let mut events = vec![customer_event(
        c.customer_id,
        CustomerEvent::InteractionLogged(InteractionLogged {
            interaction_id: c.interaction_id,
            channel: c.channel,
            direction: c.direction,
            agent: c.agent.clone(),
            subject: c.subject.clone(),
            summary: c.summary.clone(),
            sentiment: c.sentiment,
            ticket: c.ticket,
            opportunity: c.opportunity,
            campaign: c.campaign,
            call: c.call,
        }),
    )];
    if let Some(ticket_id) = resumes {
        events.push(customer_event(
            c.customer_id,
            CustomerEvent::TicketCustomerReplied { ticket_id },
        ));
    }
    Ok(events)
}

pub(super) fn normalize_profile(p: &Profile) -> Profile {
    let mut p = p.clone();
    p.given_name = p.given_name.trim().to_owned();
    p.family_name = p.family_name.trim().to_owned();
    p.emails = p.emails.iter().map(|e| e.trim().to_lowercase()).collect();
    p.phones = p.phones.iter().map(|e| e.trim().to_owned()).collect();
    p.external_ids.sort();
    p
}

pub(super) fn check_contacts(check: &mut Check, emails: &[String], phones: &[String]) {
    check.list_len("emails", emails.len(), LIST_MAX);
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = emails.iter().find(|e| !seen.insert(e.as_str())) {
        check.fail(
            "emails",
            "unique",
            format!("{dup} is listed more than once"),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = phones.iter().find(|p| !seen.insert(p.as_str())) {
        check.fail(
            "phones",
            "unique",
            format!("{dup} is listed more than once"),
        );
    }
    for (i, e) in emails.iter().enumerate() {
        check.email(&format!("emails[{i}]"), e);
    }
    check.list_len("phones", phones.len(), LIST_MAX);
    for (i, p) in phones.iter().enumerate() {
        check.phone(&format!("phones[{i}]"), p);
    }
}

pub(super) fn check_external_ids(check: &mut Check, ids: &[(String, String)]) {
    check.list_len("external_ids", ids.len(), LIST_MAX);
    for (i, (system, id)) in ids.iter().enumerate() {
        check.key(&format!("external_ids[{i}].system"), system, SHORT_MAX);
        check.required(&format!("external_ids[{i}].id"), id, NAME_MAX);
    }
    if ids.windows(2).any(|w| w[0].0 == w[1].0) {
        check.fail(
            "external_ids",
            "unique",
            "must name each system at most once",
        );
    }
}

pub(super) fn check_profile(check: &mut Check, p: &Profile) {
    check.text("given_name", &p.given_name, NAME_MAX);
    check.text("family_name", &p.family_name, NAME_MAX);
    if p.given_name.is_empty()
        && p.family_name.is_empty()
        && p.emails.is_empty()
        && p.phones.is_empty()
    {
        check.fail(
            "profile",
            "identifiable",
            "needs at least one of given_name, family_name, emails or phones",
        );
    }
    check_contacts(check, &p.emails, &p.phones);
    if let Some(a) = &p.address {
        check_address(check, a);
    }
    if let Some(l) = &p.language {
        check.language("language", l);
    }
    if let Some(c) = &p.country {
        check.country("country", c);
    }
    check_external_ids(check, &p.external_ids);
}

pub(super) fn check_address(check: &mut Check, a: &crate::values::Address) {
    check.required("address.line1", &a.line1, NAME_MAX);
    check.text("address.line2", &a.line2, NAME_MAX);
    check.required("address.city", &a.city, NAME_MAX);
    check.text("address.region", &a.region, NAME_MAX);
    check.text("address.postal_code", &a.postal_code, SHORT_MAX);
    check.country("address.country", &a.country);
}

pub(super) fn normalize_tag(tag: &str) -> String {
    tag.trim().to_lowercase()
}

/// The patch restricted to fields that actually change.
pub(super) fn effective_patch(c: &Customer, mut p: ProfilePatch) -> ProfilePatch {
    let prof = &c.profile;
    if p.given_name.as_ref() == Some(&prof.given_name) {
        p.given_name = None;
    }
    if p.family_name.as_ref() == Some(&prof.family_name) {
        p.family_name = None;
    }
    if p.emails.as_ref() == Some(&prof.emails) {
        p.emails = None;
    }
    if p.phones.as_ref() == Some(&prof.phones) {
        p.phones = None;
    }
    if p.address.as_ref() == Some(&prof.address) {
        p.address = None;
    }
    if p.language.as_ref() == Some(&prof.language) {
        p.language = None;
    }
    if p.country.as_ref() == Some(&prof.country) {
        p.country = None;
    }
    if p.external_ids.as_ref() == Some(&prof.external_ids) {
        p.external_ids = None;
    }
    if p.owner.as_ref() == Some(&c.owner) {
        p.owner = None;
    }
    if p.team.as_ref() == Some(&c.team) {
        p.team = None;
    }
    p
}

pub(super) fn apply_profile(prof: &mut Profile, p: &ProfilePatch) {
    if let Some(v) = &p.given_name {
        prof.given_name.clone_from(v);
    }
    if let Some(v) = &p.family_name {
        prof.family_name.clone_from(v);
    }
    if let Some(v) = &p.emails {
        prof.emails.clone_from(v);
    }
    if let Some(v) = &p.phones {
        prof.phones.clone_from(v);
    }
}

/// Decides [`Command::ForgetCustomer`]: records the erasure with the leads converted into
/// the customer (whose keys the caller destroys with the customer's). Forgetting a
/// forgotten customer records nothing: the caller still makes sure the keys are gone.
pub(super) fn forget_customer(
    world: &World,
    customer_id: &CustomerId,
    reason: &str,
    legal_basis: &str,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.required("reason", reason, SUBJECT_MAX);
    check.key("legal_basis", legal_basis, SHORT_MAX);
    check.finish()?;
    let customer = world.customers.get(customer_id).ok_or_else(|| {
        Rejection::not_found(
            "customer_id",
            format!("customer {customer_id} does not exist"),
        )
    })?;
    if customer.forgotten {
        return Ok(vec![]);
    }
    Ok(vec![customer_event(
        *customer_id,
        CustomerEvent::Forgotten {
            reason: reason.trim().to_owned(),
            legal_basis: legal_basis.to_owned(),
            leads: customer.leads.iter().copied().collect(),
        },
    )])
}
