//! The gRPC API: commands (write side), queries (read side) and the read side's admin.
//!
//! - [`auth`]: bearer tokens from a tokens file (stored as SHA-256, compared in constant
//!   time), roles that grant permissions (default deny), and the actor every event records.
//! - [`status`]: the one place that maps domain rejections and store failures to gRPC
//!   status codes with `google.rpc` error details.
//! - [`audit`]: the auditors' replay (`AuditService`) over `crm-audit`'s library.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod log;
pub mod metrics;
pub mod query;
pub mod server;
pub mod service;
pub mod status;
