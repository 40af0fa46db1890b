//! Request metrics of the gRPC API: a tower layer that counts every call by method and
//! status code and times it, into Prometheus families the service's registry exports.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tonic::codegen::http;

type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 100 us .. ~3.3 s
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

/// Calls by method and code, and their latency by method; and the commands inside
/// Ingest streams, by code, with their latency (a stream's call figures only cover its
/// opening).
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    ingest_commands: Family<Labels, Counter>,
    ingest_latency: Histogram,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            ingest_commands: Family::default(),
            ingest_latency: latency_histogram(),
        }
    }
}

impl RequestMetrics {
    /// Adds the families to `registry` (as `grpc_requests_total` and
    /// `grpc_request_duration_seconds`, under the registry's prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "grpc_requests",
            "gRPC calls answered, by method and status code (the code of the response \
             headers: errors raised mid-stream count as the stream's opening code)",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "grpc_request_duration",
            "Time from a gRPC call's arrival to its response headers, by method",
            Unit::Seconds,
            self.latency.clone(),
        );
        registry.register(
            "grpc_ingest_commands",
            "Commands answered inside Ingest streams, by status code",
            self.ingest_commands.clone(),
        );
        registry.register_with_unit(
            "grpc_ingest_command_duration",
            "Time from reading a command off an Ingest stream to queueing its reply",
            Unit::Seconds,
            self.ingest_latency.clone(),
        );
    }

    /// Counts and times one command of an Ingest stream (`code`: its reply's status).
    pub(crate) fn record_ingest(&self, code: tonic::Code, seconds: f64) {
        self.ingest_commands
            .get_or_create(&vec![("code", code_name(code).to_owned())])
            .inc();
        self.ingest_latency.observe(seconds);
    }

    fn record(&self, method: &str, code: &str, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("code", code.to_owned()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("method", method.to_owned())])
            .observe(seconds);
    }

    /// The tower layer that records into these metrics.
    pub fn layer(&self) -> MetricsLayer {
        MetricsLayer {
            metrics: Arc::new(self.clone()),
        }
    }
}

/// See [`RequestMetrics::layer`].
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: Arc<RequestMetrics>,
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metered<S>;
    fn layer(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<RequestMetrics>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Metered<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = request.uri().path().to_owned();
        let metrics = Arc::clone(&self.metrics);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or("OK", |c| code_name(tonic::Code::from(c))),
                Err(_) => "TRANSPORT_ERROR",
            };
            // Unknown paths share one label, so clients cannot grow the series without bound.
            let method = if code == "UNIMPLEMENTED" {
                "unknown"
            } else {
                &method
            };
            metrics.record(method, code, started.elapsed().as_secs_f64());
            response
        })
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
