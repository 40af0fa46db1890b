//! Conversion violations (field path, rule), their collection, options and derived ids.

use std::collections::BTreeSet;

use crm_domain::{
    Command, CommandId, ConvertInto, CustomerId, Rejection, RejectionKind, Timestamp,
};
use crm_proto::v1::convert_lead_request::Into as ConvertInto1;
use crm_proto::{
    CommandIds, IntoCommand, ParsedOptions, parse_options, parse_request, purpose, v1,
};
use uuid::Uuid;

const C1: &str = "0191e2a4-5c3b-7d2e-9f01-000000000001";
const X1: &str = "0191e2a4-5c3b-7d2e-9f01-0000000000a1";
const CMD_A: &str = "0191e2a4-5c3b-7d2e-9f01-00000000000a";
const CMD_B: &str = "0191e2a4-5c3b-7d2e-9f01-00000000000b";

fn command_id(s: &str) -> CommandId {
    CommandId(Uuid::parse_str(s).unwrap())
}

fn ids(s: &str) -> CommandIds {
    CommandIds::new(command_id(s))
}

/// The (field, rule) pairs of a conversion's rejection, in order.
fn violations(result: Result<Command, Rejection>) -> Vec<(String, &'static str)> {
    let rejection = result.expect_err("conversion should be rejected");
    assert_eq!(rejection.kind, RejectionKind::Invalid);
    rejection
        .violations
        .into_iter()
        .map(|v| (v.field, v.rule))
        .collect()
}

fn pairs(expected: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    expected
        .iter()
        .map(|(f, r)| ((*f).to_owned(), *r))
        .collect()
}

fn money(minor: i64, currency: &str) -> Option<v1::Money> {
    Some(v1::Money {
        minor,
        currency: currency.into(),
    })
}

fn tag(customer_id: &str) -> v1::TagCustomerRequest {
    v1::TagCustomerRequest {
        customer_id: customer_id.into(),
        tag: "vip".into(),
        ..Default::default()
    }
}

// ---- derived ids ----

/// The id each creating request derives when it leaves the id empty.
fn derived_ids(cmd: &str) -> Vec<Uuid> {
    let ids = ids(cmd);
    let customer = |c: Command| match c {
        Command::RegisterCustomer(c) => c.customer_id.0,
        Command::PlaceOrder(c) => c.order_id.0,
        Command::RecordReturn(c) => c.return_id.0,
        Command::OpenTicket(c) => c.ticket_id.0,
        Command::LogInteraction(c) => c.interaction_id.0,
        Command::OpenOpportunity(c) => c.opportunity_id.0,
        Command::CreateLead { lead_id, .. } => lead_id.0,
        Command::CreateCampaign { campaign_id, .. } => campaign_id.0,
        other => panic!("unexpected {other:?}"),
    };
    let eur = || money(1, "EUR");
    vec![
        customer(
            v1::RegisterCustomerRequest::default()
                .into_command(&ids)
                .unwrap(),
        ),
        customer(
            v1::PlaceOrderRequest {
                customer_id: C1.into(),
                currency: "EUR".into(),
                ..Default::default()
            }
            .into_command(&ids)
            .unwrap(),
        ),
        customer(
            v1::RecordReturnRequest {
                customer_id: C1.into(),
                order_id: X1.into(),
                refund: eur(),
                ..Default::default()
            }
            .into_command(&ids)
            .unwrap(),
        ),
        customer(
            v1::OpenTicketRequest {
                customer_id: C1.into(),
                channel: v1::Channel::Chat.into(),
                priority: v1::TicketPriority::Low.into(),
                ..Default::default()
            }
            .into_command(&ids)
            .unwrap(),
        ),
        customer(
            v1::LogInteractionRequest {
                customer_id: C1.into(),
                channel: v1::Channel::Chat.into(),
                direction: v1::Direction::Outbound.into(),
                ..Default::default()
            }
            .into_command(&ids)
            .unwrap(),
        ),
        customer(
            v1::OpenOpportunityRequest {
                customer_id: C1.into(),
                amount: eur(),
                ..Default::default()
            }
            .into_command(&ids)
            .unwrap(),
        ),
        customer(v1::CreateLeadRequest::default().into_command(&ids).unwrap()),
        customer(
            v1::CreateCampaignRequest {
                channel: v1::Channel::Sms.into(),
                ..Default::default()
            }
            .into_command(&ids)
            .unwrap(),
        ),
    ]
}

