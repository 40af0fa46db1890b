//! Evolve (`World::apply`): each event's effect on the state, and histories that cannot
//! be folded.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::{
    CallDetails, CallOutcome, CampaignResponse, ConsentChannel, Direction, InteractionLogged,
    LeadStatus, OpportunityStatus, ProfilePatch, RelationshipKind, ReturnLine, ReturnRecorded,
    TicketStatus, World,
};

fn world(events: impl IntoIterator<Item = DomainEvent>) -> World {
    let mut w = World::default();
    for e in events {
        w.apply(&e).unwrap_or_else(|err| panic!("{err}: {e:?}"));
    }
    w
}

fn apply(w: &mut World, e: DomainEvent) {
    w.apply(&e).unwrap_or_else(|err| panic!("{err}: {e:?}"));
}

fn returned(return_id: ReturnId, lines: &[(&str, u32)], refund: i64) -> DomainEvent {
    cev(
        C1,
        CustomerEvent::ReturnRecorded(ReturnRecorded {
            return_id,
            order_id: O1,
            lines: lines
                .iter()
                .map(|(sku, quantity)| ReturnLine {
                    sku: (*sku).into(),
                    quantity: *quantity,
                })
                .collect(),
            refund: eur_m(refund),
            reason: "damaged".into(),
        }),
    )
}

fn interaction_logged() -> CustomerEvent {
    CustomerEvent::InteractionLogged(InteractionLogged {
        interaction_id: I1,
        channel: Channel::Phone,
        direction: Direction::Inbound,
        agent: None,
        subject: String::new(),
        summary: String::new(),
        sentiment: None,
        ticket: None,
        opportunity: None,
        campaign: None,
        call: Some(CallDetails {
            duration_secs: 10,
            outcome: CallOutcome::Voicemail,
        }),
    })
}

#[test]
fn evolve_order_placed_makes_every_unit_returnable() {
    let w = world([registered(C1), order_placed(C1, O1)]);
    let o = &w.customers[&C1].orders[&O1];
    assert_eq!(o.total, eur_m(2500));
    assert_eq!(o.refunded_minor, 0);
    assert_eq!(
        o.returnable,
        BTreeMap::from([("A".into(), 2), ("B".into(), 1)])
    );
}

#[test]
fn evolve_returns_reduce_returnable_quantities_and_add_refunds() {
    let mut w = world([registered(C1), order_placed(C1, O1), order_placed(C1, O2)]);
    apply(&mut w, returned(R1, &[("A", 1)], 700));
    let o = &w.customers[&C1].orders[&O1];
    assert_eq!(o.refunded_minor, 700);
    assert_eq!(
        o.returnable,
        BTreeMap::from([("A".into(), 1), ("B".into(), 1)])
    );
    apply(&mut w, returned(R2, &[("A", 1), ("B", 1)], 1800));
    let c = &w.customers[&C1];
    let o = &c.orders[&O1];
    assert_eq!(o.refunded_minor, 2500);
    assert_eq!(
        o.returnable,
        BTreeMap::from([("A".into(), 0), ("B".into(), 0)])
    );
    assert_eq!(c.returns, BTreeSet::from([R1, R2]));
    // The other order is untouched.
    assert_eq!(c.orders[&O2].refunded_minor, 0);
    assert_eq!(c.orders[&O2].returnable["A"], 2);
}

#[test]
fn evolve_return_lines_are_clamped_and_unknown_skus_ignored() {
    // Such events never come out of decide; evolve must still fold them.
    let w = world([
        registered(C1),
        order_placed(C1, O1),
        returned(R1, &[("A", 5), ("Z", 1)], 0),
    ]);
    let o = &w.customers[&C1].orders[&O1];
    assert_eq!(
        o.returnable,
        BTreeMap::from([("A".into(), 0), ("B".into(), 1)])
    );
}

