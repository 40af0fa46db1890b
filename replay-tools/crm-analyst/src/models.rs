//! The funnel and churn read models exported from a read-model directory (an offline
//! build, a stopped service's data directory, a copy), as the query API computes them at
//! `as_of`:
//!
//! - **deals**: one row per opportunity opened by `as_of` (`ListDeals`' fields: stage,
//!   status, amount, probability and forecast category frozen at stage entry, owner,
//!   team, lead source and campaign as attributed, times);
//! - **stages**: one row per stay of a deal in a stage (entered, left, days in it);
//! - **churn**: one row per customer with a purchase by `as_of`, under a stored churn
//!   model (default the served one): x, t_x, T, P(alive), expected transactions,
//!   expected spend, CLV, value at risk, the risk score, its band and drivers.
//!
//! Deals are read a page at a time, customers one at a time: memory does not grow with
//! the model. No personal data is in any of these rows (customers by id).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crm_churn::models::{ModelStore, StoredModel};
use crm_churn::predict::Prediction;
use crm_churn::service::{ChurnConfig, ChurnError, ChurnModels};
use crm_funnel::{DealAt, DealStatus};
use crm_projection::{Projection, ProjectionStore, ReadModel, live_tree};

use crate::AnalystError;
use crate::build::open_dir;
use crate::columns::{
    Columns, f64s, i64s, opt_rfc3339, opt_text_field, opt_texts, rfc3339, row_from_columns,
    text_field, texts, time_field, times, u32s,
};
use crate::export::{Exported, Format, RowWriter};

/// The read-model directory itself, or its `read-models` when given a data directory.
pub(crate) fn read_model_dir(dir: &Path) -> Result<PathBuf, AnalystError> {
    let nested = dir.join("read-models");
    let dir = if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    if dir.join("db").is_file() {
        Ok(dir)
    } else {
        Err(AnalystError::Directory {
            dir: dir.display().to_string(),
            message: "is not a read-model directory (no sled database in it)".into(),
        })
    }
}

/// Opens the live build of `projection` in `db` as it is (never cleared or migrated).
pub(crate) fn open_live<P: Projection>(
    db: &sled::Db,
    dir: &Path,
    projection: P,
) -> Result<ReadModel, AnalystError> {
    let tree = live_tree(db, P::NAME)?.unwrap_or_else(|| P::NAME.to_owned());
    if !db
        .tree_names()
        .iter()
        .any(|t| t.as_ref() == tree.as_bytes())
    {
        return Err(AnalystError::Directory {
            dir: dir.display().to_string(),
            message: format!("holds no build of {}", P::NAME),
        });
    }
    let store = ProjectionStore::open_tree(
        db,
        &tree,
        Arc::new(projection),
        crm_events::SubjectScheme::default(),
        false,
    )?;
    Ok(store.reader())
}

fn uuid(id: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(id).to_string()
}

/// One deal as of the export's moment.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DealRow {
    pub opportunity_id: String,
    pub customer_id: String,
    pub name: String,
    pub pipeline: String,
    /// The current stage; for a closed deal the stage it closed in.
    pub stage: String,
    /// open, won or lost.
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    /// Frozen at the entry of the current stage.
    pub probability_pct: u32,
    pub forecast_category: String,
    pub owner: Option<String>,
    pub team: Option<String>,
    pub lead_source: Option<String>,
    pub lead_id: Option<String>,
    pub campaign_id: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub opened_at: i64,
    #[serde(serialize_with = "opt_rfc3339")]
    pub expected_close: Option<i64>,
    #[serde(serialize_with = "rfc3339")]
    pub stage_entered_at: i64,
    #[serde(serialize_with = "opt_rfc3339")]
    pub closed_at: Option<i64>,
    pub loss_reason: Option<String>,
    /// Stays in stages so far (a stage entered twice counts twice).
    pub stage_visits: u32,
}

