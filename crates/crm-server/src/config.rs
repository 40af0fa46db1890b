//! Configuration of `crm serve`.
//!
//! Sources, in increasing precedence:
//! 1. defaults ([`ServeConfig::default`]);
//! 2. an optional TOML file (`--config FILE` or `CRM_CONFIG`), whose keys are the field names of
//!    [`ServeConfig`] (`listen = "0.0.0.0:50051"`, `nats_urls = ["nats://a:4222"]`, ...); an
//!    unknown key is an error;
//! 3. environment variables `CRM_*` (`CRM_LISTEN`, `CRM_NATS_URLS`, ...);
//! 4. command-line flags (`--listen`, `--nats-url`, ...).
//!
//! Environment variables and flags are read by clap ([`ServeArgs`]); [`ServeConfig::load`]
//! merges them over the file and the defaults and validates the result, reporting every
//! problem at once. Relative paths are relative to the working directory, wherever they were
//! given. An environment variable set to the empty string is a value, not "unset": clap
//! rejects it for typed settings (`CRM_LISTEN=` is an error), an empty `CRM_NATS_URLS` means
//! "no URLs" (the embedded server, overriding the file) and an empty path means "not given".
//!
//! | field | flag | env | default |
//! |---|---|---|---|
//! | `listen` | `--listen` | `CRM_LISTEN` | `127.0.0.1:50051` |
//! | `nats_urls` | `--nats-url` (repeatable, comma-separated) | `CRM_NATS_URLS` (comma-separated) | empty: embedded nats-server |
//! | `data_dir` | `--data-dir` | `CRM_DATA_DIR` | `./data` |
//! | `stream` | `--stream` | `CRM_STREAM` | `CRM_EVENTS` |
//! | `replicas` | `--replicas` | `CRM_REPLICAS` | 1 |
//! | `durability` | `--durability durable\|lazy` | `CRM_DURABILITY` | `durable` |
//! | `nats_server_bin` | `--nats-server-bin` | `CRM_NATS_SERVER` | see [`crate::nats_binary`] |
//! | `embedded_nats_port` | `--embedded-nats-port` | `CRM_EMBEDDED_NATS_PORT` | a free port |
//! | `nats_users_dir` | `--nats-users-dir` | `CRM_NATS_USERS_DIR` | none (external NATS without authentication) |
//! | `tokens_file` | `--tokens-file` | `CRM_TOKENS_FILE` | none |
//! | `tls_cert`, `tls_key` | `--tls-cert`, `--tls-key` | `CRM_TLS_CERT`, `CRM_TLS_KEY` | none (both or neither) |
//! | `max_concurrent_requests` | `--max-concurrent-requests` | `CRM_MAX_CONCURRENT_REQUESTS` | 256 |
//! | `max_concurrent_queries` | `--max-concurrent-queries` | `CRM_MAX_CONCURRENT_QUERIES` | 4 |
//! | `max_message_bytes` | `--max-message-bytes` | `CRM_MAX_MESSAGE_BYTES` | 4 MiB |
//! | `dev` | `--dev[=true\|false]` | `CRM_DEV` | false |
//! | `role` | `--role all\|commands\|projector\|query\|notary` | `CRM_ROLE` | `all` |
//! | `cache_capacity` | `--cache-capacity` | `CRM_CACHE_CAPACITY` | 100 000 |
//! | `business_time_tolerance_mins` | `--business-time-tolerance-mins` | `CRM_BUSINESS_TIME_TOLERANCE_MINS` | 5 |
//! | `nats_request_timeout_ms` | `--nats-request-timeout-ms` | `CRM_NATS_REQUEST_TIMEOUT_MS` | 5000 |
//! | `read_model_cache_mib` | `--read-model-cache-mib` | `CRM_READ_MODEL_CACHE_MIB` | 512 |
//! | `fold_cache_mib` | `--fold-cache-mib` | `CRM_FOLD_CACHE_MIB` | 384 |
//! | `fold_flush_mib` | `--fold-flush-mib` | `CRM_FOLD_FLUSH_MIB` | 2 |
//! | `metrics_listen` | `--metrics-listen` | `CRM_METRICS_LISTEN` | none (no metrics endpoint) |
//! | `notary_key` | `--notary-key` | `CRM_NOTARY_KEY` | `<data_dir>/notary/notary.key` with the embedded server (generated), else none (no notary) |
//! | `master_key_file` | `--master-key-file` | `CRM_MASTER_KEY_FILE` | `<data_dir>/keys/master.key` (generated, mode 0600, when missing) |
//! | `notary_every_messages` | `--notary-every-messages` | `CRM_NOTARY_EVERY_MESSAGES` | 10 000 |
//! | `notary_every_secs` | `--notary-every-secs` | `CRM_NOTARY_EVERY_SECS` | 10 |
//! | `churn_time_unit` | `--churn-time-unit day\|week` | `CRM_CHURN_TIME_UNIT` | `day` |
//! | `churn_refit_every_secs` | `--churn-refit-every-secs` | `CRM_CHURN_REFIT_EVERY_SECS` | 86 400 (daily; 0: never) |
//! | `churn_monthly_discount_bp` | `--churn-monthly-discount-bp` | `CRM_CHURN_MONTHLY_DISCOUNT_BP` | 100 (1% a month) |

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

/// Default gRPC listen address.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 50051);
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default JetStream stream name.
pub const DEFAULT_STREAM: &str = "CRM_EVENTS";
/// Default maximum number of requests served at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;
/// Default maximum size of one gRPC message (4 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Smallest accepted `max_message_bytes` (64 KiB).
pub const MIN_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Default number of aggregates in the command side's cache.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 4;
/// Default page cache of the read models' sled database, MiB (half of sled's own default: with
/// two builds' write-back caches the service stays under 1.5 GiB at 1M events).
pub const DEFAULT_READ_MODEL_CACHE_MIB: u64 = 512;
/// Smallest accepted read-model page cache, MiB.
pub const MIN_READ_MODEL_CACHE_MIB: u64 = 16;
/// Default write-back cache budget of all projection builds together, MiB.
pub const DEFAULT_FOLD_CACHE_MIB: u64 = 384;
/// Default changed data that makes a catching-up build write back, MiB.
pub const DEFAULT_FOLD_FLUSH_MIB: u64 = 2;
/// Longest JetStream stream name the server accepts.
const MAX_STREAM_NAME_LEN: usize = 255;

