//! Forgetting a customer at the command handler, on a real nats-server: personal text
//! is sealed under the customer's (and a lead's) data key; forgetting records the event
//! and destroys both keys; a crash between the two steps is finished by the next start;
//! a lead's names reach the customer it is converted into (the command side opens what
//! it decides on), and after forgetting the events read as erased.

use std::num::NonZeroUsize;
use std::sync::Arc;

use crm_domain::{
    Command, ConvertInto, CustomerEvent, DomainEvent, LeadCaptured, LeadId, RejectionKind,
};
use crm_events::Sealing;
use crm_store::keys::{DataKeys, KeyRing, MasterKey};
use crm_store::{CommandHandler, HandleError, StoredMessage};
use crm_testkit::NatsServer;
use uuid::Uuid;

use crate::support::{connect, handler, meta, new_customer_id, register};

async fn ring(server: &NatsServer, master: &MasterKey) -> Arc<KeyRing> {
    let js = async_nats::jetstream::new(connect(&server.url()).await);
    let keys = DataKeys::open(&js, 1, master.clone()).await.unwrap();
    Arc::new(KeyRing::new(keys, NonZeroUsize::new(100).unwrap()))
}

/// A handler as `crm serve` has it: sealing under the key ring.
async fn sealing_handler(server: &NatsServer, ring: &Arc<KeyRing>) -> CommandHandler {
    handler(server).await.with_keys(Arc::clone(ring))
}

fn lead(id: LeadId) -> Command {
    Command::CreateLead {
        lead_id: id,
        lead: LeadCaptured {
            source: "web-form".into(),
            campaign: None,
            given_name: "Xanthippe".into(),
            family_name: "Marlowe".into(),
            email: Some("xanthippe@example.net".into()),
            phone: None,
            interest: "kettles".into(),
        },
    }
}

async fn messages(h: &CommandHandler, subject: &str) -> Vec<StoredMessage> {
    h.log().read_subject(subject, 0).await.unwrap()
}

