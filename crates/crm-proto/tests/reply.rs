//! Replies, aggregate references, violations in proto form and the descriptor set.

use crm_domain::{
    AggregateRef, CampaignId, Command, CommandId, ConvertInto, CustomerId, LeadId, Profile,
    RegisterCustomer, Rejection, RejectionKind, RelationshipKind, Violation,
};
use crm_proto::{
    FILE_DESCRIPTOR_SET, aggregate_from_proto, aggregate_to_proto, command_field_violations,
    command_reply, field_violations, proto_field_path, v1,
};
use prost::Message as _;
use uuid::Uuid;

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x0191_e2a4_5c3b_7d2e_9f01_0000_0000_0000 + n)
}

#[test]
fn command_reply_names_the_primary_aggregate_and_every_written_one() {
    let lead = AggregateRef::Lead(LeadId(uuid(1)));
    let customer = AggregateRef::Customer(CustomerId(uuid(2)));
    let reply = command_reply(
        CommandId(uuid(9)),
        &[(lead, 4), (customer, 1)],
        lead,
        1234,
        3,
        false,
    );
    assert_eq!(
        reply,
        v1::CommandReply {
            command_id: uuid(9).to_string(),
            aggregate_type: v1::AggregateType::Lead.into(),
            aggregate_id: uuid(1).to_string(),
            version: 4,
            position: 1234,
            events_appended: 3,
            repeated: false,
            aggregates: vec![
                v1::AggregateVersion {
                    aggregate_type: v1::AggregateType::Lead.into(),
                    aggregate_id: uuid(1).to_string(),
                    version: 4,
                },
                v1::AggregateVersion {
                    aggregate_type: v1::AggregateType::Customer.into(),
                    aggregate_id: uuid(2).to_string(),
                    version: 1,
                },
            ],
            skipped_recipients: Vec::new(),
        }
    );
    let repeat = command_reply(CommandId(uuid(9)), &[], customer, 1234, 0, true);
    assert_eq!(repeat.version, 0);
    assert!(repeat.repeated);
    assert_eq!(
        repeat.aggregate_type,
        i32::from(v1::AggregateType::Customer)
    );
}

#[test]
fn aggregates_round_trip_and_bad_ones_are_reported() {
    for a in [
        AggregateRef::Customer(CustomerId(uuid(1))),
        AggregateRef::Lead(LeadId(uuid(2))),
        AggregateRef::Campaign(CampaignId(uuid(3))),
    ] {
        let (t, id) = aggregate_to_proto(a);
        assert_eq!(aggregate_from_proto(t.into(), &id), Ok(a));
    }
    let r = aggregate_from_proto(0, "x").unwrap_err();
    let got: Vec<_> = r
        .violations
        .iter()
        .map(|v| (v.field.as_str(), v.rule))
        .collect();
    assert_eq!(
        got,
        [("aggregate_type", "required"), ("aggregate_id", "uuid")]
    );
}

fn rejection(fields: &[&str]) -> Rejection {
    Rejection {
        kind: RejectionKind::Invalid,
        violations: fields
            .iter()
            .map(|f| Violation {
                field: (*f).to_owned(),
                rule: "r",
                message: format!("{f} is wrong"),
            })
            .collect(),
    }
}

#[test]
fn field_violations_copy_field_rule_and_message() {
    assert_eq!(
        field_violations(&rejection(&["lines[2].unit_price_minor"])),
        [v1::FieldViolation {
            field: "lines[2].unit_price_minor".into(),
            rule: "r".into(),
            description: "lines[2].unit_price_minor is wrong".into(),
        }]
    );
}

#[test]
fn domain_field_paths_are_translated_to_request_paths() {
    let register = Command::RegisterCustomer(RegisterCustomer {
        customer_id: CustomerId(uuid(1)),
        profile: Profile::default(),
        acquisition: None,
        owner: None,
        team: None,
        consents: vec![],
        consent_source: String::new(),
        tags: vec![],
    });
    let got: Vec<String> = command_field_violations(
        &register,
        &rejection(&[
            "profile",
            "emails[0]",
            "emails",
            "address.city",
            "external_ids[1].system",
            "given_name",
            "customer_id",
            "consent_source",
            "tags[0]",
            "emailsx",
        ]),
    )
    .into_iter()
    .map(|v| v.field)
    .collect();
    assert_eq!(
        got,
        [
            "profile",
            "profile.emails[0]",
            "profile.emails",
            "profile.address.city",
            "profile.external_ids[1].system",
            "profile.given_name",
            "customer_id",
            "consent_source",
            "tags[0]",
            "emailsx",
        ]
    );

    let link = Command::LinkCustomers {
        customer_id: CustomerId(uuid(1)),
        other: CustomerId(uuid(2)),
        kind: RelationshipKind::Household,
    };
    assert_eq!(proto_field_path(&link, "other"), "other_customer_id");
    assert_eq!(proto_field_path(&link, "kind"), "kind");

    let convert = Command::ConvertLead {
        lead_id: LeadId(uuid(1)),
        into: ConvertInto::NewCustomer(CustomerId(uuid(2))),
        opportunity: None,
    };
    assert_eq!(
        proto_field_path(&convert, "into.new_customer"),
        "new_customer_id"
    );
    assert_eq!(
        proto_field_path(&convert, "into.existing_customer"),
        "existing_customer_id"
    );
    assert_eq!(
        proto_field_path(&convert, "opportunity.amount.minor"),
        "opportunity.amount.minor"
    );

    let response = Command::RecordCampaignResponse {
        customer_id: CustomerId(uuid(1)),
        campaign_id: CampaignId(uuid(2)),
        response: crm_domain::CampaignResponse::Opened,
    };
    assert_eq!(
        proto_field_path(&response, "response.revenue.minor"),
        "revenue.minor"
    );
    // Other commands keep the domain's names, which are the request's.
    let tag = Command::TagCustomer {
        customer_id: CustomerId(uuid(1)),
        tag: "x".into(),
    };
    assert_eq!(proto_field_path(&tag, "emails[0]"), "emails[0]");
}

#[test]
fn descriptor_set_holds_the_command_service() {
    let fds = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let names: Vec<&str> = fds.file.iter().map(|f| f.name()).collect();
    for expected in [
        "google/protobuf/timestamp.proto",
        "crm/v1/types.proto",
        "crm/v1/commands.proto",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let commands = fds
        .file
        .iter()
        .find(|f| f.name() == "crm/v1/commands.proto")
        .unwrap();
    assert_eq!(commands.package(), "crm.v1");
    let service = commands
        .service
        .iter()
        .find(|s| s.name() == "CommandService")
        .expect("crm.v1.CommandService");
    assert_eq!(service.method.len(), 33, "32 commands and Ingest");
    let ingest = service
        .method
        .iter()
        .find(|m| m.name() == "Ingest")
        .unwrap();
    assert!(ingest.client_streaming() && ingest.server_streaming());
    assert!(
        commands.source_code_info.is_some(),
        "comments are kept for reflection"
    );
    assert_eq!(
        v1::command_service_server::SERVICE_NAME,
        "crm.v1.CommandService"
    );
}