/// When the embedded nats-server's JetStream file store flushes to disk.
///
/// Only the embedded server is configured by this; an external server or cluster
/// (`nats_urls`) has its own `sync_interval`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `jetstream { sync_interval: always }`: every acknowledged write has been fsynced, so
    /// it survives a power loss or a kernel crash.
    #[default]
    Durable,
    /// The server's default lazy fsync (every two minutes; writes are acknowledged at once).
    ///
    /// Risk: acknowledged commands can be lost on a power loss or a kernel crash (Jepsen's
    /// analysis of NATS 2.12.1 lost acknowledged writes this way, even in 3-node clusters when
    /// faults coincide). Only for data whose last minutes may be lost.
    Lazy,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Durable => "durable",
            Durability::Lazy => "lazy",
        })
    }
}

/// Which parts of the service this process runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: command API, projectors and query API.
    #[default]
    All,
    /// The command API only.
    Commands,
    /// The projectors only.
    Projector,
    /// The query API only.
    Query,
    /// The notary only: signed anchors over the whole stream (see [`crate::notary`]).
    Notary,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::All => "all",
            Role::Commands => "commands",
            Role::Projector => "projector",
            Role::Query => "query",
            Role::Notary => "notary",
        })
    }
}

/// Flags and environment variables of `crm serve` (flatten it into the binary's clap
/// subcommand). Every field is optional: what is not given comes from the config file or the
/// defaults; see [`ServeConfig::load`].
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys: the long flag names with `_` instead of `-`).
    #[arg(long, env = "CRM_CONFIG", value_name = "FILE", value_parser = path_or_empty)]
    pub config: Option<PathBuf>,

    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long, env = "CRM_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Serve Prometheus metrics over HTTP at http://ADDR/metrics [default: not served].
    #[arg(long, env = "CRM_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// NATS server URLs (repeat or comma-separate); none = run the embedded nats-server.
    #[arg(
        long = "nats-url",
        visible_alias = "nats-urls",
        env = "CRM_NATS_URLS",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub nats_urls: Option<Vec<String>>,

    /// Data directory (embedded nats-server store, read models) [default: ./data].
    #[arg(long, env = "CRM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// JetStream stream of the event log [default: CRM_EVENTS].
    #[arg(long, env = "CRM_STREAM", value_name = "NAME")]
    pub stream: Option<String>,

    /// Stream replicas: 1, 3 or 5 (more than 1 needs a cluster) [default: 1].
    #[arg(long, env = "CRM_REPLICAS", value_name = "N")]
    pub replicas: Option<usize>,

    /// Embedded nats-server fsync policy. `lazy` can lose acknowledged writes on a power
    /// loss or kernel crash [default: durable].
    #[arg(long, env = "CRM_DURABILITY", value_enum)]
    pub durability: Option<Durability>,

    /// nats-server binary for the embedded server (>= 2.14.4).
    #[arg(long, env = "CRM_NATS_SERVER", value_name = "PATH", value_parser = path_or_empty)]
    pub nats_server_bin: Option<PathBuf>,

    /// Fixed client port of the embedded nats-server [default: a free port].
    #[arg(long, env = "CRM_EMBEDDED_NATS_PORT", value_name = "PORT")]
    pub embedded_nats_port: Option<u16>,

    /// With an external NATS (--nats-url): the directory with the service's NATS user
    /// seeds (`crm-writer.nk`, `crm-reader.nk`), as `crm nats-users` creates them. The
    /// embedded server keeps its own in `<data-dir>/nats/users`.
    #[arg(long, env = "CRM_NATS_USERS_DIR", value_name = "DIR", value_parser = path_or_empty)]
    pub nats_users_dir: Option<PathBuf>,

    /// File with the API tokens.
    #[arg(long, env = "CRM_TOKENS_FILE", value_name = "FILE", value_parser = path_or_empty)]
    pub tokens_file: Option<PathBuf>,

    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "CRM_TLS_CERT", value_name = "FILE", value_parser = path_or_empty)]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, env = "CRM_TLS_KEY", value_name = "FILE", value_parser = path_or_empty)]
    pub tls_key: Option<PathBuf>,

    /// Requests served at once [default: 256].
    #[arg(long, env = "CRM_MAX_CONCURRENT_REQUESTS", value_name = "N")]
    pub max_concurrent_requests: Option<usize>,

    /// Queries doing storage work at once, within the requests; more wait for a turn
    /// (up to 2 s), then get RESOURCE_EXHAUSTED [default: 4].
    #[arg(long, env = "CRM_MAX_CONCURRENT_QUERIES", value_name = "N")]
    pub max_concurrent_queries: Option<usize>,

    /// Largest gRPC message in bytes, at least 65536 [default: 4194304].
    #[arg(long, env = "CRM_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,

    /// Development mode (`--dev`, `--dev=false`; env: true/false/1/0/yes/no).
    #[arg(
        long,
        env = "CRM_DEV",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub dev: Option<bool>,

    /// Which parts of the service to run [default: all].
    #[arg(long, env = "CRM_ROLE", value_enum)]
    pub role: Option<Role>,

    /// Aggregates kept in the command side's cache [default: 100000].
    #[arg(long, env = "CRM_CACHE_CAPACITY", value_name = "N")]
    pub cache_capacity: Option<usize>,

    /// How far after its receipt a command's business time (`options.occurred_at`) may
    /// lie, for clock skew between services, in minutes [default: 5].
    #[arg(long, env = "CRM_BUSINESS_TIME_TOLERANCE_MINS", value_name = "MINUTES")]
    pub business_time_tolerance_mins: Option<u32>,

    /// How long the command side waits for NATS to answer one request (an append, a
    /// read) before it treats it as lost, in milliseconds; bounds how long a command
    /// waits out a dead stream leader [default: 5000].
    #[arg(long, env = "CRM_NATS_REQUEST_TIMEOUT_MS", value_name = "MS")]
    pub nats_request_timeout_ms: Option<u64>,

    /// Page cache of the read models' sled database in MiB, the largest part of the
    /// service's memory [default: 512].
    #[arg(long, env = "CRM_READ_MODEL_CACHE_MIB", value_name = "MIB")]
    pub read_model_cache_mib: Option<u64>,

    /// Write-back caches of the projection builds (decoded-once values the folds work on)
    /// in MiB, for every build of the process together, a rebuild beside a live build
    /// included [default: 384].
    #[arg(long, env = "CRM_FOLD_CACHE_MIB", value_name = "MIB")]
    pub fold_cache_mib: Option<u64>,

    /// While a build catches up, it writes back once this many MiB changed (or every
    /// second): larger is a faster rebuild, smaller a shorter pause for queries, which
    /// wait while sled applies the write [default: 2].
    #[arg(long, env = "CRM_FOLD_FLUSH_MIB", value_name = "MIB")]
    pub fold_flush_mib: Option<u64>,

    /// The notary's Ed25519 signing key (hex seed, mode 0600). With the embedded
    /// nats-server it defaults to `<data-dir>/notary/notary.key`, generated on first
    /// start; with an external server the notary runs only when this is given.
    #[arg(long, env = "CRM_NOTARY_KEY", value_name = "FILE")]
    pub notary_key: Option<PathBuf>,

    /// The master key (32 bytes, mode 0600) that wraps every customer's data key
    /// (personal data is sealed under those). Defaults to `<data-dir>/keys/master.key`,
    /// generated on first start; every process of one deployment must use the same file.
    #[arg(long, env = "CRM_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,

    /// The notary signs an anchor after this many new messages [default: 10000].
    #[arg(long, env = "CRM_NOTARY_EVERY_MESSAGES", value_name = "N")]
    pub notary_every_messages: Option<u64>,

    /// ... or this many seconds after the last anchor when messages are unanchored
    /// [default: 10].
    #[arg(long, env = "CRM_NOTARY_EVERY_SECS", value_name = "SECS")]
    pub notary_every_secs: Option<u64>,

    /// The churn models' time unit: the unit of t_x, T and alpha in ChurnService
    /// (purchases are counted in UTC days either way) [default: day].
    #[arg(long, env = "CRM_CHURN_TIME_UNIT", value_name = "day|week")]
    pub churn_time_unit: Option<crm_churn::fit::TimeUnit>,

    /// The churn models are refitted (at calibration end now) and the new fit served
    /// this many seconds after the served one was fitted; 0: never [default: 86400].
    #[arg(long, env = "CRM_CHURN_REFIT_EVERY_SECS", value_name = "SECS")]
    pub churn_refit_every_secs: Option<u64>,

    /// CLV's monthly discount rate in basis points (100 = 1%) [default: 100].
    #[arg(long, env = "CRM_CHURN_MONTHLY_DISCOUNT_BP", value_name = "BP")]
    pub churn_monthly_discount_bp: Option<u32>,
}