impl DealRow {
    fn of(d: &DealAt) -> Self {
        Self {
            opportunity_id: uuid(d.id),
            customer_id: uuid(d.customer),
            name: d.name.clone(),
            pipeline: d.pipeline.clone(),
            stage: d.stage.clone(),
            status: status(d.status).to_owned(),
            amount_minor: d.amount_minor,
            currency: d.currency.clone(),
            probability_pct: u32::from(d.probability_pct),
            forecast_category: crm_funnel::category_name(d.forecast).to_owned(),
            owner: d.owner.clone(),
            team: d.team.clone(),
            lead_source: d.source.clone(),
            lead_id: d.lead.map(uuid),
            campaign_id: d.campaign.map(uuid),
            opened_at: d.opened_at,
            expected_close: d.expected_close,
            stage_entered_at: d.stage_entered_at(),
            closed_at: d.closed_at,
            loss_reason: d.loss_reason.clone(),
            stage_visits: u32::try_from(d.visits.len()).unwrap_or(u32::MAX),
        }
    }

    fn columns(rows: &[Self]) -> Columns {
        vec![
            (
                text_field("opportunity_id"),
                texts(rows, |r| &r.opportunity_id),
            ),
            (text_field("customer_id"), texts(rows, |r| &r.customer_id)),
            (text_field("name"), texts(rows, |r| &r.name)),
            (text_field("pipeline"), texts(rows, |r| &r.pipeline)),
            (text_field("stage"), texts(rows, |r| &r.stage)),
            (text_field("status"), texts(rows, |r| &r.status)),
            (int_field("amount_minor"), i64s(rows, |r| r.amount_minor)),
            (text_field("currency"), texts(rows, |r| &r.currency)),
            (
                u32_field("probability_pct"),
                u32s(rows, |r| r.probability_pct),
            ),
            (
                text_field("forecast_category"),
                texts(rows, |r| &r.forecast_category),
            ),
            (
                opt_text_field("owner"),
                opt_texts(rows, |r| r.owner.as_deref()),
            ),
            (
                opt_text_field("team"),
                opt_texts(rows, |r| r.team.as_deref()),
            ),
            (
                opt_text_field("lead_source"),
                opt_texts(rows, |r| r.lead_source.as_deref()),
            ),
            (
                opt_text_field("lead_id"),
                opt_texts(rows, |r| r.lead_id.as_deref()),
            ),
            (
                opt_text_field("campaign_id"),
                opt_texts(rows, |r| r.campaign_id.as_deref()),
            ),
            (
                time_field("opened_at", false),
                times(rows, |r| Some(r.opened_at)),
            ),
            (
                time_field("expected_close", true),
                times(rows, |r| r.expected_close),
            ),
            (
                time_field("stage_entered_at", false),
                times(rows, |r| Some(r.stage_entered_at)),
            ),
            (time_field("closed_at", true), times(rows, |r| r.closed_at)),
            (
                opt_text_field("loss_reason"),
                opt_texts(rows, |r| r.loss_reason.as_deref()),
            ),
            (u32_field("stage_visits"), u32s(rows, |r| r.stage_visits)),
        ]
    }
}

fn int_field(name: &str) -> arrow_schema::Field {
    arrow_schema::Field::new(name, arrow_schema::DataType::Int64, false)
}

fn u32_field(name: &str) -> arrow_schema::Field {
    arrow_schema::Field::new(name, arrow_schema::DataType::UInt32, false)
}

fn f64_field(name: &str) -> arrow_schema::Field {
    arrow_schema::Field::new(name, arrow_schema::DataType::Float64, false)
}

const fn status(s: DealStatus) -> &'static str {
    match s {
        DealStatus::Open => "open",
        DealStatus::Won => "won",
        DealStatus::Lost => "lost",
    }
}

row_from_columns!(DealRow);

/// One stay of a deal in a stage.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StageRow {
    pub opportunity_id: String,
    pub pipeline: String,
    /// 1 for the stage the deal opened in, then in order.
    pub visit: u32,
    pub stage: String,
    #[serde(serialize_with = "rfc3339")]
    pub entered_at: i64,
    /// When the deal moved on; empty while it is there or when it closed in it.
    #[serde(serialize_with = "opt_rfc3339")]
    pub left_at: Option<i64>,
    /// Days in the stage: to `left_at`, else the close, else the export's moment.
    pub days: f64,
    /// The deal's status as of the export's moment.
    pub deal_status: String,
}

