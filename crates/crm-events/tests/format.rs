//! The persisted format: payload and envelope round trips for every event the domain can
//! hold, tamper detection, and readable errors for payloads this release cannot read.

use std::collections::BTreeSet;

use crm_domain::arb::{arb_actor, arb_domain_event, arb_id, arb_timestamp, arb_uuid};
use crm_domain::{
    AggregateRef, CampaignEvent, CampaignId, CommandId, Currency, CustomerEvent, CustomerId,
    DomainEvent, LeadId, Money, OrderLine, OrderPlaced,
};
use crm_events::{
    DecodeError, EventHash, EventMeta, PayloadError, decode, decode_payload, encode,
    encode_payload, schema_versions, verify_hash,
};
use proptest::option::of;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn arb_meta() -> impl Strategy<Value = EventMeta> {
    (
        arb_uuid(),
        prop_oneof![Just(1), Just(u64::MAX), any::<u64>()],
        arb_timestamp(),
        arb_timestamp(),
        arb_actor(),
        arb_id::<CommandId>(),
        arb_uuid(),
        of(arb_uuid()),
        any::<u16>(),
        any::<u16>(),
        prop_oneof![
            Just(EventHash::GENESIS),
            any::<[u8; 32]>().prop_map(EventHash)
        ],
    )
        .prop_map(
            |(
                event_id,
                version,
                occurred_at,
                recorded_at,
                actor,
                command_id,
                correlation_id,
                causation_id,
                commit_index,
                commit_size,
                prev_hash,
            )| EventMeta {
                event_id,
                version,
                occurred_at,
                recorded_at,
                actor,
                command_id,
                correlation_id,
                causation_id,
                commit_index,
                commit_size,
                prev_hash,
            },
        )
        .boxed()
}

fn current_version(event_type: &str) -> Option<u16> {
    schema_versions()
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, v)| *v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Whatever a stored message holds (a stranger's publish, a corrupt disk), decoding
    /// it never panics: random bodies in both message formats, with a valid hash so the
    /// decoder gets past the integrity check.
    #[test]
    fn any_stored_bytes_decode_or_fail_without_panicking(
        format in prop_oneof![Just(1u8), Just(2u8), any::<u8>()],
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![format];
        bytes.extend(body);
        let _ = crm_events::decode_message(&rehash(bytes.clone()));
        let _ = crm_events::decode_message(&bytes);
    }

    #[test]
    fn payload_round_trips(e in arb_domain_event()) {
        let (event_type, version, bytes) = encode_payload(&e);
        prop_assert_eq!(event_type, e.event_type());
        // In the clear: the current version, or the plain one a sealed type wraps.
        let plain = crm_events::seal::sealed_versions(event_type).map(|(plain, _)| plain);
        prop_assert_eq!(Some(version), plain.or_else(|| current_version(event_type)));
        let (back, seal) = decode_payload(e.aggregate(), event_type, version, &bytes)?;
        prop_assert_eq!(back, e);
        prop_assert!(seal.is_none());
    }

    #[test]
    fn envelope_round_trips(meta in arb_meta(), e in arb_domain_event()) {
        let encoded = encode(&meta, &e);
        prop_assert_eq!(verify_hash(&encoded.bytes)?, encoded.hash);
        let env = decode(&encoded.bytes)?;
        prop_assert_eq!(env.event_type.as_str(), e.event_type());
        let plain = crm_events::seal::sealed_versions(e.event_type()).map(|(plain, _)| plain);
        prop_assert_eq!(Some(env.schema_version), plain.or_else(|| current_version(e.event_type())));
        prop_assert_eq!(&env.sealing, &crm_events::Sealing::Plain);
        prop_assert_eq!(env.aggregate, e.aggregate());
        prop_assert_eq!(env.hash, encoded.hash);
        prop_assert_eq!(env.meta, meta);
        prop_assert_eq!(env.event, e);
    }

    #[test]
    fn flipping_any_byte_fails_the_hash(
        meta in arb_meta(),
        e in arb_domain_event(),
        at in any::<Index>(),
        mask in 1..=u8::MAX,
    ) {
        let mut bytes = encode(&meta, &e).bytes;
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        let err = decode(&bytes).expect_err("a flipped byte must not decode");
        prop_assert!(matches!(err, DecodeError::HashMismatch { .. }), "byte {i}: {err}");
    }

    /// Even with a valid hash (a buggy or malicious writer), a changed body never
    /// panics and never decodes to the original event.
    #[test]
    fn a_rehashed_corrupt_body_never_decodes_to_the_original(
        meta in arb_meta(),
        e in arb_domain_event(),
        at in any::<Index>(),
        mask in 1..=u8::MAX,
    ) {
        let mut bytes = encode(&meta, &e).bytes;
        bytes.truncate(bytes.len() - 32);
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        if let Ok(env) = decode(&rehash(bytes)) {
            prop_assert!(env.meta != meta || env.event != e, "byte {i} changed nothing");
        }
    }

    #[test]
    fn every_strict_prefix_of_a_payload_is_malformed(e in arb_domain_event(), cut in any::<Index>()) {
        let (event_type, version, bytes) = encode_payload(&e);
        let cut = cut.index(bytes.len());
        let err = decode_payload(e.aggregate(), event_type, version, &bytes[..cut])
            .expect_err("a truncated payload must not decode");
        prop_assert!(matches!(err, PayloadError::Malformed { .. }), "cut at {cut}: {err}");
    }

    #[test]
    fn trailing_bytes_are_rejected(e in arb_domain_event(), extra in prop::collection::vec(any::<u8>(), 1..4)) {
        let (event_type, version, mut bytes) = encode_payload(&e);
        bytes.extend_from_slice(&extra);
        let err = decode_payload(e.aggregate(), event_type, version, &bytes)
            .expect_err("trailing bytes must not decode");
        let is_trailing = matches!(err, PayloadError::TrailingBytes { count, .. } if count == extra.len());
        prop_assert!(is_trailing, "{err}");
    }
}

