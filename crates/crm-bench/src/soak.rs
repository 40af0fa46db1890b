//! `--phases soak`: minutes of mixed load on one durable nats-server and one `crm serve`,
//! with SIGKILLs at a fixed interval (the service; every third time the nats-server), then
//! the invariants checked on the log and the read model.
//!
//! The load: a generated business streamed through `Ingest` (every kind of command the
//! generator writes; the loader reconnects and re-sends what had no answer), unary
//! writers registering and changing their own customers (profile, consent, tags,
//! interactions, orders) who retry with the same command id until answered, and
//! GetCustomer360 at a fixed rate. At the end, with the service stopped:
//! - every acknowledged command that appended is in the log, once (no event of a
//!   command id twice on an aggregate);
//! - every aggregate's hash chain verifies;
//! - the read model the service built through the kills equals a fresh build of the
//!   same stream, byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use crm_events::{ChainVerifier, decode_message};
use crm_proto::v1::{
    self, command_service_client::CommandServiceClient, query_service_client::QueryServiceClient,
};
use crm_testkit::{CrmServe, CrmServeBuilder, Durability, NatsServer, Principal};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{Mutex, watch};
use tonic::transport::{Channel, Endpoint};

use crate::{authed, caught_up, order};

/// How long and how hard.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Seconds of load with faults.
    pub seconds: u64,
    /// Seconds between two kills.
    pub kill_every: u64,
    /// Customers of the business streamed through Ingest.
    pub customers: usize,
    /// Unary writers.
    pub writers: usize,
    /// GetCustomer360 per second.
    pub query_rate: u64,
}

impl Default for SoakConfig {
    fn default() -> Self {
        Self {
            seconds: 120,
            kill_every: 15,
            customers: 2_000,
            writers: 8,
            query_rate: 100,
        }
    }
}

/// What was injected and what held.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SoakReport {
    pub seconds: f64,
    pub kill_every_s: u64,
    pub crm_kills: u64,
    pub nats_kills: u64,
    /// From a kill to the service's ready line (or the nats-server's health), seconds.
    pub longest_restart_s: f64,
    /// Generated businesses streamed through Ingest, one after another.
    pub ingest_businesses: u64,
    pub ingest_commands: u64,
    pub ingest_accepted: u64,
    pub ingest_refused: u64,
    pub ingest_unknown: u64,
    pub ingest_reconnects: u64,
    pub ingest_resent: u64,
    /// Unary commands acknowledged, by kind.
    pub unary_acknowledged: BTreeMap<String, u64>,
    /// Unary sends repeated with the same command id after no answer.
    pub unary_retries: u64,
    /// Unary commands refused, by status code (expected: none).
    pub unary_refused: BTreeMap<String, u64>,
    pub queries_answered: u64,
    /// Queries that failed, by status code (expected while the service restarts).
    pub queries_failed: BTreeMap<String, u64>,
    pub log_messages: u64,
    pub log_events: u64,
    pub aggregates_verified: u64,
    pub chain_breaks: u64,
    /// Acknowledged commands that appended but are not in the log.
    pub acknowledged_missing: u64,
    /// Command ids with an event twice on one aggregate.
    pub duplicated: u64,
    pub read_model_keys: u64,
    /// Keys that differ between the service's read model and a fresh build.
    pub read_model_differences: u64,
}

impl SoakReport {
    /// Whether every invariant held.
    #[must_use]
    pub fn held(&self) -> bool {
        self.acknowledged_missing == 0
            && self.duplicated == 0
            && self.chain_breaks == 0
            && self.read_model_differences == 0
            && self.ingest_refused == 0
            && self.ingest_unknown == 0
            && self.unary_refused.is_empty()
    }

