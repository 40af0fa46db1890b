//! `cargo xtask bench`: one run, one nats-server per durability mode, the project's figures
//! next to raw JetStream baselines measured in the same run, each project figure reported
//! as a ratio to its baseline.
//!
//! Per mode (durable: fsync before ack; lazy: the server's default fsync):
//! 1. **raw publish**: pipelined async-nats publishes with
//!    `Nats-Expected-Last-Subject-Sequence`, one subject per customer, event-sized payloads;
//! 2. **bulk ingest**: a generated business through `Ingest` (client -> gRPC -> decide ->
//!    JetStream ack -> reply), and **unary** PlaceOrder with 64 calls in flight (p50/p99);
//! 3. **projection lag**: PlaceOrder at a fixed rate, commit-to-visible p50/p99 measured with
//!    consistency-token queries on every 10th command.
//!
//! Once (durable run): the **raw ordered-consumer read** of the whole stream and the full
//! **rebuild** of the 360 model from it; **GetCustomer360** at a fixed rate (p50/p99) and its
//! maximum with 64 in flight; a **blue/green rebuild** inside the service (AdminService)
//! with GetCustomer360 at the same fixed rate until it takes over; **memory**: the
//! service's peak RSS and the on-disk size per million events; **exports**: `crm-analyst
//! export` of the stream to JSON Lines, CSV and Parquet (rows/s, the tool's peak RSS).
//!
//! `--phases` runs a subset ([`Phase`]); the business is always ingested first.
//!
//! `crm serve` runs as a child process (`--nats-url` the bench's server), so its RSS is its
//! own; the load generator shares the machine's cores with it, as a co-located client would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod churn;
pub mod export;
mod soak;
use crm_analyst::Named;
use crm_proto::v1::{
    self, command_service_client::CommandServiceClient, query_service_client::QueryServiceClient,
};
use crm_testkit::{CrmServe, Durability, NatsServer, Principal};
use futures::StreamExt;
use serde::Serialize;
pub use soak::{SoakConfig, SoakReport};
use tokio::sync::Mutex;
use tonic::Request;
use tonic::transport::Channel;

/// A part of the bench that can be run on its own (`--phases`). The generated business is
/// always ingested (durable mode) since every other phase reads or adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Raw publish baseline (per mode).
    Raw,
    /// Unary commands, 64 in flight (per mode).
    Unary,
    /// Projection lag at a fixed rate (per mode).
    Lag,
    /// GetCustomer360 at a fixed rate and at its maximum; FunnelService at a fixed rate.
    Queries,
    /// Raw ordered read and the full 360 and funnel rebuilds into fresh directories.
    Rebuild,
    /// A blue/green rebuild inside the service while GetCustomer360 runs at a fixed rate.
    BlueGreen,
    /// Minutes of mixed load with SIGKILLs, then the invariants checked (its own servers;
    /// not in the default set).
    Soak,
    /// The churn models fitted on simulated populations of 100k and 1M customers (no
    /// service).
    Churn,
    /// `crm-analyst export` of the whole stream to JSON Lines, CSV and Parquet: rows/s and
    /// the tool's peak RSS.
    Export,
}

impl Phase {
    pub const ALL: [Self; 9] = [
        Self::Churn,
        Self::Export,
        Self::Raw,
        Self::Unary,
        Self::Lag,
        Self::Queries,
        Self::Rebuild,
        Self::BlueGreen,
        Self::Soak,
    ];
    /// What `cargo xtask bench` runs without `--phases`.
    pub const DEFAULT: [Self; 8] = [
        Self::Churn,
        Self::Export,
        Self::Raw,
        Self::Unary,
        Self::Lag,
        Self::Queries,
        Self::Rebuild,
        Self::BlueGreen,
    ];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Unary => "unary",
            Self::Lag => "lag",
            Self::Queries => "queries",
            Self::Rebuild => "rebuild",
            Self::BlueGreen => "bluegreen",
            Self::Soak => "soak",
            Self::Churn => "churn",
            Self::Export => "export",
        }
    }

    /// Parses a comma-separated list of phase names.
    ///
    /// # Errors
    /// A name that is not a phase (the message lists them).
    pub fn parse_list(list: &str) -> Result<std::collections::BTreeSet<Self>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| {
                Self::ALL
                    .into_iter()
                    .find(|p| p.name() == n)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
                        format!("unknown phase {n:?}: one of {}", names.join(", "))
                    })
            })
            .collect()
    }

    /// Whether the phase is measured in both durability modes.
    const fn per_mode(self) -> bool {
        matches!(self, Self::Raw | Self::Unary | Self::Lag)
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The phases to run (all by default).
    pub phases: std::collections::BTreeSet<Phase>,
    pub crm_bin: PathBuf,
    /// `crm-analyst`, for the export phase.
    pub analyst_bin: PathBuf,
    /// Customers of the generated business (bulk ingest).
    pub customers: usize,
    /// Unary commands and raw publishes per mode.
    pub unary: usize,
    /// Seconds of each fixed-rate phase.
    pub seconds: u64,
    pub lag_rate_durable: u64,
    pub lag_rate_lazy: u64,
    pub query_rate: u64,
    /// FunnelService queries per second of the queries phase (a mix of its five RPCs,
    /// each computed over every deal, lead or campaign: far heavier than a 360 read).
    pub funnel_query_rate: u64,
    pub out_json: Option<PathBuf>,
    /// Write-back cache and flush size of a build, MiB (`crm serve --fold-cache-mib`,
    /// `--fold-flush-mib`; the offline rebuild uses the same).
    pub fold_cache_mib: u64,
    pub fold_flush_mib: u64,
    pub soak: SoakConfig,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            phases: Phase::DEFAULT.into_iter().collect(),
            crm_bin: PathBuf::from("target/release/crm"),
            analyst_bin: PathBuf::from("target/release/crm-analyst"),
            customers: 5_000,
            unary: 20_000,
            seconds: 20,
            lag_rate_durable: 2_000,
            lag_rate_lazy: 5_000,
            query_rate: 2_000,
            funnel_query_rate: 20,
            out_json: None,
            fold_cache_mib: 384,
            fold_flush_mib: 2,
            soak: SoakConfig::default(),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut v: Vec<Duration>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort();
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
        Self {
            samples: v.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: v[v.len() - 1].as_secs_f64() * 1e3,
        }
    }
}

/// Figures of one durability mode.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ModeFigures {
    pub mode: String,
    pub raw_publish_per_s: f64,
    pub bulk_ingest_commands: u64,
    pub bulk_ingest_per_s: f64,
    pub bulk_ingest_ratio: f64,
    /// Seconds the read model needed after the ingest's last acknowledgement.
    pub ingest_catch_up_s: f64,
    pub unary_per_s: f64,
    pub unary_ratio: f64,
    pub unary_latency: Latency,
    pub lag_rate: u64,
    pub lag_achieved_per_s: f64,
    pub lag: Latency,
    pub lag_errors: u64,
    /// The failed calls of the lag phase by RPC and status code (an open-loop load above
    /// what the service sustains is refused with `RESOURCE_EXHAUSTED` or waits past its
    /// deadline).
    pub lag_error_kinds: BTreeMap<String, u64>,
}