#[test]
fn evolve_ticket_status_transitions() {
    let mut w = world([registered(C1), ticket_opened(C1, T1)]);
    let t = |w: &World| w.customers[&C1].tickets[&T1].clone();
    assert_eq!(
        (t(&w).status, t(&w).responded, t(&w).assignee),
        (TicketStatus::Open, false, None)
    );
    assert_eq!(t(&w).priority, TicketPriority::Normal);

    apply(
        &mut w,
        cev(
            C1,
            CustomerEvent::TicketAssigned {
                ticket_id: T1,
                agent: "bob".into(),
                rule: None,
            },
        ),
    );
    assert_eq!(t(&w).assignee.as_deref(), Some("bob"));

    apply(&mut w, ticket_awaiting(C1, T1));
    assert_eq!(
        (t(&w).status, t(&w).responded),
        (TicketStatus::AwaitingCustomer, true)
    );

    apply(
        &mut w,
        cev(C1, CustomerEvent::TicketCustomerReplied { ticket_id: T1 }),
    );
    assert_eq!(t(&w).status, TicketStatus::Open);

    apply(&mut w, ticket_awaiting(C1, T1));
    apply(
        &mut w,
        cev(
            C1,
            CustomerEvent::TicketResponded {
                ticket_id: T1,
                agent: "bob".into(),
                first_response: false,
                awaiting_customer: false,
            },
        ),
    );
    assert_eq!(t(&w).status, TicketStatus::Open);

    apply(&mut w, ticket_resolved(C1, T1));
    assert_eq!(t(&w).status, TicketStatus::Resolved);

    apply(
        &mut w,
        cev(
            C1,
            CustomerEvent::TicketReopened {
                ticket_id: T1,
                reason: "again".into(),
            },
        ),
    );
    assert_eq!(t(&w).status, TicketStatus::Open);

    apply(&mut w, ticket_resolved(C1, T1));
    apply(&mut w, ticket_closed(C1, T1));
    assert_eq!(t(&w).status, TicketStatus::Closed);
    assert_eq!(t(&w).assignee.as_deref(), Some("bob"));
}

#[test]
fn evolve_opportunity_stage_and_outcomes() {
    let moved = cev(
        C1,
        CustomerEvent::OpportunityStageMoved {
            opportunity_id: P1,
            from_stage: "initial_contact".into(),
            to_stage: "proposal".into(),
            probability_pct: 50,
            forecast: ForecastCategory::BestCase,
        },
    );
    let mut w = world([
        registered(C1),
        opportunity_opened(C1, P1),
        opportunity_opened(C1, P2),
    ]);
    apply(&mut w, moved);
    let o = &w.customers[&C1].opportunities[&P1];
    assert_eq!(
        (o.stage.as_str(), o.status),
        ("proposal", OpportunityStatus::Open)
    );

    apply(
        &mut w,
        cev(
            C1,
            CustomerEvent::OpportunityWon {
                opportunity_id: P1,
                amount: eur_m(80_000),
                stage: None,
            },
        ),
    );
    let o = &w.customers[&C1].opportunities[&P1];
    assert_eq!(o.status, OpportunityStatus::Won);
    assert_eq!(o.amount, eur_m(80_000));
    assert_eq!(o.stage, "proposal");

    apply(
        &mut w,
        cev(
            C1,
            CustomerEvent::OpportunityLost {
                opportunity_id: P2,
                reason: "price".into(),
                stage: "initial_contact".into(),
            },
        ),
    );
    let o = &w.customers[&C1].opportunities[&P2];
    assert_eq!(o.status, OpportunityStatus::Lost);
    assert_eq!(o.amount, eur_m(100_000));
    assert_eq!(o.pipeline, "sales");
}

#[test]
fn evolve_customer_identity_events() {
    let w = world([
        registered(C1),
        cev(
            C1,
            CustomerEvent::ProfileUpdated(ProfilePatch {
                given_name: Some("Augusta".into()),
                owner: Some(Some("alice".into())),
                ..ProfilePatch::default()
            }),
        ),
        cev(
            C1,
            CustomerEvent::ConsentChanged {
                channel: ConsentChannel::Push,
                granted: true,
                source: "app".into(),
            },
        ),
        cev(C1, CustomerEvent::Tagged { tag: "vip".into() }),
        cev(C1, CustomerEvent::Tagged { tag: "gold".into() }),
        cev(C1, CustomerEvent::Untagged { tag: "vip".into() }),
        cev(
            C1,
            CustomerEvent::RelationshipLinked {
                other: C2,
                kind: RelationshipKind::Household,
            },
        ),
        cev(C1, interaction_logged()),
        cev(C1, interaction_logged()),
        cev(
            C1,
            CustomerEvent::CampaignResponseRecorded {
                campaign_id: K1,
                response: CampaignResponse::Opened,
            },
        ),
    ]);
    let c = &w.customers[&C1];
    assert_eq!(c.profile.given_name, "Augusta");
    assert_eq!(c.profile.family_name, "Lovelace");
    assert_eq!(c.owner.as_deref(), Some("alice"));
    assert_eq!(c.consent, BTreeMap::from([(ConsentChannel::Push, true)]));
    assert_eq!(c.tags, BTreeSet::from(["gold".to_owned()]));
    assert_eq!(
        c.relationships,
        BTreeSet::from([(C2, RelationshipKind::Household)])
    );
    // The same interaction id logged twice is one interaction.
    assert_eq!((c.interactions.len(), c.campaign_responses), (1, 1));
}

