//! Serving the API: the command service with message size limits, bounded concurrency,
//! optional TLS, gRPC health checking and server reflection.

use std::future::Future;
use std::sync::Arc;

use crm_customer360::Queries;
use crm_projection::ReadSide;
use crm_proto::v1::admin_service_server::AdminServiceServer;
use crm_proto::v1::audit_service_server::AuditServiceServer;
use crm_proto::v1::churn_service_server::ChurnServiceServer;
use crm_proto::v1::command_service_server::CommandServiceServer;
use crm_proto::v1::funnel_service_server::FunnelServiceServer;
use crm_proto::v1::log_service_server::LogServiceServer;
use crm_proto::v1::query_service_server::QueryServiceServer;
use crm_store::CommandHandler;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::admin::AdminApi;
use crate::audit::AuditApi;
use crate::auth::Authenticator;
use crate::log::LogApi;
use crate::metrics::RequestMetrics;
use crate::query::{ChurnApi, FunnelApi, QueryApi};
use crate::service::{Commands, IngestLimits};

/// PEM-encoded certificate chain and private key.
#[derive(Clone, Debug)]
pub struct TlsPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Requests (unary calls and ingest streams) served at once; more get
    /// RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// Queries doing storage work at once (a share of the requests); more wait for a
    /// turn (up to 2 s), then get RESOURCE_EXHAUSTED.
    pub max_concurrent_queries: usize,
    /// Largest request or reply message.
    pub max_message_bytes: usize,
    pub tls: Option<TlsPem>,
    pub ingest: IngestLimits,
    /// After shutdown is requested, how long requests in flight may take to finish
    /// before the server stops anyway (a client that never closes cannot block it).
    pub shutdown_grace: std::time::Duration,
    /// Where calls are counted and timed (export it with [`RequestMetrics::register`]).
    pub request_metrics: RequestMetrics,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 256,
            max_concurrent_queries: 4,
            max_message_bytes: 4 * 1024 * 1024,
            tls: None,
            ingest: IngestLimits::default(),
            shutdown_grace: std::time::Duration::from_secs(10),
            request_metrics: RequestMetrics::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(String),
    #[error("gRPC server: {0}")]
    Transport(tonic::transport::Error),
}

/// What a process serves: the command service, the read side (query and admin
/// services), or both.
#[derive(Clone, Debug, Default)]
pub struct Services {
    pub commands: Option<CommandHandler>,
    pub queries: Option<Arc<Queries>>,
    /// The hosted projections, for the admin service.
    pub read_side: Option<Arc<ReadSide>>,
    /// The funnel read model and the pipelines its figures follow, for `FunnelService`.
    pub funnel: Option<(crm_projection::ReadModel, Arc<crm_domain::DomainConfig>)>,
    /// The churn models, for `ChurnService` and GetCustomer360's predictions.
    pub churn: Option<Arc<crm_churn::service::ChurnModels>>,
    /// The event stream as the reader sees it, for `AuditService`.
    pub audit: Option<crm_audit::connect::Source>,
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting and
/// finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    auth: Arc<Authenticator>,
    cfg: ApiConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let log = match &services.commands {
        Some(handler) => {
            health.set_serving::<LogServiceServer<LogApi>>().await;
            Some(LogServiceServer::new(LogApi::new(
                handler.clone(),
                Arc::clone(&auth),
            )))
        }
        None => None,
    };
    let commands = match services.commands {
        Some(handler) => {
            let commands = Commands::new(
                handler,
                Arc::clone(&auth),
                cfg.ingest,
                cfg.max_concurrent_requests,
            )
            .with_metrics(cfg.request_metrics.clone());
            health.set_serving::<CommandServiceServer<Commands>>().await;
            Some(
                CommandServiceServer::new(commands)
                    .max_decoding_message_size(cfg.max_message_bytes)
                    .max_encoding_message_size(cfg.max_message_bytes),
            )
        }
        None => None,
    };
    let query_api = services.queries.map(|queries| {
        let api = QueryApi::new(queries, Arc::clone(&auth), cfg.max_concurrent_queries);
        match &services.churn {
            Some(churn) => api.with_churn(Arc::clone(churn)),
            None => api,
        }
    });
    // The churn models' queries share the read side's query limit too.
    let churn = match (&query_api, services.churn) {
        (Some(q), Some(churn)) => {
            health.set_serving::<ChurnServiceServer<ChurnApi>>().await;
            Some(
                ChurnServiceServer::new(ChurnApi::new(churn, Arc::clone(&auth), q.permits()))
                    .max_decoding_message_size(cfg.max_message_bytes)
                    .max_encoding_message_size(cfg.max_message_bytes),
            )
        }
        _ => None,
    };
    // The funnel's queries share the read side's query limit.
    let funnel = match (&query_api, services.funnel) {
        (Some(q), Some((model, config))) => {
            health.set_serving::<FunnelServiceServer<FunnelApi>>().await;
            Some(
                FunnelServiceServer::new(FunnelApi::new(
                    model,
                    config,
                    Arc::clone(&auth),
                    q.permits(),
                ))
                .max_decoding_message_size(cfg.max_message_bytes)
                .max_encoding_message_size(cfg.max_message_bytes),
            )
        }
        _ => None,
    };
    let queries = match query_api {
        Some(api) => {
            health.set_serving::<QueryServiceServer<QueryApi>>().await;
            Some(
                QueryServiceServer::new(api)
                    .max_decoding_message_size(cfg.max_message_bytes)
                    .max_encoding_message_size(cfg.max_message_bytes),
            )
        }
        None => None,
    };
    let admin = match services.read_side {
        Some(read_side) => {
            health.set_serving::<AdminServiceServer<AdminApi>>().await;
            Some(AdminServiceServer::new(AdminApi::new(
                read_side,
                Arc::clone(&auth),
            )))
        }
        None => None,
    };
    let audit = match services.audit {
        Some(source) => {
            health.set_serving::<AuditServiceServer<AuditApi>>().await;
            Some(
                AuditServiceServer::new(AuditApi::new(source, Arc::clone(&auth)))
                    .max_encoding_message_size(cfg.max_message_bytes),
            )
        }
        None => None,
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crm_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crm_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let mut builder = Server::builder();
    if let Some(tls) = &cfg.tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert, &tls.key)))
            .map_err(ServeError::Tls)?;
    }
    // Replies go out at once: without TCP_NODELAY, Nagle's algorithm holds a small
    // reply until the client's delayed ACK (~40 ms on Linux) when calls are sparse.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopping = stop.clone();
    let server = builder
        .layer(cfg.request_metrics.layer())
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_optional_service(commands)
        .add_optional_service(queries)
        .add_optional_service(funnel)
        .add_optional_service(churn)
        .add_optional_service(admin)
        .add_optional_service(log)
        .add_optional_service(audit)
        .serve_with_incoming_shutdown(incoming, async move {
            stopping.notified().await;
        });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(ServeError::Transport),
        () = shutdown => stop.notify_one(),
    }
    match tokio::time::timeout(cfg.shutdown_grace, server).await {
        Ok(result) => result.map_err(ServeError::Transport),
        Err(_) => {
            tracing::warn!(grace = ?cfg.shutdown_grace, "requests still open after the shutdown grace period: stopping anyway");
            Ok(())
        }
    }
}
