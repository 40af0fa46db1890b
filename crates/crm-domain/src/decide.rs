//! `decide(world, command) -> events | rejection`: every business rule lives here.

use std::collections::BTreeMap;

use crate::campaign::{Campaign, SkipReason, SkippedRecipient};
use crate::command::{Command, ConversionOpportunity, ConvertInto, OpenOpportunity};
use crate::config::{DomainConfig, Pipeline};
use crate::customer::{
    CampaignResponse, Customer, CustomerEvent, CustomerRegistered, Direction, InteractionLogged,
    OpportunityOpened, OpportunityState, OpportunityStatus, OrderPlaced, Profile, ProfilePatch,
    ReturnRecorded, TicketOpened, TicketState, TicketStatus,
};
use crate::lead::{Lead, LeadEvent, LeadStatus};
use crate::rejection::{Rejection, RejectionKind, Violation};
use crate::validate::{
    AMOUNT_MAX, Check, LIST_MAX, NAME_MAX, ORDER_LINES_MAX, RECIPIENTS_MAX, SHORT_MAX, SUBJECT_MAX,
    TAG_MAX, TAGS_PER_CUSTOMER_MAX, TEXT_MAX, same_currency,
};
use crate::values::{CampaignId, Channel, ConsentChannel, CustomerId, LeadId, Money, Timestamp};
use crate::{CampaignEvent, DomainEvent, World};

/// What a decision may depend on besides the aggregates: configuration and the
/// command's business time. Never the wall clock.
#[derive(Clone, Copy, Debug)]
pub struct DecideContext<'a> {
    pub config: &'a DomainConfig,
    pub occurred_at: Timestamp,
}

/// Decides the events of `command` against the current `world` (which holds every
/// aggregate the command's [`Command::targets`] name, when they exist).
///
/// An empty list means the command is accepted but changes nothing (for example
/// tagging a customer with a tag it already has).
pub fn decide(
    world: &World,
    command: &Command,
    ctx: &DecideContext<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    match command {
        Command::CreateLead { .. }
        | Command::AssignLead { .. }
        | Command::ContactLead { .. }
        | Command::QualifyLead { .. }
        | Command::DisqualifyLead { .. }
        | Command::ConvertLead { .. } => decide_lead(world, command, ctx),
        Command::CreateCampaign { .. }
        | Command::SendCampaign { .. }
        | Command::RecordCampaignCost { .. } => decide_campaign(world, command),
        _ => decide_customer(world, command, ctx),
    }
}

fn customer_event(id: CustomerId, e: CustomerEvent) -> DomainEvent {
    DomainEvent::Customer(id, e)
}

fn existing_customer<'w>(
    world: &'w World,
    id: CustomerId,
    field: &str,
) -> Result<&'w Customer, Rejection> {
    world
        .customers
        .get(&id)
        .ok_or_else(|| Rejection::not_found(field, format!("customer {id} does not exist")))
}

fn existing_lead(world: &World, id: LeadId) -> Result<&Lead, Rejection> {
    world
        .leads
        .get(&id)
        .ok_or_else(|| Rejection::not_found("lead_id", format!("lead {id} does not exist")))
}

fn existing_campaign<'w>(
    world: &'w World,
    id: CampaignId,
    field: &str,
) -> Result<&'w Campaign, Rejection> {
    world
        .campaigns
        .get(&id)
        .ok_or_else(|| Rejection::not_found(field, format!("campaign {id} does not exist")))
}

fn normalize_profile(p: &Profile) -> Profile {
    let mut p = p.clone();
    p.given_name = p.given_name.trim().to_owned();
    p.family_name = p.family_name.trim().to_owned();
    p.emails = p.emails.iter().map(|e| e.trim().to_lowercase()).collect();
    p.phones = p.phones.iter().map(|e| e.trim().to_owned()).collect();
    p.external_ids.sort();
    p
}

