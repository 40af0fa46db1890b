//! The notary's signed anchors against a real nats-server: `crm-audit verify` checks
//! every anchor with only the public key; an auditor who kept an anchor detects a tail
//! cut off the stream, and a history rewritten and re-hashed (every chain valid) in a
//! stream recreated from scratch; the notary itself refuses to go on over such a stream.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use crm_events::anchor::SigningKey;
use crm_server::notary::{NotaryConfig, NotaryError, NotaryStats, public_key_hex, run};
use crm_store::LogConfig;
use crm_testkit::NatsServer;
use futures::StreamExt;
use support::*;

async fn js(server: &NatsServer) -> jetstream::Context {
    jetstream::new(async_nats::connect(server.url()).await.unwrap())
}

fn config() -> NotaryConfig {
    let log = LogConfig::default();
    NotaryConfig {
        stream: log.stream.clone(),
        scheme: log.scheme(),
        every_messages: 4,
        every: Duration::from_millis(300),
    }
}

/// Starts a notary on `server` with `key`; its task and progress.
async fn notary(
    server: &NatsServer,
    key: &SigningKey,
) -> (
    tokio::task::JoinHandle<Result<(), NotaryError>>,
    Arc<NotaryStats>,
) {
    let stats = Arc::new(NotaryStats::default());
    let task = tokio::spawn(run(
        key.clone(),
        config(),
        js(server).await,
        js(server).await,
        Arc::clone(&stats),
    ));
    (task, stats)
}

