//! `AuditService` over gRPC against commands written through the API: as-of views equal
//! what `GetCustomer360` answered at each moment (recorded while the commands ran), the
//! history holds every event with the actor its principal gave (imports attributed as
//! imports), a diff names what changed and by which events, and an analyst (no
//! `pii.read`) sees no personal data in any of it.

use crm_audit::as_of::reconstructible;
use crm_proto::v1;
use tonic::transport::Channel;

use crate::support::{Crm, id, register, with_token};

const EMAIL: &str = "ada.byron@example.com";
const FAMILY: &str = "Byron-Lovelace";

fn admin<T>(m: T) -> tonic::Request<T> {
    with_token(m, "token-admin")
}

fn analyst<T>(m: T) -> tonic::Request<T> {
    with_token(m, "token-analyst")
}

fn now() -> prost_types::Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    crm_proto::timestamp_to_proto(crm_domain::Timestamp(i64::try_from(micros).unwrap()))
}

/// The commands of the test, each sent by `admin` except the tag (an import).
async fn write(crm: &Crm, customer: &str, step: usize) -> (u64, &'static str) {
    let mut c = v1::command_service_client::CommandServiceClient::new(crm.channel().await);
    let reply = match step {
        0 => {
            c.register_customer(admin(v1::RegisterCustomerRequest {
                customer_id: customer.into(),
                ..register(&id(), EMAIL)
            }))
            .await
        }
        1 => {
            c.tag_customer(with_token(
                v1::TagCustomerRequest {
                    customer_id: customer.into(),
                    tag: "imported-vip".into(),
                    ..Default::default()
                },
                "token-importer",
            ))
            .await
        }
        2 => {
            c.place_order(admin(v1::PlaceOrderRequest {
                customer_id: customer.into(),
                order_id: id(),
                sales_channel: "web".into(),
                currency: "EUR".into(),
                lines: vec![v1::OrderLine {
                    sku: "book-1".into(),
                    category: "books".into(),
                    quantity: 2,
                    unit_price_minor: 1_250,
                }],
                ..Default::default()
            }))
            .await
        }
        3 => {
            c.open_ticket(admin(v1::OpenTicketRequest {
                customer_id: customer.into(),
                ticket_id: id(),
                channel: v1::Channel::Email.into(),
                category: "delivery".into(),
                priority: v1::TicketPriority::Normal.into(),
                subject: format!("Parcel for {FAMILY} lost"),
                ..Default::default()
            }))
            .await
        }
        _ => {
            c.update_profile(admin(v1::UpdateProfileRequest {
                customer_id: customer.into(),
                family_name: Some(FAMILY.into()),
                ..Default::default()
            }))
            .await
        }
    };
    let actor = if step == 1 {
        "import:importer-user"
    } else {
        "user:admin-user"
    };
    (reply.unwrap().into_inner().position, actor)
}

async fn live_view(
    channel: &Channel,
    customer: &str,
    position: u64,
    at: prost_types::Timestamp,
) -> v1::Customer360 {
    let mut q = v1::query_service_client::QueryServiceClient::new(channel.clone());
    q.get_customer360(with_token(
        v1::GetCustomer360Request {
            customer_id: customer.into(),
            as_of: Some(at),
            consistency: Some(v1::Consistency {
                min_position: position,
            }),
        },
        "token-admin",
    ))
    .await
    .unwrap()
    .into_inner()
}

fn start() -> Crm {
    let dir = tempfile::tempdir().unwrap();
    let principals: Vec<_> = [
        ("admin", "admin"),
        ("auditor", "auditor"),
        ("analyst", "analyst"),
        ("importer", "importer"),
    ]
    .iter()
    .map(|(name, role)| {
        crm_testkit::Principal::new(
            &format!("{name}-user"),
            "user",
            &[role],
            &format!("token-{name}"),
        )
    })
    .collect();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, crm_testkit::tokens_toml(&principals)).unwrap();
    Crm::start(&["--tokens-file", tokens.to_str().unwrap()], dir)
}

