//! The read side of `crm serve`: the hosted projections, their query services and the
//! supervisors that feed and rebuild them.

use std::path::Path;
use std::sync::Arc;

use crm_churn::models::ModelStore;
use crm_churn::service::{ChurnConfig, ChurnModels};
use crm_customer360::{Customer360, Queries};
use crm_events::SubjectScheme;
use crm_projection::{ProjectionError, ReadSide, RunnerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::RunError;

/// The projections of one process, running.
#[derive(Debug)]
pub struct RunningReadSide {
    pub read_side: Arc<ReadSide>,
    /// The customer 360° model's queries.
    pub customer360: Arc<Queries>,
    /// The funnel's served build.
    pub funnel: crm_projection::ReadModel,
    /// The churn models: fits, the served one, figures.
    pub churn: Arc<ChurnModels>,
    stop: watch::Sender<bool>,
    /// Turns true when a supervisor ended (on shutdown, or because its storage failed).
    ended: watch::Receiver<bool>,
    supervisors: Vec<(&'static str, JoinHandle<Result<(), ProjectionError>>)>,
}

impl RunningReadSide {
    /// Opens the read models in `path` and starts every projection's supervisor.
    pub fn start(
        path: &Path,
        cache_mib: u64,
        scheme: SubjectScheme,
        runner: RunnerConfig,
        churn: (ChurnConfig, std::time::Duration),
        js: &async_nats::jetstream::Context,
    ) -> Result<Self, RunError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mib.saturating_mul(1024 * 1024))
            .open()
            .map_err(|e| RunError::ReadModel {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        let models = ModelStore::open(&db).map_err(|e| RunError::ReadModel {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut read_side = ReadSide::new(db, scheme, runner);
        // Every hosted projection: one line each, and its queries.
        let customer360 = Arc::new(Queries::new(
            read_side.add(Customer360::default())?.reader(),
        ));
        let funnel = read_side.add(crm_funnel::Funnel)?.reader();
        let (churn_config, refit_every) = churn;
        let churn_hosted = read_side.add(crm_churn::Churn {
            reporting_currency: churn_config.currency.clone(),
        })?;
        let churn = Arc::new(ChurnModels::new(
            churn_hosted.reader(),
            models,
            churn_config,
        ));
        tracing::info!(path = %path.display(), "read models opened");

        let (stop, stopped) = watch::channel(false);
        let (ended_tx, ended) = watch::channel(false);
        let ended_tx = Arc::new(ended_tx);
        let mut tasks = read_side.start(js, &stopped);
        if !refit_every.is_zero() {
            tasks.push((
                "churn-refit",
                tokio::spawn(crate::churn_refit::run(
                    Arc::clone(&churn),
                    churn_hosted as Arc<dyn crm_projection::HostedProjection>,
                    refit_every,
                    stopped.clone(),
                )),
            ));
        }
        let supervisors = tasks
            .into_iter()
            .map(|(name, task)| {
                let ended_tx = Arc::clone(&ended_tx);
                let task = tokio::spawn(async move {
                    let result = task
                        .await
                        .unwrap_or_else(|e| Err(ProjectionError::Task(e.to_string())));
                    if let Err(e) = &result {
                        tracing::error!(projection = name, error = %e, "projector stopped");
                    }
                    ended_tx.send_replace(true);
                    result
                });
                (name, task)
            })
            .collect();
        Ok(Self {
            read_side: Arc::new(read_side),
            customer360,
            funnel,
            churn,
            stop,
            ended,
            supervisors,
        })
    }

    /// Completes when a projector stopped on its own: the process must not go on
    /// answering from a read model that no longer advances.
    pub fn on_failure(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut ended = self.ended.clone();
        async move {
            let _ = ended.wait_for(|e| *e).await;
        }
    }

    /// Stops every projector and flushes the read models.
    pub async fn shutdown(self) -> Result<(), ProjectionError> {
        let _ = self.stop.send(true);
        let mut result = Ok(());
        for (_, task) in self.supervisors {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(ProjectionError::Task(e.to_string())),
            }
        }
        self.read_side.flush()?;
        result
    }
}
