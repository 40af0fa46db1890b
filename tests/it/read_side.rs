//! The projection runtime and the 360 model against a real nats-server and real sled
//! files: poison events, determinism, versioned rebuilds.

use std::sync::Arc;
use std::time::Duration;

use crm_customer360::{Customer360, CustomerRecord, Queries};
use crm_domain::{AggregateRef, Command, CustomerId};
use crm_events::SubjectScheme;
use crm_projection::{CacheBudget, ProjectionStore, ReadModel, RunnerConfig, WriteBack};
use crm_store::{CommandHandler, LogConfig};
use crm_testkit::NatsServer;

use crate::support::{connect, handler, meta, new_customer_id, register};

/// Writes `customers` customers with a few events each through the real handler;
/// returns their ids.
pub(crate) async fn write_customers(h: &CommandHandler, customers: usize) -> Vec<CustomerId> {
    let mut ids = Vec::new();
    for i in 0..customers {
        let id = new_customer_id();
        h.handle(&register(id), &meta()).await.unwrap();
        for tag in ["a", "b"].iter().take(1 + i % 2) {
            h.handle(
                &Command::TagCustomer {
                    customer_id: id,
                    tag: (*tag).into(),
                },
                &meta(),
            )
            .await
            .unwrap();
        }
        ids.push(id);
    }
    ids
}

pub(crate) struct Projector {
    pub(crate) store: Arc<ProjectionStore<Customer360>>,
    db: sled::Db,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), crm_projection::ProjectionError>>,
}

impl Projector {
    pub(crate) async fn start(
        server: &NatsServer,
        dir: &std::path::Path,
        fold: Customer360,
    ) -> Self {
        Self::start_with(server, dir, fold, RunnerConfig::default()).await
    }

    pub(crate) async fn start_with(
        server: &NatsServer,
        dir: &std::path::Path,
        fold: Customer360,
        runner: RunnerConfig,
    ) -> Self {
        let db = open_db(dir).await;
        let store = Arc::new(ProjectionStore::open(&db, fold, SubjectScheme::default()).unwrap());
        let js = async_nats::jetstream::new(connect(&server.url()).await);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(crm_projection::run(
            Arc::clone(&store),
            js,
            RunnerConfig {
                batch_max: 64,
                ..runner
            },
            stopped,
        ));
        Self {
            store,
            db,
            stop,
            task,
        }
    }

    pub(crate) async fn caught_up(&self, seq: u64) -> ReadModel {
        let reader = self.store.reader();
        assert!(
            reader.wait_for(seq, Duration::from_secs(20)).await,
            "projector reached {} of {seq}",
            reader.checkpoint()
        );
        reader
    }

    pub(crate) async fn stop(self) -> sled::Db {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
        self.db
    }
}

/// Opens a sled database, waiting (up to 10 s) while the previous handle on the same
/// directory in this process releases its file lock: sled's background threads let go of
/// it shortly after the last `Db` is dropped, not at once (seen failing a reopen on a fresh
/// clone's CI run).
pub(crate) async fn open_db(dir: &std::path::Path) -> sled::Db {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot open {}: {e}", dir.display()),
        }
    }
}

pub(crate) fn contents(model: &ReadModel) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .contents()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

pub(crate) async fn last_seq(server: &NatsServer) -> u64 {
    let js = async_nats::jetstream::new(connect(&server.url()).await);
    let mut stream = js.get_stream("CRM_EVENTS").await.unwrap();
    stream.info().await.unwrap().state.last_sequence
}