    /// The report as a Markdown table.
    #[must_use]
    pub fn table(&self) -> String {
        let unary: u64 = self.unary_acknowledged.values().sum();
        let kinds: Vec<String> = self
            .unary_acknowledged
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let failed: Vec<String> = self
            .queries_failed
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let refused: u64 = self.unary_refused.values().sum();
        let rows = [
            (
                "faults injected".to_owned(),
                format!(
                    "{} SIGKILLs of `crm serve`, {} of the nats-server, one every {} s over {:.0} s; longest restart {:.1} s",
                    self.crm_kills,
                    self.nats_kills,
                    self.kill_every_s,
                    self.seconds,
                    self.longest_restart_s
                ),
            ),
            (
                "bulk Ingest".into(),
                format!(
                    "{} businesses, {} commands: {} accepted, {} refused, {} unknown; {} reconnects, {} re-sent",
                    self.ingest_businesses,
                    self.ingest_commands,
                    self.ingest_accepted,
                    self.ingest_refused,
                    self.ingest_unknown,
                    self.ingest_reconnects,
                    self.ingest_resent
                ),
            ),
            (
                "unary writers".into(),
                format!(
                    "{unary} acknowledged ({}), {} retries with the same command id, {refused} refused",
                    kinds.join(", "),
                    self.unary_retries
                ),
            ),
            (
                "GetCustomer360".into(),
                format!(
                    "{} answered, failed: {}",
                    self.queries_answered,
                    if failed.is_empty() {
                        "none".into()
                    } else {
                        failed.join(", ")
                    }
                ),
            ),
            (
                "the log".into(),
                format!(
                    "{} messages, {} events, {} aggregates: {} acknowledged missing, {} duplicated, {} chain breaks",
                    self.log_messages,
                    self.log_events,
                    self.aggregates_verified,
                    self.acknowledged_missing,
                    self.duplicated,
                    self.chain_breaks
                ),
            ),
            (
                "the read model".into(),
                format!(
                    "{} keys, {} different from a fresh build of the same stream",
                    self.read_model_keys, self.read_model_differences
                ),
            ),
        ];
        let mut out = String::from("| soak | |\n|---|---|\n");
        for (k, v) in rows {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        out.push_str(&format!(
            "| verdict | {} |\n",
            if self.held() {
                "every invariant held"
            } else {
                "INVARIANTS BROKEN"
            }
        ));
        out
    }
}

/// An acknowledged unary command: its id and whether it appended.
struct Acked {
    command_id: String,
    appended: bool,
}

#[derive(Default)]
struct WriterOutcome {
    acked: Vec<Acked>,
    by_kind: BTreeMap<String, u64>,
    retries: u64,
    refused: BTreeMap<String, u64>,
}

/// A small deterministic generator (xorshift), one per writer.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap_or(0)
    }
}

fn options(command_id: &str) -> Option<v1::CommandOptions> {
    Some(v1::CommandOptions {
        command_id: command_id.into(),
        ..Default::default()
    })
}

/// One unary command: its kind and request, with a fresh command id.
fn next_command(
    rng: &mut Rng,
    own: &mut Vec<String>,
    i: usize,
) -> (&'static str, v1::ingest_request::Command) {
    use v1::ingest_request::Command as C;
    let id = uuid::Uuid::now_v7().to_string();
    if own.len() < 20 || rng.below(10) == 0 {
        let customer = uuid::Uuid::now_v7().to_string();
        own.push(customer.clone());
        return (
            "RegisterCustomer",
            C::RegisterCustomer(v1::RegisterCustomerRequest {
                options: options(&id),
                customer_id: customer,
                profile: Some(v1::Profile {
                    given_name: "Soak".into(),
                    family_name: format!("Writer{i}"),
                    emails: vec![format!("soak{i}@example.com")],
                    ..Default::default()
                }),
                ..Default::default()
            }),
        );
    }
    let customer = own[rng.below(own.len())].clone();
    let tag = ["vip", "newsletter", "b2b"][rng.below(3)].to_owned();
    match rng.below(6) {
        0 => (
            "UpdateProfile",
            C::UpdateProfile(v1::UpdateProfileRequest {
                options: options(&id),
                customer_id: customer,
                given_name: Some(format!("Soak{}", rng.below(1000))),
                ..Default::default()
            }),
        ),
        1 => (
            "SetConsent",
            C::SetConsent(v1::SetConsentRequest {
                options: options(&id),
                customer_id: customer,
                channel: v1::ConsentChannel::Email.into(),
                granted: rng.below(2) == 0,
                source: "soak".into(),
            }),
        ),
        2 => (
            "TagCustomer",
            C::TagCustomer(v1::TagCustomerRequest {
                options: options(&id),
                customer_id: customer,
                tag,
            }),
        ),
        3 => (
            "UntagCustomer",
            C::UntagCustomer(v1::UntagCustomerRequest {
                options: options(&id),
                customer_id: customer,
                tag,
            }),
        ),
        4 => (
            "LogInteraction",
            C::LogInteraction(v1::LogInteractionRequest {
                options: options(&id),
                customer_id: customer,
                interaction_id: uuid::Uuid::now_v7().to_string(),
                channel: v1::Channel::Email.into(),
                direction: v1::Direction::Inbound.into(),
                subject: "soak".into(),
                ..Default::default()
            }),
        ),
        _ => (
            "PlaceOrder",
            C::PlaceOrder(v1::PlaceOrderRequest {
                options: options(&id),
                ..order(&customer, i)
            }),
        ),
    }
}

