//! `crm-demo`: see the library (`crm_demo::run`).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_demo::run(crm_demo::Cli::parse()).await
}