/// Waits until an anchor of `stats`' notary covers the stream's last non-anchor message.
async fn anchored(server: &NatsServer, stats: &NotaryStats) -> u64 {
    let anchors = LogConfig::default().scheme().anchors();
    for _ in 0..200 {
        let messages = raw_messages(server).await;
        let last = messages
            .iter()
            .rev()
            .find(|(_, s, _)| *s != anchors)
            .map_or(0, |m| m.0);
        if last > 0 && stats.anchored_position.load(Ordering::Relaxed) >= last {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the notary did not anchor the stream's last message within 20 s");
}

/// Every message of the stream: position, subject, exact bytes.
async fn raw_messages(server: &NatsServer) -> Vec<(u64, String, bytes::Bytes)> {
    let mut stream = js(server)
        .await
        .get_stream(&LogConfig::default().stream)
        .await
        .unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    let mut messages = stream
        .create_consumer(OrderedConfig::default())
        .await
        .unwrap()
        .messages()
        .await
        .unwrap();
    while let Some(m) = messages.next().await {
        let m = m.unwrap();
        let seq = m.info().unwrap().stream_sequence;
        out.push((seq, m.subject.to_string(), m.payload.clone()));
        if seq >= last {
            break;
        }
    }
    out
}

/// Deletes the stream and creates it empty again, as someone holding the server (or
/// its store files) could.
async fn recreate_stream(server: &NatsServer) {
    js(server)
        .await
        .delete_stream(&LogConfig::default().stream)
        .await
        .unwrap();
    handler(server).await;
}

async fn republish(server: &NatsServer, messages: &[(u64, String, bytes::Bytes)]) {
    let js = js(server).await;
    for (seq, subject, payload) in messages {
        let ack = js
            .publish(subject.clone(), payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.sequence, *seq, "re-published at its old position");
    }
}

fn findings(report: &serde_json::Value) -> Vec<(String, u64, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["seq"].as_u64().unwrap(),
                f["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn verify_with(server: &NatsServer, args: &[&str]) -> (i32, serde_json::Value) {
    let (code, out) = audit(server, &[&["--json", "verify"], args].concat());
    (code, serde_json::from_str(&out).expect("a JSON report"))
}

#[tokio::test]
async fn every_anchor_verifies_with_the_public_key_and_not_with_another() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    write(&h, 3).await;
    let key = SigningKey::from_bytes(&[1; 32]);
    let (task, stats) = notary(&server, &key).await;
    write(&h, 4).await;
    let last = anchored(&server, &stats).await;
    let pubkey = public_key_hex(&key);
    let (code, report) = verify_with(&server, &["--notary-key", &pubkey]);
    assert_eq!(code, 0, "{report:#}");
    let anchors = report["anchors"].as_u64().unwrap();
    assert!(anchors >= 3, "14 messages, one anchor per 4: {report:#}");
    assert_eq!(report["anchors_verified"].as_u64().unwrap(), anchors);
    assert_eq!(report["anchored_position"].as_u64().unwrap(), last);
    // The same anchors under a key the auditor does not trust: every one is a finding.
    let other = public_key_hex(&SigningKey::from_bytes(&[2; 32]));
    let (code, report) = verify_with(&server, &["--notary-key", &other]);
    assert_eq!(code, 1);
    let found = findings(&report);
    assert_eq!(found.len() as u64, anchors, "{found:?}");
    assert!(
        found
            .iter()
            .all(|(kind, _, reason)| kind == "anchor" && reason.contains("not a trusted")),
        "{found:?}"
    );
    // Without a key the anchors are counted, not checked, and nothing is found.
    let (code, report) = verify_with(&server, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["anchors_verified"].as_u64().unwrap(), 0);
    task.abort();
}

#[tokio::test]
async fn a_kept_anchor_detects_a_cut_tail_and_a_rewritten_rehashed_history() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let h = handler(&server).await;
    let key = SigningKey::from_bytes(&[3; 32]);
    let (task, stats) = notary(&server, &key).await;
    write(&h, 6).await;
    let last = anchored(&server, &stats).await;
    task.abort();
    let _ = task.await;
    let pubkey = public_key_hex(&key);
    let kept = dir.path().join("kept.json");
    let (code, _) = audit(
        &server,
        &[
            "anchor",
            "--notary-key",
            &pubkey,
            "--out",
            kept.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    let kept_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    assert_eq!(kept_json["position"].as_u64().unwrap(), last);
    let original = raw_messages(&server).await;
    let with_kept = [
        "--notary-key",
        pubkey.as_str(),
        "--anchor",
        kept.to_str().unwrap(),
    ];
    let (code, report) = verify_with(&server, &with_kept);
    assert_eq!(code, 0, "{report:#}");

    // The tail cut off: the first messages re-published exactly, the rest gone. Every
    // chain is still a valid prefix and every anchor left in the stream still holds;
    // only the kept anchor knows more.
    recreate_stream(&server).await;
    let cut = usize::try_from(last).unwrap() - 3;
    republish(&server, &original[..cut]).await;
    let (code, report) = verify_with(&server, &with_kept);
    assert_eq!(code, 1, "{report:#}");
    let found = findings(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    let (kind, seq, reason) = &found[0];
    assert_eq!((kind.as_str(), *seq), ("anchor", 0));
    assert!(
        reason.contains(&format!("ends at position {cut}")),
        "{reason}"
    );

    // A rewritten history: the stream recreated and written again by the service's own
    // code (one customer's name changed), so every hash chain is valid; the notary's old
    // anchors copied in after it. The chains verify; no anchor does.
    recreate_stream(&server).await;
    let h = handler(&server).await;
    let ids = write(&h, 6).await;
    h.handle(&tag(ids[0], "rewritten"), &meta()).await.unwrap();
    let anchors_subject = LogConfig::default().scheme().anchors();
    let js = js(&server).await;
    let mut copied = 0;
    for (_, subject, payload) in original.iter().filter(|m| m.1 == anchors_subject) {
        js.publish(subject.clone(), payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
        copied += 1;
    }
    let (code, report) = verify_with(&server, &with_kept);
    assert_eq!(code, 1, "{report:#}");
    let found = findings(&report);
    assert!(
        found.iter().all(|(kind, _, _)| kind == "anchor"),
        "only the anchors can tell: {found:?}"
    );
    assert_eq!(
        found.len(),
        copied + 1,
        "every copied anchor and the kept one"
    );
    assert!(
        found
            .iter()
            .any(|(_, seq, reason)| *seq == 0 && reason.contains("digest differs")),
        "{found:?}"
    );

    // The notary, started over the rewritten stream with its key, finds its own
    // anchors no longer hold and stops without signing anything.
    let (task, stats) = notary(&server, &key).await;
    let outcome = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the notary stops")
        .unwrap();
    assert!(
        matches!(outcome, Err(NotaryError::Tampered { .. })),
        "{outcome:?}"
    );
    assert_eq!(stats.anchors_written.load(Ordering::Relaxed), 0);
    assert!(stats.disagreements.load(Ordering::Relaxed) >= 1);
}
