//! Requests on the customer aggregate: identity, interactions, orders, tickets,
//! opportunities and campaign responses.

use crm_domain::{
    Acquisition, Address, CallDetails, CampaignResponse, Command, CommandKind, LogInteraction,
    OpenOpportunity, OpenTicket, OrderLine, PlaceOrder, Profile, ProfilePatch, RecordReturn,
    RegisterCustomer, Rejection, ReturnLine,
};

use super::{CommandIds, IntoCommand, purpose};
use crate::check::{
    Violations, created_id, currency, enum_of, fail, finish, money, opt_id, opt_money, opt_string,
    required_id, timestamp, to_i8, to_u8,
};
use crate::enums::{
    call_outcome, channel, consent_channel, direction, relationship_kind, ticket_priority,
};
use crate::v1;

fn address(a: v1::Address) -> Address {
    Address {
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country: a.country,
    }
}

fn external_ids(ids: Vec<v1::ExternalId>) -> Vec<(String, String)> {
    ids.into_iter().map(|e| (e.system, e.id)).collect()
}

fn profile(p: v1::Profile) -> Profile {
    Profile {
        given_name: p.given_name,
        family_name: p.family_name,
        emails: p.emails,
        phones: p.phones,
        address: p.address.map(address),
        language: opt_string(p.language),
        country: opt_string(p.country),
        external_ids: external_ids(p.external_ids),
    }
}

/// A list that replaces the current one only when its `set_*` flag is true; items without
/// the flag would be silently ignored, so they are refused.
fn replaced_list<T>(
    field: &str,
    flag: &str,
    set: bool,
    items: Vec<T>,
    v: &mut Violations,
) -> Option<Vec<T>> {
    if set {
        return Some(items);
    }
    if !items.is_empty() {
        fail(
            v,
            field,
            "inconsistent",
            format!("is only applied with {flag}: true"),
        );
    }
    None
}

/// An optional profile field with a `clear_*` flag: `Some(None)` removes it.
fn cleared<T>(
    field: &str,
    flag: &str,
    clear: bool,
    value: Option<T>,
    v: &mut Violations,
) -> Option<Option<T>> {
    match (clear, value) {
        (true, Some(_)) => {
            fail(
                v,
                flag,
                "inconsistent",
                format!("cannot be combined with {field}"),
            );
            None
        }
        (true, None) => Some(None),
        (false, value) => value.map(Some),
    }
}

impl IntoCommand for v1::RegisterCustomerRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::RegisterCustomer)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = created_id(
            "customer_id",
            &self.customer_id,
            ids,
            purpose::CUSTOMER,
            &mut v,
        );
        let acquisition = self.acquisition.map(|a| Acquisition {
            campaign: opt_id("acquisition.campaign_id", &a.campaign_id, &mut v),
            source: a.source,
            medium: a.medium,
        });
        let consents: Vec<_> = (self.consents.iter().enumerate())
            .map(|(i, c)| {
                let field = format!("consents[{i}].channel");
                Some((
                    enum_of(&field, c.channel, consent_channel, &mut v)?,
                    c.granted,
                ))
            })
            .collect();
        finish(v, || {
            Some(Command::RegisterCustomer(RegisterCustomer {
                customer_id: customer_id?,
                profile: self.profile.map(profile).unwrap_or_default(),
                acquisition,
                owner: opt_string(self.owner),
                team: opt_string(self.team),
                consents: consents.into_iter().collect::<Option<_>>()?,
                consent_source: self.consent_source,
                tags: self.tags,
            }))
        })
    }
}

impl IntoCommand for v1::UpdateProfileRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::UpdateProfile)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let r = self;
        let patch = ProfilePatch {
            given_name: r.given_name,
            family_name: r.family_name,
            emails: replaced_list("emails", "set_emails", r.set_emails, r.emails, &mut v),
            phones: replaced_list("phones", "set_phones", r.set_phones, r.phones, &mut v),
            address: cleared(
                "address",
                "clear_address",
                r.clear_address,
                r.address.map(address),
                &mut v,
            ),
            language: cleared(
                "language",
                "clear_language",
                r.clear_language,
                r.language,
                &mut v,
            ),
            country: cleared(
                "country",
                "clear_country",
                r.clear_country,
                r.country,
                &mut v,
            ),
            external_ids: replaced_list(
                "external_ids",
                "set_external_ids",
                r.set_external_ids,
                external_ids(r.external_ids),
                &mut v,
            ),
            owner: cleared("owner", "clear_owner", r.clear_owner, r.owner, &mut v),
            team: cleared("team", "clear_team", r.clear_team, r.team, &mut v),
        };
        finish(v, || {
            Some(Command::UpdateProfile {
                customer_id: customer_id?,
                patch,
            })
        })
    }
}

