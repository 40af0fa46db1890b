//! Golden message fixtures: how events are packed into stored messages is persisted too.
//!
//! `tests/fixtures/messages/` holds stored messages of the formats that are not a single
//! event body (those are the event fixtures): `group.v2.<suffix>.bin` is a group (format
//! 2) of one command's events on one aggregate. A fixture is written once from its sample
//! (missing files only, with `CRM_WRITE_MISSING_FIXTURES=1`), committed, and never
//! rewritten. These tests prove that every message fixture still decodes to its sample,
//! that the current encoder still writes it byte for byte, and that every single-event
//! fixture reads through the message reader as that one event.

use std::fs;
use std::path::{Path, PathBuf};

use crm_domain::{
    Acquisition, Actor, CommandId, ConsentChannel, CustomerEvent, CustomerId, CustomerRegistered,
    DomainEvent, Profile, Timestamp,
};
use crm_events::{
    EventHash, EventMeta, MESSAGE_FORMAT_GROUP, decode, decode_message, encode, encode_message,
};
use uuid::Uuid;

const WRITE_MISSING: &str = "CRM_WRITE_MISSING_FIXTURES";

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(kind)
}

/// A customer signing up on the web shop: registration, e-mail consent and a tag, one
/// command, one message. NEVER edit it once its fixture is committed.
fn registration_group() -> Vec<(EventMeta, DomainEvent)> {
    let customer = CustomerId(Uuid::from_u128(0x019a_6b10_2c3d_7e4f_8a9b_0c1d_2e3f_4a5b));
    let command = CommandId(Uuid::from_u128(0x019a_6b10_ff00_7000_9000_0000_0000_0001));
    let occurred_at = Timestamp::from_micros(1_763_290_000_000_000);
    let events = vec![
        DomainEvent::Customer(
            customer,
            CustomerEvent::Registered(CustomerRegistered {
                profile: Profile {
                    given_name: "Sofia".into(),
                    family_name: "Almeida".into(),
                    emails: vec!["sofia.almeida@example.pt".into()],
                    phones: vec![],
                    address: None,
                    language: Some("pt-PT".into()),
                    country: Some("PT".into()),
                    external_ids: vec![],
                },
                acquisition: Some(Acquisition {
                    source: "web".into(),
                    medium: "organic".into(),
                    campaign: None,
                }),
                owner: None,
                team: None,
                lead: None,
            }),
        ),
        DomainEvent::Customer(
            customer,
            CustomerEvent::ConsentChanged {
                channel: ConsentChannel::Email,
                granted: true,
                source: "signup-form".into(),
            },
        ),
        DomainEvent::Customer(
            customer,
            CustomerEvent::Tagged {
                tag: "newsletter".into(),
            },
        ),
    ];
    let mut prev_hash = EventHash::GENESIS;
    let size = u16::try_from(events.len()).unwrap();
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let n = u16::try_from(i).unwrap();
            let meta = EventMeta {
                event_id: Uuid::from_u128(0x019a_6b10_0000_7000_8000_0000_0000_0000 + i as u128),
                version: u64::from(n) + 1,
                occurred_at,
                recorded_at: Timestamp::from_micros(occurred_at.as_micros() + 900),
                actor: Actor::Service("web-shop".into()),
                command_id: command,
                correlation_id: command.0,
                causation_id: None,
                commit_index: n,
                commit_size: size,
                prev_hash,
            };
            prev_hash = encode(&meta, &event).hash;
            (meta, event)
        })
        .collect()
}

fn samples() -> Vec<(&'static str, Vec<(EventMeta, DomainEvent)>)> {
    vec![("group.v2.registration.bin", registration_group())]
}

fn encode_sample(events: &[(EventMeta, DomainEvent)]) -> Vec<u8> {
    let encoded: Vec<_> = events.iter().map(|(m, e)| encode(m, e)).collect();
    encode_message(&encoded)
}

fn read_or_write_missing(name: &str, sample: &[(EventMeta, DomainEvent)]) -> Vec<u8> {
    // Tests run in parallel: one at a time may find a fixture missing and write it.
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = WRITING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = dir("messages").join(name);
    match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var(WRITE_MISSING).as_deref() == Ok("1"),
                "no golden message fixture {}: write it once with \
                 `CRM_WRITE_MISSING_FIXTURES=1 cargo xtask test -- message_fixtures` and commit it",
                path.display()
            );
            let bytes = encode_sample(sample);
            fs::create_dir_all(dir("messages")).unwrap();
            fs::write(&path, &bytes).unwrap();
            bytes
        }
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

#[test]
fn every_message_fixture_decodes_to_its_sample() {
    for (name, sample) in samples() {
        let bytes = read_or_write_missing(name, &sample);
        assert_eq!(bytes[0], MESSAGE_FORMAT_GROUP, "{name}");
        let decoded = decode_message(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.len(), sample.len(), "{name}");
        for (env, (meta, event)) in decoded.iter().zip(&sample) {
            assert_eq!(&env.meta, meta, "{name}");
            assert_eq!(&env.event, event, "{name}");
        }
    }
}

