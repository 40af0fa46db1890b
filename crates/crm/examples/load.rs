//! Load against a running `crm serve`:
//! `cargo run --release -p crm --example load -- <addr> <token> [commands] [in-flight] [single|tagged]`
//!
//! Sends `commands` RegisterCustomer calls as unary RPCs with `in-flight` calls at a
//! time, then the same number through one `Ingest` stream, and prints commands/s and
//! unary latency p50/p99. `cargo xtask bench` owns the end-to-end figures; this example
//! isolates registrations (and was used for the README's 1M-customer memory figure).

use std::time::{Duration, Instant};

use crm_proto::v1::{self, command_service_client::CommandServiceClient};
use futures_util_free::join_all_bounded;
use tonic::Request;

mod futures_util_free {
    //! A tiny bounded fan-out on tokio tasks (no extra dependency).
    use std::future::Future;

    pub async fn join_all_bounded<F, T>(futures: Vec<F>, in_flight: usize) -> Vec<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
        let mut handles = Vec::with_capacity(futures.len());
        for f in futures {
            let permit = sem.clone().acquire_owned().await.expect("semaphore");
            handles.push(tokio::spawn(async move {
                let out = f.await;
                drop(permit);
                out
            }));
        }
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.expect("task"));
        }
        out
    }
}

fn register(i: usize, tagged: bool) -> v1::RegisterCustomerRequest {
    v1::RegisterCustomerRequest {
        options: Some(v1::CommandOptions::default()),
        profile: Some(v1::Profile {
            given_name: format!("Customer {i}"),
            emails: vec![format!("c{i}@example.com")],
            ..Default::default()
        }),
        // With a tag the command has two events: an atomic batch commit.
        tags: if tagged {
            vec!["loadtest".into()]
        } else {
            vec![]
        },
        ..Default::default()
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = format!("http://{}", args.get(1).expect("address"));
    let token = args.get(2).expect("token").clone();
    let n: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let in_flight: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(64);
    let tagged = args.get(5).is_some_and(|a| a == "tagged");
    let events = if tagged { 2 } else { 1 };
    let channel = tonic::transport::Channel::from_shared(addr)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();

    let start = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let mut client = CommandServiceClient::new(channel.clone());
            let bearer = bearer.clone();
            async move {
                let mut r = Request::new(register(i, tagged));
                r.metadata_mut().insert("authorization", bearer);
                let t = Instant::now();
                client.register_customer(r).await.expect("register");
                t.elapsed()
            }
        })
        .collect();
    let mut latencies: Vec<Duration> = join_all_bounded(calls, in_flight).await;
    let secs = start.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "unary: {n} commands ({} events) in {secs:.2}s = {:.0} commands/s, p50 {:?}, p99 {:?} ({in_flight} in flight)",
        n * events,
        n as f64 / secs,
        latencies[n / 2],
        latencies[n * 99 / 100]
    );

    let requests: Vec<v1::IngestRequest> = (0..n)
        .map(|i| v1::IngestRequest {
            sequence: i as u64,
            command: Some(v1::ingest_request::Command::RegisterCustomer(register(
                n + i,
                tagged,
            ))),
        })
        .collect();
    let mut client = CommandServiceClient::new(channel.clone());
    let mut r = Request::new(tokio_stream::iter(requests));
    r.metadata_mut().insert("authorization", bearer.clone());
    let start = Instant::now();
    let mut replies = client.ingest(r).await.expect("ingest").into_inner();
    let (mut ok, mut failed) = (0, 0);
    while let Some(reply) = replies.message().await.expect("reply") {
        match reply.result {
            Some(v1::ingest_reply::Result::Ok(_)) => ok += 1,
            _ => failed += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ingest: {ok} ok, {failed} failed in {secs:.2}s = {:.0} commands/s",
        n as f64 / secs
    );
}
