//! `crm.v1.CommandService`: every RPC authenticates, checks the command's permission,
//! converts the request (crm-proto), hands the command to the [`CommandHandler`] and
//! replies with the aggregate's version and the commit's stream position.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crm_domain::{AggregateRef, Command, CommandId, CommandKind, Rejection};
use crm_proto::v1::{self, command_service_server::CommandService};
use crm_proto::{
    IntoCommand, ParsedRequest, command_reply, parse_request, proto_field_path, skipped_recipients,
};
use crm_store::{CommandHandler, CommandMeta, HandleError};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{Stream, StreamExt};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Authenticator, Permission, Principal};
use crate::metrics::RequestMetrics;
use crate::status::{auth_status, handle_error_status, rejection_status};

/// The permission a command needs. Exhaustive: a new command kind does not compile until
/// it is given one.
#[must_use]
pub const fn permission(command: CommandKind) -> Permission {
    use CommandKind as K;
    match command {
        K::RegisterCustomer
        | K::UpdateProfile
        | K::SetConsent
        | K::TagCustomer
        | K::UntagCustomer
        | K::LinkCustomers => Permission::CustomersWrite,
        K::LogInteraction => Permission::InteractionsWrite,
        K::PlaceOrder | K::RecordReturn => Permission::CommerceWrite,
        K::OpenTicket
        | K::AssignTicket
        | K::RespondToTicket
        | K::ResolveTicket
        | K::ReopenTicket
        | K::CloseTicket => Permission::TicketsWrite,
        K::OpenOpportunity
        | K::MoveOpportunityStage
        | K::WinOpportunity
        | K::LoseOpportunity
        | K::UpdateOpportunity
        | K::ReopenOpportunity => Permission::SalesWrite,
        K::CreateLead
        | K::AssignLead
        | K::ContactLead
        | K::QualifyLead
        | K::DisqualifyLead
        | K::ConvertLead => Permission::LeadsWrite,
        K::CreateCampaign | K::SendCampaign | K::RecordCampaignCost | K::RecordCampaignResponse => {
            Permission::MarketingWrite
        }
        K::ForgetCustomer => Permission::PrivacyForget,
    }
}

/// Limits of the bulk ingest stream.
#[derive(Clone, Copy, Debug)]
pub struct IngestLimits {
    /// Commands of one stream being handled at once; reading the stream pauses beyond it.
    pub in_flight: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self { in_flight: 256 }
    }
}

/// The command service.
#[derive(Clone, Debug)]
pub struct Commands {
    handler: CommandHandler,
    auth: Arc<Authenticator>,
    ingest: IngestLimits,
    /// Requests (unary calls and ingest streams) being served at once.
    requests: Arc<Semaphore>,
    max_requests: usize,
    metrics: RequestMetrics,
}

/// A rejection with the domain's field names translated to the request's.
fn request_rejection(command: &Command, mut r: Rejection) -> Rejection {
    for v in &mut r.violations {
        v.field = proto_field_path(command, &v.field);
    }
    r
}

fn error_status(command: &Command, e: HandleError) -> Status {
    match e {
        HandleError::Rejected(r) => rejection_status(&request_rejection(command, r)),
        other => handle_error_status(&other),
    }
}

impl Commands {
    #[must_use]
    pub fn new(
        handler: CommandHandler,
        auth: Arc<Authenticator>,
        ingest: IngestLimits,
        max_requests: usize,
    ) -> Self {
        let max_requests = max_requests.max(1);
        Self {
            handler,
            auth,
            ingest,
            requests: Arc::new(Semaphore::new(max_requests)),
            max_requests,
            metrics: RequestMetrics::default(),
        }
    }

