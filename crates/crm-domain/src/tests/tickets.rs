//! Service commands: OpenTicket, AssignTicket, RespondToTicket, ResolveTicket,
//! ReopenTicket, CloseTicket.

use std::collections::BTreeMap;

use super::*;
use crate::testing::Scenario;
use crate::{OpenTicket, SlaPolicy, TicketState, TicketStatus};

fn open(priority: TicketPriority) -> OpenTicket {
    OpenTicket {
        customer_id: C1,
        ticket_id: T1,
        channel: Channel::Email,
        category: "billing".into(),
        priority,
        subject: "Double charge".into(),
    }
}

fn open_cmd(o: OpenTicket) -> Command {
    Command::OpenTicket(o)
}

fn assign(agent: &str, rule: Option<&str>) -> Command {
    Command::AssignTicket {
        customer_id: C1,
        ticket_id: T1,
        agent: agent.into(),
        rule: rule.map(Into::into),
    }
}

fn respond(agent: &str, awaiting_customer: bool) -> Command {
    Command::RespondToTicket {
        customer_id: C1,
        ticket_id: T1,
        agent: agent.into(),
        awaiting_customer,
    }
}

fn resolve(resolution: &str) -> Command {
    Command::ResolveTicket {
        customer_id: C1,
        ticket_id: T1,
        resolution: resolution.into(),
    }
}

fn reopen(reason: &str) -> Command {
    Command::ReopenTicket {
        customer_id: C1,
        ticket_id: T1,
        reason: reason.into(),
    }
}

fn close(csat: Option<u8>, comment: &str) -> Command {
    Command::CloseTicket {
        customer_id: C1,
        ticket_id: T1,
        csat,
        comment: comment.into(),
    }
}

fn responded(first_response: bool, awaiting_customer: bool) -> DomainEvent {
    cev(
        C1,
        CustomerEvent::TicketResponded {
            ticket_id: T1,
            agent: "bob".into(),
            first_response,
            awaiting_customer,
        },
    )
}

fn open_ticket() -> Vec<DomainEvent> {
    vec![registered(C1), ticket_opened(C1, T1)]
}

fn resolved_ticket() -> Vec<DomainEvent> {
    let mut h = open_ticket();
    h.push(ticket_resolved(C1, T1));
    h
}

fn closed_ticket() -> Vec<DomainEvent> {
    let mut h = resolved_ticket();
    h.push(ticket_closed(C1, T1));
    h
}

fn status(world: &crate::World) -> TicketStatus {
    world.customers[&C1].tickets[&T1].status
}

// ---------------------------------------------------------------- OpenTicket

#[test]
fn open_ticket_freezes_the_sla_targets_of_its_priority() {
    for (priority, first, resolution) in [
        (TicketPriority::Urgent, 60, 240),
        (TicketPriority::High, 240, 1440),
        (TicketPriority::Normal, 480, 2880),
        (TicketPriority::Low, 1440, 7200),
    ] {
        let world = Scenario::new()
            .given([registered(C1)])
            .when(open_cmd(open(priority)))
            .then_events([cev(
                C1,
                CustomerEvent::TicketOpened(TicketOpened {
                    ticket_id: T1,
                    channel: Channel::Email,
                    category: "billing".into(),
                    priority,
                    subject: "Double charge".into(),
                    sla: SlaTargets {
                        policy: "standard-v1".into(),
                        first_response_mins: first,
                        resolution_mins: resolution,
                    },
                }),
            )]);
        assert_eq!(
            world.customers[&C1].tickets[&T1],
            TicketState {
                status: TicketStatus::Open,
                priority,
                assignee: None,
                responded: false,
            }
        );
    }
}

fn premium_config() -> DomainConfig {
    DomainConfig {
        sla: SlaPolicy {
            name: "premium-v2".into(),
            targets: BTreeMap::from([(TicketPriority::Normal, (30, 120))]),
        },
        ..DomainConfig::default()
    }
}

#[test]
fn open_ticket_uses_the_configured_sla_policy() {
    Scenario::new()
        .with_config(premium_config())
        .given([registered(C1)])
        .when(open_cmd(open(TicketPriority::Normal)))
        .then_events([cev(
            C1,
            CustomerEvent::TicketOpened(TicketOpened {
                ticket_id: T1,
                channel: Channel::Email,
                category: "billing".into(),
                priority: TicketPriority::Normal,
                subject: "Double charge".into(),
                sla: SlaTargets {
                    policy: "premium-v2".into(),
                    first_response_mins: 30,
                    resolution_mins: 120,
                },
            }),
        )]);
}

