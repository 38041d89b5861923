//! firstcall's benchmark suite. `firstcall-bench run` measures ten figures against references
//! taken in the same run on the same PostgreSQL (pgbench, graphile-worker) and writes a Markdown
//! report; `firstcall-bench ingest` is the webhook load generator alone, for profiling a server
//! started by hand. `bench/run` builds everything and calls `run`.

mod drain;
mod figures;
mod ingest;
mod pg;
mod proc;
mod reads;
mod report;
mod seed;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "firstcall-bench", about = "Benchmarks firstcall against references measured in the same run.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every figure, with its reference, then the report.
    Run(Box<figures::RunArgs>),
    /// Signed `order.created` webhooks against a running server, for a while.
    Ingest {
        /// The server's base URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        url: String,
        /// The generic webhook secret the server was given.
        #[arg(long, default_value = figures::WEBHOOK_SECRET)]
        secret: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

/// How big a run is: `smoke` checks in seconds that every figure still works (its numbers mean
/// little); `full` is the measurement the issue asks for.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Smoke,
    Full,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    firstcall::crm::client::install_tls_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => figures::run(*args).await,
        Command::Ingest { url, secret, connections, seconds } => {
            let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
            let r = ingest::run(&url, &secret, connections, Duration::from_secs_f64(seconds), &tag).await?;
            println!("{}", r.summary());
            Ok(())
        }
    }
}

/// The repository root (the bench crate's parent), where `config/` lives.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
}
