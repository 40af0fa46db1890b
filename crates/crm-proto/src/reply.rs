//! Replies: command outcomes, aggregate references and violations in proto form.

use crm_domain::{AggregateRef, Command, CommandId, Rejection};

use crate::check::{enum_of, finish, required_id};
use crate::enums::{aggregate_kind, aggregate_type};
use crate::v1;

/// An aggregate as its proto type and id text.
#[must_use]
pub fn aggregate_to_proto(aggregate: AggregateRef) -> (v1::AggregateType, String) {
    (
        aggregate_type(aggregate.kind()),
        aggregate.uuid().to_string(),
    )
}

/// An aggregate from its proto type (an `AggregateType` number) and id text. Violations
/// name `aggregate_type` and `aggregate_id`.
pub fn aggregate_from_proto(
    aggregate_type: i32,
    aggregate_id: &str,
) -> Result<AggregateRef, Rejection> {
    let mut v = Vec::new();
    let kind = enum_of("aggregate_type", aggregate_type, aggregate_kind, &mut v);
    let id = required_id("aggregate_id", aggregate_id, &mut v);
    finish(v, || Some(AggregateRef::new(kind?, id?)))
}

#[must_use]
pub fn aggregate_version(aggregate: AggregateRef, version: u64) -> v1::AggregateVersion {
    let (t, id) = aggregate_to_proto(aggregate);
    v1::AggregateVersion {
        aggregate_type: t.into(),
        aggregate_id: id,
        version,
    }
}

/// The reply to a handled command: `aggregates` are the aggregates it wrote with their
/// versions after the command, `primary` the one the reply names (its version is 0 when
/// it is not among `aggregates`), `position` the stream position of the commit,
/// `appended` the number of events this call appended and `repeated` whether the command
/// id had been handled before.
#[must_use]
pub fn command_reply(
    command_id: CommandId,
    aggregates: &[(AggregateRef, u64)],
    primary: AggregateRef,
    position: u64,
    appended: usize,
    repeated: bool,
) -> v1::CommandReply {
    let (t, id) = aggregate_to_proto(primary);
    let version = (aggregates.iter())
        .find(|(a, _)| *a == primary)
        .map_or(0, |(_, version)| *version);
    v1::CommandReply {
        command_id: command_id.to_string(),
        aggregate_type: t.into(),
        aggregate_id: id,
        version,
        position,
        events_appended: u32::try_from(appended).unwrap_or(u32::MAX),
        repeated,
        aggregates: (aggregates.iter())
            .map(|(a, version)| aggregate_version(*a, *version))
            .collect(),
        skipped_recipients: Vec::new(),
    }
}

/// The recipients a campaign send left out, from the events a command appended.
#[must_use]
pub fn skipped_recipients(events: &[crm_domain::DomainEvent]) -> Vec<v1::SkippedRecipient> {
    events
        .iter()
        .filter_map(|e| match e {
            crm_domain::DomainEvent::Campaign(
                _,
                crm_domain::CampaignEvent::Sent { skipped, .. },
            ) => Some(skipped),
            _ => None,
        })
        .flatten()
        .map(|s| v1::SkippedRecipient {
            customer_id: s.customer_id.0.to_string(),
            reason: s.reason.name().to_owned(),
        })
        .collect()
}

/// Whether a command refused with `code` may be sent again, with the same command id,
/// to the same effect as if it had been applied the first time: the event log was
/// unavailable (the message says whether it may have been applied), a conflict outlasted
/// the service's retries, or the call ran out of time. The contract between the service
/// (which holds back an ingest stream's later commands on the same aggregates after such
/// a refusal) and bulk loaders (which send them again, in order).
#[must_use]
pub fn resendable(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::Aborted | tonic::Code::DeadlineExceeded
    )
}

/// A rejection's violations as they are, field paths unchanged.
#[must_use]
pub fn field_violations(rejection: &Rejection) -> Vec<v1::FieldViolation> {
    (rejection.violations.iter())
        .map(|v| v1::FieldViolation {
            field: v.field.clone(),
            rule: v.rule.to_owned(),
            description: v.message.clone(),
        })
        .collect()
}

/// A rejection from deciding `command`, with the domain's field paths translated to the
/// request message's (see [`proto_field_path`]).
#[must_use]
pub fn command_field_violations(
    command: &Command,
    rejection: &Rejection,
) -> Vec<v1::FieldViolation> {
    let mut violations = field_violations(rejection);
    for v in &mut violations {
        v.field = proto_field_path(command, &v.field);
    }
    violations
}

/// Profile fields the domain names without the `profile.` prefix of
/// `RegisterCustomerRequest`.
const PROFILE_FIELDS: [&str; 8] = [
    "given_name",
    "family_name",
    "emails",
    "phones",
    "address",
    "language",
    "country",
    "external_ids",
];

/// The request field a domain violation of `command` names. The domain mostly uses the
/// request's own names; the exceptions are translated: `RegisterCustomer` profile fields
/// (`emails[0]` -> `profile.emails[0]`), `LinkCustomers.other`, `LogInteraction.ticket`,
/// `.opportunity` and `.campaign`, `ConvertLead.into.new_customer` and
/// `.into.existing_customer`, and `RecordCampaignResponse.response.revenue`.
#[must_use]
pub fn proto_field_path(command: &Command, field: &str) -> String {
    let renamed = match command {
        Command::RegisterCustomer(_) => {
            (PROFILE_FIELDS.iter()).find_map(|f| rename(field, f, &format!("profile.{f}")))
        }
        Command::LinkCustomers { .. } => rename(field, "other", "other_customer_id"),
        Command::LogInteraction(_) => rename(field, "ticket", "ticket_id")
            .or_else(|| rename(field, "opportunity", "opportunity_id"))
            .or_else(|| rename(field, "campaign", "campaign_id")),
        Command::ConvertLead { .. } => rename(field, "into.new_customer", "new_customer_id")
            .or_else(|| rename(field, "into.existing_customer", "existing_customer_id")),
        Command::RecordCampaignResponse { .. } => rename(field, "response.revenue", "revenue"),
        _ => None,
    };
    renamed.unwrap_or_else(|| field.to_owned())
}

/// `field` renamed when it is `from` or nested in it (`from.x`, `from[i]`).
fn rename(field: &str, from: &str, to: &str) -> Option<String> {
    let rest = field.strip_prefix(from)?;
    (rest.is_empty() || rest.starts_with(['.', '['])).then(|| format!("{to}{rest}"))
}
