//! Every request type, fully filled, converts to the exact expected domain command.

use crm_domain::{
    Acquisition, Address, CallDetails, CallOutcome, CampaignCreated, CampaignId, CampaignResponse,
    Channel, Command, ConsentChannel, ConversionOpportunity, ConvertInto, Currency, CustomerId,
    Direction, InteractionId, LeadCaptured, LeadId, LogInteraction, Money, OpenOpportunity,
    OpenTicket, OpportunityId, OrderId, OrderLine, PlaceOrder, Profile, ProfilePatch, RecordReturn,
    RegisterCustomer, RelationshipKind, ReturnId, ReturnLine, TicketId, TicketPriority, Timestamp,
};
use crm_proto::v1::ingest_request::Command as Ingest;
use crm_proto::{CommandIds, IntoCommand, v1};
use uuid::Uuid;

const C1: &str = "0191e2a4-5c3b-7d2e-9f01-000000000001";
const C2: &str = "0191e2a4-5c3b-7d2e-9f01-000000000002";
const X1: &str = "0191e2a4-5c3b-7d2e-9f01-0000000000a1";
const X2: &str = "0191e2a4-5c3b-7d2e-9f01-0000000000a2";
const X3: &str = "0191e2a4-5c3b-7d2e-9f01-0000000000a3";
const X4: &str = "0191e2a4-5c3b-7d2e-9f01-0000000000a4";

fn id<T: From<Uuid>>(s: &str) -> T {
    T::from(Uuid::parse_str(s).unwrap())
}

fn ids() -> CommandIds {
    CommandIds::new(id("0191e2a4-5c3b-7d2e-9f01-00000000c0de"))
}

fn opts() -> Option<v1::CommandOptions> {
    Some(v1::CommandOptions {
        command_id: "0191e2a4-5c3b-7d2e-9f01-00000000c0de".into(),
        ..Default::default()
    })
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap())
}

fn pmoney(minor: i64) -> Option<v1::Money> {
    Some(v1::Money {
        minor,
        currency: "EUR".into(),
    })
}

/// Converts directly and through `IngestRequest`, and checks both give `expected`.
/// Both also name the command before converting (what permission is checked on).
fn check<R: IntoCommand + Clone>(request: R, wrap: fn(R) -> Ingest, expected: &Command) {
    assert_eq!(request.command_kind(), Some(expected.kind()));
    assert_eq!(request.clone().into_command(&ids()).as_ref(), Ok(expected));
    let ingest = v1::IngestRequest {
        sequence: 7,
        command: Some(wrap(request)),
    };
    assert!(
        ingest.options().is_some(),
        "ingest exposes the inner options"
    );
    assert_eq!(ingest.command_kind(), Some(expected.kind()));
    assert_eq!(ingest.into_command(&ids()).as_ref(), Ok(expected));
}

#[test]
fn register_customer() {
    let r = v1::RegisterCustomerRequest {
        options: opts(),
        customer_id: C1.into(),
        profile: Some(v1::Profile {
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            emails: vec!["ada@example.com".into()],
            phones: vec!["+4915112345678".into()],
            address: Some(v1::Address {
                line1: "1 Main St".into(),
                line2: "Flat 2".into(),
                city: "Berlin".into(),
                region: "BE".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            }),
            language: "en".into(),
            country: "DE".into(),
            external_ids: vec![v1::ExternalId {
                system: "shop".into(),
                id: "42".into(),
            }],
        }),
        acquisition: Some(v1::Acquisition {
            source: "google".into(),
            medium: "cpc".into(),
            campaign_id: X1.into(),
        }),
        owner: "alice".into(),
        team: "emea".into(),
        consents: vec![
            v1::Consent {
                channel: v1::ConsentChannel::Email.into(),
                granted: true,
            },
            v1::Consent {
                channel: v1::ConsentChannel::Sms.into(),
                granted: false,
            },
        ],
        consent_source: "signup-form".into(),
        tags: vec!["vip".into()],
    };
    let expected = Command::RegisterCustomer(RegisterCustomer {
        customer_id: id(C1),
        profile: Profile {
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            emails: vec!["ada@example.com".into()],
            phones: vec!["+4915112345678".into()],
            address: Some(Address {
                line1: "1 Main St".into(),
                line2: "Flat 2".into(),
                city: "Berlin".into(),
                region: "BE".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            }),
            language: Some("en".into()),
            country: Some("DE".into()),
            external_ids: vec![("shop".into(), "42".into())],
        },
        acquisition: Some(Acquisition {
            source: "google".into(),
            medium: "cpc".into(),
            campaign: Some(id(X1)),
        }),
        owner: Some("alice".into()),
        team: Some("emea".into()),
        consents: vec![(ConsentChannel::Email, true), (ConsentChannel::Sms, false)],
        consent_source: "signup-form".into(),
        tags: vec!["vip".into()],
    });
    check(r, Ingest::RegisterCustomer, &expected);
}