impl IntoCommand for v1::SetConsentRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::SetConsent)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let channel = enum_of("channel", self.channel, consent_channel, &mut v);
        finish(v, || {
            Some(Command::SetConsent {
                customer_id: customer_id?,
                channel: channel?,
                granted: self.granted,
                source: self.source,
            })
        })
    }
}

impl IntoCommand for v1::TagCustomerRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::TagCustomer)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        finish(v, || {
            Some(Command::TagCustomer {
                customer_id: customer_id?,
                tag: self.tag,
            })
        })
    }
}

impl IntoCommand for v1::UntagCustomerRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::UntagCustomer)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        finish(v, || {
            Some(Command::UntagCustomer {
                customer_id: customer_id?,
                tag: self.tag,
            })
        })
    }
}

impl IntoCommand for v1::LinkCustomersRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::LinkCustomers)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let other = required_id("other_customer_id", &self.other_customer_id, &mut v);
        let kind = enum_of("kind", self.kind, relationship_kind, &mut v);
        finish(v, || {
            Some(Command::LinkCustomers {
                customer_id: customer_id?,
                other: other?,
                kind: kind?,
            })
        })
    }
}

impl IntoCommand for v1::LogInteractionRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::LogInteraction)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let r = self;
        let customer_id = required_id("customer_id", &r.customer_id, &mut v);
        let interaction_id = created_id(
            "interaction_id",
            &r.interaction_id,
            ids,
            purpose::INTERACTION,
            &mut v,
        );
        let channel = enum_of("channel", r.channel, channel, &mut v);
        let direction = enum_of("direction", r.direction, direction, &mut v);
        let sentiment = r.sentiment.and_then(|s| to_i8("sentiment", s, &mut v));
        let ticket = opt_id("ticket_id", &r.ticket_id, &mut v);
        let opportunity = opt_id("opportunity_id", &r.opportunity_id, &mut v);
        let campaign = opt_id("campaign_id", &r.campaign_id, &mut v);
        let call = r.call.and_then(|c| {
            Some(CallDetails {
                duration_secs: c.duration_secs,
                outcome: enum_of("call.outcome", c.outcome, call_outcome, &mut v)?,
            })
        });
        finish(v, || {
            Some(Command::LogInteraction(LogInteraction {
                customer_id: customer_id?,
                interaction_id: interaction_id?,
                channel: channel?,
                direction: direction?,
                agent: opt_string(r.agent),
                subject: r.subject,
                summary: r.summary,
                sentiment,
                ticket,
                opportunity,
                campaign,
                call,
            }))
        })
    }
}

impl IntoCommand for v1::PlaceOrderRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::PlaceOrder)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let r = self;
        let customer_id = required_id("customer_id", &r.customer_id, &mut v);
        let order_id = created_id("order_id", &r.order_id, ids, purpose::ORDER, &mut v);
        let currency = currency("currency", &r.currency, &mut v);
        let campaign = opt_id("campaign_id", &r.campaign_id, &mut v);
        let lines = (r.lines.into_iter())
            .map(|l| OrderLine {
                sku: l.sku,
                category: l.category,
                quantity: l.quantity,
                unit_price_minor: l.unit_price_minor,
            })
            .collect();
        finish(v, || {
            Some(Command::PlaceOrder(PlaceOrder {
                customer_id: customer_id?,
                order_id: order_id?,
                sales_channel: r.sales_channel,
                currency: currency?,
                lines,
                discount_minor: r.discount_minor,
                tax_minor: r.tax_minor,
                shipping_minor: r.shipping_minor,
                campaign,
            }))
        })
    }
}