    /// Where the commands of Ingest streams are counted and timed.
    #[must_use]
    pub fn with_metrics(mut self, metrics: RequestMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.requests.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the server is handling its limit of {} requests; retry shortly (with the same command id)",
                self.max_requests
            ))
        })
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or(""));
        self.auth
            .authenticate(header)
            .cloned()
            .map_err(|e| auth_status(&e))
    }

    /// Checks that `principal` may run a command of `kind` (see [`permission`]). Called
    /// before the request is converted, so a caller without the permission learns nothing
    /// about the request's validity. An ingest item without a command (`None`) is left to
    /// the conversion, which refuses it.
    fn authorize(principal: &Principal, kind: Option<CommandKind>) -> Result<(), Status> {
        let Some(kind) = kind else {
            return Ok(());
        };
        principal
            .require(permission(kind), kind.name())
            .map_err(|e| auth_status(&e))
    }

    /// Runs one parsed command for `principal`, who was authorized for it.
    async fn run(
        handler: &CommandHandler,
        principal: &Principal,
        parsed: ParsedRequest,
    ) -> Result<v1::CommandReply, Status> {
        let meta = CommandMeta {
            command_id: parsed.command_id,
            actor: principal.actor(false),
            occurred_at: parsed.options.occurred_at,
            correlation_id: parsed.options.correlation_id,
            causation_id: parsed.options.causation_id,
            expected_version: parsed.options.expected_version,
        };
        let primary = parsed.command.targets()[0].aggregate;
        match handler.handle(&parsed.command, &meta).await {
            Ok(o) => Ok(v1::CommandReply {
                skipped_recipients: skipped_recipients(&o.events),
                ..command_reply(
                    o.command_id,
                    &o.aggregates,
                    primary,
                    o.position,
                    o.appended,
                    o.repeated,
                )
            }),
            Err(e) => Err(error_status(&parsed.command, e)),
        }
    }

    async fn unary<R: IntoCommand>(
        &self,
        request: Request<R>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let principal = self.principal(&request)?;
        Self::authorize(&principal, request.get_ref().command_kind())?;
        let _admitted = self.admit()?;
        let parsed = parse_request(request.into_inner(), CommandId::new_v7)
            .map_err(|r| rejection_status(&r))?;
        Self::run(&self.handler, &principal, parsed)
            .await
            .map(Response::new)
    }
}

