//! Commands: what callers ask the CRM to do. Ids of things a command creates are
//! concrete here; the API derives them from the command id when a caller omits them.

use crate::campaign::CampaignCreated;
use crate::customer::{
    CallDetails, CampaignResponse, Direction, OrderLine, Profile, ProfilePatch, RelationshipKind,
    ReturnLine, TicketPriority,
};
use crate::lead::LeadCaptured;
use crate::values::{
    Acquisition, CampaignId, Channel, ConsentChannel, Currency, CustomerId, InteractionId, LeadId,
    Money, OpportunityId, OrderId, ReturnId, TicketId, Timestamp,
};

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RegisterCustomer {
    pub customer_id: CustomerId,
    pub profile: Profile,
    pub acquisition: Option<Acquisition>,
    pub owner: Option<String>,
    pub team: Option<String>,
    /// Consent captured at registration, per channel.
    pub consents: Vec<(ConsentChannel, bool)>,
    pub consent_source: String,
    pub tags: Vec<String>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LogInteraction {
    pub customer_id: CustomerId,
    pub interaction_id: InteractionId,
    pub channel: Channel,
    pub direction: Direction,
    pub agent: Option<String>,
    pub subject: String,
    pub summary: String,
    pub sentiment: Option<i8>,
    pub ticket: Option<TicketId>,
    pub opportunity: Option<OpportunityId>,
    pub campaign: Option<CampaignId>,
    pub call: Option<CallDetails>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PlaceOrder {
    pub customer_id: CustomerId,
    pub order_id: OrderId,
    pub sales_channel: String,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub shipping_minor: i64,
    pub campaign: Option<CampaignId>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecordReturn {
    pub customer_id: CustomerId,
    pub return_id: ReturnId,
    pub order_id: OrderId,
    pub lines: Vec<ReturnLine>,
    pub refund: Money,
    pub reason: String,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OpenTicket {
    pub customer_id: CustomerId,
    pub ticket_id: TicketId,
    pub channel: Channel,
    pub category: String,
    pub priority: TicketPriority,
    pub subject: String,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OpenOpportunity {
    pub customer_id: CustomerId,
    pub opportunity_id: OpportunityId,
    pub name: String,
    /// The configured default pipeline when `None`.
    pub pipeline: Option<String>,
    /// The pipeline's first stage when `None`.
    pub stage: Option<String>,
    pub amount: Money,
    pub owner: Option<String>,
    pub expected_close: Option<Timestamp>,
    pub lead: Option<LeadId>,
    pub campaign: Option<CampaignId>,
}

/// The opportunity a lead conversion opens.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConversionOpportunity {
    pub opportunity_id: OpportunityId,
    pub name: String,
    pub pipeline: Option<String>,
    pub stage: Option<String>,
    pub amount: Money,
}

/// Whom a lead converts into.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConvertInto {
    /// A new customer with this id, registered from the lead's data.
    NewCustomer(CustomerId),
    /// An existing customer.
    ExistingCustomer(CustomerId),
}

impl ConvertInto {
    #[must_use]
    pub const fn customer_id(self) -> CustomerId {
        match self {
            Self::NewCustomer(id) | Self::ExistingCustomer(id) => id,
        }
    }
}

/// Everything the CRM can be asked to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Command {
    // customer
    RegisterCustomer(RegisterCustomer),
    UpdateProfile {
        customer_id: CustomerId,
        patch: ProfilePatch,
    },
    SetConsent {
        customer_id: CustomerId,
        channel: ConsentChannel,
        granted: bool,
        source: String,
    },
    TagCustomer {
        customer_id: CustomerId,
        tag: String,
    },
    UntagCustomer {
        customer_id: CustomerId,
        tag: String,
    },
    LinkCustomers {
        customer_id: CustomerId,
        other: CustomerId,
        kind: RelationshipKind,
    },
    LogInteraction(LogInteraction),
    PlaceOrder(PlaceOrder),
    RecordReturn(RecordReturn),
    OpenTicket(OpenTicket),
    AssignTicket {
        customer_id: CustomerId,
        ticket_id: TicketId,
        agent: String,
        rule: Option<String>,
    },
    RespondToTicket {
        customer_id: CustomerId,
        ticket_id: TicketId,
        agent: String,
        awaiting_customer: bool,
    },
    ResolveTicket {
        customer_id: CustomerId,
        ticket_id: TicketId,
        resolution: String,
    },
    ReopenTicket {
        customer_id: CustomerId,
        ticket_id: TicketId,
        reason: String,
    },
    CloseTicket {
        customer_id: CustomerId,
        ticket_id: TicketId,
        csat: Option<u8>,
        comment: String,
    },
    OpenOpportunity(OpenOpportunity),
    MoveOpportunityStage {
        customer_id: CustomerId,
        opportunity_id: OpportunityId,
        stage: String,
        /// Overrides the stage's default probability (still frozen on the event).
        probability_pct: Option<u8>,
    },
    WinOpportunity {
        customer_id: CustomerId,
        opportunity_id: OpportunityId,
        /// The final amount; the open amount when `None`.
        amount: Option<Money>,
    },
    LoseOpportunity {
        customer_id: CustomerId,
        opportunity_id: OpportunityId,
        reason: String,
    },
    /// Changes an open deal: the fields given (at least one).
    UpdateOpportunity {
        customer_id: CustomerId,
        opportunity_id: OpportunityId,
        name: Option<String>,
        amount: Option<Money>,
        owner: Option<String>,
        expected_close: Option<Timestamp>,
    },
    /// Opens a lost deal again, at `stage` (the stage it was lost at when `None`).
    ReopenOpportunity {
        customer_id: CustomerId,
        opportunity_id: OpportunityId,
        stage: Option<String>,
        reason: String,
    },
    RecordCampaignResponse {
        customer_id: CustomerId,
        campaign_id: CampaignId,
        response: CampaignResponse,
    },
    /// Erases the customer (right to be forgotten): records `customer.forgotten`; the
    /// caller then destroys the data keys it names. Idempotent.
    ForgetCustomer {
        customer_id: CustomerId,
        reason: String,
        legal_basis: String,
    },
    // lead
    CreateLead {
        lead_id: LeadId,
        lead: LeadCaptured,
    },
    AssignLead {
        lead_id: LeadId,
        owner: String,
        rule: Option<String>,
    },
    ContactLead {
        lead_id: LeadId,
        channel: Channel,
        agent: Option<String>,
    },
    QualifyLead {
        lead_id: LeadId,
        note: String,
    },
    DisqualifyLead {
        lead_id: LeadId,
        reason: String,
    },
    ConvertLead {
        lead_id: LeadId,
        into: ConvertInto,
        opportunity: Option<ConversionOpportunity>,
    },
    // campaign
    CreateCampaign {
        campaign_id: CampaignId,
        campaign: CampaignCreated,
    },
    SendCampaign {
        campaign_id: CampaignId,
        recipients: Vec<CustomerId>,
    },
    RecordCampaignCost {
        campaign_id: CampaignId,
        amount: Money,
        note: String,
    },
}

/// An aggregate instance.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum AggregateRef {
    Customer(CustomerId),
    Lead(LeadId),
    Campaign(CampaignId),
}

impl AggregateRef {
    #[must_use]
    pub const fn kind(&self) -> AggregateKind {
        match self {
            Self::Customer(_) => AggregateKind::Customer,
            Self::Lead(_) => AggregateKind::Lead,
            Self::Campaign(_) => AggregateKind::Campaign,
        }
    }
    #[must_use]
    pub const fn uuid(&self) -> uuid::Uuid {
        match self {
            Self::Customer(id) => id.0,
            Self::Lead(id) => id.0,
            Self::Campaign(id) => id.0,
        }
    }
    #[must_use]
    pub const fn new(kind: AggregateKind, id: uuid::Uuid) -> Self {
        match kind {
            AggregateKind::Customer => Self::Customer(CustomerId(id)),
            AggregateKind::Lead => Self::Lead(LeadId(id)),
            AggregateKind::Campaign => Self::Campaign(CampaignId(id)),
        }
    }
}

impl std::fmt::Display for AggregateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind().name(), self.uuid())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum AggregateKind {
    Customer,
    Lead,
    Campaign,
}

