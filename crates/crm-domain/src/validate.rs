//! Field validation shared by the decide functions. Collects every violation of a
//! command so a caller can fix them all at once.

use crate::rejection::{Rejection, RejectionKind, Violation};
use crate::values::Currency;

pub(crate) const NAME_MAX: usize = 200;
pub(crate) const SHORT_MAX: usize = 100;
pub(crate) const SUBJECT_MAX: usize = 500;
pub(crate) const TEXT_MAX: usize = 10_000;
pub(crate) const TAG_MAX: usize = 64;
pub(crate) const TAGS_PER_CUSTOMER_MAX: usize = 200;
pub(crate) const LIST_MAX: usize = 20;
pub(crate) const ORDER_LINES_MAX: usize = 500;
pub(crate) const RECIPIENTS_MAX: usize = 10_000;
/// Largest amount accepted in minor units (10^15, i.e. 10 trillion in a 2-decimal currency).
pub(crate) const AMOUNT_MAX: i64 = 1_000_000_000_000_000;

#[derive(Default)]
pub(crate) struct Check {
    violations: Vec<Violation>,
}

impl Check {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn fail(
        &mut self,
        field: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
    ) {
        self.violations.push(Violation {
            field: field.into(),
            rule,
            message: message.into(),
        });
    }

    pub(crate) fn finish(self) -> Result<(), Rejection> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(Rejection {
                kind: RejectionKind::Invalid,
                violations: self.violations,
            })
        }
    }

    /// Free text: at most `max` characters, no control characters except newline and tab.
    pub(crate) fn text(&mut self, field: &str, value: &str, max: usize) {
        let n = value.chars().count();
        if n > max {
            self.fail(
                field,
                "max_length",
                format!("must be at most {max} characters (got {n})"),
            );
        }
        if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            self.fail(
                field,
                "no_control_chars",
                "must not contain control characters",
            );
        }
    }

    /// Required free text.
    pub(crate) fn required(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.fail(field, "required", "is required");
        } else {
            self.text(field, value, max);
        }
    }

    pub(crate) fn opt_text(&mut self, field: &str, value: Option<&String>, max: usize) {
        if let Some(v) = value {
            self.required(field, v, max);
        }
    }

    /// A machine-friendly key: 1..=max chars of `a-z 0-9 _ - : .`.
    pub(crate) fn key(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.fail(field, "required", "is required");
        } else if value.len() > max
            || !value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-:.".contains(&b))
        {
            self.fail(
                field,
                "format",
                format!(
                    "must be 1-{max} characters of a-z, 0-9, '_', '-', ':' or '.' (got {value:?})"
                ),
            );
        }
    }

    pub(crate) fn email(&mut self, field: &str, value: &str) {
        let ok = value.len() <= 254
            && !value.chars().any(char::is_whitespace)
            && match value.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if !ok {
            self.fail(
                field,
                "email",
                // The value is personal data: not echoed (replies and logs may reach
                // readers without `pii.read`); the field's index says which one.
                "must be an email address like name@example.com".to_owned(),
            );
        }
    }

    pub(crate) fn phone(&mut self, field: &str, value: &str) {
        let digits = value.strip_prefix('+').unwrap_or("");
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            self.fail(
                field,
                "e164",
                // Not echoed either: personal data.
                "must be an E.164 number: '+' and 8-15 digits, like +4915112345678".to_owned(),
            );
        }
    }

    pub(crate) fn language(&mut self, field: &str, value: &str) {
        let mut parts = value.split('-');
        let primary = parts.next().unwrap_or("");
        let region = parts.next();
        let ok = (2..=3).contains(&primary.len())
            && primary.bytes().all(|b| b.is_ascii_lowercase())
            && parts.next().is_none()
            && region.is_none_or(|r| {
                (r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
                    || (r.len() == 3 && r.bytes().all(|b| b.is_ascii_digit()))
            });
        if !ok {
            self.fail(
                field,
                "bcp47",
                format!("must be a language tag like 'en' or 'pt-BR' (got {value:?})"),
            );
        }
    }

    pub(crate) fn country(&mut self, field: &str, value: &str) {
        if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
            self.fail(
                field,
                "iso3166",
                format!("must be an ISO 3166-1 alpha-2 code like 'DE' (got {value:?})"),
            );
        }
    }

    pub(crate) fn amount(&mut self, field: &str, minor: i64, allow_zero: bool) {
        if minor < 0 || (!allow_zero && minor == 0) {
            let bound = if allow_zero {
                "zero or more"
            } else {
                "more than zero"
            };
            self.fail(field, "range", format!("must be {bound} (got {minor})"));
        } else if minor > AMOUNT_MAX {
            self.fail(
                field,
                "range",
                format!("must be at most {AMOUNT_MAX} minor units"),
            );
        }
    }

    pub(crate) fn list_len(&mut self, field: &str, len: usize, max: usize) {
        if len > max {
            self.fail(
                field,
                "max_items",
                format!("must have at most {max} items (got {len})"),
            );
        }
    }
}

pub(crate) fn same_currency(check: &mut Check, field: &str, expected: Currency, got: Currency) {
    if expected != got {
        check.fail(
            field,
            "currency",
            format!("must be in {expected}, the currency of the record it refers to (got {got})"),
        );
    }
}