#[test]
fn register_customer_minimal_leaves_optional_fields_unset() {
    let r = v1::RegisterCustomerRequest::default();
    let expected = Command::RegisterCustomer(RegisterCustomer {
        customer_id: ids().derive("customer"),
        profile: Profile::default(),
        acquisition: None,
        owner: None,
        team: None,
        consents: vec![],
        consent_source: String::new(),
        tags: vec![],
    });
    assert_eq!(r.into_command(&ids()), Ok(expected));
}

#[test]
fn update_profile_sets_and_clears() {
    let r = v1::UpdateProfileRequest {
        options: opts(),
        customer_id: C1.into(),
        given_name: Some("Ada".into()),
        family_name: Some(String::new()),
        emails: vec!["ada@example.com".into()],
        set_emails: true,
        phones: vec![],
        set_phones: true,
        address: Some(v1::Address {
            line1: "1 Main St".into(),
            city: "Berlin".into(),
            country: "DE".into(),
            ..Default::default()
        }),
        clear_address: false,
        language: None,
        clear_language: true,
        country: Some("FR".into()),
        clear_country: false,
        external_ids: vec![v1::ExternalId {
            system: "crm".into(),
            id: "7".into(),
        }],
        set_external_ids: true,
        owner: None,
        clear_owner: true,
        team: Some("apac".into()),
        clear_team: false,
    };
    let expected = Command::UpdateProfile {
        customer_id: id(C1),
        patch: ProfilePatch {
            given_name: Some("Ada".into()),
            family_name: Some(String::new()),
            emails: Some(vec!["ada@example.com".into()]),
            phones: Some(vec![]),
            address: Some(Some(Address {
                line1: "1 Main St".into(),
                city: "Berlin".into(),
                country: "DE".into(),
                ..Default::default()
            })),
            language: Some(None),
            country: Some(Some("FR".into())),
            external_ids: Some(vec![("crm".into(), "7".into())]),
            owner: Some(None),
            team: Some(Some("apac".into())),
        },
    };
    check(r, Ingest::UpdateProfile, &expected);
}

#[test]
fn update_profile_without_flags_changes_nothing() {
    let r = v1::UpdateProfileRequest {
        customer_id: C1.into(),
        ..Default::default()
    };
    let expected = Command::UpdateProfile {
        customer_id: id(C1),
        patch: ProfilePatch::default(),
    };
    assert_eq!(r.into_command(&ids()), Ok(expected));
}

#[test]
fn set_consent() {
    let r = v1::SetConsentRequest {
        options: opts(),
        customer_id: C1.into(),
        channel: v1::ConsentChannel::Post.into(),
        granted: true,
        source: "letter".into(),
    };
    let expected = Command::SetConsent {
        customer_id: id(C1),
        channel: ConsentChannel::Post,
        granted: true,
        source: "letter".into(),
    };
    check(r, Ingest::SetConsent, &expected);
}

#[test]
fn tag_customer() {
    let r = v1::TagCustomerRequest {
        options: opts(),
        customer_id: C1.into(),
        tag: "vip".into(),
    };
    let expected = Command::TagCustomer {
        customer_id: id(C1),
        tag: "vip".into(),
    };
    check(r, Ingest::TagCustomer, &expected);
}

#[test]
fn untag_customer() {
    let r = v1::UntagCustomerRequest {
        options: opts(),
        customer_id: C1.into(),
        tag: "vip".into(),
    };
    let expected = Command::UntagCustomer {
        customer_id: id(C1),
        tag: "vip".into(),
    };
    check(r, Ingest::UntagCustomer, &expected);
}

#[test]
fn link_customers() {
    let r = v1::LinkCustomersRequest {
        options: opts(),
        customer_id: C1.into(),
        other_customer_id: C2.into(),
        kind: v1::RelationshipKind::EmployedBy.into(),
    };
    let expected = Command::LinkCustomers {
        customer_id: id(C1),
        other: id(C2),
        kind: RelationshipKind::EmployedBy,
    };
    check(r, Ingest::LinkCustomers, &expected);
}

