//! A rebuild on a running service: `AdminService.RebuildProjection` starts it beside the
//! live build, and the service is asked (`ListProjections`) until the new build is the
//! only one left, i.e. it caught up and queries switched to it.

use std::time::{Duration, Instant};

use crm_proto::v1::{self, admin_service_client::AdminServiceClient};
use tonic::transport::Channel;

use crate::grpc::{answer, authed};
use crate::{AnalystError, Named};

/// Where a followed rebuild stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub tree: String,
    pub checkpoint: u64,
    pub head: u64,
    pub rate_per_second: f64,
    pub eta_seconds: Option<f64>,
}

/// What the rebuild did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Rebuilt {
    pub projection: &'static str,
    /// The new build, now live, and the position it had when queries switched to it.
    pub tree: String,
    pub position: u64,
    pub seconds: f64,
}

/// Starts a rebuild of `projection` and follows it until queries switched to it (or
/// `timeout`); `progress` gets the new build's state about twice a second.
///
/// # Errors
/// The service's refusal (e.g. `PERMISSION_DENIED` without `projections.admin`,
/// `FAILED_PRECONDITION` while a build is in progress), or the timeout.
pub async fn rebuild(
    channel: Channel,
    token: &str,
    projection: Named,
    timeout: Duration,
    mut progress: impl FnMut(&Progress),
) -> Result<Rebuilt, AnalystError> {
    let mut admin = AdminServiceClient::new(channel);
    let started = Instant::now();
    let tree = answer(
        admin
            .rebuild_projection(authed(
                v1::RebuildProjectionRequest {
                    name: projection.name().to_owned(),
                },
                token,
            )?)
            .await,
    )?
    .build
    .map(|b| b.tree)
    .ok_or_else(|| AnalystError::Service("the reply names no build".into()))?;
    loop {
        let list = answer(
            admin
                .list_projections(authed(v1::ListProjectionsRequest {}, token)?)
                .await,
        )?;
        let builds = list
            .projections
            .into_iter()
            .find(|p| p.name == projection.name())
            .map(|p| p.builds)
            .unwrap_or_default();
        if let Some(b) = builds.iter().find(|b| b.tree == tree) {
            progress(&Progress {
                tree: tree.clone(),
                checkpoint: b.checkpoint,
                head: b.head,
                rate_per_second: b.rate_per_second,
                eta_seconds: b.eta_seconds,
            });
            if builds.len() == 1 && b.state() == v1::BuildState::Live {
                return Ok(Rebuilt {
                    projection: projection.name(),
                    tree,
                    position: b.checkpoint,
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
        } else {
            return Err(AnalystError::Service(format!(
                "build {tree} is gone: another rebuild replaced it"
            )));
        }
        if started.elapsed() > timeout {
            return Err(AnalystError::Service(format!(
                "build {tree} was not live after {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
