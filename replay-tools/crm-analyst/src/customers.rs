//! The customer 360° read model exported, one row per customer, each customer rendered
//! exactly as `GetCustomer360` renders it at `as_of` (same classification, same
//! personal-data rule), flattened to columns: from a read-model directory (an offline
//! build, a stopped service's data directory, a copy; [`export_customers`]) or from a
//! running service with the caller's token ([`export_customers_from_service`]: memory
//! does not grow with the model, and personal data follows the token's `pii.read`).

use std::path::Path;

use arrow_schema::{DataType, Field};
use crm_customer360::{Customer360, Queries};

use crate::AnalystError;
use crate::build::open_dir;
use crate::columns::{
    Columns, i64s, opt_f64s, opt_rfc3339, row_from_columns, text_field, texts, time_field, times,
    u32s, u64s,
};
use crate::export::{Exported, Format, RowWriter};
use crate::grpc::{answer, authed, refused};
use crate::models::{open_live, read_model_dir};

/// The currency whose revenue the row carries (the 360 model's reporting currency).
pub const CURRENCY: &str = "EUR";

/// One customer as exported. Personal columns (`given_name`, `family_name`, `email`,
/// `phone`) are empty without `pii`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CustomerRow {
    pub customer_id: String,
    pub version: u64,
    #[serde(serialize_with = "opt_rfc3339")]
    pub registered_at: Option<i64>,
    pub given_name: String,
    pub family_name: String,
    pub email: String,
    pub phone: String,
    pub owner: String,
    pub team: String,
    pub lifecycle: String,
    pub value_class: String,
    pub segment: String,
    pub tags: String,
    pub orders: u32,
    pub repeat_orders: u32,
    #[serde(serialize_with = "opt_rfc3339")]
    pub first_order_at: Option<i64>,
    #[serde(serialize_with = "opt_rfc3339")]
    pub last_order_at: Option<i64>,
    pub currency: String,
    pub revenue_minor: i64,
    pub refunded_minor: i64,
    pub returns: u32,
    pub open_tickets: u32,
    pub complaints_last_90d: u32,
    pub csat_share: Option<f64>,
    pub dead_lettered: u32,
}

fn micros(t: Option<&prost_types::Timestamp>) -> Option<i64> {
    t.and_then(|t| crm_proto::timestamp_from_proto(t).map(|t| t.0))
}

impl CustomerRow {
    fn of(v: &crm_proto::v1::Customer360) -> Self {
        let p = v.profile.clone().unwrap_or_default();
        let c = v.classification.clone().unwrap_or_default();
        let commerce = v.commerce.clone().unwrap_or_default();
        let amounts = commerce
            .amounts
            .iter()
            .find(|a| a.currency == CURRENCY)
            .cloned()
            .unwrap_or_default();
        let service = v.service.clone().unwrap_or_default();
        Self {
            customer_id: v.customer_id.clone(),
            version: v.version,
            registered_at: micros(v.registered_at.as_ref()),
            given_name: p.given_name,
            family_name: p.family_name,
            email: p.emails.first().cloned().unwrap_or_default(),
            phone: p.phones.first().cloned().unwrap_or_default(),
            owner: v.owner.clone(),
            team: v.team.clone(),
            lifecycle: c.lifecycle,
            value_class: c.value_class,
            segment: c.segment,
            tags: v.tags.join(";"),
            orders: commerce.orders,
            repeat_orders: commerce.repeat_orders,
            first_order_at: micros(commerce.first_order_at.as_ref()),
            last_order_at: micros(commerce.last_order_at.as_ref()),
            currency: CURRENCY.to_owned(),
            revenue_minor: amounts.revenue_minor,
            refunded_minor: amounts.refunded_minor,
            returns: commerce.returns,
            open_tickets: service.open_tickets,
            complaints_last_90d: service.complaints_last_90d,
            csat_share: service.csat_share,
            dead_lettered: u32::try_from(v.dead_lettered_positions.len()).unwrap_or(u32::MAX),
        }
    }
}

impl CustomerRow {
    fn columns(rows: &[Self]) -> Columns {
        let u32_field = |n: &str| Field::new(n, DataType::UInt32, false);
        vec![
            (text_field("customer_id"), texts(rows, |r| &r.customer_id)),
            (
                Field::new("version", DataType::UInt64, false),
                u64s(rows, |r| r.version),
            ),
            (
                time_field("registered_at", true),
                times(rows, |r| r.registered_at),
            ),
            (text_field("given_name"), texts(rows, |r| &r.given_name)),
            (text_field("family_name"), texts(rows, |r| &r.family_name)),
            (text_field("email"), texts(rows, |r| &r.email)),
            (text_field("phone"), texts(rows, |r| &r.phone)),
            (text_field("owner"), texts(rows, |r| &r.owner)),
            (text_field("team"), texts(rows, |r| &r.team)),
            (text_field("lifecycle"), texts(rows, |r| &r.lifecycle)),
            (text_field("value_class"), texts(rows, |r| &r.value_class)),
            (text_field("segment"), texts(rows, |r| &r.segment)),
            (text_field("tags"), texts(rows, |r| &r.tags)),
            (u32_field("orders"), u32s(rows, |r| r.orders)),
            (u32_field("repeat_orders"), u32s(rows, |r| r.repeat_orders)),
            (
                time_field("first_order_at", true),
                times(rows, |r| r.first_order_at),
            ),
            (
                time_field("last_order_at", true),
                times(rows, |r| r.last_order_at),
            ),
            (text_field("currency"), texts(rows, |r| &r.currency)),
            (
                Field::new("revenue_minor", DataType::Int64, false),
                i64s(rows, |r| r.revenue_minor),
            ),
            (
                Field::new("refunded_minor", DataType::Int64, false),
                i64s(rows, |r| r.refunded_minor),
            ),
            (u32_field("returns"), u32s(rows, |r| r.returns)),
            (u32_field("open_tickets"), u32s(rows, |r| r.open_tickets)),
            (
                u32_field("complaints_last_90d"),
                u32s(rows, |r| r.complaints_last_90d),
            ),
            (
                Field::new("csat_share", DataType::Float64, true),
                opt_f64s(rows, |r| r.csat_share),
            ),
            (u32_field("dead_lettered"), u32s(rows, |r| r.dead_lettered)),
        ]
    }
}