#[test]
fn log_interaction() {
    let r = v1::LogInteractionRequest {
        options: opts(),
        customer_id: C1.into(),
        interaction_id: X1.into(),
        channel: v1::Channel::Phone.into(),
        direction: v1::Direction::Inbound.into(),
        agent: "bob".into(),
        subject: "Call".into(),
        summary: "Asked about delivery".into(),
        sentiment: Some(-40),
        ticket_id: X2.into(),
        opportunity_id: X3.into(),
        campaign_id: X4.into(),
        call: Some(v1::CallDetails {
            duration_secs: 95,
            outcome: v1::CallOutcome::Answered.into(),
        }),
    };
    let expected = Command::LogInteraction(LogInteraction {
        customer_id: id(C1),
        interaction_id: id::<InteractionId>(X1),
        channel: Channel::Phone,
        direction: Direction::Inbound,
        agent: Some("bob".into()),
        subject: "Call".into(),
        summary: "Asked about delivery".into(),
        sentiment: Some(-40),
        ticket: Some(id::<TicketId>(X2)),
        opportunity: Some(id::<OpportunityId>(X3)),
        campaign: Some(id::<CampaignId>(X4)),
        call: Some(CallDetails {
            duration_secs: 95,
            outcome: CallOutcome::Answered,
        }),
    });
    check(r, Ingest::LogInteraction, &expected);
}

#[test]
fn place_order() {
    let r = v1::PlaceOrderRequest {
        options: opts(),
        customer_id: C1.into(),
        order_id: X1.into(),
        sales_channel: "web".into(),
        currency: "EUR".into(),
        lines: vec![
            v1::OrderLine {
                sku: "A-1".into(),
                category: "books".into(),
                quantity: 2,
                unit_price_minor: 1_250,
            },
            v1::OrderLine {
                sku: "B-2".into(),
                category: "music".into(),
                quantity: 1,
                unit_price_minor: 999,
            },
        ],
        discount_minor: 100,
        tax_minor: 200,
        shipping_minor: 450,
        campaign_id: X2.into(),
    };
    let expected = Command::PlaceOrder(PlaceOrder {
        customer_id: id(C1),
        order_id: id::<OrderId>(X1),
        sales_channel: "web".into(),
        currency: Currency::parse("EUR").unwrap(),
        lines: vec![
            OrderLine {
                sku: "A-1".into(),
                category: "books".into(),
                quantity: 2,
                unit_price_minor: 1_250,
            },
            OrderLine {
                sku: "B-2".into(),
                category: "music".into(),
                quantity: 1,
                unit_price_minor: 999,
            },
        ],
        discount_minor: 100,
        tax_minor: 200,
        shipping_minor: 450,
        campaign: Some(id(X2)),
    });
    check(r, Ingest::PlaceOrder, &expected);
}

#[test]
fn record_return() {
    let r = v1::RecordReturnRequest {
        options: opts(),
        customer_id: C1.into(),
        return_id: X1.into(),
        order_id: X2.into(),
        lines: vec![v1::ReturnLine {
            sku: "A-1".into(),
            quantity: 1,
        }],
        refund: pmoney(1_250),
        reason: "damaged".into(),
    };
    let expected = Command::RecordReturn(RecordReturn {
        customer_id: id(C1),
        return_id: id::<ReturnId>(X1),
        order_id: id(X2),
        lines: vec![ReturnLine {
            sku: "A-1".into(),
            quantity: 1,
        }],
        refund: eur(1_250),
        reason: "damaged".into(),
    });
    check(r, Ingest::RecordReturn, &expected);
}

#[test]
fn open_ticket() {
    let r = v1::OpenTicketRequest {
        options: opts(),
        customer_id: C1.into(),
        ticket_id: X1.into(),
        channel: v1::Channel::Email.into(),
        category: "billing".into(),
        priority: v1::TicketPriority::Urgent.into(),
        subject: "Charged twice".into(),
    };
    let expected = Command::OpenTicket(OpenTicket {
        customer_id: id(C1),
        ticket_id: id(X1),
        channel: Channel::Email,
        category: "billing".into(),
        priority: TicketPriority::Urgent,
        subject: "Charged twice".into(),
    });
    check(r, Ingest::OpenTicket, &expected);
}