#[test]
fn evolve_lead_status() {
    let mut w = world([lead_captured(L1)]);
    let status = |w: &World| w.leads[&L1].status;
    assert_eq!(status(&w), LeadStatus::New);
    apply(
        &mut w,
        lev(
            L1,
            LeadEvent::Assigned {
                owner: "alice".into(),
                rule: None,
            },
        ),
    );
    assert_eq!(w.leads[&L1].owner.as_deref(), Some("alice"));
    let contacted = lev(
        L1,
        LeadEvent::Contacted {
            channel: Channel::Email,
            agent: None,
        },
    );
    apply(&mut w, contacted.clone());
    assert_eq!(status(&w), LeadStatus::Contacted);
    apply(&mut w, lead_qualified(L1));
    assert_eq!(status(&w), LeadStatus::Qualified);
    apply(&mut w, contacted);
    assert_eq!(
        status(&w),
        LeadStatus::Qualified,
        "contacting does not demote"
    );
    apply(
        &mut w,
        lev(
            L1,
            LeadEvent::Converted {
                customer_id: C1,
                new_customer: true,
                opportunity_id: None,
            },
        ),
    );
    assert_eq!(
        (status(&w), w.leads[&L1].customer),
        (LeadStatus::Converted, Some(C1))
    );

    let w = world([
        lead_captured(L1),
        lev(
            L1,
            LeadEvent::Disqualified {
                reason: "spam".into(),
            },
        ),
    ]);
    assert_eq!(status(&w), LeadStatus::Disqualified);
    assert_eq!(w.leads[&L1].customer, None);
}

#[test]
fn evolve_campaign_sends_and_costs() {
    let mut w = world([kev(
        K1,
        CampaignEvent::Created(campaign(Channel::Sms, None)),
    )]);
    assert_eq!(w.campaigns[&K1].currency, None);
    apply(
        &mut w,
        kev(
            K1,
            CampaignEvent::CostRecorded {
                amount: Money::new(300, usd()),
                note: String::new(),
            },
        ),
    );
    apply(
        &mut w,
        kev(
            K1,
            CampaignEvent::CostRecorded {
                amount: Money::new(200, usd()),
                note: String::new(),
            },
        ),
    );
    assert_eq!(w.campaigns[&K1].currency, Some(usd()));
    assert_eq!(w.campaigns[&K1].total_cost_minor, 500);
    apply(&mut w, campaign_sent(K1, 1, vec![C1, C2]));
    apply(&mut w, campaign_sent(K1, 2, vec![C3]));
    assert_eq!(
        (w.campaigns[&K1].waves, w.campaigns[&K1].recipients),
        (2, 3)
    );
    // An out-of-order wave number never lowers the count of waves.
    apply(&mut w, campaign_sent(K1, 1, vec![C1]));
    assert_eq!(
        (w.campaigns[&K1].waves, w.campaigns[&K1].recipients),
        (2, 4)
    );

    let w = world([campaign_created(K2, Channel::Email)]);
    assert_eq!(w.campaigns[&K2].currency, Some(eur()));
    assert_eq!(w.campaigns[&K2].channel, Channel::Email);
    assert_eq!(w.campaigns[&K2].name, "Spring sale");
}

/// Every customer event but `Registered`.
fn customer_events() -> Vec<CustomerEvent> {
    let non_creation = [
        order_placed(C1, O1),
        returned(R1, &[], 1),
        ticket_opened(C1, T1),
        ticket_awaiting(C1, T1),
        ticket_resolved(C1, T1),
        ticket_closed(C1, T1),
        opportunity_opened(C1, P1),
    ];
    let mut events: Vec<CustomerEvent> = non_creation
        .into_iter()
        .map(|e| match e {
            DomainEvent::Customer(_, e) => e,
            other => unreachable!("{other:?}"),
        })
        .collect();
    events.extend([
        CustomerEvent::ProfileUpdated(ProfilePatch::default()),
        CustomerEvent::ConsentChanged {
            channel: ConsentChannel::Email,
            granted: true,
            source: "form".into(),
        },
        CustomerEvent::Tagged { tag: "vip".into() },
        CustomerEvent::Untagged { tag: "vip".into() },
        CustomerEvent::RelationshipLinked {
            other: C2,
            kind: RelationshipKind::Referrer,
        },
        interaction_logged(),
        CustomerEvent::TicketAssigned {
            ticket_id: T1,
            agent: "bob".into(),
            rule: None,
        },
        CustomerEvent::TicketCustomerReplied { ticket_id: T1 },
        CustomerEvent::TicketReopened {
            ticket_id: T1,
            reason: "x".into(),
        },
        CustomerEvent::OpportunityStageMoved {
            opportunity_id: P1,
            from_stage: "initial_contact".into(),
            to_stage: "proposal".into(),
            probability_pct: 50,
            forecast: ForecastCategory::BestCase,
        },
        CustomerEvent::OpportunityWon {
            opportunity_id: P1,
            amount: eur_m(1),
            stage: None,
        },
        CustomerEvent::OpportunityLost {
            opportunity_id: P1,
            reason: "x".into(),
            stage: "proposal".into(),
        },
        CustomerEvent::CampaignResponseRecorded {
            campaign_id: K1,
            response: CampaignResponse::Delivered,
        },
    ]);
    events
}