#[tokio::test]
async fn poison_events_are_dead_lettered_and_the_projector_goes_on() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let ids = write_customers(&h, 3).await;
    let cfg = LogConfig::default();
    let client = connect(&server.url()).await;
    let js = async_nats::jetstream::new(client);
    // Garbage on a customer's subject (a foreign publisher, no expected sequence), and a
    // well-formed event of customer 0 published on customer 1's subject.
    let victim = ids[1];
    let garbage = js
        .publish(
            cfg.subject(AggregateRef::Customer(victim)),
            bytes::Bytes::from_static(b"not an event"),
        )
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let first_of_0 = h
        .log()
        .read_subject(&cfg.subject(AggregateRef::Customer(ids[0])), 0)
        .await
        .unwrap()
        .remove(0);
    let misplaced = js
        .publish(
            cfg.subject(AggregateRef::Customer(ids[2])),
            first_of_0.payload.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    // Events after the poison: a new customer registers.
    let later = new_customer_id();
    let after = h.handle(&register(later), &meta()).await.unwrap().position;

    let dir = tempfile::tempdir().unwrap();
    let p = Projector::start(&server, dir.path(), Customer360::default()).await;
    let model = p.caught_up(after).await;
    let letters: Vec<_> = model.dead_letters().map(Result::unwrap).collect();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].seq, garbage);
    assert!(
        letters[0].reason.contains("does not decode"),
        "{}",
        letters[0].reason
    );
    assert_eq!(
        letters[0].subject,
        cfg.subject(AggregateRef::Customer(victim))
    );
    assert_eq!(letters[1].seq, misplaced);
    assert_eq!(
        letters[1].event_type.as_deref(),
        Some("customer.registered")
    );
    assert_eq!(
        p.store
            .stats()
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    let queries = Queries::new(model.clone());
    let flagged: CustomerRecord = queries.customer(victim.0.into_bytes()).unwrap().unwrap();
    assert_eq!(flagged.dead_letters, vec![garbage], "the victim is flagged");
    assert!(flagged.registered, "what was applied stays");
    let untouched = queries.customer(ids[0].0.into_bytes()).unwrap().unwrap();
    assert!(untouched.dead_letters.is_empty());
    let later = queries.customer(later.0.into_bytes()).unwrap();
    assert!(later.is_some(), "events after the poison were applied");
    p.stop().await;
}

#[tokio::test]
async fn two_rebuilds_are_byte_identical_and_a_new_version_rebuilds() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    write_customers(&h, 40).await;
    let end = last_seq(&server).await;

    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let pa = Projector::start(&server, a.path(), Customer360::default()).await;
    let pb = Projector::start(&server, b.path(), Customer360::default()).await;
    let (ma, mb) = (pa.caught_up(end).await, pb.caught_up(end).await);
    let (ca, cb) = (contents(&ma), contents(&mb));
    assert!(
        ca.len() > 40 * 3,
        "customers, facts, timelines, indexes: {}",
        ca.len()
    );
    assert!(ca == cb, "two builds of the same stream differ");
    let db = pa.stop().await;
    pb.stop().await;

    // The same code reopens its data and goes on from the checkpoint.
    let same =
        ProjectionStore::open(&db, Customer360::default(), SubjectScheme::default()).unwrap();
    assert_eq!(same.checkpoint(), end);
    assert_eq!(
        same.stats()
            .rebuilds
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    drop(same);
    // Another configuration (here the reporting currency) clears it for a rebuild.
    let other = Customer360 {
        reporting_currency: "USD".into(),
    };
    let store = ProjectionStore::open(&db, other, SubjectScheme::default()).unwrap();
    assert_eq!(store.checkpoint(), 0);
    assert_eq!(
        store
            .stats()
            .rebuilds
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        contents(&store.reader()).len(),
        1,
        "only the version metadata is left"
    );
    // Every handle on the tree keeps the database (and its file lock) open.
    drop((store, db, ma, mb));
    let again = Projector::start(
        &server,
        a.path(),
        Customer360 {
            reporting_currency: "USD".into(),
        },
    )
    .await;
    let rebuilt = again.caught_up(end).await;
    assert_eq!(contents(&rebuilt).len(), ca.len());
    again.stop().await;
}

