//! The admin service: the projections this process hosts, their builds, and rebuilds.

use std::sync::Arc;

use crm_projection::{BuildState, BuildStatus, ProjectionStatus, ReadSide};
use crm_proto::v1::{self, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use crate::auth::{Authenticator, Permission, Principal};
use crate::status::{invalid_query_field, projection_status};

#[derive(Clone, Debug)]
pub struct AdminApi {
    read_side: Arc<ReadSide>,
    auth: Arc<Authenticator>,
}

impl AdminApi {
    #[must_use]
    pub fn new(read_side: Arc<ReadSide>, auth: Arc<Authenticator>) -> Self {
        Self { read_side, auth }
    }

    fn principal<T>(
        &self,
        request: &Request<T>,
        permission: Permission,
        action: &'static str,
    ) -> Result<Principal, Status> {
        crate::query::principal(&self.auth, request, permission, action)
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_projections(
        &self,
        request: Request<v1::ListProjectionsRequest>,
    ) -> Result<Response<v1::ListProjectionsReply>, Status> {
        self.principal(&request, Permission::ProjectionsRead, "list projections")?;
        let projections = self
            .read_side
            .projections()
            .iter()
            .map(|p| projection_info(&p.status()))
            .collect();
        Ok(Response::new(v1::ListProjectionsReply { projections }))
    }

    async fn rebuild_projection(
        &self,
        request: Request<v1::RebuildProjectionRequest>,
    ) -> Result<Response<v1::RebuildProjectionReply>, Status> {
        let principal = self.principal(
            &request,
            Permission::ProjectionsAdmin,
            "rebuild projections",
        )?;
        let name = &request.get_ref().name;
        if name.is_empty() {
            return Err(invalid_query_field("name", "required: a projection's name"));
        }
        let Some(projection) = self.read_side.get(name) else {
            let known: Vec<&str> = self
                .read_side
                .projections()
                .iter()
                .map(|p| p.name())
                .collect();
            return Err(Status::not_found(format!(
                "no projection named {name:?} (hosted: {})",
                known.join(", ")
            )));
        };
        let build = projection.rebuild().map_err(|e| projection_status(&e))?;
        tracing::info!(projection = %name, tree = %build.tree, principal = %principal.name, "rebuild requested");
        Ok(Response::new(v1::RebuildProjectionReply {
            build: Some(build_info(&build)),
        }))
    }
}

fn projection_info(p: &ProjectionStatus) -> v1::ProjectionInfo {
    v1::ProjectionInfo {
        name: p.name.to_owned(),
        version: p.version,
        fingerprint: p.fingerprint.clone(),
        builds: p.builds.iter().map(build_info).collect(),
    }
}

fn build_info(b: &BuildStatus) -> v1::BuildInfo {
    let state = match b.state {
        BuildState::Live => v1::BuildState::Live,
        BuildState::Frozen => v1::BuildState::Frozen,
        BuildState::Building => v1::BuildState::Building,
        BuildState::CaughtUp => v1::BuildState::CaughtUp,
    };
    v1::BuildInfo {
        tree: b.tree.clone(),
        state: state.into(),
        version: b.version,
        fingerprint: b.fingerprint.clone(),
        checkpoint: b.checkpoint,
        head: b.head,
        events_applied: b.events_applied,
        dead_lettered: b.dead_lettered,
        rate_per_second: b.rate,
        eta_seconds: b.eta_seconds,
        write_backs: get(&b.stats.flushes),
        write_back_keys: get(&b.stats.flushed_keys),
        cache_bytes: get(&b.stats.cache_bytes),
        cache_hit_ratio: b.stats.cache_hit_ratio(),
    }
}

fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(std::sync::atomic::Ordering::Relaxed)
}
