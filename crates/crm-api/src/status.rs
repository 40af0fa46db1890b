//! The one place that maps domain and store errors to gRPC status codes. Messages are
//! written for the person reading them; field violations travel as
//! `google.rpc.BadRequest` (or `PreconditionFailure`) details so clients can show them
//! next to the right input.

use crm_domain::{Rejection, RejectionKind};
use crm_store::{HandleError, StoreError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation, StatusExt};

use crate::auth::AuthError;

/// The gRPC status of a rejected command.
#[must_use]
pub fn rejection_status(r: &Rejection) -> Status {
    let message = r.to_string();
    match r.kind {
        RejectionKind::Invalid => {
            let violations: Vec<FieldViolation> = r
                .violations
                .iter()
                .map(|v| {
                    FieldViolation::new(v.field.clone(), format!("{} ({})", v.message, v.rule))
                })
                .collect();
            Status::with_error_details(
                Code::InvalidArgument,
                format!("invalid command: {message}"),
                ErrorDetails::with_bad_request(violations),
            )
        }
        RejectionKind::NotFound => Status::with_error_details(
            Code::NotFound,
            message,
            ErrorDetails::with_bad_request(field_violations(r)),
        ),
        RejectionKind::AlreadyExists => Status::with_error_details(
            Code::AlreadyExists,
            message,
            ErrorDetails::with_bad_request(field_violations(r)),
        ),
        RejectionKind::FailedPrecondition => {
            let violations: Vec<PreconditionViolation> = r
                .violations
                .iter()
                .map(|v| PreconditionViolation::new(v.rule, v.field.clone(), v.message.clone()))
                .collect();
            Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure(violations),
            )
        }
    }
}

fn field_violations(r: &Rejection) -> Vec<FieldViolation> {
    r.violations
        .iter()
        .map(|v| FieldViolation::new(v.field.clone(), format!("{} ({})", v.message, v.rule)))
        .collect()
}

/// The gRPC status of a command that did not succeed.
#[must_use]
pub fn handle_error_status(e: &HandleError) -> Status {
    match e {
        HandleError::Rejected(r) => rejection_status(r),
        HandleError::VersionMismatch { .. } => Status::aborted(format!(
            "{e}: reload the aggregate and decide again, or drop expected_version"
        )),
        HandleError::Conflict { .. } => {
            Status::aborted(format!("{e}; retrying with the same command id is safe"))
        }
        HandleError::Unavailable { .. } => Status::unavailable(e.to_string()),
        HandleError::TooLarge(m) => Status::resource_exhausted(format!("command too large: {m}")),
        HandleError::Store(StoreError::Corrupt { seq, .. }) => Status::data_loss(format!(
            "{e}; the aggregate refuses commands until an operator investigates (a message \
             at stream sequence {seq} that is not ours can be set aside with \
             LogService.QuarantinePosition)"
        )),
        HandleError::Store(StoreError::Unavailable { .. }) => Status::unavailable(e.to_string()),
        HandleError::Store(other) => Status::internal(other.to_string()),
    }
}

/// The gRPC status of a failed authentication or authorization.
#[must_use]
pub fn auth_status(e: &AuthError) -> Status {
    match e {
        AuthError::Missing | AuthError::Malformed | AuthError::Unknown => {
            Status::unauthenticated(e.to_string())
        }
        AuthError::Denied { .. } => Status::permission_denied(e.to_string()),
    }
}

/// A query argument that cannot be used.
#[must_use]
pub fn invalid_query_field(field: &str, description: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid query: {field}: {description}"),
        ErrorDetails::with_bad_request(vec![FieldViolation::new(field, description)]),
    )
}

/// The read model had not applied the caller's consistency token within the wait.
#[must_use]
pub fn stale_status(applied: u64, wanted: u64, waited: std::time::Duration) -> Status {
    Status::with_error_details(
        Code::FailedPrecondition,
        format!(
            "the read model has applied the event log up to position {applied}, not yet position {wanted} \
             (waited {} ms); retry, or call with a longer deadline",
            waited.as_millis()
        ),
        ErrorDetails::with_precondition_failure(vec![PreconditionViolation::new(
            "STALE_READ_MODEL",
            "consistency.min_position",
            format!("position {wanted} not yet applied (at {applied})"),
        )]),
    )
}

/// An audit replay that could not answer.
#[must_use]
pub fn audit_error_status(e: &crm_audit::AuditError) -> Status {
    use crm_audit::AuditError as E;
    match e {
        E::NoSuchCustomer(_) => Status::not_found(e.to_string()),
        E::Nats(_) => Status::unavailable(e.to_string()),
        E::Undecodable { .. } => Status::data_loss(e.to_string()),
        E::Sealed(_) => Status::failed_precondition(e.to_string()),
        E::Credentials(_) | E::Fold(_) => {
            tracing::error!(error = %e, "audit replay failed");
            Status::internal(e.to_string())
        }
    }
}