async fn send(
    client: &mut CommandServiceClient<Channel>,
    token: &str,
    command: v1::ingest_request::Command,
) -> Result<v1::CommandReply, tonic::Status> {
    use v1::ingest_request::Command as C;
    match command {
        C::RegisterCustomer(r) => client.register_customer(authed(r, token)).await,
        C::UpdateProfile(r) => client.update_profile(authed(r, token)).await,
        C::SetConsent(r) => client.set_consent(authed(r, token)).await,
        C::TagCustomer(r) => client.tag_customer(authed(r, token)).await,
        C::UntagCustomer(r) => client.untag_customer(authed(r, token)).await,
        C::LogInteraction(r) => client.log_interaction(authed(r, token)).await,
        C::PlaceOrder(r) => client.place_order(authed(r, token)).await,
        other => return Err(tonic::Status::unimplemented(format!("{other:?}"))),
    }
    .map(tonic::Response::into_inner)
}

/// Whether a failed call may be sent again with the same command id: the service was
/// unreachable or restarting, or could not tell whether the command was applied.
fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Internal
            | tonic::Code::ResourceExhausted
    )
}

/// Writes its own customers until `stop`: each command is sent until answered.
async fn writer(
    i: usize,
    channel: Channel,
    token: String,
    customers: Arc<Mutex<Vec<(String, u64)>>>,
    stop: watch::Receiver<bool>,
) -> WriterOutcome {
    let mut client = CommandServiceClient::new(channel);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
    let mut own = Vec::new();
    let mut out = WriterOutcome::default();
    while !*stop.borrow() {
        let (kind, command) = next_command(&mut rng, &mut own, i);
        let started = Instant::now();
        loop {
            match send(&mut client, &token, command.clone()).await {
                Ok(reply) => {
                    out.acked.push(Acked {
                        command_id: reply.command_id,
                        appended: reply.events_appended > 0,
                    });
                    *out.by_kind.entry(kind.to_owned()).or_default() += 1;
                    if kind == "RegisterCustomer"
                        && let Some(c) = own.last()
                    {
                        customers.lock().await.push((c.clone(), reply.position));
                    }
                    break;
                }
                Err(s) if retryable(&s) && started.elapsed() < Duration::from_secs(120) => {
                    out.retries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(s) => {
                    *out.refused.entry(format!("{:?}", s.code())).or_default() += 1;
                    eprintln!("soak writer {i}: {kind} refused: {s:?}");
                    if kind == "RegisterCustomer" {
                        own.pop();
                    }
                    break;
                }
            }
        }
    }
    out
}

/// GetCustomer360 at `rate` on the writers' customers until `stop`, each with its
/// registration's position as the consistency token (so NOT_FOUND would be a bug).
async fn reader(
    channel: Channel,
    token: String,
    customers: Arc<Mutex<Vec<(String, u64)>>>,
    rate: u64,
    stop: watch::Receiver<bool>,
) -> (u64, BTreeMap<String, u64>) {
    let mut q = QueryServiceClient::new(channel);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut ok, mut failed) = (0u64, BTreeMap::<String, u64>::new());
    let mut n = 0usize;
    while !*stop.borrow() {
        tick.tick().await;
        let customer = {
            let all = customers.lock().await;
            if all.is_empty() {
                continue;
            }
            n = n.wrapping_add(7919);
            all[n % all.len()].clone()
        };
        let (customer_id, position) = customer;
        let request = v1::GetCustomer360Request {
            customer_id,
            consistency: Some(v1::Consistency {
                min_position: position,
            }),
            ..Default::default()
        };
        match tokio::time::timeout(
            Duration::from_secs(5),
            q.get_customer360(authed(request, &token)),
        )
        .await
        {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(s)) => *failed.entry(format!("{:?}", s.code())).or_default() += 1,
            Err(_) => *failed.entry("timeout".into()).or_default() += 1,
        }
    }
    (ok, failed)
}

