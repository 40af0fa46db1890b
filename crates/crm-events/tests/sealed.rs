//! Sealed personal text (crypto-shredding), for every event the domain can hold: sealed
//! payloads carry no personal text in the clear, open to exactly the original event with
//! the data subject's key, read as erased without it, and refuse another key or an
//! altered ciphertext.

use std::collections::BTreeSet;

use crm_domain::arb::arb_domain_event;
use crm_domain::{Actor, CommandId, DomainEvent, Timestamp};
use crm_events::personal::{Class, TEXT_FIELDS, personal_text_mut};
use crm_events::seal::{SEALED, is_sealed_type};
use crm_events::{
    EventHash, EventMeta, SealError, Sealing, decode, encode, encode_sealed, encode_sealed_with,
    schema_versions,
};
use proptest::prelude::*;
use uuid::Uuid;

const KEY: [u8; 32] = [0x5a; 32];
const OTHER_KEY: [u8; 32] = [0xa5; 32];

fn meta(n: u128) -> EventMeta {
    EventMeta {
        event_id: Uuid::from_u128(0x0199_0000_0000_7000_8000_0000_0000_0000 + n),
        version: 1,
        occurred_at: Timestamp::from_micros(1_700_000_000_000_000),
        recorded_at: Timestamp::from_micros(1_700_000_000_000_001),
        actor: Actor::User("agent".into()),
        command_id: CommandId(Uuid::from_u128(n + 7)),
        correlation_id: Uuid::from_u128(n + 8),
        causation_id: None,
        commit_index: 0,
        commit_size: 1,
        prev_hash: EventHash::GENESIS,
    }
}

/// Every non-empty personal text of `e`.
fn personal_values(e: &DomainEvent) -> Vec<String> {
    let mut e = e.clone();
    personal_text_mut(&mut e)
        .into_iter()
        .map(|(_, t)| t.clone())
        .filter(|t| t.len() >= 4)
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_sealed_event_opens_to_itself_and_reads_as_erased_without_its_key(
        e in arb_domain_event(), n in any::<u64>()
    ) {
        let m = meta(u128::from(n));
        let stored = encode_sealed(&m, &e, &KEY).unwrap();
        let mut env = decode(&stored.bytes).unwrap();
        prop_assert_eq!(env.hash, stored.hash);
        let current = schema_versions().iter().find(|(t, _)| *t == e.event_type()).unwrap().1;
        prop_assert_eq!(env.schema_version, current);
        if !is_sealed_type(e.event_type()) {
            prop_assert_eq!(&env.sealing, &Sealing::Plain);
            prop_assert_eq!(&env.event, &e);
            return Ok(());
        }
        prop_assert!(env.is_sealed());
        for v in personal_values(&e) {
            prop_assert!(!contains(&stored.bytes, v.as_bytes()), "{v:?} in the clear");
        }
        let mut erased = env.clone();
        // Another key opens nothing and leaves the event sealed.
        if !matches!(&env.sealing, Sealing::Sealed(s) if s.fields.is_empty()) {
            let err = env.unseal(Some(&OTHER_KEY)).unwrap_err();
            prop_assert!(matches!(err, SealError::DoesNotOpen { index: 0, .. }), "{err}");
            prop_assert!(env.is_sealed());
        }
        env.unseal(Some(&KEY)).unwrap();
        prop_assert_eq!(&env.sealing, &Sealing::Opened);
        prop_assert_eq!(&env.event, &e);
        erased.unseal(None).unwrap();
        prop_assert_eq!(&erased.sealing, &Sealing::Erased);
        let mut blank = e;
        for (_, t) in personal_text_mut(&mut blank) {
            t.clear();
        }
        prop_assert_eq!(&erased.event, &blank);
    }
}

#[test]
fn sealed_types_are_exactly_the_subject_events_with_personal_text() {
    let personal: BTreeSet<&str> = TEXT_FIELDS
        .iter()
        .filter(|(t, _, c)| *c == Class::Personal && !t.starts_with("campaign."))
        .map(|(t, _, _)| *t)
        .collect();
    let sealed: BTreeSet<&str> = SEALED.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(sealed, personal);
    for (t, _, v) in SEALED {
        let current = schema_versions().iter().find(|(c, _)| c == t).unwrap().1;
        assert_eq!(current, *v, "{t} is written sealed");
    }
}

fn registration() -> DomainEvent {
    use crm_domain::{CustomerEvent, CustomerId, CustomerRegistered, Profile};
    DomainEvent::Customer(
        CustomerId(Uuid::from_u128(42)),
        CustomerEvent::Registered(CustomerRegistered {
            profile: Profile {
                given_name: "Ingrid".into(),
                family_name: "Svensson-Okafor".into(),
                emails: vec!["ingrid.okafor@example.se".into()],
                phones: vec!["+46701234567".into()],
                ..Profile::default()
            },
            acquisition: None,
            owner: Some("sales-1".into()),
            team: None,
            lead: None,
        }),
    )
}

#[test]
fn an_altered_ciphertext_or_one_moved_to_another_event_does_not_open() {
    let e = registration();
    let mut counter = 0u8;
    let mut nonces = || {
        counter += 1;
        Ok([counter; 24])
    };
    let a = encode_sealed_with(&meta(1), &e, &KEY, &mut nonces).unwrap();
    let b = encode_sealed_with(&meta(2), &e, &KEY, &mut nonces).unwrap();
    let (Sealing::Sealed(seal_a), mut env_b) =
        (decode(&a.bytes).unwrap().sealing, decode(&b.bytes).unwrap())
    else {
        panic!("sealed");
    };
    // a's ciphertexts in b's envelope: bound to a's event id.
    env_b.sealing = Sealing::Sealed(seal_a.clone());
    assert!(matches!(
        env_b.unseal(Some(&KEY)),
        Err(SealError::DoesNotOpen {
            index: 0,
            path: "profile.given_name"
        })
    ));
    // One flipped bit of a ciphertext.
    let mut env_a = decode(&a.bytes).unwrap();
    let mut altered = seal_a;
    altered.fields[2].ciphertext[0] ^= 1;
    env_a.sealing = Sealing::Sealed(altered);
    assert!(matches!(
        env_a.unseal(Some(&KEY)),
        Err(SealError::DoesNotOpen {
            index: 2,
            path: "profile.emails[]"
        })
    ));
    // Plain encoding still writes the pre-sealing version, which decodes in the clear.
    let plain = decode(&encode(&meta(3), &e).bytes).unwrap();
    assert_eq!((plain.schema_version, &plain.sealing), (1, &Sealing::Plain));
    assert_eq!(plain.event, e);
}