fn check_contacts(check: &mut Check, emails: &[String], phones: &[String]) {
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

fn check_external_ids(check: &mut Check, ids: &[(String, String)]) {
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

fn check_profile(check: &mut Check, p: &Profile) {
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

fn check_address(check: &mut Check, a: &crate::values::Address) {
    check.required("address.line1", &a.line1, NAME_MAX);
    check.text("address.line2", &a.line2, NAME_MAX);
    check.required("address.city", &a.city, NAME_MAX);
    check.text("address.region", &a.region, NAME_MAX);
    check.text("address.postal_code", &a.postal_code, SHORT_MAX);
    check.country("address.country", &a.country);
}

fn normalize_tag(tag: &str) -> String {
    tag.trim().to_lowercase()
}

#[allow(clippy::too_many_lines)]
fn decide_customer(
    world: &World,
    command: &Command,
    ctx: &DecideContext<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    match command {
        Command::RegisterCustomer(c) => {
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
        Command::UpdateProfile { customer_id, patch } => {
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
                        message:
                            "clearing it would leave the customer with no name, email or phone"
                                .into(),
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
        Command::SetConsent {
            customer_id,
            channel,
            granted,
            source,
        } => {
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
                    source: source.clone(),
                },
            )])
        }
        Command::TagCustomer { customer_id, tag } | Command::UntagCustomer { customer_id, tag } => {
            let tag = normalize_tag(tag);
            check.key("tag", &tag, TAG_MAX);
            check.finish()?;
            let customer = existing_customer(world, *customer_id, "customer_id")?;
            let adding = matches!(command, Command::TagCustomer { .. });
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
        Command::LinkCustomers {
            customer_id,
            other,
            kind,
        } => {
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
        Command::LogInteraction(c) => {
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
                if ticket.status == TicketStatus::AwaitingCustomer
                    && c.direction == Direction::Inbound
                {
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
        Command::PlaceOrder(c) => {
            check.key("sales_channel", &c.sales_channel, SHORT_MAX);
            if c.lines.is_empty() {
                check.fail("lines", "required", "an order needs at least one line");
            }
            check.list_len("lines", c.lines.len(), ORDER_LINES_MAX);
            let mut subtotal: i128 = 0;
            for (i, l) in c.lines.iter().enumerate() {
                check.required(&format!("lines[{i}].sku"), &l.sku, SHORT_MAX);
                check.text(&format!("lines[{i}].category"), &l.category, SHORT_MAX);
                if l.quantity == 0 {
                    check.fail(
                        format!("lines[{i}].quantity"),
                        "range",
                        "must be at least 1",
                    );
                }
                check.amount(
                    &format!("lines[{i}].unit_price_minor"),
                    l.unit_price_minor,
                    true,
                );
                subtotal += i128::from(l.quantity) * i128::from(l.unit_price_minor);
            }
            let mut per_sku: BTreeMap<&str, u64> = BTreeMap::new();
            for (i, l) in c.lines.iter().enumerate() {
                let q = per_sku.entry(l.sku.as_str()).or_insert(0);
                *q += u64::from(l.quantity);
                if *q > u64::from(u32::MAX) {
                    check.fail(
                        format!("lines[{i}].quantity"),
                        "range",
                        format!(
                            "the quantity of {} on one order must be at most {}",
                            l.sku,
                            u32::MAX
                        ),
                    );
                }
            }
            check.amount("discount_minor", c.discount_minor, true);
            check.amount("tax_minor", c.tax_minor, true);
            check.amount("shipping_minor", c.shipping_minor, true);
            let total = subtotal + i128::from(c.tax_minor) + i128::from(c.shipping_minor)
                - i128::from(c.discount_minor);
            if total < 0 {
                check.fail(
                    "discount_minor",
                    "range",
                    "must not exceed the order's lines plus tax and shipping",
                );
            } else if total > i128::from(AMOUNT_MAX) {
                check.fail(
                    "lines",
                    "range",
                    format!("the order total must be at most {AMOUNT_MAX} minor units"),
                );
            }
            check.finish()?;
            let customer = existing_customer(world, c.customer_id, "customer_id")?;
            if customer.orders.contains_key(&c.order_id) {
                return Err(Rejection::already_exists(
                    "order_id",
                    format!("order {} already exists", c.order_id),
                ));
            }
            #[allow(clippy::cast_possible_truncation)] // bounded by AMOUNT_MAX above
            let total = Money::new(total as i64, c.currency);
            Ok(vec![customer_event(
                c.customer_id,
                CustomerEvent::OrderPlaced(OrderPlaced {
                    order_id: c.order_id,
                    sales_channel: c.sales_channel.clone(),
                    lines: c.lines.clone(),
                    discount_minor: c.discount_minor,
                    tax_minor: c.tax_minor,
                    shipping_minor: c.shipping_minor,
                    total,
                    campaign: c.campaign,
                }),
            )])
        }
        Command::RecordReturn(c) => {
            check.amount("refund.minor", c.refund.minor, true);
            check.required("reason", &c.reason, SUBJECT_MAX);
            check.list_len("lines", c.lines.len(), ORDER_LINES_MAX);
            for (i, l) in c.lines.iter().enumerate() {
                check.required(&format!("lines[{i}].sku"), &l.sku, SHORT_MAX);
                if l.quantity == 0 {
                    check.fail(
                        format!("lines[{i}].quantity"),
                        "range",
                        "must be at least 1",
                    );
                }
            }
            if c.lines.is_empty() && c.refund.minor == 0 {
                check.fail(
                    "lines",
                    "required",
                    "a return needs returned lines or a refund",
                );
            }
            check.finish()?;
            let customer = existing_customer(world, c.customer_id, "customer_id")?;
            let order = customer.orders.get(&c.order_id).ok_or_else(|| {
                Rejection::not_found(
                    "order_id",
                    format!("order {} does not exist on this customer", c.order_id),
                )
            })?;
            if customer.returns.contains(&c.return_id) {
                return Err(Rejection::already_exists(
                    "return_id",
                    format!("return {} already exists", c.return_id),
                ));
            }
            let mut check = Check::new();
            same_currency(
                &mut check,
                "refund.currency",
                order.total.currency,
                c.refund.currency,
            );
            let left = order.total.minor - order.refunded_minor;
            if c.refund.minor > left {
                check.fail(
                    "refund.minor",
                    "refund_exceeds_order",
                    format!("refunds of order {} would exceed its total: {left} minor units are left to refund", c.order_id),
                );
            }
            // Lines may repeat a SKU: compare the running total per SKU.
            let mut requested: BTreeMap<&str, u64> = BTreeMap::new();
            for (i, l) in c.lines.iter().enumerate() {
                let total = requested.entry(l.sku.as_str()).or_insert(0);
                *total += u64::from(l.quantity);
                match order.returnable.get(&l.sku).copied() {
                    None => check.fail(
                        format!("lines[{i}].sku"),
                        "not_on_order",
                        format!("{} is not on order {}", l.sku, c.order_id),
                    ),
                    Some(q) if *total > u64::from(q) => check.fail(
                        format!("lines[{i}].quantity"),
                        "exceeds_ordered",
                        format!(
                            "only {q} of {} are left to return (this return asks for {total})",
                            l.sku
                        ),
                    ),
                    Some(_) => {}
                }
            }
            check.finish().map_err(|mut r| {
                r.kind = RejectionKind::FailedPrecondition;
                r
            })?;
            Ok(vec![customer_event(
                c.customer_id,
                CustomerEvent::ReturnRecorded(ReturnRecorded {
                    return_id: c.return_id,
                    order_id: c.order_id,
                    lines: c.lines.clone(),
                    refund: c.refund,
                    reason: c.reason.clone(),
                }),
            )])
        }
        Command::OpenTicket(c) => {
            check.key("category", &c.category, SHORT_MAX);
            check.required("subject", &c.subject, SUBJECT_MAX);
            check.finish()?;
            let customer = existing_customer(world, c.customer_id, "customer_id")?;
            if customer.tickets.contains_key(&c.ticket_id) {
                return Err(Rejection::already_exists(
                    "ticket_id",
                    format!("ticket {} already exists", c.ticket_id),
                ));
            }
            Ok(vec![customer_event(
                c.customer_id,
                CustomerEvent::TicketOpened(TicketOpened {
                    ticket_id: c.ticket_id,
                    channel: c.channel,
                    category: c.category.clone(),
                    priority: c.priority,
                    subject: c.subject.clone(),
                    sla: ctx.config.sla.targets_for(c.priority),
                }),
            )])
        }
        Command::AssignTicket {
            customer_id,
            ticket_id,
            agent,
            rule,
        } => {
            check.required("agent", agent, SHORT_MAX);
            check.opt_text("rule", rule.as_ref(), SHORT_MAX);
            check.finish()?;
            let t = open_ticket(world, *customer_id, *ticket_id, "assign")?;
            if t.assignee.as_deref() == Some(agent.as_str()) {
                return Ok(vec![]);
            }
            Ok(vec![customer_event(
                *customer_id,
                CustomerEvent::TicketAssigned {
                    ticket_id: *ticket_id,
                    agent: agent.clone(),
                    rule: rule.clone(),
                },
            )])
        }
        Command::RespondToTicket {
            customer_id,
            ticket_id,
            agent,
            awaiting_customer,
        } => {
            check.required("agent", agent, SHORT_MAX);
            check.finish()?;
            let t = open_ticket(world, *customer_id, *ticket_id, "respond to")?;
            if t.status == TicketStatus::Resolved {
                return Err(Rejection::precondition(
                    "ticket_id",
                    "state",
                    format!("ticket {ticket_id} is resolved: reopen it before responding"),
                ));
            }
            Ok(vec![customer_event(
                *customer_id,
                CustomerEvent::TicketResponded {
                    ticket_id: *ticket_id,
                    agent: agent.clone(),
                    first_response: !t.responded,
                    awaiting_customer: *awaiting_customer,
                },
            )])
        }
        Command::ResolveTicket {
            customer_id,
            ticket_id,
            resolution,
        } => {
            check.text("resolution", resolution, TEXT_MAX);
            check.finish()?;
            let t = open_ticket(world, *customer_id, *ticket_id, "resolve")?;
            if t.status == TicketStatus::Resolved {
                return Err(Rejection::precondition(
                    "ticket_id",
                    "state",
                    format!("ticket {ticket_id} is already resolved"),
                ));
            }
            Ok(vec![customer_event(
                *customer_id,
                CustomerEvent::TicketResolved {
                    ticket_id: *ticket_id,
                    resolution: resolution.clone(),
                },
            )])
        }
        Command::ReopenTicket {
            customer_id,
            ticket_id,
            reason,
        } => {
            check.required("reason", reason, SUBJECT_MAX);
            check.finish()?;
            let t = ticket(world, *customer_id, *ticket_id)?;
            if t.status != TicketStatus::Resolved {
                return Err(Rejection::precondition(
                    "ticket_id",
                    "state",
                    format!(
                        "only a resolved ticket can be reopened; ticket {ticket_id} is {}",
                        status_name(t.status)
                    ),
                ));
            }
            Ok(vec![customer_event(
                *customer_id,
                CustomerEvent::TicketReopened {
                    ticket_id: *ticket_id,
                    reason: reason.clone(),
                },
            )])
        }
        Command::CloseTicket {
            customer_id,
            ticket_id,
            csat,
            comment,
        } => {
            if let Some(s) = csat
                && !(1..=5).contains(s)
            {
                check.fail("csat", "range", format!("must be 1 to 5 (got {s})"));
            }
            check.text("comment", comment, TEXT_MAX);
            check.finish()?;
            let t = ticket(world, *customer_id, *ticket_id)?;
            if t.status != TicketStatus::Resolved {
                return Err(Rejection::precondition(
                    "ticket_id",
                    "state",
                    format!(
                        "only a resolved ticket can be closed; ticket {ticket_id} is {}",
                        status_name(t.status)
                    ),
                ));
            }
            Ok(vec![customer_event(
                *customer_id,
                CustomerEvent::TicketClosed {
                    ticket_id: *ticket_id,
                    csat: *csat,
                    comment: comment.clone(),
                },
            )])
        }
        Command::OpenOpportunity(c) => {
            let event = opportunity_opened(ctx.config, c)?;
            let customer = existing_customer(world, c.customer_id, "customer_id")?;
            if customer.opportunities.contains_key(&c.opportunity_id) {
                return Err(Rejection::already_exists(
                    "opportunity_id",
                    format!("opportunity {} already exists", c.opportunity_id),
                ));
            }
            Ok(vec![customer_event(
                c.customer_id,
                CustomerEvent::OpportunityOpened(event),
            )])
        }
        Command::MoveOpportunityStage {
            customer_id,
            opportunity_id,
            stage,
            probability_pct,
        } => {
            if let Some(p) = probability_pct
                && *p > 100
            {
                check.fail(
                    "probability_pct",
                    "range",
                    format!("must be 0 to 100 (got {p})"),
                );
            }
            check.key("stage", stage, SHORT_MAX);
            check.finish()?;
            let o = open_opportunity(world, *customer_id, *opportunity_id)?;
            let pipeline = ctx.config.pipelines.get(&o.pipeline).ok_or_else(|| {
                Rejection::precondition(
                    "opportunity_id",
                    "pipeline",
                    format!(
                        "the opportunity's pipeline {:?} is no longer configured",
                        o.pipeline
                    ),
                )
            })?;
            let to = pipeline
                .stage(stage)
                .ok_or_else(|| unknown_stage(pipeline, stage))?;
            if o.stage == *stage {
                return Err(Rejection::precondition(
                    "stage",
                    "state",
                    format!("opportunity {opportunity_id} is already in stage {stage}"),
                ));
            }
            Ok(vec![customer_event(
                *customer_id,
                CustomerEvent::OpportunityStageMoved {
                    opportunity_id: *opportunity_id,
                    from_stage: o.stage.clone(),
                    to_stage: stage.clone(),
                    probability_pct: probability_pct.unwrap_or(to.probability_pct),
                    forecast: to.forecast,
                },
            )])
        }
        Command::WinOpportunity {
            customer_id,
            opportunity_id,
            amount,
        } => {
            if let Some(a) = amount {
                check.amount("amount.minor", a.minor, true);
            }
            check.finish()?;
            let o = open_opportunity(world, *customer_id, *opportunity_id)?;
            if let Some(a) = amount {
                let mut check = Check::new();
                same_currency(&mut check, "amount.currency", o.amount.currency, a.currency);
                check.finish().map_err(|mut r| {
                    r.kind = RejectionKind::FailedPrecondition;
                    r
                })?;
            }
            let amount = amount.unwrap_or(o.amount);
            Ok(vec![customer_event(
                *customer_id,
                CustomerEvent::OpportunityWon {
                    opportunity_id: *opportunity_id,
                    amount,
                },
            )])
        }
        Command::LoseOpportunity {
            customer_id,
            opportunity_id,
            reason,
        } => {
            check.required("reason", reason, SUBJECT_MAX);
            check.finish()?;
            let o = open_opportunity(world, *customer_id, *opportunity_id)?;
            Ok(vec![customer_event(
                *customer_id,
                CustomerEvent::OpportunityLost {
                    opportunity_id: *opportunity_id,
                    reason: reason.clone(),
                    stage: o.stage.clone(),
                },
            )])
        }
        Command::RecordCampaignResponse {
            customer_id,
            campaign_id,
            response,
        } => {
            if let CampaignResponse::Converted {
                revenue: Some(r), ..
            } = response
            {
                check.amount("response.revenue.minor", r.minor, true);
            }
            check.finish()?;
            let customer = existing_customer(world, *customer_id, "customer_id")?;
            let campaign = existing_campaign(world, *campaign_id, "campaign_id")?;
            if campaign.waves == 0 {
                return Err(Rejection::precondition(
                    "campaign_id",
                    "state",
                    format!("campaign {campaign_id} has not been sent yet"),
                ));
            }
            let mut events = vec![customer_event(
                *customer_id,
                CustomerEvent::CampaignResponseRecorded {
                    campaign_id: *campaign_id,
                    response: response.clone(),
                },
            )];
            if *response == CampaignResponse::Unsubscribed
                && let Some(channel) = ConsentChannel::for_channel(campaign.channel)
                && customer.consent.get(&channel) != Some(&false)
            {
                events.push(customer_event(
                    *customer_id,
                    CustomerEvent::ConsentChanged {
                        channel,
                        granted: false,
                        source: format!("campaign:{campaign_id}:unsubscribe"),
                    },
                ));
            }
            Ok(events)
        }
        _ => unreachable!("{} is not a customer command", command.name()),
    }
}

/// The recipients who may receive a campaign on `channel` now (their consent to it holds,
/// or the channel needs none), and the others with the reason, in the order given.
fn consenting(
    world: &World,
    channel: Channel,
    recipients: &[CustomerId],
) -> (Vec<CustomerId>, Vec<SkippedRecipient>) {
    let needed = ConsentChannel::for_channel(channel);
    let mut sent = Vec::with_capacity(recipients.len());
    let mut skipped = Vec::new();
    for id in recipients {
        let reason = match (world.customers.get(id), needed) {
            (None, _) => Some(SkipReason::UnknownCustomer),
            (Some(_), None) => None,
            (Some(c), Some(consent)) => match c.consent.get(&consent) {
                Some(true) => None,
                Some(false) => Some(SkipReason::ConsentWithdrawn),
                None => Some(SkipReason::NoConsent),
            },
        };
        match reason {
            None => sent.push(*id),
            Some(reason) => skipped.push(SkippedRecipient {
                customer_id: *id,
                reason,
            }),
        }
    }
    (sent, skipped)
}

/// "3 no_consent, 1 consent_withdrawn": how many were left out for each reason.
fn skip_counts(skipped: &[SkippedRecipient]) -> String {
    let mut counts = BTreeMap::new();
    for s in skipped {
        *counts.entry(s.reason).or_insert(0usize) += 1;
    }
    counts
        .iter()
        .map(|(r, n)| format!("{n} {}", r.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The patch restricted to fields that actually change.
fn effective_patch(c: &Customer, mut p: ProfilePatch) -> ProfilePatch {
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

fn apply_profile(prof: &mut Profile, p: &ProfilePatch) {
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

fn status_name(s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Open => "open",
        TicketStatus::AwaitingCustomer => "awaiting the customer",
        TicketStatus::Resolved => "resolved",
        TicketStatus::Closed => "closed",
    }
}

fn ticket(
    world: &World,
    customer_id: CustomerId,
    ticket_id: crate::TicketId,
) -> Result<&TicketState, Rejection> {
    existing_customer(world, customer_id, "customer_id")?
        .tickets
        .get(&ticket_id)
        .ok_or_else(|| {
            Rejection::not_found(
                "ticket_id",
                format!("ticket {ticket_id} does not exist on customer {customer_id}"),
            )
        })
}

fn open_ticket<'w>(
    world: &'w World,
    customer_id: CustomerId,
    ticket_id: crate::TicketId,
    action: &str,
) -> Result<&'w TicketState, Rejection> {
    let t = ticket(world, customer_id, ticket_id)?;
    if t.status == TicketStatus::Closed {
        return Err(Rejection::precondition(
            "ticket_id",
            "state",
            format!("ticket {ticket_id} is closed: cannot {action} it"),
        ));
    }
    Ok(t)
}

fn open_opportunity(
    world: &World,
    customer_id: CustomerId,
    id: crate::OpportunityId,
) -> Result<&OpportunityState, Rejection> {
    let o = existing_customer(world, customer_id, "customer_id")?
        .opportunities
        .get(&id)
        .ok_or_else(|| {
            Rejection::not_found(
                "opportunity_id",
                format!("opportunity {id} does not exist on customer {customer_id}"),
            )
        })?;
    match o.status {
        OpportunityStatus::Open => Ok(o),
        OpportunityStatus::Won | OpportunityStatus::Lost => Err(Rejection::precondition(
            "opportunity_id",
            "state",
            format!(
                "opportunity {id} is already {}",
                if o.status == OpportunityStatus::Won {
                    "won"
                } else {
                    "lost"
                }
            ),
        )),
    }
}

fn unknown_stage(pipeline: &Pipeline, stage: &str) -> Rejection {
    let known: Vec<&str> = pipeline.stages.iter().map(|s| s.key.as_str()).collect();
    Rejection::new(
        RejectionKind::Invalid,
        "stage",
        "unknown_stage",
        format!(
            "pipeline {} has no stage {stage:?}; its stages are {}",
            pipeline.key,
            known.join(", ")
        ),
    )
}

fn resolve_stage<'c>(
    config: &'c DomainConfig,
    pipeline: Option<&String>,
    stage: Option<&String>,
) -> Result<(&'c Pipeline, &'c crate::Stage), Rejection> {
    let key = pipeline.unwrap_or(&config.default_pipeline);
    let p = config.pipelines.get(key).ok_or_else(|| {
        let known: Vec<&str> = config.pipelines.keys().map(String::as_str).collect();
        Rejection::new(
            RejectionKind::Invalid,
            "pipeline",
            "unknown_pipeline",
            format!(
                "no pipeline {key:?}; configured pipelines are {}",
                known.join(", ")
            ),
        )
    })?;
    let s = match stage {
        Some(s) => p.stage(s).ok_or_else(|| unknown_stage(p, s))?,
        None => p.stages.first().ok_or_else(|| {
            Rejection::precondition(
                "pipeline",
                "no_stages",
                format!("pipeline {key} has no stages"),
            )
        })?,
    };
    Ok((p, s))
}

fn check_opportunity_fields(check: &mut Check, name: &str, amount: &Money) {
    check.required("name", name, NAME_MAX);
    check.amount("amount.minor", amount.minor, true);
}

fn opportunity_opened(
    config: &DomainConfig,
    c: &OpenOpportunity,
) -> Result<OpportunityOpened, Rejection> {
    let mut check = Check::new();
    check_opportunity_fields(&mut check, &c.name, &c.amount);
    check.opt_text("owner", c.owner.as_ref(), SHORT_MAX);
    check.finish()?;
    let (p, s) = resolve_stage(config, c.pipeline.as_ref(), c.stage.as_ref())?;
    Ok(OpportunityOpened {
        opportunity_id: c.opportunity_id,
        name: c.name.clone(),
        pipeline: p.key.clone(),
        stage: s.key.clone(),
        probability_pct: s.probability_pct,
        forecast: s.forecast,
        amount: c.amount,
        owner: c.owner.clone(),
        expected_close: c.expected_close,
        lead: c.lead,
        campaign: c.campaign,
    })
}

fn decide_lead(
    world: &World,
    command: &Command,
    ctx: &DecideContext<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    let lead_event = |id, e| DomainEvent::Lead(id, e);
    match command {
        Command::CreateLead { lead_id, lead } => {
            let mut lead = lead.clone();
            lead.email = lead.email.map(|e| e.trim().to_lowercase());
            check.key("source", &lead.source, SHORT_MAX);
            check.text("given_name", &lead.given_name, NAME_MAX);
            check.text("family_name", &lead.family_name, NAME_MAX);
            if let Some(e) = &lead.email {
                check.email("email", e);
            }
            if let Some(p) = &lead.phone {
                check.phone("phone", p);
            }
            if lead.email.is_none() && lead.phone.is_none() {
                check.fail(
                    "email",
                    "contactable",
                    "a lead needs an email or a phone number",
                );
            }
            check.text("interest", &lead.interest, TEXT_MAX);
            check.finish()?;
            if world.leads.contains_key(lead_id) {
                return Err(Rejection::already_exists(
                    "lead_id",
                    format!("lead {lead_id} already exists"),
                ));
            }
            Ok(vec![lead_event(*lead_id, LeadEvent::Captured(lead))])
        }
        Command::AssignLead {
            lead_id,
            owner,
            rule,
        } => {
            check.required("owner", owner, SHORT_MAX);
            check.opt_text("rule", rule.as_ref(), SHORT_MAX);
            check.finish()?;
            let lead = open_lead(world, *lead_id, "assign")?;
            if lead.owner.as_deref() == Some(owner.as_str()) {
                return Ok(vec![]);
            }
            Ok(vec![lead_event(
                *lead_id,
                LeadEvent::Assigned {
                    owner: owner.clone(),
                    rule: rule.clone(),
                },
            )])
        }
        Command::ContactLead {
            lead_id,
            channel,
            agent,
        } => {
            check.opt_text("agent", agent.as_ref(), SHORT_MAX);
            check.finish()?;
            open_lead(world, *lead_id, "contact")?;
            Ok(vec![lead_event(
                *lead_id,
                LeadEvent::Contacted {
                    channel: *channel,
                    agent: agent.clone(),
                },
            )])
        }
        Command::QualifyLead { lead_id, note } => {
            check.text("note", note, TEXT_MAX);
            check.finish()?;
            let lead = open_lead(world, *lead_id, "qualify")?;
            if lead.status == LeadStatus::Qualified {
                return Ok(vec![]);
            }
            Ok(vec![lead_event(
                *lead_id,
                LeadEvent::Qualified { note: note.clone() },
            )])
        }
        Command::DisqualifyLead { lead_id, reason } => {
            check.required("reason", reason, SUBJECT_MAX);
            check.finish()?;
            open_lead(world, *lead_id, "disqualify")?;
            Ok(vec![lead_event(
                *lead_id,
                LeadEvent::Disqualified {
                    reason: reason.clone(),
                },
            )])
        }
        Command::ConvertLead {
            lead_id,
            into,
            opportunity,
        } => convert_lead(world, *lead_id, *into, opportunity.as_ref(), ctx),
        _ => unreachable!("{} is not a lead command", command.name()),
    }
}

fn open_lead<'w>(world: &'w World, id: LeadId, action: &str) -> Result<&'w Lead, Rejection> {
    let lead = existing_lead(world, id)?;
    if lead.status.is_closed() {
        return Err(Rejection::precondition(
            "lead_id",
            "state",
            format!("lead {id} is {}: cannot {action} it", lead.status.name()),
        ));
    }
    Ok(lead)
}

fn convert_lead(
    world: &World,
    lead_id: LeadId,
    into: ConvertInto,
    opportunity: Option<&ConversionOpportunity>,
    ctx: &DecideContext<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let opened = match opportunity {
        Some(o) => {
            let mut check = Check::new();
            check_opportunity_fields(&mut check, &o.name, &o.amount);
            check.finish().map_err(|mut r| {
                for v in &mut r.violations {
                    v.field = format!("opportunity.{}", v.field);
                }
                r
            })?;
            Some(o)
        }
        None => None,
    };
    let lead = open_lead(world, lead_id, "convert")?;
    if lead.status != LeadStatus::Qualified {
        return Err(Rejection::precondition(
            "lead_id",
            "state",
            format!(
                "lead {lead_id} must be qualified before conversion (it is {})",
                lead.status.name()
            ),
        ));
    }
    let customer_id = into.customer_id();
    let mut events = Vec::new();
    match into {
        ConvertInto::NewCustomer(_) => {
            if world.customers.contains_key(&customer_id) {
                return Err(Rejection::already_exists(
                    "into.new_customer",
                    format!(
                        "customer {customer_id} already exists; convert into it as an existing customer"
                    ),
                ));
            }
            let c = &lead.captured;
            events.push(DomainEvent::Customer(
                customer_id,
                CustomerEvent::Registered(CustomerRegistered {
                    profile: Profile {
                        given_name: c.given_name.clone(),
                        family_name: c.family_name.clone(),
                        emails: c.email.iter().cloned().collect(),
                        phones: c.phone.iter().cloned().collect(),
                        ..Profile::default()
                    },
                    acquisition: Some(crate::Acquisition {
                        source: c.source.clone(),
                        medium: "lead".into(),
                        campaign: c.campaign,
                    }),
                    owner: lead.owner.clone(),
                    team: None,
                    lead: Some(lead_id),
                }),
            ));
        }
        ConvertInto::ExistingCustomer(_) => {
            let customer = existing_customer(world, customer_id, "into.existing_customer")?;
            if let Some(o) = opened
                && customer.opportunities.contains_key(&o.opportunity_id)
            {
                return Err(Rejection::already_exists(
                    "opportunity.opportunity_id",
                    format!("opportunity {} already exists", o.opportunity_id),
                ));
            }
        }
    }
    if let Some(o) = opened {
        let (p, s) =
            resolve_stage(ctx.config, o.pipeline.as_ref(), o.stage.as_ref()).map_err(|mut r| {
                for v in &mut r.violations {
                    v.field = format!("opportunity.{}", v.field);
                }
                r
            })?;
        events.push(DomainEvent::Customer(
            customer_id,
            CustomerEvent::OpportunityOpened(OpportunityOpened {
                opportunity_id: o.opportunity_id,
                name: o.name.clone(),
                pipeline: p.key.clone(),
                stage: s.key.clone(),
                probability_pct: s.probability_pct,
                forecast: s.forecast,
                amount: o.amount,
                owner: lead.owner.clone(),
                expected_close: None,
                lead: Some(lead_id),
                campaign: lead.captured.campaign,
            }),
        ));
    }
    events.insert(
        0,
        DomainEvent::Lead(
            lead_id,
            LeadEvent::Converted {
                customer_id,
                new_customer: matches!(into, ConvertInto::NewCustomer(_)),
                opportunity_id: opened.map(|o| o.opportunity_id),
            },
        ),
    );
    Ok(events)
}

fn decide_campaign(world: &World, command: &Command) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    let ev = |id, e| DomainEvent::Campaign(id, e);
    match command {
        Command::CreateCampaign {
            campaign_id,
            campaign,
        } => {
            check.required("name", &campaign.name, NAME_MAX);
            check.text("segment", &campaign.segment, SUBJECT_MAX);
            if let Some(b) = &campaign.budget {
                check.amount("budget.minor", b.minor, true);
            }
            check.finish()?;
            if world.campaigns.contains_key(campaign_id) {
                return Err(Rejection::already_exists(
                    "campaign_id",
                    format!("campaign {campaign_id} already exists"),
                ));
            }
            Ok(vec![ev(
                *campaign_id,
                CampaignEvent::Created(campaign.clone()),
            )])
        }
        Command::SendCampaign {
            campaign_id,
            recipients,
        } => {
            if recipients.is_empty() {
                check.fail(
                    "recipients",
                    "required",
                    "a send needs at least one recipient",
                );
            }
            check.list_len("recipients", recipients.len(), RECIPIENTS_MAX);
            let mut sorted = recipients.clone();
            sorted.sort();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                check.fail(
                    "recipients",
                    "unique",
                    format!("customer {} is listed more than once", w[0]),
                );
            }
            check.finish()?;
            let campaign = existing_campaign(world, *campaign_id, "campaign_id")?;
            let (sent, skipped) = consenting(world, campaign.channel, recipients);
            if sent.is_empty() {
                return Err(Rejection::precondition(
                    "recipients",
                    "consent",
                    format!(
                        "none of the {} recipient(s) may receive a campaign on {:?}: {}",
                        recipients.len(),
                        campaign.channel,
                        skip_counts(&skipped)
                    ),
                ));
            }
            Ok(vec![ev(
                *campaign_id,
                CampaignEvent::Sent {
                    wave: campaign.waves + 1,
                    recipients: sent,
                    skipped,
                },
            )])
        }
        Command::RecordCampaignCost {
            campaign_id,
            amount,
            note,
        } => {
            check.amount("amount.minor", amount.minor, false);
            check.text("note", note, SUBJECT_MAX);
            check.finish()?;
            let campaign = existing_campaign(world, *campaign_id, "campaign_id")?;
            let mut check = Check::new();
            if let Some(cur) = campaign.currency {
                same_currency(&mut check, "amount.currency", cur, amount.currency);
            }
            if campaign.total_cost_minor.saturating_add(amount.minor) > AMOUNT_MAX {
                check.fail(
                    "amount.minor",
                    "total_exceeds_limit",
                    format!("the campaign's total cost would exceed {AMOUNT_MAX} minor units"),
                );
            }
            check.finish().map_err(|mut r| {
                r.kind = RejectionKind::FailedPrecondition;
                r
            })?;
            Ok(vec![ev(
                *campaign_id,
                CampaignEvent::CostRecorded {
                    amount: *amount,
                    note: note.clone(),
                },
            )])
        }
        _ => unreachable!("{} is not a campaign command", command.name()),
    }
}