/// SIGKILLs the service every `kill_every` (the nats-server every third time) and starts
/// it again, until `seconds` have passed. Returns the service, the server and what it did.
async fn killer(
    mut crm: CrmServe,
    builder: CrmServeBuilder,
    mut nats: NatsServer,
    cfg: &SoakConfig,
    log: &impl Fn(&str),
) -> anyhow::Result<(CrmServe, NatsServer, u64, u64, f64)> {
    let started = Instant::now();
    let (mut crm_kills, mut nats_kills, mut longest) = (0u64, 0u64, 0f64);
    let mut n = 0;
    loop {
        let next = Duration::from_secs(cfg.kill_every * (n + 1));
        if next >= Duration::from_secs(cfg.seconds) {
            break;
        }
        tokio::time::sleep(next.saturating_sub(started.elapsed())).await;
        n += 1;
        let down = Instant::now();
        if n % 3 == 0 {
            nats.kill();
            nats = tokio::task::spawn_blocking(move || {
                nats.restart();
                nats
            })
            .await?;
            nats_kills += 1;
            log(&format!(
                "soak: nats-server SIGKILLed and back in {:.1}s",
                down.elapsed().as_secs_f64()
            ));
        } else {
            crm.kill()?;
            let b = builder.clone();
            crm = tokio::task::spawn_blocking(move || b.start()).await??;
            crm_kills += 1;
            log(&format!(
                "soak: crm serve SIGKILLed and ready again in {:.1}s",
                down.elapsed().as_secs_f64()
            ));
        }
        longest = longest.max(down.elapsed().as_secs_f64());
    }
    tokio::time::sleep(Duration::from_secs(cfg.seconds).saturating_sub(started.elapsed())).await;
    Ok((crm, nats, crm_kills, nats_kills, longest))
}