impl AggregateKind {
    pub const ALL: [Self; 3] = [Self::Customer, Self::Lead, Self::Campaign];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Lead => "lead",
            Self::Campaign => "campaign",
        }
    }
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// An aggregate a command needs, and whether it writes to it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Target {
    pub aggregate: AggregateRef,
    /// `false`: read only, to validate a reference (not part of the concurrency check).
    pub write: bool,
}

/// What a command is, without its data: the compiler-checked key of per-command policy
/// (which permission runs it, how it is counted). Every [`Command`] has one
/// ([`Command::kind`]); the matches over it are exhaustive, so a new command does not
/// compile until it has its policy.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum CommandKind {
    RegisterCustomer,
    UpdateProfile,
    SetConsent,
    TagCustomer,
    UntagCustomer,
    LinkCustomers,
    LogInteraction,
    PlaceOrder,
    RecordReturn,
    OpenTicket,
    AssignTicket,
    RespondToTicket,
    ResolveTicket,
    ReopenTicket,
    CloseTicket,
    OpenOpportunity,
    MoveOpportunityStage,
    WinOpportunity,
    LoseOpportunity,
    UpdateOpportunity,
    ReopenOpportunity,
    RecordCampaignResponse,
    ForgetCustomer,
    CreateLead,
    AssignLead,
    ContactLead,
    QualifyLead,
    DisqualifyLead,
    ConvertLead,
    CreateCampaign,
    SendCampaign,
    RecordCampaignCost,
}