impl StageRow {
    #[allow(clippy::cast_precision_loss)]
    fn of(d: &DealAt, as_of: i64) -> impl Iterator<Item = Self> + '_ {
        let end = d.closed_at.unwrap_or(as_of);
        d.visits.iter().enumerate().map(move |(i, v)| Self {
            opportunity_id: uuid(d.id),
            pipeline: d.pipeline.clone(),
            visit: u32::try_from(i + 1).unwrap_or(u32::MAX),
            stage: v.stage.clone(),
            entered_at: v.entered_at,
            left_at: v.left_at,
            days: v.duration(end) as f64 / 86_400_000_000.0,
            deal_status: status(d.status).to_owned(),
        })
    }

    fn columns(rows: &[Self]) -> Columns {
        vec![
            (
                text_field("opportunity_id"),
                texts(rows, |r| &r.opportunity_id),
            ),
            (text_field("pipeline"), texts(rows, |r| &r.pipeline)),
            (u32_field("visit"), u32s(rows, |r| r.visit)),
            (text_field("stage"), texts(rows, |r| &r.stage)),
            (
                time_field("entered_at", false),
                times(rows, |r| Some(r.entered_at)),
            ),
            (time_field("left_at", true), times(rows, |r| r.left_at)),
            (f64_field("days"), f64s(rows, |r| r.days)),
            (text_field("deal_status"), texts(rows, |r| &r.deal_status)),
        ]
    }
}

row_from_columns!(StageRow);

/// Which funnel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FunnelTable {
    Deals,
    Stages,
}

/// Deals read per page.
const DEAL_PAGE: usize = 1_000;

/// Exports the funnel's deals (or their stage stays) as of `as_of` from the read-model
/// directory `dir` to `out`; `progress(deals)` after each page.
///
/// # Errors
/// The directory (none, not a read-model directory, held by a running process), a
/// stored value that does not decode, the file.
pub fn export_funnel(
    dir: &Path,
    table: FunnelTable,
    format: Format,
    out: &Path,
    as_of: i64,
    mut progress: impl FnMut(u64),
) -> Result<Exported, AnalystError> {
    let dir = read_model_dir(dir)?;
    let db = open_dir(&dir)?;
    let read = open_live(&db, &dir, crm_funnel::Funnel)?;
    let position = read.checkpoint();
    let mut deals_out = (table == FunnelTable::Deals)
        .then(|| RowWriter::<DealRow>::create(out, format))
        .transpose()?;
    let mut stages_out = (table == FunnelTable::Stages)
        .then(|| RowWriter::<StageRow>::create(out, format))
        .transpose()?;
    let (mut after, mut deals) = (None, 0_u64);
    loop {
        let page = crm_funnel::deals_page(&read, as_of, after.as_deref(), DEAL_PAGE, &|_| true)?;
        for d in &page {
            if let Some(w) = deals_out.as_mut() {
                w.write(&DealRow::of(d))?;
            }
            if let Some(w) = stages_out.as_mut() {
                for row in StageRow::of(d, as_of) {
                    w.write(&row)?;
                }
            }
        }
        deals += page.len() as u64;
        progress(deals);
        match page.last() {
            Some(d) if page.len() == DEAL_PAGE => {
                after = Some(crm_funnel::keys::deal_key(d.id));
            }
            _ => break,
        }
    }
    match (deals_out, stages_out) {
        (Some(w), _) => w.finish(position),
        (_, Some(w)) => w.finish(position),
        (None, None) => unreachable!("one table is always chosen"),
    }
}

/// One customer under a churn model.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ChurnRow {
    pub customer_id: String,
    pub model_id: String,
    /// day or week: the unit of t_x and t.
    pub time_unit: String,
    pub x: u32,
    pub t_x: f64,
    pub t: f64,
    pub p_alive: f64,
    pub horizon_days: f64,
    pub expected_transactions: f64,
    /// Minor units of `currency`.
    pub expected_average_spend: f64,
    pub clv: f64,
    pub value_at_risk: f64,
    pub currency: String,
    pub base_risk: f64,
    pub risk_score: f64,
    pub band: String,
    /// `name:+delta` for each driver, `;`-separated.
    pub drivers: String,
}