/// The validated configuration of `crm serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServeConfig {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Prometheus metrics address (`/metrics` over HTTP); `None`: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// NATS server URLs; empty means: run the embedded nats-server ([`crate::EmbeddedNats`]).
    pub nats_urls: Vec<String>,
    /// Data directory: `<data_dir>/nats/` holds the embedded server's config, store and log.
    pub data_dir: PathBuf,
    /// JetStream stream of the event log.
    pub stream: String,
    /// Stream replicas: 1, 3 or 5.
    pub replicas: usize,
    /// Fsync policy of the embedded nats-server.
    pub durability: Durability,
    /// nats-server binary for the embedded server; `None`: see [`crate::nats_binary::locate`].
    pub nats_server_bin: Option<PathBuf>,
    /// Fixed client port of the embedded nats-server; `None`: a free port at each start.
    pub embedded_nats_port: Option<u16>,
    /// Seeds of the service's NATS users on an external server ([`crate::nats_auth`]).
    pub nats_users_dir: Option<PathBuf>,
    /// File with the API tokens.
    pub tokens_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); set together with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); set together with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Requests served at once.
    pub max_concurrent_requests: usize,
    /// Queries doing storage work at once.
    pub max_concurrent_queries: usize,
    /// Largest gRPC message in bytes.
    pub max_message_bytes: usize,
    /// Development mode.
    pub dev: bool,
    /// Which parts of the service this process runs.
    pub role: Role,
    /// Aggregates kept in the command side's cache.
    pub cache_capacity: usize,
    /// How far after receipt a business time may lie, minutes.
    pub business_time_tolerance_mins: u32,
    /// How long one NATS request of the command side may take, milliseconds.
    pub nats_request_timeout_ms: u64,
    /// Page cache of the read models' sled database, MiB.
    pub read_model_cache_mib: u64,
    /// Write-back cache of each projection build, MiB.
    pub fold_cache_mib: u64,
    /// Changed data that makes a catching-up build write back, MiB.
    pub fold_flush_mib: u64,
    /// The notary's signing key; `None`: see [`ServeConfig::notary_key_path`].
    pub notary_key: Option<PathBuf>,
    /// The master key file; `None`: see [`ServeConfig::master_key_path`].
    pub master_key_file: Option<PathBuf>,
    /// Messages between two anchors.
    pub notary_every_messages: u64,
    /// Seconds between two anchors while messages arrive.
    pub notary_every_secs: u64,
    /// The churn models' time unit.
    pub churn_time_unit: crm_churn::fit::TimeUnit,
    /// Seconds from one served churn fit to the scheduled next; 0: no schedule.
    pub churn_refit_every_secs: u64,
    /// CLV's monthly discount rate, basis points.
    pub churn_monthly_discount_bp: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: DEFAULT_LISTEN,
            metrics_listen: None,
            nats_urls: Vec::new(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            stream: DEFAULT_STREAM.to_owned(),
            replicas: 1,
            durability: Durability::Durable,
            nats_server_bin: None,
            embedded_nats_port: None,
            nats_users_dir: None,
            tokens_file: None,
            tls_cert: None,
            tls_key: None,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_concurrent_queries: DEFAULT_MAX_CONCURRENT_QUERIES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            dev: false,
            role: Role::All,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            business_time_tolerance_mins: crm_domain::BusinessTimeBounds::FUTURE_TOLERANCE_MINS,
            nats_request_timeout_ms: 5_000,
            read_model_cache_mib: DEFAULT_READ_MODEL_CACHE_MIB,
            fold_cache_mib: DEFAULT_FOLD_CACHE_MIB,
            fold_flush_mib: DEFAULT_FOLD_FLUSH_MIB,
            notary_key: None,
            master_key_file: None,
            notary_every_messages: 10_000,
            notary_every_secs: 10,
            churn_time_unit: crm_churn::fit::TimeUnit::Day,
            churn_refit_every_secs: 86_400,
            churn_monthly_discount_bp: 100,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read the config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The config file is not valid TOML, has an unknown key or a value of the wrong type.
    /// The message names the key and its line.
    #[error("config file {}: {source}", path.display())]
    ParseFile {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The merged configuration is invalid; one sentence per problem.
    #[error("invalid configuration: {}", problems.join("; "))]
    Invalid { problems: Vec<String> },
}

impl ServeConfig {
    /// Merge flags and environment variables (`args`, as clap parsed them) over the TOML file
    /// named by `args.config` (if any) and the defaults, then [`validate`](Self::validate).
    ///
    /// # Errors
    /// [`ConfigError`]: the file cannot be read or parsed (unknown keys included), or the
    /// result is invalid (every problem listed).
    pub fn load(args: ServeArgs) -> Result<ServeConfig, ConfigError> {
        let file = match args.config.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                        path: path.clone(),
                        source,
                    })?;
                Some(parse_file(path, &text)?)
            }
            None => None,
        };
        let config = ServeConfig::merge(args, file.unwrap_or_default());
        config.validate()?;
        Ok(config)
    }

    /// Flags/env over file over defaults (no validation).
    fn merge(args: ServeArgs, file: FileConfig) -> ServeConfig {
        let d = ServeConfig::default();
        ServeConfig {
            listen: args.listen.or(file.listen).unwrap_or(d.listen),
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            nats_urls: args
                .nats_urls
                .map(clean_urls)
                .or(file.nats_urls.map(|UrlList(urls)| clean_urls(urls)))
                .unwrap_or(d.nats_urls),
            data_dir: args.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            stream: args.stream.or(file.stream).unwrap_or(d.stream),
            replicas: args.replicas.or(file.replicas).unwrap_or(d.replicas),
            durability: args.durability.or(file.durability).unwrap_or(d.durability),
            nats_server_bin: non_empty(args.nats_server_bin).or(non_empty(file.nats_server_bin)),
            embedded_nats_port: args.embedded_nats_port.or(file.embedded_nats_port),
            nats_users_dir: non_empty(args.nats_users_dir).or(non_empty(file.nats_users_dir)),
            tokens_file: non_empty(args.tokens_file).or(non_empty(file.tokens_file)),
            tls_cert: non_empty(args.tls_cert).or(non_empty(file.tls_cert)),
            tls_key: non_empty(args.tls_key).or(non_empty(file.tls_key)),
            max_concurrent_requests: args
                .max_concurrent_requests
                .or(file.max_concurrent_requests)
                .unwrap_or(d.max_concurrent_requests),
            max_concurrent_queries: args
                .max_concurrent_queries
                .or(file.max_concurrent_queries)
                .unwrap_or(d.max_concurrent_queries),
            max_message_bytes: args
                .max_message_bytes
                .or(file.max_message_bytes)
                .unwrap_or(d.max_message_bytes),
            dev: args.dev.or(file.dev).unwrap_or(d.dev),
            role: args.role.or(file.role).unwrap_or(d.role),
            cache_capacity: args
                .cache_capacity
                .or(file.cache_capacity)
                .unwrap_or(d.cache_capacity),
            business_time_tolerance_mins: args
                .business_time_tolerance_mins
                .or(file.business_time_tolerance_mins)
                .unwrap_or(d.business_time_tolerance_mins),
            nats_request_timeout_ms: args
                .nats_request_timeout_ms
                .or(file.nats_request_timeout_ms)
                .unwrap_or(d.nats_request_timeout_ms),
            read_model_cache_mib: args
                .read_model_cache_mib
                .or(file.read_model_cache_mib)
                .unwrap_or(d.read_model_cache_mib),
            fold_cache_mib: args
                .fold_cache_mib
                .or(file.fold_cache_mib)
                .unwrap_or(d.fold_cache_mib),
            fold_flush_mib: args
                .fold_flush_mib
                .or(file.fold_flush_mib)
                .unwrap_or(d.fold_flush_mib),
            notary_key: non_empty(args.notary_key).or(non_empty(file.notary_key)),
            master_key_file: non_empty(args.master_key_file).or(non_empty(file.master_key_file)),
            notary_every_messages: args
                .notary_every_messages
                .or(file.notary_every_messages)
                .unwrap_or(d.notary_every_messages),
            notary_every_secs: args
                .notary_every_secs
                .or(file.notary_every_secs)
                .unwrap_or(d.notary_every_secs),
            churn_time_unit: args
                .churn_time_unit
                .or(file.churn_time_unit)
                .unwrap_or(d.churn_time_unit),
            churn_refit_every_secs: args
                .churn_refit_every_secs
                .or(file.churn_refit_every_secs)
                .unwrap_or(d.churn_refit_every_secs),
            churn_monthly_discount_bp: args
                .churn_monthly_discount_bp
                .or(file.churn_monthly_discount_bp)
                .unwrap_or(d.churn_monthly_discount_bp),
        }
    }

    /// The notary's key file and whether a missing one is generated: the configured one
    /// (never generated), else with the embedded server `<data_dir>/notary/notary.key`
    /// (generated on first start); `None`: no notary (an external server and no key).
    pub fn notary_key_path(&self) -> Option<(PathBuf, bool)> {
        match &self.notary_key {
            Some(path) => Some((path.clone(), false)),
            None if self.embedded() => {
                Some((self.data_dir.join("notary").join("notary.key"), true))
            }
            None => None,
        }
    }

    /// The master key file: the configured one, else `<data_dir>/keys/master.key`
    /// (made on first start when missing).
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("master.key"))
    }

    /// Whether this configuration runs the embedded nats-server (`nats_urls` is empty).
    pub fn embedded(&self) -> bool {
        self.nats_urls.is_empty()
    }

    /// Every problem with this configuration, one sentence each (empty if valid). Checks that
    /// named files exist, so it reads the file system.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();

        if let Some(metrics) = self.metrics_listen
            && metrics.port() != 0
            && metrics.port() == self.listen.port()
            && (metrics.ip() == self.listen.ip()
                || metrics.ip().is_unspecified()
                || self.listen.ip().is_unspecified())
        {
            p.push(format!(
                "metrics_listen ({metrics}) must not be the gRPC listen address ({})",
                self.listen
            ));
        }
        if ![1, 3, 5].contains(&self.replicas) {
            p.push(format!(
                "replicas must be 1, 3 or 5 (got {})",
                self.replicas
            ));
        } else if self.replicas > 1 && self.embedded() {
            p.push(format!(
                "replicas is {} but the embedded nats-server is a single node: set nats_urls to \
                 a cluster of at least {} nodes or use replicas = 1",
                self.replicas, self.replicas
            ));
        }

        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => p.push("tls_cert is set but tls_key is not".to_owned()),
            (None, Some(_)) => p.push("tls_key is set but tls_cert is not".to_owned()),
            _ => {}
        }
        for (name, path) in [
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("tokens_file", &self.tokens_file),
        ] {
            if let Some(path) = path {
                check_file(&mut p, name, path);
            }
        }

        if self.max_message_bytes < MIN_MAX_MESSAGE_BYTES {
            p.push(format!(
                "max_message_bytes must be at least 64 KiB ({MIN_MAX_MESSAGE_BYTES}), got {}",
                self.max_message_bytes
            ));
        }
        if self.max_concurrent_queries == 0 {
            p.push("max_concurrent_queries must be at least 1".to_owned());
        }
        if self.max_concurrent_requests == 0 {
            p.push("max_concurrent_requests must be at least 1".to_owned());
        }
        if self.cache_capacity == 0 {
            p.push("cache_capacity must be at least 1".to_owned());
        }
        if self.read_model_cache_mib < MIN_READ_MODEL_CACHE_MIB {
            p.push(format!(
                "read_model_cache_mib must be at least {MIN_READ_MODEL_CACHE_MIB}, got {}",
                self.read_model_cache_mib
            ));
        }
        if self.fold_cache_mib == 0 {
            p.push("fold_cache_mib must be at least 1".to_owned());
        }
        if self.fold_flush_mib == 0 || self.fold_flush_mib > self.fold_cache_mib {
            p.push(format!(
                "fold_flush_mib must be between 1 and fold_cache_mib ({}), got {}",
                self.fold_cache_mib, self.fold_flush_mib
            ));
        }
        if self.notary_every_messages == 0 {
            p.push("notary_every_messages must be at least 1".to_owned());
        }
        if self.notary_every_secs == 0 {
            p.push("notary_every_secs must be at least 1".to_owned());
        }
        if self.churn_monthly_discount_bp > 10_000 {
            p.push(format!(
                "churn_monthly_discount_bp must be at most 10000 (100% a month), got {}",
                self.churn_monthly_discount_bp
            ));
        }
        if self.role == Role::Notary && self.notary_key_path().is_none() {
            p.push("role notary needs notary_key (with an external nats-server)".to_owned());
        }
        if !(100..=60_000).contains(&self.nats_request_timeout_ms) {
            p.push(format!(
                "nats_request_timeout_ms must be between 100 and 60000, got {}",
                self.nats_request_timeout_ms
            ));
        }
        if let Some(problem) = stream_name_problem(&self.stream) {
            p.push(problem);
        }

        if self.data_dir.as_os_str().is_empty() {
            p.push("data_dir must not be empty".to_owned());
        } else if self.data_dir.exists() && !self.data_dir.is_dir() {
            p.push(format!(
                "data_dir {} exists but is not a directory",
                self.data_dir.display()
            ));
        }

        for url in &self.nats_urls {
            if let Some(problem) = nats_url_problem(url) {
                p.push(problem);
            }
        }
        if self.embedded() {
            if self.embedded_nats_port == Some(0) {
                p.push(
                    "embedded_nats_port must not be 0 (leave it unset to choose a free port)"
                        .to_owned(),
                );
            }
            if let Some(bin) = &self.nats_server_bin {
                check_file(&mut p, "nats_server_bin", bin);
            }
            if self.nats_users_dir.is_some() {
                p.push(
                    "nats_users_dir is for an external NATS server (nats_urls): the embedded \
                     server keeps its users in <data_dir>/nats/users"
                        .to_owned(),
                );
            }
        } else if self.embedded_nats_port.is_some() {
            p.push(
                "embedded_nats_port is set but nats_urls names an external NATS server (the \
                 embedded nats-server only runs when nats_urls is empty)"
                    .to_owned(),
            );
        }
        p
    }

    /// `Ok` if [`problems`](Self::problems) finds none.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }
}

