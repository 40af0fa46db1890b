//! ForgetCustomer: the erasure is recorded with the leads converted into the customer,
//! recorded once, refused for an unknown customer or without a reason, and afterwards
//! every command on the customer is refused while the figures' state stays.

use super::*;
use crate::testing::Scenario;
use crate::{ConsentChannel, CustomerRegistered, LeadId};

const L2: LeadId = LeadId(Uuid::from_u128(0x12));

fn forget(id: CustomerId) -> Command {
    Command::ForgetCustomer {
        customer_id: id,
        reason: " erasure request DSR-1 ".into(),
        legal_basis: "gdpr-art-17-1-a".into(),
    }
}

/// C1 registered from lead L1, later linked to lead L2, with an order.
fn history() -> Vec<DomainEvent> {
    vec![
        cev(
            C1,
            CustomerEvent::Registered(CustomerRegistered {
                lead: Some(L1),
                ..match registered_event(ada()) {
                    CustomerEvent::Registered(r) => r,
                    _ => unreachable!(),
                }
            }),
        ),
        cev(C1, CustomerEvent::LeadLinked { lead_id: L2 }),
        order_placed(C1, O1),
    ]
}

fn forgotten() -> DomainEvent {
    cev(
        C1,
        CustomerEvent::Forgotten {
            reason: "erasure request DSR-1".into(),
            legal_basis: "gdpr-art-17-1-a".into(),
            leads: vec![L1, L2],
        },
    )
}

#[test]
fn forgetting_records_the_erasure_with_every_lead_converted_into_the_customer() {
    let world = Scenario::new()
        .given(history())
        .when(forget(C1))
        .then_events([forgotten()]);
    let c = &world.customers[&C1];
    assert!(c.forgotten);
    assert_eq!(
        c.profile,
        Profile::default(),
        "the command side keeps no name"
    );
    assert_eq!(c.orders.len(), 1, "the figures' state stays");
}

#[test]
fn forgetting_twice_records_nothing() {
    Scenario::new()
        .given(history())
        .given([forgotten()])
        .when(forget(C1))
        .then_events([]);
}

#[test]
fn forgetting_needs_a_customer_a_reason_and_a_legal_basis_key() {
    Scenario::new().when(forget(C1)).then_rejects(
        RejectionKind::NotFound,
        "customer_id",
        "not_found",
    );
    let r = Scenario::new()
        .given(history())
        .when(Command::ForgetCustomer {
            customer_id: C1,
            reason: "  ".into(),
            legal_basis: "GDPR Art. 17".into(),
        })
        .then_rejects(RejectionKind::Invalid, "reason", "required");
    assert!(
        r.violations
            .iter()
            .any(|v| v.field == "legal_basis" && v.rule == "format")
    );
}

#[test]
fn every_command_on_a_forgotten_customer_is_refused_naming_the_erasure() {
    let given = || {
        let mut h = history();
        h.push(registered(C2));
        h.push(forgotten());
        h
    };
    let commands = [
        Command::TagCustomer {
            customer_id: C1,
            tag: "vip".into(),
        },
        Command::SetConsent {
            customer_id: C1,
            channel: ConsentChannel::Email,
            granted: true,
            source: "form".into(),
        },
        Command::LinkCustomers {
            customer_id: C2,
            other: C1,
            kind: crate::RelationshipKind::Household,
        },
    ];
    for command in commands {
        let field = if matches!(command, Command::LinkCustomers { .. }) {
            "other"
        } else {
            "customer_id"
        };
        let r = Scenario::new().given(given()).when(command).then_rejects(
            RejectionKind::FailedPrecondition,
            field,
            "not_forgotten",
        );
        assert!(r.violations[0].message.contains("forgotten"), "{r}");
    }
}
