//! `decide(world, command) -> events | rejection`: every business rule lives here, one
//! module per area (as the tests are split): `profile` (registration, profile, consent,
//! tags, relationships, interactions), `commerce` (orders, returns), `tickets`,
//! `opportunities`, `leads` and `campaigns` (with campaign responses). [`decide`] is the
//! one exhaustive dispatch: a new command does not compile until it is routed.

mod campaigns;
mod commerce;
mod leads;
mod opportunities;
mod profile;
mod tickets;

use std::collections::BTreeMap;

use crate::campaign::CampaignCreated;
use crate::campaign::{Campaign, SkipReason, SkippedRecipient};
use crate::command::{
    Command, ConversionOpportunity, ConvertInto, LogInteraction, OpenOpportunity, OpenTicket,
    PlaceOrder, RecordReturn, RegisterCustomer,
};
use crate::config::{DomainConfig, Pipeline};
use crate::customer::RelationshipKind;
use crate::customer::{
    CampaignResponse, Customer, CustomerEvent, CustomerRegistered, Direction, InteractionLogged,
    OpportunityOpened, OpportunityState, OpportunityStatus, OrderPlaced, Profile, ProfilePatch,
    ReturnRecorded, TicketOpened, TicketState, TicketStatus,
};
use crate::lead::{Lead, LeadCaptured, LeadEvent, LeadStatus};
use crate::rejection::{Rejection, RejectionKind, Violation};
use crate::validate::{
    AMOUNT_MAX, Check, LIST_MAX, NAME_MAX, ORDER_LINES_MAX, RECIPIENTS_MAX, SHORT_MAX, SUBJECT_MAX,
    TAG_MAX, TAGS_PER_CUSTOMER_MAX, TEXT_MAX, same_currency,
};
use crate::values::{
    CampaignId, Channel, ConsentChannel, CustomerId, LeadId, Money, OpportunityId, TicketId,
    Timestamp,
};
use crate::{CampaignEvent, DomainEvent, World};

/// What a decision may depend on besides the aggregates: configuration and the
/// command's business time. Never the wall clock.
#[derive(Clone, Copy, Debug)]
pub struct DecideContext<'a> {
    pub config: &'a DomainConfig,
    pub occurred_at: Timestamp,
}

