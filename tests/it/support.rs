//! Helpers shared by the integration tests.

use std::time::Duration;

use crm_domain::{Actor, Command, CommandId, CustomerId, Profile, RegisterCustomer};
use crm_store::{CommandHandler, CommandMeta, EventLog, HandlerConfig, LogConfig, StoredMessage};
use crm_testkit::NatsServer;
use uuid::Uuid;

pub async fn connect(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .expect("connect to nats-server")
}

pub async fn open_log(server: &NatsServer, cfg: LogConfig) -> EventLog {
    EventLog::open(connect(&server.url()).await, cfg)
        .await
        .expect("open event log")
}

/// A handler on its own connection and with its own (empty) cache, as another
/// process would have.
pub async fn handler(server: &NatsServer) -> CommandHandler {
    handler_with(server, LogConfig::default()).await
}

pub async fn handler_with(server: &NatsServer, cfg: LogConfig) -> CommandHandler {
    CommandHandler::new(open_log(server, cfg).await, HandlerConfig::default())
}

pub fn meta() -> CommandMeta {
    CommandMeta::new(Actor::Service("it-tests".into()))
}

pub fn meta_with_id(id: CommandId) -> CommandMeta {
    CommandMeta {
        command_id: id,
        ..meta()
    }
}

pub fn new_customer_id() -> CustomerId {
    CustomerId(Uuid::now_v7())
}

pub fn register(id: CustomerId) -> Command {
    Command::RegisterCustomer(RegisterCustomer {
        customer_id: id,
        profile: Profile {
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            emails: vec!["ada@example.com".into()],
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

/// Every message stored for a customer, in order, as the stream's leader has them.
///
/// The read is a direct get, which any replica may answer; in a cluster a follower can
/// be behind the leader by the messages it has not applied yet (seconds after a leader
/// was killed on a loaded machine). So the read is repeated until it reaches the last
/// sequence the leader holds for the subject: a message the leader does not have is
/// still reported missing, a follower's lag is not.
pub async fn customer_messages(log: &EventLog, id: CustomerId) -> Vec<StoredMessage> {
    let subject = log.config().subject(crm_domain::AggregateRef::Customer(id));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let messages = log.read_subject(&subject, 0).await.expect("read subject");
        if !log.replicated() {
            return messages;
        }
        let read_to = messages.last().map_or(0, |m| m.seq);
        match log.leader_last_seq(&subject).await {
            Ok(leader) if read_to >= leader => return messages,
            Ok(leader) => eprintln!("read {subject} to {read_to}, the leader has {leader}"),
            Err(e) => eprintln!("the leader's last sequence on {subject}: {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no replica answered {subject} up to the leader's last sequence within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