#[test]
fn derived_ids_follow_the_purpose_of_each_kind() {
    let ids = ids(CMD_A);
    let expected: Vec<Uuid> = [
        purpose::CUSTOMER,
        purpose::ORDER,
        purpose::RETURN,
        purpose::TICKET,
        purpose::INTERACTION,
        purpose::OPPORTUNITY,
        purpose::LEAD,
        purpose::CAMPAIGN,
    ]
    .into_iter()
    .map(|p| command_id(CMD_A).derive(p))
    .collect();
    assert_eq!(derived_ids(CMD_A), expected);
    let typed: CustomerId = ids.derive(purpose::CUSTOMER);
    assert_eq!(typed.0, expected[0]);
}

#[test]
fn derived_ids_are_stable_per_command_id_and_differ_across_purposes_and_command_ids() {
    let a = derived_ids(CMD_A);
    assert_eq!(derived_ids(CMD_A), a, "a retry derives the same ids");
    let b = derived_ids(CMD_B);
    let all: BTreeSet<Uuid> = a.iter().chain(&b).copied().collect();
    assert_eq!(all.len(), 16, "8 purposes x 2 command ids, all distinct");
}

#[test]
fn convert_lead_derives_distinct_customer_and_opportunity_ids() {
    let r = v1::ConvertLeadRequest {
        lead_id: X1.into(),
        into: Some(ConvertInto1::NewCustomerId(String::new())),
        opportunity: Some(v1::ConversionOpportunity {
            name: "deal".into(),
            amount: money(5, "EUR"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let convert = |cmd| match r.clone().into_command(&ids(cmd)).unwrap() {
        Command::ConvertLead {
            into: ConvertInto::NewCustomer(c),
            opportunity: Some(o),
            ..
        } => (c.0, o.opportunity_id.0),
        other => panic!("unexpected {other:?}"),
    };
    let (customer, opportunity) = convert(CMD_A);
    assert_eq!(customer, command_id(CMD_A).derive(purpose::CUSTOMER));
    assert_eq!(opportunity, command_id(CMD_A).derive(purpose::OPPORTUNITY));
    assert_eq!(convert(CMD_A), (customer, opportunity));
    let (c2, o2) = convert(CMD_B);
    assert_ne!(c2, customer);
    assert_ne!(o2, opportunity);
}

#[test]
fn parse_request_derives_from_the_callers_command_id_or_a_generated_one() {
    let request = v1::RegisterCustomerRequest {
        options: Some(v1::CommandOptions {
            command_id: CMD_A.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let parsed = parse_request(request.clone(), || panic!("not needed")).unwrap();
    assert_eq!(parsed.command_id, command_id(CMD_A));
    assert_eq!(parsed.command, request.into_command(&ids(CMD_A)).unwrap());

    let parsed =
        parse_request(v1::RegisterCustomerRequest::default(), || command_id(CMD_B)).unwrap();
    assert_eq!(parsed.command_id, command_id(CMD_B));
    assert_eq!(parsed.options, ParsedOptions::default());
    let Command::RegisterCustomer(c) = parsed.command else {
        panic!("wrong command")
    };
    assert_eq!(c.customer_id.0, command_id(CMD_B).derive(purpose::CUSTOMER));
}

// ---- ids ----

#[test]
fn ids_that_reference_existing_things_are_required() {
    assert_eq!(
        violations(tag("").into_command(&ids(CMD_A))),
        pairs(&[("customer_id", "required")])
    );
}

#[test]
fn every_id_must_be_a_canonical_non_nil_uuid() {
    for bad in [
        "nope",
        "0191e2a45c3b7d2e9f01000000000001",
        "{0191e2a4-5c3b-7d2e-9f01-000000000001}",
        "00000000-0000-0000-0000-000000000000",
        " 0191e2a4-5c3b-7d2e-9f01-000000000001",
    ] {
        let rejection = tag(bad).into_command(&ids(CMD_A)).unwrap_err();
        assert_eq!(rejection.violations.len(), 1);
        let v = &rejection.violations[0];
        assert_eq!((v.field.as_str(), v.rule), ("customer_id", "uuid"));
        assert!(v.message.contains(&format!("{bad:?}")), "{}", v.message);
    }
    // Upper case is the same UUID.
    assert!(tag(&C1.to_uppercase()).into_command(&ids(CMD_A)).is_ok());
}

#[test]
fn created_and_optional_ids_are_checked_when_given() {
    let r = v1::PlaceOrderRequest {
        customer_id: C1.into(),
        order_id: "order-1".into(),
        currency: "EUR".into(),
        campaign_id: "camp".into(),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[("order_id", "uuid"), ("campaign_id", "uuid")])
    );
}

#[test]
fn repeated_ids_are_reported_by_index() {
    let r = v1::SendCampaignRequest {
        campaign_id: X1.into(),
        recipients: vec![C1.into(), "x".into(), String::new()],
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[("recipients[1]", "uuid"), ("recipients[2]", "required")])
    );
}

// ---- enums ----

#[test]
fn unspecified_enums_are_required_and_unknown_numbers_refused() {
    let r = v1::OpenTicketRequest {
        customer_id: C1.into(),
        channel: 0,
        priority: 99,
        ..Default::default()
    };
    let rejection = r.into_command(&ids(CMD_A)).unwrap_err();
    let got: Vec<_> = rejection
        .violations
        .iter()
        .map(|v| (v.field.as_str(), v.rule))
        .collect();
    assert_eq!(got, [("channel", "required"), ("priority", "enum")]);
    assert!(rejection.violations[1].message.contains("99"));
}

#[test]
fn nested_enums_name_their_path() {
    let r = v1::RegisterCustomerRequest {
        consents: vec![
            v1::Consent {
                channel: v1::ConsentChannel::Email.into(),
                granted: true,
            },
            v1::Consent {
                channel: 0,
                granted: true,
            },
            v1::Consent {
                channel: 42,
                granted: false,
            },
        ],
        acquisition: Some(v1::Acquisition {
            campaign_id: "bad".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[
            ("acquisition.campaign_id", "uuid"),
            ("consents[1].channel", "required"),
            ("consents[2].channel", "enum"),
        ])
    );
    let r = v1::LogInteractionRequest {
        customer_id: C1.into(),
        channel: v1::Channel::Phone.into(),
        direction: v1::Direction::Inbound.into(),
        call: Some(v1::CallDetails {
            duration_secs: 3,
            outcome: 0,
        }),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[("call.outcome", "required")])
    );
}

// ---- money and currency ----

#[test]
fn currency_must_parse() {
    for (currency, rule) in [("", "required"), ("eur", "currency"), ("EURO", "currency")] {
        let r = v1::PlaceOrderRequest {
            customer_id: C1.into(),
            currency: currency.into(),
            ..Default::default()
        };
        assert_eq!(
            violations(r.into_command(&ids(CMD_A))),
            pairs(&[("currency", rule)])
        );
    }
}

#[test]
fn required_money_must_be_present_and_nested_currency_named() {
    let r = v1::RecordReturnRequest {
        customer_id: C1.into(),
        order_id: X1.into(),
        refund: None,
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[("refund", "required")])
    );
    let r = v1::ConvertLeadRequest {
        lead_id: X1.into(),
        into: Some(ConvertInto1::ExistingCustomerId(C1.into())),
        opportunity: Some(v1::ConversionOpportunity {
            opportunity_id: "bad".into(),
            amount: money(5, "Eur"),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[
            ("opportunity.opportunity_id", "uuid"),
            ("opportunity.amount.currency", "currency"),
        ])
    );
    let r = v1::WinOpportunityRequest {
        customer_id: C1.into(),
        opportunity_id: X1.into(),
        amount: money(5, ""),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[("amount.currency", "required")])
    );
}

// ---- narrowing ----

fn sentiment(s: i32) -> Result<Command, Rejection> {
    v1::LogInteractionRequest {
        customer_id: C1.into(),
        channel: v1::Channel::Chat.into(),
        direction: v1::Direction::Inbound.into(),
        sentiment: Some(s),
        ..Default::default()
    }
    .into_command(&ids(CMD_A))
}

#[test]
fn narrowing_never_wraps() {
    for s in [-128, 127] {
        assert!(
            sentiment(s).is_ok(),
            "{s} fits in i8 (the domain checks -100..=100)"
        );
    }
    for s in [-129, 128, 200, i32::MIN] {
        assert_eq!(violations(sentiment(s)), pairs(&[("sentiment", "range")]));
    }
    let close = |csat| {
        v1::CloseTicketRequest {
            customer_id: C1.into(),
            ticket_id: X1.into(),
            csat: Some(csat),
            ..Default::default()
        }
        .into_command(&ids(CMD_A))
    };
    assert!(close(255).is_ok());
    assert_eq!(violations(close(256)), pairs(&[("csat", "range")]));
    assert_eq!(violations(close(u32::MAX)), pairs(&[("csat", "range")]));
    let r = v1::MoveOpportunityStageRequest {
        customer_id: C1.into(),
        opportunity_id: X1.into(),
        probability_pct: Some(300),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[("probability_pct", "range")])
    );
}

// ---- timestamps ----

fn expected_close(seconds: i64, nanos: i32) -> Result<Command, Rejection> {
    v1::OpenOpportunityRequest {
        customer_id: C1.into(),
        amount: money(1, "EUR"),
        expected_close: Some(prost_types::Timestamp { seconds, nanos }),
        ..Default::default()
    }
    .into_command(&ids(CMD_A))
}

#[test]
fn timestamps_outside_the_protobuf_range_are_refused() {
    for (seconds, nanos) in [
        (253_402_300_800, 0),
        (-62_135_596_801, 0),
        (i64::MAX, 0),
        (0, -1),
        (0, 1_000_000_000),
    ] {
        assert_eq!(
            violations(expected_close(seconds, nanos)),
            pairs(&[("expected_close", "range")]),
            "{seconds}s {nanos}ns"
        );
    }
    for (seconds, nanos) in [(253_402_300_799, 999_999_999), (-62_135_596_800, 0)] {
        assert!(expected_close(seconds, nanos).is_ok());
    }
}

#[test]
fn timestamps_convert_to_micros_both_ways() {
    let t = prost_types::Timestamp {
        seconds: -1,
        nanos: 999_999_000,
    };
    let micros = crm_proto::timestamp_from_proto(&t).unwrap();
    assert_eq!(micros, Timestamp::from_micros(-1));
    assert_eq!(crm_proto::timestamp_to_proto(micros), t);
    let t = prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 1_999,
    };
    assert_eq!(
        crm_proto::timestamp_from_proto(&t),
        Some(Timestamp::from_micros(1_700_000_000_000_001)),
        "sub-microsecond digits are dropped"
    );
}

// ---- flags and combinations ----

#[test]
fn update_profile_flags_must_be_consistent() {
    let r = v1::UpdateProfileRequest {
        customer_id: C1.into(),
        emails: vec!["a@example.com".into()],
        set_emails: false,
        phones: vec!["+4915112345678".into()],
        set_phones: false,
        external_ids: vec![v1::ExternalId::default()],
        set_external_ids: false,
        address: Some(v1::Address::default()),
        clear_address: true,
        language: Some("en".into()),
        clear_language: true,
        country: Some("DE".into()),
        clear_country: true,
        owner: Some("o".into()),
        clear_owner: true,
        team: Some("t".into()),
        clear_team: true,
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[
            ("emails", "inconsistent"),
            ("phones", "inconsistent"),
            ("clear_address", "inconsistent"),
            ("clear_language", "inconsistent"),
            ("clear_country", "inconsistent"),
            ("external_ids", "inconsistent"),
            ("clear_owner", "inconsistent"),
            ("clear_team", "inconsistent"),
        ])
    );
}

#[test]
fn campaign_response_revenue_and_order_only_on_conversion() {
    let r = v1::RecordCampaignResponseRequest {
        customer_id: C1.into(),
        campaign_id: X1.into(),
        kind: v1::CampaignResponseKind::Clicked.into(),
        revenue: money(5, "EUR"),
        order_id: X1.into(),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[("revenue", "inconsistent"), ("order_id", "inconsistent")])
    );
}

