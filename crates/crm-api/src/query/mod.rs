//! The read side's query services, one module per read model. What they share is here:
//! authorization, the read-your-writes wait on the model's served position, and the
//! conversions of common request fields.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crm_projection::{ProjectionError, ReadModel};
use crm_proto::timestamp_from_proto;
use crm_proto::v1;
pub(crate) use crm_proto::{money, ts};
use tonic::{Request, Status};

use crate::auth::{Authenticator, Permission, Principal};
use crate::status::{auth_status, invalid_query_field, projection_status, stale_status};

mod churn;
mod customer360;
mod funnel;

pub use churn::ChurnApi;
pub use customer360::QueryApi;
pub use funnel::FunnelApi;

/// The longest a query waits for its consistency token.
pub const MAX_CONSISTENCY_WAIT: Duration = Duration::from_secs(10);

/// The authenticated principal, if it holds `permission`.
pub(crate) fn principal<T>(
    auth: &Arc<Authenticator>,
    request: &Request<T>,
    permission: Permission,
    action: &'static str,
) -> Result<Principal, Status> {
    let header = request
        .metadata()
        .get("authorization")
        .map(|v| v.to_str().unwrap_or(""));
    auth.authorize(header, permission, action)
        .cloned()
        .map_err(|e| auth_status(&e))
}

/// Waits until `model`'s served build applied `consistency.min_position` (bounded by the
/// call's deadline and [`MAX_CONSISTENCY_WAIT`]); returns the applied position. While no
/// build is served yet (the first build of a new data dir catching up) it waits for one
/// the same way, then answers UNAVAILABLE.
async fn consistent<T>(
    model: &ReadModel,
    request: &Request<T>,
    consistency: Option<&v1::Consistency>,
) -> Result<u64, Status> {
    let wanted = consistency.map_or(0, |c| c.min_position);
    if model.serving().is_some() && model.checkpoint() >= wanted {
        return Ok(model.checkpoint());
    }
    let wait = deadline(request).map_or(MAX_CONSISTENCY_WAIT, |d| {
        // Leave time to answer before the client gives up.
        d.saturating_sub(Duration::from_millis(20))
            .min(MAX_CONSISTENCY_WAIT)
    });
    let started = Instant::now();
    if model.wait_for(wanted, wait).await {
        Ok(model.checkpoint())
    } else if model.serving().is_none() {
        Err(projection_status(&ProjectionError::NotServing(
            model.projection().to_owned(),
        )))
    } else {
        Err(stale_status(model.checkpoint(), wanted, started.elapsed()))
    }
}

/// The call's deadline from the `grpc-timeout` header.
fn deadline<T>(request: &Request<T>) -> Option<Duration> {
    let v = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// An optional request timestamp, in microseconds.
fn opt_time(t: Option<&prost_types::Timestamp>, field: &str) -> Result<Option<i64>, Status> {
    t.map(|t| {
        timestamp_from_proto(t)
            .map(|t| t.0)
            .ok_or_else(|| invalid_query_field(field, "not a valid timestamp"))
    })
    .transpose()
}

/// A request's `as_of`: now when unset.
fn as_of(t: Option<&prost_types::Timestamp>, field: &str) -> Result<i64, Status> {
    Ok(opt_time(t, field)?.unwrap_or_else(now))
}

fn parse_id(s: &str, field: &str) -> Result<[u8; 16], Status> {
    uuid::Uuid::try_parse(s)
        .map(uuid::Uuid::into_bytes)
        .map_err(|_| invalid_query_field(field, "must be a UUID"))
}

fn page_size(n: u32) -> Result<usize, Status> {
    match n {
        0 => Ok(50),
        1..=1000 => Ok(n as usize),
        _ => Err(invalid_query_field("page_size", "must be 1-1000")),
    }
}

fn page_token(t: &str) -> Result<Option<Vec<u8>>, Status> {
    if t.is_empty() {
        return Ok(None);
    }
    hex::decode(t)
        .map(Some)
        .map_err(|_| invalid_query_field("page_token", "not a token this service issued"))
}

fn uuid_str(id: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(id).to_string()
}

/// How long a query waits for a turn when the limit is reached (a write-back holding
/// the store can keep every running query for a few hundred milliseconds).
pub(crate) const QUERY_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// The read side's own limit on queries doing storage work at once: beyond it a query
/// waits for a turn (without holding a thread), and is refused with RESOURCE_EXHAUSTED
/// after `wait`. It keeps queries from taking every blocking thread the projectors'
/// batch applies need, and bounds the read work a burst can start.
#[derive(Clone, Debug)]
pub(crate) struct QueryPermits {
    permits: Arc<tokio::sync::Semaphore>,
    max: usize,
    wait: Duration,
}

impl QueryPermits {
    pub(crate) fn new(max: usize, wait: Duration) -> Self {
        let max = max.max(1);
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
            wait,
        }
    }

    pub(crate) async fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        let turn = tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned());
        match turn.await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Status::resource_exhausted(format!(
                "the read side is answering its limit of {} queries at once and none finished within {:?}; retry shortly",
                self.max, self.wait
            ))),
        }
    }
}
