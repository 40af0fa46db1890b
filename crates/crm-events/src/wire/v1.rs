//! Schema version 1: the first payload format of every event type.
//!
//! FROZEN once written to a log (see [`super`]): no type here may change its bytes. Never
//! reorder, insert, remove or retype a field; never reorder, insert or remove an enum
//! variant (postcard writes the variant index). Change an event through a `v2` struct.

use crm_domain as d;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Invalid;

// ---------------------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------------------

/// Any identifier: the UUID's 16 bytes in RFC 4122 (big-endian) order.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Id(pub [u8; 16]);

macro_rules! id_conversions {
    ($($t:ident),*) => {$(
        impl From<d::$t> for Id {
            fn from(id: d::$t) -> Self {
                Self(id.0.into_bytes())
            }
        }
        impl From<Id> for d::$t {
            fn from(id: Id) -> Self {
                Self(Uuid::from_bytes(id.0))
            }
        }
    )*};
}

id_conversions! {
    CustomerId, LeadId, CampaignId, OrderId, ReturnId, TicketId, OpportunityId, InteractionId
}

/// Declares a wire enum of unit variants exactly as written (its variant order is the
/// format: postcard writes the index) and `From` both ways with the domain enum of the same
/// name. Both matches are exhaustive: a variant added on either side fails to compile.
macro_rules! unit_enum {
    (pub enum $name:ident { $($v:ident),* $(,)? }) => {
        #[derive(Clone, Copy, Debug, Serialize, Deserialize)]
        pub enum $name { $($v),* }

        impl From<d::$name> for $name {
            fn from(v: d::$name) -> Self {
                match v { $(d::$name::$v => Self::$v),* }
            }
        }
        impl From<$name> for d::$name {
            fn from(v: $name) -> Self {
                match v { $($name::$v => Self::$v),* }
            }
        }
    };
}

// Timestamps are plain `i64` fields: microseconds since the Unix epoch, UTC.

/// An ISO 4217 code: three upper-case ASCII letters.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Currency(pub [u8; 3]);

impl From<d::Currency> for Currency {
    fn from(c: d::Currency) -> Self {
        Self(
            c.as_str()
                .as_bytes()
                .try_into()
                .expect("a currency is three ASCII letters"),
        )
    }
}