#[test]
fn questionable_open_ticket_with_a_priority_missing_from_the_policy_gets_zero_minute_targets() {
    // SlaPolicy::targets_for falls back to (0, 0): the ticket is breached the moment it
    // opens. A missing priority is a configuration error rather than a zero target.
    Scenario::new()
        .with_config(premium_config())
        .given([registered(C1)])
        .when(open_cmd(open(TicketPriority::Low)))
        .then_events([cev(
            C1,
            CustomerEvent::TicketOpened(TicketOpened {
                ticket_id: T1,
                channel: Channel::Email,
                category: "billing".into(),
                priority: TicketPriority::Low,
                subject: "Double charge".into(),
                sla: SlaTargets {
                    policy: "premium-v2".into(),
                    first_response_mins: 0,
                    resolution_mins: 0,
                },
            }),
        )]);
}

#[test]
fn open_ticket_rejections() {
    let n = || open(TicketPriority::Normal);
    assert_rejections(
        &open_ticket(),
        [
            invalid(
                open_cmd(OpenTicket {
                    category: String::new(),
                    ticket_id: T2,
                    ..n()
                }),
                "category",
                "required",
            ),
            invalid(
                open_cmd(OpenTicket {
                    category: "Billing".into(),
                    ticket_id: T2,
                    ..n()
                }),
                "category",
                "format",
            ),
            invalid(
                open_cmd(OpenTicket {
                    subject: " ".into(),
                    ticket_id: T2,
                    ..n()
                }),
                "subject",
                "required",
            ),
            invalid(
                open_cmd(OpenTicket {
                    subject: long(501),
                    ticket_id: T2,
                    ..n()
                }),
                "subject",
                "max_length",
            ),
            (
                open_cmd(OpenTicket {
                    customer_id: C2,
                    ..n()
                }),
                RejectionKind::NotFound,
                "customer_id",
                "not_found",
            ),
            (
                open_cmd(n()),
                RejectionKind::AlreadyExists,
                "ticket_id",
                "already_exists",
            ),
        ],
    );
}

// ---------------------------------------------------------------- AssignTicket

#[test]
fn assign_ticket_records_the_agent_and_rule() {
    let world = Scenario::new()
        .given(open_ticket())
        .when(assign("bob", Some("round-robin")))
        .then_events([cev(
            C1,
            CustomerEvent::TicketAssigned {
                ticket_id: T1,
                agent: "bob".into(),
                rule: Some("round-robin".into()),
            },
        )]);
    assert_eq!(
        world.customers[&C1].tickets[&T1].assignee.as_deref(),
        Some("bob")
    );
}

#[test]
fn assign_ticket_to_the_current_assignee_is_a_noop_and_to_another_reassigns() {
    let mut given = open_ticket();
    given.push(cev(
        C1,
        CustomerEvent::TicketAssigned {
            ticket_id: T1,
            agent: "bob".into(),
            rule: None,
        },
    ));
    Scenario::new()
        .given(given.clone())
        .when(assign("bob", Some("manual")))
        .then_events([]);
    let world = Scenario::new()
        .given(given)
        .when(assign("carol", None))
        .then_events([cev(
            C1,
            CustomerEvent::TicketAssigned {
                ticket_id: T1,
                agent: "carol".into(),
                rule: None,
            },
        )]);
    assert_eq!(
        world.customers[&C1].tickets[&T1].assignee.as_deref(),
        Some("carol")
    );
}

#[test]
fn assign_ticket_is_allowed_on_a_resolved_ticket() {
    Scenario::new()
        .given(resolved_ticket())
        .when(assign("bob", None))
        .then_events([cev(
            C1,
            CustomerEvent::TicketAssigned {
                ticket_id: T1,
                agent: "bob".into(),
                rule: None,
            },
        )]);
}

#[test]
fn assign_ticket_rejections() {
    let given: Vec<DomainEvent> = open_ticket().into_iter().chain([registered(C2)]).collect();
    assert_rejections(
        &given,
        [
            invalid(assign(" ", None), "agent", "required"),
            invalid(assign(&long(101), None), "agent", "max_length"),
            invalid(assign("bob", Some("")), "rule", "required"),
            invalid(assign("bob", Some(&long(101))), "rule", "max_length"),
            (
                Command::AssignTicket {
                    customer_id: C3,
                    ticket_id: T1,
                    agent: "bob".into(),
                    rule: None,
                },
                RejectionKind::NotFound,
                "customer_id",
                "not_found",
            ),
            (
                Command::AssignTicket {
                    customer_id: C2,
                    ticket_id: T1,
                    agent: "bob".into(),
                    rule: None,
                },
                RejectionKind::NotFound,
                "ticket_id",
                "not_found",
            ),
        ],
    );
}

// ---------------------------------------------------------------- RespondToTicket

