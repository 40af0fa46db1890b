//! The scheduled churn refit: the models are fitted again at calibration end "now" and
//! the new fit served `every` after the served one was fitted (at once when none is
//! served), once the churn projection's live build has caught up with the stream. A
//! fit that fails (a degenerate population: e.g. no repeat customer yet) keeps the
//! served model and is tried again after a pause.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crm_churn::service::ChurnModels;
use crm_projection::{BuildState, HostedProjection, ProjectionError};
use tokio::sync::watch;

/// The longest pause before a failed or postponed fit is tried again.
const RETRY: Duration = Duration::from_secs(600);
/// How often the runner looks whether the projection has caught up.
const CATCH_UP_POLL: Duration = Duration::from_secs(5);

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Whether the projection's served build is live and at the stream's head.
fn caught_up(projection: &dyn HostedProjection) -> bool {
    projection
        .status()
        .builds
        .first()
        .is_some_and(|b| b.state == BuildState::Live && b.checkpoint >= b.head)
}

fn has_served(churn: &ChurnModels) -> bool {
    matches!(churn.served_id(), Ok(Some(_)))
}

/// How long until the served model is due for a refit (zero when none is served).
fn until_due(churn: &ChurnModels, every: Duration) -> Duration {
    match churn.model("") {
        Ok(served) => {
            let age = u64::try_from(now_micros() - served.fitted_at).unwrap_or(0);
            every.saturating_sub(Duration::from_micros(age))
        }
        Err(_) => Duration::ZERO,
    }
}

/// Refits until `stop` turns true; never returns an error of its own (a failed fit is
/// logged and retried), so the read side goes on.
pub async fn run(
    churn: Arc<ChurnModels>,
    projection: Arc<dyn HostedProjection>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ProjectionError> {
    let mut wait = Duration::ZERO;
    loop {
        let due = {
            let c = Arc::clone(&churn);
            tokio::task::spawn_blocking(move || until_due(&c, every))
                .await
                .unwrap_or(RETRY)
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(()),
            () = tokio::time::sleep(wait.max(due)) => {}
        }
        if !caught_up(projection.as_ref()) {
            wait = CATCH_UP_POLL;
            continue;
        }
        // A model served meanwhile (through FitModel) is not replaced before it is due.
        let c = Arc::clone(&churn);
        if !tokio::task::spawn_blocking(move || until_due(&c, every))
            .await
            .unwrap_or(RETRY)
            .is_zero()
        {
            wait = Duration::ZERO;
            continue;
        }
        let c = Arc::clone(&churn);
        let at = now_micros();
        let fitted = tokio::task::spawn_blocking(move || c.fit(at, true, "scheduler", at)).await;
        wait = match fitted {
            Ok(Ok(_)) => Duration::ZERO,
            // A store with no population yet (a new deployment) is not a fault.
            Ok(Err(e @ crm_churn::service::ChurnError::Fit(_))) if !has_served(&churn) => {
                tracing::info!(error = %e, retry_in_secs = RETRY.min(every).as_secs(), "no churn model yet: nothing to fit on");
                RETRY.min(every)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, retry_in_secs = RETRY.min(every).as_secs(), "scheduled churn fit failed; the served model stays");
                RETRY.min(every)
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduled churn fit panicked");
                RETRY.min(every)
            }
        };
    }
}