impl CommandKind {
    pub const ALL: [Self; 32] = [
        Self::RegisterCustomer,
        Self::UpdateProfile,
        Self::SetConsent,
        Self::TagCustomer,
        Self::UntagCustomer,
        Self::LinkCustomers,
        Self::LogInteraction,
        Self::PlaceOrder,
        Self::RecordReturn,
        Self::OpenTicket,
        Self::AssignTicket,
        Self::RespondToTicket,
        Self::ResolveTicket,
        Self::ReopenTicket,
        Self::CloseTicket,
        Self::OpenOpportunity,
        Self::MoveOpportunityStage,
        Self::WinOpportunity,
        Self::LoseOpportunity,
        Self::UpdateOpportunity,
        Self::ReopenOpportunity,
        Self::RecordCampaignResponse,
        Self::ForgetCustomer,
        Self::CreateLead,
        Self::AssignLead,
        Self::ContactLead,
        Self::QualifyLead,
        Self::DisqualifyLead,
        Self::ConvertLead,
        Self::CreateCampaign,
        Self::SendCampaign,
        Self::RecordCampaignCost,
    ];

    /// The name in the API (the RPC's name).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::RegisterCustomer => "RegisterCustomer",
            Self::UpdateProfile => "UpdateProfile",
            Self::SetConsent => "SetConsent",
            Self::TagCustomer => "TagCustomer",
            Self::UntagCustomer => "UntagCustomer",
            Self::LinkCustomers => "LinkCustomers",
            Self::LogInteraction => "LogInteraction",
            Self::PlaceOrder => "PlaceOrder",
            Self::RecordReturn => "RecordReturn",
            Self::OpenTicket => "OpenTicket",
            Self::AssignTicket => "AssignTicket",
            Self::RespondToTicket => "RespondToTicket",
            Self::ResolveTicket => "ResolveTicket",
            Self::ReopenTicket => "ReopenTicket",
            Self::CloseTicket => "CloseTicket",
            Self::OpenOpportunity => "OpenOpportunity",
            Self::MoveOpportunityStage => "MoveOpportunityStage",
            Self::WinOpportunity => "WinOpportunity",
            Self::LoseOpportunity => "LoseOpportunity",
            Self::UpdateOpportunity => "UpdateOpportunity",
            Self::ReopenOpportunity => "ReopenOpportunity",
            Self::RecordCampaignResponse => "RecordCampaignResponse",
            Self::ForgetCustomer => "ForgetCustomer",
            Self::CreateLead => "CreateLead",
            Self::AssignLead => "AssignLead",
            Self::ContactLead => "ContactLead",
            Self::QualifyLead => "QualifyLead",
            Self::DisqualifyLead => "DisqualifyLead",
            Self::ConvertLead => "ConvertLead",
            Self::CreateCampaign => "CreateCampaign",
            Self::SendCampaign => "SendCampaign",
            Self::RecordCampaignCost => "RecordCampaignCost",
        }
    }
}

impl Command {
    /// The command's name, as in the API.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// What the command is, without its data.
    #[must_use]
    pub const fn kind(&self) -> CommandKind {
        match self {
            Self::RegisterCustomer(_) => CommandKind::RegisterCustomer,
            Self::UpdateProfile { .. } => CommandKind::UpdateProfile,
            Self::SetConsent { .. } => CommandKind::SetConsent,
            Self::TagCustomer { .. } => CommandKind::TagCustomer,
            Self::UntagCustomer { .. } => CommandKind::UntagCustomer,
            Self::LinkCustomers { .. } => CommandKind::LinkCustomers,
            Self::LogInteraction(_) => CommandKind::LogInteraction,
            Self::PlaceOrder(_) => CommandKind::PlaceOrder,
            Self::RecordReturn(_) => CommandKind::RecordReturn,
            Self::OpenTicket(_) => CommandKind::OpenTicket,
            Self::AssignTicket { .. } => CommandKind::AssignTicket,
            Self::RespondToTicket { .. } => CommandKind::RespondToTicket,
            Self::ResolveTicket { .. } => CommandKind::ResolveTicket,
            Self::ReopenTicket { .. } => CommandKind::ReopenTicket,
            Self::CloseTicket { .. } => CommandKind::CloseTicket,
            Self::OpenOpportunity(_) => CommandKind::OpenOpportunity,
            Self::MoveOpportunityStage { .. } => CommandKind::MoveOpportunityStage,
            Self::WinOpportunity { .. } => CommandKind::WinOpportunity,
            Self::LoseOpportunity { .. } => CommandKind::LoseOpportunity,
            Self::UpdateOpportunity { .. } => CommandKind::UpdateOpportunity,
            Self::ReopenOpportunity { .. } => CommandKind::ReopenOpportunity,
            Self::RecordCampaignResponse { .. } => CommandKind::RecordCampaignResponse,
            Self::ForgetCustomer { .. } => CommandKind::ForgetCustomer,
            Self::CreateLead { .. } => CommandKind::CreateLead,
            Self::AssignLead { .. } => CommandKind::AssignLead,
            Self::ContactLead { .. } => CommandKind::ContactLead,
            Self::QualifyLead { .. } => CommandKind::QualifyLead,
            Self::DisqualifyLead { .. } => CommandKind::DisqualifyLead,
            Self::ConvertLead { .. } => CommandKind::ConvertLead,
            Self::CreateCampaign { .. } => CommandKind::CreateCampaign,
            Self::SendCampaign { .. } => CommandKind::SendCampaign,
            Self::RecordCampaignCost { .. } => CommandKind::RecordCampaignCost,
        }
    }

