//! The write path against a real nats-server: stream guarantees, optimistic
//! concurrency, atomic commits, durable idempotency and restarts.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::stream::{Config, StorageType};
use bytes::Bytes;
use crm_domain::{
    AggregateRef, Command, CommandId, ConversionOpportunity, ConvertInto, Currency, CustomerEvent,
    DomainEvent, LeadCaptured, LeadId, Money, RejectionKind,
};
use crm_events::{ChainVerifier, EventHash, EventMeta, decode, decode_message, encode};
use crm_store::{EventLog, HandleError, LogConfig, OutgoingMessage, StoreError, desired_config};
use crm_testkit::NatsServer;

use crate::support::{
    connect, customer_messages, handler, handler_with, meta, meta_with_id, new_customer_id,
    open_log, register,
};

fn tag(customer_id: crm_domain::CustomerId, tag: &str) -> Command {
    Command::TagCustomer {
        customer_id,
        tag: tag.into(),
    }
}

#[tokio::test]
async fn stream_is_created_with_the_log_guarantees_and_opening_again_is_idempotent() {
    let server = NatsServer::start();
    let cfg = LogConfig::default();
    let log = open_log(&server, cfg.clone()).await;
    let mut stream = log.jetstream().get_stream(&cfg.stream).await.unwrap();
    let info = stream.info().await.unwrap().clone();
    let want = desired_config(&cfg);
    assert_eq!(info.config.storage, StorageType::File);
    assert!(info.config.deny_delete && info.config.deny_purge);
    assert!(info.config.allow_direct && info.config.allow_atomic_publish);
    assert!(!info.config.allow_rollup);
    assert_eq!(info.config.max_age, Duration::ZERO);
    assert_eq!(info.config.discard, want.discard);
    assert_eq!(info.config.subjects, vec!["crm.v1.>".to_string()]);
    // A second open (another process starting) neither fails nor changes anything.
    let again = open_log(&server, cfg.clone()).await;
    let mut stream = again.jetstream().get_stream(&cfg.stream).await.unwrap();
    assert_eq!(stream.info().await.unwrap().config, info.config);
}

#[tokio::test]
async fn an_existing_stream_with_weaker_guarantees_is_refused_and_left_alone() {
    let server = NatsServer::start();
    let client = connect(&server.url()).await;
    let js = async_nats::jetstream::new(client.clone());
    let cfg = LogConfig::default();
    let weak = Config {
        deny_delete: false,
        max_age: Duration::from_secs(3600),
        allow_atomic_publish: false,
        ..desired_config(&cfg)
    };
    js.create_stream(weak.clone()).await.unwrap();
    let err = EventLog::open(client, cfg.clone()).await.unwrap_err();
    let StoreError::UnsafeStream { problems, .. } = &err else {
        panic!("expected UnsafeStream, got {err}");
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
    let text = err.to_string();
    assert!(
        text.contains("deny_delete") && text.contains("max_age") && text.contains("allow_atomic"),
        "{text}"
    );
    let mut stream = js.get_stream(&cfg.stream).await.unwrap();
    let after = stream.info().await.unwrap().config.clone();
    assert!(
        !after.deny_delete && after.max_age == Duration::from_secs(3600),
        "stream was modified"
    );
}

#[tokio::test]
async fn deleting_or_purging_events_is_refused() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let c = new_customer_id();
    h.handle(&register(c), &meta()).await.unwrap();
    h.handle(&tag(c, "vip"), &meta()).await.unwrap();
    let js = h.log().jetstream();
    let stream = js.get_stream(&h.log().config().stream).await.unwrap();
    assert!(
        stream.delete_message(1).await.is_err(),
        "delete must be refused"
    );
    assert!(stream.purge().await.is_err(), "purge must be refused");
    // deny_delete and deny_purge are one-way: they cannot be switched off again.
    let relaxed = Config {
        deny_delete: false,
        deny_purge: false,
        ..desired_config(h.log().config())
    };
    assert!(
        js.update_stream(relaxed).await.is_err(),
        "relaxing deny_delete/deny_purge must be refused"
    );
    assert_eq!(customer_messages(h.log(), c).await.len(), 2);
}

