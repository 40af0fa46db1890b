//! Authorization over the API: every role against every RPC, with the expected table
//! written out by hand from the roles' documented meaning (README, "Authentication"), not
//! derived from the code that grants permissions, so a wrong grant in the code fails here.

use std::collections::BTreeSet;

use crm_proto::v1::{self, command_service_client::CommandServiceClient};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::support::{Cmd, Crm, Rpc, call, id, malformed, rpc_name, with_authorization};

/// Allowed.
const A: bool = true;
/// Denied.
const D: bool = false;

/// The principals, in the order of the table's columns: one per role, and one with two
/// roles (it may do what either may).
const PRINCIPALS: [(&str, &[&str]); 8] = [
    ("admin", &["admin"]),
    ("sales", &["sales"]),
    ("service", &["service"]),
    ("marketing", &["marketing"]),
    ("auditor", &["auditor"]),
    ("analyst", &["analyst"]),
    ("importer", &["importer"]),
    ("sales+service", &["sales", "service"]),
];

/// Who may call what. admin: everything; sales: customers, interactions, leads,
/// opportunities; service: customers, interactions, tickets, orders and returns;
/// marketing: campaigns (with their responses), leads, customers; auditor, analyst:
/// nothing on the write side; importer: everything, including bulk ingest, but
/// forgetting a customer (admin only).
#[rustfmt::skip]
const EXPECTED: [(&str, [bool; 8]); 33] = [
    //                          admin sales service marketing auditor analyst importer sales+service
    ("RegisterCustomer",       [A,    A,    A,      A,        D,      D,      A,       A]),
    ("UpdateProfile",          [A,    A,    A,      A,        D,      D,      A,       A]),
    ("SetConsent",             [A,    A,    A,      A,        D,      D,      A,       A]),
    ("TagCustomer",            [A,    A,    A,      A,        D,      D,      A,       A]),
    ("UntagCustomer",          [A,    A,    A,      A,        D,      D,      A,       A]),
    ("LinkCustomers",          [A,    A,    A,      A,        D,      D,      A,       A]),
    ("LogInteraction",         [A,    A,    A,      D,        D,      D,      A,       A]),
    ("PlaceOrder",             [A,    D,    A,      D,        D,      D,      A,       A]),
    ("RecordReturn",           [A,    D,    A,      D,        D,      D,      A,       A]),
    ("OpenTicket",             [A,    D,    A,      D,        D,      D,      A,       A]),
    ("AssignTicket",           [A,    D,    A,      D,        D,      D,      A,       A]),
    ("RespondToTicket",        [A,    D,    A,      D,        D,      D,      A,       A]),
    ("ResolveTicket",          [A,    D,    A,      D,        D,      D,      A,       A]),
    ("ReopenTicket",           [A,    D,    A,      D,        D,      D,      A,       A]),
    ("CloseTicket",            [A,    D,    A,      D,        D,      D,      A,       A]),
    ("OpenOpportunity",        [A,    A,    D,      D,        D,      D,      A,       A]),
    ("MoveOpportunityStage",   [A,    A,    D,      D,        D,      D,      A,       A]),
    ("WinOpportunity",         [A,    A,    D,      D,        D,      D,      A,       A]),
    ("LoseOpportunity",        [A,    A,    D,      D,        D,      D,      A,       A]),
    ("UpdateOpportunity",      [A,    A,    D,      D,        D,      D,      A,       A]),
    ("ReopenOpportunity",      [A,    A,    D,      D,        D,      D,      A,       A]),
    ("CreateLead",             [A,    A,    D,      A,        D,      D,      A,       A]),
    ("AssignLead",             [A,    A,    D,      A,        D,      D,      A,       A]),
    ("ContactLead",            [A,    A,    D,      A,        D,      D,      A,       A]),
    ("QualifyLead",            [A,    A,    D,      A,        D,      D,      A,       A]),
    ("DisqualifyLead",         [A,    A,    D,      A,        D,      D,      A,       A]),
    ("ConvertLead",            [A,    A,    D,      A,        D,      D,      A,       A]),
    ("CreateCampaign",         [A,    D,    D,      A,        D,      D,      A,       D]),
    ("SendCampaign",           [A,    D,    D,      A,        D,      D,      A,       D]),
    ("RecordCampaignCost",     [A,    D,    D,      A,        D,      D,      A,       D]),
    ("RecordCampaignResponse", [A,    D,    D,      A,        D,      D,      A,       D]),
    ("ForgetCustomer",         [A,    D,    D,      D,        D,      D,      D,       D]),
    ("Ingest",                 [A,    D,    D,      D,        D,      D,      A,       D]),
];

