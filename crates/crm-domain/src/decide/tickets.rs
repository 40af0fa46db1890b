//! Support tickets: opening, assignment, responses, resolution, reopening and closing
//! with CSAT; SLA deadlines come from the configuration at the ticket's business time.

use super::*;

/// Decides [`Command::OpenTicket`].
pub(super) fn open_new_ticket(
    world: &World,
    c: &OpenTicket,
    ctx: &DecideContext<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
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

/// Decides [`Command::AssignTicket`].
pub(super) fn assign_ticket(
    world: &World,
    customer_id: &CustomerId,
    ticket_id: &TicketId,
    agent: &str,
    rule: &Option<String>,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
    check.required("agent", agent, SHORT_MAX);
    check.opt_text("rule", rule.as_ref(), SHORT_MAX);
    check.finish()?;
    let t = open_ticket(world, *customer_id, *ticket_id, "assign")?;
    if t.assignee.as_deref() == Some(agent) {
        return Ok(vec![]);
    }
    Ok(vec![customer_event(
        *customer_id,
        CustomerEvent::TicketAssigned {
            ticket_id: *ticket_id,
            agent: agent.to_owned(),
            rule: rule.clone(),
        },
    )])
}

/// Decides [`Command::RespondToTicket`].
pub(super) fn respond_to_ticket(
    world: &World,
    customer_id: &CustomerId,
    ticket_id: &TicketId,
    agent: &str,
    awaiting_customer: &bool,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
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
            agent: agent.to_owned(),
            first_response: !t.responded,
            awaiting_customer: *awaiting_customer,
        },
    )])
}

/// Decides [`Command::ResolveTicket`].
pub(super) fn resolve_ticket(
    world: &World,
    customer_id: &CustomerId,
    ticket_id: &TicketId,
    resolution: &str,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
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
            resolution: resolution.to_owned(),
        },
    )])
}

/// Decides [`Command::ReopenTicket`].
pub(super) fn reopen_ticket(
    world: &World,
    customer_id: &CustomerId,
    ticket_id: &TicketId,
    reason: &str,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
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
            reason: reason.to_owned(),
        },
    )])
}

/// Decides [`Command::CloseTicket`].
pub(super) fn close_ticket(
    world: &World,
    customer_id: &CustomerId,
    ticket_id: &TicketId,
    csat: &Option<u8>,
    comment: &str,
) -> Result<Vec<DomainEvent>, Rejection> {
    let mut check = Check::new();
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
            comment: comment.to_owned(),
        },
    )])
}

pub(super) fn status_name(s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Open => "open",
        TicketStatus::AwaitingCustomer => "awaiting the customer",
        TicketStatus::Resolved => "resolved",
        TicketStatus::Closed => "closed",
    }
}

pub(super) fn ticket(
    world: &World,
    customer_id: CustomerId,
    ticket_id: TicketId,
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

pub(super) fn open_ticket<'w>(
    world: &'w World,
    customer_id: CustomerId,
    ticket_id: TicketId,
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