fn check_file(problems: &mut Vec<String>, name: &str, path: &Path) {
    if !path.exists() {
        problems.push(format!("{name} {} does not exist", path.display()));
    } else if !path.is_file() {
        problems.push(format!("{name} {} is not a file", path.display()));
    }
}

/// Why `name` is not a usable JetStream stream name, if it is not.
fn stream_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("stream must not be empty".to_owned());
    }
    if name.len() > MAX_STREAM_NAME_LEN {
        return Some(format!(
            "stream must be at most {MAX_STREAM_NAME_LEN} bytes long (got {})",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Some(format!(
            "stream {name:?} contains {c:?}; a JetStream stream name must not contain \
             whitespace, '.', '*', '>', '/' or '\\'"
        ));
    }
    None
}

/// Why `url` is not a NATS server URL, if it is not.
fn nats_url_problem(url: &str) -> Option<String> {
    let bad = |why: &str| Some(format!("nats_urls entry {url:?} {why}"));
    if url.chars().any(char::is_whitespace) {
        return bad("contains whitespace");
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(scheme, "nats" | "tls" | "ws" | "wss") {
                return bad("has an unknown scheme (expected nats://, tls://, ws:// or wss://)");
            }
            rest
        }
        None => url,
    };
    // Drop credentials and a path, keep host[:port].
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp);
    let host_port = host_port.split('/').next().unwrap_or_default();
    if host_port.is_empty() {
        return bad("has no host");
    }
    if let Some((host, port)) = host_port.rsplit_once(':')
        && !host.ends_with(']')
        && !host.contains(':')
    {
        if host.is_empty() {
            return bad("has no host");
        }
        if port.parse::<u16>().is_err() {
            return bad("has an invalid port");
        }
    }
    None
}