#[tokio::test]
async fn thirty_two_concurrent_writers_on_one_customer_lose_nothing_and_duplicate_nothing() {
    const WRITERS: usize = 32;
    const PER_WRITER: usize = 5;
    let server = NatsServer::start();
    let c = new_customer_id();
    handler(&server)
        .await
        .handle(&register(c), &meta())
        .await
        .unwrap();
    let mut handlers = Vec::new();
    for _ in 0..WRITERS {
        handlers.push(handler(&server).await);
    }
    // Every writer loads the customer first, so they all start from the same state.
    for h in &handlers {
        h.handle(&tag(c, "warm-up"), &meta()).await.unwrap();
    }
    let mut tasks = Vec::new();
    for (w, h) in handlers.iter().enumerate() {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut gave_up = 0;
            for i in 0..PER_WRITER {
                let m = meta();
                match h.handle(&tag(c, &format!("w{w}-{i}")), &m).await {
                    Ok(o) => accepted.push((m.command_id, format!("w{w}-{i}"), o)),
                    Err(HandleError::Conflict { .. }) => gave_up += 1,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            (accepted, gave_up)
        }));
    }
    let mut accepted = Vec::new();
    let mut gave_up = 0;
    for t in tasks {
        let (a, g) = t.await.unwrap();
        accepted.extend(a);
        gave_up += g;
    }
    let conflicts: u64 = handlers
        .iter()
        .map(|h| h.stats().conflicts.load(Ordering::Relaxed))
        .sum();
    eprintln!(
        "32 writers: {} accepted, {gave_up} gave up, {conflicts} conflicts",
        accepted.len()
    );
    assert!(
        conflicts > 0,
        "32 writers on one aggregate must have raced at least once"
    );
    assert_eq!(accepted.len() + gave_up, WRITERS * PER_WRITER);

    // The log: a valid chain, versions 1..n, every accepted command exactly once.
    let messages = customer_messages(handlers[0].log(), c).await;
    let mut chain = ChainVerifier::new(AggregateRef::Customer(c));
    let mut tags_in_log = BTreeSet::new();
    let mut command_ids = Vec::new();
    for m in &messages {
        let env = decode(&m.payload).unwrap();
        chain.push(&env).unwrap();
        command_ids.push(env.meta.command_id);
        if let DomainEvent::Customer(_, CustomerEvent::Tagged { tag }) = env.event {
            assert!(tags_in_log.insert(tag.clone()), "tag {tag} appended twice");
        }
    }
    for (id, tag, outcome) in &accepted {
        assert_eq!(
            command_ids.iter().filter(|c| *c == id).count(),
            1,
            "command for {tag} not exactly once"
        );
        assert!(tags_in_log.contains(tag));
        assert_eq!(outcome.appended, 1);
    }
    // 1 registration + 1 warm-up tag + one event per accepted command: nothing else.
    assert_eq!(messages.len(), 2 + accepted.len());
    // No lost update: a fresh reader's state has every accepted tag.
    let fresh = handler(&server).await;
    let probe = fresh.handle(&tag(c, "warm-up"), &meta()).await.unwrap();
    assert_eq!(probe.appended, 0, "warm-up tag is already there");
    assert_eq!(
        probe.aggregates,
        vec![(AggregateRef::Customer(c), messages.len() as u64)]
    );
}

#[tokio::test]
async fn a_repeated_command_id_returns_the_original_outcome_inside_the_dedupe_window() {
    let server = NatsServer::start();
    let a = handler(&server).await;
    let c = new_customer_id();
    a.handle(&register(c), &meta()).await.unwrap();
    // `stale` loads the customer before the command, so its cache does not know it.
    let stale = handler(&server).await;
    stale.handle(&tag(c, "loaded"), &meta()).await.unwrap();
    let m = meta();
    let first = a.handle(&tag(c, "vip"), &m).await.unwrap();
    assert_eq!((first.appended, first.repeated), (1, false));
    // Same handler (cache knows the command id).
    let again = a.handle(&tag(c, "vip"), &m).await.unwrap();
    // A handler with an empty cache (another process, or after a restart).
    let fresh = handler(&server)
        .await
        .handle(&tag(c, "vip"), &m)
        .await
        .unwrap();
    // A handler whose cached state predates the command: its append is refused by the
    // sequence check / dedupe, it re-reads and finds the command.
    let from_stale = stale.handle(&tag(c, "vip"), &m).await.unwrap();
    for o in [&again, &fresh, &from_stale] {
        assert!(o.repeated, "{o:?}");
        assert_eq!(o.appended, 0);
        assert_eq!(o.position, first.position);
        assert_eq!(o.aggregates, first.aggregates);
    }
    let ids: Vec<CommandId> = customer_messages(a.log(), c)
        .await
        .iter()
        .map(|m| decode(&m.payload).unwrap().meta.command_id)
        .collect();
    assert_eq!(ids.iter().filter(|id| **id == m.command_id).count(), 1);
}

#[tokio::test]
async fn a_command_id_reused_for_another_aggregate_is_refused_naming_the_id() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let (c1, c2) = (new_customer_id(), new_customer_id());
    h.handle(&register(c1), &meta()).await.unwrap();
    h.handle(&register(c2), &meta()).await.unwrap();
    let m = meta();
    h.handle(&tag(c1, "vip"), &m).await.unwrap();
    let before = h.log().last_sequence().await.unwrap();
    // The same id for a different command on another customer, inside the dedupe
    // window: JetStream calls it a duplicate; the id's commit is not on c2.
    let err = h.handle(&tag(c2, "vip"), &m).await.unwrap_err();
    let HandleError::Rejected(r) = &err else {
        panic!("expected a rejection, got {err:?}");
    };
    assert_eq!(r.kind, RejectionKind::Invalid);
    assert_eq!(r.first().field, "options.command_id");
    assert_eq!(r.first().rule, "reused");
    assert!(
        r.first().message.contains(&m.command_id.to_string()),
        "{r:?}"
    );
    assert_eq!(
        h.log().last_sequence().await.unwrap(),
        before,
        "nothing appended"
    );
    // The customer can still be tagged with a new id.
    h.handle(&tag(c2, "vip"), &meta()).await.unwrap();
}

