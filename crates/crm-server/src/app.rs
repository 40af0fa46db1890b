//! `crm serve`: wires configuration, the (embedded or external) event log, the command
//! handler and the gRPC API, and shuts them down in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crm_api::auth::{Authenticator, Principal, PrincipalKind, Role as AuthRole, token_hash};
use crm_api::server::{ApiConfig, ServeError, Services, TlsPem, serve};
use crm_projection::{RunnerConfig, WriteBack};
use crm_store::{CommandHandler, EventLog, HandlerConfig, LogConfig, StoreError};
use tokio::net::TcpListener;

use crate::config::{Role, ServeConfig};
use crate::embedded::{EmbeddedConfig, EmbeddedError, EmbeddedNats};
use crate::metrics::Metrics;
use crate::nats_auth::{NatsUser, NatsUsers};
use crate::read_side::RunningReadSide;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("read models in {path}: {message}")]
    ReadModel { path: String, message: String },
    #[error("projector: {0}")]
    Projector(#[from] crm_projection::ProjectionError),
    #[error(
        "no credentials configured: pass --tokens-file (or CRM_TOKENS_FILE), or --dev for a local admin token"
    )]
    NoCredentials,
    #[error("{0}")]
    Tokens(#[from] crm_api::auth::TokenFileError),
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("embedded nats-server: {0}")]
    Embedded(#[from] EmbeddedError),
    #[error("NATS users: {0}")]
    NatsUsers(#[from] crate::nats_auth::NatsAuthError),
    #[error("cannot connect to NATS at {urls}: {message}")]
    Connect { urls: String, message: String },
    #[error("event log: {0}")]
    Log(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Serve(#[from] ServeError),
    #[error("notary: {0}")]
    Notary(#[from] crate::notary::NotaryError),
    #[error("data keys: {0}")]
    Keys(#[from] crm_store::keys::KeyError),
    #[error("finishing an interrupted erasure: {0}")]
    Erasure(#[from] crm_store::HandleError),
}

/// Called once the service accepts requests, with the address it listens on and, in
/// `--dev` mode, the generated admin token.
pub type OnReady = Box<dyn FnOnce(SocketAddr, Option<&str>) + Send>;

/// Runs `crm serve` until `shutdown` completes: stops accepting, finishes the requests
/// in flight, then stops the embedded nats-server.
pub async fn run(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
    on_ready: OnReady,
) -> Result<(), RunError> {
    config.validate()?;
    let mut auth = match &config.tokens_file {
        Some(path) => Authenticator::from_file(path)?,
        None => Authenticator::default(),
    };
    let dev_token = config.dev.then(|| {
        let token = format!(
            "crm-dev-{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        auth.add(
            token_hash(&token),
            Principal {
                name: "dev-admin".into(),
                kind: PrincipalKind::User,
                roles: [AuthRole::Admin].into_iter().collect(),
            },
        );
        token
    });
    if auth.is_empty() {
        return Err(RunError::NoCredentials);
    }
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(TlsPem {
            cert: read(cert, "TLS certificate")?,
            key: read(key, "TLS key")?,
        }),
        _ => None,
    };

    let embedded = if config.embedded() {
        Some(EmbeddedNats::start(EmbeddedConfig::from_serve(&config)).await?)
    } else {
        None
    };
    let result = serve_with_log(
        &config,
        embedded.as_ref(),
        auth,
        tls,
        dev_token,
        shutdown,
        on_ready,
    )
    .await;
    if let Some(nats) = embedded {
        nats.shutdown().await;
    }
    result
}

type NotaryTask = (tokio::task::JoinHandle<()>, Arc<crate::notary::NotaryStats>);

/// Starts the notary when a key is configured (or generated: the embedded default).
fn start_notary(
    config: &ServeConfig,
    log_config: &LogConfig,
    reader: async_nats::jetstream::Context,
    writer: async_nats::jetstream::Context,
) -> Result<Option<NotaryTask>, RunError> {
    let Some((path, generate)) = config.notary_key_path() else {
        tracing::warn!("no notary key (--notary-key): no signed anchors are written");
        return Ok(None);
    };
    let key = crate::notary::load_or_generate_key(&path, generate)?;
    tracing::info!(
        public_key = %crate::notary::public_key_hex(&key),
        key = %path.display(),
        "notary: anchors are signed with this key; auditors verify with its public key"
    );
    let cfg = crate::notary::NotaryConfig {
        stream: config.stream.clone(),
        scheme: log_config.scheme(),
        every_messages: config.notary_every_messages,
        every: Duration::from_secs(config.notary_every_secs),
    };
    let stats = Arc::new(crate::notary::NotaryStats::default());
    let task_stats = Arc::clone(&stats);
    let task = tokio::spawn(async move {
        if let Err(e) = crate::notary::run(key, cfg, reader, writer, task_stats).await {
            tracing::error!(error = %e, "the notary stopped");
        }
    });
    Ok(Some((task, stats)))
}

fn read(path: &std::path::Path, what: &'static str) -> Result<Vec<u8>, RunError> {
    std::fs::read(path).map_err(|source| RunError::ReadFile {
        what,
        path: path.display().to_string(),
        source,
    })
}

async fn serve_with_log(
    config: &ServeConfig,
    embedded: Option<&EmbeddedNats>,
    auth: Authenticator,
    tls: Option<TlsPem>,
    dev_token: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
    on_ready: OnReady,
) -> Result<(), RunError> {
    let urls: Vec<String> = match embedded {
        Some(nats) => vec![nats.url().to_owned()],
        None => config.nats_urls.clone(),
    };
    // The command side and the read side connect as different NATS users: on the
    // embedded server the read side may not append (see `nats_auth`).
    let external_users = match &config.nats_users_dir {
        Some(dir) if embedded.is_none() => Some(NatsUsers::load(dir)?),
        _ => None,
    };
    let connect = |user: NatsUser| {
        let options = match (embedded, &external_users) {
            (Some(nats), _) => nats.users().connect_options(user),
            (None, Some(users)) => users.connect_options(user),
            (None, None) => async_nats::ConnectOptions::new(),
        };
        let urls = urls.clone();
        async move {
            options
                .name(format!("crm ({})", user.name()))
                .retry_on_initial_connect()
                .connection_timeout(Duration::from_secs(5))
                .connect(urls.as_slice())
                .await
                .map_err(|e| RunError::Connect {
                    urls: urls.join(","),
                    message: e.to_string(),
                })
        }
    };
    let log_config = LogConfig {
        stream: config.stream.clone(),
        replicas: config.replicas,
        request_timeout: Duration::from_millis(config.nats_request_timeout_ms),
        ..LogConfig::default()
    };
    let log = if matches!(config.role, Role::All | Role::Commands | Role::Notary) {
        Some(EventLog::open(connect(NatsUser::Writer).await?, log_config.clone()).await?)
    } else {
        None
    };
    let js = if matches!(config.role, Role::Commands) {
        None
    } else {
        Some(async_nats::jetstream::new(connect(NatsUser::Reader).await?))
    };
    // The notary reads as the reader and appends its anchors as the writer.
    let notary = match (&js, &log) {
        (Some(js), Some(log)) if matches!(config.role, Role::All | Role::Notary) => {
            start_notary(config, &log_config, js.clone(), log.jetstream().clone())?
        }
        _ => None,
    };
    let log = log.filter(|_| config.role != Role::Notary);
    // The business rules' configuration: the command side decides with it, the funnel
    // follows its pipelines' stage order.
    let domain = crm_domain::DomainConfig {
        business_time: crm_domain::BusinessTimeBounds {
            future_tolerance_mins: config.business_time_tolerance_mins,
            ..crm_domain::BusinessTimeBounds::default()
        },
        ..crm_domain::DomainConfig::default()
    };
    // Personal data is sealed under each customer's data key (crypto-shredding).
    let keys = match (&js, &log) {
        _ if config.role == Role::Notary => None,
        (Some(reader), log) => Some(
            crate::data_keys::open(config, log.as_ref().map(EventLog::jetstream), reader).await?,
        ),
        (None, Some(log)) => {
            Some(crate::data_keys::open(config, Some(log.jetstream()), log.jetstream()).await?)
        }
        (None, None) => None,
    };
    let commands = log.map(|log| {
        let handler = CommandHandler::new(
            log,
            HandlerConfig {
                cache_capacity: std::num::NonZeroUsize::new(config.cache_capacity.max(1))
                    .expect("at least 1"),
                domain: domain.clone(),
                ..HandlerConfig::default()
            },
        );
        match &keys {
            Some(k) => handler.with_keys(Arc::clone(k)),
            None => handler,
        }
    });
    if let Some(handler) = &commands {
        let finished = handler.finish_erasures().await?;
        if finished > 0 {
            tracing::info!(finished, "interrupted erasures finished");
        }
    }
    // The read side opens sealed personal text with the same key ring.
    let projector_keys = keys
        .as_ref()
        .map(|k| Arc::clone(k) as Arc<dyn crm_projection::Keys>);
    // The read side: projectors, the query and admin services over their own sled
    // directory.
    let read_side = match &js {
        Some(js) if config.role != Role::Notary => Some(RunningReadSide::start(
            &config.data_dir.join("read-models"),
            config.read_model_cache_mib,
            log_config.scheme(),
            RunnerConfig {
                stream: config.stream.clone(),
                write_back: WriteBack::with_mib(config.fold_cache_mib, config.fold_flush_mib),
                keys: projector_keys.clone(),
                ..RunnerConfig::default()
            },
            (
                churn_config(config),
                Duration::from_secs(config.churn_refit_every_secs),
            ),
            js,
        )?),
        _ => None,
    };
    let request_metrics = crm_api::metrics::RequestMetrics::default();
    let metrics = Arc::new(Metrics::new(
        &request_metrics,
        commands.clone(),
        read_side.as_ref().map(|r| Arc::clone(&r.read_side)),
        notary.as_ref().map(|(_, stats)| Arc::clone(stats)),
        read_side.as_ref().map(|r| Arc::clone(&r.churn)),
    ));
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_task = match config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| RunError::Listen { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| RunError::Listen { addr, source })?;
            tracing::info!(addr = %bound, "Prometheus metrics at http://{bound}/metrics");
            Some(tokio::spawn(crate::metrics::serve(
                listener,
                Arc::clone(&metrics),
                async move {
                    let _ = metrics_stopped.await;
                },
            )))
        }
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| RunError::Listen {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, nats = %urls.join(","), stream = %config.stream, role = %config.role, "crm API listening");
    on_ready(addr, dev_token.as_deref());
    let api = ApiConfig {
        max_concurrent_requests: config.max_concurrent_requests,
        max_concurrent_queries: config.max_concurrent_queries,
        max_message_bytes: config.max_message_bytes,
        tls,
        request_metrics,
        ..ApiConfig::default()
    };
    let services = Services {
        commands,
        queries: read_side.as_ref().map(|r| Arc::clone(&r.customer360)),
        read_side: read_side.as_ref().map(|r| Arc::clone(&r.read_side)),
        funnel: read_side
            .as_ref()
            .map(|r| (r.funnel.clone(), Arc::new(domain.clone()))),
        churn: read_side.as_ref().map(|r| Arc::clone(&r.churn)),
        // The auditors' replay reads the stream as the read side does (the reader).
        audit: js
            .as_ref()
            .filter(|_| read_side.is_some())
            .map(|js| crm_audit::connect::Source {
                js: js.clone(),
                stream_name: config.stream.clone(),
                scheme: log_config.scheme(),
                keys: projector_keys.clone(),
            }),
    };
    // A projector that stops on its own (its sled storage failed) stops the process: the
    // query service must not go on answering from a read model that no longer advances.
    let projector_failed = read_side.as_ref().map(RunningReadSide::on_failure);
    let stop_serving = async move {
        let projector_stopped = async {
            match projector_failed {
                Some(failed) => failed.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown => {}
            () = projector_stopped => tracing::error!("a projector stopped; shutting down"),
        }
    };
    let served = serve(listener, services, Arc::new(auth), api, stop_serving).await;
    tracing::info!("crm API stopped");
    let _ = metrics_stop.send(());
    if let Some(task) = metrics_task {
        match task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics endpoint failed"),
            Err(e) => tracing::warn!(error = %e, "metrics task failed"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(read_side) = read_side {
        read_side.shutdown().await?;
    }
    if let Some((task, _)) = notary {
        task.abort();
    }
    served?;
    Ok(())
}

/// How the churn models are fitted and their figures computed.
fn churn_config(config: &ServeConfig) -> crm_churn::service::ChurnConfig {
    crm_churn::service::ChurnConfig {
        time_unit: config.churn_time_unit,
        predict: crm_churn::predict::PredictConfig {
            monthly_discount: f64::from(config.churn_monthly_discount_bp) / 10_000.0,
            ..crm_churn::predict::PredictConfig::default()
        },
        ..crm_churn::service::ChurnConfig::default()
    }
}