/// Decides the events of `command` against the current `world` (which holds every
/// aggregate the command's [`Command::targets`] name, when they exist).
///
/// An empty list means the command is accepted but changes nothing (for example
/// tagging a customer with a tag it already has).
pub fn decide(
    world: &World,
    command: &Command,
    ctx: &DecideContext<'_>,
) -> Result<Vec<DomainEvent>, Rejection> {
    match command {
        Command::RegisterCustomer(c) => profile::register_customer(world, c),
        Command::UpdateProfile { customer_id, patch } => {
            profile::update_profile(world, customer_id, patch)
        }
        Command::SetConsent {
            customer_id,
            channel,
            granted,
            source,
        } => profile::set_consent(world, customer_id, channel, granted, source),
        Command::TagCustomer { customer_id, tag } => profile::tag(world, customer_id, tag, true),
        Command::UntagCustomer { customer_id, tag } => profile::tag(world, customer_id, tag, false),
        Command::LinkCustomers {
            customer_id,
            other,
            kind,
        } => profile::link_customers(world, customer_id, other, kind),
        Command::LogInteraction(c) => profile::log_interaction(world, c),
        Command::PlaceOrder(c) => commerce::place_order(world, c),
        Command::RecordReturn(c) => commerce::record_return(world, c),
        Command::OpenTicket(c) => tickets::open_new_ticket(world, c, ctx),
        Command::AssignTicket {
            customer_id,
            ticket_id,
            agent,
            rule,
        } => tickets::assign_ticket(world, customer_id, ticket_id, agent, rule),
        Command::RespondToTicket {
            customer_id,
            ticket_id,
            agent,
            awaiting_customer,
        } => tickets::respond_to_ticket(world, customer_id, ticket_id, agent, awaiting_customer),
        Command::ResolveTicket {
            customer_id,
            ticket_id,
            resolution,
        } => tickets::resolve_ticket(world, customer_id, ticket_id, resolution),
        Command::ReopenTicket {
            customer_id,
            ticket_id,
            reason,
        } => tickets::reopen_ticket(world, customer_id, ticket_id, reason),
        Command::CloseTicket {
            customer_id,
            ticket_id,
            csat,
            comment,
        } => tickets::close_ticket(world, customer_id, ticket_id, csat, comment),
        Command::OpenOpportunity(c) => opportunities::open_new_opportunity(world, c, ctx),
        Command::MoveOpportunityStage {
            customer_id,
            opportunity_id,
            stage,
            probability_pct,
        } => opportunities::move_opportunity_stage(
            world,
            customer_id,
            opportunity_id,
            stage,
            probability_pct,
            ctx,
        ),
        Command::WinOpportunity {
            customer_id,
            opportunity_id,
            amount,
        } => opportunities::win_opportunity(world, customer_id, opportunity_id, amount),
        Command::LoseOpportunity {
            customer_id,
            opportunity_id,
            reason,
        } => opportunities::lose_opportunity(world, customer_id, opportunity_id, reason),
        Command::UpdateOpportunity {
            customer_id,
            opportunity_id,
            name,
            amount,
            owner,
            expected_close,
        } => opportunities::update_opportunity(
            world,
            customer_id,
            opportunity_id,
            opportunities::OpportunityChanges {
                name: name.as_ref(),
                amount: amount.as_ref(),
                owner: owner.as_ref(),
                expected_close: expected_close.as_ref(),
            },
        ),
        Command::ReopenOpportunity {
            customer_id,
            opportunity_id,
            stage,
            reason,
        } => opportunities::reopen_opportunity(
            world,
            customer_id,
            opportunity_id,
            stage.as_ref(),
            reason,
            ctx,
        ),
        Command::RecordCampaignResponse {
            customer_id,
            campaign_id,
            response,
        } => campaigns::record_campaign_response(world, customer_id, campaign_id, response),
        Command::ForgetCustomer {
            customer_id,
            reason,
            legal_basis,
        } => profile::forget_customer(world, customer_id, reason, legal_basis),
        Command::CreateLead { lead_id, lead } => leads::create_lead(world, lead_id, lead),
        Command::AssignLead {
            lead_id,
            owner,
            rule,
        } => leads::assign_lead(world, lead_id, owner, rule),
        Command::ContactLead {
            lead_id,
            channel,
            agent,
        } => leads::contact_lead(world, lead_id, channel, agent),
        Command::QualifyLead { lead_id, note } => leads::qualify_lead(world, lead_id, note),
        Command::DisqualifyLead { lead_id, reason } => {
            leads::disqualify_lead(world, lead_id, reason)
        }
        Command::ConvertLead {
            lead_id,
            into,
            opportunity,
        } => leads::convert_lead(world, *lead_id, *into, opportunity.as_ref(), ctx),
        Command::CreateCampaign {
            campaign_id,
            campaign,
        } => campaigns::create_campaign(world, campaign_id, campaign),
        Command::SendCampaign {
            campaign_id,
            recipients,
        } => campaigns::send_campaign(world, campaign_id, recipients),
        Command::RecordCampaignCost {
            campaign_id,
            amount,
            note,
        } => campaigns::record_campaign_cost(world, campaign_id, amount, note),
    }
}

pub(super) fn customer_event(id: CustomerId, e: CustomerEvent) -> DomainEvent {
    DomainEvent::Customer(id, e)
}

pub(super) fn existing_customer<'w>(
    world: &'w World,
    id: CustomerId,
    field: &str,
) -> Result<&'w Customer, Rejection> {
    let customer = world
        .customers
        .get(&id)
        .ok_or_else(|| Rejection::not_found(field, format!("customer {id} does not exist")))?;
    if customer.forgotten {
        return Err(Rejection::precondition(
            field,
            "not_forgotten",
            format!(
                "customer {id} was forgotten (erased at their request): no command changes them"
            ),
        ));
    }
    Ok(customer)
}

pub(super) fn existing_lead(world: &World, id: LeadId) -> Result<&Lead, Rejection> {
    world
        .leads
        .get(&id)
        .ok_or_else(|| Rejection::not_found("lead_id", format!("lead {id} does not exist")))
}

pub(super) fn existing_campaign<'w>(
    world: &'w World,
    id: CampaignId,
    field: &str,
) -> Result<&'w Campaign, Rejection> {
    world
        .campaigns
        .get(&id)
        .ok_or_else(|| Rejection::not_found(field, format!("campaign {id} does not exist")))
}