#[tokio::test]
async fn a_repeated_command_id_returns_the_original_outcome_after_the_dedupe_window() {
    let server = NatsServer::start();
    let cfg = LogConfig {
        duplicate_window: Duration::from_secs(1),
        ..LogConfig::default()
    };
    let a = handler_with(&server, cfg.clone()).await;
    let c = new_customer_id();
    let m = meta();
    let created = a.handle(&register(c), &m).await.unwrap();
    let stale = handler_with(&server, cfg.clone()).await;
    stale.handle(&tag(c, "loaded"), &meta()).await.unwrap();
    let tagged = meta();
    let first = a.handle(&tag(c, "vip"), &tagged).await.unwrap();
    // Wait until JetStream has forgotten the message ids: a probe id published after the
    // commit is taken as new again (then the commit's id, older, is forgotten too).
    let js = async_nats::jetstream::new(connect(&server.url()).await);
    let probe = async || {
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .message_id("dedupe-probe")
            .payload(Bytes::from_static(b"probe"));
        let ack = js.send_publish("crm.v1.probe.x", publish).await.unwrap();
        ack.await.unwrap().duplicate
    };
    assert!(!probe().await, "the probe's first publish");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while probe().await {
        assert!(std::time::Instant::now() < deadline, "never forgotten");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // JetStream no longer remembers the message ids; the log itself does.
    let fresh = handler_with(&server, cfg.clone()).await;
    let again_create = fresh.handle(&register(c), &m).await.unwrap();
    assert!(again_create.repeated);
    assert_eq!(again_create.position, created.position);
    let from_stale = stale.handle(&tag(c, "vip"), &tagged).await.unwrap();
    assert!(from_stale.repeated);
    assert_eq!(from_stale.position, first.position);
    assert_eq!(
        customer_messages(a.log(), c).await.len(),
        3,
        "register, loaded, vip: nothing twice"
    );
    // Registering the same customer with a new command id is a real conflict of intent.
    let dup = fresh.handle(&register(c), &meta()).await.unwrap_err();
    assert!(
        matches!(dup, HandleError::Rejected(ref r) if r.kind == RejectionKind::AlreadyExists),
        "{dup}"
    );
}

fn lead(lead_id: LeadId) -> Command {
    Command::CreateLead {
        lead_id,
        lead: LeadCaptured {
            source: "web-form".into(),
            campaign: None,
            given_name: "Grace".into(),
            family_name: "Hopper".into(),
            email: Some("grace@example.com".into()),
            phone: None,
            interest: "annual plan".into(),
        },
    }
}

#[tokio::test]
async fn convert_lead_commits_lead_and_customer_events_atomically() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let lead_id = LeadId(uuid::Uuid::now_v7());
    h.handle(&lead(lead_id), &meta()).await.unwrap();
    h.handle(
        &Command::QualifyLead {
            lead_id,
            note: "budget ok".into(),
        },
        &meta(),
    )
    .await
    .unwrap();
    let c = new_customer_id();
    let convert = Command::ConvertLead {
        lead_id,
        into: ConvertInto::NewCustomer(c),
        opportunity: Some(ConversionOpportunity {
            opportunity_id: crm_domain::OpportunityId(uuid::Uuid::now_v7()),
            name: "Annual plan".into(),
            pipeline: None,
            stage: None,
            amount: Money::new(120_000, Currency::parse("EUR").unwrap()),
        }),
    };
    let out = h.handle(&convert, &meta()).await.unwrap();
    assert_eq!(out.appended, 3);
    let customer = customer_messages(h.log(), c).await;
    let lead_subject = h.log().config().subject(AggregateRef::Lead(lead_id));
    let lead_msgs = h.log().read_subject(&lead_subject, 0).await.unwrap();
    // The customer's two events are one grouped message; the lead's conversion is the
    // third message on its subject. Together they are one atomic batch of two messages.
    assert_eq!((customer.len(), lead_msgs.len()), (1, 3));
    let mut all: Vec<_> = customer.iter().chain(lead_msgs.last()).collect();
    all.sort_by_key(|m| m.seq);
    assert_eq!(all[1].seq - all[0].seq, 1);
    assert_eq!(all[1].seq, out.position);
    let envs: Vec<_> = all
        .iter()
        .flat_map(|m| decode_message(&m.payload).unwrap())
        .collect();
    assert_eq!(envs.len(), 3);
    assert!(
        envs.iter()
            .all(|e| e.meta.command_id == envs[0].meta.command_id && e.meta.commit_size == 3)
    );
    let mut indexes: Vec<_> = envs.iter().map(|e| e.meta.commit_index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, vec![0, 1, 2]);
}

/// A two-aggregate commit whose second subject fails its sequence check stores nothing,
/// not even the first subject's message.
#[tokio::test]
async fn a_commit_that_fails_on_one_aggregate_stores_nothing_on_any() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let c = new_customer_id();
    h.handle(&register(c), &meta()).await.unwrap();
    let log = h.log();
    let before = log.last_sequence().await.unwrap();
    let lead_id = LeadId(uuid::Uuid::now_v7());
    let lead_event = DomainEvent::Lead(
        lead_id,
        crm_domain::LeadEvent::Qualified {
            note: String::new(),
        },
    );
    let customer_event = DomainEvent::Customer(c, CustomerEvent::Tagged { tag: "x".into() });
    let msgs = vec![
        message(log, &lead_event, 0, Some(0)),
        // The customer subject is at `before`, not 0: this check fails at commit.
        message(log, &customer_event, 1, Some(0)),
    ];
    let err = log.append(&msgs).await.unwrap_err();
    assert!(
        matches!(err, crm_store::AppendError::Conflict { .. }),
        "{err}"
    );
    assert_eq!(
        log.last_sequence().await.unwrap(),
        before,
        "nothing may be stored"
    );
    let lead_subject = log.config().subject(AggregateRef::Lead(lead_id));
    assert!(log.read_subject(&lead_subject, 0).await.unwrap().is_empty());
}

