//! The log service: stream positions set aside as not ours (see `crm_store`'s quarantine).

use std::sync::Arc;

use crm_domain::CommandId;
use crm_proto::v1::{self, log_service_server::LogService};
use crm_store::{CommandHandler, CommandMeta, QuarantineOutcome};
use tonic::{Request, Response, Status};

use crate::auth::{Authenticator, Permission};
use crate::status::{handle_error_status, invalid_query_field};

#[derive(Clone, Debug)]
pub struct LogApi {
    handler: CommandHandler,
    auth: Arc<Authenticator>,
}

impl LogApi {
    #[must_use]
    pub fn new(handler: CommandHandler, auth: Arc<Authenticator>) -> Self {
        Self { handler, auth }
    }
}

#[tonic::async_trait]
impl LogService for LogApi {
    async fn quarantine_position(
        &self,
        request: Request<v1::QuarantinePositionRequest>,
    ) -> Result<Response<v1::QuarantinePositionReply>, Status> {
        let principal = crate::query::principal(
            &self.auth,
            &request,
            Permission::LogQuarantine,
            "quarantine stream positions",
        )?;
        let r = request.into_inner();
        let command_id = if r.command_id.is_empty() {
            CommandId::new_v7()
        } else {
            r.command_id
                .parse::<uuid::Uuid>()
                .map(CommandId)
                .map_err(|_| invalid_query_field("command_id", "a UUID, or empty"))?
        };
        let meta = CommandMeta {
            command_id,
            ..CommandMeta::new(principal.actor(false))
        };
        let outcome = self
            .handler
            .quarantine(r.sequence, &r.reason, &meta)
            .await
            .map_err(|e| handle_error_status(&e))?;
        Ok(Response::new(v1::QuarantinePositionReply {
            repeated: outcome.repeated,
            quarantined: Some(position(&outcome)),
        }))
    }

    async fn list_quarantined(
        &self,
        request: Request<v1::ListQuarantinedRequest>,
    ) -> Result<Response<v1::ListQuarantinedReply>, Status> {
        crate::query::principal(
            &self.auth,
            &request,
            Permission::LogAudit,
            "list quarantined positions",
        )?;
        let positions = self
            .handler
            .quarantined()
            .await
            .map_err(|e| handle_error_status(&e.into()))?;
        Ok(Response::new(v1::ListQuarantinedReply {
            positions: positions.iter().map(position).collect(),
        }))
    }
}

fn position(o: &QuarantineOutcome) -> v1::QuarantinedPosition {
    let r = &o.record;
    v1::QuarantinedPosition {
        sequence: r.seq,
        subject: r.subject.clone(),
        payload_sha256: r.payload_sha256.to_hex(),
        reason: r.reason.clone(),
        actor: r.actor.label(),
        recorded_at: Some(crm_proto::timestamp_to_proto(r.recorded_at)),
        record_sequence: o.position,
    }
}