impl IntoCommand for v1::RecordReturnRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::RecordReturn)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let r = self;
        let customer_id = required_id("customer_id", &r.customer_id, &mut v);
        let return_id = created_id("return_id", &r.return_id, ids, purpose::RETURN, &mut v);
        let order_id = required_id("order_id", &r.order_id, &mut v);
        let refund = money("refund", r.refund.as_ref(), &mut v);
        let lines = (r.lines.into_iter())
            .map(|l| ReturnLine {
                sku: l.sku,
                quantity: l.quantity,
            })
            .collect();
        finish(v, || {
            Some(Command::RecordReturn(RecordReturn {
                customer_id: customer_id?,
                return_id: return_id?,
                order_id: order_id?,
                lines,
                refund: refund?,
                reason: r.reason,
            }))
        })
    }
}

impl IntoCommand for v1::OpenTicketRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::OpenTicket)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let r = self;
        let customer_id = required_id("customer_id", &r.customer_id, &mut v);
        let ticket_id = created_id("ticket_id", &r.ticket_id, ids, purpose::TICKET, &mut v);
        let channel = enum_of("channel", r.channel, channel, &mut v);
        let priority = enum_of("priority", r.priority, ticket_priority, &mut v);
        finish(v, || {
            Some(Command::OpenTicket(OpenTicket {
                customer_id: customer_id?,
                ticket_id: ticket_id?,
                channel: channel?,
                category: r.category,
                priority: priority?,
                subject: r.subject,
            }))
        })
    }
}

impl IntoCommand for v1::AssignTicketRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::AssignTicket)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let ticket_id = required_id("ticket_id", &self.ticket_id, &mut v);
        finish(v, || {
            Some(Command::AssignTicket {
                customer_id: customer_id?,
                ticket_id: ticket_id?,
                agent: self.agent,
                rule: opt_string(self.rule),
            })
        })
    }
}

impl IntoCommand for v1::RespondToTicketRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::RespondToTicket)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let ticket_id = required_id("ticket_id", &self.ticket_id, &mut v);
        finish(v, || {
            Some(Command::RespondToTicket {
                customer_id: customer_id?,
                ticket_id: ticket_id?,
                agent: self.agent,
                awaiting_customer: self.awaiting_customer,
            })
        })
    }
}

impl IntoCommand for v1::ResolveTicketRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::ResolveTicket)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let ticket_id = required_id("ticket_id", &self.ticket_id, &mut v);
        finish(v, || {
            Some(Command::ResolveTicket {
                customer_id: customer_id?,
                ticket_id: ticket_id?,
                resolution: self.resolution,
            })
        })
    }
}

impl IntoCommand for v1::ReopenTicketRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::ReopenTicket)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let ticket_id = required_id("ticket_id", &self.ticket_id, &mut v);
        finish(v, || {
            Some(Command::ReopenTicket {
                customer_id: customer_id?,
                ticket_id: ticket_id?,
                reason: self.reason,
            })
        })
    }
}

impl IntoCommand for v1::CloseTicketRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::CloseTicket)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let ticket_id = required_id("ticket_id", &self.ticket_id, &mut v);
        let csat = self.csat.and_then(|s| to_u8("csat", s, &mut v));
        finish(v, || {
            Some(Command::CloseTicket {
                customer_id: customer_id?,
                ticket_id: ticket_id?,
                csat,
                comment: self.comment,
            })
        })
    }
}

impl IntoCommand for v1::OpenOpportunityRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::OpenOpportunity)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, ids: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let r = self;
        let customer_id = required_id("customer_id", &r.customer_id, &mut v);
        let opportunity_id = created_id(
            "opportunity_id",
            &r.opportunity_id,
            ids,
            purpose::OPPORTUNITY,
            &mut v,
        );
        let amount = money("amount", r.amount.as_ref(), &mut v);
        let expected_close =
            (r.expected_close.as_ref()).and_then(|t| timestamp("expected_close", t, &mut v));
        let lead = opt_id("lead_id", &r.lead_id, &mut v);
        let campaign = opt_id("campaign_id", &r.campaign_id, &mut v);
        finish(v, || {
            Some(Command::OpenOpportunity(OpenOpportunity {
                customer_id: customer_id?,
                opportunity_id: opportunity_id?,
                name: r.name,
                pipeline: opt_string(r.pipeline),
                stage: opt_string(r.stage),
                amount: amount?,
                owner: opt_string(r.owner),
                expected_close,
                lead,
                campaign,
            }))
        })
    }
}