impl ChurnRow {
    fn of(customer: [u8; 16], model: &StoredModel, horizon_days: f64, p: &Prediction) -> Self {
        Self {
            customer_id: uuid(customer),
            model_id: model.model_id.clone(),
            time_unit: model.fit.time_unit.name().to_owned(),
            x: p.stats.x,
            t_x: p.stats.t_x,
            t: p.stats.t,
            p_alive: p.p_alive,
            horizon_days,
            expected_transactions: p.expected_transactions,
            expected_average_spend: p.expected_average_spend,
            clv: p.clv,
            value_at_risk: p.clv * (1.0 - p.p_alive),
            currency: model.currency.clone(),
            base_risk: p.risk.base,
            risk_score: p.risk.score,
            band: p.risk.band.name().to_owned(),
            drivers: p
                .risk
                .drivers
                .iter()
                .map(|d| format!("{}:{:+.4}", d.name, d.delta))
                .collect::<Vec<_>>()
                .join(";"),
        }
    }

    fn columns(rows: &[Self]) -> Columns {
        vec![
            (text_field("customer_id"), texts(rows, |r| &r.customer_id)),
            (text_field("model_id"), texts(rows, |r| &r.model_id)),
            (text_field("time_unit"), texts(rows, |r| &r.time_unit)),
            (u32_field("x"), u32s(rows, |r| r.x)),
            (f64_field("t_x"), f64s(rows, |r| r.t_x)),
            (f64_field("t"), f64s(rows, |r| r.t)),
            (f64_field("p_alive"), f64s(rows, |r| r.p_alive)),
            (f64_field("horizon_days"), f64s(rows, |r| r.horizon_days)),
            (
                f64_field("expected_transactions"),
                f64s(rows, |r| r.expected_transactions),
            ),
            (
                f64_field("expected_average_spend"),
                f64s(rows, |r| r.expected_average_spend),
            ),
            (f64_field("clv"), f64s(rows, |r| r.clv)),
            (f64_field("value_at_risk"), f64s(rows, |r| r.value_at_risk)),
            (text_field("currency"), texts(rows, |r| &r.currency)),
            (f64_field("base_risk"), f64s(rows, |r| r.base_risk)),
            (f64_field("risk_score"), f64s(rows, |r| r.risk_score)),
            (text_field("band"), texts(rows, |r| &r.band)),
            (text_field("drivers"), texts(rows, |r| &r.drivers)),
        ]
    }
}

row_from_columns!(ChurnRow);

/// Exports every customer with a purchase by `as_of` under the stored churn model
/// `model_id` (empty: the served one) from the read-model directory `dir` to `out`,
/// with `config`'s horizon, discount and risk rules (the service's defaults unless
/// changed); `progress(customers)` every 1,000.
///
/// # Errors
/// The directory, no such model (or none served), a stored value that does not
/// decode, the file.
pub fn export_churn(
    dir: &Path,
    model_id: &str,
    config: ChurnConfig,
    format: Format,
    out: &Path,
    as_of: i64,
    mut progress: impl FnMut(u64),
) -> Result<Exported, AnalystError> {
    let dir = read_model_dir(dir)?;
    let db = open_dir(&dir)?;
    let store = ModelStore::open(&db).map_err(ChurnError::from)?;
    let model: StoredModel = if model_id.is_empty() {
        store
            .served()
            .map_err(ChurnError::from)?
            .ok_or(ChurnError::NoServedModel)?
    } else {
        store
            .get(model_id)
            .map_err(ChurnError::from)?
            .ok_or_else(|| ChurnError::UnknownModel(model_id.to_owned()))?
    };
    let read = open_live(
        &db,
        &dir,
        crm_churn::Churn {
            reporting_currency: model.currency.clone(),
        },
    )?;
    let position = read.checkpoint();
    let horizon = config.predict.horizon_days;
    let models = ChurnModels::new(read, store, config);
    let mut rows = RowWriter::<ChurnRow>::create(out, format)?;
    let mut n = 0_u64;
    models.each_prediction(&model, as_of, |customer, p| {
        rows.write(&ChurnRow::of(customer, &model, horizon, &p))?;
        n += 1;
        if n.is_multiple_of(1_000) {
            progress(n);
        }
        Ok::<_, AnalystError>(())
    })?;
    progress(n);
    rows.finish(position)
}