impl TryFrom<Currency> for d::Currency {
    type Error = Invalid;
    fn try_from(c: Currency) -> Result<Self, Invalid> {
        std::str::from_utf8(&c.0)
            .ok()
            .and_then(Self::parse)
            .ok_or_else(|| Invalid {
                field: "currency",
                reason: format!(
                    "`{}` is not three upper-case ASCII letters",
                    c.0.escape_ascii()
                ),
            })
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl From<d::Money> for Money {
    fn from(m: d::Money) -> Self {
        Self {
            minor: m.minor,
            currency: m.currency.into(),
        }
    }
}

impl TryFrom<Money> for d::Money {
    type Error = Invalid;
    fn try_from(m: Money) -> Result<Self, Invalid> {
        Ok(Self::new(m.minor, m.currency.try_into()?))
    }
}

unit_enum! {
    pub enum Channel { Email, Sms, Phone, Chat, Social, WebForm, Meeting, InPerson, Push, Post }
}

unit_enum! { pub enum ConsentChannel { Email, Sms, Phone, Social, Push, Post } }

unit_enum! {
    pub enum RelationshipKind { Household, Referrer, Referee, EmployedBy, Employs, LinkedAccount }
}

unit_enum! { pub enum Direction { Inbound, Outbound } }

unit_enum! { pub enum CallOutcome { Answered, Missed, Voicemail } }

unit_enum! { pub enum TicketPriority { Low, Normal, High, Urgent } }

unit_enum! { pub enum ForecastCategory { Pipeline, BestCase, Commit, Closed, Omitted } }

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country: String,
}

impl From<d::Address> for Address {
    fn from(a: d::Address) -> Self {
        let d::Address {
            line1,
            line2,
            city,
            region,
            postal_code,
            country,
        } = a;
        Self {
            line1,
            line2,
            city,
            region,
            postal_code,
            country,
        }
    }
}

impl From<Address> for d::Address {
    fn from(a: Address) -> Self {
        let Address {
            line1,
            line2,
            city,
            region,
            postal_code,
            country,
        } = a;
        Self {
            line1,
            line2,
            city,
            region,
            postal_code,
            country,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Acquisition {
    pub source: String,
    pub medium: String,
    pub campaign: Option<Id>,
}

impl From<d::Acquisition> for Acquisition {
    fn from(a: d::Acquisition) -> Self {
        Self {
            source: a.source,
            medium: a.medium,
            campaign: a.campaign.map(Id::from),
        }
    }
}

impl From<Acquisition> for d::Acquisition {
    fn from(a: Acquisition) -> Self {
        Self {
            source: a.source,
            medium: a.medium,
            campaign: a.campaign.map(Id::into),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Profile {
    pub given_name: String,
    pub family_name: String,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub address: Option<Address>,
    pub language: Option<String>,
    pub country: Option<String>,
    /// `(system, id)` pairs.
    pub external_ids: Vec<(String, String)>,
}

impl From<d::Profile> for Profile {
    fn from(p: d::Profile) -> Self {
        let d::Profile {
            given_name,
            family_name,
            emails,
            phones,
            address,
            language,
            country,
            external_ids,
        } = p;
        let address = address.map(Address::from);
        Self {
            given_name,
            family_name,
            emails,
            phones,
            address,
            language,
            country,
            external_ids,
        }
    }
}

impl From<Profile> for d::Profile {
    fn from(p: Profile) -> Self {
        let Profile {
            given_name,
            family_name,
            emails,
            phones,
            address,
            language,
            country,
            external_ids,
        } = p;
        let address = address.map(d::Address::from);
        Self {
            given_name,
            family_name,
            emails,
            phones,
            address,
            language,
            country,
            external_ids,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallDetails {
    pub duration_secs: u32,
    pub outcome: CallOutcome,
}

impl From<d::CallDetails> for CallDetails {
    fn from(c: d::CallDetails) -> Self {
        Self {
            duration_secs: c.duration_secs,
            outcome: c.outcome.into(),
        }
    }
}

impl From<CallDetails> for d::CallDetails {
    fn from(c: CallDetails) -> Self {
        Self {
            duration_secs: c.duration_secs,
            outcome: c.outcome.into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub category: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
}

impl From<d::OrderLine> for OrderLine {
    fn from(l: d::OrderLine) -> Self {
        let d::OrderLine {
            sku,
            category,
            quantity,
            unit_price_minor,
        } = l;
        Self {
            sku,
            category,
            quantity,
            unit_price_minor,
        }
    }
}

impl From<OrderLine> for d::OrderLine {
    fn from(l: OrderLine) -> Self {
        let OrderLine {
            sku,
            category,
            quantity,
            unit_price_minor,
        } = l;
        Self {
            sku,
            category,
            quantity,
            unit_price_minor,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReturnLine {
    pub sku: String,
    pub quantity: u32,
}

impl From<d::ReturnLine> for ReturnLine {
    fn from(l: d::ReturnLine) -> Self {
        Self {
            sku: l.sku,
            quantity: l.quantity,
        }
    }
}

impl From<ReturnLine> for d::ReturnLine {
    fn from(l: ReturnLine) -> Self {
        Self {
            sku: l.sku,
            quantity: l.quantity,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlaTargets {
    pub policy: String,
    pub first_response_mins: u32,
    pub resolution_mins: u32,
}

impl From<d::SlaTargets> for SlaTargets {
    fn from(s: d::SlaTargets) -> Self {
        let d::SlaTargets {
            policy,
            first_response_mins,
            resolution_mins,
        } = s;
        Self {
            policy,
            first_response_mins,
            resolution_mins,
        }
    }
}

impl From<SlaTargets> for d::SlaTargets {
    fn from(s: SlaTargets) -> Self {
        let SlaTargets {
            policy,
            first_response_mins,
            resolution_mins,
        } = s;
        Self {
            policy,
            first_response_mins,
            resolution_mins,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CampaignResponse {
    Delivered,
    Opened,
    Clicked,
    Unsubscribed,
    Converted {
        revenue: Option<Money>,
        order: Option<Id>,
    },
}

impl From<d::CampaignResponse> for CampaignResponse {
    fn from(r: d::CampaignResponse) -> Self {
        match r {
            d::CampaignResponse::Delivered => Self::Delivered,
            d::CampaignResponse::Opened => Self::Opened,
            d::CampaignResponse::Clicked => Self::Clicked,
            d::CampaignResponse::Unsubscribed => Self::Unsubscribed,
            d::CampaignResponse::Converted { revenue, order } => Self::Converted {
                revenue: revenue.map(Money::from),
                order: order.map(Id::from),
            },
        }
    }
}

impl TryFrom<CampaignResponse> for d::CampaignResponse {
    type Error = Invalid;
    fn try_from(r: CampaignResponse) -> Result<Self, Invalid> {
        Ok(match r {
            CampaignResponse::Delivered => Self::Delivered,
            CampaignResponse::Opened => Self::Opened,
            CampaignResponse::Clicked => Self::Clicked,
            CampaignResponse::Unsubscribed => Self::Unsubscribed,
            CampaignResponse::Converted { revenue, order } => Self::Converted {
                revenue: revenue.map(d::Money::try_from).transpose()?,
                order: order.map(Id::into),
            },
        })
    }
}

// ---------------------------------------------------------------------------------------
// Customer events. Payloads of domain structs convert both ways with `From`/`TryFrom`;
// payloads of struct variants convert into the domain event here and are built from it
// in `payload::encode_payload`.
// ---------------------------------------------------------------------------------------

/// `customer.registered`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomerRegistered {
    pub profile: Profile,
    pub acquisition: Option<Acquisition>,
    pub owner: Option<String>,
    pub team: Option<String>,
    pub lead: Option<Id>,
}

impl From<d::CustomerRegistered> for CustomerRegistered {
    fn from(r: d::CustomerRegistered) -> Self {
        Self {
            profile: r.profile.into(),
            acquisition: r.acquisition.map(Acquisition::from),
            owner: r.owner,
            team: r.team,
            lead: r.lead.map(Id::from),
        }
    }
}

impl From<CustomerRegistered> for d::CustomerRegistered {
    fn from(r: CustomerRegistered) -> Self {
        Self {
            profile: r.profile.into(),
            acquisition: r.acquisition.map(d::Acquisition::from),
            owner: r.owner,
            team: r.team,
            lead: r.lead.map(Id::into),
        }
    }
}

/// `customer.profile_updated`. `None` leaves a field as it is; for the `Option<Option<_>>`
/// fields `Some(None)` removes the value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfilePatch {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub emails: Option<Vec<String>>,
    pub phones: Option<Vec<String>>,
    pub address: Option<Option<Address>>,
    pub language: Option<Option<String>>,
    pub country: Option<Option<String>>,
    pub external_ids: Option<Vec<(String, String)>>,
    pub owner: Option<Option<String>>,
    pub team: Option<Option<String>>,
}

impl From<d::ProfilePatch> for ProfilePatch {
    fn from(p: d::ProfilePatch) -> Self {
        let d::ProfilePatch {
            given_name,
            family_name,
            emails,
            phones,
            address,
            language,
            country,
            external_ids,
            owner,
            team,
        } = p;
        let address = address.map(|a| a.map(Address::from));
        Self {
            given_name,
            family_name,
            emails,
            phones,
            address,
            language,
            country,
            external_ids,
            owner,
            team,
        }
    }
}

impl From<ProfilePatch> for d::ProfilePatch {
    fn from(p: ProfilePatch) -> Self {
        let ProfilePatch {
            given_name,
            family_name,
            emails,
            phones,
            address,
            language,
            country,
            external_ids,
            owner,
            team,
        } = p;
        let address = address.map(|a| a.map(d::Address::from));
        Self {
            given_name,
            family_name,
            emails,
            phones,
            address,
            language,
            country,
            external_ids,
            owner,
            team,
        }
    }
}

/// `customer.consent_changed`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsentChanged {
    pub channel: ConsentChannel,
    pub granted: bool,
    pub source: String,
}

impl From<ConsentChanged> for d::CustomerEvent {
    fn from(w: ConsentChanged) -> Self {
        Self::ConsentChanged {
            channel: w.channel.into(),
            granted: w.granted,
            source: w.source,
        }
    }
}

/// `customer.tagged`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tagged {
    pub tag: String,
}

impl From<Tagged> for d::CustomerEvent {
    fn from(w: Tagged) -> Self {
        Self::Tagged { tag: w.tag }
    }
}

/// `customer.untagged`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Untagged {
    pub tag: String,
}

impl From<Untagged> for d::CustomerEvent {
    fn from(w: Untagged) -> Self {
        Self::Untagged { tag: w.tag }
    }
}

/// `customer.relationship_linked`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelationshipLinked {
    pub other: Id,
    pub kind: RelationshipKind,
}

impl From<RelationshipLinked> for d::CustomerEvent {
    fn from(w: RelationshipLinked) -> Self {
        Self::RelationshipLinked {
            other: w.other.into(),
            kind: w.kind.into(),
        }
    }
}

/// `customer.interaction_logged`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InteractionLogged {
    pub interaction_id: Id,
    pub channel: Channel,
    pub direction: Direction,
    pub agent: Option<String>,
    pub subject: String,
    pub summary: String,
    pub sentiment: Option<i8>,
    pub ticket: Option<Id>,
    pub opportunity: Option<Id>,
    pub campaign: Option<Id>,
    pub call: Option<CallDetails>,
}

impl From<d::InteractionLogged> for InteractionLogged {
    fn from(i: d::InteractionLogged) -> Self {
        Self {
            interaction_id: i.interaction_id.into(),
            channel: i.channel.into(),
            direction: i.direction.into(),
            agent: i.agent,
            subject: i.subject,
            summary: i.summary,
            sentiment: i.sentiment,
            ticket: i.ticket.map(Id::from),
            opportunity: i.opportunity.map(Id::from),
            campaign: i.campaign.map(Id::from),
            call: i.call.map(CallDetails::from),
        }
    }
}

impl From<InteractionLogged> for d::InteractionLogged {
    fn from(i: InteractionLogged) -> Self {
        Self {
            interaction_id: i.interaction_id.into(),
            channel: i.channel.into(),
            direction: i.direction.into(),
            agent: i.agent,
            subject: i.subject,
            summary: i.summary,
            sentiment: i.sentiment,
            ticket: i.ticket.map(Id::into),
            opportunity: i.opportunity.map(Id::into),
            campaign: i.campaign.map(Id::into),
            call: i.call.map(d::CallDetails::from),
        }
    }
}

/// `customer.order_placed`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: Id,
    pub sales_channel: String,
    pub lines: Vec<OrderLine>,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub shipping_minor: i64,
    pub total: Money,
    pub campaign: Option<Id>,
}

impl From<d::OrderPlaced> for OrderPlaced {
    fn from(o: d::OrderPlaced) -> Self {
        Self {
            order_id: o.order_id.into(),
            sales_channel: o.sales_channel,
            lines: o.lines.into_iter().map(OrderLine::from).collect(),
            discount_minor: o.discount_minor,
            tax_minor: o.tax_minor,
            shipping_minor: o.shipping_minor,
            total: o.total.into(),
            campaign: o.campaign.map(Id::from),
        }
    }
}

impl TryFrom<OrderPlaced> for d::OrderPlaced {
    type Error = Invalid;
    fn try_from(o: OrderPlaced) -> Result<Self, Invalid> {
        Ok(Self {
            order_id: o.order_id.into(),
            sales_channel: o.sales_channel,
            lines: o.lines.into_iter().map(d::OrderLine::from).collect(),
            discount_minor: o.discount_minor,
            tax_minor: o.tax_minor,
            shipping_minor: o.shipping_minor,
            total: o.total.try_into()?,
            campaign: o.campaign.map(Id::into),
        })
    }
}

/// `customer.return_recorded`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReturnRecorded {
    pub return_id: Id,
    pub order_id: Id,
    pub lines: Vec<ReturnLine>,
    pub refund: Money,
    pub reason: String,
}

impl From<d::ReturnRecorded> for ReturnRecorded {
    fn from(r: d::ReturnRecorded) -> Self {
        Self {
            return_id: r.return_id.into(),
            order_id: r.order_id.into(),
            lines: r.lines.into_iter().map(ReturnLine::from).collect(),
            refund: r.refund.into(),
            reason: r.reason,
        }
    }
}

impl TryFrom<ReturnRecorded> for d::ReturnRecorded {
    type Error = Invalid;
    fn try_from(r: ReturnRecorded) -> Result<Self, Invalid> {
        Ok(Self {
            return_id: r.return_id.into(),
            order_id: r.order_id.into(),
            lines: r.lines.into_iter().map(d::ReturnLine::from).collect(),
            refund: r.refund.try_into()?,
            reason: r.reason,
        })
    }
}

/// `customer.ticket_opened`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketOpened {
    pub ticket_id: Id,
    pub channel: Channel,
    pub category: String,
    pub priority: TicketPriority,
    pub subject: String,
    pub sla: SlaTargets,
}

impl From<d::TicketOpened> for TicketOpened {
    fn from(t: d::TicketOpened) -> Self {
        Self {
            ticket_id: t.ticket_id.into(),
            channel: t.channel.into(),
            category: t.category,
            priority: t.priority.into(),
            subject: t.subject,
            sla: t.sla.into(),
        }
    }
}

impl From<TicketOpened> for d::TicketOpened {
    fn from(t: TicketOpened) -> Self {
        Self {
            ticket_id: t.ticket_id.into(),
            channel: t.channel.into(),
            category: t.category,
            priority: t.priority.into(),
            subject: t.subject,
            sla: t.sla.into(),
        }
    }
}

/// `customer.ticket_assigned`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketAssigned {
    pub ticket_id: Id,
    pub agent: String,
    pub rule: Option<String>,
}

impl From<TicketAssigned> for d::CustomerEvent {
    fn from(w: TicketAssigned) -> Self {
        Self::TicketAssigned {
            ticket_id: w.ticket_id.into(),
            agent: w.agent,
            rule: w.rule,
        }
    }
}

/// `customer.ticket_responded`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketResponded {
    pub ticket_id: Id,
    pub agent: String,
    pub first_response: bool,
    pub awaiting_customer: bool,
}

impl From<TicketResponded> for d::CustomerEvent {
    fn from(w: TicketResponded) -> Self {
        Self::TicketResponded {
            ticket_id: w.ticket_id.into(),
            agent: w.agent,
            first_response: w.first_response,
            awaiting_customer: w.awaiting_customer,
        }
    }
}

/// `customer.ticket_customer_replied`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketCustomerReplied {
    pub ticket_id: Id,
}

impl From<TicketCustomerReplied> for d::CustomerEvent {
    fn from(w: TicketCustomerReplied) -> Self {
        Self::TicketCustomerReplied {
            ticket_id: w.ticket_id.into(),
        }
    }
}

/// `customer.ticket_resolved`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketResolved {
    pub ticket_id: Id,
    pub resolution: String,
}

impl From<TicketResolved> for d::CustomerEvent {
    fn from(w: TicketResolved) -> Self {
        Self::TicketResolved {
            ticket_id: w.ticket_id.into(),
            resolution: w.resolution,
        }
    }
}

/// `customer.ticket_reopened`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketReopened {
    pub ticket_id: Id,
    pub reason: String,
}

impl From<TicketReopened> for d::CustomerEvent {
    fn from(w: TicketReopened) -> Self {
        Self::TicketReopened {
            ticket_id: w.ticket_id.into(),
            reason: w.reason,
        }
    }
}

/// `customer.ticket_closed`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketClosed {
    pub ticket_id: Id,
    pub csat: Option<u8>,
    pub comment: String,
}

impl From<TicketClosed> for d::CustomerEvent {
    fn from(w: TicketClosed) -> Self {
        Self::TicketClosed {
            ticket_id: w.ticket_id.into(),
            csat: w.csat,
            comment: w.comment,
        }
    }
}

/// `customer.opportunity_opened`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpportunityOpened {
    pub opportunity_id: Id,
    pub name: String,
    pub pipeline: String,
    pub stage: String,
    pub probability_pct: u8,
    pub forecast: ForecastCategory,
    pub amount: Money,
    pub owner: Option<String>,
    /// Microseconds since the Unix epoch.
    pub expected_close: Option<i64>,
    pub lead: Option<Id>,
    pub campaign: Option<Id>,
}

impl From<d::OpportunityOpened> for OpportunityOpened {
    fn from(o: d::OpportunityOpened) -> Self {
        Self {
            opportunity_id: o.opportunity_id.into(),
            name: o.name,
            pipeline: o.pipeline,
            stage: o.stage,
            probability_pct: o.probability_pct,
            forecast: o.forecast.into(),
            amount: o.amount.into(),
            owner: o.owner,
            expected_close: o.expected_close.map(d::Timestamp::as_micros),
            lead: o.lead.map(Id::from),
            campaign: o.campaign.map(Id::from),
        }
    }
}

impl TryFrom<OpportunityOpened> for d::OpportunityOpened {
    type Error = Invalid;
    fn try_from(o: OpportunityOpened) -> Result<Self, Invalid> {
        Ok(Self {
            opportunity_id: o.opportunity_id.into(),
            name: o.name,
            pipeline: o.pipeline,
            stage: o.stage,
            probability_pct: o.probability_pct,
            forecast: o.forecast.into(),
            amount: o.amount.try_into()?,
            owner: o.owner,
            expected_close: o.expected_close.map(d::Timestamp::from_micros),
            lead: o.lead.map(Id::into),
            campaign: o.campaign.map(Id::into),
        })
    }
}

/// `customer.opportunity_stage_moved`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpportunityStageMoved {
    pub opportunity_id: Id,
    pub from_stage: String,
    pub to_stage: String,
    pub probability_pct: u8,
    pub forecast: ForecastCategory,
}

impl From<OpportunityStageMoved> for d::CustomerEvent {
    fn from(w: OpportunityStageMoved) -> Self {
        Self::OpportunityStageMoved {
            opportunity_id: w.opportunity_id.into(),
            from_stage: w.from_stage,
            to_stage: w.to_stage,
            probability_pct: w.probability_pct,
            forecast: w.forecast.into(),
        }
    }
}

/// `customer.opportunity_won`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpportunityWon {
    pub opportunity_id: Id,
    pub amount: Money,
}

impl TryFrom<OpportunityWon> for d::CustomerEvent {
    type Error = Invalid;
    fn try_from(w: OpportunityWon) -> Result<Self, Invalid> {
        Ok(Self::OpportunityWon {
            opportunity_id: w.opportunity_id.into(),
            amount: w.amount.try_into()?,
            // v1 did not keep the stage a deal was won from.
            stage: None,
        })
    }
}

/// `customer.opportunity_lost`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpportunityLost {
    pub opportunity_id: Id,
    pub reason: String,
    pub stage: String,
}

impl From<OpportunityLost> for d::CustomerEvent {
    fn from(w: OpportunityLost) -> Self {
        Self::OpportunityLost {
            opportunity_id: w.opportunity_id.into(),
            reason: w.reason,
            stage: w.stage,
        }
    }
}

/// `customer.campaign_response_recorded`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CampaignResponseRecorded {
    pub campaign_id: Id,
    pub response: CampaignResponse,
}