#[test]
fn convert_lead_needs_whom_to_convert_into() {
    let r = v1::ConvertLeadRequest {
        lead_id: X1.into(),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[("into", "required")])
    );
    let r = v1::ConvertLeadRequest {
        lead_id: X1.into(),
        into: Some(ConvertInto1::ExistingCustomerId(String::new())),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[("existing_customer_id", "required")])
    );
    let r = v1::ConvertLeadRequest {
        lead_id: X1.into(),
        into: Some(ConvertInto1::NewCustomerId("x".into())),
        opportunity: Some(v1::ConversionOpportunity::default()),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[
            ("new_customer_id", "uuid"),
            ("opportunity.amount", "required")
        ])
    );
}

// ---- collecting ----

#[test]
fn all_violations_of_a_request_are_collected() {
    let r = v1::LogInteractionRequest {
        customer_id: String::new(),
        interaction_id: "i".into(),
        channel: 0,
        direction: 7,
        sentiment: Some(1_000),
        ticket_id: "t".into(),
        opportunity_id: "o".into(),
        campaign_id: "c".into(),
        call: Some(v1::CallDetails {
            duration_secs: 1,
            outcome: 12,
        }),
        ..Default::default()
    };
    assert_eq!(
        violations(r.into_command(&ids(CMD_A))),
        pairs(&[
            ("customer_id", "required"),
            ("interaction_id", "uuid"),
            ("channel", "required"),
            ("direction", "enum"),
            ("sentiment", "range"),
            ("ticket_id", "uuid"),
            ("opportunity_id", "uuid"),
            ("campaign_id", "uuid"),
            ("call.outcome", "enum"),
        ])
    );
}

