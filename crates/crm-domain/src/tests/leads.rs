//! Lead commands: CreateLead, AssignLead, ContactLead, QualifyLead, DisqualifyLead,
//! ConvertLead.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;
use crate::testing::Scenario;
use crate::{
    Acquisition, ConversionOpportunity, ConvertInto, LeadStatus, OpportunityStatus, Pipeline,
};

const L2: LeadId = LeadId(Uuid::from_u128(0x12));

fn create(lead: LeadCaptured) -> Command {
    Command::CreateLead { lead_id: L1, lead }
}

fn assign(owner: &str, rule: Option<&str>) -> Command {
    Command::AssignLead {
        lead_id: L1,
        owner: owner.into(),
        rule: rule.map(Into::into),
    }
}

fn assigned(owner: &str) -> DomainEvent {
    lev(
        L1,
        LeadEvent::Assigned {
            owner: owner.into(),
            rule: None,
        },
    )
}

fn contact(agent: Option<&str>) -> Command {
    Command::ContactLead {
        lead_id: L1,
        channel: Channel::Phone,
        agent: agent.map(Into::into),
    }
}

fn contacted() -> DomainEvent {
    lev(
        L1,
        LeadEvent::Contacted {
            channel: Channel::Phone,
            agent: Some("bob".into()),
        },
    )
}

fn qualify(note: &str) -> Command {
    Command::QualifyLead {
        lead_id: L1,
        note: note.into(),
    }
}

fn disqualify(reason: &str) -> Command {
    Command::DisqualifyLead {
        lead_id: L1,
        reason: reason.into(),
    }
}

fn disqualified() -> DomainEvent {
    lev(
        L1,
        LeadEvent::Disqualified {
            reason: "no budget".into(),
        },
    )
}

fn converted(customer_id: CustomerId) -> DomainEvent {
    lev(
        L1,
        LeadEvent::Converted {
            customer_id,
            new_customer: true,
            opportunity_id: None,
        },
    )
}

fn history(events: impl IntoIterator<Item = DomainEvent>) -> Vec<DomainEvent> {
    std::iter::once(lead_captured(L1)).chain(events).collect()
}

fn lead_status(world: &crate::World) -> LeadStatus {
    world.leads[&L1].status
}

// ---------------------------------------------------------------- CreateLead

#[test]
fn create_lead_captures_it_with_a_normalized_email() {
    let world = Scenario::new()
        .when(create(LeadCaptured {
            email: Some(" Grace@Example.COM ".into()),
            ..captured()
        }))
        .then_events([lev(
            L1,
            LeadEvent::Captured(LeadCaptured {
                source: "web-form".into(),
                campaign: Some(K1),
                given_name: "Grace".into(),
                family_name: "Hopper".into(),
                email: Some("grace@example.com".into()),
                phone: Some("+15551234567".into()),
                interest: "solar panels".into(),
            }),
        )]);
    let lead = &world.leads[&L1];
    assert_eq!(lead.id, L1);
    assert_eq!(lead.status, LeadStatus::New);
    assert_eq!((lead.owner.as_deref(), lead.customer), (None, None));
}

#[test]
fn create_lead_needs_only_an_email_or_a_phone() {
    let email_only = LeadCaptured {
        phone: None,
        given_name: String::new(),
        family_name: String::new(),
        campaign: None,
        interest: String::new(),
        ..captured()
    };
    Scenario::new()
        .when(create(email_only.clone()))
        .then_events([lev(L1, LeadEvent::Captured(email_only))]);
    let phone_only = LeadCaptured {
        email: None,
        ..captured()
    };
    Scenario::new()
        .when(create(phone_only.clone()))
        .then_events([lev(L1, LeadEvent::Captured(phone_only))]);
}

