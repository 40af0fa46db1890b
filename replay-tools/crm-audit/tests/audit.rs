//! `crm-audit` against a real nats-server: the stream the service writes verifies clean;
//! a foreign message, a quarantined position and a byte flipped in the server's store
//! files are reported at their position (exit code 1); a customer's history holds every
//! event with its envelope, the lead they came from and the campaign sends naming them.
mod support;

use crm_domain::{
    CampaignCreated, CampaignId, Channel, Command, ConsentChannel, ConvertInto, CustomerId,
    LeadCaptured, LeadId,
};
use crm_store::{EventLog, LogConfig};
use crm_testkit::NatsServer;
use support::*;
use uuid::Uuid;

#[tokio::test]
async fn a_clean_stream_verifies_and_a_foreign_message_is_reported_until_quarantined() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let ids = write(&h, 20).await;
    let (code, report) = verify_json(&server);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["messages"], 40);
    assert_eq!(report["events"], 40);
    assert_eq!(report["aggregates"], 20);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);

    let foreign = publish_foreign(&server, ids[3]).await;
    let (code, report) = verify_json(&server);
    assert_eq!(code, 1, "a finding fails the run");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["kind"], "undecodable");
    assert_eq!(findings[0]["seq"], foreign);

    // Set aside, the position is no finding; the quarantine log verifies too.
    h.quarantine(foreign, "a load-test harness", &meta())
        .await
        .unwrap();
    h.handle(&tag(ids[3], "gold"), &meta()).await.unwrap();
    let (code, report) = verify_json(&server);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["quarantined"], 1);
    assert_eq!(report["quarantine_records"], 1);
    assert_eq!(report["events"], 41);

    // The customer's history leaves the quarantined position out.
    let (code, out) = audit(
        &server,
        &["--json", "history", "--customer", &ids[3].0.to_string()],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");

    // One aggregate's chain alone.
    let (code, out) = audit(
        &server,
        &["verify", "--aggregate", &format!("customer:{}", ids[5].0)],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified 2 messages"), "{out}");
}

#[tokio::test]
async fn an_event_published_twice_or_out_of_its_chain_is_reported_at_its_position() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let ids = write(&h, 3).await;
    // Someone with the writer's credentials copies a stored message of customer 0 onto
    // the stream again, and another onto customer 1's subject.
    let log = EventLog::open(
        async_nats::connect(server.url()).await.unwrap(),
        LogConfig::default(),
    )
    .await
    .unwrap();
    let subject =
        |c: CustomerId| LogConfig::default().subject(crm_domain::AggregateRef::Customer(c));
    let stored = log.read_subject(&subject(ids[0]), 0).await.unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let replayed = js
        .publish(subject(ids[0]), stored[1].payload.clone())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let moved = js
        .publish(subject(ids[1]), stored[0].payload.clone())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let (code, report) = verify_json(&server);
    assert_eq!(code, 1);
    let kinds: Vec<(String, u64)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("version_gap".to_owned(), replayed),
            ("duplicate_command".to_owned(), replayed),
            ("wrong_subject".to_owned(), moved),
        ]
    );
}

/// The position of the first message holding `needle`, and its offset in the block
/// file it is stored in.
fn find_in_store(store: &std::path::Path, needle: &[u8]) -> (std::path::PathBuf, usize) {
    let mut stack = vec![store.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "blk") {
                let bytes = std::fs::read(&path).unwrap();
                if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                    return (path, at);
                }
            }
        }
    }
    panic!("{} not found in the store", String::from_utf8_lossy(needle));
}

#[tokio::test]
async fn a_byte_flipped_in_the_servers_store_files_is_reported_at_its_position() {
    let mut server = NatsServer::start();
    let h = handler(&server).await;
    write(&h, 5).await;
    let victim = CustomerId(Uuid::now_v7());
    let registered = h
        .handle(&register(victim, "Zwicky"), &meta())
        .await
        .unwrap();
    write(&h, 5).await;
    drop(h);
    server.stop();
    let (file, at) = find_in_store(&server.store_dir(), b"Zwicky");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[at] ^= 0x20; // "zwicky": a plausible edit, not garbage
    std::fs::write(&file, bytes).unwrap();
    server.restart();

    let (code, report) = verify_json(&server);
    assert_eq!(code, 1, "{report}");
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["seq"] == registered.position),
        "expected a finding at position {}: {findings:?}",
        registered.position
    );
}