/// Figures measured once.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Shared {
    /// Stored messages (a command's events on one aggregate share one message).
    pub stream_messages: u64,
    pub stream_events: u64,
    /// Raw ordered-consumer read, messages/s.
    pub raw_read_per_s: f64,
    /// Full rebuild of the 360 model, messages/s (the same unit as the raw read).
    pub rebuild_per_s: f64,
    pub rebuild_events_per_s: f64,
    pub rebuild_ratio: f64,
    /// Full rebuild of the funnel model into a fresh directory, messages/s, and its ratio
    /// to the raw read.
    pub funnel_rebuild_per_s: f64,
    pub funnel_rebuild_ratio: f64,
    /// Full rebuild of the churn model into a fresh directory, messages/s, and its ratio
    /// to the raw read.
    pub churn_rebuild_per_s: f64,
    pub churn_rebuild_ratio: f64,
    /// Through the running service: FitModel (serve) on the whole business, seconds;
    /// ListAtRisk's first page (which ranks every customer) and the next one (from the
    /// same snapshot), milliseconds.
    pub churn_fit_seconds: f64,
    pub churn_first_page_ms: f64,
    pub churn_next_page_ms: f64,
    /// `crm-audit verify` of the whole stream, messages/s, its ratio to the raw read and
    /// its findings (0 expected); `crm-audit history` of 20 customers.
    pub verify_per_s: f64,
    pub verify_ratio: f64,
    pub verify_findings: usize,
    pub history_latency: Latency,
    pub query_rate: u64,
    pub query_latency: Latency,
    pub query_max_per_s: f64,
    pub funnel_query_rate: u64,
    pub funnel_query_latency: Latency,
    pub funnel_query_latency_by_rpc: BTreeMap<String, Latency>,
    pub funnel_query_errors: u64,
    pub service_peak_rss_mib: f64,
    /// Blue/green rebuild inside the service: messages/s from the request to the switch,
    /// its ratio to the raw read, and GetCustomer360 at `query_rate` meanwhile.
    pub bluegreen_per_s: f64,
    pub bluegreen_ratio: f64,
    pub bluegreen_seconds: f64,
    pub bluegreen_query_latency: Latency,
    pub bluegreen_query_errors: u64,
    pub stream_mib_per_million_events: f64,
    pub read_model_mib_per_million_events: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub date: String,
    pub machine: String,
    pub config: BTreeMap<String, String>,
    pub modes: Vec<ModeFigures>,
    pub shared: Shared,
    /// CPU steal per phase, percent of the machine's CPU time (see [`CpuTimes`]).
    pub steal_pct: BTreeMap<String, f64>,
    pub soak: Option<SoakReport>,
    pub churn: Vec<churn::ChurnFit>,
    pub export: Vec<export::ExportRun>,
}

/// The machine's CPU time counters from `/proc/stat`. "Steal" is time the hypervisor ran
/// other guests while this one wanted the CPU; on a shared VM it changes from run to run
/// (0-60% seen on the development machine) and explains much of the spread between runs,
/// so every phase reports it next to its figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CpuTimes {
    total: u64,
    steal: u64,
}

impl CpuTimes {
    fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        Self::parse(stat.lines().next()?)
    }

    /// The aggregate `cpu` line: user nice system idle iowait irq softirq steal [guest
    /// guest_nice]; guest time is already counted in user, so the first eight are the
    /// total.
    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let v = fields
            .map(str::parse::<u64>)
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        Some(Self {
            total: v.iter().take(8).sum(),
            steal: *v.get(7)?,
        })
    }

    /// Steal between `before` and `after`, percent of all CPU time; 0 when unknown.
    fn steal_pct(before: Option<Self>, after: Option<Self>) -> f64 {
        let (Some(b), Some(a)) = (before, after) else {
            return 0.0;
        };
        let total = a.total.saturating_sub(b.total);
        if total == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let pct = a.steal.saturating_sub(b.steal) as f64 * 100.0 / total as f64;
        pct
    }
}

/// Records each phase's CPU steal.
#[derive(Default)]
struct Steal {
    phases: BTreeMap<String, f64>,
    since: Option<CpuTimes>,
}

impl Steal {
    fn start(&mut self) {
        self.since = CpuTimes::now();
    }

    /// Ends the phase `name`; returns its steal (percent).
    fn end(&mut self, name: &str) -> f64 {
        let pct = CpuTimes::steal_pct(self.since, CpuTimes::now());
        self.phases.insert(name.to_owned(), pct);
        pct
    }
}

/// `crm serve`'s write-back flags when they are not its defaults (so the bench also runs
/// a `crm` from before they existed, for back-to-back comparisons).
fn fold_args(cfg: &BenchConfig) -> Vec<String> {
    let d = BenchConfig::default();
    let mut args = Vec::new();
    if cfg.fold_cache_mib != d.fold_cache_mib {
        args.extend(["--fold-cache-mib".into(), cfg.fold_cache_mib.to_string()]);
    }
    if cfg.fold_flush_mib != d.fold_flush_mib {
        args.extend(["--fold-flush-mib".into(), cfg.fold_flush_mib.to_string()]);
    }
    args
}

/// A `crm serve` child on an existing NATS server, with an admin's and an analyst's
/// token.
struct Service {
    process: CrmServe,
    addr: String,
    token: String,
    analyst: String,
    /// Dropped after the process.
    data_dir: tempfile::TempDir,
}

impl Service {
    fn start(cfg: &BenchConfig, nats_url: &str) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir()?;
        let admin = Principal::service("bench", &["admin"]);
        let analyst = Principal::service("bench-analyst", &["analyst"]);
        // The notary runs as in production (its anchors are part of what `verify`
        // checks); with an external server its key must be given.
        let key = data_dir.path().join("notary.key");
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key)?;
            writeln!(f, "{}", hex::encode(BENCH_NOTARY_SEED))?;
        }
        let process = CrmServe::builder(&cfg.crm_bin, data_dir.path())
            .principals(&[admin.clone(), analyst.clone()])
            .args(["--nats-url", nats_url, "--max-concurrent-requests", "4096"])
            .args([std::ffi::OsStr::new("--notary-key"), key.as_os_str()])
            .args([
                std::ffi::OsStr::new("--master-key-file"),
                bench_master_key_file()?.as_os_str(),
            ])
            .args(fold_args(cfg))
            .start()
            .with_context(|| format!("cannot start {}", cfg.crm_bin.display()))?;
        Ok(Self {
            addr: process.url(),
            token: admin.token,
            analyst: analyst.token,
            process,
            data_dir,
        })
    }

    fn peak_rss_mib(&self) -> f64 {
        self.process.peak_rss_mib()
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        self.process.stop(Duration::from_secs(60)).await?;
        Ok(())
    }
}