/// A batch whose writer dies before the commit message (here: it stops sending) stores
/// nothing, and does not block later commits.
#[tokio::test]
async fn an_uncommitted_batch_stores_nothing() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let c = new_customer_id();
    h.handle(&register(c), &meta()).await.unwrap();
    let log = h.log();
    let before = log.last_sequence().await.unwrap();
    let events: Vec<DomainEvent> = (0..3)
        .map(|i| {
            DomainEvent::Customer(
                c,
                CustomerEvent::Tagged {
                    tag: format!("t{i}"),
                },
            )
        })
        .collect();
    let msgs: Vec<OutgoingMessage> = events
        .iter()
        .enumerate()
        .map(|(i, e)| message(log, e, i, (i == 0).then_some(before)))
        .collect();
    log.append_batch_without_commit(&msgs, 2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(log.last_sequence().await.unwrap(), before);
    assert_eq!(customer_messages(log, c).await.len(), 1);
    // The customer still takes commands.
    let out = h
        .handle(
            &Command::RegisterCustomer(match register(c) {
                Command::RegisterCustomer(r) => r,
                _ => unreachable!(),
            }),
            &meta(),
        )
        .await;
    assert!(matches!(out, Err(HandleError::Rejected(_))));
    let ok = h.handle(&tag(c, "after"), &meta()).await.unwrap();
    assert_eq!(ok.appended, 1);
}

fn message(
    log: &EventLog,
    event: &DomainEvent,
    index: usize,
    expected: Option<u64>,
) -> OutgoingMessage {
    let meta = EventMeta {
        event_id: uuid::Uuid::now_v7(),
        version: 1,
        occurred_at: crm_domain::Timestamp(0),
        recorded_at: crm_domain::Timestamp(0),
        actor: crm_domain::Actor::System,
        command_id: CommandId::new_v7(),
        correlation_id: uuid::Uuid::nil(),
        causation_id: None,
        commit_index: 0,
        commit_size: 1,
        prev_hash: EventHash::GENESIS,
    };
    OutgoingMessage {
        subject: log.config().subject(event.aggregate()),
        payload: Bytes::from(encode(&meta, event).bytes),
        msg_id: format!("{}:{index}", uuid::Uuid::now_v7().as_simple()),
        expected_last_subject_seq: expected,
    }
}

