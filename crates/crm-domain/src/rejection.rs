//! Typed command rejections: every one names the field and the rule it broke.

use std::fmt;

/// The class of a rejection; the API maps each to one status code.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RejectionKind {
    /// The command itself is malformed (a field breaks a validation rule).
    Invalid,
    /// The command addresses an aggregate (or a part of one) that does not exist.
    NotFound,
    /// The command would create something that already exists.
    AlreadyExists,
    /// The command is well-formed but the aggregate's state forbids it.
    FailedPrecondition,
}

/// One broken rule.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Violation {
    /// Path of the field, e.g. `lines[2].quantity`.
    pub field: String,
    /// Stable machine-readable rule code, e.g. `required`, `max_length`, `state`.
    pub rule: &'static str,
    /// A sentence for the person reading it.
    pub message: String,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rejection {
    pub kind: RejectionKind,
    /// At least one.
    pub violations: Vec<Violation>,
}

impl Rejection {
    pub fn new(
        kind: RejectionKind,
        field: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            violations: vec![Violation {
                field: field.into(),
                rule,
                message: message.into(),
            }],
        }
    }
    pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(RejectionKind::NotFound, field, "not_found", message)
    }
    pub fn already_exists(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            RejectionKind::AlreadyExists,
            field,
            "already_exists",
            message,
        )
    }
    pub fn precondition(
        field: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::new(RejectionKind::FailedPrecondition, field, rule, message)
    }
    /// The first violation (there is always one).
    #[must_use]
    pub fn first(&self) -> &Violation {
        &self.violations[0]
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {} ({})", v.field, v.message, v.rule)?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

/// A history that cannot be folded (an event that does not fit the state). Never the
/// result of a command: it means the log itself is inconsistent.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("inconsistent {aggregate} history: {reason}")]
pub struct HistoryError {
    pub aggregate: &'static str,
    pub reason: String,
}

impl HistoryError {
    pub fn new(aggregate: &'static str, reason: impl Into<String>) -> Self {
        Self {
            aggregate,
            reason: reason.into(),
        }
    }
}