pub(crate) fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    if let Ok(v) = format!("Bearer {token}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Pipelined publishes with expected subject sequence 0 over `n` subjects.
async fn raw_publish(url: &str, n: usize, size: usize) -> anyhow::Result<f64> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RAW".into(),
        subjects: vec!["raw.>".into()],
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![7u8; size]);
    let start = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    for i in 0..n {
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.clone())
            .expected_last_subject_sequence(0);
        acks.push(
            js.send_publish(format!("raw.{i}"), publish)
                .await?
                .into_future(),
        );
        while acks.len() > 1024 {
            acks.next().await.context("ack")??;
        }
    }
    while let Some(a) = acks.next().await {
        a?;
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

pub(crate) fn order(customer: &str, i: usize) -> v1::PlaceOrderRequest {
    v1::PlaceOrderRequest {
        customer_id: customer.to_owned(),
        sales_channel: "web".into(),
        currency: "EUR".into(),
        lines: vec![v1::OrderLine {
            sku: format!("SKU-{}", i % 50),
            category: ["books", "games", "garden"][i % 3].into(),
            quantity: 1,
            #[allow(clippy::cast_possible_wrap)]
            unit_price_minor: 500 + (i as i64 % 40) * 100,
        }],
        ..Default::default()
    }
}

/// Unary PlaceOrder, `in_flight` at a time: commands/s and latency.
async fn unary(
    channel: &Channel,
    token: &str,
    ids: &[String],
    n: usize,
    in_flight: usize,
) -> anyhow::Result<(f64, Latency, u64)> {
    let start = Instant::now();
    let calls = futures::stream::iter(0..n).map(|i| {
        let mut client = CommandServiceClient::new(channel.clone());
        let customer = ids[(i * 7919) % ids.len()].clone();
        let token = token.to_owned();
        async move {
            let t = Instant::now();
            client
                .place_order(authed(order(&customer, i), &token))
                .await
                .map(|r| (t.elapsed(), r.into_inner().position))
        }
    });
    let replies: Vec<(Duration, u64)> = calls
        .buffer_unordered(in_flight)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let position = replies.iter().map(|(_, p)| *p).max().unwrap_or(0);
    Ok((
        rate,
        Latency::of(replies.into_iter().map(|(d, _)| d).collect()),
        position,
    ))
}

/// Waits until the service's read model has applied `position`, so a phase does not
/// measure the previous phase's backlog. Returns how long that took.
pub(crate) async fn caught_up(
    channel: &Channel,
    token: &str,
    position: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut q = QueryServiceClient::new(channel.clone());
    loop {
        let r = q
            .list_customers(authed(
                v1::ListCustomersRequest {
                    page_size: 1,
                    consistency: Some(v1::Consistency {
                        min_position: position,
                    }),
                    ..Default::default()
                },
                token,
            ))
            .await;
        match r {
            Ok(_) => return Ok(started.elapsed()),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                if started.elapsed() > Duration::from_secs(3600) {
                    bail!("the read model did not reach position {position} within an hour");
                }
            }
            Err(s) => return Err(s.into()),
        }
    }
}

/// When an open-loop request's latency starts: its scheduled time when the sender fell
/// more than 2 ms behind (a stall is not hidden), else when it was sent (tokio's 1 ms
/// timer would add up to a millisecond of sleep overshoot to every sample).
fn origin(scheduled: Instant) -> Instant {
    let now = Instant::now();
    if now.duration_since(scheduled) > Duration::from_millis(2) {
        scheduled
    } else {
        now
    }
}

