//! Analysts' tools over the CRM's event stream and read models: export the stream
//! ([`export`]) and the customer 360° model ([`customers`]) to JSON Lines, CSV or
//! Parquet, and the funnel's deals and stage stays and the churn figures per customer
//! ([`models`]); build a projection offline from the stream into a directory of its own
//! ([`build`]); compare two builds key by key ([`compare`]); start a rebuild on a
//! running service and follow it to the switch ([`rebuild`]); write the one-page HTML
//! report of what the query API says ([`report`]).

pub mod build;
mod columns;
pub mod compare;
pub mod customers;
pub mod export;
mod grpc;
pub mod models;
pub mod projection;
pub mod rebuild;
pub mod report;

pub use projection::Named;

/// Why a tool could not do its job (never because the builds differ: that is a result).
#[derive(Debug, thiserror::Error)]
pub enum AnalystError {
    #[error(transparent)]
    Projection(#[from] crm_projection::ProjectionError),
    #[error(transparent)]
    Stream(#[from] crm_audit::AuditError),
    #[error("read-model directory {dir}: {message}")]
    Directory { dir: String, message: String },
    #[error(transparent)]
    Churn(#[from] crm_churn::service::ChurnError),
    #[error("the service refused: {0}")]
    Service(String),
}
