//! Read-side figures against a running `crm serve` (release build, embedded nats-server):
//! `cargo run --release -p crm --example readside -- <addr> <token> [customers] [commands/s] [queries/s] [seconds]`
//!
//! 1. Seeds `customers` customers with three orders each through `Ingest`.
//! 2. **Projection lag under steady load**: sends PlaceOrder at a fixed rate (open loop,
//!    unary) for `seconds`; for every 10th acknowledged command it asks GetCustomer360 with
//!    the reply's position as consistency token and records the time from the command's
//!    acknowledgement to the query's answer (commit-to-visible, including one query round
//!    trip).
//! 3. **GetCustomer360 latency** at a fixed request rate (open loop), then the maximum
//!    rate with 64 calls in flight.
//!
//! Open-loop latencies count from a request's scheduled time when the sender fell more
//! than 2 ms behind schedule (so a stall is not hidden), else from when it was sent (tokio's
//! 1 ms timer would otherwise add up to a millisecond of sleep overshoot to every sample).
//!
//! (`cargo xtask bench` owns the end-to-end figures; this isolates one layer.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crm_proto::v1::{
    self, command_service_client::CommandServiceClient, query_service_client::QueryServiceClient,
};
use tokio::sync::Mutex;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

type Bearer = MetadataValue<tonic::metadata::Ascii>;

fn authed<T>(msg: T, bearer: &Bearer) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", bearer.clone());
    r
}