#[test]
fn assign_ticket() {
    let r = v1::AssignTicketRequest {
        options: opts(),
        customer_id: C1.into(),
        ticket_id: X1.into(),
        agent: "bob".into(),
        rule: "round-robin".into(),
    };
    let expected = Command::AssignTicket {
        customer_id: id(C1),
        ticket_id: id(X1),
        agent: "bob".into(),
        rule: Some("round-robin".into()),
    };
    check(r, Ingest::AssignTicket, &expected);
}

#[test]
fn respond_to_ticket() {
    let r = v1::RespondToTicketRequest {
        options: opts(),
        customer_id: C1.into(),
        ticket_id: X1.into(),
        agent: "bob".into(),
        awaiting_customer: true,
    };
    let expected = Command::RespondToTicket {
        customer_id: id(C1),
        ticket_id: id(X1),
        agent: "bob".into(),
        awaiting_customer: true,
    };
    check(r, Ingest::RespondToTicket, &expected);
}

#[test]
fn resolve_ticket() {
    let r = v1::ResolveTicketRequest {
        options: opts(),
        customer_id: C1.into(),
        ticket_id: X1.into(),
        resolution: "refunded".into(),
    };
    let expected = Command::ResolveTicket {
        customer_id: id(C1),
        ticket_id: id(X1),
        resolution: "refunded".into(),
    };
    check(r, Ingest::ResolveTicket, &expected);
}

#[test]
fn reopen_ticket() {
    let r = v1::ReopenTicketRequest {
        options: opts(),
        customer_id: C1.into(),
        ticket_id: X1.into(),
        reason: "still broken".into(),
    };
    let expected = Command::ReopenTicket {
        customer_id: id(C1),
        ticket_id: id(X1),
        reason: "still broken".into(),
    };
    check(r, Ingest::ReopenTicket, &expected);
}

#[test]
fn close_ticket() {
    let r = v1::CloseTicketRequest {
        options: opts(),
        customer_id: C1.into(),
        ticket_id: X1.into(),
        csat: Some(5),
        comment: "great".into(),
    };
    let expected = Command::CloseTicket {
        customer_id: id(C1),
        ticket_id: id(X1),
        csat: Some(5),
        comment: "great".into(),
    };
    check(r, Ingest::CloseTicket, &expected);
}

#[test]
fn open_opportunity() {
    let r = v1::OpenOpportunityRequest {
        options: opts(),
        customer_id: C1.into(),
        opportunity_id: X1.into(),
        name: "Fleet deal".into(),
        pipeline: "enterprise".into(),
        stage: "proposal".into(),
        amount: pmoney(5_000_000),
        owner: "alice".into(),
        expected_close: Some(prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 123_456_789,
        }),
        lead_id: X2.into(),
        campaign_id: X3.into(),
    };
    let expected = Command::OpenOpportunity(OpenOpportunity {
        customer_id: id(C1),
        opportunity_id: id(X1),
        name: "Fleet deal".into(),
        pipeline: Some("enterprise".into()),
        stage: Some("proposal".into()),
        amount: eur(5_000_000),
        owner: Some("alice".into()),
        expected_close: Some(Timestamp::from_micros(1_800_000_000_123_456)),
        lead: Some(id::<LeadId>(X2)),
        campaign: Some(id(X3)),
    });
    check(r, Ingest::OpenOpportunity, &expected);
}

#[test]
fn move_opportunity_stage() {
    let r = v1::MoveOpportunityStageRequest {
        options: opts(),
        customer_id: C1.into(),
        opportunity_id: X1.into(),
        stage: "negotiation".into(),
        probability_pct: Some(80),
    };
    let expected = Command::MoveOpportunityStage {
        customer_id: id(C1),
        opportunity_id: id(X1),
        stage: "negotiation".into(),
        probability_pct: Some(80),
    };
    check(r, Ingest::MoveOpportunityStage, &expected);
}

#[test]
fn win_opportunity() {
    let r = v1::WinOpportunityRequest {
        options: opts(),
        customer_id: C1.into(),
        opportunity_id: X1.into(),
        amount: pmoney(4_500_000),
    };
    let expected = Command::WinOpportunity {
        customer_id: id(C1),
        opportunity_id: id(X1),
        amount: Some(eur(4_500_000)),
    };
    check(r, Ingest::WinOpportunity, &expected);
}

