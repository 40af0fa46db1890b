//! `crm`: parses the command line and calls the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use crm_server::{ServeArgs, ServeConfig};

#[derive(Parser)]
#[command(name = "crm", version, about = "Event-sourced CRM core")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the gRPC API (with an embedded nats-server unless --nats-url is given).
    Serve(ServeArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let Cmd::Serve(args) = Cli::parse().command;
    let config = ServeConfig::load(args).context("invalid configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(crm_server::run(
        config,
        shutdown_signal(),
        Box::new(|addr, dev_token| {
            println!("crm serving on {addr}");
            if let Some(token) = dev_token {
                println!("dev admin token: {token}");
                println!("try: grpcurl -plaintext -H 'authorization: Bearer {token}' {addr} list");
            }
        }),
    ))?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested: finishing requests in flight");
}