#[test]
fn create_lead_rejections() {
    let c = |l: LeadCaptured| create(l);
    assert_rejections(
        &[lead_captured(L2)],
        [
            invalid(
                c(LeadCaptured {
                    source: String::new(),
                    ..captured()
                }),
                "source",
                "required",
            ),
            invalid(
                c(LeadCaptured {
                    source: "Web Form".into(),
                    ..captured()
                }),
                "source",
                "format",
            ),
            invalid(
                c(LeadCaptured {
                    given_name: long(201),
                    ..captured()
                }),
                "given_name",
                "max_length",
            ),
            invalid(
                c(LeadCaptured {
                    family_name: ctrl(),
                    ..captured()
                }),
                "family_name",
                "no_control_chars",
            ),
            invalid(
                c(LeadCaptured {
                    email: Some("grace".into()),
                    ..captured()
                }),
                "email",
                "email",
            ),
            invalid(
                c(LeadCaptured {
                    email: Some(String::new()),
                    ..captured()
                }),
                "email",
                "email",
            ),
            invalid(
                c(LeadCaptured {
                    phone: Some("555-1234".into()),
                    ..captured()
                }),
                "phone",
                "e164",
            ),
            invalid(
                c(LeadCaptured {
                    email: None,
                    phone: None,
                    ..captured()
                }),
                "email",
                "contactable",
            ),
            invalid(
                c(LeadCaptured {
                    interest: long(10_001),
                    ..captured()
                }),
                "interest",
                "max_length",
            ),
            (
                Command::CreateLead {
                    lead_id: L2,
                    lead: captured(),
                },
                RejectionKind::AlreadyExists,
                "lead_id",
                "already_exists",
            ),
        ],
    );
}

// ---------------------------------------------------------------- AssignLead

#[test]
fn assign_lead_records_the_owner_and_rule() {
    let world = Scenario::new()
        .given(history([]))
        .when(assign("alice", Some("round-robin")))
        .then_events([lev(
            L1,
            LeadEvent::Assigned {
                owner: "alice".into(),
                rule: Some("round-robin".into()),
            },
        )]);
    assert_eq!(world.leads[&L1].owner.as_deref(), Some("alice"));
}

#[test]
fn assign_lead_to_its_owner_is_a_noop_and_to_another_reassigns() {
    Scenario::new()
        .given(history([assigned("alice")]))
        .when(assign("alice", Some("other-rule")))
        .then_events([]);
    let world = Scenario::new()
        .given(history([assigned("alice"), lead_qualified(L1)]))
        .when(assign("bob", None))
        .then_events([assigned("bob")]);
    assert_eq!(world.leads[&L1].owner.as_deref(), Some("bob"));
}

#[test]
fn assign_lead_rejections() {
    let p = RejectionKind::FailedPrecondition;
    assert_rejections(
        &history([]),
        [
            invalid(assign(" ", None), "owner", "required"),
            invalid(assign(&long(101), None), "owner", "max_length"),
            invalid(assign("alice", Some("")), "rule", "required"),
            (
                Command::AssignLead {
                    lead_id: L2,
                    owner: "alice".into(),
                    rule: None,
                },
                RejectionKind::NotFound,
                "lead_id",
                "not_found",
            ),
        ],
    );
    assert_rejections(
        &history([converted(C1)]),
        [(assign("alice", None), p, "lead_id", "state")],
    );
    assert_rejections(
        &history([disqualified()]),
        [(assign("alice", None), p, "lead_id", "state")],
    );
}

// ---------------------------------------------------------------- ContactLead

#[test]
fn contact_lead_moves_a_new_lead_to_contacted() {
    let world = Scenario::new()
        .given(history([]))
        .when(contact(Some("bob")))
        .then_events([contacted()]);
    assert_eq!(lead_status(&world), LeadStatus::Contacted);
    let world = Scenario::new()
        .given(history([contacted()]))
        .when(contact(None))
        .then_events([lev(
            L1,
            LeadEvent::Contacted {
                channel: Channel::Phone,
                agent: None,
            },
        )]);
    assert_eq!(lead_status(&world), LeadStatus::Contacted);
}

