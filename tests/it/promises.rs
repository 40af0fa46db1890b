//! Paths of the write side the README promises that nothing else exercises: the outcome
//! of a command whose commit went unanswered and could not be checked, the stream's
//! limit on open atomic batches, and read-only references read again on every command.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use crm_domain::{
    CampaignCreated, CampaignEvent, Channel, Command, ConsentChannel, CustomerEvent, DomainEvent,
    RelationshipKind,
};
use crm_events::{EventHash, EventMeta, encode};
use crm_store::{CommandHandler, HandleError, LogConfig, OutgoingMessage};
use crm_testkit::NatsServer;
use uuid::Uuid;

use crate::support::{
    customer_messages, handler, handler_with, meta, meta_with_id, new_customer_id, register,
};

/// A commit that goes unanswered, then a log that cannot be read to learn whether it
/// landed: the caller is told the command may have been applied (retry with the same
/// id), and the retry applies it exactly once.
#[tokio::test]
async fn an_unanswered_commit_that_cannot_be_checked_is_reported_as_maybe_applied() {
    let server = NatsServer::start();
    let h = handler_with(
        &server,
        LogConfig {
            request_timeout: Duration::from_millis(300),
            ..LogConfig::default()
        },
    )
    .await;
    let c = new_customer_id();
    h.handle(&register(c), &meta()).await.unwrap();
    let id = meta();
    // The commit is stored but its ack is lost; the re-read that would find it is lost
    // too, three times (a read fails after three attempts).
    h.log().inject_lost_acks(1);
    h.log().inject_lost_reads(3);
    let tag = Command::TagCustomer {
        customer_id: c,
        tag: "vip".into(),
    };
    match h.handle(&tag, &id).await {
        Err(
            e @ HandleError::Unavailable {
                maybe_applied: true,
                ..
            },
        ) => assert!(
            e.to_string().contains("retry with the same command id"),
            "{e}"
        ),
        other => panic!("expected Unavailable with maybe_applied, got {other:?}"),
    }
    // The retry with the same command id finds the commit: applied once, in all.
    let retried = h.handle(&tag, &meta_with_id(id.command_id)).await.unwrap();
    assert!(retried.repeated, "the first attempt had landed");
    assert_eq!(customer_messages(h.log(), c).await.len(), 2);
}

/// The stream allows 50 atomic batches open at once, for all writers together. With that
/// many left open by a writer that died mid-batch, a two-aggregate command is refused as
/// busy, decided again after a pause, and, once its attempts run out, refused as
/// unavailable having written nothing; a retry gets through once the server has dropped
/// the abandoned batches.
#[tokio::test]
async fn a_two_aggregate_command_waits_out_a_stream_full_of_open_batches() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let (a, b) = (new_customer_id(), new_customer_id());
    h.handle(&register(a), &meta()).await.unwrap();
    h.handle(&register(b), &meta()).await.unwrap();
    // Another writer opens 50 batches and dies before committing any.
    let other = handler(&server).await;
    let log = other.log();
    for _ in 0..50 {
        let side = new_customer_id();
        let messages: Vec<OutgoingMessage> = (0..2)
            .map(|i| {
                let event = DomainEvent::Customer(
                    side,
                    CustomerEvent::Tagged {
                        tag: format!("t{i}"),
                    },
                );
                let meta = EventMeta {
                    event_id: Uuid::now_v7(),
                    version: i + 1,
                    occurred_at: crm_domain::Timestamp::from_micros(0),
                    recorded_at: crm_domain::Timestamp::from_micros(0),
                    actor: crm_domain::Actor::System,
                    command_id: crm_domain::CommandId(Uuid::now_v7()),
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                    commit_index: 0,
                    commit_size: 1,
                    prev_hash: EventHash::GENESIS,
                };
                OutgoingMessage {
                    subject: log.config().subject(event.aggregate()),
                    payload: Bytes::from(encode(&meta, &event).bytes),
                    msg_id: Uuid::now_v7().simple().to_string(),
                    expected_last_subject_seq: (i == 0).then_some(0),
                }
            })
            .collect();
        log.append_batch_without_commit(&messages, 1).await.unwrap();
    }
    let before = h.log().last_sequence().await.unwrap();
    let started = std::time::Instant::now();
    let link = Command::LinkCustomers {
        customer_id: a,
        other: b,
        kind: RelationshipKind::Household,
    };
    let out = h.handle(&link, &meta()).await;
    let busy = h.stats().busy.load(Ordering::Relaxed);
    assert!(busy > 0, "the stream never refused the batch as busy");
    // The retries run out long before the server drops the abandoned batches: a clean,
    // retryable refusal that says why, and nothing written.
    match &out {
        Err(
            e @ HandleError::Unavailable {
                maybe_applied: false,
                ..
            },
        ) => assert!(e.to_string().contains("atomic batches open"), "{e}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(h.log().last_sequence().await.unwrap(), before);
    // A client retrying with the same command id gets through once the server has
    // dropped the abandoned batches, and the command is written once, whole.
    let id = meta();
    let deadline = started + Duration::from_secs(60);
    let applied = loop {
        match h.handle(&link, &meta_with_id(id.command_id)).await {
            Ok(o) => break o,
            Err(HandleError::Unavailable { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    eprintln!(
        "{busy} busy refusals on the first attempt; applied after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(applied.appended, 2);
    assert_eq!(customer_messages(h.log(), a).await.len(), 2);
    assert_eq!(customer_messages(h.log(), b).await.len(), 2);
}

/// Another process withdraws a recipient's consent after this one has cached the
/// customer: a send reads every recipient again, so the withdrawal is honoured.
#[tokio::test]
async fn a_read_only_reference_is_read_again_on_every_command() {
    let server = NatsServer::start();
    let (a, b) = (handler(&server).await, handler(&server).await);
    let consent = |customer_id, granted| Command::SetConsent {
        customer_id,
        channel: ConsentChannel::Email,
        granted,
        source: "preference centre".into(),
    };
    let (leaves, stays) = (new_customer_id(), new_customer_id());
    for c in [leaves, stays] {
        a.handle(&register(c), &meta()).await.unwrap();
        a.handle(&consent(c, true), &meta()).await.unwrap();
    }
    let campaign_id = crm_domain::CampaignId(Uuid::now_v7());
    b.handle(
        &Command::CreateCampaign {
            campaign_id,
            campaign: CampaignCreated {
                name: "Spring".into(),
                channel: Channel::Email,
                segment: "all".into(),
                budget: None,
            },
        },
        &meta(),
    )
    .await
    .unwrap();
    let send = Command::SendCampaign {
        campaign_id,
        recipients: vec![leaves, stays],
    };
    let reached = |h: &CommandHandler| {
        let h = h.clone();
        let send = send.clone();
        async move {
            match h.handle(&send, &meta()).await.unwrap().events.as_slice() {
                [DomainEvent::Campaign(_, CampaignEvent::Sent { recipients, .. })] => {
                    recipients.clone()
                }
                other => panic!("{other:?}"),
            }
        }
    };
    // B holds both customers, with consent, after the first wave.
    assert_eq!(reached(&b).await.len(), 2);
    let loads = b.stats().aggregate_loads.load(Ordering::Relaxed);
    a.handle(&consent(leaves, false), &meta()).await.unwrap();
    assert_eq!(reached(&b).await, vec![stays]);
    assert!(
        b.stats().aggregate_loads.load(Ordering::Relaxed) >= loads + 2,
        "both recipients were read again"
    );
}