/// Runs the soak with `crm_bin`.
///
/// # Errors
/// A process cannot be started, or a step fails outright (a broken invariant is
/// reported, not an error).
pub async fn run(
    crm_bin: &Path,
    cfg: &SoakConfig,
    log: &impl Fn(&str),
) -> anyhow::Result<SoakReport> {
    let nats = NatsServer::builder().durability(Durability::Always).start();
    let url = nats.url();
    let dir = tempfile::tempdir()?;
    let admin = Principal::service("soak", &["admin"]);
    let listen = format!(
        "127.0.0.1:{}",
        crm_testkit::port_outside_the_ephemeral_range()
    );
    let builder = CrmServe::builder(crm_bin, dir.path())
        .listen(&listen)
        .principals(std::slice::from_ref(&admin))
        .args(["--nats-url", url.as_str()])
        .args([
            std::ffi::OsStr::new("--master-key-file"),
            crate::bench_master_key_file()?.as_os_str(),
        ])
        .log("error");
    let crm = builder.clone().start().context("starting crm serve")?;
    let channel = Endpoint::from_shared(crm.url())?
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let token = admin.token.clone();
    let mut report = SoakReport::default();
    let started = Instant::now();
    log(&format!(
        "soak: {} s, a kill every {} s, {} customers through Ingest, {} unary writers, GetCustomer360 at {}/s",
        cfg.seconds, cfg.kill_every, cfg.customers, cfg.writers, cfg.query_rate
    ));

    let (stop, stopped) = watch::channel(false);
    // Businesses streamed through Ingest one after another until the load stops, so
    // that the loader meets the kills.
    let ingest = tokio::spawn({
        let (channel, token, stopped) = (channel.clone(), token.clone(), stopped.clone());
        let customers = cfg.customers;
        async move {
            let mut done = Vec::new();
            for seed in 7.. {
                if *stopped.borrow() {
                    break;
                }
                let data = Arc::new(crm_datagen::generate(&crm_datagen::Params::new(
                    seed, customers,
                ))?);
                let report = crm_datagen::ingest::ingest_with(
                    channel.clone(),
                    &token,
                    Arc::clone(&data).shared_requests().map(Ok::<_, String>),
                    crm_datagen::ingest::Reconnect::default(),
                    |_| {},
                )
                .await?;
                done.push((data, report));
            }
            anyhow::Ok(done)
        }
    });
    let customers = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..cfg.writers)
        .map(|i| {
            tokio::spawn(writer(
                i,
                channel.clone(),
                token.clone(),
                Arc::clone(&customers),
                stopped.clone(),
            ))
        })
        .collect();
    let reader = tokio::spawn(reader(
        channel.clone(),
        token.clone(),
        Arc::clone(&customers),
        cfg.query_rate,
        stopped.clone(),
    ));
    let (mut crm, nats, crm_kills, nats_kills, longest) =
        killer(crm, builder, nats, cfg, log).await?;
    let _ = stop.send(true);
    report.crm_kills = crm_kills;
    report.kill_every_s = cfg.kill_every;
    report.nats_kills = nats_kills;
    report.longest_restart_s = longest;
    let mut acked = Vec::new();
    for w in writers {
        let w = w.await?;
        acked.extend(w.acked);
        for (k, n) in w.by_kind {
            *report.unary_acknowledged.entry(k).or_default() += n;
        }
        for (k, n) in w.refused {
            *report.unary_refused.entry(k).or_default() += n;
        }
        report.unary_retries += w.retries;
    }
    (report.queries_answered, report.queries_failed) = reader.await?;
    let ingested = ingest.await?.context("the bulk ingest gave up")?;
    report.seconds = started.elapsed().as_secs_f64();
    for (data, r) in &ingested {
        for f in r.failures.iter().take(5) {
            log(&format!(
                "soak: ingest #{} refused ({}): {}",
                f.sequence, f.code, f.message
            ));
        }
        report.ingest_businesses += 1;
        report.ingest_commands += data.summary.commands;
        report.ingest_accepted += r.ok;
        report.ingest_refused += r.failed;
        report.ingest_unknown += r.unknown;
        report.ingest_reconnects += r.reconnects;
        report.ingest_resent += r.resent;
    }
    log(&format!(
        "soak: load stopped after {:.0}s; checking the invariants",
        report.seconds
    ));

    // Everything acknowledged is applied by the read model before the service stops.
    let last = last_sequence(&url).await?;
    caught_up(&channel, &token, last).await?;
    crm.stop(Duration::from_secs(60)).await?;
    check_log(&url, &acked, &ingested, &mut report).await?;
    compare_read_model(&url, crm.data(), last, &mut report).await?;
    drop(nats);
    log(&format!(
        "soak: {}",
        if report.held() {
            "every invariant held"
        } else {
            "INVARIANTS BROKEN"
        }
    ));
    Ok(report)
}

async fn last_sequence(url: &str) -> anyhow::Result<u64> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    let mut stream = js.get_stream("CRM_EVENTS").await?;
    Ok(stream.info().await?.state.last_sequence)
}