#[tokio::test]
async fn restarting_nats_server_between_appends_loses_no_acknowledged_event() {
    let mut server = NatsServer::start();
    let h = handler(&server).await;
    let c = new_customer_id();
    let mut acked = vec![h.handle(&register(c), &meta()).await.unwrap().command_id];
    for i in 0..20 {
        acked.push(
            h.handle(&tag(c, &format!("a{i}")), &meta())
                .await
                .unwrap()
                .command_id,
        );
    }
    server.kill();
    // While the log is down, commands fail cleanly with Unavailable, whether the
    // aggregate is cached or has to be read.
    let down = h.handle(&tag(c, "while-down"), &meta()).await.unwrap_err();
    assert!(matches!(down, HandleError::Unavailable { .. }), "{down}");
    let cold = h
        .handle(&register(new_customer_id()), &meta())
        .await
        .unwrap_err();
    assert!(
        matches!(
            cold,
            HandleError::Unavailable {
                maybe_applied: false,
                ..
            }
        ),
        "{cold}"
    );
    server.restart();
    // The client reconnects by itself; the handler needs no restart.
    let mut ok = None;
    for _ in 0..100 {
        match h
            .handle(
                &tag(c, "b0"),
                &meta_with_id(CommandId(uuid::Uuid::from_u128(7))),
            )
            .await
        {
            Ok(o) => {
                ok = Some(o);
                break;
            }
            Err(HandleError::Unavailable { .. }) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    acked.push(ok.expect("handler recovers after the restart").command_id);
    for i in 1..10 {
        acked.push(
            h.handle(&tag(c, &format!("b{i}")), &meta())
                .await
                .unwrap()
                .command_id,
        );
    }
    server.stop();
    server.restart();
    let fresh = handler(&server).await;
    let messages = customer_messages(fresh.log(), c).await;
    let mut chain = ChainVerifier::new(AggregateRef::Customer(c));
    let mut ids = Vec::new();
    for m in &messages {
        let env = decode(&m.payload).unwrap();
        chain.push(&env).expect("hash chain intact after restarts");
        ids.push(env.meta.command_id);
    }
    for id in &acked {
        assert!(ids.contains(id), "acknowledged command {id} lost");
    }
    // "while-down" may or may not have landed; nothing else may exist.
    assert!(messages.len() == acked.len() || messages.len() == acked.len() + 1);
}

#[tokio::test]
async fn a_tampered_history_is_detected_on_load_and_refused() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let c = new_customer_id();
    let registered = h.handle(&register(c), &meta()).await.unwrap();
    // A writer that bypasses the handler appends an event whose prev_hash does not
    // chain to the registration.
    let forged = message(
        h.log(),
        &DomainEvent::Customer(
            c,
            CustomerEvent::Tagged {
                tag: "forged".into(),
            },
        ),
        0,
        Some(registered.position),
    );
    let mut forged = forged;
    let env = decode(&forged.payload).unwrap();
    let mut meta2 = env.meta.clone();
    meta2.version = 2;
    forged.payload = Bytes::from(encode(&meta2, &env.event).bytes);
    h.log().append(&[forged]).await.unwrap();
    let fresh = handler(&server).await;
    let err = fresh.handle(&tag(c, "x"), &meta()).await.unwrap_err();
    assert!(
        matches!(&err, HandleError::Store(StoreError::Corrupt { reason, .. }) if reason.contains("hash chain")),
        "{err}"
    );
}

#[tokio::test]
async fn an_expected_version_that_does_not_match_is_refused_without_writing() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let c = new_customer_id();
    h.handle(&register(c), &meta()).await.unwrap();
    let mut m = meta();
    m.expected_version = Some(5);
    let err = h.handle(&tag(c, "x"), &m).await.unwrap_err();
    assert!(
        matches!(
            err,
            HandleError::VersionMismatch {
                expected: 5,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    m.expected_version = Some(1);
    assert_eq!(h.handle(&tag(c, "x"), &m).await.unwrap().aggregates[0].1, 2);
}

#[tokio::test]
async fn loading_aggregates_creates_no_consumers() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    for _ in 0..20 {
        let c = new_customer_id();
        h.handle(&register(c), &meta()).await.unwrap();
        handler(&server)
            .await
            .handle(&tag(c, "x"), &meta())
            .await
            .unwrap();
    }
    let mut stream = h
        .log()
        .jetstream()
        .get_stream(&h.log().config().stream)
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 0);
}

#[tokio::test]
async fn an_unanswered_commit_that_landed_is_found_and_not_written_twice() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let c = new_customer_id();
    h.handle(&register(c), &meta()).await.unwrap();
    // A single-event commit and a multi-event (atomic batch) commit, each stored by the
    // server but with its ack lost on the way back.
    h.log().inject_lost_acks(1);
    let single = h.handle(&tag(c, "vip"), &meta()).await.unwrap();
    assert_eq!((single.appended, single.repeated), (1, false));
    let c2 = new_customer_id();
    h.handle(&register(c2), &meta()).await.unwrap();
    h.log().inject_lost_acks(1);
    let linked = h
        .handle(
            &Command::LinkCustomers {
                customer_id: c,
                other: c2,
                kind: crm_domain::RelationshipKind::Household,
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!((linked.appended, linked.repeated), (2, false));
    assert_eq!(h.stats().ambiguous_appends.load(Ordering::Relaxed), 2);
    // Exactly once in the log: register, vip, link.
    assert_eq!(customer_messages(h.log(), c).await.len(), 3);
    assert_eq!(customer_messages(h.log(), c2).await.len(), 2);
}

#[tokio::test]
async fn an_unanswered_commit_that_did_not_land_is_retried_and_written_once() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let c = new_customer_id();
    h.handle(&register(c), &meta()).await.unwrap();
    h.log().inject_lost_requests(1);
    let out = h.handle(&tag(c, "vip"), &meta()).await.unwrap();
    assert_eq!((out.appended, out.repeated), (1, false));
    assert_eq!(h.stats().ambiguous_appends.load(Ordering::Relaxed), 1);
    let messages = customer_messages(h.log(), c).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(out.position, messages[1].seq);
}

/// Three replicas on a 3-node cluster: commands keep working with a follower down, and
/// nothing acknowledged is lost when it comes back.
#[tokio::test]
async fn a_three_replica_log_survives_a_follower_going_down() {
    let mut cluster = crm_testkit::NatsCluster::start(3);
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(cluster.urls().as_slice())
        .await
        .unwrap();
    let cfg = LogConfig {
        replicas: 3,
        ..LogConfig::default()
    };
    let log = EventLog::open(client, cfg.clone()).await.unwrap();
    let h = crm_store::CommandHandler::new(log, crm_store::HandlerConfig::default());
    let mut stream = h.log().jetstream().get_stream(&cfg.stream).await.unwrap();
    let info = stream.info().await.unwrap().clone();
    assert_eq!(info.config.num_replicas, 3);
    let c = new_customer_id();
    h.handle(&register(c), &meta()).await.unwrap();
    for i in 0..5 {
        h.handle(&tag(c, &format!("before-{i}")), &meta())
            .await
            .unwrap();
    }
    // Take down a node that does not lead the stream.
    let leader = info
        .cluster
        .and_then(|c| c.leader)
        .expect("stream has a leader");
    let follower = (0..cluster.len())
        .find(|i| cluster.node(*i).name() != leader)
        .unwrap();
    cluster.node_mut(follower).kill();
    for i in 0..5 {
        h.handle(&tag(c, &format!("during-{i}")), &meta())
            .await
            .unwrap();
    }
    cluster.node_mut(follower).restart();
    let messages = customer_messages(h.log(), c).await;
    assert_eq!(messages.len(), 11);
    let mut chain = ChainVerifier::new(AggregateRef::Customer(c));
    for m in &messages {
        chain.push(&decode(&m.payload).unwrap()).unwrap();
    }
}

/// A command whose future is dropped mid-append (a client deadline, a disconnect) must
/// not leave a half-updated cache behind: later commands on the same aggregates work,
/// and the history stays valid.
#[tokio::test]
async fn a_cancelled_command_leaves_no_broken_cache_behind() {
    use futures::FutureExt;
    let server = NatsServer::start();
    let h = handler(&server).await;
    let (c1, c2) = (new_customer_id(), new_customer_id());
    h.handle(&register(c1), &meta()).await.unwrap();
    h.handle(&register(c2), &meta()).await.unwrap();
    let link = Command::LinkCustomers {
        customer_id: c1,
        other: c2,
        kind: crm_domain::RelationshipKind::Household,
    };
    // Poll once (it starts appending) and drop it.
    assert!(h.handle(&link, &meta()).now_or_never().is_none());
    // The customers still take commands; re-registering is still refused.
    h.handle(&tag(c1, "after"), &meta()).await.unwrap();
    let again = h.handle(&register(c1), &meta()).await.unwrap_err();
    assert!(matches!(again, HandleError::Rejected(_)), "{again}");
    // The log is a valid history that a fresh reader accepts.
    let fresh = handler(&server).await;
    fresh.handle(&tag(c2, "after"), &meta()).await.unwrap();
    for c in [c1, c2] {
        let mut chain = ChainVerifier::new(AggregateRef::Customer(c));
        for m in customer_messages(fresh.log(), c).await {
            chain.push(&decode(&m.payload).unwrap()).unwrap();
        }
    }
}

/// A command that looks like a no-op on a stale cache must be decided on the log's
/// state: otherwise a concurrent change is silently lost.
#[tokio::test]
async fn a_no_op_on_a_stale_cache_is_decided_again_on_the_log() {
    let server = NatsServer::start();
    let a = handler(&server).await;
    let b = handler(&server).await;
    let c = new_customer_id();
    a.handle(&register(c), &meta()).await.unwrap();
    a.handle(&tag(c, "vip"), &meta()).await.unwrap();
    // B removes the tag; A's cache still has it.
    b.handle(
        &Command::UntagCustomer {
            customer_id: c,
            tag: "vip".into(),
        },
        &meta(),
    )
    .await
    .unwrap();
    let out = a.handle(&tag(c, "vip"), &meta()).await.unwrap();
    assert_eq!(out.appended, 1, "the tag must be added again");
    let last = customer_messages(a.log(), c).await.pop().unwrap();
    assert!(matches!(
        decode(&last.payload).unwrap().event,
        DomainEvent::Customer(_, CustomerEvent::Tagged { .. })
    ));
}

#[tokio::test]
async fn an_expected_version_is_checked_against_the_log_not_a_stale_cache() {
    let server = NatsServer::start();
    let a = handler(&server).await;
    let b = handler(&server).await;
    let c = new_customer_id();
    a.handle(&register(c), &meta()).await.unwrap();
    b.handle(&tag(c, "x"), &meta()).await.unwrap();
    let mut m = meta();
    m.expected_version = Some(2);
    let out = a.handle(&tag(c, "y"), &m).await.unwrap();
    assert_eq!(out.aggregates[0].1, 3);
}

/// With a cache of one aggregate, commands on many aggregates at once still work and
/// never evict a slot a command holds.
#[tokio::test]
async fn a_tiny_cache_still_serves_concurrent_commands_correctly() {
    let server = NatsServer::start();
    let h = crm_store::CommandHandler::new(
        open_log(&server, LogConfig::default()).await,
        crm_store::HandlerConfig {
            cache_capacity: std::num::NonZeroUsize::new(1).unwrap(),
            ..crm_store::HandlerConfig::default()
        },
    );
    let ids: Vec<_> = (0..8).map(|_| new_customer_id()).collect();
    for c in &ids {
        h.handle(&register(*c), &meta()).await.unwrap();
    }
    let mut tasks = Vec::new();
    for (i, c) in ids.iter().enumerate() {
        for j in 0..5 {
            let h = h.clone();
            let c = *c;
            tasks.push(tokio::spawn(async move {
                h.handle(&tag(c, &format!("t{i}-{j}")), &meta()).await
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for c in &ids {
        assert_eq!(customer_messages(h.log(), *c).await.len(), 6);
    }
}

/// A command's several events on one aggregate are stored as one message (a group), so
/// they need no JetStream batch; the group is a normal part of the hash chain, and a
/// handler with a cold cache loads it, continues it, and recognises the command again.
#[tokio::test]
async fn several_events_on_one_aggregate_are_one_message_that_loads_and_chains() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let c = new_customer_id();
    let Command::RegisterCustomer(mut r) = register(c) else {
        unreachable!()
    };
    r.consents = vec![
        (crm_domain::ConsentChannel::Email, true),
        (crm_domain::ConsentChannel::Sms, false),
    ];
    r.consent_source = "signup-form".into();
    r.tags = vec!["vip".into()];
    let command = Command::RegisterCustomer(r);
    let m = meta();
    let out = h.handle(&command, &m).await.unwrap();
    assert_eq!(out.appended, 4);
    assert_eq!(out.aggregates, vec![(AggregateRef::Customer(c), 4)]);
    let stored = customer_messages(h.log(), c).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].seq, out.position);
    let events = decode_message(&stored[0].payload).unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.meta.version, e.meta.commit_index, e.meta.commit_size))
            .collect::<Vec<_>>(),
        vec![(1, 0, 4), (2, 1, 4), (3, 2, 4), (4, 3, 4)]
    );

    // A cold handler: loads the group, then appends after it with the right version and
    // previous hash.
    let cold = handler(&server).await;
    let again = cold.handle(&command, &m).await.unwrap();
    assert!(again.repeated);
    assert_eq!(again.position, out.position);
    assert_eq!(again.aggregates, out.aggregates);
    let tagged = cold.handle(&tag(c, "gold"), &meta()).await.unwrap();
    assert_eq!(tagged.aggregates, vec![(AggregateRef::Customer(c), 5)]);
    let mut chain = ChainVerifier::new(AggregateRef::Customer(c));
    for m in customer_messages(h.log(), c).await {
        for e in decode_message(&m.payload).unwrap() {
            chain.push(&e).unwrap();
        }
    }
    assert_eq!(chain.len(), 5);
    // The warm handler's cache continues the chain too.
    let warm = h.handle(&tag(c, "silver"), &meta()).await.unwrap();
    assert_eq!(warm.aggregates, vec![(AggregateRef::Customer(c), 6)]);
}

