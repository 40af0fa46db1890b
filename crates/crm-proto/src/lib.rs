//! The one owner of the gRPC wire format: the prost/tonic types generated from
//! `proto/crm/v1/*.proto` (messages, `CommandService` client and server), the encoded file
//! descriptor set for gRPC server reflection, and explicit conversions between the proto
//! messages and the domain types of `crm-domain`.
//!
//! Conversions collect every violation of a request into one
//! [`Rejection`](crm_domain::Rejection) of kind `Invalid`, with proto field paths
//! (`lines[2].unit_price_minor`, `opportunity.amount.currency`, `options.command_id`).

mod check;
mod codec;
mod enums;
mod options;
mod reply;
mod requests;

/// Generated from `proto/crm/v1/types.proto` and `proto/crm/v1/commands.proto`.
// Generated code: the workspace lints are not ours to apply to it.
#[allow(unused_qualifications, clippy::all, clippy::pedantic, clippy::nursery)]
pub mod v1 {
    tonic::include_proto!("crm.v1");
    include!(concat!(env!("OUT_DIR"), "/client/crm.v1.rs"));
}

/// The encoded `google.protobuf.FileDescriptorSet` of `crm.v1` (with its imports and
/// source comments), for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/crm_descriptor.bin"));

pub use check::{timestamp_from_proto, timestamp_to_proto};

/// Microseconds since the epoch as an (optional) reply timestamp.
#[must_use]
pub fn ts(micros: i64) -> Option<prost_types::Timestamp> {
    Some(timestamp_to_proto(crm_domain::Timestamp(micros)))
}

/// An amount in minor units of `currency`.
#[must_use]
pub fn money(minor: i64, currency: &str) -> v1::Money {
    v1::Money {
        minor,
        currency: currency.to_owned(),
    }
}
pub use enums::{aggregate_kind, aggregate_type};
pub use options::{ParsedOptions, ParsedRequest, parse_options, parse_request};
pub use reply::{
    aggregate_from_proto, aggregate_to_proto, aggregate_version, command_field_violations,
    command_reply, field_violations, proto_field_path, resendable, skipped_recipients,
};
pub use requests::{CommandIds, IntoCommand, purpose};