/// PlaceOrder at `rate` for `seconds`; every 10th acknowledged command is followed by a
/// GetCustomer360 with its position as consistency token: time from ack to answer.
async fn lag(
    channel: &Channel,
    token: &str,
    ids: &Arc<Vec<String>>,
    rate: u64,
    seconds: u64,
) -> (f64, Latency, BTreeMap<String, u64>, u64) {
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let total = rate * seconds;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let last = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..total {
        let scheduled = started + period.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (channel, token, ids) = (channel.clone(), token.to_owned(), ids.clone());
        let (samples, errors, last) = (samples.clone(), errors.clone(), last.clone());
        tasks.push(tokio::spawn(async move {
            #[allow(clippy::cast_possible_truncation)]
            let customer = ids[(i as usize * 7919) % ids.len()].clone();
            let reply = CommandServiceClient::new(channel.clone())
                .place_order(authed(order(&customer, i as usize), &token))
                .await;
            let acked = Instant::now();
            let reply = match reply {
                Ok(reply) => reply,
                Err(status) => {
                    let kind = format!("PlaceOrder {:?}", status.code());
                    *errors.lock().await.entry(kind).or_default() += 1;
                    return;
                }
            };
            let position = reply.into_inner().position;
            last.fetch_max(position, Ordering::Relaxed);
            if i % 10 != 0 {
                return;
            }
            let visible = QueryServiceClient::new(channel)
                .get_customer360(authed(
                    v1::GetCustomer360Request {
                        customer_id: customer,
                        consistency: Some(v1::Consistency {
                            min_position: position,
                        }),
                        ..Default::default()
                    },
                    &token,
                ))
                .await;
            match visible {
                Ok(_) => samples.lock().await.push(acked.elapsed()),
                Err(status) => {
                    let kind = format!("GetCustomer360 {:?}", status.code());
                    *errors.lock().await.entry(kind).or_default() += 1;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    #[allow(clippy::cast_precision_loss)]
    let achieved = total as f64 / started.elapsed().as_secs_f64();
    let samples = std::mem::take(&mut *samples.lock().await);
    (
        achieved,
        Latency::of(samples),
        std::mem::take(&mut *errors.lock().await),
        last.load(Ordering::Relaxed),
    )
}

/// GetCustomer360 at `rate` for `seconds` (open loop), then the maximum with 64 in flight.
/// GetCustomer360 at `rate` per second (open loop: latency from each call's scheduled
/// time) until `stop(i)` says so before call `i`; the latencies of the answered calls and
/// the number that failed.
/// Which queries a fixed-rate load sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    /// GetCustomer360 of customers spread over the business.
    Customer360,
    /// FunnelService's five RPCs in turn (default arguments: every deal, lead or campaign).
    Funnel,
}

/// Query `i` of a load; `Ok` when it was answered.
async fn query(
    load: Load,
    channel: Channel,
    token: &str,
    ids: &[String],
    i: u64,
) -> Result<(), tonic::Status> {
    use crm_proto::v1::funnel_service_client::FunnelServiceClient;
    #[allow(clippy::cast_possible_truncation)]
    let k = i as usize;
    match load {
        Load::Customer360 => {
            let customer_id = ids[(k * 104_729) % ids.len()].clone();
            QueryServiceClient::new(channel)
                .get_customer360(authed(
                    v1::GetCustomer360Request {
                        customer_id,
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(drop)
        }
        Load::Funnel => {
            let mut f = FunnelServiceClient::new(channel);
            match k % FUNNEL_RPCS.len() {
                0 => f
                    .get_pipeline_funnel(authed(v1::GetPipelineFunnelRequest::default(), token))
                    .await
                    .map(drop),
                1 => {
                    // The quarter of the business's last months.
                    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
                    f.get_forecast(authed(
                        v1::GetForecastRequest {
                            period_start: at(1_790_812_800),
                            period_end: at(1_798_761_600),
                            group_by: v1::ForecastGroupBy::Owner.into(),
                            ..Default::default()
                        },
                        token,
                    ))
                    .await
                    .map(drop)
                }
                2 => f
                    .get_lead_funnel(authed(
                        v1::GetLeadFunnelRequest {
                            group_by: v1::LeadGroupBy::Source.into(),
                            ..Default::default()
                        },
                        token,
                    ))
                    .await
                    .map(drop),
                3 => f
                    .get_campaign_performance(authed(
                        v1::GetCampaignPerformanceRequest::default(),
                        token,
                    ))
                    .await
                    .map(drop),
                _ => f
                    .list_deals(authed(
                        v1::ListDealsRequest {
                            state: v1::DealState::Open.into(),
                            page_size: 50,
                            ..Default::default()
                        },
                        token,
                    ))
                    .await
                    .map(drop),
            }
        }
    }
}

async fn fixed_rate_queries(
    channel: &Channel,
    token: &str,
    ids: &Arc<Vec<String>>,
    rate: u64,
    mut stop: impl FnMut(u64) -> bool,
) -> (Latency, u64) {
    let (samples, failed) =
        fixed_rate(Load::Customer360, channel, token, ids, rate, &mut stop).await;
    (
        Latency::of(samples.into_iter().map(|(_, d)| d).collect()),
        failed,
    )
}

/// Sends `load`'s queries at `rate` (open loop: each at its scheduled time, whatever the
/// previous ones do) until `stop(i)`. Returns each answered query's number and latency
/// from its scheduled time, and how many failed.
async fn fixed_rate(
    load: Load,
    channel: &Channel,
    token: &str,
    ids: &Arc<Vec<String>>,
    rate: u64,
    stop: &mut impl FnMut(u64) -> bool,
) -> (Vec<(u64, Duration)>, u64) {
    #[allow(clippy::cast_precision_loss)]
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut i = 0u64;
    while !stop(i) {
        #[allow(clippy::cast_precision_loss)]
        let scheduled = started + period.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (channel, token, ids, samples, failed) = (
            channel.clone(),
            token.to_owned(),
            ids.clone(),
            samples.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let sent = origin(scheduled);
            let r = query(load, channel, &token, &ids, i).await;
            if r.is_ok() {
                samples.lock().await.push((i, sent.elapsed()));
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
        i += 1;
    }
    for t in tasks {
        let _ = t.await;
    }
    let samples = std::mem::take(&mut *samples.lock().await);
    (samples, failed.load(Ordering::Relaxed))
}

/// The RPC query `i` of the funnel load sends.
const FUNNEL_RPCS: [&str; 5] = [
    "GetPipelineFunnel",
    "GetForecast",
    "GetLeadFunnel",
    "GetCampaignPerformance",
    "ListDeals",
];

async fn queries(
    channel: &Channel,
    token: &str,
    ids: &Arc<Vec<String>>,
    rate: u64,
    seconds: u64,
) -> (Latency, f64) {
    let total = rate * seconds;
    let (latency, _) = fixed_rate_queries(channel, token, ids, rate, |i| i >= total).await;

    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds.min(10));
    let mut workers = Vec::new();
    for w in 0..64usize {
        let (channel, token, ids, done) =
            (channel.clone(), token.to_owned(), ids.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut client = QueryServiceClient::new(channel);
            let mut k = w;
            while Instant::now() < until {
                k = (k + 7919) % ids.len();
                let ok = client
                    .get_customer360(authed(
                        v1::GetCustomer360Request {
                            customer_id: ids[k].clone(),
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await
                    .is_ok();
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    #[allow(clippy::cast_precision_loss)]
    let max = done.load(Ordering::Relaxed) as f64 / seconds.min(10) as f64;
    (latency, max)
}

/// What [`rebuild`] measured.
struct Rebuilt {
    messages: u64,
    events: u64,
    raw_per_s: f64,
    rebuild_per_s: f64,
    rebuild_events_per_s: f64,
    funnel_rebuild_per_s: f64,
    churn_rebuild_per_s: f64,
    verify_per_s: f64,
    verify_findings: usize,
}

/// The raw ordered-consumer read of the stream, `crm-audit verify`, then full rebuilds of the 360 and the
/// funnel models, one after the other.
async fn rebuild(url: &str) -> anyhow::Result<Rebuilt> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    let mut stream = js.get_stream("CRM_EVENTS").await?;
    let last = stream.info().await?.state.last_sequence;
    let started = Instant::now();
    let mut messages = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await?
        .messages()
        .await?;
    let mut read = 0u64;
    while read < last {
        messages.next().await.context("stream ended")??;
        read += 1;
    }
    #[allow(clippy::cast_precision_loss)]
    let raw = read as f64 / started.elapsed().as_secs_f64();

    let (verify_per_s, verify_findings) = audit_verify(url).await?;
    let (seconds, events) = rebuild_projection(url, Named::Customer360, last).await?;
    let (funnel_seconds, _) = rebuild_projection(url, Named::Funnel, last).await?;
    let (churn_seconds, _) = rebuild_projection(url, Named::Churn, last).await?;
    #[allow(clippy::cast_precision_loss)]
    Ok(Rebuilt {
        messages: last,
        events,
        raw_per_s: raw,
        rebuild_per_s: last as f64 / seconds,
        rebuild_events_per_s: events as f64 / seconds,
        funnel_rebuild_per_s: last as f64 / funnel_seconds,
        churn_rebuild_per_s: last as f64 / churn_seconds,
        verify_per_s,
        verify_findings,
    })
}

/// FitModel (serve) now on the whole business, then ListAtRisk's first two pages: the
/// fit's seconds and each page's milliseconds.
async fn churn_service(channel: &Channel, token: &str) -> anyhow::Result<(f64, f64, f64)> {
    use crm_proto::v1::churn_service_client::ChurnServiceClient;
    let mut churn = ChurnServiceClient::new(channel.clone());
    let started = Instant::now();
    churn
        .fit_model(authed(
            v1::FitModelRequest {
                calibration_end: Some(std::time::SystemTime::now().into()),
                serve: true,
                consistency: None,
            },
            token,
        ))
        .await?;
    let fit = started.elapsed().as_secs_f64();
    let page = |page_token: String| {
        let mut churn = churn.clone();
        async move {
            let started = Instant::now();
            let reply = churn
                .list_at_risk(authed(
                    v1::ListAtRiskRequest {
                        page_size: 100,
                        page_token,
                        ..Default::default()
                    },
                    token,
                ))
                .await?
                .into_inner();
            anyhow::Ok((started.elapsed().as_secs_f64() * 1e3, reply.next_page_token))
        }
    };
    let (first, next) = page(String::new()).await?;
    let (second, _) = page(next).await?;
    Ok((fit, first, second))
}

/// The bench's notary key (not a secret: the bench's streams are thrown away).
const BENCH_NOTARY_SEED: [u8; 32] = [0x42; 32];

/// The bench's master key, shared by its `crm serve` and its offline rebuilds (which open
/// sealed personal data with it, as the service does): not a secret either.
const BENCH_MASTER_KEY: [u8; 32] = [0x24; 32];

static MASTER_KEY_FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The file holding [`BENCH_MASTER_KEY`] (mode 0600), made once per bench process and
/// removed by [`remove_master_key_file`].
pub(crate) fn bench_master_key_file() -> anyhow::Result<PathBuf> {
    if let Some(f) = MASTER_KEY_FILE.get() {
        return Ok(f.clone());
    }
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = std::env::temp_dir().join(format!("crm-bench-{}-master.key", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(&BENCH_MASTER_KEY)?;
    Ok(MASTER_KEY_FILE.get_or_init(|| path).clone())
}

/// Removes the bench's master key file, if one was made (when the bench ends: each run
/// used to leave one behind in the temporary directory).
pub fn remove_master_key_file() {
    if let Some(f) = MASTER_KEY_FILE.get() {
        let _ = std::fs::remove_file(f);
    }
}

/// What `crm-audit` reads: the bench's server, which admits anonymous clients.
async fn audit_source(url: &str) -> anyhow::Result<crm_audit::connect::Source> {
    Ok(
        crm_audit::connect::Source::connect(&crm_audit::connect::Target {
            nats_url: url.to_owned(),
            reader_seed: None,
            stream: "CRM_EVENTS".into(),
            prefix: "crm.v1".into(),
            master_key_file: Some(bench_master_key_file()?),
        })
        .await?,
    )
}

/// `crm-audit verify` of the whole stream with the notary's key (through its library):
/// messages/s and the findings (0 expected).
async fn audit_verify(url: &str) -> anyhow::Result<(f64, usize)> {
    let source = audit_source(url).await?;
    let trust = crm_audit::verify::Trust {
        keys: vec![crm_events::anchor::SigningKey::from_bytes(&BENCH_NOTARY_SEED).verifying_key()],
        kept: Vec::new(),
    };
    let report = crm_audit::verify::verify_stream(&source, None, &trust, &mut |_, _| {}).await?;
    anyhow::ensure!(
        report.counts.anchors_verified > 0 || report.last_seq < 10_000,
        "no anchor verified in {} messages: is the notary running?",
        report.last_seq
    );
    Ok((report.messages_per_s, report.findings.len()))
}

/// `crm-audit history` of `n` customers spread over the business: its latency.
async fn audit_history(url: &str, ids: &[String], n: usize) -> anyhow::Result<Latency> {
    let source = audit_source(url).await?;
    let mut samples = Vec::new();
    for k in 0..n {
        let id = uuid::Uuid::parse_str(&ids[(k * 7919) % ids.len()])?;
        let started = Instant::now();
        crm_audit::history::history(
            &source,
            crm_domain::CustomerId(id),
            &crm_audit::history::Filter::default(),
        )
        .await?;
        samples.push(started.elapsed());
    }
    Ok(Latency::of(samples))
}

/// A full build of `projection` from the stream into a fresh directory (what
/// `crm-analyst build` does), up to `last`: seconds taken and events applied.
async fn rebuild_projection(url: &str, projection: Named, last: u64) -> anyhow::Result<(f64, u64)> {
    let dir = tempfile::tempdir()?;
    let source = audit_source(url).await?;
    let built = crm_analyst::build::build(&source, projection, dir.path(), |_, _| {}).await?;
    anyhow::ensure!(
        built.position >= last,
        "the rebuild of {projection} stopped at {} of {last}",
        built.position
    );
    Ok((built.seconds, built.events))
}

/// What [`bluegreen`] measured.
struct BlueGreen {
    messages: u64,
    seconds: f64,
    latency: Latency,
    errors: u64,
}

/// Asks the service for a rebuild of the 360 model (AdminService) and runs GetCustomer360
/// at `rate` until the new build is served.
async fn bluegreen(
    channel: &Channel,
    token: &str,
    ids: &Arc<Vec<String>>,
    rate: u64,
) -> anyhow::Result<BlueGreen> {
    use crm_proto::v1::admin_service_client::AdminServiceClient;
    let mut admin = AdminServiceClient::new(channel.clone());
    let started = Instant::now();
    let tree = admin
        .rebuild_projection(authed(
            v1::RebuildProjectionRequest {
                name: "customer360".into(),
            },
            token,
        ))
        .await?
        .into_inner()
        .build
        .context("no build in the reply")?
        .tree;
    let switched = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (switched, token) = (Arc::clone(&switched), token.to_owned());
        async move {
            let result = async {
                loop {
                    let list = admin
                        .list_projections(authed(v1::ListProjectionsRequest {}, &token))
                        .await?
                        .into_inner();
                    let live = list
                        .projections
                        .iter()
                        .find(|p| p.name == "customer360")
                        .and_then(|p| p.builds.first())
                        .filter(|b| b.tree == tree && b.state == v1::BuildState::Live as i32);
                    if let Some(b) = live {
                        return anyhow::Ok((b.checkpoint, started.elapsed().as_secs_f64()));
                    }
                    if started.elapsed() > Duration::from_secs(3600) {
                        bail!("the blue/green rebuild did not finish within an hour");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            .await;
            // The queries stop on failure too.
            switched.store(true, Ordering::Relaxed);
            result
        }
    });
    let (latency, errors) = fixed_rate_queries(channel, token, ids, rate, |_| {
        switched.load(Ordering::Relaxed)
    })
    .await;
    let (messages, seconds) = watcher.await??;
    Ok(BlueGreen {
        messages,
        seconds,
        latency,
        errors,
    })
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores, {cpu}, {mem:.0} GiB")
}

fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = i64::try_from(secs / 86_400).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Runs the whole bench; `log` receives one line per finished step.
///
/// # Errors
/// A step could not run (a server did not start, a call failed).
pub async fn run(cfg: &BenchConfig, log: impl Fn(&str)) -> anyhow::Result<Report> {
    let mut report = Report {
        date: today(),
        machine: machine(),
        config: BTreeMap::from([
            ("customers".into(), cfg.customers.to_string()),
            ("unary".into(), cfg.unary.to_string()),
            ("seconds".into(), cfg.seconds.to_string()),
            ("fold_cache_mib".into(), cfg.fold_cache_mib.to_string()),
            ("fold_flush_mib".into(), cfg.fold_flush_mib.to_string()),
        ]),
        ..Report::default()
    };
    if cfg.phases.contains(&Phase::Soak) {
        report.soak = Some(soak::run(&cfg.crm_bin, &cfg.soak, &log).await?);
    }
    if cfg.phases.contains(&Phase::Churn) {
        report.churn = churn::run(&[100_000, 1_000_000], &|line: String| log(&line))?;
    }
    // Neither needs the generated business.
    if cfg
        .phases
        .iter()
        .all(|p| matches!(p, Phase::Soak | Phase::Churn))
    {
        write_json(cfg, &report)?;
        return Ok(report);
    }
    let params = crm_datagen::Params::new(42, cfg.customers);
    if let Some(problem) =
        crm_datagen::available_memory().and_then(|free| params.memory_problem(free))
    {
        bail!("{problem}");
    }
    let mut steal = Steal::default();
    // Shared, not copied: with `--full` the data set alone is gigabytes.
    let data = Arc::new(crm_datagen::generate(&params)?);
    let ids: Arc<Vec<String>> =
        Arc::new(data.truth.iter().map(|t| t.customer_id.clone()).collect());
    let has = |p: Phase| cfg.phases.contains(&p);
    let both_modes = cfg.phases.iter().any(|p| p.per_mode());
    for (mode, durability, lag_rate) in [
        ("durable", Durability::Always, cfg.lag_rate_durable),
        ("lazy", Durability::Lazy, cfg.lag_rate_lazy),
    ] {
        if mode == "lazy" && !both_modes {
            continue;
        }
        let server = NatsServer::builder().durability(durability).start();
        let url = server.url();
        let mut f = ModeFigures {
            mode: mode.into(),
            lag_rate,
            ..ModeFigures::default()
        };
        // Event-sized payloads: the mean encoded size of the generated commands' events is
        // close to the mean request size.
        if has(Phase::Raw) {
            steal.start();
            f.raw_publish_per_s = raw_publish(&url, cfg.unary, 400).await?;
            log(&format!(
                "{mode}: raw publish {:.0} msgs/s (CPU steal {:.0}%)",
                f.raw_publish_per_s,
                steal.end(&format!("{mode} raw publish"))
            ));
        }
        let ratio = |v: f64, base: f64| if base > 0.0 { v / base } else { 0.0 };

        let mut service = Service::start(cfg, &url)?;
        let channel = Channel::from_shared(service.addr.clone())?
            .connect()
            .await?;
        steal.start();
        let r = crm_datagen::ingest::ingest(
            channel.clone(),
            &service.token,
            Arc::clone(&data).shared_requests().map(Ok::<_, String>),
            |_| {},
        )
        .await?;
        if r.failed > 0 {
            bail!(
                "{} generated commands were refused: {:?}",
                r.failed,
                r.failures.first()
            );
        }
        f.bulk_ingest_commands = r.ok;
        #[allow(clippy::cast_precision_loss)]
        {
            f.bulk_ingest_per_s = r.ok as f64 / r.elapsed.as_secs_f64();
        }
        f.bulk_ingest_ratio = ratio(f.bulk_ingest_per_s, f.raw_publish_per_s);
        log(&format!(
            "{mode}: bulk ingest {:.0} commands/s (CPU steal {:.0}%)",
            f.bulk_ingest_per_s,
            steal.end(&format!("{mode} bulk ingest"))
        ));
        let waited = caught_up(&channel, &service.token, r.max_position).await?;
        f.ingest_catch_up_s = waited.as_secs_f64();
        log(&format!(
            "{mode}: read model caught up {:.1}s after the ingest",
            f.ingest_catch_up_s
        ));

        if has(Phase::Unary) {
            steal.start();
            let (rate, latency, position) =
                unary(&channel, &service.token, &ids, cfg.unary, 64).await?;
            f.unary_per_s = rate;
            f.unary_ratio = ratio(rate, f.raw_publish_per_s);
            f.unary_latency = latency;
            log(&format!(
                "{mode}: unary {rate:.0} commands/s (CPU steal {:.0}%)",
                steal.end(&format!("{mode} unary"))
            ));
            caught_up(&channel, &service.token, position).await?;
        }

        if has(Phase::Lag) {
            steal.start();
            let (achieved, lag_latency, errors, position) =
                lag(&channel, &service.token, &ids, lag_rate, cfg.seconds).await;
            caught_up(&channel, &service.token, position).await?;
            f.lag_achieved_per_s = achieved;
            f.lag = lag_latency;
            f.lag_errors = errors.values().sum();
            f.lag_error_kinds = errors;
            log(&format!(
                "{mode}: lag at {lag_rate}/s: p99 {:.1} ms (CPU steal {:.0}%)",
                f.lag.p99_ms,
                steal.end(&format!("{mode} lag"))
            ));
        }

        if mode == "durable" {
            let s = &mut report.shared;
            s.query_rate = cfg.query_rate;
            if has(Phase::Queries) {
                steal.start();
                (s.query_latency, s.query_max_per_s) =
                    queries(&channel, &service.token, &ids, cfg.query_rate, cfg.seconds).await;
                log(&format!(
                    "GetCustomer360 at {}/s: p99 {:.2} ms; max {:.0}/s (CPU steal {:.0}%)",
                    cfg.query_rate,
                    s.query_latency.p99_ms,
                    s.query_max_per_s,
                    steal.end("queries")
                ));
                steal.start();
                s.funnel_query_rate = cfg.funnel_query_rate;
                let total = cfg.funnel_query_rate * cfg.seconds;
                let (samples, failed) = fixed_rate(
                    Load::Funnel,
                    &channel,
                    &service.token,
                    &ids,
                    cfg.funnel_query_rate,
                    &mut |i| i >= total,
                )
                .await;
                s.funnel_query_errors = failed;
                s.funnel_query_latency = Latency::of(samples.iter().map(|(_, d)| *d).collect());
                for (k, rpc) in FUNNEL_RPCS.iter().enumerate() {
                    let of_rpc = samples
                        .iter()
                        .filter(|(i, _)| *i as usize % FUNNEL_RPCS.len() == k)
                        .map(|(_, d)| *d)
                        .collect();
                    s.funnel_query_latency_by_rpc
                        .insert((*rpc).to_owned(), Latency::of(of_rpc));
                }
                log(&format!(
                    "FunnelService at {}/s: p50 / p99 {:.1} / {:.1} ms, {} failed (CPU steal {:.0}%)",
                    cfg.funnel_query_rate,
                    s.funnel_query_latency.p50_ms,
                    s.funnel_query_latency.p99_ms,
                    s.funnel_query_errors,
                    steal.end("funnel queries")
                ));
            }
            s.service_peak_rss_mib = service.peak_rss_mib();
            if has(Phase::Export) {
                steal.start();
                report.export = export::run(
                    &cfg.analyst_bin,
                    &url,
                    (&service.addr, &service.analyst),
                    &|line| log(&line),
                )
                .await?;
                log(&format!("export: CPU steal {:.0}%", steal.end("exports")));
            }
            if has(Phase::Rebuild) {
                steal.start();
                let rebuilt = rebuild(&url).await?;
                s.stream_messages = rebuilt.messages;
                s.stream_events = rebuilt.events;
                s.raw_read_per_s = rebuilt.raw_per_s;
                s.rebuild_per_s = rebuilt.rebuild_per_s;
                s.rebuild_events_per_s = rebuilt.rebuild_events_per_s;
                s.rebuild_ratio = rebuilt.rebuild_per_s / rebuilt.raw_per_s;
                s.funnel_rebuild_per_s = rebuilt.funnel_rebuild_per_s;
                s.funnel_rebuild_ratio = rebuilt.funnel_rebuild_per_s / rebuilt.raw_per_s;
                s.churn_rebuild_per_s = rebuilt.churn_rebuild_per_s;
                s.churn_rebuild_ratio = rebuilt.churn_rebuild_per_s / rebuilt.raw_per_s;
                (
                    s.churn_fit_seconds,
                    s.churn_first_page_ms,
                    s.churn_next_page_ms,
                ) = churn_service(&channel, &service.token).await?;
                log(&format!(
                    "churn: rebuild {:.0} messages/s; FitModel {:.2} s; ListAtRisk first page {:.0} ms, next {:.1} ms",
                    s.churn_rebuild_per_s,
                    s.churn_fit_seconds,
                    s.churn_first_page_ms,
                    s.churn_next_page_ms
                ));
                s.verify_per_s = rebuilt.verify_per_s;
                s.verify_ratio = rebuilt.verify_per_s / rebuilt.raw_per_s;
                s.verify_findings = rebuilt.verify_findings;
                s.history_latency = audit_history(&url, &ids, 20).await?;
                log(&format!(
                    "crm-audit verify {:.0} messages/s ({} findings); history of 20 customers p50 / max {:.1} / {:.1} ms",
                    s.verify_per_s,
                    s.verify_findings,
                    s.history_latency.p50_ms,
                    s.history_latency.max_ms
                ));
                log(&format!(
                    "rebuild {:.0} messages/s, {:.0} events/s; funnel rebuild {:.0} messages/s (raw read {:.0} messages/s; CPU steal {:.0}%)",
                    rebuilt.rebuild_per_s,
                    rebuilt.rebuild_events_per_s,
                    rebuilt.funnel_rebuild_per_s,
                    rebuilt.raw_per_s,
                    steal.end("raw read and rebuilds")
                ));
            }
            if has(Phase::BlueGreen) {
                steal.start();
                let b = bluegreen(&channel, &service.token, &ids, cfg.query_rate).await?;
                #[allow(clippy::cast_precision_loss)]
                {
                    s.bluegreen_per_s = b.messages as f64 / b.seconds;
                }
                s.bluegreen_ratio = ratio(s.bluegreen_per_s, s.raw_read_per_s);
                s.bluegreen_seconds = b.seconds;
                s.bluegreen_query_latency = b.latency;
                s.bluegreen_query_errors = b.errors;
                s.service_peak_rss_mib = service.peak_rss_mib();
                log(&format!(
                    "blue/green rebuild in the service: {} messages in {:.1}s ({:.0}/s); GetCustomer360 at {}/s meanwhile p50 / p99 {:.2} / {:.2} ms, {} failed (CPU steal {:.0}%)",
                    b.messages,
                    b.seconds,
                    s.bluegreen_per_s,
                    cfg.query_rate,
                    s.bluegreen_query_latency.p50_ms,
                    s.bluegreen_query_latency.p99_ms,
                    b.errors,
                    steal.end("blue/green rebuild")
                ));
            }
            service.stop().await?;
            // The events are counted by the rebuild phase.
            let events = s.stream_events;
            if events > 0 {
                #[allow(clippy::cast_precision_loss)]
                let per_million =
                    |bytes: u64| bytes as f64 / 1024.0 / 1024.0 / (events as f64 / 1e6);
                s.stream_mib_per_million_events = per_million(dir_size(&server.store_dir()));
                s.read_model_mib_per_million_events = per_million(dir_size(
                    &service.data_dir.path().join("data").join("read-models"),
                ));
            }
        }
        service.stop().await?;
        report.modes.push(f);
    }
    report.steal_pct = steal.phases;
    write_json(cfg, &report)?;
    Ok(report)
}

fn write_json(cfg: &BenchConfig, report: &Report) -> anyhow::Result<()> {
    if let Some(path) = &cfg.out_json {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")?;
    }
    Ok(())
}

/// The report as a Markdown table (the README's performance table).
#[must_use]
pub fn table(r: &Report) -> String {
    let soak = r.soak.as_ref().map(|s| {
        format!(
            "Soak measured {} on {} by `cargo xtask bench -- --phases soak`:\n\n{}",
            r.date,
            r.machine,
            s.table()
        )
    });
    let churn = (!r.churn.is_empty()).then(|| churn::table(&r.churn));
    let exports = (!r.export.is_empty()).then(|| export::table(&r.export));
    let extra: String = [soak, churn, exports]
        .into_iter()
        .flatten()
        .map(|s| format!("\n{s}"))
        .collect();
    if r.modes.is_empty() {
        return extra.trim_start().to_owned();
    }
    figures_table(r) + &extra
}

fn figures_table(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Measured {} on {} by `cargo xtask bench` ({} customers; in the service, write-back caches {} MiB together, flushed every {} MiB changed; offline builds as `crm-analyst build`, {} MiB cache).\n",
        r.date,
        r.machine,
        r.config.get("customers").map_or("", String::as_str),
        r.config.get("fold_cache_mib").map_or("?", String::as_str),
        r.config.get("fold_flush_mib").map_or("?", String::as_str),
        crm_analyst::build::CACHE_MIB
    );
    let names: Vec<&str> = r.modes.iter().map(|m| m.mode.as_str()).collect();
    let _ = writeln!(t, "| figure | {} | target |", names.join(" | "));
    let _ = writeln!(t, "|---|{}---|", "---|".repeat(names.len()));
    // A figure a phase left out by `--phases` did not measure shows as "-".
    let dash = || "-".to_owned();
    let m = |f: &dyn Fn(&ModeFigures) -> Option<String>| -> Vec<String> {
        r.modes
            .iter()
            .map(|mode| f(mode).unwrap_or_else(dash))
            .collect()
    };
    let row = |t: &mut String, name: &str, v: Vec<String>, target: &str| {
        let _ = writeln!(t, "| {name} | {} | {target} |", v.join(" | "));
    };
    row(
        &mut t,
        "raw publish with expected sequence (msgs/s)",
        m(&|f| (f.raw_publish_per_s > 0.0).then(|| format!("{:.0}", f.raw_publish_per_s))),
        "baseline",
    );
    row(
        &mut t,
        "bulk ingest (commands/s, ratio to raw)",
        m(&|f| {
            Some(if f.raw_publish_per_s > 0.0 {
                format!("{:.0} ({:.2}x)", f.bulk_ingest_per_s, f.bulk_ingest_ratio)
            } else {
                format!("{:.0}", f.bulk_ingest_per_s)
            })
        }),
        ">= 0.5x",
    );
    row(
        &mut t,
        "read model caught up after bulk ingest (s)",
        m(&|f| Some(format!("{:.1}", f.ingest_catch_up_s))),
        "",
    );
    row(
        &mut t,
        "unary, 64 in flight (commands/s, ratio)",
        m(&|f| {
            (f.unary_latency.samples > 0)
                .then(|| format!("{:.0} ({:.2}x)", f.unary_per_s, f.unary_ratio))
        }),
        ">= 0.25x",
    );
    row(
        &mut t,
        "unary latency p50 / p99 (ms)",
        m(&|f| {
            (f.unary_latency.samples > 0).then(|| {
                format!(
                    "{:.1} / {:.1}",
                    f.unary_latency.p50_ms, f.unary_latency.p99_ms
                )
            })
        }),
        "",
    );
    row(
        &mut t,
        "projection lag p50 / p99 (ms) at rate",
        m(&|f| {
            (f.lag.samples > 0 || f.lag_errors > 0).then(|| {
                let kinds: Vec<String> = f
                    .lag_error_kinds
                    .iter()
                    .map(|(kind, n)| format!("{n} {kind}"))
                    .collect();
                format!(
                    "{:.1} / {:.1} at {}/s ({:.0}/s achieved, {} errors{})",
                    f.lag.p50_ms,
                    f.lag.p99_ms,
                    f.lag_rate,
                    f.lag_achieved_per_s,
                    f.lag_errors,
                    if kinds.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", kinds.join(", "))
                    }
                )
            })
        }),
        "p99 <= 20 ms",
    );
    let s = &r.shared;
    let shared = |t: &mut String, name: String, value: Option<String>, target: &str| {
        let _ = writeln!(t, "| {name} | {} | {target} |", value.unwrap_or_else(dash));
    };
    let _ = writeln!(t, "\n| figure | value | target |");
    let _ = writeln!(t, "|---|---|---|");
    let rebuilt = s.stream_messages > 0;
    shared(
        &mut t,
        format!(
            "raw ordered-consumer read ({} messages, {} events)",
            s.stream_messages, s.stream_events
        ),
        rebuilt.then(|| format!("{:.0} messages/s", s.raw_read_per_s)),
        "baseline",
    );
    shared(
        &mut t,
        "360 rebuild into a fresh directory".into(),
        rebuilt.then(|| {
            format!(
                "{:.0} messages/s ({:.2}x), {:.0} events/s",
                s.rebuild_per_s, s.rebuild_ratio, s.rebuild_events_per_s
            )
        }),
        ">= 0.5x",
    );
    shared(
        &mut t,
        "funnel rebuild into a fresh directory".into(),
        rebuilt.then(|| {
            format!(
                "{:.0} messages/s ({:.2}x)",
                s.funnel_rebuild_per_s, s.funnel_rebuild_ratio
            )
        }),
        ">= 0.5x",
    );
    shared(
        &mut t,
        "churn rebuild into a fresh directory".into(),
        rebuilt.then(|| {
            format!(
                "{:.0} messages/s ({:.2}x)",
                s.churn_rebuild_per_s, s.churn_rebuild_ratio
            )
        }),
        ">= 0.5x",
    );
    shared(
        &mut t,
        "churn FitModel on the whole business; ListAtRisk first / next page".into(),
        rebuilt.then(|| {
            format!(
                "{:.2} s; {:.0} / {:.1} ms",
                s.churn_fit_seconds, s.churn_first_page_ms, s.churn_next_page_ms
            )
        }),
        "",
    );
    shared(
        &mut t,
        "crm-audit verify of the whole stream".into(),
        rebuilt.then(|| {
            format!(
                "{:.0} messages/s ({:.2}x), {} findings",
                s.verify_per_s, s.verify_ratio, s.verify_findings
            )
        }),
        ">= 0.5x",
    );
    shared(
        &mut t,
        "crm-audit history of a customer (20 customers) p50 / max".into(),
        (s.history_latency.samples > 0).then(|| {
            format!(
                "{:.1} / {:.1} ms",
                s.history_latency.p50_ms, s.history_latency.max_ms
            )
        }),
        "",
    );
    shared(
        &mut t,
        format!("GetCustomer360 at {}/s p50 / p99", s.query_rate),
        (s.query_latency.samples > 0).then(|| {
            format!(
                "{:.2} / {:.2} ms",
                s.query_latency.p50_ms, s.query_latency.p99_ms
            )
        }),
        "p99 <= 1 ms",
    );
    shared(
        &mut t,
        "GetCustomer360 max, 64 in flight".into(),
        (s.query_max_per_s > 0.0).then(|| format!("{:.0}/s", s.query_max_per_s)),
        "",
    );
    shared(
        &mut t,
        format!(
            "FunnelService at {}/s (its five RPCs in turn) p50 / p99",
            s.funnel_query_rate
        ),
        (s.funnel_query_latency.samples > 0).then(|| {
            format!(
                "{:.1} / {:.1} ms ({} failed)",
                s.funnel_query_latency.p50_ms, s.funnel_query_latency.p99_ms, s.funnel_query_errors
            )
        }),
        "",
    );
    for (rpc, l) in &s.funnel_query_latency_by_rpc {
        shared(
            &mut t,
            format!("- {rpc} p50 / p99"),
            (l.samples > 0).then(|| format!("{:.1} / {:.1} ms", l.p50_ms, l.p99_ms)),
            "",
        );
    }
    let bluegreen = s.bluegreen_seconds > 0.0;
    shared(
        &mut t,
        "blue/green 360 rebuild inside the service (request to switch)".into(),
        bluegreen.then(|| {
            format!(
                "{:.0} messages/s ({:.2}x), {:.1} s",
                s.bluegreen_per_s, s.bluegreen_ratio, s.bluegreen_seconds
            )
        }),
        "",
    );
    shared(
        &mut t,
        format!("GetCustomer360 at {}/s during it, p50 / p99", s.query_rate),
        bluegreen.then(|| {
            format!(
                "{:.2} / {:.2} ms ({} answered, {} failed)",
                s.bluegreen_query_latency.p50_ms,
                s.bluegreen_query_latency.p99_ms,
                s.bluegreen_query_latency.samples,
                s.bluegreen_query_errors
            )
        }),
        "p99 <= 1 ms",
    );
    shared(
        &mut t,
        "service peak RSS".into(),
        Some(format!("{:.0} MiB", s.service_peak_rss_mib)),
        "< 1.5 GiB at 1M customers",
    );
    shared(
        &mut t,
        "on disk per million events".into(),
        rebuilt.then(|| {
            format!(
                "stream {:.0} MiB, read model {:.0} MiB",
                s.stream_mib_per_million_events, s.read_model_mib_per_million_events
            )
        }),
        "",
    );
    if !r.steal_pct.is_empty() {
        let phases: Vec<String> = r
            .steal_pct
            .iter()
            .map(|(phase, pct)| format!("{phase} {pct:.0}%"))
            .collect();
        let _ = writeln!(
            t,
            "\nCPU steal (time the hypervisor ran other guests) per phase: {}.",
            phases.join(", ")
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::CpuTimes;

    #[test]
    fn cpu_steal_is_the_share_of_steal_time_between_two_readings() {
        let before = CpuTimes::parse("cpu  100 0 50 800 10 0 5 35 0 0").unwrap();
        assert_eq!(
            before,
            CpuTimes {
                total: 1000,
                steal: 35
            }
        );
        // 1000 more ticks, 250 of them stolen; guest ticks (9th field) are not added twice.
        let after = CpuTimes::parse("cpu  400 0 100 1200 10 0 5 285 300 0").unwrap();
        let pct = CpuTimes::steal_pct(Some(before), Some(after));
        assert!((pct - 25.0).abs() < 1e-9, "{pct}");
        assert!(CpuTimes::parse("cpu0 1 2 3 4 5 6 7 8").is_none());
        assert!(CpuTimes::parse("cpu  1 2 3").is_none());
        assert!(CpuTimes::steal_pct(None, Some(after)).abs() < f64::EPSILON);
        assert!(CpuTimes::steal_pct(Some(after), Some(after)).abs() < f64::EPSILON);
    }
}