#[test]
fn options_are_converted_with_their_own_paths() {
    let good = v1::CommandOptions {
        command_id: CMD_A.into(),
        correlation_id: CMD_B.into(),
        causation_id: C1.into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: 10,
            nanos: 5_000,
        }),
        expected_version: Some(0),
    };
    assert_eq!(
        parse_options(Some(&good)),
        Ok(ParsedOptions {
            command_id: Some(command_id(CMD_A)),
            correlation_id: Some(Uuid::parse_str(CMD_B).unwrap()),
            causation_id: Some(Uuid::parse_str(C1).unwrap()),
            occurred_at: Some(Timestamp::from_micros(10_000_005)),
            expected_version: Some(0),
        })
    );
    assert_eq!(parse_options(None), Ok(ParsedOptions::default()));
    assert_eq!(
        parse_options(Some(&v1::CommandOptions::default())),
        Ok(ParsedOptions::default())
    );
    let bad = v1::CommandOptions {
        command_id: "a".into(),
        correlation_id: "b".into(),
        causation_id: "c".into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: 0,
            nanos: -5,
        }),
        expected_version: None,
    };
    let got: Vec<_> = (parse_options(Some(&bad))
        .unwrap_err()
        .violations
        .into_iter())
    .map(|v| (v.field, v.rule))
    .collect();
    assert_eq!(
        got,
        pairs(&[
            ("options.command_id", "uuid"),
            ("options.correlation_id", "uuid"),
            ("options.causation_id", "uuid"),
            ("options.occurred_at", "range"),
        ])
    );
}

#[test]
fn parse_request_collects_option_and_command_violations() {
    let mut r = tag("bad");
    r.options = Some(v1::CommandOptions {
        command_id: "nope".into(),
        ..Default::default()
    });
    let rejection = parse_request(r, || command_id(CMD_A)).unwrap_err();
    assert_eq!(rejection.kind, RejectionKind::Invalid);
    let got: Vec<_> = (rejection.violations.into_iter())
        .map(|v| (v.field, v.rule))
        .collect();
    assert_eq!(
        got,
        pairs(&[("options.command_id", "uuid"), ("customer_id", "uuid")])
    );
    // Only the options are wrong.
    let mut r = tag(C1);
    r.options = Some(v1::CommandOptions {
        causation_id: "nope".into(),
        ..Default::default()
    });
    let rejection = parse_request(r, || command_id(CMD_A)).unwrap_err();
    assert_eq!(rejection.violations.len(), 1);
    assert_eq!(rejection.violations[0].field, "options.causation_id");
}
