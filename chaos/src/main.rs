//! `chaos`: firstcall's fault suite. Runs the real `firstcall` binary (it builds nothing itself)
//! against the real PostgreSQL and a real SMTP server on loopback, injects faults (SIGKILL,
//! SIGSTOP, SMTP 451/550/stalls/outages, PostgreSQL stopped), heals them, and checks each
//! promise with a final read of what was lost, duplicated or unexpected.
//!
//! ```text
//! cargo build --bin firstcall && cargo run -p chaos -- [--bin target/debug/firstcall] [--only 1,3] [--events 3000]
//! ```
//!
//! Prints one row per promise and exits non-zero when any promise failed.

mod crm;
mod mailbox;
mod pg;
mod promises;
mod report;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use report::Row;

/// What every promise needs: the binary, the repository (config and templates) and a directory
/// for logs.
pub struct Ctx {
    pub binary: PathBuf,
    pub repo: PathBuf,
    pub out: PathBuf,
    /// Unique order events for the crash test.
    pub events: usize,
}

impl Ctx {
    pub fn dir(&self, promise: &str) -> PathBuf {
        self.out.join(promise)
    }
}

struct Args {
    ctx: Ctx,
    only: Option<Vec<usize>>,
}

fn parse_args() -> anyhow::Result<Args> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = repo.canonicalize().unwrap_or(repo);
    let mut ctx = Ctx { binary: repo.join("target/debug/firstcall"), out: repo.join("target/chaos"), repo, events: 3000 };
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow::anyhow!("{a} needs a value"));
        match a.as_str() {
            "--bin" => ctx.binary = PathBuf::from(value()?),
            "--out" => ctx.out = PathBuf::from(value()?),
            "--events" => ctx.events = value()?.parse()?,
            "--only" => only = Some(value()?.split(',').map(|s| s.trim().parse()).collect::<Result<Vec<usize>, _>>()?),
            "-h" | "--help" => {
                println!("chaos [--bin PATH] [--out DIR] [--events N] [--only 1,2,3,4,5,6]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other} (try --help)"),
        }
    }
    anyhow::ensure!(ctx.binary.exists(), "{} not found: build it first (cargo build --bin firstcall)", ctx.binary.display());
    let _ = std::fs::remove_dir_all(&ctx.out);
    std::fs::create_dir_all(&ctx.out)?;
    Ok(Args { ctx, only })
}

/// Each promise gets this long before it counts as failed.
const PROMISE_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::main]
async fn main() -> ExitCode {
    // The workspace's HTTP client is built without a default TLS provider: install ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chaos: {e:#}");
            return ExitCode::from(2);
        }
    };
    let ctx = &args.ctx;
    println!("chaos: {} against PostgreSQL and an SMTP sink on loopback; logs in {}", ctx.binary.display(), ctx.out.display());
    let mut rows = Vec::new();
    for (n, name) in promises::NAMES.iter().enumerate().map(|(i, n)| (i + 1, *n)) {
        if args.only.as_ref().is_some_and(|o| !o.contains(&n)) {
            continue;
        }
        println!("\n== promise {n}: {name}");
        let started = Instant::now();
        let row = match tokio::time::timeout(PROMISE_TIMEOUT, promises::run(n, ctx)).await {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => Row { failures: vec![format!("{e:#}")], ..Row::new(name) },
            Err(_) => Row { failures: vec![format!("did not finish within {PROMISE_TIMEOUT:?}")], ..Row::new(name) },
        };
        for note in &row.notes {
            println!("   {note}");
        }
        for f in &row.failures {
            println!("   FAILED: {f}");
        }
        println!("   {} in {:.1} s", if row.passed() { "held" } else { "BROKEN" }, started.elapsed().as_secs_f64());
        rows.push(row);
    }
    println!("\n{}", report::table(&rows));
    let failed = rows.iter().filter(|r| !r.passed()).count();
    println!("chaos: {} passed, {failed} failed", rows.len() - failed);
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
