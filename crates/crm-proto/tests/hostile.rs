//! Hostile input: whatever bytes a client sends, decoding and converting a request never
//! panics, and every rejection names a field and a rule. The bytes are random protobuf
//! field sequences (field numbers 1-12, varints and length-delimited values: text, ids,
//! raw bytes, nested fields), so most of them decode into messages with strange values.
//! Failing cases proptest finds are kept in `proptest-regressions/` (the corpus).

use crm_domain::{CommandId, Rejection};
use crm_proto::v1;
use crm_proto::{IntoCommand, parse_request};
use proptest::prelude::*;
use prost::Message;

#[derive(Clone, Debug)]
enum Field {
    Varint(u32, u64),
    Bytes(u32, Vec<u8>),
    Nested(u32, Vec<Field>),
}

fn text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Ids, good and bad.
        Just(b"0190a5e4-1111-7000-8000-000000000001".to_vec()),
        Just(b"00000000-0000-0000-0000-000000000000".to_vec()),
        "[0-9a-f-]{0,40}".prop_map(String::into_bytes),
        // Names, codes, amounts as text, control characters, long strings.
        "\\PC{0,24}".prop_map(String::into_bytes),
        "[A-Z]{3}|[a-z]{2}|\\+[0-9]{8,15}|[a-z]+@[a-z]+\\.[a-z]{2}".prop_map(String::into_bytes),
        Just(vec![b'x'; 5000]),
        prop::collection::vec(any::<u8>(), 0..16),
    ]
}

fn field(depth: u32) -> BoxedStrategy<Field> {
    let number = 1u32..=12;
    let leaf = prop_oneof![
        (
            number.clone(),
            prop_oneof![0u64..10, any::<u64>(), Just(u64::MAX)]
        )
            .prop_map(|(n, v)| Field::Varint(n, v)),
        (number.clone(), text()).prop_map(|(n, b)| Field::Bytes(n, b)),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => (number, prop::collection::vec(field(depth - 1), 0..6))
            .prop_map(|(n, f)| Field::Nested(n, f)),
    ]
    .boxed()
}

fn encode(fields: &[Field], out: &mut Vec<u8>) {
    for f in fields {
        match f {
            Field::Varint(n, v) => {
                prost::encoding::encode_key(*n, prost::encoding::WireType::Varint, out);
                prost::encoding::encode_varint(*v, out);
            }
            Field::Bytes(n, b) => {
                prost::encoding::encode_key(*n, prost::encoding::WireType::LengthDelimited, out);
                prost::encoding::encode_varint(b.len() as u64, out);
                out.extend_from_slice(b);
            }
            Field::Nested(n, inner) => {
                let mut body = Vec::new();
                encode(inner, &mut body);
                prost::encoding::encode_key(*n, prost::encoding::WireType::LengthDelimited, out);
                prost::encoding::encode_varint(body.len() as u64, out);
                out.extend_from_slice(&body);
            }
        }
    }
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(field(2), 0..10).prop_map(|f| {
            let mut out = Vec::new();
            encode(&f, &mut out);
            out
        }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn every_violation_is_named(r: &Rejection) -> Result<(), TestCaseError> {
    prop_assert!(!r.violations.is_empty());
    for v in &r.violations {
        prop_assert!(!v.field.is_empty(), "a violation without a field: {r:?}");
        prop_assert!(!v.rule.is_empty() && !v.message.is_empty(), "{r:?}");
    }
    Ok(())
}

/// Decodes `bytes` as `R` (an error is fine: the server answers INVALID_ARGUMENT) and
/// converts what decodes: accepted, or rejected naming every field.
fn check<R: IntoCommand + Message + Default>(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(request) = R::decode(bytes) else {
        return Ok(());
    };
    let _ = request.command_kind();
    match parse_request(request, CommandId::new_v7) {
        Ok(parsed) => {
            let _ = parsed.command.targets();
            Ok(())
        }
        Err(r) => every_violation_is_named(&r),
    }
}

macro_rules! hostile {
    ($($name:ident: $ty:ty),* $(,)?) => {
        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 128,
                failure_persistence: Some(Box::new(
                    proptest::test_runner::FileFailurePersistence::Direct(
                        "proptest-regressions/hostile.txt",
                    ),
                )),
                ..ProptestConfig::default()
            })]
            $(
                #[test]
                fn $name(bytes in message()) {
                    check::<$ty>(&bytes)?;
                }
            )*
        }
    };
}

hostile! {
    register_customer: v1::RegisterCustomerRequest,
    update_profile: v1::UpdateProfileRequest,
    set_consent: v1::SetConsentRequest,
    tag_customer: v1::TagCustomerRequest,
    untag_customer: v1::UntagCustomerRequest,
    link_customers: v1::LinkCustomersRequest,
    log_interaction: v1::LogInteractionRequest,
    place_order: v1::PlaceOrderRequest,
    record_return: v1::RecordReturnRequest,
    open_ticket: v1::OpenTicketRequest,
    assign_ticket: v1::AssignTicketRequest,
    respond_to_ticket: v1::RespondToTicketRequest,
    resolve_ticket: v1::ResolveTicketRequest,
    reopen_ticket: v1::ReopenTicketRequest,
    close_ticket: v1::CloseTicketRequest,
    open_opportunity: v1::OpenOpportunityRequest,
    move_opportunity_stage: v1::MoveOpportunityStageRequest,
    win_opportunity: v1::WinOpportunityRequest,
    lose_opportunity: v1::LoseOpportunityRequest,
    update_opportunity: v1::UpdateOpportunityRequest,
    reopen_opportunity: v1::ReopenOpportunityRequest,
    create_lead: v1::CreateLeadRequest,
    assign_lead: v1::AssignLeadRequest,
    contact_lead: v1::ContactLeadRequest,
    qualify_lead: v1::QualifyLeadRequest,
    disqualify_lead: v1::DisqualifyLeadRequest,
    convert_lead: v1::ConvertLeadRequest,
    create_campaign: v1::CreateCampaignRequest,
    send_campaign: v1::SendCampaignRequest,
    record_campaign_cost: v1::RecordCampaignCostRequest,
    record_campaign_response: v1::RecordCampaignResponseRequest,
    ingest_item: v1::IngestRequest,
}

/// The generator is not testing nothing: of its messages, some decode as a command
/// request, and some of those convert into a command (it reaches past the decoder).
#[test]
fn the_generator_reaches_conversion() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut decoded, mut converted) = (0, 0);
    for _ in 0..2000 {
        let bytes = message().new_tree(&mut runner).unwrap().current();
        if let Ok(r) = v1::TagCustomerRequest::decode(&bytes[..]) {
            decoded += 1;
            converted += u32::from(parse_request(r, CommandId::new_v7).is_ok());
        }
    }
    assert!(
        decoded > 100 && converted > 0,
        "{decoded} decoded, {converted} converted"
    );
}