impl TryFrom<CampaignResponseRecorded> for d::CustomerEvent {
    type Error = Invalid;
    fn try_from(w: CampaignResponseRecorded) -> Result<Self, Invalid> {
        Ok(Self::CampaignResponseRecorded {
            campaign_id: w.campaign_id.into(),
            response: w.response.try_into()?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Lead events
// ---------------------------------------------------------------------------------------

/// `lead.captured`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeadCaptured {
    pub source: String,
    pub campaign: Option<Id>,
    pub given_name: String,
    pub family_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub interest: String,
}

impl From<d::LeadCaptured> for LeadCaptured {
    fn from(l: d::LeadCaptured) -> Self {
        let d::LeadCaptured {
            source,
            campaign,
            given_name,
            family_name,
            email,
            phone,
            interest,
        } = l;
        let campaign = campaign.map(Id::from);
        Self {
            source,
            campaign,
            given_name,
            family_name,
            email,
            phone,
            interest,
        }
    }
}

impl From<LeadCaptured> for d::LeadCaptured {
    fn from(l: LeadCaptured) -> Self {
        let LeadCaptured {
            source,
            campaign,
            given_name,
            family_name,
            email,
            phone,
            interest,
        } = l;
        let campaign = campaign.map(Id::into);
        Self {
            source,
            campaign,
            given_name,
            family_name,
            email,
            phone,
            interest,
        }
    }
}

/// `lead.assigned`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeadAssigned {
    pub owner: String,
    pub rule: Option<String>,
}

impl From<LeadAssigned> for d::LeadEvent {
    fn from(w: LeadAssigned) -> Self {
        Self::Assigned {
            owner: w.owner,
            rule: w.rule,
        }
    }
}

/// `lead.contacted`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeadContacted {
    pub channel: Channel,
    pub agent: Option<String>,
}

impl From<LeadContacted> for d::LeadEvent {
    fn from(w: LeadContacted) -> Self {
        Self::Contacted {
            channel: w.channel.into(),
            agent: w.agent,
        }
    }
}

/// `lead.qualified`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeadQualified {
    pub note: String,
}

