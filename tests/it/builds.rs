//! Read side v2 against a real nats-server and real sled files: hosted projections,
//! blue/green rebuilds, the stream's identity, consumer re-creation, foreign subjects.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crm_customer360::{Customer360, keys};
use crm_domain::AggregateRef;
use crm_events::SubjectScheme;
use crm_projection::{
    BuildState, Event, FoldError, HostedProjection, Projection, ProjectionError, ReadModel,
    ReadSide, RunnerConfig, State,
};
use crm_store::LogConfig;
use crm_testkit::NatsServer;
use tokio::sync::watch;

use crate::read_side::{Projector, contents, eventually, last_seq, write_customers};
use crate::support::{connect, handler};

/// A second projection: events counted by type.
#[derive(Clone, Debug, Default)]
struct Counter;

impl Projection for Counter {
    const NAME: &'static str = "counter";
    const VERSION: u32 = 1;

    fn apply(&self, state: &mut dyn State, event: &Event<'_>) -> Result<(), FoldError> {
        let key = event.envelope.event_type.as_bytes();
        let n = state
            .get(key)
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        state.put(key, (n + 1).to_be_bytes().to_vec());
        Ok(())
    }
}

fn count(model: &ReadModel, event_type: &str) -> u64 {
    model
        .get(event_type.as_bytes())
        .unwrap()
        .map_or(0, |v| u64::from_be_bytes(v.as_ref().try_into().unwrap()))
}

fn runner() -> RunnerConfig {
    RunnerConfig {
        batch_max: 64,
        retry_pause: Duration::from_millis(100),
        head_interval: Duration::from_millis(100),
        ..RunnerConfig::default()
    }
}

/// A read side's supervisors, running.
struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), ProjectionError>>>,
}

async fn start(side: &ReadSide, server: &NatsServer) -> Running {
    let js = async_nats::jetstream::new(connect(&server.url()).await);
    let (stop, stopped) = watch::channel(false);
    let tasks = side
        .start(&js, &stopped)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    Running { stop, tasks }
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        for t in self.tasks {
            t.await.unwrap().unwrap();
        }
    }
}

/// Builds the 360 model in `db` up to `head` and stops; returns its tree.
async fn build_360(db: &sled::Db, server: &NatsServer, head: u64) -> String {
    let mut side = ReadSide::new(db.clone(), SubjectScheme::default(), runner());
    let c360 = side.add(Customer360::default()).unwrap();
    let running = start(&side, server).await;
    assert!(c360.reader().wait_for(head, Duration::from_secs(20)).await);
    running.stop().await;
    c360.reader().serving().unwrap()
}

fn customers(model: &ReadModel) -> usize {
    model.scan(&[keys::CUSTOMER], None, false).count()
}

#[tokio::test]
async fn a_rebuild_runs_beside_the_live_model_and_queries_switch_when_it_caught_up() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    write_customers(&h, 150).await;
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path().join("rm")).unwrap();
    let mut side = ReadSide::new(db.clone(), SubjectScheme::default(), runner());
    let c360 = side.add(Customer360::default()).unwrap();
    let reader = c360.reader();
    let running = start(&side, &server).await;
    let head = last_seq(&server).await;
    assert!(reader.wait_for(head, Duration::from_secs(20)).await);
    let first = reader.serving().expect("served once caught up");

    // A client polls the served model throughout: what it sees must never go back.
    let (done, finished) = watch::channel(false);
    let poller = tokio::spawn({
        let reader = reader.clone();
        async move {
            let mut seen = Vec::new();
            while !*finished.borrow() {
                let (tree, at, n) = (reader.serving(), reader.checkpoint(), customers(&reader));
                seen.push((tree, at, n));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        }
    });
    let building = c360.rebuild().unwrap();
    assert_eq!(building.state, BuildState::Building);
    assert_ne!(building.tree, first);
    assert!(
        matches!(c360.rebuild(), Err(ProjectionError::AlreadyBuilding { .. })),
        "one build at a time"
    );
    // The live model keeps advancing while the new build runs.
    write_customers(&h, 40).await;
    eventually("queries to switch to the new build", || {
        reader.serving().as_deref() == Some(building.tree.as_str())
    })
    .await;
    let end = last_seq(&server).await;
    assert!(reader.wait_for(end, Duration::from_secs(20)).await);
    done.send(true).unwrap();
    let seen = poller.await.unwrap();
    for pair in seen.windows(2) {
        let ((_, at0, n0), (_, at1, n1)) = (&pair[0], &pair[1]);
        assert!(
            at1 >= at0 && n1 >= n0,
            "went back: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    assert!(
        seen.iter()
            .any(|(tree, at, _)| tree.as_deref() == Some(first.as_str()) && *at > head),
        "the live build advanced during the rebuild"
    );
    assert_eq!(customers(&reader), 190);
    let status = c360.status();
    assert_eq!(status.builds.len(), 1);
    assert_eq!(status.builds[0].state, BuildState::Live);
    eventually("the old tree to be dropped", || {
        !db.tree_names()
            .iter()
            .any(|n| n.as_ref() == first.as_bytes())
    })
    .await;
    running.stop().await;

    // Byte for byte what an uninterrupted build of the same stream gives.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = Projector::start(&server, fresh_dir.path(), Customer360::default()).await;
    let fresh_model = fresh.caught_up(end).await;
    assert_eq!(contents(&reader), contents(&fresh_model));
}

#[tokio::test]
async fn a_new_projection_builds_from_scratch_while_the_other_stays_live() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    write_customers(&h, 60).await;
    let head = last_seq(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path().join("rm")).unwrap();
    build_360(&db, &server, head).await;
    // The next version of the service hosts a second projection.
    let mut side = ReadSide::new(db.clone(), SubjectScheme::default(), runner());
    let c360 = side.add(Customer360::default()).unwrap();
    let counter = side.add(Counter).unwrap();
    let live = c360.reader().serving();
    assert!(
        live.is_some(),
        "the 360 is served at once, at its checkpoint"
    );
    assert_eq!(c360.reader().checkpoint(), head);
    assert_eq!(
        counter.reader().serving(),
        None,
        "not served before it caught up"
    );
    assert_eq!(counter.status().builds[0].state, BuildState::Building);
    assert!(matches!(
        counter.reader().get(b"customer.registered"),
        Err(ProjectionError::NotServing(_))
    ));
    let running = start(&side, &server).await;
    assert!(
        counter
            .reader()
            .wait_for(head, Duration::from_secs(20))
            .await
    );
    assert_eq!(count(&counter.reader(), "customer.registered"), 60);
    assert_eq!(c360.reader().serving(), live, "the 360 was not rebuilt");
    // Both follow new events.
    write_customers(&h, 1).await;
    let end = last_seq(&server).await;
    assert!(
        counter
            .reader()
            .wait_for(end, Duration::from_secs(20))
            .await
    );
    assert!(c360.reader().wait_for(end, Duration::from_secs(20)).await);
    assert_eq!(count(&counter.reader(), "customer.registered"), 61);
    running.stop().await;
}

