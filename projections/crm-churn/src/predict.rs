//! One customer's figures under a fitted model at a moment: P(alive), expected
//! transactions in a horizon, expected average spend, CLV and the churn-risk score.

use crate::fit::ChurnFit;
use crate::model::{self, Stats};
use crate::purchases::Purchases;
use crate::signals::{Risk, RiskRules, Service};

/// What the figures are computed with (configuration; the defaults are the issue's).
#[derive(Clone, Debug, PartialEq)]
pub struct PredictConfig {
    /// Horizon of the expected transactions, days.
    pub horizon_days: f64,
    /// CLV horizon in months, each of `days_per_month` days, discounted monthly.
    pub clv_months: u32,
    pub days_per_month: f64,
    pub monthly_discount: f64,
    pub rules: RiskRules,
}

impl Default for PredictConfig {
    fn default() -> Self {
        Self {
            horizon_days: 90.0,
            clv_months: 12,
            days_per_month: 365.25 / 12.0,
            monthly_discount: 0.01,
            rules: RiskRules::default(),
        }
    }
}

/// A customer's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// (x, t_x, T) in the model's time unit at the moment.
    pub stats: Stats,
    pub p_alive: f64,
    pub expected_transactions: f64,
    /// In minor units of the reporting currency.
    pub expected_average_spend: f64,
    pub clv: f64,
    pub risk: Risk,
}

/// The customer's figures at `as_of` under `fit` (`None`: no purchase by then, so not
/// in the model's population), in the fit's time unit. Spend in `currency`; without
/// repeat spend in it, the population's mean.
#[must_use]
pub fn predict(
    fit: &ChurnFit,
    purchases: &Purchases,
    service: Option<&Service>,
    as_of: i64,
    currency: &str,
    cfg: &PredictConfig,
) -> Option<Prediction> {
    let (stats, spend) = purchases.stats(as_of, currency)?;
    let unit = fit.time_unit.days();
    let stats = fit.time_unit.scale(stats);
    let bgnbd = &fit.bgnbd.params;
    let p_alive = bgnbd.p_alive(stats);
    let expected_average_spend = fit
        .gamma_gamma
        .params
        .expected_spend(spend.unwrap_or(model::Spend { x: 0, m_x: 0.0 }));
    let signals = service.map(|s| s.signals(as_of)).unwrap_or_default();
    Some(Prediction {
        stats,
        p_alive,
        expected_transactions: bgnbd.expected(stats, cfg.horizon_days / unit),
        expected_average_spend,
        clv: model::clv(
            bgnbd,
            expected_average_spend,
            stats,
            cfg.clv_months,
            cfg.days_per_month / unit,
            cfg.monthly_discount,
        ),
        risk: cfg.rules.score(p_alive, &signals),
    })
}