impl From<LeadQualified> for d::LeadEvent {
    fn from(w: LeadQualified) -> Self {
        Self::Qualified { note: w.note }
    }
}

/// `lead.disqualified`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeadDisqualified {
    pub reason: String,
}

impl From<LeadDisqualified> for d::LeadEvent {
    fn from(w: LeadDisqualified) -> Self {
        Self::Disqualified { reason: w.reason }
    }
}

/// `lead.converted`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeadConverted {
    pub customer_id: Id,
    pub new_customer: bool,
    pub opportunity_id: Option<Id>,
}

impl From<LeadConverted> for d::LeadEvent {
    fn from(w: LeadConverted) -> Self {
        Self::Converted {
            customer_id: w.customer_id.into(),
            new_customer: w.new_customer,
            opportunity_id: w.opportunity_id.map(Id::into),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Campaign events
// ---------------------------------------------------------------------------------------

/// `campaign.created`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CampaignCreated {
    pub name: String,
    pub channel: Channel,
    pub segment: String,
    pub budget: Option<Money>,
}

impl From<d::CampaignCreated> for CampaignCreated {
    fn from(c: d::CampaignCreated) -> Self {
        Self {
            name: c.name,
            channel: c.channel.into(),
            segment: c.segment,
            budget: c.budget.map(Money::from),
        }
    }
}

impl TryFrom<CampaignCreated> for d::CampaignCreated {
    type Error = Invalid;
    fn try_from(c: CampaignCreated) -> Result<Self, Invalid> {
        Ok(Self {
            name: c.name,
            channel: c.channel.into(),
            segment: c.segment,
            budget: c.budget.map(d::Money::try_from).transpose()?,
        })
    }
}

/// `campaign.sent` (written as v2 since consent is checked at the send).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CampaignSent {
    pub wave: u32,
    pub recipients: Vec<Id>,
}

/// Upcast to the current event: a v1 send left no one out (it was not checked against
/// consent; the recipients list is everyone it went to).
impl From<CampaignSent> for d::CampaignEvent {
    fn from(w: CampaignSent) -> Self {
        Self::Sent {
            wave: w.wave,
            recipients: w.recipients.into_iter().map(Id::into).collect(),
            skipped: Vec::new(),
        }
    }
}

/// `campaign.cost_recorded`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CampaignCostRecorded {
    pub amount: Money,
    pub note: String,
}

