//! Helpers shared by the crm-audit tests.
#![allow(dead_code)]

use std::process::Command as Process;

use crm_domain::{Actor, Command, CustomerId, Profile, RegisterCustomer};
use crm_store::{CommandHandler, CommandMeta, EventLog, HandlerConfig, LogConfig};
use crm_testkit::NatsServer;
use uuid::Uuid;

pub async fn handler(server: &NatsServer) -> CommandHandler {
    let client = async_nats::connect(server.url()).await.unwrap();
    let log = EventLog::open(client, LogConfig::default()).await.unwrap();
    CommandHandler::new(log, HandlerConfig::default())
}

pub fn meta() -> CommandMeta {
    CommandMeta::new(Actor::User("alice".into()))
}

pub fn register(id: CustomerId, family: &str) -> Command {
    Command::RegisterCustomer(RegisterCustomer {
        customer_id: id,
        profile: Profile {
            given_name: "Ada".into(),
            family_name: family.into(),
            emails: vec![format!("{}@example.com", family.to_lowercase())],
            ..Profile::default()
        },
        acquisition: None,
        owner: None,
        team: None,
        consents: vec![],
        consent_source: String::new(),
        tags: vec![],
    })
}

pub fn tag(customer_id: CustomerId, tag: &str) -> Command {
    Command::TagCustomer {
        customer_id,
        tag: tag.into(),
    }
}

/// Runs `crm-audit` with `args` against `server`; its exit code and stdout.
pub fn audit(server: &NatsServer, args: &[&str]) -> (i32, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_crm-audit"))
        .arg("--nats-url")
        .arg(server.url())
        .args(args)
        .output()
        .expect("run crm-audit");
    assert!(
        out.status.code().is_some(),
        "crm-audit died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

pub fn verify_json(server: &NatsServer) -> (i32, serde_json::Value) {
    let (code, out) = audit(server, &["--json", "verify"]);
    (code, serde_json::from_str(&out).expect("a JSON report"))
}

pub async fn write(h: &CommandHandler, n: usize) -> Vec<CustomerId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = CustomerId(Uuid::now_v7());
        h.handle(&register(id, &format!("Customer{i}")), &meta())
            .await
            .unwrap();
        h.handle(&tag(id, "vip"), &meta()).await.unwrap();
        ids.push(id);
    }
    ids
}

pub async fn publish_foreign(server: &NatsServer, customer: CustomerId) -> u64 {
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let subject = LogConfig::default().subject(crm_domain::AggregateRef::Customer(customer));
    js.publish(subject, b"{\"hello\":\"world\"}".to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}