    /// The aggregates this command reads and writes. The first is the primary one.
    #[must_use]
    pub fn targets(&self) -> Vec<Target> {
        let w = |aggregate| Target {
            aggregate,
            write: true,
        };
        let r = |aggregate| Target {
            aggregate,
            write: false,
        };
        match self {
            Self::RegisterCustomer(c) => vec![w(AggregateRef::Customer(c.customer_id))],
            Self::LogInteraction(c) => vec![w(AggregateRef::Customer(c.customer_id))],
            Self::PlaceOrder(c) => vec![w(AggregateRef::Customer(c.customer_id))],
            Self::RecordReturn(c) => vec![w(AggregateRef::Customer(c.customer_id))],
            Self::OpenTicket(c) => vec![w(AggregateRef::Customer(c.customer_id))],
            Self::OpenOpportunity(c) => vec![w(AggregateRef::Customer(c.customer_id))],
            Self::LinkCustomers {
                customer_id, other, ..
            } => {
                if customer_id == other {
                    vec![w(AggregateRef::Customer(*customer_id))]
                } else {
                    vec![
                        w(AggregateRef::Customer(*customer_id)),
                        w(AggregateRef::Customer(*other)),
                    ]
                }
            }
            Self::RecordCampaignResponse {
                customer_id,
                campaign_id,
                ..
            } => vec![
                w(AggregateRef::Customer(*customer_id)),
                r(AggregateRef::Campaign(*campaign_id)),
            ],
            Self::UpdateProfile { customer_id, .. }
            | Self::SetConsent { customer_id, .. }
            | Self::TagCustomer { customer_id, .. }
            | Self::UntagCustomer { customer_id, .. }
            | Self::AssignTicket { customer_id, .. }
            | Self::RespondToTicket { customer_id, .. }
            | Self::ResolveTicket { customer_id, .. }
            | Self::ReopenTicket { customer_id, .. }
            | Self::CloseTicket { customer_id, .. }
            | Self::MoveOpportunityStage { customer_id, .. }
            | Self::WinOpportunity { customer_id, .. }
            | Self::LoseOpportunity { customer_id, .. }
            | Self::UpdateOpportunity { customer_id, .. }
            | Self::ReopenOpportunity { customer_id, .. }
            | Self::ForgetCustomer { customer_id, .. } => {
                vec![w(AggregateRef::Customer(*customer_id))]
            }
            Self::ConvertLead { lead_id, into, .. } => vec![
                w(AggregateRef::Lead(*lead_id)),
                w(AggregateRef::Customer(into.customer_id())),
            ],
            Self::CreateLead { lead_id, .. }
            | Self::AssignLead { lead_id, .. }
            | Self::ContactLead { lead_id, .. }
            | Self::QualifyLead { lead_id, .. }
            | Self::DisqualifyLead { lead_id, .. } => vec![w(AggregateRef::Lead(*lead_id))],
            // A send reads every recipient: consent is checked on the command side.
            Self::SendCampaign {
                campaign_id,
                recipients,
            } => std::iter::once(w(AggregateRef::Campaign(*campaign_id)))
                .chain(recipients.iter().map(|c| r(AggregateRef::Customer(*c))))
                .collect(),
            Self::CreateCampaign { campaign_id, .. }
            | Self::RecordCampaignCost { campaign_id, .. } => {
                vec![w(AggregateRef::Campaign(*campaign_id))]
            }
        }
    }
}
