//! `crm`: parses the command line and calls the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use crm_server::{ServeArgs, ServeConfig};

/// The read side's folds allocate and free many small values: mimalloc spends a fraction of
/// glibc malloc's time on them (see the bench document).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads for blocking work (queries' storage reads, projector batches, sled flushes).
const BLOCKING_THREADS: usize = 8;

#[derive(Parser)]
#[command(name = "crm", version, about = "Event-sourced CRM core")]
struct Cli {
    /// Log lines as text (colours only on a terminal) or as JSON objects, one per line,
    /// for log shippers. The level comes from RUST_LOG (default info).
    #[arg(long, global = true, env = "CRM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the gRPC API (with an embedded nats-server unless --nats-url is given).
    Serve(Box<ServeArgs>),
    /// For an external NATS server or cluster: create (once) the service's NATS user keys
    /// in DIR and print the `authorization` block to add to the servers' configuration.
    /// Then run `crm serve --nats-url ... --nats-users-dir DIR`.
    NatsUsers {
        /// Where the user seeds are kept (created 0700; seeds 0600).
        #[arg(long, value_name = "DIR")]
        dir: std::path::PathBuf,
        /// The event log's stream.
        #[arg(long, default_value = crm_server::config::DEFAULT_STREAM)]
        stream: String,
    },
    /// Print the notary's public key (hex), which auditors pass to
    /// `crm-audit verify --notary-key`.
    NotaryKey {
        /// The notary's key file (the embedded default generates it here).
        #[arg(long, value_name = "FILE", default_value = "./data/notary/notary.key")]
        key: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colour codes only for a person at a terminal, never into a file or pipe.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
    let args = match cli.command {
        Cmd::Serve(args) => *args,
        Cmd::NatsUsers { dir, stream } => {
            print!("{}", crm_server::nats_auth::external_setup(&dir, &stream)?);
            return Ok(());
        }
        Cmd::NotaryKey { key } => {
            let key = crm_server::notary::load_or_generate_key(&key, false)?;
            println!("{}", crm_server::notary::public_key_hex(&key));
            return Ok(());
        }
    };
    let config = ServeConfig::load(args).context("invalid configuration")?;
    // Few blocking threads: queries and projector batches run there, and with mimalloc
    // every thread keeps its own heap, where memory freed by other threads waits until the
    // owner allocates again. Hundreds of short-lived blocking threads (tokio's default
    // allows 512) held gigabytes that way under 2,000 queries/s (see the bench document).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        // Installed before anything starts: a signal that arrives while the service is
        // still starting (or before the shutdown future is first polled) must not kill
        // the process with the default action.
        let shutdown = shutdown_signal().context("installing signal handlers")?;
        crm_server::run(
            config,
            shutdown,
            Box::new(|addr, dev_token| {
                println!("crm serving on {addr}");
                if let Some(token) = dev_token {
                    println!("dev admin token: {token}");
                    println!(
                        "try: grpcurl -plaintext -H 'authorization: Bearer {token}' {addr} list"
                    );
                }
            }),
        )
        .await?;
        anyhow::Ok(())
    })?;
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now; the future completes on either.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            tracing::info!("shutdown requested: finishing requests in flight");
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested: finishing requests in flight");
    })
}
