//! Request messages to domain commands.

mod campaign;
mod customer;
mod lead;

use crm_domain::{Command, CommandId, CommandKind, Rejection};
use uuid::Uuid;

use crate::check::{fail, invalid};
use crate::v1;
use crate::v1::ingest_request::Command as Ingest;

/// The purposes [`CommandIds::derive`] derives the ids of created things with: one per
/// kind of thing, so the ids a command creates differ from each other.
pub mod purpose {
    /// `RegisterCustomerRequest.customer_id`, `ConvertLeadRequest.new_customer_id`.
    pub const CUSTOMER: &str = "customer";
    /// `PlaceOrderRequest.order_id`.
    pub const ORDER: &str = "order";
    /// `RecordReturnRequest.return_id`.
    pub const RETURN: &str = "return";
    /// `OpenTicketRequest.ticket_id`.
    pub const TICKET: &str = "ticket";
    /// `LogInteractionRequest.interaction_id`.
    pub const INTERACTION: &str = "interaction";
    /// `OpenOpportunityRequest.opportunity_id`, `ConversionOpportunity.opportunity_id`.
    pub const OPPORTUNITY: &str = "opportunity";
    /// `CreateLeadRequest.lead_id`.
    pub const LEAD: &str = "lead";
    /// `CreateCampaignRequest.campaign_id`.
    pub const CAMPAIGN: &str = "campaign";
}

/// What a conversion needs besides the request: the command id, from which the ids of
/// things the request leaves empty are derived (so a retry creates the same ids).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CommandIds {
    pub command_id: CommandId,
}

impl CommandIds {
    #[must_use]
    pub const fn new(command_id: CommandId) -> Self {
        Self { command_id }
    }

    /// The id of the thing created for `purpose` (see [`purpose`]).
    #[must_use]
    pub fn derive<T: From<Uuid>>(&self, purpose: &str) -> T {
        T::from(self.command_id.derive(purpose))
    }
}

/// A request message that converts into a domain command.
pub trait IntoCommand {
    /// The request's options (idempotency key, correlation, business time, ...).
    fn options(&self) -> Option<&v1::CommandOptions>;

    /// The kind of command the request asks for ([`Command::kind`] of what it converts
    /// into), known before conversion so permission is checked first. `None`: an ingest
    /// item without a command.
    fn command_kind(&self) -> Option<CommandKind>;

    /// The domain command, or a rejection (`Invalid`) listing every field that does not
    /// convert. Field paths are relative to the request message. Options are not read
    /// (see [`parse_options`](crate::parse_options)).
    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection>;
}