#[tokio::test]
async fn a_customers_history_holds_every_event_its_lead_and_the_sends_naming_them() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let (lead, customer, campaign) = (
        LeadId(Uuid::now_v7()),
        CustomerId(Uuid::now_v7()),
        CampaignId(Uuid::now_v7()),
    );
    let other = write(&h, 2).await;
    for c in [
        Command::CreateLead {
            lead_id: lead,
            lead: LeadCaptured {
                source: "web-form".into(),
                campaign: None,
                given_name: "Grace".into(),
                family_name: "Hopper".into(),
                email: Some("grace@example.com".into()),
                phone: None,
                interest: "kitchen".into(),
            },
        },
        Command::ContactLead {
            lead_id: lead,
            channel: Channel::Phone,
            agent: None,
        },
        Command::QualifyLead {
            lead_id: lead,
            note: "budget confirmed".into(),
        },
        Command::ConvertLead {
            lead_id: lead,
            into: ConvertInto::NewCustomer(customer),
            opportunity: None,
        },
        tag(customer, "vip"),
        Command::SetConsent {
            customer_id: customer,
            channel: ConsentChannel::Email,
            granted: true,
            source: "web".into(),
        },
        Command::CreateCampaign {
            campaign_id: campaign,
            campaign: CampaignCreated {
                name: "Spring".into(),
                channel: Channel::Email,
                segment: "all".into(),
                budget: None,
            },
        },
        Command::SendCampaign {
            campaign_id: campaign,
            recipients: vec![other[0], customer],
        },
        tag(other[1], "gold"),
    ] {
        h.handle(&c, &meta()).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("history.jsonl");
    let (code, out) = audit(
        &server,
        &[
            "--json",
            "history",
            "--customer",
            &customer.0.to_string(),
            "--jsonl",
            jsonl.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let entries: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["concerns"].as_str().unwrap(),
                e["event_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("origin_lead", "lead.captured"),
            ("origin_lead", "lead.contacted"),
            ("origin_lead", "lead.qualified"),
            ("origin_lead", "lead.converted"),
            ("customer", "customer.registered"),
            ("customer", "customer.tagged"),
            ("customer", "customer.consent_changed"),
            ("campaign_send", "campaign.sent"),
        ]
    );
    let positions: Vec<u64> = entries
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(positions.is_sorted(), "stream order: {positions:?}");
    for e in &entries {
        assert_eq!(e["actor"], "user:alice");
        assert_eq!(e["hash"].as_str().unwrap().len(), 64);
        assert!(e["recorded_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(entries[4]["version"], 1);
    assert_eq!(entries[5]["version"], 2);
    assert!(
        entries[4]["event"].as_str().unwrap().contains("Grace"),
        "an auditor sees the personal data"
    );
    let file = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(file.lines().count(), 8);

    let (code, out) = audit(
        &server,
        &[
            "--json",
            "history",
            "--customer",
            &customer.0.to_string(),
            "--type",
            "customer.tagged",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
    let (code, _) = audit(
        &server,
        &["history", "--customer", &Uuid::now_v7().to_string()],
    );
    assert_ne!(code, 0, "an unknown customer is an error");
}

fn rfc3339_now() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    crm_proto::timestamp_to_proto(crm_domain::Timestamp(i64::try_from(micros).unwrap())).to_string()
}

#[tokio::test]
async fn as_of_and_diff_show_the_customer_at_each_moment_and_the_events_between() {
    let server = NatsServer::start();
    let h = handler(&server).await;
    let id = CustomerId(Uuid::now_v7());
    let before = rfc3339_now();
    h.handle(&register(id, "Hopper"), &meta()).await.unwrap();
    let registered = rfc3339_now();
    h.handle(&tag(id, "navy"), &meta()).await.unwrap();
    let tagged = rfc3339_now();
    let customer = id.0.to_string();
    let as_of = |at: &str| {
        let (code, out) = audit(
            &server,
            &["--json", "as-of", "--customer", &customer, "--at", at],
        );
        assert_eq!(code, 0, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let v = as_of(&before);
    assert_eq!(v["existed"], false);
    let v = as_of(&registered);
    assert_eq!(
        (v["existed"].as_bool(), v["events_applied"].as_u64()),
        (Some(true), Some(1))
    );
    assert!(v["view"].as_str().unwrap().contains("Hopper"));
    assert!(!v["view"].as_str().unwrap().contains("navy"));
    let v = as_of(&tagged);
    assert_eq!(v["events_applied"].as_u64(), Some(2));
    assert!(v["view"].as_str().unwrap().contains("navy"));
    let (code, out) = audit(
        &server,
        &[
            "--json",
            "diff",
            "--customer",
            &customer,
            "--from",
            &registered,
            "--to",
            &tagged,
        ],
    );
    assert_eq!(code, 0, "{out}");
    let diff: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fields: Vec<&str> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["version", "tags"]);
    let events = diff["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "customer.tagged");
    assert_eq!(events[0]["actor"], "user:alice");
}
