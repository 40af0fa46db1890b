//! Prometheus metrics of `crm serve`, served as text at `http://<metrics_listen>/metrics`.
//!
//! The write side's and the projectors' counters live in their libraries as plain atomics
//! ([`HandlerStats`], [`ProjectionStats`]); collectors here read them at each scrape, so the
//! hot paths pay nothing for metrics. gRPC calls are counted and timed by
//! [`crm_api::metrics::RequestMetrics`]. Every name starts with `crm_`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crm_api::metrics::RequestMetrics;
use crm_projection::{BuildState, BuildStatus, ProjectionStats, ProjectionStatus};
use crm_store::CommandHandler;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The registry of one `crm serve` process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// A registry exporting the gRPC request metrics, the command handler's and its event
    /// log's counters (if this process runs the command side) and every hosted
    /// projection's builds (if it runs the read side).
    pub fn new(
        requests: &RequestMetrics,
        commands: Option<CommandHandler>,
        read_side: Option<Arc<crm_projection::ReadSide>>,
        notary: Option<Arc<crate::notary::NotaryStats>>,
        churn: Option<Arc<crm_churn::service::ChurnModels>>,
    ) -> Self {
        let mut registry = Registry::with_prefix("crm");
        requests.register(&mut registry);
        if let Some(handler) = commands {
            registry.register_collector(Box::new(WriteSide(handler)));
        }
        if let Some(read_side) = read_side {
            registry.register_collector(Box::new(ReadSide(read_side)));
        }
        if let Some(notary) = notary {
            registry.register_collector(Box::new(Notary(notary)));
        }
        if let Some(churn) = churn {
            registry.register_collector(Box::new(Churn(churn)));
        }
        Self { registry }
    }

    /// The OpenMetrics text of the current values.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::http::header::CONTENT_TYPE;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = Arc::clone(&metrics);
            async move {
                (
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &[(&str, &str)],
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let mut m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
    if labels.is_empty() {
        c.encode(m)
    } else {
        c.encode(m.encode_family(&labels)?)
    }
}

#[derive(Debug)]
struct Notary(Arc<crate::notary::NotaryStats>);

impl Collector for Notary {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut encoder,
            "notary_anchors_written",
            "Signed anchors appended by this process",
            &[],
            get(&s.anchors_written),
        )?;
        counter(
            &mut encoder,
            "notary_anchors_checked",
            "Earlier anchors of this key checked against the stream on start",
            &[],
            get(&s.anchors_checked),
        )?;
        counter(
            &mut encoder,
            "notary_disagreements",
            "Earlier anchors the stream no longer matches: the notary stopped (alert on any)",
            &[],
            get(&s.disagreements),
        )?;
        for (name, help, value) in [
            (
                "notary_position",
                "Last stream position the notary folded",
                get(&s.position),
            ),
            (
                "notary_anchored_position",
                "Last stream position covered by an anchor of this process",
                get(&s.anchored_position),
            ),
        ] {
            #[allow(clippy::cast_precision_loss)]
            let g = ConstGauge::new(value as f64);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Churn(Arc<crm_churn::service::ChurnModels>);

impl Collector for Churn {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut encoder,
            "churn_fits",
            "Churn model fits that stored a model (FitModel and the scheduled refit)",
            &[],
            get(&s.fits),
        )?;
        counter(
            &mut encoder,
            "churn_fits_failed",
            "Churn model fits refused (degenerate population, no convergence, storage)",
            &[],
            get(&s.fits_failed),
        )?;
        counter(
            &mut encoder,
            "churn_rankings",
            "Rankings of every customer computed for ListAtRisk",
            &[],
            get(&s.rankings),
        )?;
        // The served model (a small sled read per scrape).
        let served = self.0.model("").ok();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        #[allow(clippy::cast_precision_loss)]
        let gauges = [
            (
                "churn_last_fit_seconds",
                "Duration of the last churn fit",
                get(&s.last_fit_micros) as f64 / 1e6,
            ),
            (
                "churn_last_ranking_seconds",
                "Duration of the last ranking for ListAtRisk",
                get(&s.last_ranking_micros) as f64 / 1e6,
            ),
            (
                "churn_served_model_age_seconds",
                "Seconds since the served churn model was fitted (0: none served; alert when it exceeds the refit interval by far)",
                served
                    .as_ref()
                    .map_or(0.0, |m| (now - m.fitted_at as f64 / 1e6).max(0.0)),
            ),
            (
                "churn_served_model_customers",
                "Customers the served churn model was fitted on",
                served.as_ref().map_or(0.0, |m| m.fit.customers as f64),
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct WriteSide(CommandHandler);

impl Collector for WriteSide {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        {
            let mut m = encoder.encode_descriptor(
                "commands",
                "Commands handled, by outcome: applied (events appended), noop (nothing to \
                 change), repeated (a known command id: the original outcome returned), \
                 rejected (validation or business rule)",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (outcome, value) in [
                ("applied", get(&s.commands_applied)),
                ("noop", get(&s.commands_noop)),
                ("repeated", get(&s.commands_repeated)),
                ("rejected", get(&s.commands_rejected)),
            ] {
                ConstCounter::new(value).encode(m.encode_family(&[("outcome", outcome)])?)?;
            }
        }
        counter(
            &mut encoder,
            "events_appended",
            "Events appended to the event log",
            &[],
            get(&s.events_appended),
        )?;
        counter(
            &mut encoder,
            "append_conflicts",
            "Appends refused because the aggregate moved on (expected sequence mismatch); \
             the command is re-decided, up to its retry limit",
            &[],
            get(&s.conflicts),
        )?;
        counter(
            &mut encoder,
            "append_busy",
            "Appends of a two-aggregate command refused because the stream had too many \
             atomic batches open; re-decided after a pause, up to the retry limit",
            &[],
            get(&s.busy),
        )?;
        counter(
            &mut encoder,
            "stale_reads",
            "Decisions taken again because a read was answered by a replica behind the \
             stream leader (replicated streams only)",
            &[],
            get(&s.stale_reads),
        )?;
        counter(
            &mut encoder,
            "ambiguous_appends",
            "Appends whose outcome was unknown (lost ack) and had to be checked in the log",
            &[],
            get(&s.ambiguous_appends),
        )?;
        counter(
            &mut encoder,
            "aggregate_loads",
            "Aggregates read from the event log (command cache misses)",
            &[],
            get(&s.aggregate_loads),
        )?;
        counter(
            &mut encoder,
            "aggregate_messages_read",
            "Event-log messages read to load aggregates",
            &[],
            get(&s.messages_read),
        )?;
        counter(
            &mut encoder,
            "event_log_read_retries",
            "Direct gets of an aggregate's messages sent again after no answer came within \
             the request timeout (a read fails after three unanswered attempts) or the \
             stream had no responders (retried with backoff for up to the request timeout)",
            &[],
            self.0.log().read_retries(),
        )
    }
}

/// The read side's metrics: the `projection_*` series follow each projection's served
/// build; `projection_build_*` show every build (the served one and a rebuild beside it)
/// by state.
#[derive(Debug)]
struct ReadSide(Arc<crm_projection::ReadSide>);

/// The served build's stats of each projection.
struct Served(Vec<(&'static str, Arc<ProjectionStats>)>);

impl Served {
    fn counters(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&ProjectionStats) -> u64,
    ) -> Result<(), std::fmt::Error> {
        let mut m = encoder.encode_descriptor(
            name,
            help,
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (projection, stats) in &self.0 {
            ConstCounter::new(value(stats))
                .encode(m.encode_family(&[("projection", *projection)])?)?;
        }
        Ok(())
    }

    /// A counter of seconds from a total kept in microseconds.
    fn seconds(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        micros: impl Fn(&ProjectionStats) -> u64,
    ) -> Result<(), std::fmt::Error> {
        let mut m = encoder.encode_descriptor(
            name,
            help,
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (projection, stats) in &self.0 {
            #[allow(clippy::cast_precision_loss)]
            ConstCounter::new(micros(stats) as f64 / 1e6)
                .encode(m.encode_family(&[("projection", *projection)])?)?;
        }
        Ok(())
    }

    fn gauges(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&ProjectionStats) -> f64,
    ) -> Result<(), std::fmt::Error> {
        let mut m = encoder.encode_descriptor(
            name,
            help,
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (projection, stats) in &self.0 {
            ConstGauge::new(value(stats))
                .encode(m.encode_family(&[("projection", *projection)])?)?;
        }
        Ok(())
    }
}

impl Collector for ReadSide {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let statuses: Vec<ProjectionStatus> =
            self.0.projections().iter().map(|p| p.status()).collect();
        let served = Served(
            statuses
                .iter()
                .filter_map(|p| {
                    let b = p.builds.first()?;
                    matches!(b.state, BuildState::Live | BuildState::Frozen)
                        .then(|| (p.name, Arc::clone(&b.stats)))
                })
                .collect(),
        );
        served.encode(&mut encoder)?;
        builds(&mut encoder, &statuses)
    }
}

/// Gauges of every build, labelled by projection and state.
fn builds(
    encoder: &mut DescriptorEncoder,
    statuses: &[ProjectionStatus],
) -> Result<(), std::fmt::Error> {
    /// A gauge: name, help and the value of a build.
    type Series = (&'static str, &'static str, fn(&BuildStatus) -> f64);
    #[allow(clippy::cast_precision_loss)]
    let series: [Series; 3] = [
        (
            "projection_build_checkpoint",
            "Last stream sequence applied by each build (state: live, frozen, building, caught_up)",
            |b| b.checkpoint as f64,
        ),
        (
            "projection_build_rate",
            "Messages per second applied by each build since its runner started",
            |b| b.rate,
        ),
        (
            "projection_build_eta_seconds",
            "Seconds for each build to reach the stream head at its rate (-1: unknown)",
            |b| b.eta_seconds.unwrap_or(-1.0),
        ),
    ];
    for (name, help, value) in series {
        let mut m = encoder.encode_descriptor(
            name,
            help,
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for p in statuses {
            for b in &p.builds {
                let state = match b.state {
                    BuildState::Live => "live",
                    BuildState::Frozen => "frozen",
                    BuildState::Building => "building",
                    BuildState::CaughtUp => "caught_up",
                };
                ConstGauge::new(value(b))
                    .encode(m.encode_family(&[("projection", p.name), ("state", state)])?)?;
            }
        }
    }
    Ok(())
}

impl Served {
    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        let f = |v: u64| v as f64;
        self.counters(
            encoder,
            "projection_events_applied",
            "Events applied to the read model",
            |s| get(&s.events_applied),
        )?;
        self.counters(
            encoder,
            "projection_dead_letters",
            "Events that could not be applied (undecodable or rejected by the fold), \
             recorded in the dead-letter tree and skipped",
            |s| get(&s.dead_lettered),
        )?;
        self.counters(
            encoder,
            "projection_batches",
            "Batches of messages applied (to the build's write-back cache)",
            |s| get(&s.batches),
        )?;
        self.counters(
            encoder,
            "projection_rebuilds",
            "Times the stored read model was cleared because another code version or \
             configuration built it",
            |s| get(&s.rebuilds),
        )?;
        self.seconds(
            encoder,
            "projection_batch_seconds",
            "Time spent applying batches (rate / rate(batches) = mean batch time)",
            |s| get(&s.batch_micros_total),
        )?;
        self.gauges(
            encoder,
            "projection_checkpoint",
            "Last stream sequence applied to the read model",
            |s| f(get(&s.checkpoint)),
        )?;
        self.gauges(
            encoder,
            "projection_stream_head",
            "The stream's last sequence as last seen by the projector",
            |s| f(get(&s.stream_head)),
        )?;
        self.gauges(
            encoder,
            "projection_lag_events",
            "Events in the stream not yet applied (stream head - checkpoint); during a \
             rebuild, checkpoint / stream head is its progress",
            |s| f(s.lag()),
        )?;
        self.gauges(
            encoder,
            "projection_last_batch_seconds",
            "Duration of the last batch",
            |s| f(get(&s.last_batch_micros)) / 1e6,
        )?;
        self.gauges(
            encoder,
            "projection_last_batch_events",
            "Events in the last batch",
            |s| f(get(&s.last_batch_events)),
        )?;
        self.write_back(encoder)
    }

    fn write_back(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        let f = |v: u64| v as f64;
        self.counters(
            encoder,
            "projection_write_backs",
            "Write-backs: the changed keys and the checkpoint in one sled batch (every \
             batch at the stream head; while catching up, by --fold-flush-mib or each second)",
            |s| get(&s.flushes),
        )?;
        self.counters(
            encoder,
            "projection_write_back_keys",
            "Keys written by write-backs",
            |s| get(&s.flushed_keys),
        )?;
        self.seconds(
            encoder,
            "projection_write_back_seconds",
            "Time sled spent applying write-backs; queries wait meanwhile (sled applies \
             a batch under a process-wide lock)",
            |s| get(&s.flush_micros_total),
        )?;
        self.gauges(
            encoder,
            "projection_write_back_max_seconds",
            "The longest write-back so far",
            |s| f(get(&s.flush_micros_max)) / 1e6,
        )?;
        self.gauges(
            encoder,
            "projection_cache_bytes",
            "Bytes held by the build's write-back cache after the last write-back",
            |s| f(get(&s.cache_bytes)),
        )?;
        self.counters(
            encoder,
            "projection_cache_hits",
            "Reads of the fold answered by the write-back cache",
            |s| get(&s.cache_hits),
        )?;
        self.counters(
            encoder,
            "projection_cache_misses",
            "Reads of the fold that went to sled",
            |s| get(&s.cache_misses),
        )
    }
}
