//! The quarantine beat: an operator publishes a message onto a customer's subject with
//! the service's own NATS writer credentials (the mistake the stream cannot undo: it
//! denies deletes); every command on that customer fails with DATA_LOSS; an admin
//! quarantines the position; commands work again and the 360° projection is rebuilt
//! without the message.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use crm_proto::v1::{
    self, admin_service_client::AdminServiceClient, command_service_client::CommandServiceClient,
    log_service_client::LogServiceClient,
};
use crm_server::nats_auth::{NatsUser, NatsUsers};
use tonic::transport::Channel;

use crate::show::{authed, build_state};

/// The embedded nats-server's URL, from the configuration `crm serve` wrote.
pub(crate) fn embedded_nats_url(data: &Path) -> anyhow::Result<String> {
    let conf = std::fs::read_to_string(data.join("nats").join("nats.conf"))?;
    let listen = conf
        .lines()
        .find_map(|l| l.strip_prefix("listen: "))
        .context("no listen line in nats.conf")?
        .trim_matches('"');
    Ok(format!("nats://{listen}"))
}

/// Publishes a stray message on `customer`'s subject as the embedded server's writer.
async fn publish_stray(data: &Path, customer: &str) -> anyhow::Result<u64> {
    let users = NatsUsers::load(&data.join("nats").join("users"))?;
    let client = users
        .connect_options(NatsUser::Writer)
        .connect(embedded_nats_url(data)?)
        .await?;
    let js = async_nats::jetstream::new(client);
    let id: uuid::Uuid = customer.parse()?;
    let subject = format!("crm.v1.customer.{}", id.simple());
    let ack = js
        .publish(subject, "{\"test\": \"load-test harness\"}".into())
        .await?
        .await?;
    Ok(ack.sequence)
}

async fn tag(channel: &Channel, token: &str, customer: &str) -> Result<u64, tonic::Status> {
    let mut c = CommandServiceClient::new(channel.clone());
    let request = authed(
        v1::TagCustomerRequest {
            customer_id: customer.into(),
            tag: "quarantine-demo".into(),
            ..Default::default()
        },
        token,
    )
    .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let reply = c.tag_customer(request).await?.into_inner();
    Ok(reply.aggregates.first().map_or(0, |a| a.version))
}

/// The tree `customer360` is served from.
async fn served(admin: &mut AdminServiceClient<Channel>, token: &str) -> anyhow::Result<String> {
    let list = admin
        .list_projections(authed(v1::ListProjectionsRequest {}, token)?)
        .await?
        .into_inner();
    Ok(list
        .projections
        .iter()
        .find(|p| p.name == "customer360")
        .and_then(|p| p.builds.first())
        .filter(|b| build_state(b) == "live")
        .map(|b| b.tree.clone())
        .unwrap_or_default())
}

pub(crate) async fn show(
    channel: Channel,
    token: &str,
    data: &Path,
    customer: &str,
) -> anyhow::Result<()> {
    println!("\n== A message that is not ours (LogService)");
    let mut admin = AdminServiceClient::new(channel.clone());
    let before = served(&mut admin, token).await?;
    let seq = publish_stray(data, customer).await?;
    println!(
        "  an operator's load-test harness, pointed at this service with its NATS writer credentials, publishes onto customer {customer}'s subject: stream position {seq}"
    );
    match tag(&channel, token, customer).await {
        Err(status) if status.code() == tonic::Code::DataLoss => {
            println!("  TagCustomer on that customer: DATA_LOSS");
            println!("    {}", status.message());
        }
        other => bail!("expected DATA_LOSS after the stray message, got {other:?}"),
    }
    let mut log = LogServiceClient::new(channel.clone());
    let reply = log
        .quarantine_position(authed(
            v1::QuarantinePositionRequest {
                sequence: seq,
                reason: "published by a load-test harness pointed at production".into(),
                command_id: String::new(),
            },
            token,
        )?)
        .await?
        .into_inner();
    let q = reply.quarantined.unwrap_or_default();
    println!(
        "  LogService.QuarantinePosition: position {} on {} (payload sha256 {}...) set aside by {}, recorded at position {}",
        q.sequence,
        q.subject,
        &q.payload_sha256[..16.min(q.payload_sha256.len())],
        q.actor,
        q.record_sequence
    );
    let version = tag(&channel, token, customer).await?;
    println!(
        "  TagCustomer again: applied, the customer's history goes on at version {version} (the stray message is skipped, the hash chain unbroken)"
    );
    let started = Instant::now();
    loop {
        let now = served(&mut admin, token).await?;
        if !now.is_empty() && now != before {
            println!(
                "  customer360 had dead-lettered the message: rebuilt beside the live build without it and served from {now} after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("customer360 was not rebuilt within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let listed = log
        .list_quarantined(authed(v1::ListQuarantinedRequest {}, token)?)
        .await?
        .into_inner();
    println!(
        "  LogService.ListQuarantined (admins and auditors): {} position(s)",
        listed.positions.len()
    );
    Ok(())
}