impl TryFrom<CampaignCostRecorded> for d::CampaignEvent {
    type Error = Invalid;
    fn try_from(w: CampaignCostRecorded) -> Result<Self, Invalid> {
        Ok(Self::CostRecorded {
            amount: w.amount.try_into()?,
            note: w.note,
        })
    }
}

/// `customer.opportunity_updated` (added with the funnel; schema version 1)
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpportunityUpdated {
    pub opportunity_id: Id,
    pub name: Option<String>,
    pub amount: Option<Money>,
    pub owner: Option<String>,
    pub expected_close: Option<i64>,
}

impl TryFrom<OpportunityUpdated> for d::CustomerEvent {
    type Error = Invalid;
    fn try_from(w: OpportunityUpdated) -> Result<Self, Invalid> {
        Ok(Self::OpportunityUpdated {
            opportunity_id: w.opportunity_id.into(),
            name: w.name,
            amount: w.amount.map(TryInto::try_into).transpose()?,
            owner: w.owner,
            expected_close: w.expected_close.map(d::Timestamp::from_micros),
        })
    }
}

/// `customer.opportunity_reopened` (added with the funnel; schema version 1)
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpportunityReopened {
    pub opportunity_id: Id,
    pub stage: String,
    pub probability_pct: u8,
    pub forecast: ForecastCategory,
    pub reason: String,
}

impl From<OpportunityReopened> for d::CustomerEvent {
    fn from(w: OpportunityReopened) -> Self {
        Self::OpportunityReopened {
            opportunity_id: w.opportunity_id.into(),
            stage: w.stage,
            probability_pct: w.probability_pct,
            forecast: w.forecast.into(),
            reason: w.reason,
        }
    }
}

/// `customer.lead_linked` (added with crypto-shredding; schema version 1)
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeadLinked {
    pub lead_id: Id,
}

impl From<LeadLinked> for d::CustomerEvent {
    fn from(w: LeadLinked) -> Self {
        Self::LeadLinked {
            lead_id: w.lead_id.into(),
        }
    }
}

/// `customer.forgotten` (added with crypto-shredding; schema version 1)
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomerForgotten {
    pub reason: String,
    pub legal_basis: String,
    pub leads: Vec<Id>,
}

impl From<CustomerForgotten> for d::CustomerEvent {
    fn from(w: CustomerForgotten) -> Self {
        Self::Forgotten {
            reason: w.reason,
            legal_basis: w.legal_basis,
            leads: w.leads.into_iter().map(Into::into).collect(),
        }
    }
}