#[test]
fn evolve_rejects_every_customer_event_before_registration() {
    let events = customer_events();
    let kinds: BTreeSet<&str> = events.iter().map(CustomerEvent::event_type).collect();
    assert_eq!(
        kinds.len(),
        20,
        "every CustomerEvent variant but Registered"
    );
    for e in events {
        let mut w = World::default();
        let err = w
            .apply(&cev(C1, e.clone()))
            .expect_err(&format!("{} before registration", e.event_type()));
        assert_eq!(err.aggregate, "customer");
        assert!(err.reason.contains("before customer.registered"), "{err}");
        assert_eq!(w, World::default());
    }
}

#[test]
fn evolve_rejects_every_lead_event_before_capture() {
    for e in [
        LeadEvent::Assigned {
            owner: "a".into(),
            rule: None,
        },
        LeadEvent::Contacted {
            channel: Channel::Email,
            agent: None,
        },
        LeadEvent::Qualified {
            note: String::new(),
        },
        LeadEvent::Disqualified { reason: "x".into() },
        LeadEvent::Converted {
            customer_id: C1,
            new_customer: true,
            opportunity_id: None,
        },
    ] {
        let mut w = World::default();
        let err = w.apply(&lev(L1, e)).expect_err("before capture");
        assert_eq!(err.aggregate, "lead");
        assert!(err.reason.contains("before lead.captured"), "{err}");
        assert_eq!(w, World::default());
    }
}

#[test]
fn evolve_rejects_every_campaign_event_before_creation() {
    for e in [
        campaign_sent(K1, 1, vec![C1]),
        kev(
            K1,
            CampaignEvent::CostRecorded {
                amount: eur_m(1),
                note: String::new(),
            },
        ),
    ] {
        let mut w = World::default();
        let err = w.apply(&e).expect_err("before creation");
        assert_eq!(err.aggregate, "campaign");
        assert!(err.reason.contains("before campaign.created"), "{err}");
        assert_eq!(w, World::default());
    }
}

#[test]
fn evolve_rejects_a_second_creation_event() {
    let mut w = world([
        registered(C1),
        lead_captured(L1),
        campaign_created(K1, Channel::Email),
    ]);
    assert_eq!(
        w.apply(&registered(C1)).expect_err("twice").aggregate,
        "customer"
    );
    assert_eq!(
        w.apply(&lead_captured(L1)).expect_err("twice").aggregate,
        "lead"
    );
    let created = campaign_created(K1, Channel::Email);
    assert_eq!(w.apply(&created).expect_err("twice").aggregate, "campaign");
}

#[test]
fn evolve_rejects_events_about_unknown_parts_of_a_customer() {
    for e in [
        returned(R1, &[("A", 1)], 0),
        cev(C1, CustomerEvent::TicketCustomerReplied { ticket_id: T1 }),
        ticket_resolved(C1, T1),
        ticket_closed(C1, T1),
        ticket_awaiting(C1, T1),
        cev(
            C1,
            CustomerEvent::OpportunityWon {
                opportunity_id: P1,
                amount: eur_m(1),
                stage: None,
            },
        ),
        cev(
            C1,
            CustomerEvent::OpportunityLost {
                opportunity_id: P1,
                reason: "x".into(),
                stage: "y".into(),
            },
        ),
    ] {
        let mut w = world([registered(C1)]);
        let err = w.apply(&e).expect_err("unknown part");
        assert_eq!(err.aggregate, "customer", "{e:?}");
    }
}

#[test]
fn world_apply_leaves_the_world_unchanged_on_a_history_error() {
    // World::apply removes the aggregate from its map, hands it to evolve by value and
    // returns early on the error: the customer is gone from the world.
    let mut w = world([registered(C1), tagged_vip()]);
    let before = w.clone();
    assert!(w.apply(&ticket_resolved(C1, T1)).is_err());
    assert_eq!(w, before);
    assert!(w.apply(&registered(C1)).is_err());
    assert_eq!(w, before);
}

fn tagged_vip() -> DomainEvent {
    cev(C1, CustomerEvent::Tagged { tag: "vip".into() })
}
