//! Every text field of every event is classified as personal or not in
//! `crm_events::personal`, and the list names no field that does not exist: 20,000
//! arbitrary events (every type, options both set and not, lists both empty and not;
//! a fixed seed) rendered as their payload JSON, every text leaf's path looked up.

use std::collections::BTreeSet;

use crm_domain::arb::arb_domain_event;
use crm_events::payload_json;
use crm_events::personal::{Class, TEXT_FIELDS, class_of, personal_text_mut};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

/// The text leaves of a payload rendered as JSON: `a.b`, `lines[].sku`.
fn text_paths(v: &serde_json::Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::String(_) => {
            out.insert(path.to_owned());
        }
        serde_json::Value::Array(items) => {
            for i in items {
                text_paths(i, &format!("{path}[]"), out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (k, f) in fields {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                text_paths(f, &p, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_text_field_of_every_event_is_classified_and_every_listed_field_exists() {
    let mut runner = TestRunner::deterministic();
    let strategy = arb_domain_event();
    let mut seen = BTreeSet::new();
    for _ in 0..20_000 {
        let e = strategy.new_tree(&mut runner).unwrap().current();
        let (event_type, _, json) = payload_json(&e);
        let mut paths = BTreeSet::new();
        text_paths(&json, "", &mut paths);
        for p in paths {
            seen.insert((event_type, p));
        }
    }
    let unclassified: Vec<_> = seen
        .iter()
        .filter(|(t, p)| class_of(t, p).is_none())
        .collect();
    assert!(
        unclassified.is_empty(),
        "text fields not classified in crm_events::personal::TEXT_FIELDS: {unclassified:?}"
    );
    let stale: Vec<_> = TEXT_FIELDS
        .iter()
        .filter(|(t, p, _)| !seen.contains(&(*t, (*p).to_owned())))
        .collect();
    assert!(stale.is_empty(), "listed fields no event has: {stale:?}");
}

/// The personal text leaves of a payload: (path, value), sorted.
fn personal_leaves(
    event_type: &str,
    v: &serde_json::Value,
    path: &str,
    out: &mut Vec<(String, String)>,
) {
    match v {
        serde_json::Value::String(s) if class_of(event_type, path) == Some(Class::Personal) => {
            out.push((path.to_owned(), s.clone()));
        }
        serde_json::Value::Array(items) => {
            for i in items {
                personal_leaves(event_type, i, &format!("{path}[]"), out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (k, f) in fields {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                personal_leaves(event_type, f, &p, out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_personal_text_of_an_event_is_what_the_list_calls_personal() {
    let mut runner = TestRunner::deterministic();
    let strategy = arb_domain_event();
    let mut checked = 0;
    for _ in 0..20_000 {
        let mut e = strategy.new_tree(&mut runner).unwrap().current();
        let (event_type, _, json) = payload_json(&e);
        if event_type.starts_with("campaign.") {
            assert!(personal_text_mut(&mut e).is_empty());
            continue;
        }
        let mut listed = Vec::new();
        personal_leaves(event_type, &json, "", &mut listed);
        listed.sort();
        let mut found: Vec<(String, String)> = personal_text_mut(&mut e)
            .into_iter()
            .map(|(p, v)| (p.to_owned(), v.clone()))
            .collect();
        found.sort();
        assert_eq!(found, listed, "{event_type}");
        checked += usize::from(!found.is_empty());
        // What it hands out is the event's own text: changing it changes the event.
        for (_, v) in personal_text_mut(&mut e) {
            v.push('!');
        }
        let (_, _, changed) = payload_json(&e);
        let mut after = Vec::new();
        personal_leaves(event_type, &changed, "", &mut after);
        assert!(after.iter().all(|(_, v)| v.ends_with('!')), "{event_type}");
    }
    assert!(checked > 5_000, "{checked} events with personal text");
}