#[test]
fn contact_lead_keeps_a_qualified_lead_qualified() {
    let world = Scenario::new()
        .given(history([lead_qualified(L1)]))
        .when(contact(Some("bob")))
        .then_events([contacted()]);
    assert_eq!(lead_status(&world), LeadStatus::Qualified);
}

#[test]
fn contact_lead_rejections() {
    let p = RejectionKind::FailedPrecondition;
    assert_rejections(
        &history([]),
        [
            invalid(contact(Some("")), "agent", "required"),
            invalid(contact(Some(&ctrl())), "agent", "no_control_chars"),
        ],
    );
    assert_rejections(
        &[],
        [(
            contact(None),
            RejectionKind::NotFound,
            "lead_id",
            "not_found",
        )],
    );
    assert_rejections(
        &history([converted(C1)]),
        [(contact(None), p, "lead_id", "state")],
    );
    assert_rejections(
        &history([disqualified()]),
        [(contact(None), p, "lead_id", "state")],
    );
}

// ---------------------------------------------------------------- QualifyLead

#[test]
fn qualify_lead_from_new_or_contacted() {
    for given in [history([]), history([contacted()])] {
        let world = Scenario::new()
            .given(given)
            .when(qualify("budget ok"))
            .then_events([lead_qualified(L1)]);
        assert_eq!(lead_status(&world), LeadStatus::Qualified);
    }
}

#[test]
fn qualify_lead_twice_is_a_noop() {
    Scenario::new()
        .given(history([lead_qualified(L1)]))
        .when(qualify("again"))
        .then_events([]);
}

#[test]
fn qualify_lead_rejections() {
    let p = RejectionKind::FailedPrecondition;
    assert_rejections(
        &history([]),
        [invalid(qualify(&long(10_001)), "note", "max_length")],
    );
    assert_rejections(
        &[],
        [(qualify(""), RejectionKind::NotFound, "lead_id", "not_found")],
    );
    assert_rejections(
        &history([converted(C1)]),
        [(qualify(""), p, "lead_id", "state")],
    );
    assert_rejections(
        &history([disqualified()]),
        [(qualify(""), p, "lead_id", "state")],
    );
}

// ---------------------------------------------------------------- DisqualifyLead

#[test]
fn disqualify_lead_closes_it() {
    for given in [history([]), history([contacted(), lead_qualified(L1)])] {
        let world = Scenario::new()
            .given(given)
            .when(disqualify("no budget"))
            .then_events([disqualified()]);
        assert_eq!(lead_status(&world), LeadStatus::Disqualified);
    }
}

#[test]
fn disqualify_lead_rejections() {
    let p = RejectionKind::FailedPrecondition;
    assert_rejections(
        &history([]),
        [
            invalid(disqualify(" "), "reason", "required"),
            invalid(disqualify(&long(501)), "reason", "max_length"),
        ],
    );
    assert_rejections(
        &[],
        [(
            disqualify("x"),
            RejectionKind::NotFound,
            "lead_id",
            "not_found",
        )],
    );
    assert_rejections(
        &history([converted(C1)]),
        [(disqualify("x"), p, "lead_id", "state")],
    );
    assert_rejections(
        &history([disqualified()]),
        [(disqualify("x"), p, "lead_id", "state")],
    );
}

// ---------------------------------------------------------------- ConvertLead

fn conversion(stage: Option<&str>) -> ConversionOpportunity {
    ConversionOpportunity {
        opportunity_id: P1,
        name: "Solar install".into(),
        pipeline: None,
        stage: stage.map(Into::into),
        amount: eur_m(500_000),
    }
}

fn convert(into: ConvertInto, opportunity: Option<ConversionOpportunity>) -> Command {
    Command::ConvertLead {
        lead_id: L1,
        into,
        opportunity,
    }
}

fn qualified_lead() -> Vec<DomainEvent> {
    history([assigned("alice"), lead_qualified(L1)])
}

