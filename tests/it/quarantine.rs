//! Quarantined positions against a real nats-server and real sled files: a message that
//! is not ours on a customer's subject breaks that customer for every command until an
//! admin quarantines its position; then the command handler and every projector skip
//! exactly that position, and a build that had passed it is rebuilt.

use std::time::Duration;

use crm_customer360::{Customer360, CustomerRecord, keys};
use crm_domain::{AggregateRef, Command, CustomerId, RejectionKind};
use crm_events::{ChainVerifier, SubjectScheme, decode_message};
use crm_projection::{BuildState, HostedProjection, ReadSide, RunnerConfig};
use crm_store::{CommandHandler, HandleError, LogConfig, StoreError};
use crm_testkit::NatsServer;
use tokio::sync::watch;

use crate::read_side::{Projector, contents, eventually, last_seq, write_customers};
use crate::support::{connect, customer_messages, handler, meta};

fn tag(customer_id: CustomerId, tag: &str) -> Command {
    Command::TagCustomer {
        customer_id,
        tag: tag.into(),
    }
}

/// Publishes `payload` on `customer`'s subject as a stranger with write access would
/// (or an operator replaying a backup): returns its stream sequence.
async fn publish_foreign(server: &NatsServer, customer: CustomerId, payload: Vec<u8>) -> u64 {
    let js = async_nats::jetstream::new(connect(&server.url()).await);
    let subject = LogConfig::default().subject(AggregateRef::Customer(customer));
    js.publish(subject, payload.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

fn corrupt_at(result: Result<crm_store::CommandOutcome, HandleError>) -> u64 {
    match result {
        Err(HandleError::Store(StoreError::Corrupt { seq, .. })) => seq,
        other => panic!("expected a corrupt history, got {other:?}"),
    }
}

fn rejected_rule(
    result: Result<crm_store::QuarantineOutcome, HandleError>,
) -> (RejectionKind, String, String) {
    match result {
        Err(HandleError::Rejected(r)) => (
            r.kind,
            r.violations[0].field.clone(),
            r.violations[0].rule.to_string(),
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The customer's history, quarantined positions left out, is one unbroken chain.
async fn assert_chain(h: &CommandHandler, customer: CustomerId, skip: &[u64]) -> usize {
    let mut chain = ChainVerifier::new(AggregateRef::Customer(customer));
    let mut events = 0;
    for m in customer_messages(h.log(), customer).await {
        if skip.contains(&m.seq) {
            continue;
        }
        for e in decode_message(&m.payload).unwrap() {
            chain.push(&e).unwrap();
            events += 1;
        }
    }
    events
}

#[tokio::test]
async fn a_message_that_is_not_ours_breaks_its_customer_until_its_position_is_quarantined() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let ids = write_customers(&h, 2).await;
    let c = ids[0];
    let foreign = publish_foreign(&server, c, b"{\"hello\":\"world\"}".to_vec()).await;
    assert_eq!(corrupt_at(h.handle(&tag(c, "vip"), &meta()).await), foreign);
    // The other customer is not affected.
    h.handle(&tag(ids[1], "vip"), &meta()).await.unwrap();

    let head = last_seq(&server).await;
    let admin = meta();
    let out = h
        .quarantine(foreign, "published by a load-test harness", &admin)
        .await
        .unwrap();
    assert!(!out.repeated);
    assert_eq!(out.record.seq, foreign);
    assert_eq!(out.record.actor, admin.actor);
    assert_eq!(out.position, head + 1, "one record appended");
    assert_eq!(
        out.record.subject,
        LogConfig::default().subject(AggregateRef::Customer(c))
    );

    // Commands on the customer work again, here and in another process, and the history
    // goes on from the last event of ours.
    let applied = h.handle(&tag(c, "vip"), &meta()).await.unwrap();
    assert_eq!(applied.aggregates, vec![(AggregateRef::Customer(c), 3)]);
    let other = handler(&server).await;
    let applied = other.handle(&tag(c, "gold"), &meta()).await.unwrap();
    assert_eq!(applied.aggregates, vec![(AggregateRef::Customer(c), 4)]);
    assert_eq!(assert_chain(&h, c, &[foreign]).await, 4);

    // Asking again changes nothing, whoever asks.
    let head = last_seq(&server).await;
    let again = other.quarantine(foreign, "again", &meta()).await.unwrap();
    assert!(again.repeated);
    assert_eq!(again.record, out.record);
    assert_eq!(last_seq(&server).await, head);
    let listed = other.quarantined().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].record, out.record);
    assert_eq!(listed[0].position, out.position);
}

#[tokio::test]
async fn only_the_first_message_that_breaks_a_history_can_be_quarantined_never_a_valid_event() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let ids = write_customers(&h, 2).await;
    let c = ids[0];
    // A message from a restored backup: a real event of the other customer, replayed onto
    // this customer's subject; then a second stray message.
    let of_other = customer_messages(h.log(), ids[1]).await.remove(0);
    let first = publish_foreign(&server, c, of_other.payload.to_vec()).await;
    let second = publish_foreign(&server, c, b"stray".to_vec()).await;
    let head = last_seq(&server).await;

    let valid = customer_messages(h.log(), c).await[0].seq;
    let (kind, field, rule) = rejected_rule(h.quarantine(valid, "oops", &meta()).await);
    assert_eq!(
        (kind, field.as_str(), rule.as_str()),
        (RejectionKind::FailedPrecondition, "sequence", "valid_event")
    );
    let (kind, _, rule) = rejected_rule(h.quarantine(second, "stray", &meta()).await);
    assert_eq!(
        (kind, rule.as_str()),
        (RejectionKind::FailedPrecondition, "earlier_break")
    );
    let (kind, _, rule) = rejected_rule(h.quarantine(head + 100, "gone", &meta()).await);
    assert_eq!(
        (kind, rule.as_str()),
        (RejectionKind::NotFound, "not_found")
    );
    let (kind, field, _) = rejected_rule(h.quarantine(first, " ", &meta()).await);
    assert_eq!((kind, field.as_str()), (RejectionKind::Invalid, "reason"));
    assert_eq!(
        last_seq(&server).await,
        head,
        "nothing appended on rejection"
    );

    let reused = meta();
    h.quarantine(first, "restored backup", &reused)
        .await
        .unwrap();
    // Still broken, one position later.
    assert_eq!(corrupt_at(h.handle(&tag(c, "x"), &meta()).await), second);
    let (_, field, rule) = rejected_rule(h.quarantine(second, "stray", &reused).await);
    assert_eq!(
        (field.as_str(), rule.as_str()),
        ("options.command_id", "reused")
    );
    h.quarantine(second, "stray", &meta()).await.unwrap();
    h.handle(&tag(c, "x"), &meta()).await.unwrap();
    assert_eq!(assert_chain(&h, c, &[first, second]).await, 3);
}

fn runner() -> RunnerConfig {
    RunnerConfig {
        batch_max: 64,
        retry_pause: Duration::from_millis(100),
        head_interval: Duration::from_millis(100),
        ..RunnerConfig::default()
    }
}

fn record(model: &crm_projection::ReadModel, id: CustomerId) -> CustomerRecord {
    postcard::from_bytes(
        &model
            .get(&keys::id_key(keys::CUSTOMER, id.0.into_bytes()))
            .unwrap()
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn projectors_skip_a_quarantined_position_and_a_build_that_passed_it_is_rebuilt() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let ids = write_customers(&h, 20).await;
    let c = ids[3];
    let foreign = publish_foreign(&server, c, b"not an event".to_vec()).await;
    write_customers(&h, 5).await;

    // A live build folds the stream, dead-letters the stray message and flags the
    // customer.
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path().join("rm")).unwrap();
    let mut side = ReadSide::new(db.clone(), SubjectScheme::default(), runner());
    let c360 = side.add(Customer360::default()).unwrap();
    let reader = c360.reader();
    let js = async_nats::jetstream::new(connect(&server.url()).await);
    let (stop, stopped) = watch::channel(false);
    let tasks: Vec<_> = side
        .start(&js, &stopped)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(
        reader
            .wait_for(last_seq(&server).await, Duration::from_secs(20))
            .await
    );
    let first = reader.serving().unwrap();
    assert_eq!(record(&reader, c).dead_letters, vec![foreign]);
    assert_eq!(reader.dead_letters().count(), 1);

    h.quarantine(foreign, "stray test message", &meta())
        .await
        .unwrap();
    h.handle(&tag(c, "after"), &meta()).await.unwrap();
    let end = last_seq(&server).await;

    // The live build meets the record, a rebuild starts beside it and takes over.
    eventually(
        "a rebuild to replace the build that passed the position",
        || reader.serving().is_some_and(|t| t != first),
    )
    .await;
    assert!(reader.wait_for(end, Duration::from_secs(20)).await);
    let status = c360.status();
    assert_eq!(status.builds[0].state, BuildState::Live);
    let rebuilt = record(&reader, c);
    assert!(
        rebuilt.dead_letters.is_empty(),
        "{:?}",
        rebuilt.dead_letters
    );
    assert!(rebuilt.tags.contains("after"));
    assert_eq!(reader.dead_letters().count(), 0);
    stop.send(true).unwrap();
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    // A projector started now skips the position from the start: byte for byte the same.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = Projector::start(&server, fresh_dir.path(), Customer360::default()).await;
    let model = fresh.caught_up(end).await;
    assert_eq!(
        fresh
            .store
            .stats()
            .quarantined_skipped
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(contents(&reader), contents(&model));
    drop(fresh.stop().await);
}