row_from_columns!(CustomerRow);

/// Exports every customer of the 360° build in `dir` as of `as_of` to `out`;
/// `progress(done, total)` every 1,000 customers.
///
/// # Errors
/// The directory (none, not a read-model directory, held by a running process), a
/// stored value that does not decode, the file.
pub fn export_customers(
    dir: &Path,
    format: Format,
    out: &Path,
    as_of: i64,
    pii: bool,
    mut progress: impl FnMut(u64, u64),
) -> Result<Exported, AnalystError> {
    let dir = read_model_dir(dir)?;
    let fail = |message: String| AnalystError::Directory {
        dir: dir.display().to_string(),
        message,
    };
    let db = open_dir(&dir)?;
    let reader = open_live(&db, &dir, Customer360::default())?;
    let queries = Queries::new(reader);
    let query = |e: crm_customer360::QueryError| fail(e.to_string());
    let population = queries.population().map_err(query)?;
    let position = queries.model().checkpoint();
    let ids: Vec<[u8; 16]> = queries
        .model()
        .scan(&[crm_customer360::keys::CUSTOMER], None, false)
        .map(|r| r.map(|(k, _)| <[u8; 16]>::try_from(&k[1..]).unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    let total = ids.len() as u64;
    let mut rows = RowWriter::<CustomerRow>::create(out, format)?;
    for (n, id) in ids.into_iter().enumerate() {
        let Some(record) = queries.customer(id).map_err(query)? else {
            continue;
        };
        let facts = queries.facts(id).map_err(query)?;
        let classes = queries.classify(&record, &facts, &population, as_of);
        let view = crm_customer360::reply::customer360(&record, &classes, as_of, pii, position);
        rows.write(&CustomerRow::of(&view))?;
        if n % 1_000 == 0 {
            progress(n as u64, total);
        }
    }
    progress(total, total);
    rows.finish(position)
}

/// GetCustomer360 calls in flight.
const IN_FLIGHT: usize = 32;

/// Exports every customer as a running service renders them to `token` at `as_of`:
/// `ListCustomers` a page of 1,000 ids at a time, each customer through
/// `GetCustomer360` (32 in flight, written in list order). Personal columns carry what
/// the service shows that principal: nothing without `pii.read`. Memory holds one page
/// of ids and the calls in flight, whatever the number of customers; every call after
/// the first waits for the position the first page was read at.
///
/// # Errors
/// The service's refusal (the code and message), the file.
pub async fn export_customers_from_service(
    channel: tonic::transport::Channel,
    token: &str,
    format: Format,
    out: &Path,
    as_of: i64,
    mut progress: impl FnMut(u64),
) -> Result<Exported, AnalystError> {
    use crm_proto::v1::{self, query_service_client::QueryServiceClient};
    use futures::StreamExt as _;

    let q = QueryServiceClient::new(channel);
    let at = Some(crm_proto::timestamp_to_proto(
        crm_domain::Timestamp::from_micros(as_of),
    ));
    let mut rows = RowWriter::<CustomerRow>::create(out, format)?;
    let (mut page_token, mut n, mut position) = (String::new(), 0_u64, None);
    loop {
        let consistency = position.map(|min_position| v1::Consistency { min_position });
        let page = answer(
            q.clone()
                .list_customers(authed(
                    v1::ListCustomersRequest {
                        page_size: 1_000,
                        page_token,
                        as_of: at,
                        consistency,
                        ..Default::default()
                    },
                    token,
                )?)
                .await,
        )?;
        let read_at = *position.get_or_insert(page.read.as_ref().map_or(0, |r| r.position));
        let calls = page.customers.into_iter().map(|c| {
            let mut q = q.clone();
            let request = authed(
                v1::GetCustomer360Request {
                    customer_id: c.customer_id,
                    as_of: at,
                    consistency: Some(v1::Consistency {
                        min_position: read_at,
                    }),
                },
                token,
            );
            async move { q.get_customer360(request?).await.map_err(|s| refused(&s)) }
        });
        let mut views = futures::stream::iter(calls).buffered(IN_FLIGHT);
        while let Some(view) = views.next().await {
            rows.write(&CustomerRow::of(&view?.into_inner()))?;
            n += 1;
        }
        progress(n);
        if page.next_page_token.is_empty() {
            return rows.finish(read_at);
        }
        page_token = page.next_page_token;
    }
}