#[tokio::test]
async fn a_changed_configuration_is_built_beside_the_old_build_which_stays_served_frozen() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    write_customers(&h, 30).await;
    let head = last_seq(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path().join("rm")).unwrap();
    let eur = build_360(&db, &server, head).await;
    // A replaced build whose drop a crash prevented is cleaned up on the next open.
    db.open_tree("customer360.99")
        .unwrap()
        .insert("x", "y")
        .unwrap();
    let mut side = ReadSide::new(db.clone(), SubjectScheme::default(), runner());
    let usd = Customer360 {
        reporting_currency: "USD".into(),
    };
    let fingerprint = usd.fingerprint();
    let c360 = side.add(usd).unwrap();
    let status = c360.status();
    assert!(
        !db.tree_names()
            .iter()
            .any(|t| t.as_ref() == b"customer360.99"),
        "left-behind build dropped"
    );
    let states: Vec<_> = status.builds.iter().map(|b| b.state).collect();
    assert_eq!(states, [BuildState::Frozen, BuildState::Building]);
    assert_eq!(
        c360.reader().serving(),
        Some(eur.clone()),
        "the old build answers meanwhile"
    );
    assert_eq!(c360.reader().checkpoint(), head);
    let running = start(&side, &server).await;
    eventually("the new build to be served", || {
        c360.reader().serving().is_some_and(|t| t != eur)
    })
    .await;
    let status = c360.status();
    assert_eq!(status.builds.len(), 1);
    assert_eq!(status.builds[0].state, BuildState::Live);
    assert_eq!(status.builds[0].fingerprint, fingerprint);
    assert_eq!(c360.reader().checkpoint(), head);
    running.stop().await;
}

#[tokio::test]
async fn a_stream_recreated_behind_the_checkpoint_is_noticed_and_the_model_rebuilt() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let old = write_customers(&h, 20).await;
    let head = last_seq(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path().join("rm")).unwrap();
    let mut side = ReadSide::new(db, SubjectScheme::default(), runner());
    let c360 = side.add(Customer360::default()).unwrap();
    let reader = c360.reader();
    let running = start(&side, &server).await;
    assert!(reader.wait_for(head, Duration::from_secs(20)).await);
    let first = reader.serving().unwrap();

    // The stream is deleted and created again (an operator mistake, a restored backup):
    // its sequences now mean other events, and it ends before the build's checkpoint.
    let js = async_nats::jetstream::new(connect(&server.url()).await);
    js.delete_stream("CRM_EVENTS").await.unwrap();
    let h = handler(&server).await;
    let new = write_customers(&h, 2).await;
    let new_head = last_seq(&server).await;
    assert!(new_head < head);
    eventually("a build of the new stream to be served", || {
        reader.serving().is_some_and(|t| t != first) && reader.checkpoint() == new_head
    })
    .await;
    let record = |id: crm_domain::CustomerId| {
        reader
            .get(&keys::id_key(keys::CUSTOMER, id.0.into_bytes()))
            .unwrap()
    };
    assert!(record(new[0]).is_some() && record(new[1]).is_some());
    assert!(
        old.iter().all(|id| record(*id).is_none()),
        "nothing of the old stream is served"
    );
    assert_eq!(customers(&reader), 2);
    running.stop().await;
}