/// Appends the SHA-256 of `body`, as `encode` does.
fn rehash(mut body: Vec<u8>) -> Vec<u8> {
    let hash = Sha256::digest(&body);
    body.extend_from_slice(&hash);
    body
}

fn customer() -> CustomerId {
    CustomerId(Uuid::from_u128(0x0198_0000_0000_7000_8000_0000_0000_0001))
}

fn tagged() -> DomainEvent {
    DomainEvent::Customer(customer(), CustomerEvent::Tagged { tag: "vip".into() })
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::parse("USD").expect("USD"))
}

fn order_placed() -> DomainEvent {
    DomainEvent::Customer(
        customer(),
        CustomerEvent::OrderPlaced(OrderPlaced {
            order_id: Uuid::from_u128(7).into(),
            sales_channel: "web".into(),
            lines: vec![OrderLine {
                sku: "SKU-1".into(),
                category: "shoes".into(),
                quantity: 2,
                unit_price_minor: 4_999,
            }],
            discount_minor: 0,
            tax_minor: 800,
            shipping_minor: 500,
            total: usd(11_298),
            campaign: None,
        }),
    )
}

#[test]
fn unknown_event_type() {
    let err = decode_payload(
        AggregateRef::Customer(customer()),
        "customer.teleported",
        1,
        &[],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, PayloadError::UnknownEventType { event_type } if event_type == "customer.teleported")
    );
    assert!(
        msg.contains("unknown event type `customer.teleported`"),
        "{msg}"
    );
}

#[test]
fn unknown_schema_version() {
    let (event_type, _, bytes) = encode_payload(&tagged());
    for version in [0, 2, u16::MAX] {
        let err = decode_payload(tagged().aggregate(), event_type, version, &bytes).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, PayloadError::UnknownSchemaVersion { event_type: "customer.tagged", version: v, current: 1 } if v == version),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "`customer.tagged` has no schema version {version}"
            )),
            "{msg}"
        );
    }
}

#[test]
fn wrong_aggregate_kind() {
    let (event_type, version, bytes) = encode_payload(&tagged());
    let lead = AggregateRef::Lead(LeadId(customer().0));
    let err = decode_payload(lead, event_type, version, &bytes).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            PayloadError::WrongAggregate {
                event_type: "customer.tagged",
                ..
            }
        ),
        "{msg}"
    );
    assert_eq!(
        msg,
        "a `customer.tagged` event cannot belong to a lead aggregate"
    );

    let campaign = AggregateRef::Campaign(CampaignId(customer().0));
    let err = decode_payload(campaign, "lead.qualified", 1, &[0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a `lead.qualified` event cannot belong to a campaign aggregate"
    );
}

#[test]
fn truncated_payload() {
    let e = order_placed();
    let (event_type, version, bytes) = encode_payload(&e);
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        let err = decode_payload(e.aggregate(), event_type, version, &bytes[..cut]).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                PayloadError::Malformed {
                    event_type: "customer.order_placed",
                    version: 1,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.starts_with("malformed `customer.order_placed` v1 payload: "),
            "{msg}"
        );
    }
}

#[test]
fn bad_enum_variant_and_bool_are_malformed() {
    let e = DomainEvent::Customer(
        customer(),
        CustomerEvent::ConsentChanged {
            channel: crm_domain::ConsentChannel::Email,
            granted: true,
            source: "form".into(),
        },
    );
    let (event_type, version, bytes) = encode_payload(&e);
    assert_eq!(
        bytes[..2],
        [0, 1],
        "channel Email (variant 0), granted true"
    );
    for (at, value) in [(0, 6), (0, 0x7f), (1, 2)] {
        let mut bad = bytes.clone();
        bad[at] = value;
        let err = decode_payload(e.aggregate(), event_type, version, &bad).unwrap_err();
        assert!(matches!(err, PayloadError::Malformed { .. }), "{err}");
    }
}