impl IntoCommand for v1::MoveOpportunityStageRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::MoveOpportunityStage)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let opportunity_id = required_id("opportunity_id", &self.opportunity_id, &mut v);
        let probability_pct =
            (self.probability_pct).and_then(|p| to_u8("probability_pct", p, &mut v));
        finish(v, || {
            Some(Command::MoveOpportunityStage {
                customer_id: customer_id?,
                opportunity_id: opportunity_id?,
                stage: self.stage,
                probability_pct,
            })
        })
    }
}

impl IntoCommand for v1::WinOpportunityRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::WinOpportunity)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let opportunity_id = required_id("opportunity_id", &self.opportunity_id, &mut v);
        let amount = opt_money("amount", self.amount.as_ref(), &mut v);
        finish(v, || {
            Some(Command::WinOpportunity {
                customer_id: customer_id?,
                opportunity_id: opportunity_id?,
                amount,
            })
        })
    }
}

impl IntoCommand for v1::LoseOpportunityRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::LoseOpportunity)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let opportunity_id = required_id("opportunity_id", &self.opportunity_id, &mut v);
        finish(v, || {
            Some(Command::LoseOpportunity {
                customer_id: customer_id?,
                opportunity_id: opportunity_id?,
                reason: self.reason,
            })
        })
    }
}

impl IntoCommand for v1::UpdateOpportunityRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::UpdateOpportunity)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let opportunity_id = required_id("opportunity_id", &self.opportunity_id, &mut v);
        let amount = opt_money("amount", self.amount.as_ref(), &mut v);
        let expected_close =
            (self.expected_close.as_ref()).and_then(|t| timestamp("expected_close", t, &mut v));
        finish(v, || {
            Some(Command::UpdateOpportunity {
                customer_id: customer_id?,
                opportunity_id: opportunity_id?,
                name: self.name,
                amount,
                owner: self.owner,
                expected_close,
            })
        })
    }
}

impl IntoCommand for v1::ReopenOpportunityRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::ReopenOpportunity)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        let opportunity_id = required_id("opportunity_id", &self.opportunity_id, &mut v);
        finish(v, || {
            Some(Command::ReopenOpportunity {
                customer_id: customer_id?,
                opportunity_id: opportunity_id?,
                stage: opt_string(self.stage),
                reason: self.reason,
            })
        })
    }
}

impl IntoCommand for v1::RecordCampaignResponseRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::RecordCampaignResponse)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        use v1::CampaignResponseKind as Kind;
        let mut v = Vec::new();
        let r = self;
        let customer_id = required_id("customer_id", &r.customer_id, &mut v);
        let campaign_id = required_id("campaign_id", &r.campaign_id, &mut v);
        let kind = enum_of(
            "kind",
            r.kind,
            |k| (k != Kind::Unspecified).then_some(k),
            &mut v,
        );
        let revenue = opt_money("revenue", r.revenue.as_ref(), &mut v);
        let order = opt_id("order_id", &r.order_id, &mut v);
        if kind.is_some_and(|k| k != Kind::Converted) {
            let only_converted = "is only allowed when kind is CAMPAIGN_RESPONSE_KIND_CONVERTED";
            if r.revenue.is_some() {
                fail(&mut v, "revenue", "inconsistent", only_converted);
            }
            if !r.order_id.is_empty() {
                fail(&mut v, "order_id", "inconsistent", only_converted);
            }
        }
        finish(v, || {
            let response = match kind? {
                Kind::Unspecified => return None,
                Kind::Delivered => CampaignResponse::Delivered,
                Kind::Opened => CampaignResponse::Opened,
                Kind::Clicked => CampaignResponse::Clicked,
                Kind::Unsubscribed => CampaignResponse::Unsubscribed,
                Kind::Converted => CampaignResponse::Converted { revenue, order },
            };
            Some(Command::RecordCampaignResponse {
                customer_id: customer_id?,
                campaign_id: campaign_id?,
                response,
            })
        })
    }
}

impl IntoCommand for v1::ForgetCustomerRequest {
    fn command_kind(&self) -> Option<CommandKind> {
        Some(CommandKind::ForgetCustomer)
    }

    fn options(&self) -> Option<&v1::CommandOptions> {
        self.options.as_ref()
    }

    fn into_command(self, _: &CommandIds) -> Result<Command, Rejection> {
        let mut v = Vec::new();
        let customer_id = required_id("customer_id", &self.customer_id, &mut v);
        finish(v, || {
            Some(Command::ForgetCustomer {
                customer_id: customer_id?,
                reason: self.reason,
                legal_basis: self.legal_basis,
            })
        })
    }
}
