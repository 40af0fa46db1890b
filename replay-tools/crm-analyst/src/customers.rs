//! The customer 360° read model exported, one row per customer, from a read-model
//! directory (an offline build, a stopped service's data directory, a copy): each
//! customer rendered exactly as `GetCustomer360` renders it at `as_of` (same
//! classification, same personal-data rule), flattened to columns.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::builder::{
    Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use crm_customer360::{Customer360, Queries};
use crm_projection::{ProjectionStore, live_tree};

use crate::AnalystError;
use crate::build::open_dir;
use crate::export::{Exported, Format, Row, RowWriter, timestamp};

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

fn opt_rfc3339<S: serde::Serializer>(micros: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match micros {
        Some(m) => s.serialize_str(&timestamp(*m)),
        None => s.serialize_none(),
    }
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

impl Row for CustomerRow {
    fn schema() -> Arc<Schema> {
        let text = |n: &str| Field::new(n, DataType::Utf8, false);
        let time = |n: &str| {
            Field::new(
                n,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            )
        };
        let u32f = |n: &str| Field::new(n, DataType::UInt32, false);
        Arc::new(Schema::new(vec![
            text("customer_id"),
            Field::new("version", DataType::UInt64, false),
            time("registered_at"),
            text("given_name"),
            text("family_name"),
            text("email"),
            text("phone"),
            text("owner"),
            text("team"),
            text("lifecycle"),
            text("value_class"),
            text("segment"),
            text("tags"),
            u32f("orders"),
            u32f("repeat_orders"),
            time("first_order_at"),
            time("last_order_at"),
            text("currency"),
            Field::new("revenue_minor", DataType::Int64, false),
            Field::new("refunded_minor", DataType::Int64, false),
            u32f("returns"),
            u32f("open_tickets"),
            u32f("complaints_last_90d"),
            Field::new("csat_share", DataType::Float64, true),
            u32f("dead_lettered"),
        ]))
    }

    fn batch(rows: &[Self]) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let texts = |f: &dyn Fn(&Self) -> &str| {
            let mut b = StringBuilder::new();
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish()) as arrow_array::ArrayRef
        };
        let times = |f: &dyn Fn(&Self) -> Option<i64>| {
            let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            rows.iter().for_each(|r| b.append_option(f(r)));
            Arc::new(b.finish()) as arrow_array::ArrayRef
        };
        let u32s = |f: &dyn Fn(&Self) -> u32| {
            let mut b = UInt32Builder::new();
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish()) as arrow_array::ArrayRef
        };
        let i64s = |f: &dyn Fn(&Self) -> i64| {
            let mut b = Int64Builder::new();
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish()) as arrow_array::ArrayRef
        };
        let mut version = UInt64Builder::new();
        let mut csat = Float64Builder::new();
        for r in rows {
            version.append_value(r.version);
            csat.append_option(r.csat_share);
        }
        RecordBatch::try_new(
            Self::schema(),
            vec![
                texts(&|r| &r.customer_id),
                Arc::new(version.finish()),
                times(&|r| r.registered_at),
                texts(&|r| &r.given_name),
                texts(&|r| &r.family_name),
                texts(&|r| &r.email),
                texts(&|r| &r.phone),
                texts(&|r| &r.owner),
                texts(&|r| &r.team),
                texts(&|r| &r.lifecycle),
                texts(&|r| &r.value_class),
                texts(&|r| &r.segment),
                texts(&|r| &r.tags),
                u32s(&|r| r.orders),
                u32s(&|r| r.repeat_orders),
                times(&|r| r.first_order_at),
                times(&|r| r.last_order_at),
                texts(&|r| &r.currency),
                i64s(&|r| r.revenue_minor),
                i64s(&|r| r.refunded_minor),
                u32s(&|r| r.returns),
                u32s(&|r| r.open_tickets),
                u32s(&|r| r.complaints_last_90d),
                Arc::new(csat.finish()),
                u32s(&|r| r.dead_lettered),
            ],
        )
    }
}

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
    let nested = dir.join("read-models");
    let dir = if nested.is_dir() {
        nested.as_path()
    } else {
        dir
    };
    let fail = |message: String| AnalystError::Directory {
        dir: dir.display().to_string(),
        message,
    };
    if !dir.join("db").is_file() {
        return Err(fail(
            "is not a read-model directory (no sled database in it)".into(),
        ));
    }
    let db = open_dir(dir)?;
    let tree = live_tree(&db, "customer360")?.unwrap_or_else(|| "customer360".to_owned());
    if !db
        .tree_names()
        .iter()
        .any(|t| t.as_ref() == tree.as_bytes())
    {
        return Err(fail("holds no build of customer360".into()));
    }
    let store = ProjectionStore::open_tree(
        &db,
        &tree,
        Arc::new(Customer360::default()),
        crm_events::SubjectScheme::default(),
        false,
    )?;
    let queries = Queries::new(store.reader());
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