fn contains(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn forgetting_destroys_the_keys_and_a_crash_in_between_is_finished_at_start() {
    let server = NatsServer::start();
    let master = MasterKey::from_bytes(&[3; 32]);
    let keys = ring(&server, &master).await;
    let h = sealing_handler(&server, &keys).await;

    // A lead converted into a new customer: the registration carries the lead's names,
    // which the command side read from the lead's sealed capture.
    let (lead_id, customer) = (LeadId(Uuid::now_v7()), new_customer_id());
    h.handle(&lead(lead_id), &meta()).await.unwrap();
    h.handle(
        &Command::QualifyLead {
            lead_id,
            note: "call back".into(),
        },
        &meta(),
    )
    .await
    .unwrap();
    // Another process (empty cache) converts it: it opens the lead's capture.
    let other = sealing_handler(&server, &keys).await;
    let converted = other
        .handle(
            &Command::ConvertLead {
                lead_id,
                into: ConvertInto::NewCustomer(customer),
                opportunity: None,
            },
            &meta(),
        )
        .await
        .unwrap();
    let registered = converted
        .events
        .iter()
        .find_map(|e| match e {
            DomainEvent::Customer(_, CustomerEvent::Registered(r)) => Some(r.clone()),
            _ => None,
        })
        .expect("a registration");
    assert_eq!(registered.profile.given_name, "Xanthippe");
    assert_eq!(registered.lead, Some(lead_id));

    // Stored sealed: no name in the log's bytes, and the events open with the keys.
    let scheme = h.log().config();
    let customer_subject = scheme.subject(crm_domain::AggregateRef::Customer(customer));
    let lead_subject = scheme.subject(crm_domain::AggregateRef::Lead(lead_id));
    for m in messages(&h, &customer_subject)
        .await
        .iter()
        .chain(&messages(&h, &lead_subject).await)
    {
        assert!(!contains(&m.payload, "Xanthippe"), "seq {}", m.seq);
    }
    assert!(keys.key(*customer.0.as_bytes()).await.unwrap().is_some());
    assert!(keys.key(*lead_id.0.as_bytes()).await.unwrap().is_some());

    // The crash: the erasure marked and the event recorded, the keys not destroyed (a
    // handler without keys appends what the sealing one would, and stops there).
    keys.store()
        .mark_erasure(*customer.0.as_bytes())
        .await
        .unwrap();
    handler(&server)
        .await
        .handle(
            &Command::ForgetCustomer {
                customer_id: customer,
                reason: "erasure request DSR-7".into(),
                legal_basis: "gdpr-art-17-1-a".into(),
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        keys.store().pending_erasures().await.unwrap(),
        vec![*customer.0.as_bytes()]
    );
    assert!(keys.key(*customer.0.as_bytes()).await.unwrap().is_some());

    // The restart: a new process (its own key ring) finishes the job at start.
    let restarted_keys = ring(&server, &master).await;
    let restarted = sealing_handler(&server, &restarted_keys).await;
    assert_eq!(restarted.finish_erasures().await.unwrap(), 1);
    assert!(
        restarted_keys
            .store()
            .pending_erasures()
            .await
            .unwrap()
            .is_empty()
    );
    for subject in [*customer.0.as_bytes(), *lead_id.0.as_bytes()] {
        assert_eq!(restarted_keys.store().get(subject).await.unwrap(), None);
    }
    // The first ring still remembered the keys: evicted when it is told (a projector
    // does on the event); the store no longer has them.
    keys.evict(&[*customer.0.as_bytes(), *lead_id.0.as_bytes()]);
    assert_eq!(keys.key(*customer.0.as_bytes()).await.unwrap(), None);

    // Every event of both still decodes; the personal text reads as erased.
    for m in messages(&h, &customer_subject)
        .await
        .iter()
        .chain(&messages(&h, &lead_subject).await)
    {
        for mut env in crm_events::decode_message(&m.payload).unwrap() {
            env.unseal(None).unwrap();
            assert!(
                matches!(env.sealing, Sealing::Erased | Sealing::Plain),
                "{}: {:?}",
                env.event_type,
                env.sealing
            );
            assert!(!format!("{:?}", env.event).contains("Xanthippe"));
        }
    }

    // Commands on the forgotten customer are refused, naming the erasure; forgetting
    // again is accepted and records nothing.
    let refused = restarted
        .handle(
            &Command::TagCustomer {
                customer_id: customer,
                tag: "vip".into(),
            },
            &meta(),
        )
        .await
        .unwrap_err();
    let HandleError::Rejected(r) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(r.kind, RejectionKind::FailedPrecondition);
    assert!(r.first().message.contains("forgotten"), "{r:?}");
    let again = restarted
        .handle(
            &Command::ForgetCustomer {
                customer_id: customer,
                reason: "erasure request DSR-7".into(),
                legal_basis: "gdpr-art-17-1-a".into(),
            },
            &meta(),
        )
        .await
        .unwrap();
    assert!(again.events.is_empty());
    assert!(
        restarted_keys
            .store()
            .pending_erasures()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn forgetting_an_unknown_customer_is_refused_and_leaves_no_mark() {
    let server = NatsServer::start();
    let keys = ring(&server, &MasterKey::from_bytes(&[4; 32])).await;
    let h = sealing_handler(&server, &keys).await;
    let known = new_customer_id();
    h.handle(&register(known), &meta()).await.unwrap();
    let err = h
        .handle(
            &Command::ForgetCustomer {
                customer_id: new_customer_id(),
                reason: "request".into(),
                legal_basis: "gdpr-art-17-1-a".into(),
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HandleError::Rejected(r) if r.kind == RejectionKind::NotFound),
        "{err:?}"
    );
    assert!(keys.store().pending_erasures().await.unwrap().is_empty());
    // Validation names the field and the rule.
    let err = h
        .handle(
            &Command::ForgetCustomer {
                customer_id: known,
                reason: String::new(),
                legal_basis: "GDPR Art. 17".into(),
            },
            &meta(),
        )
        .await
        .unwrap_err();
    let HandleError::Rejected(r) = err else {
        panic!("{err:?}");
    };
    let fields: Vec<_> = r
        .violations
        .iter()
        .map(|v| (v.field.as_str(), v.rule))
        .collect();
    assert_eq!(fields, [("reason", "required"), ("legal_basis", "format")]);
    assert!(keys.key(*known.0.as_bytes()).await.unwrap().is_some());
}
