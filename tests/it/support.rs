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

/// Every message stored for a customer, in order.
pub async fn customer_messages(log: &EventLog, id: CustomerId) -> Vec<StoredMessage> {
    let subject = log.config().subject(crm_domain::AggregateRef::Customer(id));
    log.read_subject(&subject, 0).await.expect("read subject")
}
