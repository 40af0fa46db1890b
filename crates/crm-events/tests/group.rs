//! Grouped messages: a command's consecutive events on one aggregate stored as one
//! message. Round trips, tamper detection, and every structural rule of a group.

use crm_domain::{Actor, CommandId, CustomerEvent, CustomerId, DomainEvent, Timestamp};
use crm_events::{
    DecodeError, EncodedEvent, EventHash, EventMeta, MESSAGE_FORMAT_GROUP, decode, decode_message,
    encode, encode_message,
};
use proptest::prelude::*;
use proptest::sample::Index;
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn customer(n: u128) -> CustomerId {
    CustomerId(Uuid::from_u128(
        0x0198_0000_0000_7000_8000_0000_0000_0000 + n,
    ))
}

fn meta(version: u64, prev_hash: EventHash, command: u128, index: u16, size: u16) -> EventMeta {
    EventMeta {
        event_id: Uuid::from_u128(0x0198_0000_0000_7000_9000_0000_0000_0000 + u128::from(version)),
        version,
        occurred_at: Timestamp::from_micros(1_700_000_000_000_000),
        recorded_at: Timestamp::from_micros(1_700_000_000_000_001),
        actor: Actor::Service("signup".into()),
        command_id: CommandId(Uuid::from_u128(command)),
        correlation_id: Uuid::from_u128(command),
        causation_id: None,
        commit_index: index,
        commit_size: size,
        prev_hash,
    }
}

/// `n` tag events of customer 1 from one command, versions `first..`, chained.
fn chain(n: u16, first: u64, prev: EventHash) -> Vec<EncodedEvent> {
    let mut prev = prev;
    (0..n)
        .map(|i| {
            let e = DomainEvent::Customer(
                customer(1),
                CustomerEvent::Tagged {
                    tag: format!("tag-{i}"),
                },
            );
            let enc = encode(&meta(first + u64::from(i), prev, 42, i, n), &e);
            prev = enc.hash;
            enc
        })
        .collect()
}

/// A tag event of customer `who`, with `meta`.
fn tagged(meta: EventMeta, who: u128) -> EncodedEvent {
    encode(
        &meta,
        &DomainEvent::Customer(customer(who), CustomerEvent::Tagged { tag: "x".into() }),
    )
}

/// A group message of arbitrary bodies with a valid outer hash.
fn group_of(bodies: &[&[u8]]) -> Vec<u8> {
    let mut bytes = vec![MESSAGE_FORMAT_GROUP];
    bytes = postcard::to_extend(&bodies, bytes).unwrap();
    rehash(bytes)
}

fn rehash(mut body: Vec<u8>) -> Vec<u8> {
    let hash = Sha256::digest(&body);
    body.extend_from_slice(&hash);
    body
}

fn group_error(bytes: &[u8]) -> String {
    match decode_message(bytes) {
        Err(DecodeError::Group(why)) => why,
        other => panic!("expected a group error, got {other:?}"),
    }
}

