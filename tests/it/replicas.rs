//! Decisions on a replicated stream: any replica may answer a direct get, and a follower
//! can be behind the leader. Nothing a command returns may rest on such a read: a
//! rejection, a no-op and what a command read of an aggregate it does not write are
//! confirmed against the stream leader first.
//!
//! The first three tests make a read stale deterministically (fault injection: the read
//! answers as a replica without the subject's newest messages) on a real three-node
//! cluster; the last one produces the real thing, a follower paused while the leader
//! takes writes.

use crm_domain::{
    AggregateRef, CampaignCreated, CampaignEvent, Channel, Command, ConsentChannel, CustomerId,
    DomainEvent, SkipReason,
};
use crm_store::{CommandHandler, EventLog, HandlerConfig, LogConfig};
use crm_testkit::NatsCluster;
use uuid::Uuid;

use crate::support::{meta, new_customer_id, register};

fn replicated() -> LogConfig {
    LogConfig {
        replicas: 3,
        ..LogConfig::default()
    }
}

/// A handler as another process would have it: its own connection (to `urls`) and an
/// empty cache.
async fn process(urls: &[String]) -> CommandHandler {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(urls)
        .await
        .expect("connect to the cluster");
    let log = EventLog::open(client, replicated())
        .await
        .expect("open the replicated log");
    assert!(log.replicated());
    CommandHandler::new(log, HandlerConfig::default())
}

fn tag(customer_id: CustomerId, tag: &str) -> Command {
    Command::TagCustomer {
        customer_id,
        tag: tag.into(),
    }
}

fn stale_reads(h: &CommandHandler) -> u64 {
    h.stats()
        .stale_reads
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_stale_read_never_rejects_a_command_on_a_customer_that_exists() {
    let cluster = NatsCluster::start(3);
    let a = process(&cluster.urls()).await;
    let b = process(&cluster.urls()).await;
    let c = new_customer_id();
    a.handle(&register(c), &meta()).await.unwrap();
    // B has never seen the customer; its read answers as a replica without it.
    b.log().inject_stale_reads(1);
    let out = b
        .handle(&tag(c, "vip"), &meta())
        .await
        .expect("the customer exists on the leader: the command is applied, not NOT_FOUND");
    assert_eq!(out.appended, 1);
    assert_eq!(stale_reads(&b), 1, "the stale read was caught");
    assert_eq!(out.aggregates, vec![(AggregateRef::Customer(c), 2)]);
}

#[tokio::test]
async fn a_stale_read_never_turns_a_command_into_a_no_op() {
    let cluster = NatsCluster::start(3);
    let a = process(&cluster.urls()).await;
    let b = process(&cluster.urls()).await;
    let c = new_customer_id();
    a.handle(&register(c), &meta()).await.unwrap();
    // B caches the customer without the tag; A then adds it.
    b.handle(&tag(c, "other"), &meta()).await.unwrap();
    a.handle(&tag(c, "vip"), &meta()).await.unwrap();
    // On B's view the tag is absent, so removing it would change nothing.
    b.log().inject_stale_reads(1);
    let out = b
        .handle(
            &Command::UntagCustomer {
                customer_id: c,
                tag: "vip".into(),
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        out.appended, 1,
        "the tag is removed, not reported as absent"
    );
    assert_eq!(stale_reads(&b), 1);
}

#[tokio::test]
async fn a_stale_read_of_a_recipient_never_sends_to_a_withdrawn_consent() {
    let cluster = NatsCluster::start(3);
    let a = process(&cluster.urls()).await;
    let b = process(&cluster.urls()).await;
    let c = new_customer_id();
    a.handle(&register(c), &meta()).await.unwrap();
    let consent = |granted| Command::SetConsent {
        customer_id: c,
        channel: ConsentChannel::Email,
        granted,
        source: "preference centre".into(),
    };
    a.handle(&consent(true), &meta()).await.unwrap();
    // A second recipient keeps their consent (a send skipping everyone is refused).
    let keeps = new_customer_id();
    a.handle(&register(keeps), &meta()).await.unwrap();
    a.handle(
        &Command::SetConsent {
            customer_id: keeps,
            channel: ConsentChannel::Email,
            granted: true,
            source: "preference centre".into(),
        },
        &meta(),
    )
    .await
    .unwrap();
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
        recipients: vec![c, keeps],
    };
    let sent = |out: &crm_store::CommandOutcome| match out.events.as_slice() {
        [
            DomainEvent::Campaign(
                _,
                CampaignEvent::Sent {
                    recipients,
                    skipped,
                    ..
                },
            ),
        ] => (recipients.clone(), skipped.clone()),
        other => panic!("expected one send, got {other:?}"),
    };
    // The first wave reaches the customer, and B now holds them with consent.
    let (to, skipped) = sent(&b.handle(&send, &meta()).await.unwrap());
    assert_eq!((to.len(), skipped.len()), (2, 0));
    a.handle(&consent(false), &meta()).await.unwrap();
    // B's re-reads of the recipients answer as a replica without the withdrawal.
    b.log().inject_stale_reads(2);
    let (to, skipped) = sent(&b.handle(&send, &meta()).await.unwrap());
    assert_eq!(to, vec![keeps], "sent to a customer who withdrew consent");
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].customer_id, c);
    assert_eq!(skipped[0].reason, SkipReason::ConsentWithdrawn);
    assert_eq!(stale_reads(&b), 1);
}

