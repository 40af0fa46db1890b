//! Measures a full rebuild of the 360 model against a throwaway nats-server:
//! `cargo run --release -p crm-customer360 --example rebuild -- [events]` (default 1,000,000).
//!
//! Writes `events` well-formed events (12 per customer: registration, tag, three orders,
//! three interactions, a ticket opened, answered, resolved and closed; customers
//! interleaved as in real traffic) straight to the stream, then measures side by side:
//! the raw ordered-consumer read of the whole stream, the fold alone (decode + apply into
//! memory), sled alone (the fold's write pattern and sizes, no fold), the rebuild of the
//! 360 model into a fresh sled directory (events/s, on-disk size; `BATCH_MAX` sets the
//! runner's batch limit), and finally in-process GetCustomer360 reads (record + facts +
//! classification) p50/p99.
//! `cargo xtask bench` owns the end-to-end figures; this isolates one layer.

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use crm_customer360::{Customer360, Queries};
use crm_domain::{
    Actor, Channel, CommandId, Currency, CustomerEvent, CustomerId, CustomerRegistered, Direction,
    DomainEvent, InteractionId, InteractionLogged, Money, OrderId, OrderLine, OrderPlaced, Profile,
    SlaTargets, TicketId, TicketOpened, TicketPriority, Timestamp,
};
use crm_events::{EventHash, EventMeta, encode};
use crm_projection::{ProjectionStore, RunnerConfig};
use crm_store::{LogConfig, ensure_stream};
use crm_testkit::{Durability, NatsServer};
use futures::StreamExt;
use uuid::Uuid;

const EVENTS_PER_CUSTOMER: usize = 12;
const DAY: i64 = Timestamp::MICROS_PER_DAY;
const T0: i64 = 1_735_689_600 * 1_000_000;