#[test]
fn respond_to_ticket_first_and_later_responses() {
    let world = Scenario::new()
        .given(open_ticket())
        .when(respond("bob", false))
        .then_events([responded(true, false)]);
    let t = &world.customers[&C1].tickets[&T1];
    assert!(t.responded);
    assert_eq!(t.status, TicketStatus::Open);

    let mut given = open_ticket();
    given.push(responded(true, false));
    Scenario::new()
        .given(given)
        .when(respond("bob", false))
        .then_events([responded(false, false)]);
}

#[test]
fn respond_to_ticket_awaiting_the_customer_pauses_and_a_plain_response_resumes() {
    let world = Scenario::new()
        .given(open_ticket())
        .when(respond("bob", true))
        .then_events([responded(true, true)]);
    assert_eq!(status(&world), TicketStatus::AwaitingCustomer);

    let mut given = open_ticket();
    given.push(responded(true, true));
    let world = Scenario::new()
        .given(given)
        .when(respond("bob", false))
        .then_events([responded(false, false)]);
    assert_eq!(status(&world), TicketStatus::Open);
}

#[test]
fn respond_to_a_reopened_ticket_is_not_a_first_response() {
    let mut given = open_ticket();
    given.extend([
        responded(true, false),
        ticket_resolved(C1, T1),
        cev(
            C1,
            CustomerEvent::TicketReopened {
                ticket_id: T1,
                reason: "still broken".into(),
            },
        ),
    ]);
    Scenario::new()
        .given(given)
        .when(respond("bob", false))
        .then_events([responded(false, false)]);
}

#[test]
fn respond_to_ticket_rejections() {
    let p = RejectionKind::FailedPrecondition;
    assert_rejections(
        &open_ticket(),
        [invalid(respond("", false), "agent", "required")],
    );
    assert_rejections(
        &resolved_ticket(),
        [(respond("bob", false), p, "ticket_id", "state")],
    );
    assert_rejections(
        &closed_ticket(),
        [(respond("bob", true), p, "ticket_id", "state")],
    );
    assert_rejections(
        &[registered(C1)],
        [(
            respond("bob", false),
            RejectionKind::NotFound,
            "ticket_id",
            "not_found",
        )],
    );
}

// ---------------------------------------------------------------- ResolveTicket

#[test]
fn resolve_ticket_from_open_or_awaiting_the_customer() {
    let resolved = cev(
        C1,
        CustomerEvent::TicketResolved {
            ticket_id: T1,
            resolution: "refunded".into(),
        },
    );
    let world = Scenario::new()
        .given(open_ticket())
        .when(resolve("refunded"))
        .then_events([resolved.clone()]);
    assert_eq!(status(&world), TicketStatus::Resolved);
    let mut awaiting = open_ticket();
    awaiting.push(ticket_awaiting(C1, T1));
    let world = Scenario::new()
        .given(awaiting)
        .when(resolve("refunded"))
        .then_events([resolved]);
    assert_eq!(status(&world), TicketStatus::Resolved);
}

#[test]
fn resolve_ticket_resolution_text_is_optional() {
    Scenario::new()
        .given(open_ticket())
        .when(resolve(""))
        .then_events([cev(
            C1,
            CustomerEvent::TicketResolved {
                ticket_id: T1,
                resolution: String::new(),
            },
        )]);
}

#[test]
fn resolve_ticket_rejections() {
    let p = RejectionKind::FailedPrecondition;
    assert_rejections(
        &open_ticket(),
        [
            invalid(resolve(&long(10_001)), "resolution", "max_length"),
            invalid(resolve(&ctrl()), "resolution", "no_control_chars"),
        ],
    );
    assert_rejections(
        &resolved_ticket(),
        [(resolve("again"), p, "ticket_id", "state")],
    );
    assert_rejections(
        &closed_ticket(),
        [(resolve("again"), p, "ticket_id", "state")],
    );
    assert_rejections(
        &[registered(C1)],
        [(
            resolve("x"),
            RejectionKind::NotFound,
            "ticket_id",
            "not_found",
        )],
    );
}

// ---------------------------------------------------------------- ReopenTicket

#[test]
fn reopen_ticket_returns_a_resolved_ticket_to_open() {
    let world = Scenario::new()
        .given(resolved_ticket())
        .when(reopen("still broken"))
        .then_events([cev(
            C1,
            CustomerEvent::TicketReopened {
                ticket_id: T1,
                reason: "still broken".into(),
            },
        )]);
    assert_eq!(status(&world), TicketStatus::Open);
}