#[test]
fn invalid_currency_is_reported_with_its_field() {
    let e = DomainEvent::Campaign(
        CampaignId(customer().0),
        CampaignEvent::CostRecorded {
            amount: usd(5),
            note: "print".into(),
        },
    );
    let (event_type, version, mut bytes) = encode_payload(&e);
    let at = bytes
        .windows(3)
        .position(|w| w == b"USD")
        .expect("currency bytes");
    bytes[at..at + 3].copy_from_slice(b"u\xffD");
    let err = decode_payload(e.aggregate(), event_type, version, &bytes).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            PayloadError::Invalid {
                event_type: "campaign.cost_recorded",
                field: "currency",
                ..
            }
        ),
        "{msg}"
    );
    assert_eq!(
        msg,
        "invalid `campaign.cost_recorded` v1 payload: `currency` `u\\xffD` is not three upper-case ASCII letters"
    );
}

#[test]
fn payload_errors_surface_through_the_envelope() {
    let meta = EventMeta {
        event_id: Uuid::from_u128(1),
        version: 1,
        occurred_at: crm_domain::Timestamp::from_micros(0),
        recorded_at: crm_domain::Timestamp::from_micros(0),
        actor: crm_domain::Actor::System,
        command_id: CommandId(Uuid::from_u128(2)),
        correlation_id: Uuid::from_u128(3),
        causation_id: None,
        commit_index: 0,
        commit_size: 1,
        prev_hash: EventHash::GENESIS,
    };
    let mut body = encode(&meta, &tagged()).bytes;
    body.truncate(body.len() - 32);
    // The payload is the envelope's last field: `vip` is its last three bytes.
    let n = body.len();
    body[n - 3..].copy_from_slice(b"\xff\xfe\xfd");
    let err = decode(&rehash(body)).unwrap_err();
    assert!(
        matches!(err, DecodeError::Payload(PayloadError::Malformed { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("malformed `customer.tagged` v1 payload"),
        "{err}"
    );
}

#[test]
fn schema_versions_lists_every_event_type_exactly_once() {
    let listed: Vec<&str> = schema_versions().iter().map(|(t, _)| *t).collect();
    assert!(listed.is_sorted(), "sorted by event type: {listed:?}");
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "listed twice: {listed:?}");

    // Every variant of every aggregate's events, from the shared strategies (weighted so
    // each event type is equally likely: 3000 samples miss one with odds below 1e-40).
    let mut runner = TestRunner::deterministic();
    let strategy = arb_domain_event();
    let produced: BTreeSet<&str> = (0..3000)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("a sample")
                .current()
                .event_type()
        })
        .collect();
    let unlisted: Vec<_> = produced.difference(&unique).collect();
    let never_produced: Vec<_> = unique.difference(&produced).collect();
    assert!(
        unlisted.is_empty(),
        "event types missing from schema_versions(): {unlisted:?}"
    );
    assert!(
        never_produced.is_empty(),
        "listed but no domain event has them: {never_produced:?}"
    );
}

/// Pins the v1 bytes of a few payloads, spelled out field by field, so an accidental
/// change to a wire struct fails here as well as against the golden fixtures.
#[test]
fn v1_bytes_are_pinned() {
    let (_, _, bytes) = encode_payload(&order_placed());
    let mut expected = vec![0; 15];
    expected.push(7); // order_id: 16 raw bytes
    expected.extend(b"\x03web"); // sales_channel: varint length, UTF-8
    expected.extend(b"\x01\x05SKU-1\x05shoes\x02"); // lines: count, sku, category, quantity
    expected.extend([0x8e, 0x4e]); // unit_price_minor 4999: zigzag 9998, varint
    expected.extend([0x00, 0xc0, 0x0c, 0xe8, 0x07]); // discount 0, tax 800, shipping 500
    expected.extend([0xc4, 0xb0, 0x01]); // total.minor 11298
    expected.extend(b"USD\x00"); // total.currency: 3 raw bytes; campaign: None
    assert_eq!(bytes, expected);

    let contacted = DomainEvent::Lead(
        LeadId(Uuid::nil()),
        crm_domain::LeadEvent::Contacted {
            channel: crm_domain::Channel::Post,
            agent: Some("ana".into()),
        },
    );
    // channel: variant index 9; agent: Some, then the string.
    assert_eq!(encode_payload(&contacted).2, b"\x09\x01\x03ana");
}