#[tokio::test]
async fn an_idle_projector_resumes_after_its_checkpoint_when_its_consumer_is_recreated() {
    let mut server = NatsServer::start();
    let h = handler(&server).await;
    write_customers(&h, 40).await;
    let head = last_seq(&server).await;
    let dir = tempfile::tempdir().unwrap();
    // Caught up, then restarted: its consumer opens at the head and delivers nothing.
    let p = Projector::start(&server, dir.path(), Customer360::default()).await;
    p.caught_up(head).await;
    drop(p.stop().await);
    let p = Projector::start(&server, dir.path(), Customer360::default()).await;
    p.caught_up(head).await;
    let stats = Arc::clone(p.store.stats());
    eventually("the consumer to open", || {
        stats.consumer_opens.load(Ordering::Relaxed) >= 1
    })
    .await;
    // The server restarts: async-nats re-creates the consumer, from the start of the
    // stream since it had delivered nothing; the runner must not read it all again.
    drop(h);
    server.restart();
    let h = handler(&server).await;
    write_customers(&h, 1).await;
    let end = last_seq(&server).await;
    p.caught_up(end).await;
    let replayed = stats.replayed.load(Ordering::Relaxed);
    let opens = stats.consumer_opens.load(Ordering::Relaxed);
    assert!(opens >= 2, "the consumer was re-created ({opens} opens)");
    assert!(
        replayed <= 1,
        "{replayed} messages at or below the checkpoint were delivered again"
    );
    assert_eq!(stats.events_applied.load(Ordering::Relaxed), end - head);
    drop(p.stop().await);
}

#[tokio::test]
async fn a_message_on_a_look_alike_subject_is_dead_lettered_as_foreign() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let ids = write_customers(&h, 2).await;
    let cfg = LogConfig::default();
    // A real event of customer 0, published again on a subject that spells customer 1's
    // id with hyphens (the stream's subject filter accepts it).
    let first_of_0 = h
        .log()
        .read_subject(&cfg.subject(AggregateRef::Customer(ids[0])), 0)
        .await
        .unwrap()
        .remove(0);
    let js = async_nats::jetstream::new(connect(&server.url()).await);
    let look_alike = format!("crm.v1.customer.{}", ids[1].0.hyphenated());
    let seq = js
        .publish(look_alike.clone(), first_of_0.payload.clone())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let dir = tempfile::tempdir().unwrap();
    let p = Projector::start(&server, dir.path(), Customer360::default()).await;
    let model = p.caught_up(seq).await;
    let letters: Vec<_> = model.dead_letters().map(Result::unwrap).collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].seq, seq);
    assert_eq!(letters[0].subject, look_alike);
    assert!(
        letters[0].reason.contains("foreign subject"),
        "{}",
        letters[0].reason
    );
    // Neither customer is touched: no dead-letter flag, no event attributed.
    for id in &ids {
        let record: crm_customer360::CustomerRecord = postcard::from_bytes(
            &model
                .get(&keys::id_key(keys::CUSTOMER, id.0.into_bytes()))
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert!(record.dead_letters.is_empty());
        assert!(record.last_seq < seq);
    }
    drop(p.stop().await);
}

#[tokio::test]
async fn a_projector_that_lost_its_server_resumes_with_no_gap_and_no_double_application() {
    let mut server = NatsServer::start();
    let h = handler(&server).await;
    write_customers(&h, 30).await;
    let head = last_seq(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let p = Projector::start(&server, dir.path(), Customer360::default()).await;
    p.caught_up(head).await;
    let stats = Arc::clone(p.store.stats());
    // The server dies (SIGKILL) and comes back on the same store a moment later.
    drop(h);
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    let h = handler(&server).await;
    write_customers(&h, 10).await;
    let end = last_seq(&server).await;
    let model = p.caught_up(end).await;
    assert!(
        stats.consumer_opens.load(Ordering::Relaxed) >= 2,
        "the consumer was opened again"
    );
    // Exactly what an uninterrupted build gives, each event applied once.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = Projector::start(&server, fresh_dir.path(), Customer360::default()).await;
    let fresh_model = fresh.caught_up(end).await;
    assert_eq!(contents(&model), contents(&fresh_model));
    assert_eq!(
        stats.events_applied.load(Ordering::Relaxed),
        fresh.store.stats().events_applied.load(Ordering::Relaxed),
    );
    drop(fresh.stop().await);
    drop(p.stop().await);
}