#[test]
fn reopen_ticket_rejections() {
    let p = RejectionKind::FailedPrecondition;
    let mut awaiting = open_ticket();
    awaiting.push(ticket_awaiting(C1, T1));
    assert_rejections(
        &resolved_ticket(),
        [
            invalid(reopen(" "), "reason", "required"),
            invalid(reopen(&long(501)), "reason", "max_length"),
        ],
    );
    assert_rejections(&open_ticket(), [(reopen("why"), p, "ticket_id", "state")]);
    assert_rejections(&awaiting, [(reopen("why"), p, "ticket_id", "state")]);
    assert_rejections(&closed_ticket(), [(reopen("why"), p, "ticket_id", "state")]);
    assert_rejections(
        &[registered(C1)],
        [(
            reopen("why"),
            RejectionKind::NotFound,
            "ticket_id",
            "not_found",
        )],
    );
}

// ---------------------------------------------------------------- CloseTicket

#[test]
fn close_ticket_with_a_rating() {
    let world = Scenario::new()
        .given(resolved_ticket())
        .when(close(Some(5), "quick and friendly"))
        .then_events([cev(
            C1,
            CustomerEvent::TicketClosed {
                ticket_id: T1,
                csat: Some(5),
                comment: "quick and friendly".into(),
            },
        )]);
    assert_eq!(status(&world), TicketStatus::Closed);
}

#[test]
fn close_ticket_without_a_rating_and_with_the_lowest_one() {
    Scenario::new()
        .given(resolved_ticket())
        .when(close(None, ""))
        .then_events([ticket_closed(C1, T1)]);
    Scenario::new()
        .given(resolved_ticket())
        .when(close(Some(1), ""))
        .then_events([cev(
            C1,
            CustomerEvent::TicketClosed {
                ticket_id: T1,
                csat: Some(1),
                comment: String::new(),
            },
        )]);
}

#[test]
fn close_ticket_rejections() {
    let p = RejectionKind::FailedPrecondition;
    let mut awaiting = open_ticket();
    awaiting.push(ticket_awaiting(C1, T1));
    assert_rejections(
        &resolved_ticket(),
        [
            invalid(close(Some(0), ""), "csat", "range"),
            invalid(close(Some(6), ""), "csat", "range"),
            invalid(close(None, &long(10_001)), "comment", "max_length"),
            invalid(close(None, &ctrl()), "comment", "no_control_chars"),
            (
                Command::CloseTicket {
                    customer_id: C2,
                    ticket_id: T1,
                    csat: None,
                    comment: String::new(),
                },
                RejectionKind::NotFound,
                "customer_id",
                "not_found",
            ),
            (
                Command::CloseTicket {
                    customer_id: C1,
                    ticket_id: T2,
                    csat: None,
                    comment: String::new(),
                },
                RejectionKind::NotFound,
                "ticket_id",
                "not_found",
            ),
        ],
    );
    assert_rejections(&open_ticket(), [(close(None, ""), p, "ticket_id", "state")]);
    assert_rejections(&awaiting, [(close(None, ""), p, "ticket_id", "state")]);
    assert_rejections(
        &closed_ticket(),
        [(close(Some(4), ""), p, "ticket_id", "state")],
    );
}

#[test]
fn a_closed_ticket_rejects_every_ticket_command() {
    let p = RejectionKind::FailedPrecondition;
    let mut given = closed_ticket();
    given.insert(
        2,
        cev(
            C1,
            CustomerEvent::TicketAssigned {
                ticket_id: T1,
                agent: "bob".into(),
                rule: None,
            },
        ),
    );
    assert_rejections(
        &given,
        [
            (assign("bob", None), p, "ticket_id", "state"),
            (assign("carol", None), p, "ticket_id", "state"),
            (respond("bob", false), p, "ticket_id", "state"),
            (resolve(""), p, "ticket_id", "state"),
            (reopen("again"), p, "ticket_id", "state"),
            (close(None, ""), p, "ticket_id", "state"),
        ],
    );
}

#[test]
fn ticket_commands_reject_an_unknown_customer() {
    let nf = RejectionKind::NotFound;
    let on_c2 = |command: Command| match command {
        Command::RespondToTicket {
            ticket_id,
            agent,
            awaiting_customer,
            ..
        } => Command::RespondToTicket {
            customer_id: C2,
            ticket_id,
            agent,
            awaiting_customer,
        },
        Command::ResolveTicket {
            ticket_id,
            resolution,
            ..
        } => Command::ResolveTicket {
            customer_id: C2,
            ticket_id,
            resolution,
        },
        Command::ReopenTicket {
            ticket_id, reason, ..
        } => Command::ReopenTicket {
            customer_id: C2,
            ticket_id,
            reason,
        },
        other => other,
    };
    assert_rejections(
        &resolved_ticket(),
        [
            (on_c2(respond("bob", false)), nf, "customer_id", "not_found"),
            (on_c2(resolve("done")), nf, "customer_id", "not_found"),
            (on_c2(reopen("again")), nf, "customer_id", "not_found"),
        ],
    );
}