fn grace_registered(c: CustomerId, owner: Option<&str>) -> DomainEvent {
    cev(
        c,
        CustomerEvent::Registered(CustomerRegistered {
            profile: Profile {
                given_name: "Grace".into(),
                family_name: "Hopper".into(),
                emails: vec!["grace@example.com".into()],
                phones: vec!["+15551234567".into()],
                ..Profile::default()
            },
            acquisition: Some(Acquisition {
                source: "web-form".into(),
                medium: "lead".into(),
                campaign: Some(K1),
            }),
            owner: owner.map(Into::into),
            team: None,
            lead: Some(L1),
        }),
    )
}

fn conversion_opened(
    c: CustomerId,
    stage: &str,
    pct: u8,
    forecast: ForecastCategory,
) -> DomainEvent {
    cev(
        c,
        CustomerEvent::OpportunityOpened(OpportunityOpened {
            opportunity_id: P1,
            name: "Solar install".into(),
            pipeline: "sales".into(),
            stage: stage.into(),
            probability_pct: pct,
            forecast,
            amount: eur_m(500_000),
            owner: Some("alice".into()),
            expected_close: None,
            lead: Some(L1),
            campaign: Some(K1),
        }),
    )
}

#[test]
fn convert_lead_into_a_new_customer_with_an_opportunity() {
    let world = Scenario::new()
        .given(qualified_lead())
        .when(convert(
            ConvertInto::NewCustomer(C1),
            Some(conversion(None)),
        ))
        .then_events([
            lev(
                L1,
                LeadEvent::Converted {
                    customer_id: C1,
                    new_customer: true,
                    opportunity_id: Some(P1),
                },
            ),
            grace_registered(C1, Some("alice")),
            conversion_opened(C1, "initial_contact", 10, ForecastCategory::Pipeline),
        ]);
    assert_eq!(lead_status(&world), LeadStatus::Converted);
    assert_eq!(world.leads[&L1].customer, Some(C1));
    let c = &world.customers[&C1];
    assert_eq!(c.owner.as_deref(), Some("alice"));
    assert_eq!(c.opportunities[&P1].status, OpportunityStatus::Open);
    assert_eq!(c.opportunities[&P1].stage, "initial_contact");
}

#[test]
fn convert_lead_freezes_the_probability_of_the_named_stage() {
    Scenario::new()
        .given(qualified_lead())
        .when(convert(
            ConvertInto::NewCustomer(C1),
            Some(ConversionOpportunity {
                pipeline: Some("sales".into()),
                ..conversion(Some("proposal"))
            }),
        ))
        .then_events([
            lev(
                L1,
                LeadEvent::Converted {
                    customer_id: C1,
                    new_customer: true,
                    opportunity_id: Some(P1),
                },
            ),
            grace_registered(C1, Some("alice")),
            conversion_opened(C1, "proposal", 50, ForecastCategory::BestCase),
        ]);
}

#[test]
fn convert_an_unassigned_lead_into_a_new_customer_without_an_opportunity() {
    let world = Scenario::new()
        .given(history([lead_qualified(L1)]))
        .when(convert(ConvertInto::NewCustomer(C1), None))
        .then_events([
            lev(
                L1,
                LeadEvent::Converted {
                    customer_id: C1,
                    new_customer: true,
                    opportunity_id: None,
                },
            ),
            grace_registered(C1, None),
        ]);
    assert!(world.customers[&C1].opportunities.is_empty());
}

