//! Small helpers that convert one proto field and record a [`Violation`] when it does not
//! convert. Each returns `None` after recording a violation, so a conversion reads its
//! fields with them, then builds the command only when no violation was recorded
//! ([`finish`]).

use crm_domain::{Currency, Money, Rejection, RejectionKind, Timestamp, Violation};
use uuid::Uuid;

use crate::requests::CommandIds;
use crate::v1;

pub(crate) type Violations = Vec<Violation>;

pub(crate) fn fail(
    v: &mut Violations,
    field: impl Into<String>,
    rule: &'static str,
    message: impl Into<String>,
) {
    v.push(Violation {
        field: field.into(),
        rule,
        message: message.into(),
    });
}

pub(crate) const fn invalid(violations: Violations) -> Rejection {
    Rejection {
        kind: RejectionKind::Invalid,
        violations,
    }
}

/// The rejection listing every violation, or the value `build` makes from the converted
/// fields. `build` unwraps them with `?`: each helper returns `None` only after recording
/// a violation, so with none recorded it returns `Some`.
pub(crate) fn finish<T>(v: Violations, build: impl FnOnce() -> Option<T>) -> Result<T, Rejection> {
    if !v.is_empty() {
        return Err(invalid(v));
    }
    build().ok_or_else(|| {
        Rejection::new(
            RejectionKind::Invalid,
            "",
            "internal",
            "the request could not be converted",
        )
    })
}

/// Proto3 has no absent string: empty means unset.
pub(crate) fn opt_string(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// A non-empty id: a UUID in canonical (hyphenated) text form, not the nil UUID.
fn uuid<T: From<Uuid>>(field: &str, s: &str, v: &mut Violations) -> Option<T> {
    match Uuid::try_parse(s) {
        Ok(id) if s.len() == 36 && !id.is_nil() => Some(T::from(id)),
        _ => {
            fail(
                v,
                field,
                "uuid",
                format!(
                    "must be a UUID like 0191e2a4-5c3b-7d2e-9f01-23456789abcd, not nil (got {s:?})"
                ),
            );
            None
        }
    }
}

/// An id that references something existing: required.
pub(crate) fn required_id<T: From<Uuid>>(field: &str, s: &str, v: &mut Violations) -> Option<T> {
    if s.is_empty() {
        fail(v, field, "required", "is required");
        None
    } else {
        uuid(field, s, v)
    }
}

/// An optional reference: empty is `None`.
pub(crate) fn opt_id<T: From<Uuid>>(field: &str, s: &str, v: &mut Violations) -> Option<T> {
    if s.is_empty() {
        None
    } else {
        uuid(field, s, v)
    }
}

/// The id of something the command creates: derived from the command id when empty, so a
/// retried command creates the same id.
pub(crate) fn created_id<T: From<Uuid>>(
    field: &str,
    s: &str,
    ids: &CommandIds,
    purpose: &str,
    v: &mut Violations,
) -> Option<T> {
    if s.is_empty() {
        Some(ids.derive(purpose))
    } else {
        uuid(field, s, v)
    }
}

/// A proto enum mapped by `map` (which returns `None` for `UNSPECIFIED`): required.
pub(crate) fn enum_of<P: TryFrom<i32>, T>(
    field: &str,
    raw: i32,
    map: impl FnOnce(P) -> Option<T>,
    v: &mut Violations,
) -> Option<T> {
    let Ok(value) = P::try_from(raw) else {
        fail(v, field, "enum", format!("unknown value {raw}"));
        return None;
    };
    let mapped = map(value);
    if mapped.is_none() {
        fail(
            v,
            field,
            "required",
            "is required (must not be UNSPECIFIED)",
        );
    }
    mapped
}

/// An ISO 4217 code of three upper-case letters.
pub(crate) fn currency(field: &str, s: &str, v: &mut Violations) -> Option<Currency> {
    if s.is_empty() {
        fail(v, field, "required", "is required");
        return None;
    }
    let parsed = Currency::parse(s);
    if parsed.is_none() {
        fail(
            v,
            field,
            "currency",
            format!("must be an ISO 4217 code of three upper-case letters like EUR (got {s:?})"),
        );
    }
    parsed
}

/// A required amount.
pub(crate) fn money(field: &str, m: Option<&v1::Money>, v: &mut Violations) -> Option<Money> {
    if m.is_none() {
        fail(v, field, "required", "is required");
    }
    opt_money(field, m, v)
}

/// An optional amount: `None` when absent.
pub(crate) fn opt_money(field: &str, m: Option<&v1::Money>, v: &mut Violations) -> Option<Money> {
    let m = m?;
    let c = currency(&format!("{field}.currency"), &m.currency, v)?;
    Some(Money::new(m.minor, c))
}

/// `i32` to `i8` without wrapping.
pub(crate) fn to_i8(field: &str, value: i32, v: &mut Violations) -> Option<i8> {
    let narrowed = i8::try_from(value).ok();
    if narrowed.is_none() {
        fail(
            v,
            field,
            "range",
            format!("must be between {} and {} (got {value})", i8::MIN, i8::MAX),
        );
    }
    narrowed
}

/// `u32` to `u8` without wrapping.
pub(crate) fn to_u8(field: &str, value: u32, v: &mut Violations) -> Option<u8> {
    let narrowed = u8::try_from(value).ok();
    if narrowed.is_none() {
        fail(
            v,
            field,
            "range",
            format!("must be at most {} (got {value})", u8::MAX),
        );
    }
    narrowed
}

/// Seconds of 0001-01-01T00:00:00Z, the first instant a `google.protobuf.Timestamp` may hold.
const TIMESTAMP_MIN_SECONDS: i64 = -62_135_596_800;
/// Seconds of 9999-12-31T23:59:59Z, the last.
const TIMESTAMP_MAX_SECONDS: i64 = 253_402_300_799;

/// A `google.protobuf.Timestamp` in business time (microseconds; sub-microsecond digits
/// are dropped). `None` outside the range the protobuf type allows (years 1 to 9999,
/// `nanos` 0 to 999,999,999).
#[must_use]
pub fn timestamp_from_proto(t: &prost_types::Timestamp) -> Option<Timestamp> {
    let in_range = (TIMESTAMP_MIN_SECONDS..=TIMESTAMP_MAX_SECONDS).contains(&t.seconds)
        && (0..1_000_000_000).contains(&t.nanos);
    // In range, seconds * 10^6 is below 2^58: no overflow.
    in_range.then(|| {
        Timestamp::from_micros(
            t.seconds * Timestamp::MICROS_PER_SECOND + i64::from(t.nanos / 1_000),
        )
    })
}

/// A business time as a `google.protobuf.Timestamp`.
#[must_use]
pub fn timestamp_to_proto(t: Timestamp) -> prost_types::Timestamp {
    let micros = t.as_micros();
    let seconds = micros.div_euclid(Timestamp::MICROS_PER_SECOND);
    // rem_euclid is in 0..10^6, so the nanos fit in i32.
    let sub_micros = i32::try_from(micros.rem_euclid(Timestamp::MICROS_PER_SECOND)).unwrap_or(0);
    prost_types::Timestamp {
        seconds,
        nanos: sub_micros * 1_000,
    }
}

pub(crate) fn timestamp(
    field: &str,
    t: &prost_types::Timestamp,
    v: &mut Violations,
) -> Option<Timestamp> {
    let converted = timestamp_from_proto(t);
    if converted.is_none() {
        fail(
            v,
            field,
            "range",
            format!(
                "must be a valid timestamp between years 1 and 9999 (got seconds {}, nanos {})",
                t.seconds, t.nanos
            ),
        );
    }
    converted
}
