//! What the tests share: the `crm serve` process, authenticated requests, and one
//! dispatch for every RPC of `CommandService` (a request of any RPC is a [`Cmd`], the
//! `IngestRequest` oneof, which has one variant per RPC).

use std::time::Duration;

use crm_testkit::CrmServe;

use crm_proto::v1::{self, command_service_client::CommandServiceClient};
use tonic::transport::Channel;
use tonic::{Request, Status};

/// A request of any unary RPC.
pub(crate) type Cmd = v1::ingest_request::Command;

pub(crate) struct Crm {
    pub(crate) process: CrmServe,
    pub(crate) addr: String,
    pub(crate) token: Option<String>,
    /// Holds the data directory (dropped after the process).
    pub(crate) dir: tempfile::TempDir,
}

impl Crm {
    pub(crate) fn start(extra: &[&str], dir: tempfile::TempDir) -> Self {
        let process = CrmServe::builder(env!("CARGO_BIN_EXE_crm"), dir.path())
            .args(extra)
            .start()
            .expect("start crm");
        Self {
            addr: process.url(),
            token: process.dev_token().map(str::to_owned),
            process,
            dir,
        }
    }

    pub(crate) fn dev() -> Self {
        Self::start(&["--dev"], tempfile::tempdir().unwrap())
    }