/// The real thing: a follower paused (SIGSTOP) while the leader takes writes answers
/// reads from before the pause for a moment after it resumes. A process connected to
/// that follower only must still decide on what the leader holds. Rounds go on until
/// the handler has met a stale read, so the test shows the path ran.
#[tokio::test]
async fn a_process_on_a_paused_follower_decides_on_what_the_leader_holds() {
    const MAX_ROUNDS: usize = 40;
    const WANTED: u64 = 2;
    let cluster = NatsCluster::start(3);
    let first = process(&cluster.urls()).await;
    let mut stream = first
        .log()
        .jetstream()
        .get_stream(&replicated().stream)
        .await
        .unwrap();
    let leader = stream
        .info()
        .await
        .unwrap()
        .cluster
        .clone()
        .and_then(|c| c.leader)
        .expect("the stream has a leader");
    let node = |is_leader: bool| {
        (0..cluster.len())
            .find(|&i| (cluster.node(i).name() == leader) == is_leader)
            .expect("node")
    };
    let (l, f) = (node(true), node(false));
    let a = process(&[cluster.node(l).url()]).await;
    let b = process(&[cluster.node(f).url()]).await;
    let untag = |c| Command::UntagCustomer {
        customer_id: c,
        tag: "vip".into(),
    };
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && stale_reads(&b) < WANTED {
        rounds += 1;
        let c = new_customer_id();
        a.handle(&register(c), &meta()).await.unwrap();
        // B holds the customer without the tag.
        b.handle(&untag(c), &meta()).await.unwrap();
        cluster.node(f).pause();
        // The leader and the other follower make a quorum: these commit without F, and
        // touch only what A holds (A reads nothing a paused replica could be asked for).
        // The toggles give the follower a backlog to apply after it resumes.
        for i in 0..301 {
            let change = if i % 2 == 0 { tag(c, "vip") } else { untag(c) };
            a.handle(&change, &meta()).await.unwrap();
        }
        cluster.node(f).resume();
        // Removing the tag A added must remove it, not report "nothing to change".
        let out = b.handle(&untag(c), &meta()).await.unwrap();
        assert_eq!(
            out.appended, 1,
            "round {rounds}: a no-op decided on a stale read"
        );
    }
    eprintln!("{} stale reads caught in {rounds} rounds", stale_reads(&b));
    assert!(
        stale_reads(&b) >= WANTED,
        "in {rounds} rounds the paused follower never answered behind the leader: the test did not exercise the path"
    );
}