/// A churn figure that could not be given.
#[must_use]
pub fn churn_error_status(e: &crm_churn::service::ChurnError) -> Status {
    use crm_churn::service::ChurnError as E;
    match e {
        E::Projection(p) => projection_status(p),
        E::NoServedModel | E::UnknownModel(_) | E::NotInPopulation(_) => {
            Status::not_found(e.to_string())
        }
        E::Fit(_) => Status::with_error_details(
            Code::FailedPrecondition,
            e.to_string(),
            ErrorDetails::with_precondition_failure(vec![PreconditionViolation::new(
                "MODEL_NOT_FITTED",
                "calibration_end",
                e.to_string(),
            )]),
        ),
        E::Store(_) | E::Corrupt { .. } => {
            tracing::error!(error = %e, "churn query failed");
            Status::internal(format!("the churn models could not answer: {e}"))
        }
    }
}

/// A read model that could not answer.
#[must_use]
pub fn query_error_status(e: &crm_customer360::QueryError) -> Status {
    match e {
        crm_customer360::QueryError::Storage(p) => projection_status(p),
        crm_customer360::QueryError::Corrupt(..) => {
            tracing::error!(error = %e, "read model query failed");
            Status::internal(format!("the read model could not answer: {e}"))
        }
        crm_customer360::QueryError::TimelineTooLong { .. } => {
            Status::resource_exhausted(e.to_string())
        }
    }
}

/// The gRPC status of a read-side failure: a read model not served yet is UNAVAILABLE
/// (retry later), a rebuild already running FAILED_PRECONDITION, storage INTERNAL.
#[must_use]
pub fn projection_status(e: &crm_projection::ProjectionError) -> Status {
    use crm_projection::ProjectionError as E;
    match e {
        E::NotServing(_) | E::Keys(_) | E::Reapply(_) => Status::unavailable(e.to_string()),
        E::AlreadyBuilding { .. } => Status::with_error_details(
            Code::FailedPrecondition,
            e.to_string(),
            ErrorDetails::with_precondition_failure(vec![PreconditionViolation::new(
                "BUILD_IN_PROGRESS",
                "name",
                e.to_string(),
            )]),
        ),
        E::Storage(_) | E::Meta(_) | E::Task(_) | E::Retired(_) | E::StreamChanged { .. } => {
            tracing::error!(error = %e, "read side failed");
            Status::internal(format!("the read side could not answer: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_domain::AggregateRef;

    #[test]
    fn every_rejection_kind_has_its_code_and_details() {
        let invalid = Rejection::new(
            RejectionKind::Invalid,
            "lines[0].quantity",
            "range",
            "must be at least 1",
        );
        let s = rejection_status(&invalid);
        assert_eq!(s.code(), Code::InvalidArgument);
        let details = s.get_error_details();
        let bad = details.bad_request().expect("BadRequest details");
        assert_eq!(bad.field_violations[0].field, "lines[0].quantity");
        assert!(
            bad.field_violations[0]
                .description
                .contains("must be at least 1")
        );
        assert_eq!(
            rejection_status(&Rejection::not_found("customer_id", "no")).code(),
            Code::NotFound
        );
        assert_eq!(
            rejection_status(&Rejection::already_exists("order_id", "dup")).code(),
            Code::AlreadyExists
        );
        let pre = rejection_status(&Rejection::precondition(
            "ticket_id",
            "state",
            "ticket is closed",
        ));
        assert_eq!(pre.code(), Code::FailedPrecondition);
        let pf = pre.get_error_details();
        let pf = pf
            .precondition_failure()
            .expect("PreconditionFailure details");
        assert_eq!(pf.violations[0].subject, "ticket_id");
        assert_eq!(pf.violations[0].r#type, "state");
    }

    #[test]
    fn store_failures_map_to_retryable_or_fatal_codes() {
        let agg = AggregateRef::Customer(crm_domain::CustomerId::new_v7());
        let cases = [
            (
                HandleError::Conflict {
                    aggregate: agg,
                    attempts: 8,
                },
                Code::Aborted,
            ),
            (
                HandleError::VersionMismatch {
                    aggregate: agg,
                    expected: 1,
                    actual: 2,
                },
                Code::Aborted,
            ),
            (
                HandleError::Unavailable {
                    message: "down".into(),
                    maybe_applied: false,
                },
                Code::Unavailable,
            ),
            (HandleError::TooLarge("x".into()), Code::ResourceExhausted),
            (
                HandleError::Store(StoreError::Corrupt {
                    aggregate: agg,
                    seq: 3,
                    reason: "hash".into(),
                }),
                Code::DataLoss,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(handle_error_status(&e).code(), code, "{e}");
        }
    }

    #[test]
    fn auth_failures_are_unauthenticated_or_denied() {
        assert_eq!(
            auth_status(&AuthError::Missing).code(),
            Code::Unauthenticated
        );
        let denied = AuthError::Denied {
            principal: "a".into(),
            action: "x",
            permission: "p",
            roles: String::new(),
        };
        assert_eq!(auth_status(&denied).code(), Code::PermissionDenied);
    }
}
