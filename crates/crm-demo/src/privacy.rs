//! The privacy beat: subject access (everything held about one customer, decrypted, as
//! JSON), then the right to be forgotten: the customer (won through a lead) is
//! forgotten, their view keeps its figures and loses every personal field, commands on
//! them are refused, and no file of the event store or the key store holds their email.

use std::path::Path;

use anyhow::Context;
use crm_proto::v1::{
    self, audit_service_client::AuditServiceClient, command_service_client::CommandServiceClient,
    query_service_client::QueryServiceClient,
};
use tonic::transport::Channel;

use crate::show::authed;

async fn view(
    channel: &Channel,
    token: &str,
    customer: &str,
    min_position: u64,
) -> anyhow::Result<v1::Customer360> {
    Ok(QueryServiceClient::new(channel.clone())
        .get_customer360(authed(
            v1::GetCustomer360Request {
                customer_id: customer.into(),
                consistency: Some(v1::Consistency { min_position }),
                ..Default::default()
            },
            token,
        )?)
        .await?
        .into_inner())
}

async fn export(
    channel: &Channel,
    token: &str,
    customer: &str,
) -> anyhow::Result<v1::SubjectDataReply> {
    Ok(AuditServiceClient::new(channel.clone())
        .export_subject_data(authed(
            v1::ExportSubjectDataRequest {
                customer_id: customer.into(),
            },
            token,
        )?)
        .await?
        .into_inner())
}

pub(crate) async fn show(
    channel: Channel,
    admin_token: &str,
    data: &Path,
    customer: &str,
) -> anyhow::Result<()> {
    let before = view(&channel, admin_token, customer, 0).await?;
    let profile = before.profile.clone().unwrap_or_default();
    let email = profile.emails.first().cloned().unwrap_or_default();
    println!(
        "\n== Privacy: subject access and the right to be forgotten ({} {}, {customer})",
        profile.given_name, profile.family_name
    );
    let access = export(&channel, admin_token, customer).await?;
    let out = data.with_file_name(format!("subject-access-{customer}.json"));
    std::fs::write(&out, &access.json)?;
    println!(
        "  ExportSubjectData (admin; auditors too): {} events, {} personal fields ever recorded (the lead they came from included), written to {} ({} KiB)",
        access.events,
        access.personal_fields,
        out.display(),
        access.json.len() / 1024
    );
    let mut commands = CommandServiceClient::new(channel.clone());
    let forgotten = commands
        .forget_customer(authed(
            v1::ForgetCustomerRequest {
                customer_id: customer.into(),
                reason: "erasure request DSR-DEMO-1, identity verified".into(),
                legal_basis: "gdpr-art-17-1-a".into(),
                ..Default::default()
            },
            admin_token,
        )?)
        .await?
        .into_inner();
    let after = view(&channel, admin_token, customer, forgotten.position).await?;
    let erasure = after
        .forgotten
        .as_ref()
        .context("the view marks the erasure")?;
    let orders = |v: &v1::Customer360| v.commerce.as_ref().map_or(0, |c| c.orders);
    println!(
        "  ForgetCustomer (admin only): customer.forgotten at position {} ({}), then their data key and those of the leads converted into them destroyed",
        forgotten.position, erasure.legal_basis
    );
    println!(
        "  their 360 view now, as an admin reads it: name {:?}, emails {:?}, {} orders before and {} after, forgotten by {}",
        format!(
            "{} {}",
            after.profile.as_ref().map_or("", |p| p.given_name.as_str()),
            after
                .profile
                .as_ref()
                .map_or("", |p| p.family_name.as_str())
        )
        .trim(),
        after
            .profile
            .as_ref()
            .map(|p| p.emails.clone())
            .unwrap_or_default(),
        orders(&before),
        orders(&after),
        erasure.by
    );
    let refused = commands
        .tag_customer(authed(
            v1::TagCustomerRequest {
                customer_id: customer.into(),
                tag: "vip".into(),
                ..Default::default()
            },
            admin_token,
        )?)
        .await
        .err()
        .context("a command on a forgotten customer is refused")?;
    println!(
        "  TagCustomer on them: {:?}: {}",
        refused.code(),
        refused.message()
    );
    let again = export(&channel, admin_token, customer).await?;
    println!(
        "  ExportSubjectData again: forgotten {}, {} events, {} personal fields",
        again.forgotten, again.events, again.personal_fields
    );
    if !email.is_empty() {
        let files = crm_testkit::files_under(&data.join("nats"));
        let holding = files
            .iter()
            .filter(|f| crm_testkit::holds(f, email.as_bytes()))
            .count();
        let files = files.len();
        println!(
            "  {email:?} appears in {holding} of the {files} files of the event store and key store (the log is unchanged: its personal text was sealed under the destroyed key)"
        );
    }
    Ok(())
}
