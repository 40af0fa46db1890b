//! As-of views and diffs: a customer's 360° view as of any moment, through the live
//! service's own fold ([`crm_customer360::as_of::reconstruct`]) and its own rendering
//! ([`crm_customer360::reply::customer360`]), so an as-of view is what `GetCustomer360`
//! answered then; and what changed between two moments, with the events (and their
//! actors) that changed it.
//!
//! Two clocks ([`Cut`]): `Recorded(t)` is what the CRM knew at `t` (late imports of
//! earlier business left out); `Occurred(t)` is what had happened by `t` as known now.
//!
//! Not reconstructed: the RFM scores, value class and segment, which rank a customer
//! against every other customer's orders at the time (the whole base as of the cut):
//! an as-of view leaves them unscored and says so in `read.rules`.

use crm_customer360::as_of::{PointInTime, reconstruct};
use crm_customer360::view::{self, LifecyclePolicy};
use crm_customer360::{Classes, Customer360};
use crm_domain::CustomerId;
use crm_projection::Event;
use crm_proto::v1;
use serde::Serialize;

pub use crm_customer360::as_of::Cut;

use crate::AuditError;
use crate::connect::Source;
use crate::history::{self, Concerning, Entry, Filter};

/// The rule an as-of view states for the scores it leaves out.
pub const UNSCORED_RULE: &str = "as-of view: RFM scores, value class and segment rank against the whole customer base and are not reconstructed";

/// One customer as of a cut.
#[derive(Clone, Debug)]
pub struct View {
    pub cut: Cut,
    /// What the fold holds (events applied and cut off, refused messages).
    pub point: PointInTime,
    /// The view as the API renders it; `None`: the customer did not exist yet.
    pub reply: Option<v1::Customer360>,
}

/// A live `GetCustomer360` answer without what an as-of view does not reconstruct (the
/// scores ranked against the whole base, and the churn predictions of a model fitted on
/// the whole base) or cannot share (the position and moment it was read at): what the
/// two are compared on.
#[must_use]
pub fn reconstructible(mut v: v1::Customer360) -> v1::Customer360 {
    v.read = None;
    v.predictions = None;
    if let Some(c) = v.classification.as_mut() {
        c.value_class.clear();
        c.segment.clear();
        c.recency_score = 0;
        c.frequency_score = 0;
        c.monetary_score = 0;
    }
    v
}

/// The moment a cut measures windows and SLA states at.
#[must_use]
pub const fn moment(cut: Cut) -> i64 {
    match cut {
        Cut::Recorded(t) | Cut::Occurred(t) => t,
    }
}

/// The customer as of `cut`, rendered with personal data when `pii`.
///
/// # Errors
/// The stream cannot be read, a message does not decode, or the customer has no events.
pub async fn customer_as_of(
    source: &Source,
    customer: CustomerId,
    cut: Cut,
    pii: bool,
) -> Result<View, AuditError> {
    let messages = history::concerning(source, customer).await?;
    view_of(&messages, customer, cut, pii)
}

/// [`customer_as_of`] over messages already read.
///
/// # Errors
/// A value the fold stored does not decode (it cannot, for values it wrote).
pub fn view_of(
    messages: &[Concerning],
    customer: CustomerId,
    cut: Cut,
    pii: bool,
) -> Result<View, AuditError> {
    let events = messages.iter().flat_map(|m| {
        m.events.iter().enumerate().map(move |(i, e)| Event {
            seq: m.seq,
            index: u16::try_from(i).unwrap_or(u16::MAX),
            subject: &m.subject,
            envelope: e,
        })
    });
    let point = reconstruct(
        &Customer360::default(),
        customer.0.into_bytes(),
        events,
        cut,
    )
    .map_err(|e| AuditError::Fold(e.to_string()))?;
    let at = moment(cut);
    let reply = point.record.as_ref().map(|r| {
        let lifecycle = view::lifecycle(
            &point.facts,
            r.commerce.first_order_at,
            at,
            &LifecyclePolicy::default(),
        );
        let classes = Classes {
            lifecycle,
            rfm: None,
            value_class: view::value_class(None, lifecycle),
            segment: view::segment(None),
        };
        let mut reply = crm_customer360::reply::customer360(r, &classes, at, pii, r.last_seq);
        if let Some(read) = reply.read.as_mut() {
            read.rules.push(UNSCORED_RULE.into());
        }
        reply
    });
    Ok(View { cut, point, reply })
}

/// One part of the view that differs between two moments (`before`/`after` as the
/// API renders them; empty: absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: &'static str,
    pub before: String,
    pub after: String,
}

/// What changed between two cuts and which events did it.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub changes: Vec<Change>,
    /// The events the later cut keeps and the earlier one does not, with their actors
    /// (of the campaigns, only the sends naming the customer).
    pub events: Vec<Entry>,
}

/// The customer between `from` and `to` (both on the same clock, `from` first).
///
/// # Errors
/// As [`customer_as_of`].
pub async fn diff(
    source: &Source,
    customer: CustomerId,
    from: Cut,
    to: Cut,
    pii: bool,
) -> Result<Diff, AuditError> {
    let messages = history::concerning(source, customer).await?;
    let before = view_of(&messages, customer, from, pii)?;
    let after = view_of(&messages, customer, to, pii)?;
    let keeps = |cut: Cut, e: &Entry| match cut {
        Cut::Recorded(t) => e.recorded_micros <= t,
        Cut::Occurred(t) => e.occurred_micros <= t,
    };
    let events = history::entries(&messages, customer, &Filter::default())
        .into_iter()
        .filter(|e| keeps(to, e) && !keeps(from, e))
        .collect();
    Ok(Diff {
        changes: changes(before.reply.as_ref(), after.reply.as_ref()),
        events,
    })
}

/// The fields of two renderings that differ. The field list is exhaustive: a field
/// added to `Customer360` fails to compile here until it is compared.
#[must_use]
pub fn changes(before: Option<&v1::Customer360>, after: Option<&v1::Customer360>) -> Vec<Change> {
    let empty = v1::Customer360::default();
    let (a, b) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
    let mut out = Vec::new();
    macro_rules! compare {
        ($($field:ident),* $(,)?) => {
            // `read` (the position and moment of each view) always differs.
            let v1::Customer360 { read: _, $($field: _),* } = b;
            $(
                if a.$field != b.$field {
                    out.push(Change {
                        field: stringify!($field),
                        before: if before.is_some() { format!("{:?}", a.$field) } else { String::new() },
                        after: if after.is_some() { format!("{:?}", b.$field) } else { String::new() },
                    });
                }
            )*
        };
    }
    compare!(
        customer_id,
        version,
        registered,
        registered_at,
        registered_by,
        profile,
        pii_redacted,
        owner,
        team,
        acquisition,
        origin_lead,
        consent,
        tags,
        relationships,
        classification,
        commerce,
        engagement,
        sales,
        marketing,
        service,
        predictions,
        dead_lettered_positions,
        forgotten,
    );
    out
}