/// clap's own path parser refuses an empty value; here it is accepted and then ignored.
fn path_or_empty(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

/// An empty path (e.g. `CRM_TLS_CERT=`) counts as not given.
fn non_empty(path: Option<PathBuf>) -> Option<PathBuf> {
    path.filter(|p| !p.as_os_str().is_empty())
}

/// Trim entries, drop empty ones (`--nats-url ""` therefore means "embedded").
fn clean_urls(urls: Vec<String>) -> Vec<String> {
    urls.into_iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect()
}

/// The TOML file: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    nats_urls: Option<UrlList>,
    data_dir: Option<PathBuf>,
    stream: Option<String>,
    replicas: Option<usize>,
    durability: Option<Durability>,
    nats_server_bin: Option<PathBuf>,
    embedded_nats_port: Option<u16>,
    nats_users_dir: Option<PathBuf>,
    tokens_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_concurrent_requests: Option<usize>,
    max_concurrent_queries: Option<usize>,
    max_message_bytes: Option<usize>,
    dev: Option<bool>,
    role: Option<Role>,
    cache_capacity: Option<usize>,
    business_time_tolerance_mins: Option<u32>,
    nats_request_timeout_ms: Option<u64>,
    read_model_cache_mib: Option<u64>,
    fold_cache_mib: Option<u64>,
    fold_flush_mib: Option<u64>,
    notary_key: Option<PathBuf>,
    master_key_file: Option<PathBuf>,
    notary_every_messages: Option<u64>,
    notary_every_secs: Option<u64>,
    churn_time_unit: Option<crm_churn::fit::TimeUnit>,
    churn_refit_every_secs: Option<u64>,
    churn_monthly_discount_bp: Option<u32>,
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|source| ConfigError::ParseFile {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// `nats_urls` in the file: an array of strings or one comma-separated string.
#[derive(Debug, Default)]
struct UrlList(Vec<String>);

impl<'de> Deserialize<'de> for UrlList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UrlList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of NATS URLs or a comma-separated string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UrlList, E> {
                Ok(UrlList(v.split(',').map(str::to_owned).collect()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<UrlList, A::Error> {
                let mut urls = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    urls.push(url);
                }
                Ok(UrlList(urls))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, FromArgMatches as _, Parser};
    use std::fs;
    use std::process::Command;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// Parse flags only: environment variables are ignored, so the tests do not depend on
    /// the environment they run in (`cargo xtask test` exports `CRM_NATS_SERVER`).
    fn flags(argv: &[&str]) -> ServeArgs {
        let cmd = Cli::command().mut_args(|a| a.env(None::<&str>));
        let matches = cmd
            .try_get_matches_from(std::iter::once("crm").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        Cli::from_arg_matches(&matches).unwrap().serve
    }

    fn load_with_file(argv: &[&str], toml: &str) -> Result<ServeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.toml");
        fs::write(&path, toml).unwrap();
        let mut args = flags(argv);
        args.config = Some(path);
        ServeConfig::load(args)
    }

    fn problems_of(config: &ServeConfig) -> Vec<String> {
        config.problems()
    }

    #[test]
    fn metrics_listen_must_differ_from_listen() {
        let config = ServeConfig::load(flags(&["--metrics-listen=127.0.0.1:9464"])).unwrap();
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        let err = ServeConfig::load(flags(&[
            "--listen=127.0.0.1:7000",
            "--metrics-listen=0.0.0.0:7000",
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("metrics_listen"), "{err}");
    }

    #[test]
    fn defaults() {
        let config = ServeConfig::load(flags(&[])).unwrap();
        assert_eq!(config, ServeConfig::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:50051");
        assert!(config.nats_urls.is_empty() && config.embedded());
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.stream, "CRM_EVENTS");
        assert_eq!(config.replicas, 1);
        assert_eq!(config.durability, Durability::Durable);
        assert_eq!(config.max_concurrent_requests, 256);
        assert_eq!(config.max_message_bytes, 4 * 1024 * 1024);
        assert!(!config.dev);
        assert_eq!(config.role, Role::All);
        assert_eq!(config.cache_capacity, 100_000);
        assert_eq!(config.read_model_cache_mib, 512);
        assert_eq!(config.embedded_nats_port, None);
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let toml = r#"
            listen = "0.0.0.0:6000"
            nats_urls = ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
            data_dir = "/var/lib/crm"
            stream = "FILE_STREAM"
            replicas = 3
            durability = "lazy"
            max_concurrent_requests = 10
            max_message_bytes = 1048576
            dev = true
            role = "projector"
            cache_capacity = 5
            read_model_cache_mib = 64
        "#;
        let config = load_with_file(&[], toml).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:6000");
        assert_eq!(config.nats_urls.len(), 3);
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/crm"));
        assert_eq!(config.stream, "FILE_STREAM");
        assert_eq!(config.replicas, 3);
        assert_eq!(config.durability, Durability::Lazy);
        assert_eq!(config.max_concurrent_requests, 10);
        assert_eq!(config.max_message_bytes, 1 << 20);
        assert!(config.dev);
        assert_eq!(config.role, Role::Projector);
        assert_eq!(config.cache_capacity, 5);
        assert_eq!(config.read_model_cache_mib, 64);

        let config = load_with_file(
            &[
                "--listen=127.0.0.1:7000",
                "--nats-url",
                "nats://x:1, nats://y:2",
                "--nats-url=nats://z:3",
                "--stream",
                "FLAG_STREAM",
                "--durability",
                "durable",
                "--dev=false",
                "--role=query",
                "--cache-capacity=7",
                "--read-model-cache-mib=128",
            ],
            toml,
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.nats_urls, ["nats://x:1", "nats://y:2", "nats://z:3"]);
        assert_eq!(config.stream, "FLAG_STREAM");
        assert_eq!(config.durability, Durability::Durable);
        assert!(!config.dev);
        assert_eq!(config.role, Role::Query);
        assert_eq!(config.cache_capacity, 7);
        assert_eq!(config.read_model_cache_mib, 128);
        // Not given as flags: still from the file.
        assert_eq!(config.replicas, 3);
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/crm"));

        // An empty --nats-url overrides the file's cluster with the embedded server.
        let config = load_with_file(&["--nats-url=", "--replicas=1"], toml).unwrap();
        assert!(config.embedded());

        // `--dev` alone means true.
        assert_eq!(flags(&["--dev"]).dev, Some(true));
        assert_eq!(flags(&[]).dev, None);
    }

    #[test]
    fn file_accepts_a_comma_separated_url_string() {
        let config = load_with_file(
            &[],
            r#"nats_urls = "nats://a:4222,nats://b:4222 , nats://c:4222""#,
        )
        .unwrap();
        assert_eq!(
            config.nats_urls,
            ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
        );
    }

    #[test]
    fn unknown_file_key_is_an_error_naming_the_key() {
        let err = load_with_file(&[], "listen = \"127.0.0.1:1\"\nreplica = 3\n").unwrap_err();
        assert!(matches!(err, ConfigError::ParseFile { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("replica"), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
        assert!(msg.contains("crm.toml"), "{msg}");

        let err = load_with_file(&[], "durability = \"sometimes\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("sometimes") && msg.contains("durability"),
            "{msg}"
        );

        let err = load_with_file(&[], "listen = \"not an address\"\n").unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let mut args = flags(&[]);
        args.config = Some(PathBuf::from("/nonexistent/crm.toml"));
        let err = ServeConfig::load(args).unwrap_err();
        assert!(matches!(err, ConfigError::ReadFile { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/crm.toml"), "{err}");
    }

    #[test]
    fn validation_reports_every_problem_as_a_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        fs::write(&cert, "x").unwrap();
        let config = ServeConfig {
            replicas: 2,
            tls_cert: Some(cert.clone()),
            max_message_bytes: 1000,
            max_concurrent_requests: 0,
            cache_capacity: 0,
            read_model_cache_mib: 8,
            fold_cache_mib: 4,
            fold_flush_mib: 5,
            stream: "CRM.EVENTS".to_owned(),
            tokens_file: Some(dir.path().join("tokens.txt")),
            ..ServeConfig::default()
        };
        let problems = problems_of(&config);
        let expected = [
            "replicas must be 1, 3 or 5 (got 2)",
            "tls_cert is set but tls_key is not",
            "does not exist",
            "max_message_bytes must be at least 64 KiB (65536), got 1000",
            "max_concurrent_requests must be at least 1",
            "cache_capacity must be at least 1",
            "read_model_cache_mib must be at least 16, got 8",
            "fold_flush_mib must be between 1 and fold_cache_mib (4), got 5",
            "stream \"CRM.EVENTS\" contains '.'",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, want) in problems.iter().zip(expected) {
            assert!(
                problem.contains(want),
                "{problem:?} should contain {want:?}"
            );
        }
        let err = config.validate().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid configuration: replicas must be"),
            "{msg}"
        );
        assert!(
            msg.contains("; tls_cert is set but tls_key is not;"),
            "{msg}"
        );

        let config = ServeConfig {
            tls_key: Some(cert),
            ..ServeConfig::default()
        };
        assert_eq!(problems_of(&config), ["tls_key is set but tls_cert is not"]);

        let config = ServeConfig {
            replicas: 3,
            ..ServeConfig::default()
        };
        let problems = problems_of(&config);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("replicas is 3 but the embedded nats-server is a single node"),
            "{problems:?}"
        );
        let config = ServeConfig {
            replicas: 3,
            nats_urls: vec![
                "nats://a:4222".into(),
                "b:4222".into(),
                "tls://u:p@c".into(),
            ],
            ..ServeConfig::default()
        };
        assert_eq!(problems_of(&config), Vec::<String>::new());

        // The notary: its own role needs a key with an external server; the embedded
        // default has one in the data dir; intervals of zero are refused.
        let config = ServeConfig {
            nats_urls: vec!["nats://a:4222".into()],
            role: Role::Notary,
            notary_every_messages: 0,
            notary_every_secs: 0,
            ..ServeConfig::default()
        };
        assert_eq!(
            problems_of(&config),
            [
                "notary_every_messages must be at least 1",
                "notary_every_secs must be at least 1",
                "role notary needs notary_key (with an external nats-server)",
            ]
        );
        let embedded = ServeConfig::default();
        assert_eq!(
            embedded.notary_key_path(),
            Some((embedded.data_dir.join("notary").join("notary.key"), true))
        );

        let config = ServeConfig {
            nats_urls: vec![
                "http://a:4222".into(),
                "nats://a:x".into(),
                "nats://".into(),
            ],
            embedded_nats_port: Some(4222),
            ..ServeConfig::default()
        };
        let problems = problems_of(&config);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("unknown scheme"), "{problems:?}");
        assert!(problems[1].contains("invalid port"), "{problems:?}");
        assert!(problems[2].contains("no host"), "{problems:?}");
        assert!(
            problems[3].starts_with("embedded_nats_port is set but nats_urls"),
            "{problems:?}"
        );

        let config = ServeConfig {
            embedded_nats_port: Some(0),
            nats_server_bin: Some(dir.path().join("no-such-nats-server")),
            data_dir: dir.path().join("cert.pem"),
            stream: String::new(),
            ..ServeConfig::default()
        };
        let problems = problems_of(&config);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert_eq!(problems[0], "stream must not be empty");
        assert!(
            problems[1].ends_with("exists but is not a directory"),
            "{problems:?}"
        );
        assert!(
            problems[2].starts_with("embedded_nats_port must not be 0"),
            "{problems:?}"
        );
        assert!(
            problems[3].starts_with("nats_server_bin ") && problems[3].ends_with("does not exist"),
            "{problems:?}"
        );
    }

    #[test]
    fn load_validates() {
        let err = load_with_file(&["--replicas=4"], "max_message_bytes = 10\n").unwrap_err();
        let ConfigError::Invalid { problems } = err else {
            panic!("{err:?}")
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    // ----- environment variables: checked in a child process -----
    //
    // Setting environment variables in this (multi-threaded) test process would be `unsafe`,
    // so `env_precedence` re-runs this test binary with only `env_probe` selected and the
    // variables set; the probe prints the loaded configuration as JSON.

    const PROBE: &str = "CRM_SERVER_CONFIG_PROBE";

    /// Run by [`probe`] in a child (with `PROBE` set), it prints the configuration loaded
    /// from its arguments and environment. Run as a test, it probes a child with no
    /// arguments and no `CRM_` variables: the configuration is then the defaults.
    #[test]
    fn env_probe() {
        let Ok(argv) = std::env::var(PROBE) else {
            let loaded = probe(&[], &[]).unwrap();
            let mut defaults = serde_json::to_value(ServeConfig::default()).unwrap();
            // The binary is searched for when unset; the rest are the defaults.
            defaults["nats_server_bin"] = loaded["nats_server_bin"].clone();
            assert_eq!(loaded, defaults);
            return;
        };
        let argv = std::iter::once("crm").chain(argv.split('\x1f').filter(|a| !a.is_empty()));
        let result = Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())
            .and_then(|cli| ServeConfig::load(cli.serve).map_err(|e| e.to_string()));
        match result {
            Ok(config) => println!("PROBE-OK {}", serde_json::to_string(&config).unwrap()),
            Err(e) => println!("PROBE-ERR {}", e.replace('\n', " ")),
        }
    }

    fn probe(argv: &[&str], env: &[(&str, &str)]) -> Result<serde_json::Value, String> {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "config::tests::env_probe",
            "--nocapture",
            "--test-threads=1",
        ]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CRM_") {
                cmd.env_remove(key);
            }
        }
        cmd.env(PROBE, argv.join("\x1f"));
        cmd.envs(env.iter().copied());
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The test harness prints "test ... " before the probe's line, on the same line.
        for line in stdout.lines() {
            if let Some((_, json)) = line.split_once("PROBE-OK ") {
                return Ok(serde_json::from_str(json).unwrap());
            }
            if let Some((_, err)) = line.split_once("PROBE-ERR ") {
                return Err(err.to_owned());
            }
        }
        panic!(
            "the probe printed nothing: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn env_precedence_file_env_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("crm.toml");
        fs::write(
            &file,
            "stream = \"FROM_FILE\"\nrole = \"projector\"\ncache_capacity = 11\n\
             max_concurrent_requests = 12\ndev = true\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();

        let config = probe(
            &["--role=query"],
            &[
                ("CRM_CONFIG", file),
                ("CRM_STREAM", "FROM_ENV"),
                ("CRM_ROLE", "commands"),
                ("CRM_NATS_URLS", "nats://a:1,nats://b:2"),
                ("CRM_DEV", "0"),
                ("CRM_DURABILITY", "lazy"),
                ("CRM_NATS_SERVER", "/opt/nats-server"),
            ],
        )
        .unwrap();
        assert_eq!(config["stream"], "FROM_ENV", "env beats file: {config}");
        assert_eq!(config["role"], "query", "flag beats env: {config}");
        assert_eq!(config["cache_capacity"], 11, "file beats default: {config}");
        assert_eq!(config["max_concurrent_requests"], 12, "{config}");
        assert_eq!(config["dev"], false, "env beats file: {config}");
        assert_eq!(config["durability"], "lazy", "{config}");
        assert_eq!(
            config["nats_urls"],
            serde_json::json!(["nats://a:1", "nats://b:2"]),
            "{config}"
        );
        assert_eq!(config["nats_server_bin"], "/opt/nats-server", "{config}");
        assert_eq!(config["listen"], "127.0.0.1:50051", "default: {config}");

        // An empty CRM_NATS_URLS overrides the file's cluster with the embedded server;
        // an empty path is "not given".
        fs::write(
            dir.path().join("crm.toml"),
            "nats_urls = [\"nats://a:1\"]\n",
        )
        .unwrap();
        let config = probe(
            &[],
            &[
                ("CRM_CONFIG", file),
                ("CRM_NATS_URLS", ""),
                ("CRM_NATS_SERVER", ""),
                ("CRM_TLS_CERT", ""),
            ],
        )
        .unwrap();
        assert_eq!(config["nats_urls"], serde_json::json!([]), "{config}");
        assert_eq!(
            config["nats_server_bin"],
            serde_json::Value::Null,
            "{config}"
        );

        // No file, no env: the defaults.
        let config = probe(&[], &[]).unwrap();
        assert_eq!(config["stream"], "CRM_EVENTS");
        assert_eq!(config["nats_server_bin"], serde_json::Value::Null);

        // A bad env value is reported by clap with the variable's flag.
        let err = probe(&[], &[("CRM_REPLICAS", "three")]).unwrap_err();
        assert!(err.contains("--replicas"), "{err}");
        // Validation applies to values from the environment too.
        let err = probe(&[], &[("CRM_MAX_MESSAGE_BYTES", "1024")]).unwrap_err();
        assert!(
            err.contains("max_message_bytes must be at least 64 KiB"),
            "{err}"
        );
    }
}
