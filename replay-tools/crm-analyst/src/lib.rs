//! Analysts' tools over the CRM's read models (issue 20, first part): build a projection
//! offline from the event stream into a directory of its own ([`build`]), compare two
//! builds key by key ([`compare`]), and start a rebuild on a running service and follow
//! it to the switch ([`rebuild`]). The exports and the report come next.

pub mod build;
pub mod compare;
pub mod export;
pub mod projection;
pub mod rebuild;

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
    #[error("the service refused: {0}")]
    Service(String),
}