fn token(principal: &str) -> String {
    format!("token-{principal}")
}

fn tokens_file(principals: &[(&str, &[&str])]) -> String {
    let principals: Vec<_> = principals
        .iter()
        .map(|(name, roles)| {
            crm_testkit::Principal::new(&format!("{name}-user"), "user", roles, &token(name))
        })
        .collect();
    crm_testkit::tokens_toml(&principals)
}

fn money(minor: i64) -> Option<v1::Money> {
    Some(v1::Money {
        minor,
        currency: "EUR".into(),
    })
}

/// One well-formed request per RPC, naming aggregates that do not exist (`nobody`,
/// `other`) or creating new ones, and the code it gets once authorized: OK for a create,
/// NOT_FOUND otherwise.
#[allow(clippy::too_many_lines)]
fn requests(nobody: &str, other: &str) -> Vec<(Cmd, Code)> {
    let (n, o) = (|| nobody.to_owned(), || other.to_owned());
    let found = Code::NotFound;
    vec![
        (
            v1::RegisterCustomerRequest {
                profile: Some(v1::Profile {
                    given_name: "Pat".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .cmd(),
            Code::Ok,
        ),
        (
            v1::UpdateProfileRequest {
                customer_id: n(),
                given_name: Some("Pat".into()),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::SetConsentRequest {
                customer_id: n(),
                channel: v1::ConsentChannel::Email.into(),
                granted: true,
                source: "form".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::TagCustomerRequest {
                customer_id: n(),
                tag: "vip".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::UntagCustomerRequest {
                customer_id: n(),
                tag: "vip".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::LinkCustomersRequest {
                customer_id: n(),
                other_customer_id: o(),
                kind: v1::RelationshipKind::Household.into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::LogInteractionRequest {
                customer_id: n(),
                channel: v1::Channel::Email.into(),
                direction: v1::Direction::Inbound.into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::PlaceOrderRequest {
                customer_id: n(),
                sales_channel: "web".into(),
                currency: "EUR".into(),
                lines: vec![v1::OrderLine {
                    sku: "A".into(),
                    category: "c".into(),
                    quantity: 1,
                    unit_price_minor: 100,
                }],
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::RecordReturnRequest {
                customer_id: n(),
                order_id: o(),
                refund: money(100),
                reason: "broken".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::OpenTicketRequest {
                customer_id: n(),
                channel: v1::Channel::Chat.into(),
                category: "billing".into(),
                priority: v1::TicketPriority::Normal.into(),
                subject: "invoice".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::AssignTicketRequest {
                customer_id: n(),
                ticket_id: o(),
                agent: "alice".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::RespondToTicketRequest {
                customer_id: n(),
                ticket_id: o(),
                agent: "alice".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::ResolveTicketRequest {
                customer_id: n(),
                ticket_id: o(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::ReopenTicketRequest {
                customer_id: n(),
                ticket_id: o(),
                reason: "again".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::CloseTicketRequest {
                customer_id: n(),
                ticket_id: o(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::OpenOpportunityRequest {
                customer_id: n(),
                name: "deal".into(),
                amount: money(100),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::MoveOpportunityStageRequest {
                customer_id: n(),
                opportunity_id: o(),
                stage: "proposal".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::WinOpportunityRequest {
                customer_id: n(),
                opportunity_id: o(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::LoseOpportunityRequest {
                customer_id: n(),
                opportunity_id: o(),
                reason: "price".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::UpdateOpportunityRequest {
                customer_id: n(),
                opportunity_id: o(),
                owner: Some("kim".into()),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::ReopenOpportunityRequest {
                customer_id: n(),
                opportunity_id: o(),
                reason: "budget approved after all".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::CreateLeadRequest {
                source: "web-form".into(),
                email: "pat@example.com".into(),
                ..Default::default()
            }
            .cmd(),
            Code::Ok,
        ),
        (
            v1::AssignLeadRequest {
                lead_id: n(),
                owner: "sam".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::ContactLeadRequest {
                lead_id: n(),
                channel: v1::Channel::Phone.into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::QualifyLeadRequest {
                lead_id: n(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::DisqualifyLeadRequest {
                lead_id: n(),
                reason: "spam".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::ConvertLeadRequest {
                lead_id: n(),
                into: Some(v1::convert_lead_request::Into::NewCustomerId(String::new())),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::CreateCampaignRequest {
                name: "spring".into(),
                channel: v1::Channel::Email.into(),
                ..Default::default()
            }
            .cmd(),
            Code::Ok,
        ),
        (
            v1::SendCampaignRequest {
                campaign_id: n(),
                recipients: vec![o()],
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::RecordCampaignCostRequest {
                campaign_id: n(),
                amount: money(100),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::RecordCampaignResponseRequest {
                customer_id: n(),
                campaign_id: o(),
                kind: v1::CampaignResponseKind::Opened.into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
        (
            v1::ForgetCustomerRequest {
                customer_id: n(),
                reason: "erasure request DSR-1".into(),
                legal_basis: "gdpr-art-17-1-a".into(),
                ..Default::default()
            }
            .cmd(),
            found,
        ),
    ]
}

/// Opens an Ingest stream with one registration in it: OK when the stream is accepted
/// and the command in it is applied.
async fn ingest(
    client: &mut CommandServiceClient<Channel>,
    authorization: Option<&str>,
) -> Result<(), Status> {
    let request = v1::IngestRequest {
        sequence: 1,
        command: Some(Cmd::RegisterCustomer(v1::RegisterCustomerRequest {
            profile: Some(v1::Profile {
                given_name: "Pat".into(),
                ..Default::default()
            }),
            ..Default::default()
        })),
    };
    let stream = tokio_stream::iter(vec![request]);
    let mut replies = client
        .ingest(with_authorization(stream, authorization))
        .await?
        .into_inner();
    let reply = replies.message().await?.expect("a reply to the command");
    match reply.result {
        Some(v1::ingest_reply::Result::Ok(_)) => Ok(()),
        Some(v1::ingest_reply::Result::Error(e)) => Err(Status::new(Code::from(e.code), e.message)),
        None => Err(Status::internal("a reply without result")),
    }
}

fn code<T>(result: &Result<T, Status>) -> Code {
    result.as_ref().map_or_else(Status::code, |_| Code::Ok)
}

/// Each principal against every RPC: allowed ones get past authorization (OK for a
/// create, NOT_FOUND on an unknown aggregate), the others get PERMISSION_DENIED, for a
/// malformed request too (allowed ones get INVALID_ARGUMENT for it); without a valid
/// bearer token every RPC is UNAUTHENTICATED.
#[tokio::test]
async fn the_permission_matrix_follows_the_roles() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, tokens_file(&PRINCIPALS)).unwrap();
    let crm = Crm::start(&["--tokens-file", tokens.to_str().unwrap()], dir);
    let mut client = crm.client().await;
    let (nobody, other) = (id(), id());

    // The table and the requests cover the same RPCs: all of them.
    let requests = requests(&nobody, &other);
    let covered: BTreeSet<&str> = requests.iter().map(|(c, _)| rpc_name(c)).collect();
    let tabled: BTreeSet<&str> = EXPECTED.iter().map(|(rpc, _)| *rpc).collect();
    assert_eq!(covered.len(), 32, "one request per unary RPC");
    assert_eq!(tabled.len(), EXPECTED.len(), "one row per RPC");
    assert_eq!(
        tabled.difference(&covered).collect::<Vec<_>>(),
        vec![&"Ingest"],
        "the table has a row for every unary RPC and Ingest"
    );

    let mut wrong = Vec::new();
    let mut checked = 0;
    for (rpc, allowed) in EXPECTED {
        let request = requests.iter().find(|(c, _)| rpc_name(c) == rpc);
        for ((principal, _), allow) in PRINCIPALS.iter().zip(allowed) {
            let authorization = format!("Bearer {}", token(principal));
            let (got, message) = match request {
                Some((cmd, _)) => {
                    let r = call(&mut client, cmd.clone(), Some(&authorization)).await;
                    (code(&r), r.err().map(|s| s.message().to_owned()))
                }
                None => {
                    let r = ingest(&mut client, Some(&authorization)).await;
                    (code(&r), r.err().map(|s| s.message().to_owned()))
                }
            };
            let want = match (allow, request) {
                (false, _) => Code::PermissionDenied,
                (true, Some((_, code))) => *code,
                (true, None) => Code::Ok,
            };
            checked += 1;
            if got != want {
                wrong.push(format!(
                    "{principal} {rpc}: {got:?}, expected {want:?} ({})",
                    message.unwrap_or_default()
                ));
            }
            // Permission comes before validation: a caller without it learns nothing
            // about its request, and one with it hears what is wrong.
            if let Some((cmd, _)) = request {
                let r = call(&mut client, malformed(cmd), Some(&authorization)).await;
                let want = if allow {
                    Code::InvalidArgument
                } else {
                    Code::PermissionDenied
                };
                checked += 1;
                if code(&r) != want {
                    wrong.push(format!(
                        "{principal} malformed {rpc}: {:?}, expected {want:?} ({})",
                        code(&r),
                        r.err().map(|s| s.message().to_owned()).unwrap_or_default()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} role/RPC pairs wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // No valid bearer token: UNAUTHENTICATED, whatever the RPC.
    let unauthenticated = [
        None,
        Some("Bearer nope"),
        Some("Bearer "),
        Some("token-admin"),
        Some("Basic dG9rZW4tYWRtaW4="),
    ];
    for authorization in unauthenticated {
        for (cmd, _) in &requests {
            let got = call(&mut client, cmd.clone(), authorization).await;
            assert_eq!(
                code(&got),
                Code::Unauthenticated,
                "{} with authorization {authorization:?}: {got:?}",
                rpc_name(cmd)
            );
        }
        let got = ingest(&mut client, authorization).await;
        assert_eq!(
            code(&got),
            Code::Unauthenticated,
            "Ingest with authorization {authorization:?}: {got:?}"
        );
    }
    drop(client);
    assert!(crm.stop().await.success());
}

/// The read side's RPCs (queries and admin) and the log service by role, written out from
/// the roles' meaning: everyone who reads customers may query; auditors and analysts may
/// see the projections' builds; only admins may start a rebuild or quarantine a position;
/// auditors (and admins) see the quarantined positions; auditors and analysts replay
/// customers from the stream (analysts without personal data); everyone who reads
/// customers reads churn risk and may fit a model, only admins choose the served one;
/// admins and auditors export a customer's data (subject access). Importers read nothing.
const READ_EXPECTED: [(&str, [bool; 8]); 21] = [
    //                     admin sales service marketing auditor analyst importer sales+service
    ("GetCustomer360", [A, A, A, A, A, A, D, A]),
    ("ListCustomers", [A, A, A, A, A, A, D, A]),
    ("GetTimeline", [A, A, A, A, A, A, D, A]),
    ("ListProjections", [A, D, D, D, A, A, D, D]),
    ("RebuildProjection", [A, D, D, D, D, D, D, D]),
    ("QuarantinePosition", [A, D, D, D, D, D, D, D]),
    ("ListQuarantined", [A, D, D, D, A, D, D, D]),
    ("GetPipelineFunnel", [A, A, D, A, A, A, D, A]),
    ("GetForecast", [A, A, D, A, A, A, D, A]),
    ("GetLeadFunnel", [A, A, D, A, A, A, D, A]),
    ("GetCampaignPerformance", [A, A, D, A, A, A, D, A]),
    ("ListDeals", [A, A, D, A, A, A, D, A]),
    ("GetCustomerHistory", [A, D, D, D, A, A, D, D]),
    ("GetCustomerAsOf", [A, D, D, D, A, A, D, D]),
    ("DiffCustomer", [A, D, D, D, A, A, D, D]),
    ("ExportSubjectData", [A, D, D, D, A, D, D, D]),
    ("FitModel", [A, A, A, A, A, A, D, A]),
    ("FitModel serve", [A, D, D, D, D, D, D, D]),
    ("GetModel", [A, A, A, A, A, A, D, A]),
    ("GetCustomerRisk", [A, A, A, A, A, A, D, A]),
    ("ListAtRisk", [A, A, A, A, A, A, D, A]),
];

/// One read-side RPC by name, well-formed (`valid`) or not: the status code it got.
async fn read_call(channel: &Channel, rpc: &str, valid: bool, authorization: &str) -> Code {
    use crm_proto::v1::{
        admin_service_client::AdminServiceClient, log_service_client::LogServiceClient,
        query_service_client::QueryServiceClient,
    };
    let mut q = QueryServiceClient::new(channel.clone());
    let mut a = AdminServiceClient::new(channel.clone());
    let mut l = LogServiceClient::new(channel.clone());
    let mut f = v1::funnel_service_client::FunnelServiceClient::new(channel.clone());
    let mut au = v1::audit_service_client::AuditServiceClient::new(channel.clone());
    let mut ch = v1::churn_service_client::ChurnServiceClient::new(channel.clone());
    let customer_id = if valid { id() } else { "not-a-uuid".into() };
    let now = Some(prost_types::Timestamp {
        seconds: 1_800_000_000,
        nanos: 0,
    });
    match rpc {
        "GetCustomer360" => code(
            &q.get_customer360(auth(
                v1::GetCustomer360Request {
                    customer_id,
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "ListCustomers" => code(
            &q.list_customers(auth(
                v1::ListCustomersRequest {
                    page_token: if valid { String::new() } else { "!".into() },
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "GetTimeline" => code(
            &q.get_timeline(auth(
                v1::GetTimelineRequest {
                    customer_id,
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "ListProjections" => code(
            &a.list_projections(auth(v1::ListProjectionsRequest {}, authorization))
                .await,
        ),
        "RebuildProjection" => code(
            &a.rebuild_projection(auth(
                v1::RebuildProjectionRequest {
                    // An unknown projection: past authorization it is NOT_FOUND, and nothing
                    // is rebuilt; empty is malformed.
                    name: if valid {
                        "no-such-projection".into()
                    } else {
                        String::new()
                    },
                },
                authorization,
            ))
            .await,
        ),
        "QuarantinePosition" => code(
            &l.quarantine_position(auth(
                v1::QuarantinePositionRequest {
                    // Past the end of the stream: past authorization it is NOT_FOUND and
                    // nothing is written; sequence 0 is malformed.
                    sequence: if valid { 1 << 40 } else { 0 },
                    reason: "permission matrix".into(),
                    command_id: String::new(),
                },
                authorization,
            ))
            .await,
        ),
        "GetPipelineFunnel" => code(
            &f.get_pipeline_funnel(auth(
                v1::GetPipelineFunnelRequest {
                    filter: Some(v1::FunnelFilter {
                        campaign_id: if valid { String::new() } else { "x".into() },
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "GetForecast" => code(
            &f.get_forecast(auth(
                v1::GetForecastRequest {
                    period_start: Some(prost_types::Timestamp {
                        seconds: 1_767_225_600,
                        nanos: 0,
                    }),
                    // Missing: malformed.
                    period_end: valid.then_some(prost_types::Timestamp {
                        seconds: 1_775_001_600,
                        nanos: 0,
                    }),
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "GetLeadFunnel" => code(
            &f.get_lead_funnel(auth(
                v1::GetLeadFunnelRequest {
                    campaign_id: if valid { String::new() } else { "x".into() },
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "GetCampaignPerformance" => code(
            &f.get_campaign_performance(auth(
                v1::GetCampaignPerformanceRequest {
                    campaign_id: if valid { String::new() } else { "x".into() },
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "ListDeals" => code(
            &f.list_deals(auth(
                v1::ListDealsRequest {
                    page_size: if valid { 0 } else { 5000 },
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "ListQuarantined" => code(
            &l.list_quarantined(auth(v1::ListQuarantinedRequest {}, authorization))
                .await,
        ),
        "GetCustomerHistory" => code(
            &au.get_customer_history(auth(
                v1::GetCustomerHistoryRequest {
                    customer_id,
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "GetCustomerAsOf" => code(
            &au.get_customer_as_of(auth(
                v1::GetCustomerAsOfRequest {
                    customer_id,
                    at: now,
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "ExportSubjectData" => code(
            &au.export_subject_data(auth(
                v1::ExportSubjectDataRequest { customer_id },
                authorization,
            ))
            .await,
        ),
        "DiffCustomer" => code(
            &au.diff_customer(auth(
                v1::DiffCustomerRequest {
                    customer_id,
                    from: now,
                    to: now,
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "FitModel" | "FitModel serve" => code(
            &ch.fit_model(auth(
                v1::FitModelRequest {
                    calibration_end: now.filter(|_| valid),
                    serve: rpc == "FitModel serve",
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "GetModel" => code(
            &ch.get_model(auth(
                v1::GetModelRequest {
                    model_id: if valid { String::new() } else { "nope".into() },
                },
                authorization,
            ))
            .await,
        ),
        "GetCustomerRisk" => code(
            &ch.get_customer_risk(auth(
                v1::GetCustomerRiskRequest {
                    customer_id,
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        "ListAtRisk" => code(
            &ch.list_at_risk(auth(
                v1::ListAtRiskRequest {
                    page_size: if valid { 10 } else { 5_000 },
                    ..Default::default()
                },
                authorization,
            ))
            .await,
        ),
        other => panic!("no read RPC {other}"),
    }
}

fn auth<T>(message: T, authorization: &str) -> tonic::Request<T> {
    with_authorization(message, Some(authorization))
}

/// Each principal against every read-side RPC: allowed ones get past authorization (OK,
/// or NOT_FOUND for an unknown customer or projection; INVALID_ARGUMENT when malformed),
/// the others PERMISSION_DENIED whatever the request; no valid token is UNAUTHENTICATED.
#[tokio::test]
async fn the_read_side_permission_matrix_follows_the_roles() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, tokens_file(&PRINCIPALS)).unwrap();
    let crm = Crm::start(&["--tokens-file", tokens.to_str().unwrap()], dir);
    let channel = crm.channel().await;
    let mut wrong = Vec::new();
    for (rpc, allowed) in READ_EXPECTED {
        for ((principal, _), allow) in PRINCIPALS.iter().zip(allowed) {
            let authorization = format!("Bearer {}", token(principal));
            for valid in [true, false] {
                let got = read_call(&channel, rpc, valid, &authorization).await;
                let want = match (allow, valid, rpc) {
                    (false, ..) => vec![Code::PermissionDenied],
                    // The list RPCs have no field to get wrong.
                    (true, false, "ListProjections" | "ListQuarantined") => vec![Code::Ok],
                    // An unknown model id is well-formed.
                    (true, false, "GetModel") => vec![Code::NotFound],
                    // No purchase in the store: nothing to fit.
                    (true, true, "FitModel" | "FitModel serve") => {
                        vec![Code::FailedPrecondition]
                    }
                    (true, false, _) => vec![Code::InvalidArgument],
                    (
                        true,
                        true,
                        "ListCustomers"
                        | "ListProjections"
                        | "ListQuarantined"
                        | "GetPipelineFunnel"
                        | "GetForecast"
                        | "GetLeadFunnel"
                        | "GetCampaignPerformance"
                        | "ListDeals",
                    ) => vec![Code::Ok],
                    (true, true, _) => vec![Code::NotFound],
                };
                if !want.contains(&got) {
                    wrong.push(format!(
                        "{principal} {rpc} (valid: {valid}): {got:?}, expected {want:?}"
                    ));
                }
            }
        }
        for authorization in ["Bearer nope", "token-admin"] {
            let got = read_call(&channel, rpc, true, authorization).await;
            if got != Code::Unauthenticated {
                wrong.push(format!("{rpc} with {authorization:?}: {got:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong:\n{}", wrong.join("\n"));
    drop(channel);
    assert!(crm.stop().await.success());
}
