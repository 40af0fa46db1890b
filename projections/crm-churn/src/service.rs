//! The churn models as a read side serves them: fits on the projection's purchases,
//! stored and served ([`crate::models`]), one customer's figures under a model, and the
//! ranking of every customer by value at risk. Blocking (sled reads and fits): call from
//! a blocking task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crm_projection::{ProjectionError, ReadModel};

use crate::fit::{ChurnFit, TimeUnit, end_of_day, fit_stats};
use crate::model::FitError;
use crate::models::{ModelStore, StoreError, StoredModel, model_id};
use crate::predict::{PredictConfig, Prediction, predict};
use crate::purchases::{PURCHASES, Purchases};
use crate::signals::{self, Service};

/// How the served figures are computed (configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct ChurnConfig {
    /// The currency of the spend statistics (the fold's reporting currency).
    pub currency: String,
    pub time_unit: TimeUnit,
    pub predict: PredictConfig,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        Self {
            currency: "EUR".into(),
            time_unit: TimeUnit::Day,
            predict: PredictConfig::default(),
        }
    }
}

/// Why a churn figure cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum ChurnError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "no churn model is served yet: fit one with FitModel (serve = true) or wait for the scheduled fit"
    )]
    NoServedModel,
    #[error("no churn model {0:?} is stored")]
    UnknownModel(String),
    #[error(
        "customer {0} has no purchase by the requested moment: the churn models cover customers from their first purchase"
    )]
    NotInPopulation(String),
    #[error("the churn read model's value under {key} does not decode: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the churn models cannot be fitted at this calibration end: {0}")]
    Fit(#[from] FitError),
}

/// How a ranking is ordered (highest first, then by customer id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RiskOrder {
    ValueAtRisk,
    Risk,
    Clv,
}

/// One customer in a ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct AtRisk {
    pub customer: [u8; 16],
    pub prediction: Prediction,
    /// CLV x (1 - P(alive)).
    pub value_at_risk: f64,
}

impl AtRisk {
    /// The value a ranking orders by.
    #[must_use]
    pub fn key(&self, order: RiskOrder) -> f64 {
        match order {
            RiskOrder::ValueAtRisk => self.value_at_risk,
            RiskOrder::Risk => self.prediction.risk.score,
            RiskOrder::Clv => self.prediction.clv,
        }
    }
}

/// Every customer of the population at one moment under one model: the snapshot a
/// paged listing walks.
#[derive(Debug)]
pub struct Ranking {
    pub model_id: String,
    pub as_of: i64,
    /// The read model's position when the ranking was computed.
    pub position: u64,
    /// In customer id order.
    pub entries: Vec<AtRisk>,
    orders: [OnceLock<Vec<u32>>; 3],
}

impl Ranking {
    /// Entry indexes, highest `order` key first, ties by customer id (sorted once).
    pub fn ordered(&self, order: RiskOrder) -> &[u32] {
        self.orders[order as usize].get_or_init(|| {
            let mut idx: Vec<u32> =
                (0..u32::try_from(self.entries.len()).unwrap_or(u32::MAX)).collect();
            idx.sort_by(|&a, &b| {
                let (a, b) = (&self.entries[a as usize], &self.entries[b as usize]);
                b.key(order)
                    .total_cmp(&a.key(order))
                    .then(a.customer.cmp(&b.customer))
            });
            idx
        })
    }
}

/// Rankings kept for paging; a first page reuses one this young (wall clock).
const RANKINGS_KEPT: usize = 4;
const RANKING_MAX_AGE_MICROS: i64 = 60_000_000;

/// What the churn models did in this process, for metrics.
#[derive(Debug, Default)]
pub struct ChurnStats {
    pub fits: AtomicU64,
    pub fits_failed: AtomicU64,
    /// The last fit's duration (successful or not), microseconds.
    pub last_fit_micros: AtomicU64,
    /// Rankings computed for `ListAtRisk`, and the last one's duration.
    pub rankings: AtomicU64,
    pub last_ranking_micros: AtomicU64,
}