/// A log with the given request timeout holding one customer of two messages: the
/// server, the handler, the customer's subject and its messages as read.
async fn a_customer_of_two_messages(
    request_timeout: Duration,
) -> (
    NatsServer,
    crm_store::CommandHandler,
    String,
    Vec<crm_store::StoredMessage>,
) {
    let server = NatsServer::start();
    let log = open_log(
        &server,
        LogConfig {
            request_timeout,
            ..LogConfig::default()
        },
    )
    .await;
    let h = crm_store::CommandHandler::new(log, crm_store::HandlerConfig::default());
    let c = new_customer_id();
    h.handle(&register(c), &meta()).await.unwrap();
    h.handle(&tag(c, "vip"), &meta()).await.unwrap();
    let subject = h.log().config().subject(AggregateRef::Customer(c));
    let all = h.log().read_subject(&subject, 0).await.unwrap();
    assert_eq!(all.len(), 2);
    (server, h, subject, all)
}

/// A lost request costs the request timeout; 1.5 s is long enough that an answered one
/// is never taken for lost on a busy machine (the counts below are then exact).
#[tokio::test]
async fn an_unanswered_read_is_sent_again_and_a_read_fails_only_after_three() {
    let (_server, h, subject, all) = a_customer_of_two_messages(Duration::from_millis(1500)).await;
    assert_eq!(h.log().read_retries(), 0);
    // Two lost requests: the third attempt answers, with exactly the stored messages.
    h.log().inject_lost_reads(2);
    let again = h.log().read_subject(&subject, 0).await.unwrap();
    assert_eq!(
        again.iter().map(|m| m.seq).collect::<Vec<_>>(),
        all.iter().map(|m| m.seq).collect::<Vec<_>>()
    );
    assert_eq!(h.log().read_retries(), 2);
    // Three lost requests: the read fails as unavailable, naming the attempts.
    h.log().inject_lost_reads(3);
    let err = h.log().read_subject(&subject, 0).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("3 attempts"), "{err}");
    assert_eq!(h.log().read_retries(), 4);
    // The next read is answered at once.
    assert_eq!(h.log().read_subject(&subject, 0).await.unwrap().len(), 2);
}