#[tokio::test]
async fn the_tree_is_the_same_whatever_the_cache_size_and_write_back_cadence() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let ids = write_customers(&h, 30).await;
    // Long timelines (several chunks) on a few customers, interleaved with the others.
    for round in 0..40 {
        for id in &ids[..3] {
            // Tag, then untag the same tag: every command changes something.
            let tag = format!("t{}", round / 2);
            let cmd = if round % 2 == 0 {
                Command::TagCustomer {
                    customer_id: *id,
                    tag,
                }
            } else {
                Command::UntagCustomer {
                    customer_id: *id,
                    tag,
                }
            };
            h.handle(&cmd, &meta()).await.unwrap();
        }
    }
    let end = last_seq(&server).await;
    let tiny = WriteBack {
        cache: CacheBudget::new(4 << 10),
        flush_events: 7,
        ..WriteBack::default()
    };
    let rare = WriteBack {
        cache: CacheBudget::new(64 << 20),
        flush_events: u64::MAX,
        flush_bytes: usize::MAX,
        flush_interval: Duration::from_secs(3600),
    };
    let mut builds = Vec::new();
    for wb in [tiny, rare, WriteBack::default()] {
        let dir = tempfile::tempdir().unwrap();
        let runner = RunnerConfig {
            write_back: wb,
            ..RunnerConfig::default()
        };
        let p = Projector::start_with(&server, dir.path(), Customer360::default(), runner).await;
        let model = p.caught_up(end).await;
        builds.push((
            contents(&model),
            p.store
                .stats()
                .flushes
                .load(std::sync::atomic::Ordering::Relaxed),
        ));
        drop(model);
        p.stop().await;
    }
    let (tiny, rare) = (builds[0].1, builds[1].1);
    assert!(
        tiny > rare,
        "the tiny cache wrote back more often ({tiny} flushes) than the rare one ({rare})"
    );
    assert!(builds[0].0.len() > 30 * 3);
    assert!(
        builds[0].0 == builds[1].0,
        "tiny cache and rare write-backs differ"
    );
    assert!(
        builds[0].0 == builds[2].0,
        "tiny cache and the default differ"
    );
    // The long timelines are whole and in order.
    {
        let dir = tempfile::tempdir().unwrap();
        let p = Projector::start(&server, dir.path(), Customer360::default()).await;
        let m = p.caught_up(end).await;
        let page = Queries::new(m.clone())
            .timeline(
                ids[0].0.into_bytes(),
                &crm_customer360::TimelineFilter::default(),
                None,
                1000,
            )
            .unwrap();
        assert_eq!(
            page.entries.len(),
            1 + 1 + 40,
            "registered, tagged, 40 tag changes"
        );
        assert!(
            page.entries
                .windows(2)
                .all(|w| (w[0].occurred_at, w[0].seq) <= (w[1].occurred_at, w[1].seq))
        );
        // Pages of 5 walk the chunks in timeline order, both ways.
        for newest_first in [false, true] {
            let filter = crm_customer360::TimelineFilter {
                newest_first,
                ..Default::default()
            };
            let (mut walked, mut cursor) = (Vec::new(), None);
            loop {
                let p = Queries::new(m.clone())
                    .timeline(ids[0].0.into_bytes(), &filter, cursor.as_deref(), 5)
                    .unwrap();
                walked.extend(p.entries);
                cursor = p.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
            let mut want = page.entries.clone();
            if newest_first {
                want.reverse();
            }
            assert!(walked == want, "paging newest_first={newest_first}");
        }
        // A timeline longer than the query budget is refused, not read.
        let mut budget = Queries::new(m.clone());
        budget.max_timeline = 41;
        let refused = budget
            .timeline(
                ids[0].0.into_bytes(),
                &crm_customer360::TimelineFilter::default(),
                None,
                5,
            )
            .unwrap_err();
        assert!(
            matches!(
                refused,
                crm_customer360::QueryError::TimelineTooLong {
                    entries: 42,
                    limit: 41
                }
            ),
            "{refused}"
        );
        budget.max_timeline = 42;
        assert!(
            budget
                .timeline(
                    ids[0].0.into_bytes(),
                    &crm_customer360::TimelineFilter::default(),
                    None,
                    5
                )
                .is_ok()
        );
        drop((m, budget));
        p.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_that_share_a_cache_budget_keep_within_it_and_write_the_same_tree() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let ids = write_customers(&h, 40).await;
    for (round, id) in ids.iter().enumerate() {
        h.handle(
            &Command::TagCustomer {
                customer_id: *id,
                tag: format!("t{}", round % 5),
            },
            &meta(),
        )
        .await
        .unwrap();
    }
    let end = last_seq(&server).await;
    // Two builds given clones of one write-back share its budget (as a live build and
    // its blue/green successor do in the service); a third has a cache of its own.
    let shared = WriteBack {
        cache: CacheBudget::new(16 << 10),
        flush_events: 5,
        ..WriteBack::default()
    };
    let budget = Arc::clone(&shared.cache);
    let start = |wb: WriteBack, dir: std::path::PathBuf| {
        let server = &server;
        async move {
            let runner = RunnerConfig {
                write_back: wb,
                ..RunnerConfig::default()
            };
            Projector::start_with(server, &dir, Customer360::default(), runner).await
        }
    };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(shared.clone(), dirs[0].path().to_owned()).await;
    let b = start(shared, dirs[1].path().to_owned()).await;
    let alone = start(WriteBack::default(), dirs[2].path().to_owned()).await;
    let (ma, mb, mc) = (
        a.caught_up(end).await,
        b.caught_up(end).await,
        alone.caught_up(end).await,
    );
    let held = |p: &Projector| {
        p.store
            .stats()
            .cache_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // Each cache is counted after its last write-back; together they stay within the
    // budget plus one equal share (an idle build gives back its excess only at its next
    // write-back), while the build alone kept far more.
    let (ha, hb) = (held(&a), held(&b));
    assert_eq!(u64::try_from(budget.used()).unwrap(), ha + hb);
    assert!(
        budget.used() <= budget.bytes() + budget.bytes() / 2,
        "shared caches hold {} of {} bytes ({ha} + {hb})",
        budget.used(),
        budget.bytes()
    );
    assert!(
        held(&alone) > u64::try_from(budget.bytes()).unwrap(),
        "the build alone held {} bytes",
        held(&alone)
    );
    assert!(
        contents(&ma) == contents(&mc),
        "a shared budget changed the tree"
    );
    assert!(
        contents(&mb) == contents(&mc),
        "a shared budget changed the tree"
    );
    drop((ma, mb, mc));
    a.stop().await;
    b.stop().await;
    alone.stop().await;
    // A build that is gone gives its part back.
    assert_eq!(budget.used(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_stream_is_never_taken_for_one_behind_the_checkpoint() {
    // The watchdog compares the stream's last sequence with the checkpoint. Read in the
    // wrong order, a message projected between the two reads looks like a stream cut
    // back (it once made a service rebuild its model under load). The window is widest
    // when the runtime is slow to resume the watchdog: a task here keeps a worker busy.
    let hog = tokio::spawn(async {
        loop {
            std::thread::sleep(Duration::from_millis(3));
            tokio::task::yield_now().await;
        }
    });
    let server = NatsServer::start();
    let h = handler(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let p = Projector::start_with(
        &server,
        dir.path(),
        Customer360::default(),
        RunnerConfig {
            head_interval: Duration::from_millis(1),
            ..RunnerConfig::default()
        },
    )
    .await;
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { write_customers(&h, 150).await })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let end = last_seq(&server).await;
    let reader = p.store.reader();
    while reader.checkpoint() < end {
        if p.task.is_finished() {
            panic!("the projector stopped under load: {:?}", p.task.await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hog.abort();
    assert_eq!(
        p.store
            .stats()
            .consumer_opens
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    p.stop().await;
}

/// Polls `cond` for up to 20 s.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn lag_is_the_distance_from_the_checkpoint_to_the_stream_head() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    write_customers(&h, 4).await;
    let head = last_seq(&server).await;
    assert!(head >= 4, "{head}");

    // A store nobody feeds: its lag is the whole stream, seen from the stream's state.
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path().join("idle")).unwrap();
    let idle =
        ProjectionStore::open(&db, Customer360::default(), SubjectScheme::default()).unwrap();
    let stats = Arc::clone(idle.stats());
    assert_eq!(stats.lag(), 0, "nothing known about the stream yet");
    let js = async_nats::jetstream::new(connect(&server.url()).await);
    let tracker = tokio::spawn(crm_projection::track_stream_head(
        js,
        "CRM_EVENTS".into(),
        Arc::clone(&stats),
        Duration::from_millis(50),
    ));
    eventually("the idle store's lag to show the stream", || {
        stats.lag() == head
    })
    .await;
    // More events: the stalled store's lag grows with them.
    write_customers(&h, 1).await;
    let head2 = last_seq(&server).await;
    assert!(head2 > head);
    eventually("the lag to grow", || stats.lag() == head2).await;
    tracker.abort();

    // A running projector catches up: lag 0, head and checkpoint equal the stream's end.
    let p = Projector::start(&server, &dir.path().join("live"), Customer360::default()).await;
    p.caught_up(head2).await;
    let live = Arc::clone(p.store.stats());
    eventually("the live lag to reach 0", || live.lag() == 0).await;
    assert_eq!(
        live.checkpoint.load(std::sync::atomic::Ordering::Relaxed),
        head2
    );
    assert_eq!(
        live.stream_head.load(std::sync::atomic::Ordering::Relaxed),
        head2
    );
    p.stop().await;
}

/// A command's several events on one customer are one stored message: the projector
/// applies all of them (each with its own timeline entry), and a group one of whose events
/// the fold refuses is dead-lettered whole (a commit is never half applied).
#[tokio::test]
async fn a_grouped_commit_projects_every_event_and_a_refused_group_is_dead_lettered_whole() {
    use crm_domain::{ConsentChannel, CustomerEvent, DomainEvent, TicketId};
    use crm_events::{EventMeta, decode_message, encode, encode_message};

    let server = NatsServer::start();
    let h = handler(&server).await;
    let cfg = LogConfig::default();
    let grouped = new_customer_id();
    let Command::RegisterCustomer(mut r) = register(grouped) else {
        unreachable!()
    };
    r.consents = vec![(ConsentChannel::Email, true)];
    r.consent_source = "signup-form".into();
    r.tags = vec!["vip".into(), "gold".into()];
    let out = h
        .handle(&Command::RegisterCustomer(r), &meta())
        .await
        .unwrap();
    assert_eq!(out.appended, 4);
    let stored = h
        .log()
        .read_subject(&cfg.subject(AggregateRef::Customer(grouped)), 0)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "four events, one message");

    // A forged group on another customer: a valid tag, then a ticket it never opened.
    let victim = new_customer_id();
    h.handle(&register(victim), &meta()).await.unwrap();
    let subject = cfg.subject(AggregateRef::Customer(victim));
    let last = h.log().read_subject(&subject, 0).await.unwrap().remove(0);
    let head = decode_message(&last.payload).unwrap().remove(0);
    let command = crm_domain::CommandId::new_v7();
    let mut prev = head.hash;
    let encoded: Vec<_> = [
        CustomerEvent::Tagged {
            tag: "forged".into(),
        },
        CustomerEvent::TicketAssigned {
            ticket_id: TicketId(uuid::Uuid::now_v7()),
            agent: "mallory".into(),
            rule: None,
        },
    ]
    .into_iter()
    .enumerate()
    .map(|(i, e)| {
        let m = EventMeta {
            event_id: uuid::Uuid::now_v7(),
            version: 2 + i as u64,
            command_id: command,
            commit_index: u16::try_from(i).unwrap(),
            commit_size: 2,
            prev_hash: prev,
            ..head.meta.clone()
        };
        let enc = encode(&m, &DomainEvent::Customer(victim, e));
        prev = enc.hash;
        enc
    })
    .collect();
    let js = async_nats::jetstream::new(connect(&server.url()).await);
    let poison = js
        .publish(subject.clone(), encode_message(&encoded).into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let after = h
        .handle(&register(new_customer_id()), &meta())
        .await
        .unwrap()
        .position;

    let dir = tempfile::tempdir().unwrap();
    let p = Projector::start(&server, dir.path(), Customer360::default()).await;
    let model = p.caught_up(after).await;
    let queries = Queries::new(model.clone());

    let record: CustomerRecord = queries.customer(grouped.0.into_bytes()).unwrap().unwrap();
    assert_eq!(record.version, 4);
    assert_eq!(record.last_seq, out.position);
    assert!(record.consent.contains_key("email"), "{:?}", record.consent);
    assert_eq!(
        record.tags.iter().map(String::as_str).collect::<Vec<_>>(),
        vec!["gold", "vip"]
    );
    let timeline = queries
        .timeline(
            grouped.0.into_bytes(),
            &crm_customer360::TimelineFilter::default(),
            None,
            100,
        )
        .unwrap();
    assert_eq!(
        timeline
            .entries
            .iter()
            .map(|e| (e.seq, e.index, e.version))
            .collect::<Vec<_>>(),
        (0..4u16)
            .map(|i| (out.position, i, u64::from(i) + 1))
            .collect::<Vec<_>>(),
        "one timeline entry per event of the group"
    );
    // Paging through the group one entry at a time visits each event once.
    let mut cursor = None;
    let mut paged = Vec::new();
    loop {
        let page = queries
            .timeline(
                grouped.0.into_bytes(),
                &crm_customer360::TimelineFilter::default(),
                cursor.as_deref(),
                1,
            )
            .unwrap();
        paged.extend(page.entries.iter().map(|e| e.index));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, vec![0, 1, 2, 3]);

    let letters: Vec<_> = model.dead_letters().map(Result::unwrap).collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].seq, poison);
    assert!(
        letters[0].reason.contains("event 1 of the 2-event group"),
        "{}",
        letters[0].reason
    );
    let victim: CustomerRecord = queries.customer(victim.0.into_bytes()).unwrap().unwrap();
    assert!(
        !victim.tags.contains("forged"),
        "the group's first event was rolled back with the refused one"
    );
    assert_eq!(victim.dead_letters, vec![poison]);
    // The group's events took the victim's record without a copy: the refusal was undone
    // by applying the stream again from the checkpoint.
    assert!(
        p.store
            .stats()
            .reapplied
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    p.stop().await;
}

#[tokio::test]
async fn the_population_is_fresh_at_its_checkpoint_or_within_its_ttl() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let ids = write_customers(&h, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let p = Projector::start(&server, dir.path(), Customer360::default()).await;
    let model = p.caught_up(last_seq(&server).await).await;
    let no_ttl = Queries::new(model.clone()).with_population_ttl(Duration::ZERO);
    let long_ttl = Queries::new(model.clone());
    assert!(no_ttl.fresh_population().is_none(), "nothing computed yet");
    let computed = no_ttl.population().unwrap();
    let kept = long_ttl.population().unwrap();
    assert!(
        Arc::ptr_eq(&no_ttl.fresh_population().unwrap(), &computed),
        "fresh at the checkpoint it was computed at, whatever the ttl"
    );

    // The model moves on.
    h.handle(
        &Command::TagCustomer {
            customer_id: ids[0],
            tag: "later".into(),
        },
        &meta(),
    )
    .await
    .unwrap();
    p.caught_up(last_seq(&server).await).await;
    assert!(
        no_ttl.fresh_population().is_none(),
        "the model moved on and the ttl has passed: recompute"
    );
    assert!(
        Arc::ptr_eq(&long_ttl.fresh_population().unwrap(), &kept),
        "the model moved on but the ttl has not passed: still served"
    );
    let recomputed = no_ttl.population().unwrap();
    assert!(!Arc::ptr_eq(&recomputed, &computed), "recomputed");
    assert!(Arc::ptr_eq(
        &no_ttl.fresh_population().unwrap(),
        &recomputed
    ));
    p.stop().await;
}