#[test]
fn lose_opportunity() {
    let r = v1::LoseOpportunityRequest {
        options: opts(),
        customer_id: C1.into(),
        opportunity_id: X1.into(),
        reason: "price".into(),
    };
    let expected = Command::LoseOpportunity {
        customer_id: id(C1),
        opportunity_id: id(X1),
        reason: "price".into(),
    };
    check(r, Ingest::LoseOpportunity, &expected);
}

#[test]
fn update_opportunity() {
    let r = v1::UpdateOpportunityRequest {
        options: opts(),
        customer_id: C1.into(),
        opportunity_id: X1.into(),
        name: Some("Kitchen remodel, phase 2".into()),
        amount: Some(v1::Money {
            minor: 4_800_000,
            currency: "EUR".into(),
        }),
        owner: None,
        expected_close: Some(prost_types::Timestamp {
            seconds: 1_767_225_600,
            nanos: 0,
        }),
    };
    let expected = Command::UpdateOpportunity {
        customer_id: id(C1),
        opportunity_id: id(X1),
        name: Some("Kitchen remodel, phase 2".into()),
        amount: Some(eur(4_800_000)),
        owner: None,
        expected_close: Some(Timestamp(1_767_225_600_000_000)),
    };
    check(r, Ingest::UpdateOpportunity, &expected);
}

#[test]
fn reopen_opportunity() {
    let r = v1::ReopenOpportunityRequest {
        options: opts(),
        customer_id: C1.into(),
        opportunity_id: X1.into(),
        stage: String::new(),
        reason: "budget approved".into(),
    };
    let expected = Command::ReopenOpportunity {
        customer_id: id(C1),
        opportunity_id: id(X1),
        stage: None,
        reason: "budget approved".into(),
    };
    check(r, Ingest::ReopenOpportunity, &expected);
}

#[test]
fn create_lead() {
    let r = v1::CreateLeadRequest {
        options: opts(),
        lead_id: X1.into(),
        source: "web-form".into(),
        campaign_id: X2.into(),
        given_name: "Grace".into(),
        family_name: "Hopper".into(),
        email: "grace@example.com".into(),
        phone: "+4915112345679".into(),
        interest: "cobol training".into(),
    };
    let expected = Command::CreateLead {
        lead_id: id(X1),
        lead: LeadCaptured {
            source: "web-form".into(),
            campaign: Some(id(X2)),
            given_name: "Grace".into(),
            family_name: "Hopper".into(),
            email: Some("grace@example.com".into()),
            phone: Some("+4915112345679".into()),
            interest: "cobol training".into(),
        },
    };
    check(r, Ingest::CreateLead, &expected);
}

#[test]
fn assign_lead() {
    let r = v1::AssignLeadRequest {
        options: opts(),
        lead_id: X1.into(),
        owner: "alice".into(),
        rule: "territory".into(),
    };
    let expected = Command::AssignLead {
        lead_id: id(X1),
        owner: "alice".into(),
        rule: Some("territory".into()),
    };
    check(r, Ingest::AssignLead, &expected);
}

#[test]
fn contact_lead() {
    let r = v1::ContactLeadRequest {
        options: opts(),
        lead_id: X1.into(),
        channel: v1::Channel::Meeting.into(),
        agent: "alice".into(),
    };
    let expected = Command::ContactLead {
        lead_id: id(X1),
        channel: Channel::Meeting,
        agent: Some("alice".into()),
    };
    check(r, Ingest::ContactLead, &expected);
}

#[test]
fn qualify_lead() {
    let r = v1::QualifyLeadRequest {
        options: opts(),
        lead_id: X1.into(),
        note: "budget confirmed".into(),
    };
    let expected = Command::QualifyLead {
        lead_id: id(X1),
        note: "budget confirmed".into(),
    };
    check(r, Ingest::QualifyLead, &expected);
}

#[test]
fn disqualify_lead() {
    let r = v1::DisqualifyLeadRequest {
        options: opts(),
        lead_id: X1.into(),
        reason: "no budget".into(),
    };
    let expected = Command::DisqualifyLead {
        lead_id: id(X1),
        reason: "no budget".into(),
    };
    check(r, Ingest::DisqualifyLead, &expected);
}