#[test]
fn convert_lead_into_an_existing_customer_with_an_opportunity() {
    let mut given = qualified_lead();
    given.push(registered(C2));
    let world = Scenario::new()
        .given(given)
        .when(convert(
            ConvertInto::ExistingCustomer(C2),
            Some(conversion(None)),
        ))
        .then_events([
            lev(
                L1,
                LeadEvent::Converted {
                    customer_id: C2,
                    new_customer: false,
                    opportunity_id: Some(P1),
                },
            ),
            cev(C2, CustomerEvent::LeadLinked { lead_id: L1 }),
            conversion_opened(C2, "initial_contact", 10, ForecastCategory::Pipeline),
        ]);
    assert_eq!(world.leads[&L1].customer, Some(C2));
    // The customer knows the lead: forgetting them forgets it.
    assert!(world.customers[&C2].leads.contains(&L1));
    // The existing customer keeps its profile.
    assert_eq!(world.customers[&C2].profile, ada());
}

#[test]
fn convert_lead_into_an_existing_customer_without_an_opportunity() {
    let mut given = qualified_lead();
    given.push(registered(C2));
    Scenario::new()
        .given(given)
        .when(convert(ConvertInto::ExistingCustomer(C2), None))
        .then_events([
            lev(
                L1,
                LeadEvent::Converted {
                    customer_id: C2,
                    new_customer: false,
                    opportunity_id: None,
                },
            ),
            cev(C2, CustomerEvent::LeadLinked { lead_id: L1 }),
        ]);
}

#[test]
fn convert_lead_opportunity_rejections_name_the_opportunity_fields() {
    let new = ConvertInto::NewCustomer(C1);
    assert_rejections(
        &qualified_lead(),
        [
            invalid(
                convert(
                    new,
                    Some(ConversionOpportunity {
                        name: " ".into(),
                        ..conversion(None)
                    }),
                ),
                "opportunity.name",
                "required",
            ),
            invalid(
                convert(
                    new,
                    Some(ConversionOpportunity {
                        amount: eur_m(-5),
                        ..conversion(None)
                    }),
                ),
                "opportunity.amount.minor",
                "range",
            ),
            invalid(
                convert(
                    new,
                    Some(ConversionOpportunity {
                        pipeline: Some("nope".into()),
                        ..conversion(None)
                    }),
                ),
                "opportunity.pipeline",
                "unknown_pipeline",
            ),
            invalid(
                convert(new, Some(conversion(Some("won")))),
                "opportunity.stage",
                "unknown_stage",
            ),
        ],
    );
    let empty = DomainConfig {
        pipelines: BTreeMap::from([(
            "sales".to_owned(),
            Pipeline {
                key: "sales".into(),
                stages: vec![],
            },
        )]),
        ..DomainConfig::default()
    };
    assert_rejections_with(
        &empty,
        &qualified_lead(),
        [(
            convert(new, Some(conversion(None))),
            RejectionKind::FailedPrecondition,
            "opportunity.pipeline",
            "no_stages",
        )],
    );
}

#[test]
fn convert_lead_state_rejections() {
    let p = RejectionKind::FailedPrecondition;
    let new = ConvertInto::NewCustomer(C1);
    assert_rejections(
        &[],
        [(
            convert(new, None),
            RejectionKind::NotFound,
            "lead_id",
            "not_found",
        )],
    );
    for given in [
        history([]),
        history([contacted()]),
        history([lead_qualified(L1), converted(C3)]),
        history([lead_qualified(L1), disqualified()]),
    ] {
        assert_rejections(&given, [(convert(new, None), p, "lead_id", "state")]);
    }
}

#[test]
fn convert_lead_customer_rejections() {
    let mut given = qualified_lead();
    given.extend([registered(C1), opportunity_opened(C1, P1)]);
    assert_rejections(
        &given,
        [
            (
                convert(ConvertInto::NewCustomer(C1), None),
                RejectionKind::AlreadyExists,
                "into.new_customer",
                "already_exists",
            ),
            (
                convert(ConvertInto::ExistingCustomer(C2), None),
                RejectionKind::NotFound,
                "into.existing_customer",
                "not_found",
            ),
            (
                convert(ConvertInto::ExistingCustomer(C1), Some(conversion(None))),
                RejectionKind::AlreadyExists,
                "opportunity.opportunity_id",
                "already_exists",
            ),
        ],
    );
}