/// "No responders" (a clustered stream electing its leader, a new R3 stream whose
/// replicas do not serve yet) is answered at once by the server: the read pauses and
/// sends again, and fails as unavailable only when that lasts the request timeout.
#[tokio::test]
async fn a_read_that_meets_no_responders_is_sent_again_until_the_request_timeout() {
    let (_server, h, subject, all) = a_customer_of_two_messages(Duration::from_millis(600)).await;
    let retries = h.log().read_retries();
    // Three unserved requests (paused 25 + 50 + 100 ms): the fourth answers.
    h.log().inject_unserved_reads(3);
    let again = h.log().read_subject(&subject, 0).await.unwrap();
    assert_eq!(
        again.iter().map(|m| m.seq).collect::<Vec<_>>(),
        all.iter().map(|m| m.seq).collect::<Vec<_>>()
    );
    assert_eq!(h.log().read_retries(), retries + 3);
    // Unserved for longer than the request timeout: unavailable, saying why, and not
    // before the request timeout has passed (how many tries fit in it depends on the
    // machine's speed; at least one more does).
    h.log().inject_unserved_reads(1000);
    let before = h.log().read_retries();
    let started = std::time::Instant::now();
    let err = h.log().read_subject(&subject, 0).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("no responders"), "{err}");
    // It sent again after pauses of 25, 50, 100, ... ms, and gave up only when the next
    // pause (doubling up to 400 ms) would have taken it past the 600 ms request timeout.
    let retries = h.log().read_retries() - before;
    assert!(retries >= 1);
    let next_pause = Duration::from_millis(25 << retries.min(10)).min(Duration::from_millis(400));
    assert!(
        elapsed + next_pause > Duration::from_millis(600),
        "gave up after {elapsed:?} and {retries} retries"
    );
    h.log().inject_unserved_reads(0);
    assert_eq!(h.log().read_subject(&subject, 0).await.unwrap().len(), 2);
}

fn interaction(customer_id: crm_domain::CustomerId) -> Command {
    interaction_with(customer_id, CommandId(uuid::Uuid::now_v7()))
}

/// An interaction whose id is derived from the command id: the same command again is
/// the same interaction.
fn interaction_with(customer_id: crm_domain::CustomerId, command: CommandId) -> Command {
    Command::LogInteraction(crm_domain::LogInteraction {
        customer_id,
        interaction_id: crm_domain::InteractionId(command.0),
        channel: crm_domain::Channel::Email,
        direction: crm_domain::Direction::Inbound,
        agent: None,
        subject: "hello".into(),
        summary: String::new(),
        sentiment: None,
        ticket: None,
        opportunity: None,
        campaign: None,
        call: None,
    })
}