fn ingest_error(sequence: u64, status: &Status) -> v1::IngestReply {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let mut violations: Vec<v1::FieldViolation> = details
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| v1::FieldViolation {
                    field: v.field.clone(),
                    rule: String::new(),
                    description: v.description.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(p) = details.precondition_failure() {
        violations.extend(p.violations.iter().map(|v| v1::FieldViolation {
            field: v.subject.clone(),
            rule: v.r#type.clone(),
            description: v.description.clone(),
        }));
    }
    v1::IngestReply {
        sequence,
        result: Some(v1::ingest_reply::Result::Error(v1::IngestError {
            code: status.code() as i32,
            message: status.message().to_owned(),
            violations,
        })),
    }
}

/// Completes when a command of an ingest stream has finished: `true` if later commands
/// on its aggregates may run (it was applied, or refused for good), `false` if it failed
/// in a way a resend can fix (the event log was unavailable, a conflict outlasted the
/// retries) or did not run itself: then later commands on those aggregates are not run
/// either, so that the client's resend keeps the stream's order.
type Done = Shared<BoxFuture<'static, bool>>;

/// A command in an ingest stream: its completion and whether it has finished.
type Tracked = (Done, Arc<AtomicBool>);

fn unfinished((done, finished): &Tracked) -> Option<Done> {
    (!finished.load(Ordering::Acquire)).then(|| done.clone())
}

/// The commands of one ingest stream an aggregate's next command may have to wait for:
/// its last writer, and the readers since.
#[derive(Default)]
struct Pending {
    write: Option<Tracked>,
    reads: Vec<Tracked>,
}

impl Pending {
    /// Records `me` as the aggregate's newest command; returns what it must wait for.
    fn follow(&mut self, me: Tracked, write: bool) -> Vec<Done> {
        let mut wait: Vec<Done> = self
            .write
            .as_ref()
            .and_then(unfinished)
            .into_iter()
            .collect();
        if write {
            wait.extend(self.reads.drain(..).filter_map(|r| unfinished(&r)));
            self.write = Some(me);
        } else {
            self.reads.retain(|r| !r.1.load(Ordering::Acquire));
            self.reads.push(me);
        }
        wait
    }

    fn unfinished(&self) -> bool {
        self.write
            .as_ref()
            .is_some_and(|w| !w.1.load(Ordering::Acquire))
            || self.reads.iter().any(|r| !r.1.load(Ordering::Acquire))
    }
}

#[tonic::async_trait]
impl CommandService for Commands {
    async fn register_customer(
        &self,
        r: Request<v1::RegisterCustomerRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn update_profile(
        &self,
        r: Request<v1::UpdateProfileRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn set_consent(
        &self,
        r: Request<v1::SetConsentRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn tag_customer(
        &self,
        r: Request<v1::TagCustomerRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn untag_customer(
        &self,
        r: Request<v1::UntagCustomerRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn link_customers(
        &self,
        r: Request<v1::LinkCustomersRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn log_interaction(
        &self,
        r: Request<v1::LogInteractionRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn place_order(
        &self,
        r: Request<v1::PlaceOrderRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn record_return(
        &self,
        r: Request<v1::RecordReturnRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn open_ticket(
        &self,
        r: Request<v1::OpenTicketRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn assign_ticket(
        &self,
        r: Request<v1::AssignTicketRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn respond_to_ticket(
        &self,
        r: Request<v1::RespondToTicketRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn resolve_ticket(
        &self,
        r: Request<v1::ResolveTicketRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn reopen_ticket(
        &self,
        r: Request<v1::ReopenTicketRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn close_ticket(
        &self,
        r: Request<v1::CloseTicketRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn open_opportunity(
        &self,
        r: Request<v1::OpenOpportunityRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn move_opportunity_stage(
        &self,
        r: Request<v1::MoveOpportunityStageRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn win_opportunity(
        &self,
        r: Request<v1::WinOpportunityRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn lose_opportunity(
        &self,
        r: Request<v1::LoseOpportunityRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn update_opportunity(
        &self,
        r: Request<v1::UpdateOpportunityRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn reopen_opportunity(
        &self,
        r: Request<v1::ReopenOpportunityRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn create_lead(
        &self,
        r: Request<v1::CreateLeadRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn assign_lead(
        &self,
        r: Request<v1::AssignLeadRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn contact_lead(
        &self,
        r: Request<v1::ContactLeadRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn qualify_lead(
        &self,
        r: Request<v1::QualifyLeadRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn disqualify_lead(
        &self,
        r: Request<v1::DisqualifyLeadRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn convert_lead(
        &self,
        r: Request<v1::ConvertLeadRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn create_campaign(
        &self,
        r: Request<v1::CreateCampaignRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn send_campaign(
        &self,
        r: Request<v1::SendCampaignRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn record_campaign_cost(
        &self,
        r: Request<v1::RecordCampaignCostRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn record_campaign_response(
        &self,
        r: Request<v1::RecordCampaignResponseRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }
    async fn forget_customer(
        &self,
        r: Request<v1::ForgetCustomerRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.unary(r).await
    }

    type IngestStream =
        Pin<Box<dyn Stream<Item = Result<v1::IngestReply, Status>> + Send + 'static>>;

    /// Reads commands as fast as `in_flight` allows (back-pressure: the stream is not
    /// read while the limit is reached), answers each one as it completes, and keeps
    /// the sent order for commands that share an aggregate: a command that writes an
    /// aggregate waits for every earlier command touching it; a command that only reads
    /// one (a campaign response reads its campaign) waits for the earlier writes of it,
    /// not for the other readers, so the responses to one campaign run side by side.
    /// After a command that failed in a way a resend can fix (UNAVAILABLE, ABORTED), the
    /// later commands on its aggregates are not run: they are answered UNAVAILABLE, so a
    /// loader that sends them again in order keeps the order.
    async fn ingest(
        &self,
        request: Request<Streaming<v1::IngestRequest>>,
    ) -> Result<Response<Self::IngestStream>, Status> {
        let principal = self.principal(&request)?;
        principal
            .require(Permission::Ingest, "use bulk ingest")
            .map_err(|e| auth_status(&e))?;
        let admitted = self.admit()?;
        let mut input = request.into_inner();
        let in_flight = self.ingest.in_flight.max(1);
        let (tx, rx) = mpsc::channel::<Result<v1::IngestReply, Status>>(in_flight);
        let handler = self.handler.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            // The stream holds its admission until its last command is answered: every
            // command task keeps a share of it, so the request limit bounds the commands
            // running, not only the streams being read.
            let admitted = Arc::new(admitted);
            let permits = Arc::new(Semaphore::new(in_flight));
            // The completion of the latest command of each aggregate.
            // (A shared future only completes once polled, so finished commands are
            // tracked with a flag, not by peeking at the future.)
            let mut last: BTreeMap<AggregateRef, Pending> = BTreeMap::new();
            let principal = Arc::new(principal);
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let item = match input.next().await {
                    None => break,
                    Some(Err(status)) => {
                        tracing::debug!(%status, "ingest stream ended with an error");
                        break;
                    }
                    Some(Ok(item)) => item,
                };
                let sequence = item.sequence;
                let read_at = Instant::now();
                let parsed = Self::authorize(&principal, item.command_kind()).and_then(|()| {
                    parse_request(item, CommandId::new_v7).map_err(|r| rejection_status(&r))
                });
                let parsed = match parsed {
                    Ok(p) => p,
                    Err(status) => {
                        metrics.record_ingest(status.code(), read_at.elapsed().as_secs_f64());
                        if tx.send(Ok(ingest_error(sequence, &status))).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let (done_tx, done_rx) = oneshot::channel::<bool>();
                let me: Tracked = (
                    // A task that ended without saying (it panicked) holds its followers.
                    done_rx.map(|r| r.unwrap_or(false)).boxed().shared(),
                    Arc::new(AtomicBool::new(false)),
                );
                let finished = me.1.clone();
                let mut before: Vec<Done> = Vec::new();
                for t in parsed.command.targets() {
                    before.extend(
                        last.entry(t.aggregate)
                            .or_default()
                            .follow(me.clone(), t.write),
                    );
                }
                if last.len() > in_flight * 4 {
                    // Forget aggregates with nothing unfinished (the map stays a few
                    // times the in-flight limit, so this is amortized O(1)).
                    last.retain(|_, p| p.unfinished());
                }
                let (handler, principal, tx) = (handler.clone(), principal.clone(), tx.clone());
                let metrics = metrics.clone();
                let admitted = Arc::clone(&admitted);
                tokio::spawn(async move {
                    let _admitted = admitted;
                    let mut may_run = true;
                    for b in before {
                        may_run &= b.await;
                    }
                    let result = if may_run {
                        Commands::run(&handler, &principal, parsed).await
                    } else {
                        Err(Status::unavailable(
                            "not run: an earlier command of this stream on the same aggregate was not applied and can be sent again; send both again, in order, with the same command ids",
                        ))
                    };
                    let code = result
                        .as_ref()
                        .map_or_else(Status::code, |_| tonic::Code::Ok);
                    metrics.record_ingest(code, read_at.elapsed().as_secs_f64());
                    let reply = match result {
                        Ok(ok) => v1::IngestReply {
                            sequence,
                            result: Some(v1::ingest_reply::Result::Ok(ok)),
                        },
                        Err(status) => ingest_error(sequence, &status),
                    };
                    let _ = tx.send(Ok(reply)).await;
                    finished.store(true, Ordering::Release);
                    let _ = done_tx.send(!crm_proto::resendable(code));
                    drop(permit);
                });
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command kind needs a write permission of its area (forgetting a customer
    /// its own), and none needs a read or admin permission (the full table is checked
    /// end to end by the permission-matrix test).
    #[test]
    fn every_command_kind_needs_a_write_permission() {
        assert_eq!(
            permission(CommandKind::RegisterCustomer),
            Permission::CustomersWrite
        );
        assert_eq!(
            permission(CommandKind::RecordCampaignResponse),
            Permission::MarketingWrite
        );
        assert_eq!(
            permission(CommandKind::ForgetCustomer),
            Permission::PrivacyForget
        );
        for kind in CommandKind::ALL {
            let p = permission(kind);
            assert!(
                p.name().ends_with(".write") || p == Permission::PrivacyForget,
                "{kind:?} needs {p:?}"
            );
        }
    }
}
