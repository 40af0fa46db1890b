//! Measures the command path against a throwaway nats-server:
//! `cargo run --release -p crm-store --example append_rate -- [durable|lazy] [commands] [in-flight]`
//!
//! Prints commands/s for registrations plus tags spread over many customers (many
//! commands in flight through one handler), the raw JetStream baseline of the same
//! run (pipelined publishes with `Nats-Expected-Last-Subject-Sequence`, same sizes),
//! and 32 handlers contending for one customer (commands/s, conflicts, give-ups).
//! `cargo xtask bench` owns the end-to-end figures; this isolates one layer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crm_domain::{Actor, Command, CustomerId, Profile, RegisterCustomer};
use crm_store::{CommandHandler, CommandMeta, EventLog, HandleError, HandlerConfig, LogConfig};
use crm_testkit::{Durability, NatsServer};
use futures::StreamExt;
use tokio::sync::Semaphore;

fn register(id: CustomerId) -> Command {
    Command::RegisterCustomer(RegisterCustomer {
        customer_id: id,
        profile: Profile {
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            emails: vec!["ada@example.com".into()],
            ..Profile::default()
        },
        acquisition: None,
        owner: None,
        team: None,
        consents: vec![],
        consent_source: String::new(),
        tags: vec![],
    })
}

async fn handler(url: &str, stream: &str) -> CommandHandler {
    let client = async_nats::connect(url).await.expect("connect");
    let cfg = LogConfig {
        stream: stream.into(),
        ..LogConfig::default()
    };
    CommandHandler::new(
        EventLog::open(client, cfg).await.expect("open"),
        HandlerConfig::default(),
    )
}

fn meta() -> CommandMeta {
    CommandMeta::new(Actor::Service("bench".into()))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let durability = match args.get(1).map(String::as_str) {
        Some("lazy") => Durability::Lazy,
        _ => Durability::Always,
    };
    let total: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let in_flight: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);
    let server = NatsServer::builder().durability(durability).start();
    let url = server.url();
    println!("mode={durability:?} commands={total} in_flight={in_flight}");

    // 1. Many customers, one handler, `in_flight` commands at a time: half registrations,
    //    half tags of an already registered customer.
    let h = handler(&url, "BENCH").await;
    let customers: Vec<CustomerId> = (0..total / 2).map(|_| CustomerId::new_v7()).collect();
    let sem = Arc::new(Semaphore::new(in_flight));
    let start = Instant::now();
    let mut tasks = futures::stream::FuturesUnordered::new();
    for &c in &customers {
        let h = h.clone();
        let permit = sem.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            h.handle(&register(c), &meta()).await.unwrap();
            h.handle(
                &Command::TagCustomer {
                    customer_id: c,
                    tag: "vip".into(),
                },
                &meta(),
            )
            .await
            .unwrap();
            drop(permit);
        }));
        while tasks.len() > in_flight * 2 {
            tasks.next().await.unwrap().unwrap();
        }
    }
    while let Some(t) = tasks.next().await {
        t.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "handler: {} commands in {secs:.2}s = {:.0} commands/s",
        customers.len() * 2,
        (customers.len() * 2) as f64 / secs
    );

    // 2. Raw baseline in the same run: pipelined publishes with expected subject sequence
    //    over as many subjects, same payload size as an encoded event (~250 B).
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RAW".into(),
        subjects: vec!["raw.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let payload = bytes::Bytes::from(vec![7u8; 250]);
    let start = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    for (i, _) in customers.iter().enumerate() {
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.clone())
            .expected_last_subject_sequence(0);
        acks.push(
            js.send_publish(format!("raw.{i}"), publish)
                .await
                .unwrap()
                .into_future(),
        );
        while acks.len() > 2000 {
            acks.next().await.unwrap().unwrap();
        }
    }
    while let Some(a) = acks.next().await {
        a.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "raw pipelined publish with expected sequence: {} msgs in {secs:.2}s = {:.0} msgs/s",
        customers.len(),
        customers.len() as f64 / secs
    );

    // 3. Contention: 32 handlers (own connections and caches) on one customer.
    let c = CustomerId::new_v7();
    h.handle(&register(c), &meta()).await.unwrap();
    let mut hs = Vec::new();
    for _ in 0..32 {
        hs.push(handler(&url, "BENCH").await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (w, h) in hs.iter().enumerate() {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u32;
            let mut gave_up = 0u32;
            for i in 0..5 {
                let cmd = Command::TagCustomer {
                    customer_id: c,
                    tag: format!("w{w}-{i}"),
                };
                match h.handle(&cmd, &meta()).await {
                    Ok(_) => ok += 1,
                    Err(HandleError::Conflict { .. }) => gave_up += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, gave_up)
        }));
    }
    let (mut ok, mut gave_up) = (0, 0);
    for t in tasks {
        let (o, g) = t.await.unwrap();
        ok += o;
        gave_up += g;
    }
    let secs = start.elapsed().as_secs_f64();
    let conflicts: u64 = hs
        .iter()
        .map(|h| h.stats().conflicts.load(Ordering::Relaxed))
        .sum();
    println!(
        "contention (32 handlers, one customer, 160 commands): {ok} applied, {gave_up} gave up after 8 attempts, {conflicts} conflicts, {:.0} applied/s",
        f64::from(ok) / secs
    );
}