/// The durable default, nats-server SIGKILLed while sixteen writers are appending (not
/// between two appends): every command acknowledged before the kill is in the log after
/// the restart, exactly once, with every chain intact; the writers see only
/// `Unavailable` meanwhile and go on once the server is back.
#[tokio::test]
async fn killing_nats_server_during_appends_loses_no_acknowledged_command() {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    let mut server = NatsServer::start();
    let h = handler(&server).await;
    let customers: Vec<_> = (0..16).map(|_| new_customer_id()).collect();
    for c in &customers {
        h.handle(&register(*c), &meta()).await.unwrap();
    }
    let acked: Arc<Mutex<Vec<(crm_domain::CustomerId, CommandId)>>> = Arc::default();
    let other_errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = customers
        .iter()
        .map(|&c| {
            let (h, acked, other, stop) = (
                h.clone(),
                Arc::clone(&acked),
                Arc::clone(&other_errors),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match h.handle(&interaction(c), &meta()).await {
                        Ok(o) => acked.lock().unwrap().push((c, o.command_id)),
                        Err(HandleError::Unavailable { .. }) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => other.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    let wait_for = |n: usize| {
        let acked = Arc::clone(&acked);
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while acked.lock().unwrap().len() < n {
                assert!(std::time::Instant::now() < deadline, "writers stalled");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_for(300).await;
    server.kill();
    let before_kill = acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    wait_for(before_kill + 100).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        other_errors.lock().unwrap().is_empty(),
        "{:?}",
        other_errors.lock().unwrap()
    );
    let acked = acked.lock().unwrap().clone();
    for c in &customers {
        let messages = customer_messages(h.log(), *c).await;
        let mut chain = ChainVerifier::new(AggregateRef::Customer(*c));
        let mut ids = BTreeSet::new();
        for m in &messages {
            for env in decode_message(&m.payload).unwrap() {
                chain.push(&env).expect("chain intact after the kill");
                assert!(ids.insert(env.meta.command_id), "a command twice");
            }
        }
        for (_, id) in acked.iter().filter(|(a, _)| a == c) {
            assert!(ids.contains(id), "acknowledged command {id} lost");
        }
    }
    eprintln!(
        "{} acknowledged ({before_kill} before the kill), none lost",
        acked.len()
    );
}

/// A three-node cluster, the stream's leader SIGKILLed under steady load from eight
/// writers: they see only `Unavailable` (retryable) until a new leader is elected, then
/// go on; no acknowledged command is lost and none is written twice. Prints how long no
/// command was acknowledged (the unavailability window).
#[tokio::test]
async fn killing_the_stream_leader_under_load_loses_nothing_and_writes_resume() {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    let mut cluster = crm_testkit::NatsCluster::start(3);
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(cluster.urls().as_slice())
        .await
        .unwrap();
    let cfg = LogConfig {
        replicas: 3,
        ..LogConfig::default()
    };
    let log = EventLog::open(client, cfg.clone()).await.unwrap();
    let h = crm_store::CommandHandler::new(log, crm_store::HandlerConfig::default());
    let customers: Vec<_> = (0..8).map(|_| new_customer_id()).collect();
    for c in &customers {
        h.handle(&register(*c), &meta()).await.unwrap();
    }
    let acked: Arc<Mutex<Vec<(crm_domain::CustomerId, CommandId, Instant)>>> = Arc::default();
    let other_errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = customers
        .iter()
        .map(|&c| {
            let (h, acked, other, stop) = (
                h.clone(),
                Arc::clone(&acked),
                Arc::clone(&other_errors),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // The same command id until it is answered: a retry of an
                    // unanswered commit must not write it twice.
                    let m = meta();
                    loop {
                        match h.handle(&interaction_with(c, m.command_id), &m).await {
                            Ok(o) => {
                                acked
                                    .lock()
                                    .unwrap()
                                    .push((c, o.command_id, Instant::now()));
                                break;
                            }
                            Err(HandleError::Unavailable { .. }) => {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(e) => {
                                other.lock().unwrap().push(e.to_string());
                                break;
                            }
                        }
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    let count = || acked.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count() < 200 {
        assert!(Instant::now() < deadline, "writers stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut stream = h.log().jetstream().get_stream(&cfg.stream).await.unwrap();
    let leader = stream
        .info()
        .await
        .unwrap()
        .cluster
        .clone()
        .and_then(|c| c.leader)
        .expect("the stream has a leader");
    let node = (0..cluster.len())
        .find(|i| cluster.node(*i).name() == leader)
        .unwrap();
    let killed_at = Instant::now();
    cluster.node_mut(node).kill();
    let before = count();
    while count() < before + 200 {
        assert!(
            Instant::now() < killed_at + Duration::from_secs(60),
            "writes did not resume after the leader's death"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        other_errors.lock().unwrap().is_empty(),
        "{:?}",
        other_errors.lock().unwrap()
    );
    let acked = acked.lock().unwrap().clone();
    // The window: from the kill to the first acknowledgement after it, and the longest
    // gap between two acknowledgements around it.
    let first_after = acked
        .iter()
        .map(|(_, _, at)| *at)
        .filter(|at| *at > killed_at)
        .min()
        .unwrap();
    let mut times: Vec<_> = acked.iter().map(|(_, _, at)| *at).collect();
    times.sort();
    let longest_gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    eprintln!(
        "leader {leader} killed: first acknowledgement {:?} later; longest gap between acknowledgements {longest_gap:?}; {} acknowledged",
        first_after - killed_at,
        acked.len()
    );
    for c in &customers {
        let messages = customer_messages(h.log(), *c).await;
        let mut chain = ChainVerifier::new(AggregateRef::Customer(*c));
        let mut ids = BTreeSet::new();
        for m in &messages {
            for env in decode_message(&m.payload).unwrap() {
                chain
                    .push(&env)
                    .expect("chain intact after the leader's death");
                assert!(ids.insert(env.meta.command_id), "a command written twice");
            }
        }
        for (_, id, _) in acked.iter().filter(|(a, _, _)| a == c) {
            assert!(ids.contains(id), "acknowledged command {id} lost");
        }
    }
    cluster.node_mut(node).restart();
}