fn event(c: CustomerId, step: usize, n: u128) -> DomainEvent {
    let id = |k: u128| Uuid::from_u128((n << 8) | k);
    let ticket = TicketId(id(9));
    let e = match step {
        0 => CustomerEvent::Registered(CustomerRegistered {
            profile: Profile {
                given_name: "Ada".into(),
                family_name: format!("Customer{n}"),
                emails: vec![format!("c{n}@example.com")],
                ..Profile::default()
            },
            acquisition: None,
            owner: Some(format!("rep-{}", n % 20)),
            team: None,
            lead: None,
        }),
        1 => CustomerEvent::Tagged {
            tag: ["vip", "newsletter", "b2c", "eu"][usize::try_from(n % 4).unwrap_or(0)].into(),
        },
        2..=4 => CustomerEvent::OrderPlaced(OrderPlaced {
            order_id: OrderId(id(step as u128)),
            sales_channel: "web".into(),
            lines: vec![OrderLine {
                sku: format!("SKU-{}", n % 100),
                category: ["books", "toys", "garden"][step - 2].into(),
                quantity: 1 + u32::try_from(n % 3).unwrap_or(0),
                unit_price_minor: 1000 + i64::try_from(n % 5000).unwrap_or(0),
            }],
            discount_minor: 0,
            tax_minor: 0,
            shipping_minor: 0,
            total: Money::new(
                (1 + i64::try_from(n % 3).unwrap_or(0))
                    * (1000 + i64::try_from(n % 5000).unwrap_or(0)),
                Currency::parse("EUR").unwrap(),
            ),
            campaign: None,
        }),
        5..=7 => CustomerEvent::InteractionLogged(InteractionLogged {
            interaction_id: InteractionId(id(step as u128)),
            channel: [Channel::Email, Channel::Phone, Channel::Chat][step - 5],
            direction: Direction::Inbound,
            agent: Some("agent-1".into()),
            subject: "question about my order".into(),
            summary: String::new(),
            sentiment: Some(20),
            ticket: None,
            opportunity: None,
            campaign: None,
            call: None,
        }),
        8 => CustomerEvent::TicketOpened(TicketOpened {
            ticket_id: ticket,
            channel: Channel::Email,
            category: "delivery".into(),
            priority: TicketPriority::Normal,
            subject: "late parcel".into(),
            sla: SlaTargets {
                policy: "default".into(),
                first_response_mins: 240,
                resolution_mins: 2880,
            },
        }),
        9 => CustomerEvent::TicketResponded {
            ticket_id: ticket,
            agent: "agent-1".into(),
            first_response: true,
            awaiting_customer: false,
        },
        10 => CustomerEvent::TicketResolved {
            ticket_id: ticket,
            resolution: "reshipped".into(),
        },
        _ => CustomerEvent::TicketClosed {
            ticket_id: ticket,
            csat: Some(4),
            comment: String::new(),
        },
    };
    DomainEvent::Customer(c, e)
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[allow(clippy::cast_precision_loss)]
fn rate(n: usize, secs: f64) -> String {
    format!("{:.0}/s", n as f64 / secs)
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    dir_size(&p)
                } else {
                    e.metadata().map_or(0, |m| m.len())
                }
            })
            .sum()
    })
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("events: a number"));
    let customers = events.div_ceil(EVENTS_PER_CUSTOMER);
    let server = NatsServer::builder().durability(Durability::Lazy).start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    let cfg = LogConfig::default();
    ensure_stream(&js, &cfg).await.expect("stream");
    let ids: Vec<CustomerId> = (0..customers)
        .map(|i| CustomerId(Uuid::from_u128(0xC000_0000 + i as u128)))
        .collect();

    let started = Instant::now();
    let mut written = 0usize;
    for step in 0..EVENTS_PER_CUSTOMER {
        let batch = ids.iter().enumerate().map(|(n, id)| {
            let e = event(*id, step, n as u128);
            let meta = EventMeta {
                event_id: Uuid::now_v7(),
                version: step as u64 + 1,
                occurred_at: Timestamp(T0 + step as i64 * 30 * DAY + n as i64),
                recorded_at: Timestamp(T0),
                actor: Actor::Import("rebuild-example".into()),
                command_id: CommandId(Uuid::now_v7()),
                correlation_id: Uuid::nil(),
                causation_id: None,
                commit_index: 0,
                commit_size: 1,
                prev_hash: EventHash::GENESIS,
            };
            let subject = cfg.subject(e.aggregate());
            (subject, encode(&meta, &e).bytes)
        });
        let js = &js;
        let acks: Vec<_> = futures::stream::iter(batch)
            .map(|(subject, bytes)| async move {
                js.publish(subject, bytes.into())
                    .await?
                    .await
                    .map_err(async_nats::Error::from)
            })
            .buffer_unordered(2000)
            .collect()
            .await;
        for a in acks {
            a.expect("publish");
            written += 1;
        }
    }
    let write_secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {written} events for {customers} customers in {write_secs:.1} s ({})",
        rate(written, write_secs)
    );

    // Raw baseline: an ordered consumer reading the whole stream.
    let stream = js.get_stream(&cfg.stream).await.expect("stream");
    let started = Instant::now();
    let mut messages = stream
        .create_consumer(OrderedConfig::default())
        .await
        .expect("consumer")
        .messages()
        .await
        .expect("messages");
    let mut read = 0;
    let mut raw = Vec::with_capacity(written);
    while read < written {
        let m = messages.next().await.expect("message").expect("ok");
        raw.push(m);
        read += 1;
    }
    let raw_secs = started.elapsed().as_secs_f64();
    println!(
        "raw ordered-consumer read: {read} events in {raw_secs:.2} s ({})",
        rate(read, raw_secs)
    );

    // The fold alone: decode + apply into memory, no sled (what the storage adds is the
    // rest of the rebuild's time).
    let started = Instant::now();
    let fold = Customer360::default();
    let mut mem = crm_projection::MemState::default();
    for (i, m) in raw.iter().enumerate() {
        let envelope = crm_events::decode(&m.payload).expect("decode");
        mem.apply(
            &fold,
            &crm_projection::Event {
                seq: i as u64 + 1,
                index: 0,
                subject: &m.subject,
                envelope: &envelope,
            },
        )
        .expect("apply");
    }
    let fold_secs = started.elapsed().as_secs_f64();
    println!(
        "fold alone (decode + apply into memory): {read} events in {fold_secs:.2} s ({}), {} keys",
        rate(read, fold_secs),
        mem.entries.len()
    );
    // Sled alone, with the fold's write pattern and sizes but no fold: per event, the
    // customer's record (its real encoded size) is rewritten, one timeline entry and the
    // facts are written; batches of 128. This bounds what any fold over sled can reach.
    let record_bytes: usize = mem
        .entries
        .iter()
        .filter(|(k, _)| k.first() == Some(&crm_customer360::keys::CUSTOMER))
        .map(|(_, v)| v.len())
        .sum::<usize>()
        / customers;
    let sled_dir = tempfile::tempdir().expect("tempdir");
    let sled_db = sled::open(sled_dir.path()).expect("sled");
    let tree = sled_db.open_tree("bench").expect("tree");
    let started = Instant::now();
    for chunk in (0..read).collect::<Vec<_>>().chunks(128) {
        let mut batch = sled::Batch::default();
        for &i in chunk {
            let c = (i % customers) as u64;
            let mut k = vec![b'c'];
            k.extend_from_slice(&c.to_be_bytes());
            batch.insert(k.clone(), vec![7u8; record_bytes]);
            k[0] = b'f';
            batch.insert(k.clone(), vec![1u8; 30]);
            k[0] = b't';
            k.extend_from_slice(&(i as u64).to_be_bytes());
            batch.insert(k, vec![2u8; 80]);
        }
        tree.apply_batch(batch).expect("apply");
    }
    let sled_secs = started.elapsed().as_secs_f64();
    println!(
        "sled alone (3 writes per event: {record_bytes}-byte record, 30-byte facts, 80-byte timeline entry; batches of 128): {read} events in {sled_secs:.2} s ({})",
        rate(read, sled_secs)
    );
    drop((mem, raw, tree, sled_db));

    // Rebuild.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::open(dir.path()).expect("sled");
    let store =
        Arc::new(ProjectionStore::open(&db, Customer360::default(), cfg.scheme()).expect("open"));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(crm_projection::run(
        Arc::clone(&store),
        js.clone(),
        RunnerConfig {
            batch_max: std::env::var("BATCH_MAX")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(RunnerConfig::default().batch_max),
            ..RunnerConfig::default()
        },
        stopped,
    ));
    let reader = store.reader();
    assert!(
        reader
            .wait_for(written as u64, std::time::Duration::from_secs(3600))
            .await
    );
    let rebuild_secs = started.elapsed().as_secs_f64();
    stop.send(true).expect("stop");
    task.await.expect("join").expect("run");
    db.flush().expect("flush");
    let stats = store.stats();
    println!(
        "rebuild of customer360: {written} events in {rebuild_secs:.2} s ({}; {:.2}x the raw read), {} batches taking {:.2} s in apply_batch, {} dead letters, sled {:.0} MiB",
        rate(written, rebuild_secs),
        raw_secs / rebuild_secs,
        stats.batches.load(std::sync::atomic::Ordering::Relaxed),
        stats
            .batch_micros_total
            .load(std::sync::atomic::Ordering::Relaxed) as f64
            / 1e6,
        stats
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed),
        dir_size(dir.path()) as f64 / (1024.0 * 1024.0),
    );

    // In-process reads: what GetCustomer360 does before encoding its reply.
    let queries = Queries::new(reader);
    let started = Instant::now();
    let population = queries.population().expect("population");
    println!(
        "RFM population of {} customers computed in {:.0} ms",
        population.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let mut micros = Vec::new();
    for i in 0..20_000usize {
        let id = ids[(i * 7919) % ids.len()].0.into_bytes();
        let t = Instant::now();
        let record = queries.customer(id).expect("read").expect("customer");
        let facts = queries.facts(id).expect("facts");
        let population = queries.population().expect("population");
        let classes = queries.classify(&record, &facts, &population, T0 + 400 * DAY);
        std::hint::black_box((
            classes,
            crm_customer360::view::service(&record, T0 + 400 * DAY),
        ));
        micros.push(t.elapsed().as_micros());
    }
    micros.sort_unstable();
    println!(
        "in-process 360 read (record + facts + classification + service view): p50 {} µs, p99 {} µs",
        percentile(&micros, 0.5),
        percentile(&micros, 0.99)
    );
}