impl IntoCommand for v1::IngestRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(match self.command.as_ref()? {
            Ingest::RegisterCustomer(r) => r.command_kind()?,
            Ingest::UpdateProfile(r) => r.command_kind()?,
            Ingest::SetConsent(r) => r.command_kind()?,
            Ingest::TagCustomer(r) => r.command_kind()?,
            Ingest::UntagCustomer(r) => r.command_kind()?,
            Ingest::LinkCustomers(r) => r.command_kind()?,
            Ingest::LogInteraction(r) => r.command_kind()?,
            Ingest::PlaceOrder(r) => r.command_kind()?,
            Ingest::RecordReturn(r) => r.command_kind()?,
            Ingest::OpenTicket(r) => r.command_kind()?,
            Ingest::AssignTicket(r) => r.command_kind()?,
            Ingest::RespondToTicket(r) => r.command_kind()?,
            Ingest::ResolveTicket(r) => r.command_kind()?,
            Ingest::ReopenTicket(r) => r.command_kind()?,
            Ingest::CloseTicket(r) => r.command_kind()?,
            Ingest::OpenOpportunity(r) => r.command_kind()?,
            Ingest::MoveOpportunityStage(r) => r.command_kind()?,
            Ingest::WinOpportunity(r) => r.command_kind()?,
            Ingest::LoseOpportunity(r) => r.command_kind()?,
            Ingest::UpdateOpportunity(r) => r.command_kind()?,
            Ingest::ReopenOpportunity(r) => r.command_kind()?,
            Ingest::CreateLead(r) => r.command_kind()?,
            Ingest::AssignLead(r) => r.command_kind()?,
            Ingest::ContactLead(r) => r.command_kind()?,
            Ingest::QualifyLead(r) => r.command_kind()?,
            Ingest::DisqualifyLead(r) => r.command_kind()?,
            Ingest::ConvertLead(r) => r.command_kind()?,
            Ingest::CreateCampaign(r) => r.command_kind()?,
            Ingest::SendCampaign(r) => r.command_kind()?,
            Ingest::RecordCampaignCost(r) => r.command_kind()?,
            Ingest::RecordCampaignResponse(r) => r.command_kind()?,
            Ingest::ForgetCustomer(r) => r.command_kind()?,
        })
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        match self.command.as_ref()? {
            Ingest::RegisterCustomer(r) => r.options(),
            Ingest::UpdateProfile(r) => r.options(),
            Ingest::SetConsent(r) => r.options(),
            Ingest::TagCustomer(r) => r.options(),
            Ingest::UntagCustomer(r) => r.options(),
            Ingest::LinkCustomers(r) => r.options(),
            Ingest::LogInteraction(r) => r.options(),
            Ingest::PlaceOrder(r) => r.options(),
            Ingest::RecordReturn(r) => r.options(),
            Ingest::OpenTicket(r) => r.options(),
            Ingest::AssignTicket(r) => r.options(),
            Ingest::RespondToTicket(r) => r.options(),
            Ingest::ResolveTicket(r) => r.options(),
            Ingest::ReopenTicket(r) => r.options(),
            Ingest::CloseTicket(r) => r.options(),
            Ingest::OpenOpportunity(r) => r.options(),
            Ingest::MoveOpportunityStage(r) => r.options(),
            Ingest::WinOpportunity(r) => r.options(),
            Ingest::LoseOpportunity(r) => r.options(),
            Ingest::UpdateOpportunity(r) => r.options(),
            Ingest::ReopenOpportunity(r) => r.options(),
            Ingest::CreateLead(r) => r.options(),
            Ingest::AssignLead(r) => r.options(),
            Ingest::ContactLead(r) => r.options(),
            Ingest::QualifyLead(r) => r.options(),
            Ingest::DisqualifyLead(r) => r.options(),
            Ingest::ConvertLead(r) => r.options(),
            Ingest::CreateCampaign(r) => r.options(),
            Ingest::SendCampaign(r) => r.options(),
            Ingest::RecordCampaignCost(r) => r.options(),
            Ingest::RecordCampaignResponse(r) => r.options(),
            Ingest::ForgetCustomer(r) => r.options(),
        }
    }

    /// Field paths are those of the inner request (as in the unary RPC), not prefixed
    /// with the oneof field's name; an empty oneof is a violation of `command`.
    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection> {
        let Some(command) = self.command else {
            let mut v = Vec::new();
            fail(
                &mut v,
                "command",
                "required",
                "is required (one of the requests)",
            );
            return Err(invalid(v));
        };
        match command {
            Ingest::RegisterCustomer(r) => r.into_command(ids),
            Ingest::UpdateProfile(r) => r.into_command(ids),
            Ingest::SetConsent(r) => r.into_command(ids),
            Ingest::TagCustomer(r) => r.into_command(ids),
            Ingest::UntagCustomer(r) => r.into_command(ids),
            Ingest::LinkCustomers(r) => r.into_command(ids),
            Ingest::LogInteraction(r) => r.into_command(ids),
            Ingest::PlaceOrder(r) => r.into_command(ids),
            Ingest::RecordReturn(r) => r.into_command(ids),
            Ingest::OpenTicket(r) => r.into_command(ids),
            Ingest::AssignTicket(r) => r.into_command(ids),
            Ingest::RespondToTicket(r) => r.into_command(ids),
            Ingest::ResolveTicket(r) => r.into_command(ids),
            Ingest::ReopenTicket(r) => r.into_command(ids),
            Ingest::CloseTicket(r) => r.into_command(ids),
            Ingest::OpenOpportunity(r) => r.into_command(ids),
            Ingest::MoveOpportunityStage(r) => r.into_command(ids),
            Ingest::WinOpportunity(r) => r.into_command(ids),
            Ingest::LoseOpportunity(r) => r.into_command(ids),
            Ingest::UpdateOpportunity(r) => r.into_command(ids),
            Ingest::ReopenOpportunity(r) => r.into_command(ids),
            Ingest::CreateLead(r) => r.into_command(ids),
            Ingest::AssignLead(r) => r.into_command(ids),
            Ingest::ContactLead(r) => r.into_command(ids),
            Ingest::QualifyLead(r) => r.into_command(ids),
            Ingest::DisqualifyLead(r) => r.into_command(ids),
            Ingest::ConvertLead(r) => r.into_command(ids),
            Ingest::CreateCampaign(r) => r.into_command(ids),
            Ingest::SendCampaign(r) => r.into_command(ids),
            Ingest::RecordCampaignCost(r) => r.into_command(ids),
            Ingest::RecordCampaignResponse(r) => r.into_command(ids),
            Ingest::ForgetCustomer(r) => r.into_command(ids),
        }
    }
}