#[test]
fn a_group_decodes_to_its_events_in_order_with_their_own_hashes() {
    let events = chain(4, 1, EventHash::GENESIS);
    let message = encode_message(&events);
    assert_eq!(message[0], MESSAGE_FORMAT_GROUP);
    let decoded = decode_message(&message).unwrap();
    assert_eq!(decoded.len(), 4);
    for (got, enc) in decoded.iter().zip(&events) {
        // Each event is exactly what its own body decodes to: grouping changes nothing
        // about an event's identity or its place in the hash chain.
        assert_eq!(*got, decode(&enc.bytes).unwrap());
        assert_eq!(got.hash, enc.hash);
    }
    assert_eq!(
        decoded.iter().map(|e| e.meta.version).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
}

#[test]
fn one_event_is_stored_as_its_own_body_and_reads_back_as_one() {
    let events = chain(1, 1, EventHash::GENESIS);
    let message = encode_message(&events);
    assert_eq!(message, events[0].bytes);
    assert_eq!(
        decode_message(&message).unwrap(),
        vec![decode(&message).unwrap()]
    );
}

#[test]
fn decoding_a_group_as_one_event_says_to_read_it_as_a_message() {
    let message = encode_message(&chain(2, 1, EventHash::GENESIS));
    assert!(matches!(decode(&message), Err(DecodeError::Grouped)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn flipping_any_byte_of_a_group_fails_its_hash(
        n in 2u16..6,
        at in any::<Index>(),
        mask in 1..=u8::MAX,
    ) {
        let mut message = encode_message(&chain(n, 1, EventHash::GENESIS));
        let i = at.index(message.len());
        message[i] ^= mask;
        let err = decode_message(&message).expect_err("a flipped byte must not decode");
        if i == 0 {
            // The format byte: now an unknown format, or read as a single event.
            prop_assert!(!matches!(err, DecodeError::Group(_)), "{err}");
        } else {
            prop_assert!(matches!(err, DecodeError::HashMismatch { .. }), "byte {i}: {err}");
        }
    }
}

#[test]
fn a_group_of_fewer_than_two_events_is_refused() {
    let events = chain(1, 1, EventHash::GENESIS);
    assert!(group_error(&group_of(&[&events[0].bytes])).contains("1 events"));
    assert!(group_error(&group_of(&[])).contains("0 events"));
}

#[test]
fn a_group_mixing_aggregates_is_refused() {
    let ours = chain(1, 1, EventHash::GENESIS);
    let theirs = tagged(meta(2, ours[0].hash, 42, 1, 2), 2);
    let why = group_error(&group_of(&[&ours[0].bytes, &theirs.bytes]));
    assert!(why.contains("event 1 belongs to"), "{why}");
}

#[test]
fn a_group_mixing_commands_is_refused() {
    let first = chain(1, 1, EventHash::GENESIS);
    let other_command = tagged(meta(2, first[0].hash, 43, 0, 1), 1);
    let why = group_error(&group_of(&[&first[0].bytes, &other_command.bytes]));
    assert!(why.contains("another command"), "{why}");
}

#[test]
fn a_group_with_a_gap_or_a_broken_link_is_refused() {
    let events = chain(3, 1, EventHash::GENESIS);
    // Version 2 left out: 1 then 3.
    let why = group_error(&group_of(&[&events[0].bytes, &events[2].bytes]));
    assert!(why.contains("does not follow event 0"), "{why}");
    // Right version, wrong previous hash.
    let unlinked = tagged(meta(2, EventHash([7; 32]), 42, 1, 3), 1);
    let why = group_error(&group_of(&[&events[0].bytes, &unlinked.bytes]));
    assert!(why.contains("does not follow event 0"), "{why}");
}

#[test]
fn a_group_inside_a_group_is_refused() {
    let inner = encode_message(&chain(2, 1, EventHash::GENESIS));
    let events = chain(3, 1, EventHash::GENESIS);
    let why = group_error(&group_of(&[&events[0].bytes, &inner]));
    assert!(why.contains("event 1 is itself a group"), "{why}");
}

#[test]
fn bytes_after_the_events_of_a_group_are_refused() {
    let events = chain(2, 1, EventHash::GENESIS);
    let mut body = vec![MESSAGE_FORMAT_GROUP];
    let bodies: Vec<&[u8]> = events.iter().map(|e| e.bytes.as_slice()).collect();
    body = postcard::to_extend(&bodies, body).unwrap();
    body.push(0);
    assert!(matches!(
        decode_message(&rehash(body)),
        Err(DecodeError::TrailingBytes(1))
    ));
}

#[test]
fn a_corrupt_event_inside_a_rehashed_group_is_still_caught_by_its_own_hash() {
    let events = chain(2, 1, EventHash::GENESIS);
    let mut second = events[1].bytes.clone();
    let n = second.len();
    second[n / 2] ^= 1;
    assert!(matches!(
        decode_message(&group_of(&[&events[0].bytes, &second])),
        Err(DecodeError::HashMismatch { .. })
    ));
}