#[test]
fn current_encoding_of_the_message_samples_is_byte_identical_to_the_fixtures() {
    for (name, sample) in samples() {
        let fixture = read_or_write_missing(name, &sample);
        assert!(
            encode_sample(&sample) == fixture,
            "{name}: the grouped message format changed. Never rewrite a fixture: add a new \
             message format byte, keep format {MESSAGE_FORMAT_GROUP} decoding, and add a \
             fixture for the new one"
        );
    }
}

#[test]
fn every_message_fixture_file_ever_written_still_decodes() {
    let entries = fs::read_dir(dir("messages")).expect("tests/fixtures/messages exists");
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let bytes = fs::read(&path).unwrap();
        let events = decode_message(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(events.len() >= 2, "{}", path.display());
        n += 1;
    }
    assert!(n >= 1, "no message fixtures");
}

#[test]
fn every_single_event_fixture_reads_through_the_message_reader_as_that_event() {
    let mut n = 0;
    for entry in fs::read_dir(dir("events")).expect("tests/fixtures/events exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let bytes = fs::read(&path).unwrap();
        let one = decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            decode_message(&bytes).unwrap(),
            vec![one],
            "{}",
            path.display()
        );
        n += 1;
    }
    assert!(n > 30, "only {n} event fixtures found");
}

/// The golden fixture at `path`; written from `make` only when it is missing and
/// `CRM_WRITE_MISSING_FIXTURES=1` (then committed, and never rewritten).
fn golden(path: &Path, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var(WRITE_MISSING).as_deref() == Ok("1"),
                "no golden fixture {}: write it once with CRM_WRITE_MISSING_FIXTURES=1 and commit it",
                path.display()
            );
            let bytes = make();
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, &bytes).unwrap();
            bytes
        }
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

/// An operator sets aside a message a test harness published onto a customer's subject.
/// NEVER edit it once its fixture is committed.
fn quarantine_sample() -> crm_events::quarantine::Quarantine {
    crm_events::quarantine::Quarantine {
        seq: 73_104,
        subject: "crm.v1.customer.019a6b102c3d7e4f8a9b0c1d2e3f4a5b".into(),
        payload_sha256: crm_events::quarantine::payload_digest(b"{\"hello\":\"world\"}"),
        reason: "published by a load-test harness pointed at production".into(),
        actor: Actor::User("ops-oncall".into()),
        command_id: CommandId(Uuid::from_u128(0x019a_6b11_ff00_7000_9000_0000_0000_0001)),
        recorded_at: Timestamp::from_micros(1_763_300_000_000_000),
        version: 1,
        prev_hash: EventHash::GENESIS,
    }
}

/// The quarantine log's format (3) lives beside the event formats, in
/// `tests/fixtures/quarantine/`.
#[test]
fn the_quarantine_record_fixture_decodes_and_encodes_byte_for_byte() {
    use crm_events::quarantine::{QUARANTINE_FORMAT_V1, decode_quarantine, encode_quarantine};
    let path = dir("quarantine").join("quarantine.v1.bin");
    let sample = quarantine_sample();
    let fixture = golden(&path, || encode_quarantine(&sample).bytes);
    assert_eq!(fixture[0], QUARANTINE_FORMAT_V1);
    let (decoded, hash) = decode_quarantine(&fixture).unwrap();
    assert_eq!(decoded, sample);
    assert_eq!(hash.0[..], fixture[fixture.len() - 32..]);
    assert!(
        encode_quarantine(&sample).bytes == fixture,
        "the quarantine record format changed. Never rewrite a fixture: add a new format \
         byte, keep format {QUARANTINE_FORMAT_V1} decoding, and add a fixture for the new one"
    );
}

/// A notary's anchor, signed with a fixed test key (Ed25519 signatures are
/// deterministic, so the bytes are too). NEVER edit it once its fixture is committed.
fn anchor_sample() -> (crm_events::anchor::Anchor, crm_events::anchor::SigningKey) {
    let key = crm_events::anchor::SigningKey::from_bytes(&[7; 32]);
    let anchor = crm_events::anchor::Anchor {
        stream: "CRM_EVENTS".into(),
        position: 1_048_576,
        messages: 1_048_570,
        digest: [0xd1; 32],
        subjects: 120_345,
        heads: [0x4e; 32],
        signed_at: Timestamp::from_micros(1_764_900_000_000_000),
        public_key: key.verifying_key().to_bytes(),
    };
    (anchor, key)
}

/// The notary's anchor format (4), in `tests/fixtures/anchors/`: it still decodes and
/// its signature still verifies.
#[test]
fn the_anchor_fixture_decodes_verifies_and_signs_byte_for_byte() {
    use crm_events::anchor::{ANCHOR_FORMAT_V1, sign_anchor, verify_anchor};
    let path = dir("anchors").join("anchor.v1.bin");
    let (sample, key) = anchor_sample();
    let fixture = golden(&path, || sign_anchor(&sample, &key));
    assert_eq!(fixture[0], ANCHOR_FORMAT_V1);
    let decoded = verify_anchor(&fixture, &[key.verifying_key()]).unwrap();
    assert_eq!(decoded, sample);
    assert!(
        sign_anchor(&sample, &key) == fixture,
        "the anchor format changed. Never rewrite a fixture: add a new format byte, keep \
         format {ANCHOR_FORMAT_V1} decoding, and add a fixture for the new one"
    );
}