#[tokio::test]
async fn as_of_views_replay_what_the_live_service_answered_and_analysts_see_no_one() {
    let crm = start();
    let channel = crm.channel().await;
    let mut audit = v1::audit_service_client::AuditServiceClient::new(channel.clone());
    let customer = id();
    // Each command, then the live answer at a moment after it (and before the next).
    let mut seen = Vec::new();
    let mut actors = Vec::new();
    for step in 0..5 {
        let (position, actor) = write(&crm, &customer, step).await;
        actors.push(actor);
        let at = now();
        seen.push((at, live_view(&channel, &customer, position, at).await));
    }
    for (at, live) in &seen {
        let replay = audit
            .get_customer_as_of(with_token(
                v1::GetCustomerAsOfRequest {
                    customer_id: customer.clone(),
                    at: Some(*at),
                    clock: v1::Clock::Recorded.into(),
                },
                "token-auditor",
            ))
            .await
            .unwrap()
            .into_inner();
        let view = replay.view.expect("the customer existed");
        assert!(
            view.read
                .as_ref()
                .unwrap()
                .rules
                .iter()
                .any(|r| r.contains("not reconstructed"))
        );
        assert_eq!(
            reconstructible(view),
            reconstructible(live.clone()),
            "as of {at:?}"
        );
    }
    // Before the registration the customer did not exist.
    let before = audit
        .get_customer_as_of(with_token(
            v1::GetCustomerAsOfRequest {
                customer_id: customer.clone(),
                at: Some(prost_types::Timestamp {
                    seconds: 1_000_000_000,
                    nanos: 0,
                }),
                clock: v1::Clock::Recorded.into(),
            },
            "token-auditor",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(before.view.is_none());
    assert_eq!(before.events_applied, 0);

    // The history: one entry per command, each with the actor its principal gave.
    let history = audit
        .get_customer_history(with_token(
            v1::GetCustomerHistoryRequest {
                customer_id: customer.clone(),
                ..Default::default()
            },
            "token-auditor",
        ))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(&str, &str)> = history
        .entries
        .iter()
        .map(|e| (e.event_type.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("customer.registered", actors[0]),
            ("customer.tagged", actors[1]),
            ("customer.order_placed", actors[2]),
            ("customer.ticket_opened", actors[3]),
            ("customer.profile_updated", actors[4]),
        ]
    );
    assert!(
        history
            .entries
            .iter()
            .all(|e| !e.event_redacted && e.hash.len() == 64)
    );
    assert!(
        history.entries[0].event.contains(EMAIL),
        "{}",
        history.entries[0].event
    );

    // The diff from after the registration to the end: what changed, by which events.
    let diff = audit
        .diff_customer(with_token(
            v1::DiffCustomerRequest {
                customer_id: customer.clone(),
                from: Some(seen[0].0),
                to: Some(seen[4].0),
                clock: v1::Clock::Recorded.into(),
            },
            "token-auditor",
        ))
        .await
        .unwrap()
        .into_inner();
    let fields: Vec<&str> = diff.changes.iter().map(|c| c.field.as_str()).collect();
    for field in ["version", "profile", "tags", "commerce", "service"] {
        assert!(fields.contains(&field), "{field} not in {fields:?}");
    }
    assert!(!fields.contains(&"registered_at"), "{fields:?}");
    let by: Vec<&str> = diff.events.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(by, actors[1..]);
    let profile = diff.changes.iter().find(|c| c.field == "profile").unwrap();
    assert!(profile.after.contains(FAMILY) && !profile.before.contains(FAMILY));

    // The analyst replays the same customer and meets no personal data anywhere.
    let history = audit
        .get_customer_history(analyst(v1::GetCustomerHistoryRequest {
            customer_id: customer.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        history
            .entries
            .iter()
            .all(|e| e.event_redacted && e.event.is_empty())
    );
    let view = audit
        .get_customer_as_of(analyst(v1::GetCustomerAsOfRequest {
            customer_id: customer.clone(),
            at: Some(seen[4].0),
            clock: v1::Clock::Recorded.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let diff = audit
        .diff_customer(analyst(v1::DiffCustomerRequest {
            customer_id: customer.clone(),
            from: Some(seen[0].0),
            to: Some(seen[4].0),
            clock: v1::Clock::Recorded.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(view.view.as_ref().unwrap().pii_redacted);
    let everything = format!("{history:?}{view:?}{diff:?}");
    for personal in [EMAIL, FAMILY, "Ada"] {
        assert!(
            !everything.contains(personal),
            "{personal} reached an analyst"
        );
    }
    drop(audit);
    drop(channel);
    assert!(crm.stop().await.success());
}