#[test]
fn convert_lead_into_existing_customer_with_opportunity() {
    let r = v1::ConvertLeadRequest {
        options: opts(),
        lead_id: X1.into(),
        into: Some(v1::convert_lead_request::Into::ExistingCustomerId(
            C1.into(),
        )),
        opportunity: Some(v1::ConversionOpportunity {
            opportunity_id: X2.into(),
            name: "First deal".into(),
            pipeline: "smb".into(),
            stage: "qualified".into(),
            amount: pmoney(90_000),
        }),
    };
    let expected = Command::ConvertLead {
        lead_id: id(X1),
        into: ConvertInto::ExistingCustomer(id(C1)),
        opportunity: Some(ConversionOpportunity {
            opportunity_id: id(X2),
            name: "First deal".into(),
            pipeline: Some("smb".into()),
            stage: Some("qualified".into()),
            amount: eur(90_000),
        }),
    };
    check(r, Ingest::ConvertLead, &expected);
}

#[test]
fn convert_lead_into_new_customer() {
    let r = v1::ConvertLeadRequest {
        options: opts(),
        lead_id: X1.into(),
        into: Some(v1::convert_lead_request::Into::NewCustomerId(C2.into())),
        opportunity: None,
    };
    let expected = Command::ConvertLead {
        lead_id: id(X1),
        into: ConvertInto::NewCustomer(id(C2)),
        opportunity: None,
    };
    check(r, Ingest::ConvertLead, &expected);
}

#[test]
fn create_campaign() {
    let r = v1::CreateCampaignRequest {
        options: opts(),
        campaign_id: X1.into(),
        name: "Spring sale".into(),
        channel: v1::Channel::Email.into(),
        segment: "newsletter".into(),
        budget: pmoney(1_000_000),
    };
    let expected = Command::CreateCampaign {
        campaign_id: id(X1),
        campaign: CampaignCreated {
            name: "Spring sale".into(),
            channel: Channel::Email,
            segment: "newsletter".into(),
            budget: Some(eur(1_000_000)),
        },
    };
    check(r, Ingest::CreateCampaign, &expected);
}

#[test]
fn send_campaign() {
    let r = v1::SendCampaignRequest {
        options: opts(),
        campaign_id: X1.into(),
        recipients: vec![C1.into(), C2.into()],
    };
    let expected = Command::SendCampaign {
        campaign_id: id(X1),
        recipients: vec![id::<CustomerId>(C1), id(C2)],
    };
    check(r, Ingest::SendCampaign, &expected);
}

#[test]
fn record_campaign_cost() {
    let r = v1::RecordCampaignCostRequest {
        options: opts(),
        campaign_id: X1.into(),
        amount: pmoney(25_000),
        note: "ads".into(),
    };
    let expected = Command::RecordCampaignCost {
        campaign_id: id(X1),
        amount: eur(25_000),
        note: "ads".into(),
    };
    check(r, Ingest::RecordCampaignCost, &expected);
}

#[test]
fn record_campaign_response() {
    let r = v1::RecordCampaignResponseRequest {
        options: opts(),
        customer_id: C1.into(),
        campaign_id: X1.into(),
        kind: v1::CampaignResponseKind::Converted.into(),
        revenue: pmoney(4_200),
        order_id: X2.into(),
    };
    let expected = Command::RecordCampaignResponse {
        customer_id: id(C1),
        campaign_id: id(X1),
        response: CampaignResponse::Converted {
            revenue: Some(eur(4_200)),
            order: Some(id(X2)),
        },
    };
    check(r, Ingest::RecordCampaignResponse, &expected);

    let r = v1::RecordCampaignResponseRequest {
        options: opts(),
        customer_id: C1.into(),
        campaign_id: X1.into(),
        kind: v1::CampaignResponseKind::Opened.into(),
        revenue: None,
        order_id: String::new(),
    };
    let expected = Command::RecordCampaignResponse {
        customer_id: id(C1),
        campaign_id: id(X1),
        response: CampaignResponse::Opened,
    };
    check(r, Ingest::RecordCampaignResponse, &expected);
}

#[test]
fn ingest_without_a_command_is_invalid() {
    let r = v1::IngestRequest {
        sequence: 1,
        command: None,
    };
    assert!(r.options().is_none());
    assert_eq!(r.command_kind(), None);
    let rejection = r.into_command(&ids()).unwrap_err();
    assert_eq!(rejection.violations.len(), 1);
    assert_eq!(rejection.violations[0].field, "command");
    assert_eq!(rejection.violations[0].rule, "required");
}