fn micros_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The churn models of one read side.
#[derive(Debug)]
pub struct ChurnModels {
    read: ReadModel,
    store: ModelStore,
    cfg: ChurnConfig,
    rankings: Mutex<Vec<Arc<Ranking>>>,
    stats: ChurnStats,
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, ChurnError> {
    postcard::from_bytes(bytes).map_err(|e| ChurnError::Corrupt {
        key: hex_key(key),
        reason: e.to_string(),
    })
}

fn hex_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

impl ChurnModels {
    #[must_use]
    pub fn new(read: ReadModel, store: ModelStore, cfg: ChurnConfig) -> Self {
        Self {
            read,
            store,
            cfg,
            rankings: Mutex::new(Vec::new()),
            stats: ChurnStats::default(),
        }
    }

    #[must_use]
    pub fn stats(&self) -> &ChurnStats {
        &self.stats
    }

    #[must_use]
    pub fn read_model(&self) -> &ReadModel {
        &self.read
    }

    #[must_use]
    pub fn config(&self) -> &ChurnConfig {
        &self.cfg
    }

    /// Fits both models on every customer's purchases up to `calibration_end`'s day,
    /// stores the fit and serves it when `serve`. Nothing is stored when it fails.
    ///
    /// # Errors
    /// A degenerate population or no convergence ([`ChurnError::Fit`]), storage.
    pub fn fit(
        &self,
        calibration_end: i64,
        serve: bool,
        fitted_by: &str,
        fitted_at: i64,
    ) -> Result<StoredModel, ChurnError> {
        let position = self.read.checkpoint();
        let started = Instant::now();
        let fit = self.fit_read_model(calibration_end);
        self.stats
            .last_fit_micros
            .store(micros_since(started), Ordering::Relaxed);
        let counter = if fit.is_ok() {
            &self.stats.fits
        } else {
            &self.stats.fits_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let fit = fit?;
        let model = StoredModel {
            model_id: model_id(&fit, position),
            fit,
            position,
            currency: self.cfg.currency.clone(),
            fitted_at,
            fitted_by: fitted_by.to_owned(),
        };
        self.store.put(&model, serve)?;
        tracing::info!(
            model = %model.model_id,
            customers = model.fit.customers,
            serve,
            by = fitted_by,
            "churn model fitted"
        );
        Ok(model)
    }

    fn fit_read_model(&self, calibration_end: i64) -> Result<ChurnFit, ChurnError> {
        let cut = end_of_day(calibration_end);
        let mut failed = None;
        let stats = self
            .read
            .scan(&[PURCHASES], None, false)
            .map(|r| {
                r.map_err(ChurnError::from)
                    .and_then(|(k, v)| decode::<Purchases>(&k, &v))
            })
            .map_while(|r| r.map_err(|e| failed = Some(e)).ok())
            .filter_map(|p| p.stats(cut, &self.cfg.currency));
        let fit = fit_stats(stats, calibration_end, self.cfg.time_unit);
        match failed {
            Some(e) => Err(e),
            None => Ok(fit?),
        }
    }

    /// A stored model; `""` is the served one.
    ///
    /// # Errors
    /// [`ChurnError::NoServedModel`], [`ChurnError::UnknownModel`], storage.
    pub fn model(&self, id: &str) -> Result<StoredModel, ChurnError> {
        if id.is_empty() {
            return self.store.served()?.ok_or(ChurnError::NoServedModel);
        }
        self.store
            .get(id)?
            .ok_or_else(|| ChurnError::UnknownModel(id.to_owned()))
    }

    /// The served model's id.
    ///
    /// # Errors
    /// Storage.
    pub fn served_id(&self) -> Result<Option<String>, ChurnError> {
        Ok(self.store.served_id()?)
    }

    fn service(&self, customer: [u8; 16]) -> Result<Option<Service>, ChurnError> {
        let k = signals::key(customer);
        self.read.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    /// One customer's figures at `as_of` under `model`, expected transactions over
    /// `horizon_days`.
    ///
    /// # Errors
    /// [`ChurnError::NotInPopulation`] without a purchase by `as_of`, storage.
    pub fn customer(
        &self,
        customer: [u8; 16],
        as_of: i64,
        model: &StoredModel,
        horizon_days: f64,
    ) -> Result<Prediction, ChurnError> {
        let not_in = || ChurnError::NotInPopulation(uuid_string(customer));
        let k = crate::purchases::key(customer);
        let purchases: Purchases = match self.read.get(&k)? {
            Some(v) => decode(&k, &v)?,
            None => return Err(not_in()),
        };
        let service = self.service(customer)?;
        let cfg = PredictConfig {
            horizon_days,
            ..self.cfg.predict.clone()
        };
        predict(
            &model.fit,
            &purchases,
            service.as_ref(),
            as_of,
            &model.currency,
            &cfg,
        )
        .ok_or_else(not_in)
    }

    /// The ranking for a listing's page: the one at `at` (a later page's snapshot) or,
    /// for a first page, a ranking under `model` no older than a minute whose position
    /// reaches `min_position`, else a new one at `now`. A later page whose snapshot is no
    /// longer kept gets it recomputed at the same moment from the current read model.
    ///
    /// # Errors
    /// Storage, or a stored value that does not decode.
    pub fn ranking(
        &self,
        model: &StoredModel,
        at: Option<i64>,
        now: i64,
        min_position: u64,
    ) -> Result<Arc<Ranking>, ChurnError> {
        let kept = self
            .rankings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|r| {
                r.model_id == model.model_id
                    && match at {
                        Some(at) => r.as_of == at,
                        None => {
                            r.position >= min_position && now - r.as_of <= RANKING_MAX_AGE_MICROS
                        }
                    }
            })
            .cloned();
        if let Some(r) = kept {
            return Ok(r);
        }
        let started = Instant::now();
        let ranking = Arc::new(self.rank(model, at.unwrap_or(now))?);
        self.stats.rankings.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_ranking_micros
            .store(micros_since(started), Ordering::Relaxed);
        let mut kept = self
            .rankings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.insert(0, Arc::clone(&ranking));
        kept.truncate(RANKINGS_KEPT);
        Ok(ranking)
    }

    fn rank(&self, model: &StoredModel, as_of: i64) -> Result<Ranking, ChurnError> {
        let position = self.read.checkpoint();
        let mut entries = Vec::new();
        self.each_prediction(model, as_of, |customer, prediction| {
            entries.push(AtRisk {
                customer,
                value_at_risk: prediction.clv * (1.0 - prediction.p_alive),
                prediction,
            });
            Ok::<_, ChurnError>(())
        })?;
        Ok(Ranking {
            model_id: model.model_id.clone(),
            as_of,
            position,
            entries,
            orders: Default::default(),
        })
    }

    /// Calls `f` with every customer who has a purchase by `as_of` (the model's
    /// population at that moment), in customer id order, and their figures under `model`
    /// with the configured horizon; stops at `f`'s first error.
    ///
    /// # Errors
    /// Storage, a stored value that does not decode, or `f`'s error.
    pub fn each_prediction<E: From<ChurnError>>(
        &self,
        model: &StoredModel,
        as_of: i64,
        mut f: impl FnMut([u8; 16], Prediction) -> Result<(), E>,
    ) -> Result<(), E> {
        for r in self.read.scan(&[PURCHASES], None, false) {
            let (k, v) = r.map_err(ChurnError::from)?;
            let purchases: Purchases = decode(&k, &v)?;
            let Some(customer) = k.get(1..17).and_then(|c| <[u8; 16]>::try_from(c).ok()) else {
                continue;
            };
            let service = self.service(customer)?;
            if let Some(prediction) = predict(
                &model.fit,
                &purchases,
                service.as_ref(),
                as_of,
                &model.currency,
                &self.cfg.predict,
            ) {
                f(customer, prediction)?;
            }
        }
        Ok(())
    }
}

fn uuid_string(id: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(id).to_string()
}