/// Reads the whole log: counts, chains, duplicates, and the acknowledged commands.
async fn check_log(
    url: &str,
    acked: &[Acked],
    ingested: &[(Arc<crm_datagen::Dataset>, crm_datagen::ingest::Report)],
    report: &mut SoakReport,
) -> anyhow::Result<()> {
    use crm_proto::IntoCommand as _;
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    let mut stream = js.get_stream("CRM_EVENTS").await?;
    let last = stream.info().await?.state.last_sequence;
    let mut messages = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await?
        .messages()
        .await?;
    let mut chains: BTreeMap<crm_domain::AggregateRef, ChainVerifier> = BTreeMap::new();
    let mut seen: BTreeMap<(uuid::Uuid, crm_domain::AggregateRef, u16), u32> = BTreeMap::new();
    let mut read = 0u64;
    while read < last {
        let m = messages.next().await.context("the stream ended")??;
        read += 1;
        let Ok(events) = decode_message(&m.payload) else {
            report.chain_breaks += 1;
            continue;
        };
        for e in &events {
            report.log_events += 1;
            let chain = chains
                .entry(e.aggregate)
                .or_insert_with(|| ChainVerifier::new(e.aggregate));
            if chain.push(e).is_err() {
                report.chain_breaks += 1;
            }
            *seen
                .entry((e.meta.command_id.0, e.aggregate, e.meta.commit_index))
                .or_default() += 1;
        }
    }
    report.log_messages = read;
    report.aggregates_verified = chains.len() as u64;
    report.duplicated = seen.values().filter(|n| **n > 1).count() as u64;
    let in_log: BTreeSet<uuid::Uuid> = seen.keys().map(|(c, ..)| *c).collect();
    report.acknowledged_missing = acked
        .iter()
        .filter(|a| a.appended)
        .filter(|a| {
            a.command_id
                .parse::<uuid::Uuid>()
                .map_or(true, |id| !in_log.contains(&id))
        })
        .count() as u64;
    // The ingested businesses: every accepted command that was not a no-op appended
    // something under its command id.
    for (data, r) in ingested {
        let ids: BTreeSet<uuid::Uuid> = data
            .requests()
            .filter_map(|q| q.options().and_then(|o| o.command_id.parse().ok()))
            .collect();
        let found = ids.iter().filter(|id| in_log.contains(*id)).count() as u64;
        report.acknowledged_missing += r.ok.saturating_sub(r.noop).saturating_sub(found);
    }
    Ok(())
}

/// The service's live 360 build against a fresh build of the same stream.
async fn compare_read_model(
    url: &str,
    data_dir: &Path,
    last: u64,
    report: &mut SoakReport,
) -> anyhow::Result<()> {
    let db = sled::open(data_dir.join("read-models"))?;
    let Some(tree) = crm_projection::live_tree(&db, "customer360")? else {
        bail!("the service has no live customer360 build");
    };
    let served: BTreeMap<Vec<u8>, Vec<u8>> = db
        .open_tree(&tree)?
        .iter()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()?;
    drop(db);
    let fresh_dir = tempfile::tempdir()?;
    let fresh_db = sled::open(fresh_dir.path())?;
    let store = Arc::new(crm_projection::ProjectionStore::open(
        &fresh_db,
        crm_customer360::Customer360::default(),
        crm_store::LogConfig::default().scheme(),
    )?);
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    // Personal data opened as the service opened it.
    let keys = crm_store::keys::KeyRing::open_for_reading(
        &js,
        &crate::bench_master_key_file()?,
        Duration::from_secs(10),
    )
    .await?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(crm_projection::run(
        Arc::clone(&store),
        js,
        crm_projection::RunnerConfig {
            keys: Some(Arc::new(keys)),
            ..crm_projection::RunnerConfig::default()
        },
        stopped,
    ));
    if !store
        .reader()
        .wait_for(last, Duration::from_secs(600))
        .await
    {
        bail!("the fresh build did not reach {last}");
    }
    let _ = stop.send(true);
    task.await??;
    let fresh: BTreeMap<Vec<u8>, Vec<u8>> = store
        .reader()
        .contents()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()?;
    report.read_model_keys = served.len() as u64;
    let keys: BTreeSet<&Vec<u8>> = served.keys().chain(fresh.keys()).collect();
    report.read_model_differences = keys
        .into_iter()
        .filter(|k| served.get(*k) != fresh.get(*k))
        .count() as u64;
    Ok(())
}