/// xorshift64*: a repeatable pick of customers without another dependency.
struct Pick(u64);
impl Pick {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

fn order(customer: &str, i: usize) -> v1::PlaceOrderRequest {
    v1::PlaceOrderRequest {
        customer_id: customer.to_owned(),
        sales_channel: "web".into(),
        currency: "EUR".into(),
        lines: vec![v1::OrderLine {
            sku: format!("SKU-{}", i % 50),
            category: ["books", "games", "garden"][i % 3].into(),
            quantity: 1 + (i % 3) as u32,
            unit_price_minor: 500 + (i as i64 % 40) * 100,
        }],
        ..Default::default()
    }
}

/// When a request's latency starts: see the module docs.
fn origin(scheduled: Instant) -> Instant {
    let now = Instant::now();
    if now.duration_since(scheduled) > Duration::from_millis(2) {
        scheduled
    } else {
        now
    }
}

fn percentiles(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    format!(
        "n={} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        v.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    )
}

async fn seed(channel: &Channel, bearer: &Bearer, customers: usize) -> Vec<String> {
    let ids: Vec<String> = (0..customers)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let mut requests = Vec::with_capacity(customers * 4);
    for (i, id) in ids.iter().enumerate() {
        requests.push(v1::ingest_request::Command::RegisterCustomer(
            v1::RegisterCustomerRequest {
                customer_id: id.clone(),
                profile: Some(v1::Profile {
                    given_name: format!("Customer {i}"),
                    emails: vec![format!("c{i}@example.com")],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ));
    }
    for k in 0..3 {
        for (i, id) in ids.iter().enumerate() {
            requests.push(v1::ingest_request::Command::PlaceOrder(order(id, i + k)));
        }
    }
    let n = requests.len();
    let stream =
        tokio_stream::iter(
            requests
                .into_iter()
                .enumerate()
                .map(|(i, c)| v1::IngestRequest {
                    sequence: i as u64,
                    command: Some(c),
                }),
        );
    let started = Instant::now();
    let mut replies = CommandServiceClient::new(channel.clone())
        .ingest(authed(stream, bearer))
        .await
        .expect("ingest")
        .into_inner();
    let mut failed = 0;
    while let Some(reply) = replies.message().await.expect("ingest reply") {
        if !matches!(reply.result, Some(v1::ingest_reply::Result::Ok(_))) {
            failed += 1;
        }
    }
    println!(
        "seed: {n} commands ({failed} failed) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    ids
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = format!("http://{}", args.get(1).expect("address"));
    let bearer: Bearer = format!("Bearer {}", args.get(2).expect("token"))
        .parse()
        .unwrap();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let customers = arg(3, 5_000) as usize;
    let cmd_rate = arg(4, 2_000);
    let query_rate = arg(5, 2_000);
    let secs = arg(6, 20);
    let channel = Channel::from_shared(addr).unwrap().connect().await.unwrap();
    let ids = Arc::new(seed(&channel, &bearer, customers).await);

    // 2. Lag under a steady command load.
    let period = Duration::from_secs_f64(1.0 / cmd_rate as f64);
    let total = cmd_rate * secs;
    let cmd_latency = Arc::new(Mutex::new(Vec::new()));
    let lag = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut pick = Pick(0x9e37_79b9_7f4a_7c15);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = started + period * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let customer = ids[pick.next(ids.len())].clone();
        let (channel, bearer) = (channel.clone(), bearer.clone());
        let (cmd_latency, lag, errors) = (cmd_latency.clone(), lag.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let sent = origin(scheduled);
            let reply = CommandServiceClient::new(channel.clone())
                .place_order(authed(order(&customer, i as usize), &bearer))
                .await;
            let acked = Instant::now();
            let Ok(reply) = reply else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            cmd_latency.lock().await.push(acked - sent);
            if i % 10 == 0 {
                let position = reply.into_inner().position;
                let visible = QueryServiceClient::new(channel)
                    .get_customer360(authed(
                        v1::GetCustomer360Request {
                            customer_id: customer,
                            consistency: Some(v1::Consistency {
                                min_position: position,
                            }),
                            ..Default::default()
                        },
                        &bearer,
                    ))
                    .await;
                if visible.is_ok() {
                    lag.lock().await.push(acked.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "steady load: {total} PlaceOrder at {cmd_rate}/s offered, {:.0}/s achieved, {} errors",
        total as f64 / elapsed,
        errors.load(Ordering::Relaxed)
    );
    println!(
        "  command latency: {}",
        percentiles(std::mem::take(&mut *cmd_latency.lock().await))
    );
    println!(
        "  commit-to-visible (projection lag + one query): {}",
        percentiles(std::mem::take(&mut *lag.lock().await))
    );

    // 3. GetCustomer360 at a fixed rate, then as fast as 64 in flight allow.
    let period = Duration::from_secs_f64(1.0 / query_rate as f64);
    let total = query_rate * secs;
    let latency = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = started + period * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let customer = ids[pick.next(ids.len())].clone();
        let (channel, bearer, latency, errors) = (
            channel.clone(),
            bearer.clone(),
            latency.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let sent = origin(scheduled);
            let r = QueryServiceClient::new(channel)
                .get_customer360(authed(
                    v1::GetCustomer360Request {
                        customer_id: customer,
                        ..Default::default()
                    },
                    &bearer,
                ))
                .await;
            if r.is_ok() {
                latency.lock().await.push(sent.elapsed());
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "GetCustomer360 at {query_rate}/s for {secs}s: {}",
        percentiles(std::mem::take(&mut *latency.lock().await))
    );

    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(10);
    let mut workers = Vec::new();
    for w in 0..64u64 {
        let (channel, bearer, ids, done) =
            (channel.clone(), bearer.clone(), ids.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut pick = Pick(w * 7919 + 1);
            let mut client = QueryServiceClient::new(channel);
            while Instant::now() < until {
                let customer = ids[pick.next(ids.len())].clone();
                client
                    .get_customer360(authed(
                        v1::GetCustomer360Request {
                            customer_id: customer,
                            ..Default::default()
                        },
                        &bearer,
                    ))
                    .await
                    .expect("query");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    println!(
        "GetCustomer360 max: {:.0}/s with 64 in flight",
        done.load(Ordering::Relaxed) as f64 / 10.0
    );
}