    pub(crate) async fn channel(&self) -> Channel {
        Channel::from_shared(self.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub(crate) async fn client(&self) -> CommandServiceClient<Channel> {
        CommandServiceClient::new(self.channel().await)
    }

    /// A client of the embedded nats-server, connected as one of the service's NATS
    /// users (with the seed `crm serve` keeps in its data directory), to look at the
    /// event log directly (reader) or to play an operator who publishes what they should
    /// not (writer).
    pub(crate) async fn embedded_nats_as(
        &self,
        user: crm_server::nats_auth::NatsUser,
    ) -> async_nats::Client {
        let data = self.dir.path().join("data");
        let users = crm_server::nats_auth::NatsUsers::load_or_create(&data.join("nats/users"))
            .expect("the service's NATS users");
        users
            .connect_options(user)
            .connect(self.embedded_nats_url())
            .await
            .expect("connect to the embedded nats-server")
    }

    /// The embedded nats-server's URL, from the configuration `crm serve` wrote.
    pub(crate) fn embedded_nats_url(&self) -> String {
        let conf = std::fs::read_to_string(self.dir.path().join("data/nats/nats.conf"))
            .expect("the embedded nats-server's configuration");
        let listen = conf
            .lines()
            .find_map(|l| l.strip_prefix("listen: "))
            .expect("a listen line");
        format!("nats://{}", listen.trim_matches('"'))
    }

    /// [`Self::embedded_nats_as`] the read-only user.
    pub(crate) async fn embedded_nats(&self) -> async_nats::Client {
        self.embedded_nats_as(crm_server::nats_auth::NatsUser::Reader)
            .await
    }

    /// SIGTERM and wait (asynchronously, so this runtime's client connections close).
    pub(crate) async fn stop(mut self) -> std::process::ExitStatus {
        self.process
            .stop(Duration::from_secs(20))
            .await
            .expect("crm stops after SIGTERM")
    }

    pub(crate) fn auth<T>(&self, msg: T) -> Request<T> {
        with_token(msg, self.token.as_deref().unwrap())
    }
}

pub(crate) fn with_token<T>(msg: T, token: &str) -> Request<T> {
    with_authorization(msg, Some(&format!("Bearer {token}")))
}

/// A request with this `authorization` header (none when `None`).
pub(crate) fn with_authorization<T>(msg: T, authorization: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(value) = authorization {
        r.metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    r
}

pub(crate) fn register(command_id: &str, email: &str) -> v1::RegisterCustomerRequest {
    v1::RegisterCustomerRequest {
        options: Some(v1::CommandOptions {
            command_id: command_id.into(),
            ..Default::default()
        }),
        profile: Some(v1::Profile {
            given_name: "Ada".into(),
            emails: vec![email.into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A fresh id (UUIDv7, canonical text).
pub(crate) fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A request message of one RPC.
pub(crate) trait Rpc {
    fn cmd(self) -> Cmd;
}

/// One line per RPC: its `Cmd` variant and request message, client method, and primary
/// aggregate (the one the reply names) with the request field that holds its id.
macro_rules! rpcs {
    ($($variant:ident($request:ident) => $method:ident, $kind:ident . $field:ident;)*) => {
        $(
            impl Rpc for v1::$request {
                fn cmd(self) -> Cmd {
                    Cmd::$variant(self)
                }
            }
        )*

        /// The RPC's name as in the proto.
        pub(crate) const fn rpc_name(cmd: &Cmd) -> &'static str {
            match cmd {
                $(Cmd::$variant(_) => stringify!($variant),)*
            }
        }

        /// A request of the same RPC that is malformed whatever its other fields say:
        /// its command id is not a UUID.
        pub(crate) fn malformed(cmd: &Cmd) -> Cmd {
            let options = Some(v1::CommandOptions {
                command_id: "not-a-uuid".into(),
                ..Default::default()
            });
            match cmd {
                $(Cmd::$variant(_) => Cmd::$variant(v1::$request {
                    options,
                    ..Default::default()
                }),)*
            }
        }

        /// The aggregate the reply names, and its id as the request gives it (empty when
        /// the server derives it).
        pub(crate) fn primary(cmd: &Cmd) -> (v1::AggregateType, &str) {
            match cmd {
                $(Cmd::$variant(r) => (v1::AggregateType::$kind, r.$field.as_str()),)*
            }
        }

        /// Calls the RPC of `cmd` with this `authorization` header.
        pub(crate) async fn call(
            client: &mut CommandServiceClient<Channel>,
            cmd: Cmd,
            authorization: Option<&str>,
        ) -> Result<v1::CommandReply, Status> {
            match cmd {
                $(Cmd::$variant(r) => client.$method(with_authorization(r, authorization)).await,)*
            }
            .map(tonic::Response::into_inner)
        }
    };
}

rpcs! {
    RegisterCustomer(RegisterCustomerRequest) => register_customer, Customer.customer_id;
    UpdateProfile(UpdateProfileRequest) => update_profile, Customer.customer_id;
    SetConsent(SetConsentRequest) => set_consent, Customer.customer_id;
    TagCustomer(TagCustomerRequest) => tag_customer, Customer.customer_id;
    UntagCustomer(UntagCustomerRequest) => untag_customer, Customer.customer_id;
    LinkCustomers(LinkCustomersRequest) => link_customers, Customer.customer_id;
    LogInteraction(LogInteractionRequest) => log_interaction, Customer.customer_id;
    PlaceOrder(PlaceOrderRequest) => place_order, Customer.customer_id;
    RecordReturn(RecordReturnRequest) => record_return, Customer.customer_id;
    OpenTicket(OpenTicketRequest) => open_ticket, Customer.customer_id;
    AssignTicket(AssignTicketRequest) => assign_ticket, Customer.customer_id;
    RespondToTicket(RespondToTicketRequest) => respond_to_ticket, Customer.customer_id;
    ResolveTicket(ResolveTicketRequest) => resolve_ticket, Customer.customer_id;
    ReopenTicket(ReopenTicketRequest) => reopen_ticket, Customer.customer_id;
    CloseTicket(CloseTicketRequest) => close_ticket, Customer.customer_id;
    OpenOpportunity(OpenOpportunityRequest) => open_opportunity, Customer.customer_id;
    MoveOpportunityStage(MoveOpportunityStageRequest) => move_opportunity_stage, Customer.customer_id;
    WinOpportunity(WinOpportunityRequest) => win_opportunity, Customer.customer_id;
    LoseOpportunity(LoseOpportunityRequest) => lose_opportunity, Customer.customer_id;
    UpdateOpportunity(UpdateOpportunityRequest) => update_opportunity, Customer.customer_id;
    ReopenOpportunity(ReopenOpportunityRequest) => reopen_opportunity, Customer.customer_id;
    CreateLead(CreateLeadRequest) => create_lead, Lead.lead_id;
    AssignLead(AssignLeadRequest) => assign_lead, Lead.lead_id;
    ContactLead(ContactLeadRequest) => contact_lead, Lead.lead_id;
    QualifyLead(QualifyLeadRequest) => qualify_lead, Lead.lead_id;
    DisqualifyLead(DisqualifyLeadRequest) => disqualify_lead, Lead.lead_id;
    ConvertLead(ConvertLeadRequest) => convert_lead, Lead.lead_id;
    CreateCampaign(CreateCampaignRequest) => create_campaign, Campaign.campaign_id;
    SendCampaign(SendCampaignRequest) => send_campaign, Campaign.campaign_id;
    RecordCampaignCost(RecordCampaignCostRequest) => record_campaign_cost, Campaign.campaign_id;
    RecordCampaignResponse(RecordCampaignResponseRequest) => record_campaign_response, Customer.customer_id;
    ForgetCustomer(ForgetCustomerRequest) => forget_customer, Customer.customer_id;
}
