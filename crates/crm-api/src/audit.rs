//! `AuditService`: the auditors' replay over gRPC, through `crm-audit`'s library (the
//! stream read directly as the reader, the live fold and rendering): a customer's
//! history, their 360° view as of a moment, and the diff between two moments.

use std::sync::Arc;

use crm_audit::as_of::{self, Cut};
use crm_audit::connect::Source;
use crm_audit::history::{self, Entry, Filter};
use crm_domain::{CustomerId, Timestamp};
use crm_proto::v1::{self, audit_service_server::AuditService};
use tonic::{Request, Response, Status};

use crate::auth::{Authenticator, Permission};
use crate::status::{audit_error_status, invalid_query_field};

#[derive(Clone, Debug)]
pub struct AuditApi {
    source: Source,
    auth: Arc<Authenticator>,
}

impl AuditApi {
    #[must_use]
    pub fn new(source: Source, auth: Arc<Authenticator>) -> Self {
        Self { source, auth }
    }

    /// The caller may replay; whether they may see personal data.
    fn pii<T>(&self, request: &Request<T>, action: &'static str) -> Result<bool, Status> {
        let principal =
            crate::query::principal(&self.auth, request, Permission::AuditRead, action)?;
        Ok(principal.allows(Permission::PiiRead))
    }
}

fn customer(id: &str) -> Result<CustomerId, Status> {
    uuid::Uuid::try_parse(id)
        .map(CustomerId)
        .map_err(|_| invalid_query_field("customer_id", "must be a UUID"))
}

fn required_time(t: Option<&prost_types::Timestamp>, field: &str) -> Result<i64, Status> {
    let t = t.ok_or_else(|| invalid_query_field(field, "required"))?;
    crm_proto::timestamp_from_proto(t)
        .map(|t| t.0)
        .ok_or_else(|| invalid_query_field(field, "not a valid timestamp"))
}

fn cut(clock: i32, at: i64) -> Result<Cut, Status> {
    match v1::Clock::try_from(clock) {
        Ok(v1::Clock::Unspecified | v1::Clock::Recorded) => Ok(Cut::Recorded(at)),
        Ok(v1::Clock::Occurred) => Ok(Cut::Occurred(at)),
        Err(_) => Err(invalid_query_field("clock", "unknown clock")),
    }
}

fn entry(e: Entry, pii: bool) -> v1::HistoryEntry {
    let ts = |micros| Some(crm_proto::timestamp_to_proto(Timestamp(micros)));
    v1::HistoryEntry {
        position: e.position,
        subject: e.subject,
        aggregate: e.aggregate,
        concerns: e.concerns.into(),
        event_type: e.event_type,
        schema_version: e.schema_version.into(),
        version: e.version,
        occurred_at: ts(e.occurred_micros),
        recorded_at: ts(e.recorded_micros),
        actor: e.actor,
        command_id: e.command_id,
        correlation_id: e.correlation_id,
        causation_id: e.causation_id.unwrap_or_default(),
        commit_index: e.commit_index.into(),
        commit_size: e.commit_size.into(),
        hash: e.hash,
        prev_hash: e.prev_hash,
        event: if pii { e.event } else { String::new() },
        event_redacted: !pii,
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn export_subject_data(
        &self,
        request: Request<v1::ExportSubjectDataRequest>,
    ) -> Result<Response<v1::SubjectDataReply>, Status> {
        let principal = crate::query::principal(
            &self.auth,
            &request,
            Permission::PrivacyExport,
            "export a customer's data",
        )?;
        let id = customer(&request.get_ref().customer_id)?;
        let data = crm_audit::subject::subject_data(&self.source, id)
            .await
            .map_err(|e| audit_error_status(&e))?;
        tracing::info!(customer = %id, by = %principal.name, events = data.events, "subject data exported");
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(Response::new(v1::SubjectDataReply {
            json: data.document.to_string(),
            events: count(data.events),
            personal_fields: count(data.personal_fields),
            forgotten: data.forgotten,
        }))
    }

    async fn get_customer_history(
        &self,
        request: Request<v1::GetCustomerHistoryRequest>,
    ) -> Result<Response<v1::CustomerHistoryReply>, Status> {
        let pii = self.pii(&request, "replay customer histories")?;
        let r = request.get_ref();
        let id = customer(&r.customer_id)?;
        let opt = |t: Option<&prost_types::Timestamp>, field| {
            t.map(|t| required_time(Some(t), field)).transpose()
        };
        let filter = Filter {
            from: opt(r.from.as_ref(), "from")?,
            to: opt(r.to.as_ref(), "to")?,
            types: r.event_types.clone(),
        };
        let entries = history::history(&self.source, id, &filter)
            .await
            .map_err(|e| audit_error_status(&e))?;
        Ok(Response::new(v1::CustomerHistoryReply {
            entries: entries.into_iter().map(|e| entry(e, pii)).collect(),
        }))
    }

    async fn get_customer_as_of(
        &self,
        request: Request<v1::GetCustomerAsOfRequest>,
    ) -> Result<Response<v1::CustomerAsOfReply>, Status> {
        let pii = self.pii(&request, "replay customers as of a moment")?;
        let r = request.get_ref();
        let id = customer(&r.customer_id)?;
        let cut = cut(r.clock, required_time(r.at.as_ref(), "at")?)?;
        let view = as_of::customer_as_of(&self.source, id, cut, pii)
            .await
            .map_err(|e| audit_error_status(&e))?;
        Ok(Response::new(v1::CustomerAsOfReply {
            view: view.reply,
            events_applied: view.point.applied,
            events_cut_off: view.point.cut_off,
            refused_positions: view.point.rejected.iter().map(|(seq, _)| *seq).collect(),
        }))
    }

    async fn diff_customer(
        &self,
        request: Request<v1::DiffCustomerRequest>,
    ) -> Result<Response<v1::CustomerDiffReply>, Status> {
        let pii = self.pii(&request, "diff customers between two moments")?;
        let r = request.get_ref();
        let id = customer(&r.customer_id)?;
        let from = required_time(r.from.as_ref(), "from")?;
        let to = required_time(r.to.as_ref(), "to")?;
        if from > to {
            return Err(invalid_query_field("to", "must not be before from"));
        }
        let diff = as_of::diff(
            &self.source,
            id,
            cut(r.clock, from)?,
            cut(r.clock, to)?,
            pii,
        )
        .await
        .map_err(|e| audit_error_status(&e))?;
        Ok(Response::new(v1::CustomerDiffReply {
            changes: diff
                .changes
                .into_iter()
                .map(|c| v1::FieldChange {
                    field: c.field.into(),
                    before: c.before,
                    after: c.after,
                })
                .collect(),
            events: diff.events.into_iter().map(|e| entry(e, pii)).collect(),
        }))
    }
}
