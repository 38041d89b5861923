//! The nine figures, each with its reference measured in the same run (on the same PostgreSQL,
//! or, for the CRM figure, the bound the fake CRM's rate limit sets; the latency figure has
//! none), and the report they make. Every figure gets a fresh database (copied from a migrated empty
//! template, or from the scale template with a million open calls); firstcall runs as the real
//! release binary in a child process, configured through the environment.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use clap::Args;
use testkit::SmtpSink;
use testkit::crm::SampleDeal;
use testkit::crm::hubspot::{self, FakeHubSpot};

use firstcall::config::CrmSettings;
use firstcall::config::crm::{Credential, HubspotConnector};
use firstcall::crm::Connector;
use firstcall::crm::hubspot::HubSpot;

use crate::Size;
use crate::drain::{self, Drain};
use crate::ingest::{self, IngestReport, PacedLoad};
use crate::pg::{self, Server};
use crate::proc::{Firstcall, Graphile, Launch};
use crate::reads::{self, Reads};
use crate::report::{Quantiles, Report, Samples};
use crate::seed::{self, Calls};

pub const WEBHOOK_SECRET: &str = "bench-webhook-secret";
const CONNECTIONS: usize = 64;
const EMPTY_TEMPLATE: &str = "fcbench_empty";
const SCALE_TEMPLATE: &str = "fcbench_scale";
const PROMISES_TEMPLATE: &str = "fcbench_promises";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(900);
/// The per-source webhook budget in figure 1, per minute: about twenty times the highest rate
/// measured, so the limiter runs (as deployed) but never refuses.
const RATE_LIMIT_PER_MINUTE: u32 = 6_000_000;
/// How long the inbox may take to apply what was stored under a load once the load ends.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the bench counts the pending events while it waits for them.
const BACKLOG_PROBE: Duration = Duration::from_millis(100);
/// Figure 8: how long after the load every accepted event's first email must have arrived.
const MAIL_WINDOW: Duration = Duration::from_secs(60);
/// Figure 8's connections ("a few": each event is one request on one of them).
const LATENCY_CONNECTIONS: usize = 4;
/// Figure 9: the rate one paced connection is given at most (a request every 40 ms), so a
/// higher offered rate gets more connections than figure 1's.
const STEADY_SHARE_PER_CONNECTION: f64 = 25.0;
/// Figure 9: most connections it opens, whatever the rate.
const STEADY_MAX_CONNECTIONS: usize = 1024;
/// The inbox's backlog: stored events the engine has not applied yet (a partial index holds them).
const PENDING_SQL: &str = "SELECT count(*) FROM webhook_events WHERE outcome = 'pending'";

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "full")]
    size: Size,
    /// The firstcall binary to measure.
    #[arg(long, default_value = "target/release/firstcall")]
    firstcall: PathBuf,
    /// Where graphile-worker is installed (a directory with node_modules/graphile-worker).
    #[arg(long, default_value = "bench/out/graphile")]
    graphile_dir: PathBuf,
    /// The PostgreSQL server's maintenance database; figures create their own databases beside it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Logs and scratch files.
    #[arg(long, default_value = "bench/out")]
    out_dir: PathBuf,
    /// Where the Markdown report goes.
    #[arg(long, default_value = "bench/RESULTS.md")]
    results: PathBuf,
    /// Only these figures (1-11; 4 and 11 run the ones they compare with); all when absent.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// Skip pgbench and graphile-worker (for comparing firstcall builds; the report then has
    /// no ratios to them).
    #[arg(long)]
    no_references: bool,
    /// Figure 7: the fake CRM's limit in requests per second, instead of the size's.
    #[arg(long)]
    crm_limit: Option<u32>,
    /// Figure 7: how many deals to pull, instead of the size's.
    #[arg(long)]
    crm_deals: Option<i64>,
    /// Figures 1 and 4: seconds of webhook load, instead of the size's.
    #[arg(long)]
    seconds: Option<f64>,
    /// Figure 8: events a second offered (one a request, each a new deal), instead of the size's.
    #[arg(long)]
    latency_rate: Option<f64>,
    /// Figure 8: seconds of that load, instead of the size's.
    #[arg(long)]
    latency_seconds: Option<f64>,
    /// Figure 9: seconds of steady load at half pgbench's rate, instead of the size's.
    #[arg(long)]
    steady_seconds: Option<f64>,
    /// Figure 4: open calls in the scale database, instead of the size's.
    #[arg(long)]
    scale_calls: Option<i64>,
    /// Figure 4: reminders due at once among them, instead of the size's.
    #[arg(long)]
    backlog: Option<i64>,
    /// Figure 11: open promises in its database, instead of the size's.
    #[arg(long)]
    promises: Option<i64>,
    /// Rounds: each figure and its reference run alternately this many times, and the report
    /// gives the median and the spread (3 when absent).
    #[arg(long)]
    repeat: Option<usize>,
}

/// How much each figure does at a size.
struct Plan {
    seconds: f64,
    noop_jobs: i64,
    reminder_steps: i64,
    timers: i64,
    /// Reminders due at once among the scale database's open calls (figure 4's backlog).
    backlog: i64,
    timer_span: Duration,
    /// How long after seeding the first timer is due (seeding must be done by then).
    timer_lead: Duration,
    scale_calls: i64,
    /// Figure 11: open promises, [`PROMISES_PER_CALL`] to each call marked done.
    promises: i64,
    emails: i64,
    cold_starts: usize,
    /// graphile-worker at its defaults runs one job at a time with a commit per step, so its
    /// rate is steady long before the no-op count: it gets fewer.
    graphile_default_jobs: i64,
    /// How long `serve` idles after start before its RSS is read.
    settle: Duration,
    /// The fake CRM's limit, requests per second (also the connector's configured rate).
    crm_limit: u32,
    /// Deals enriched in the CRM figure.
    crm_deals: i64,
    /// Figure 8: events offered a second, and for how long.
    latency_rate: f64,
    latency_seconds: f64,
    /// Figure 9: how long the steady load runs (a backlog sample a second).
    steady_seconds: f64,
    /// Figure 9: the most it offers a second whatever pgbench's rate (the smoke run's is tiny).
    steady_cap: Option<f64>,
    /// Figure 10: requests of each read path.
    reads: reads::Setup,
}

impl Plan {
    fn of(size: Size) -> Plan {
        match size {
            Size::Full => Plan {
                seconds: 20.0,
                noop_jobs: 100_000,
                reminder_steps: 10_000,
                timers: 10_000,
                backlog: 100_000,
                timer_span: Duration::from_secs(60),
                timer_lead: Duration::from_secs(5),
                scale_calls: 1_000_000,
                promises: 1_000_000,
                emails: 2_000,
                cold_starts: 5,
                graphile_default_jobs: 10_000,
                settle: Duration::from_secs(2),
                crm_limit: 40,
                crm_deals: 100,
                latency_rate: 50.0,
                latency_seconds: 20.0,
                steady_seconds: 60.0,
                steady_cap: None,
                reads: reads::Setup { requests: 1_000, warmup: 50, connections: 4, api_limit: 100 },
            },
            Size::Smoke => Plan {
                seconds: 1.0,
                noop_jobs: 500,
                reminder_steps: 100,
                timers: 100,
                backlog: 200,
                timer_span: Duration::from_secs(1),
                timer_lead: Duration::from_secs(1),
                scale_calls: 2_000,
                promises: 2_000,
                emails: 20,
                cold_starts: 1,
                graphile_default_jobs: 100,
                settle: Duration::from_millis(300),
                crm_limit: 20,
                crm_deals: 2,
                latency_rate: 10.0,
                latency_seconds: 3.0,
                steady_seconds: 3.0,
                steady_cap: Some(20.0),
                reads: reads::Setup { requests: 40, warmup: 4, connections: 4, api_limit: 100 },
            },
        }
    }
}

struct Ctx {
    args: RunArgs,
    plan: Plan,
    pg: Server,
    sink: SmtpSink,
    bin: PathBuf,
}

/// An option that must be a positive number.
fn positive(option: &str, v: f64) -> anyhow::Result<f64> {
    anyhow::ensure!(v.is_finite() && v > 0.0, "{option} must be a positive number, not {v}");
    Ok(v)
}

pub(crate) fn say(msg: impl AsRef<str>) {
    eprintln!("[bench {}] {}", Utc::now().format("%H:%M:%S"), msg.as_ref());
}

impl Ctx {
    fn launch(&self, command: &'static str, db_url: &str, name: &str, env: &[(&str, &str)]) -> Launch {
        Launch {
            bin: self.bin.clone(),
            command,
            db_url: db_url.to_string(),
            smtp_port: self.sink.port(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            log: self.args.out_dir.join("logs").join(format!("{name}.log")),
        }
    }

    /// A fresh database copied from `template`: its URL and a pool for the bench's queries.
    async fn database(&self, name: &str, template: &str) -> anyhow::Result<(String, sqlx::PgPool)> {
        let url = self.pg.recreate(name, Some(template)).await?;
        let pool = pg::pool(&url).await?;
        Ok((url, pool))
    }

    fn wants(&self, figure: u8) -> bool {
        self.args.only.is_empty() || self.args.only.contains(&figure)
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let bin = std::fs::canonicalize(&args.firstcall).map_err(|e| anyhow::anyhow!("{}: {e} (build it first)", args.firstcall.display()))?;
    std::fs::create_dir_all(&args.out_dir)?;
    let pg = Server { admin_url: args.admin_url.clone() };
    let mut plan = Plan::of(args.size);
    plan.crm_limit = args.crm_limit.unwrap_or(plan.crm_limit).max(1);
    plan.crm_deals = args.crm_deals.unwrap_or(plan.crm_deals).max(1);
    plan.seconds = args.seconds.unwrap_or(plan.seconds).max(0.5);
    plan.scale_calls = args.scale_calls.unwrap_or(plan.scale_calls).max(1);
    plan.backlog = args.backlog.unwrap_or(plan.backlog).max(1);
    plan.promises = args.promises.unwrap_or(plan.promises).max(PROMISES_PER_CALL);
    plan.latency_rate = positive("--latency-rate", args.latency_rate.unwrap_or(plan.latency_rate))?;
    plan.latency_seconds = positive("--latency-seconds", args.latency_seconds.unwrap_or(plan.latency_seconds))?.max(0.5);
    plan.steady_seconds = positive("--steady-seconds", args.steady_seconds.unwrap_or(plan.steady_seconds))?.round().max(1.0);
    let rounds = args.repeat.unwrap_or(3).max(1);
    let ctx = Ctx { plan, pg, sink: SmtpSink::start().await, bin, args };
    let mut report = Report {
        title: format!(
            "firstcall benchmark ({} run, {})",
            if ctx.args.size == Size::Full { "full" } else { "smoke" },
            Utc::now().format("%Y-%m-%d %H:%M UTC")
        ),
        ..Report::default()
    };
    report.machine = machine(&ctx, rounds).await?;

    say("preparing the empty template database");
    prepare_empty_template(&ctx).await?;
    if ctx.wants(4) || ctx.wants(10) {
        say(format!("figure 4: seeding {} open calls with their timers", ctx.plan.scale_calls));
        let seeded = prepare_scale_template(&ctx).await?;
        say(format!("seeded in {seeded:.1} s"));
    }
    if ctx.wants(11) {
        say(format!("figure 11: seeding {} open promises with their timers", ctx.plan.promises));
        let seeded = prepare_promises_template(&ctx).await?;
        say(format!("seeded in {seeded:.1} s"));
    }

    // Each figure and its reference run one after the other, a round at a time, so that a
    // change in the shared machine's load falls on both.
    let (mut empty, mut scale) = (Figures::default(), Figures::default());
    let mut promised = Vec::new();
    let (mut mail, mut crm, mut latency, mut steady) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut reads = Vec::new();
    let (mut explain, mut explain_backlog) = (None, None);
    for round in 1..=rounds {
        say(format!("round {round} of {rounds}"));
        let mut pgbench_tps = None;
        if ctx.wants(1) || ctx.wants(4) || ctx.wants(6) {
            say("figure 1: webhook ingest (empty database)");
            let f = ingest_figure(&ctx, EMPTY_TEMPLATE, "empty", true).await?;
            pgbench_tps = (!ctx.args.no_references).then_some(f.pgbench.tps);
            empty.ingest.push(f);
        }
        if ctx.wants(9) {
            // Half of this round's pgbench rate: figure 1's, or a run of its own.
            if pgbench_tps.is_none() && !ctx.args.no_references {
                say("figure 9: pgbench reference");
                pgbench_tps = Some(pgbench(&ctx, EMPTY_TEMPLATE, "steady").await?.tps);
            }
            match pgbench_tps {
                Some(tps) => {
                    say("figure 9: inbox backlog at a steady half of pgbench's rate");
                    steady.push(steady_figure(&ctx, tps).await?);
                }
                None => say("figure 9 skipped: it offers half of pgbench's rate, and --no-references runs no pgbench"),
            }
        }
        if ctx.wants(2) || ctx.wants(4) {
            say("figure 2: graphile-worker references");
            empty.graphile.push(graphile_figure(&ctx).await?);
            say("figure 2: firstcall engine (empty database)");
            empty.engine.push(engine_run(&ctx, EMPTY_TEMPLATE, "empty", false).await?.0);
        }
        if ctx.wants(3) || ctx.wants(4) || ctx.wants(11) {
            say("figure 3: timer precision (empty database)");
            empty.timers.push(timer_figure(&ctx, EMPTY_TEMPLATE, "empty").await?);
        }
        if ctx.wants(4) {
            say("figure 4: webhook ingest at scale");
            scale.ingest.push(ingest_figure(&ctx, SCALE_TEMPLATE, "scale", false).await?);
            say("figure 4: engine at scale");
            let (engine, plan) = engine_run(&ctx, SCALE_TEMPLATE, "scale", explain.is_none()).await?;
            scale.engine.push(engine);
            explain = explain.or(plan);
            say(format!("figure 4: {} reminders due at once at scale", ctx.plan.backlog));
            let (backlog, plan) = backlog_figure(&ctx, explain_backlog.is_none()).await?;
            scale.backlog.push(backlog);
            explain_backlog = explain_backlog.or(plan);
            say("figure 4: timer precision at scale");
            scale.timers.push(timer_figure(&ctx, SCALE_TEMPLATE, "scale").await?);
        }
        if ctx.wants(11) {
            say(format!("figure 11: timer precision with {} open promises", ctx.plan.promises));
            promised.push(timer_figure(&ctx, PROMISES_TEMPLATE, "promises").await?);
        }
        if ctx.wants(5) {
            say("figure 5: mail");
            mail.push(mail_figure(&ctx).await?);
        }
        if ctx.wants(7) {
            say("figure 7: CRM enrichment");
            crm.push(crm_figure(&ctx).await?);
        }
        if ctx.wants(8) {
            say("figure 8: event accepted → first email handed to SMTP");
            latency.push(latency_figure(&ctx).await?);
        }
        if ctx.wants(10) {
            say(format!("figure 10: read paths with {} open calls", ctx.plan.scale_calls));
            reads.push(reads_figure(&ctx, reads.is_empty()).await?);
        }
    }
    let cold = if ctx.wants(6) {
        say("figure 6: cold starts");
        Some(cold_start(&ctx).await?)
    } else {
        None
    };

    let rest = Rest { mail: &mail, crm: &crm, latency: &latency, steady: &steady, reads: &reads, promised: &promised };
    let medians = write_rows(&ctx, &mut report, &empty, &scale, cold.as_ref(), &rest);
    report.sections.push((
        "How each figure is measured".into(),
        format!("{}\n{}\n{}", method(&ctx, rounds), reads::method(ctx.plan.reads, ctx.plan.scale_calls), promises_method(&ctx)),
    ));
    if let Some(plan) = explain {
        report.sections.push((
            format!("The claim query with {} open calls in the database (EXPLAIN ANALYZE)", ctx.plan.scale_calls),
            format!("```text\n{plan}\n```"),
        ));
    }
    if let Some(plans) = explain_backlog {
        report.sections.push((
            format!(
                "The claim query with {} reminders due at once among {} open calls (EXPLAIN ANALYZE)",
                ctx.plan.backlog, ctx.plan.scale_calls
            ),
            plans,
        ));
    }
    if let Some(plans) = reads.iter().find_map(|r| r.plans.as_ref()) {
        report
            .sections
            .push((format!("The read paths' statements with {} open calls (EXPLAIN ANALYZE)", ctx.plan.scale_calls), plans.clone()));
    }
    report.sections.push(("Raw figures".into(), raw(&empty, &scale, &rest, &medians)));

    for name in [EMPTY_TEMPLATE, SCALE_TEMPLATE, PROMISES_TEMPLATE] {
        ctx.pg.drop(name).await?;
    }
    if let Some(dir) = ctx.args.results.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&ctx.args.results, report.markdown())?;
    println!("{}", report.table());
    say(format!("report written to {}", ctx.args.results.display()));
    Ok(())
}

/// One database's figures, a value a round.
#[derive(Default)]
struct Figures {
    ingest: Vec<IngestFigure>,
    graphile: Vec<GraphileFigure>,
    engine: Vec<EngineFigure>,
    timers: Vec<Lateness>,
    /// At scale only.
    backlog: Vec<Drain>,
}

async fn machine(ctx: &Ctx, rounds: usize) -> anyhow::Result<Vec<(String, String)>> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?").trim().to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let graphile = std::fs::read_to_string(ctx.args.graphile_dir.join("node_modules/graphile-worker/package.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["version"].as_str().map(String::from))
        .unwrap_or_else(|| "not installed".into());
    let pgbench = std::process::Command::new("pgbench")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let binary = std::fs::metadata(&ctx.bin).map(|m| m.len()).unwrap_or(0);
    Ok(vec![
        ("CPU".into(), format!("{cpu}, {cores} cores")),
        ("memory".into(), format!("{:.1} GiB", mem_kib as f64 / 1024.0 / 1024.0)),
        ("kernel".into(), kernel),
        (
            "load average at start".into(),
            format!(
                "{} (the machine is shared: other work on its cores shifts every figure, the references as much; each figure and its \
                 reference ran alternately {rounds} times, and the table gives the median with the lowest and highest in brackets)",
                std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            ),
        ),
        ("PostgreSQL".into(), ctx.pg.describe().await?),
        ("fsync".into(), if ctx.pg.fsync_on().await? { "on".into() } else { "OFF (figures are not comparable)".into() }),
        ("pgbench".into(), pgbench),
        ("Node.js / graphile-worker".into(), format!("{node} / {graphile}")),
        ("firstcall binary".into(), format!("{} ({:.1} MiB)", ctx.bin.display(), binary as f64 / 1048576.0)),
    ])
}

async fn prepare_empty_template(ctx: &Ctx) -> anyhow::Result<()> {
    let url = ctx.pg.recreate(EMPTY_TEMPLATE, None).await?;
    let status = tokio::process::Command::new(&ctx.bin)
        .arg("migrate")
        .current_dir(crate::repo_root())
        .env("FIRSTCALL__DATABASE__URL", &url)
        .env("FIRSTCALL__LOG__LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .await?;
    anyhow::ensure!(status.success(), "firstcall migrate failed ({status})");
    Ok(())
}

/// A million (at full size) open calls as real traffic leaves them: order, webhook event, call
/// due within a week, a reminder and an overdue timer each, an audit row. Returns seconds taken.
async fn prepare_scale_template(ctx: &Ctx) -> anyhow::Result<f64> {
    let started = Instant::now();
    let url = ctx.pg.recreate(SCALE_TEMPLATE, Some(EMPTY_TEMPLATE)).await?;
    let db = pg::pool(&url).await?;
    let chunk = 100_000i64;
    let mut from = 1;
    while from <= ctx.plan.scale_calls {
        let to = (from + chunk - 1).min(ctx.plan.scale_calls);
        let mut conn = db.acquire().await?;
        Calls {
            tag: "scale",
            from,
            to,
            ordered_at: "now() - interval '1 hour' * (g % 48)",
            due_at: "now() + interval '1 minute' * (60 + (o.id % 10080))",
            timers: &[("call.remind", "now() + interval '1 minute' * (60 + (c.id % 1440))"), ("call.overdue", "c.due_at")],
            history: true,
        }
        .insert(&mut conn)
        .await?;
        from = to + 1;
    }
    sqlx::query("VACUUM ANALYZE").execute(&db).await?;
    db.close().await;
    Ok(started.elapsed().as_secs_f64())
}

/// Open promises in figure 11's database to each call marked done (a proposal's usual count of
/// commitments).
const PROMISES_PER_CALL: i64 = 4;

/// Figure 11's database: `plan.promises` open promises of calls marked done, each with its
/// audit row and its pending reminder and escalation (all due days later), as the done form
/// leaves them. Returns seconds taken.
async fn prepare_promises_template(ctx: &Ctx) -> anyhow::Result<f64> {
    let started = Instant::now();
    let url = ctx.pg.recreate(PROMISES_TEMPLATE, Some(EMPTY_TEMPLATE)).await?;
    let db = pg::pool(&url).await?;
    let calls = ctx.plan.promises / PROMISES_PER_CALL;
    let chunk = 25_000i64;
    let mut from = 1;
    let mut seeded = 0;
    while from <= calls {
        let to = (from + chunk - 1).min(calls);
        let mut conn = db.acquire().await?;
        seeded += seed::promises(&mut conn, "promised", from, to, PROMISES_PER_CALL).await?;
        from = to + 1;
    }
    let (open, timers): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM promises WHERE state = 'open'), (SELECT count(*) FROM jobs WHERE kind LIKE 'promise.%' AND state = 'pending')",
    )
    .fetch_one(&db)
    .await?;
    anyhow::ensure!(open == seeded && timers == 2 * seeded, "seeded {seeded} promises, found {open} open with {timers} pending timers");
    sqlx::query("VACUUM ANALYZE").execute(&db).await?;
    db.close().await;
    Ok(started.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------- figure 1: ingest

struct IngestFigure {
    /// `serve` as deployed: engine and mailer running.
    firstcall: IngestReport,
    /// `serve` with its engine off: the intake path alone (a breakdown; not at scale).
    engine_off: Option<IngestReport>,
    pgbench: Pgbench,
    /// Events found stored afterwards (each accepted one must be).
    stored: i64,
    /// First-call emails the SMTP sink received while the load ran (as deployed).
    mailed: usize,
    /// Events still pending when the load ended, and the seconds until the engine had applied
    /// them all (as deployed).
    backlog: Backlog,
    /// With the engine off: events found stored and pending afterwards (each accepted one must be).
    stored_pending: Option<i64>,
    rss_idle_kib: Option<u64>,
    rss_peak_kib: Option<u64>,
}

/// What the inbox held when a load ended, and how long the engine took to apply it.
#[derive(Debug, Clone, Copy, Default)]
struct Backlog {
    events: i64,
    seconds: f64,
}

/// pgbench, then `serve` as deployed under the load, then (with `breakdown`) `serve` with its
/// engine off under the same load.
async fn ingest_figure(ctx: &Ctx, template: &str, label: &str, breakdown: bool) -> anyhow::Result<IngestFigure> {
    let pgbench = if ctx.args.no_references { Pgbench { tps: 0.0, latency_ms: 0.0 } } else { pgbench(ctx, template, label).await? };
    say(format!("  pgbench: {:.0} tps", pgbench.tps));
    let deployed = ingest_run(ctx, template, label, true).await?;
    let engine_off = if breakdown { Some(ingest_run(ctx, template, &format!("{label}-engine-off"), false).await?) } else { None };
    Ok(IngestFigure {
        firstcall: deployed.report,
        stored_pending: engine_off.as_ref().map(|o| o.stored),
        engine_off: engine_off.map(|o| o.report),
        pgbench,
        stored: deployed.stored,
        mailed: deployed.mailed,
        backlog: deployed.backlog,
        rss_idle_kib: deployed.rss_idle_kib,
        rss_peak_kib: deployed.rss_peak_kib,
    })
}

struct IngestRun {
    report: IngestReport,
    /// As deployed: events stored with their order, call and first step; engine off: events
    /// stored pending.
    stored: i64,
    mailed: usize,
    backlog: Backlog,
    rss_idle_kib: Option<u64>,
    rss_peak_kib: Option<u64>,
}

/// `firstcall serve` on a fresh copy of `template` under the webhook load. With `engine`, as
/// deployed: its engine sends each new call's first email through its mailer to the SMTP sink
/// while the load runs. The per-source rate limit is on, raised above the offered load.
async fn ingest_run(ctx: &Ctx, template: &str, label: &str, engine: bool) -> anyhow::Result<IngestRun> {
    let (url, db) = ctx.database("fcbench_ingest", template).await?;
    let rate_limit = RATE_LIMIT_PER_MINUTE.to_string();
    let mut env = vec![("FIRSTCALL__HTTP__RATE_LIMIT_PER_MINUTE", rate_limit.as_str())];
    if !engine {
        env.push(("FIRSTCALL__ENGINE__ENABLED", "false"));
    }
    let launch = ctx.launch("serve", &url, &format!("ingest-{label}"), &env);
    ctx.sink.clear();
    let since = Instant::now();
    let mut server = Firstcall::start(&launch)?;
    server.wait_ready(since, Duration::from_secs(60)).await?;
    tokio::time::sleep(ctx.plan.settle).await;
    let rss_idle_kib = server.rss_kib();
    let tag = format!("{}{}", label.replace('-', ""), &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let report = ingest::run(&server.base_url(), WEBHOOK_SECRET, CONNECTIONS, Duration::from_secs_f64(ctx.plan.seconds), &tag).await;
    // Counted at the load's end: what the mailer delivered while the load ran.
    let mailed = ctx.sink.messages().len();
    ctx.sink.clear();
    // As deployed, the engine applies what the inbox still holds (the server runs until it has).
    let backlog = match &report {
        Ok(_) if engine => wait_applied(&db, BACKLOG_TIMEOUT).await,
        _ => Ok(Backlog::default()),
    };
    let rss_peak_kib = server.peak_rss_kib();
    // A short load may end before the first email goes out: then one must arrive while the
    // backlog is applied or soon after.
    let mailed_at_all = mailed > 0 || (engine && backlog.is_ok() && !ctx.sink.wait_for(1, MAIL_WINDOW).await.is_empty());
    ctx.sink.clear();
    server.stop().await;
    let (report, backlog) = (report?, backlog?);
    let events = format!("evt-{tag}-%");
    let stored = if engine {
        say(format!(
            "  firstcall: {}; {mailed} emails delivered meanwhile; backlog after the load: {} events, applied in {:.1} s",
            report.summary(),
            backlog.events,
            backlog.seconds
        ));
        // Each accepted event is stored with its order and call, and the call's first step is
        // either still queued or done (its first email in the outbox).
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_events e JOIN calls c ON c.order_id = e.order_id \
             WHERE e.dedupe_key LIKE $1 AND (EXISTS (SELECT 1 FROM jobs j WHERE j.subject_id = c.id AND j.kind = 'call.start') \
             OR EXISTS (SELECT 1 FROM emails m WHERE m.call_id = c.id AND m.kind = 'first_call'))",
        )
        .bind(&events)
        .fetch_one(&db)
        .await?;
        if stored < report.accepted as i64 {
            let outcomes: Vec<(String, i64)> =
                sqlx::query_as("SELECT outcome, count(*) FROM webhook_events WHERE dedupe_key LIKE $1 GROUP BY 1 ORDER BY 1")
                    .bind(&events)
                    .fetch_all(&db)
                    .await?;
            anyhow::bail!(
                "only {stored} of {} acknowledged events are stored with their call and its first step (their outcomes: {outcomes:?}; see logs/ingest-{label}.log)",
                report.accepted
            );
        }
        anyhow::ensure!(
            mailed_at_all,
            "serve ran its engine, yet no first email reached the SMTP sink during the load, nor within {} s of its backlog applied",
            MAIL_WINDOW.as_secs()
        );
        stored
    } else {
        say(format!("  firstcall (engine off): {}", report.summary()));
        // Each accepted event is stored, pending; nothing applied it.
        let (pending, orders, calls): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM webhook_events WHERE dedupe_key LIKE $1 AND outcome = 'pending'), \
             (SELECT count(*) FROM orders WHERE deal_id LIKE $2), (SELECT count(*) FROM calls WHERE deal_id LIKE $2)",
        )
        .bind(&events)
        .bind(format!("D-{tag}-%"))
        .fetch_one(&db)
        .await?;
        anyhow::ensure!(
            pending >= report.accepted as i64,
            "only {pending} of {} acknowledged events are stored pending with the engine off",
            report.accepted
        );
        anyhow::ensure!(orders == 0 && calls == 0, "with the engine off, {orders} orders and {calls} calls were written anyway");
        pending
    };
    db.close().await;
    ctx.pg.drop("fcbench_ingest").await?;
    Ok(IngestRun { report, stored, mailed, backlog, rss_idle_kib, rss_peak_kib })
}

/// Waits (probing every 100 ms) until no stored event is pending: the engine of the server on
/// `db` has applied what the inbox held. Returns the backlog found at the start and how long
/// it took.
async fn wait_applied(db: &sqlx::PgPool, timeout: Duration) -> anyhow::Result<Backlog> {
    let since = Instant::now();
    let mut first = None;
    loop {
        let pending: i64 = sqlx::query_scalar(PENDING_SQL).fetch_one(db).await?;
        let events = *first.get_or_insert(pending);
        if pending == 0 {
            return Ok(Backlog { events, seconds: since.elapsed().as_secs_f64() });
        }
        anyhow::ensure!(
            since.elapsed() < timeout,
            "{pending} of the {events} events pending when the load ended were still pending {timeout:?} later"
        );
        tokio::time::sleep(BACKLOG_PROBE).await;
    }
}

struct Pgbench {
    tps: f64,
    latency_ms: f64,
}

/// pgbench at the same client count: one single-row INSERT of the same ~1 KB JSON body with a
/// unique key per transaction, into a table beside firstcall's (same database template).
async fn pgbench(ctx: &Ctx, template: &str, label: &str) -> anyhow::Result<Pgbench> {
    let name = "fcbench_pgbench";
    let (_, db) = ctx.database(name, template).await?;
    sqlx::query("CREATE TABLE ref_events (id bigserial PRIMARY KEY, dedupe_key text NOT NULL UNIQUE, received_at timestamptz NOT NULL DEFAULT now(), payload json NOT NULL)")
        .execute(&db)
        .await?;
    sqlx::query("CREATE SEQUENCE ref_key").execute(&db).await?;
    db.close().await;
    let body = String::from_utf8(ingest::order_created("ref", 0, 0))?.replace('\'', "''");
    let dir = ctx.args.out_dir.join("pgbench");
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("insert_event.sql");
    std::fs::write(&script, format!("INSERT INTO ref_events (dedupe_key, payload) VALUES ('evt-' || nextval('ref_key'), '{body}');\n"))?;
    let (host, port, user) = pg_target(&ctx.pg.admin_url);
    let out = tokio::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c", &CONNECTIONS.to_string(), "-j", "2", "-T", &format!("{}", ctx.plan.seconds.ceil() as u64)])
        .args(["-h", &host, "-p", &port, "-U", &user, "-f"])
        .arg(&script)
        .arg(name)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    std::fs::write(dir.join(format!("pgbench-{label}.txt")), format!("{text}\n{}", String::from_utf8_lossy(&out.stderr)))?;
    anyhow::ensure!(out.status.success(), "pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    let field = |prefix: &str| -> Option<f64> {
        text.lines().find(|l| l.starts_with(prefix))?.split('=').nth(1)?.split_whitespace().next()?.parse().ok()
    };
    let tps = field("tps").ok_or_else(|| anyhow::anyhow!("no tps in pgbench output:\n{text}"))?;
    let latency_ms = field("latency average").unwrap_or(0.0);
    ctx.pg.drop(name).await?;
    Ok(Pgbench { tps, latency_ms })
}

/// Host, port and user of a postgres:// URL, for pgbench's flags.
fn pg_target(url: &str) -> (String, String, String) {
    let rest = url.split("://").nth(1).unwrap_or("");
    let authority = rest.split('/').next().unwrap_or("");
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (u.split(':').next().unwrap_or("postgres").to_string(), h),
        None => ("postgres".to_string(), authority),
    };
    let (host, port) =
        hostport.rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap_or((hostport.to_string(), "5432".into()));
    (host, port, user)
}

// ---------------------------------------------------------------- figure 2: engine

/// graphile-worker's no-op jobs in the configuration its performance page documents and at its
/// defaults, and its step reference: jobs whose task writes one outbox row and raises one counter
/// in one transaction, in the documented configuration.
struct GraphileFigure {
    batched: Drain,
    defaults: Drain,
    steps: Drain,
}

async fn graphile_figure(ctx: &Ctx) -> anyhow::Result<GraphileFigure> {
    if ctx.args.no_references {
        let none = Drain { jobs: 0, seconds: 0.0 };
        return Ok(GraphileFigure { batched: none, defaults: none, steps: none });
    }
    let p = &ctx.plan;
    let mut out = Vec::new();
    for (label, mode, task, jobs) in [
        ("batched", "batched", "noop", p.noop_jobs),
        ("defaults", "defaults", "noop", p.graphile_default_jobs),
        ("steps", "batched", "step", p.reminder_steps),
    ] {
        let name = format!("fcbench_graphile_{label}");
        let url = ctx.pg.recreate(&name, None).await?;
        let db = pg::pool(&url).await?;
        let payload = if task == "step" {
            seed::reference_calls(&mut *db.acquire().await?, jobs).await?;
            "json_build_object('call_id', g)"
        } else {
            "'{}'::json"
        };
        let log = ctx.args.out_dir.join("logs").join(format!("graphile-{label}.log"));
        let worker = Graphile::start(&ctx.args.graphile_dir, &url, mode, &log).await?;
        let d = match drain::wait_listening(&db, Duration::from_secs(30)).await {
            Ok(()) => drain::graphile_jobs(&db, task, payload, jobs, DRAIN_TIMEOUT).await,
            Err(e) => Err(e),
        };
        worker.stop().await;
        let d = d?;
        if task == "step" {
            // The reference did its work: one outbox row and one raised counter a job.
            let (rows, raised): (i64, i64) =
                sqlx::query_as("SELECT (SELECT count(*) FROM ref_outbox), (SELECT count(*) FROM ref_calls WHERE reminders_sent = 1)")
                    .fetch_one(&db)
                    .await?;
            anyhow::ensure!(
                rows == jobs && raised == jobs,
                "graphile-worker's steps wrote {rows} outbox rows and raised {raised} counters for {jobs} jobs"
            );
        }
        say(format!("  graphile-worker {label}: {} jobs in {:.2} s = {:.0} jobs/s", d.jobs, d.seconds, d.rate()));
        db.close().await;
        ctx.pg.drop(&name).await?;
        out.push(d);
    }
    Ok(GraphileFigure { batched: out[0], defaults: out[1], steps: out[2] })
}

struct EngineFigure {
    /// `noop.step`: the step path with a handler that writes nothing (the headline).
    steps: Drain,
    /// `noop`: completed by one DELETE, without a transaction or a step (a breakdown).
    shortcut: Drain,
    reminders: Drain,
}

/// `firstcall worker` at its default settings drains no-op steps, then no-op jobs, then real
/// reminder steps (lock the call, build the recap, render the reminder into the outbox, plan the
/// next timers). With `explain`, first the claim query's plan with the no-op steps due.
async fn engine_run(ctx: &Ctx, template: &str, label: &str, explain: bool) -> anyhow::Result<(EngineFigure, Option<String>)> {
    let name = "fcbench_engine";
    let (url, db) = ctx.database(name, template).await?;
    let plan = if explain { Some(explain_claim(&db, ctx.plan.noop_jobs).await?) } else { None };
    let mut worker = Firstcall::start(&ctx.launch("worker", &url, &format!("engine-{label}"), &[]))?;
    let drained = async {
        drain::wait_listening(&db, Duration::from_secs(60)).await?;
        let steps = drain::firstcall_noop(&db, "noop.step", ctx.plan.noop_jobs, DRAIN_TIMEOUT).await?;
        say(format!("  noop.step: {} jobs in {:.2} s = {:.0} jobs/s", steps.jobs, steps.seconds, steps.rate()));
        let shortcut = drain::firstcall_noop(&db, "noop", ctx.plan.noop_jobs, DRAIN_TIMEOUT).await?;
        say(format!("  noop (shortcut): {} jobs in {:.2} s = {:.0} jobs/s", shortcut.jobs, shortcut.seconds, shortcut.rate()));
        let reminders = reminder_steps(&db, ctx.plan.reminder_steps).await?;
        say(format!("  reminders: {} steps in {:.2} s = {:.0} steps/s", reminders.jobs, reminders.seconds, reminders.rate()));
        anyhow::Ok(EngineFigure { steps, shortcut, reminders })
    }
    .await;
    worker_alive(&mut worker)?;
    worker.stop().await;
    ctx.sink.clear();
    let figure = drained?;
    db.close().await;
    ctx.pg.drop(name).await?;
    Ok((figure, plan))
}

fn worker_alive(w: &mut Firstcall) -> anyhow::Result<()> {
    anyhow::ensure!(w.rss_kib().is_some(), "the firstcall worker died during the figure (see its log)");
    Ok(())
}

async fn reminder_steps(db: &sqlx::PgPool, n: i64) -> anyhow::Result<Drain> {
    let mut tx = db.begin().await?;
    let range = Calls::reminders_due_now("rem", n, false).insert(&mut tx).await?;
    tx.commit().await?;
    // Statistics as autovacuum would have them a minute after such a load, so that the empty and
    // the full database are compared in the same state (a never-analysed table gets poor plans).
    sqlx::query("ANALYZE").execute(db).await?;
    sqlx::query("NOTIFY firstcall_jobs").execute(db).await?;
    let drained = drain::wait_firstcall(db, range, Instant::now(), DRAIN_TIMEOUT).await?;
    ensure_reminders(db, "D-rem-%", n).await?;
    Ok(drained)
}

/// Each of the `n` calls whose deal id is like `deals` has its reminder in the outbox: the steps
/// did their work, not only took their jobs away.
async fn ensure_reminders(db: &sqlx::PgPool, deals: &str, n: i64) -> anyhow::Result<()> {
    let written: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT m.call_id) FROM emails m JOIN calls c ON c.id = m.call_id WHERE m.kind = 'reminder' AND c.deal_id LIKE $1",
    )
    .bind(deals)
    .fetch_one(db)
    .await?;
    anyhow::ensure!(written == n, "{written} of {n} reminder steps wrote their reminder");
    Ok(())
}

/// The claim statement's plan with `due` jobs due now among everything already there (inside a
/// transaction that is rolled back, so nothing is claimed).
async fn explain_claim(db: &sqlx::PgPool, due: i64) -> anyhow::Result<String> {
    let mut tx = db.begin().await?;
    seed::noop_jobs(&mut tx, "noop.step", due).await?;
    sqlx::query("ANALYZE jobs").execute(&mut *tx).await?;
    let plan = explain_in(&mut tx).await?;
    tx.rollback().await?;
    Ok(plan)
}

/// The claim statement's plan on the jobs as they are (rolled back: nothing is claimed).
async fn explain_claim_only(db: &sqlx::PgPool) -> anyhow::Result<String> {
    let mut tx = db.begin().await?;
    let plan = explain_in(&mut tx).await?;
    tx.rollback().await?;
    Ok(plan)
}

async fn explain_in(tx: &mut sqlx::PgConnection) -> anyhow::Result<String> {
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {}", firstcall::engine::claim_sql(sea_orm::DbBackend::Postgres));
    let now = Utc::now();
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind("explain")
        .bind("explain-token")
        // The lease, in seconds: PostgreSQL ends it on its own clock.
        .bind(60.0f64)
        .bind(now)
        .bind(200i64)
        .fetch_all(&mut *tx)
        .await?;
    Ok(lines.join("\n"))
}

// ---------------------------------------------------------------- figure 3: timers

#[derive(Debug, Clone, Copy)]
struct Lateness {
    fired: i64,
    expected: i64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Timers due spread evenly over the span (overdue checks of open calls: the step marks the call
/// overdue and plans its escalation); lateness is the step's start time minus the due time.
async fn timer_figure(ctx: &Ctx, template: &str, label: &str) -> anyhow::Result<Lateness> {
    let name = "fcbench_timers";
    let (url, db) = ctx.database(name, template).await?;
    let mut worker = Firstcall::start(&ctx.launch("worker", &url, &format!("timers-{label}"), &[]))?;
    drain::wait_listening(&db, Duration::from_secs(60)).await?;
    let n = ctx.plan.timers;
    let span = ctx.plan.timer_span;
    let lead = ctx.plan.timer_lead;
    let start = Utc::now() + chrono::TimeDelta::from_std(lead)?;
    let step_us = span.as_micros() as i64 / n.max(1);
    let ordered_at = format!("'{}'::timestamptz + (g - 1) * interval '{step_us} microseconds'", start.to_rfc3339());
    let mut conn = db.acquire().await?;
    let range = Calls {
        tag: "tim",
        from: 1,
        to: n,
        ordered_at: &ordered_at,
        due_at: "o.ordered_at",
        timers: &[("call.overdue", "c.due_at")],
        history: false,
    }
    .insert(&mut conn)
    .await?;
    drop(conn);
    anyhow::ensure!(Utc::now() < start, "seeding the timers took longer than the lead time; lateness would be meaningless");
    tokio::time::sleep(lead + span).await;
    let drained = drain::wait_firstcall(&db, range, Instant::now(), Duration::from_secs(120)).await;
    worker_alive(&mut worker)?;
    worker.stop().await;
    drained?;
    let (fired, p50, p99, max): (i64, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l) FROM \
         (SELECT (extract(epoch FROM (a.at - c.due_at)) * 1000)::float8 AS l FROM calls c JOIN audit_log a ON a.entity = 'call' AND a.entity_id = c.id \
          AND a.action = 'state' AND a.to_state = 'overdue' WHERE c.deal_id LIKE 'D-tim-%') x",
    )
    .fetch_one(&db)
    .await?;
    // Where the tail is: the seconds with the latest timers, to tell a stall from a spread.
    let worst: Vec<(String, i64, f64)> = sqlx::query_as(
        "SELECT to_char(date_trunc('second', c.due_at), 'HH24:MI:SS'), count(*), max(extract(epoch FROM (a.at - c.due_at)) * 1000)::float8 AS l \
         FROM calls c JOIN audit_log a ON a.entity = 'call' AND a.entity_id = c.id AND a.action = 'state' AND a.to_state = 'overdue' \
         WHERE c.deal_id LIKE 'D-tim-%' GROUP BY 1 ORDER BY 3 DESC LIMIT 3",
    )
    .fetch_all(&db)
    .await?;
    db.close().await;
    ctx.pg.drop(name).await?;
    let worst: Vec<String> = worst.iter().map(|(at, n, l)| format!("{at} UTC: {n} due, latest {l:.0} ms")).collect();
    say(format!("  latest seconds: {}", worst.join("; ")));
    let l = Lateness { fired, expected: n, p50_ms: p50.unwrap_or(0.0), p99_ms: p99.unwrap_or(0.0), max_ms: max.unwrap_or(0.0) };
    say(format!("  {fired}/{n} timers fired; lateness p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", l.p50_ms, l.p99_ms, l.max_ms));
    anyhow::ensure!(fired == n, "only {fired} of {n} timers fired");
    Ok(l)
}

/// A burst: `plan.backlog` more open calls, each with a reminder due now, among the scale
/// database's million (whose own timers are all due later), as every rep's 09:00 reminder would
/// be. `firstcall worker` starts on it and the time runs from its start until the last of these
/// reminders is done. With `explain`, the claim query's plan with the backlog due, and again
/// once half of it is done (when the index holds the entries of the jobs already deleted).
async fn backlog_figure(ctx: &Ctx, explain: bool) -> anyhow::Result<(Drain, Option<String>)> {
    let name = "fcbench_backlog";
    let (url, db) = ctx.database(name, SCALE_TEMPLATE).await?;
    let n = ctx.plan.backlog;
    let mut conn = db.acquire().await?;
    let range = Calls::reminders_due_now("burst", n, true).insert(&mut conn).await?;
    drop(conn);
    sqlx::query("ANALYZE").execute(&db).await?;
    let mut plans = Vec::new();
    if explain {
        plans.push(("due, none claimed yet", explain_claim_only(&db).await?));
    }
    let started = Instant::now();
    let mut worker = Firstcall::start(&ctx.launch("worker", &url, "backlog", &[]))?;
    let drained = async {
        loop {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE id BETWEEN $1 AND $2")
                .bind(range.lo)
                .bind(range.hi)
                .fetch_one(&db)
                .await?;
            if left == 0 {
                return anyhow::Ok(started.elapsed().as_secs_f64());
            }
            if explain && plans.len() == 1 && left <= n / 2 {
                plans.push(("half of it done", explain_claim_only(&db).await?));
            }
            anyhow::ensure!(started.elapsed() < DRAIN_TIMEOUT, "{left} of {n} reminders still due after {DRAIN_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    .await;
    worker_alive(&mut worker)?;
    worker.stop().await;
    ctx.sink.clear();
    let seconds = drained?;
    ensure_reminders(&db, "D-burst-%", n).await?;
    db.close().await;
    ctx.pg.drop(name).await?;
    let d = Drain { jobs: range.count, seconds };
    say(format!("  {} reminders due at once: done in {:.2} s = {:.0} steps/s", d.jobs, d.seconds, d.rate()));
    let plans =
        explain.then(|| plans.iter().map(|(when, plan)| format!("{when}:\n\n```text\n{plan}\n```")).collect::<Vec<_>>().join("\n\n"));
    Ok((d, plans))
}

// ---------------------------------------------------------------- figure 10: read paths

/// Figure 10 on a copy of the scale database (see `reads`); with `explain`, the plans too, from a
/// second `serve` whose sessions explain every statement.
async fn reads_figure(ctx: &Ctx, explain: bool) -> anyhow::Result<Reads> {
    let name = "fcbench_reads";
    let (url, db) = ctx.database(name, SCALE_TEMPLATE).await?;
    let serve = ctx.launch("serve", &url, "reads", &[]);
    let traced = ctx.launch("serve", &url, "reads-statements", &[("RUST_LOG", "info,sqlx::postgres::notice=info")]);
    let figure = reads::run(&db, &serve, explain.then_some(&traced), ctx.plan.reads).await;
    ctx.sink.clear();
    db.close().await;
    ctx.pg.drop(name).await?;
    figure
}

// ---------------------------------------------------------------- figure 5: mail

struct MailFigure {
    pooled: f64,
    single: f64,
    per_message: f64,
}

async fn mail_figure(ctx: &Ctx) -> anyhow::Result<MailFigure> {
    let mut rates = Vec::new();
    for (label, pool, concurrency) in [("pooled", "4", "4"), ("single", "1", "1"), ("per-message", "0", "4")] {
        let name = "fcbench_mail";
        let (url, db) = ctx.database(name, EMPTY_TEMPLATE).await?;
        let n = ctx.plan.emails;
        let mut conn = db.acquire().await?;
        seed::emails(&mut conn, n).await?;
        drop(conn);
        ctx.sink.clear();
        let env = [("FIRSTCALL__MAIL__SMTP__POOL_SIZE", pool), ("FIRSTCALL__MAIL__CONCURRENCY", concurrency)];
        let worker = Firstcall::start(&ctx.launch("worker", &url, &format!("mail-{label}"), &env))?;
        let first = ctx.sink.wait_for(1, Duration::from_secs(60)).await;
        let t_first = Instant::now();
        let all = ctx.sink.wait_for(n as usize, DRAIN_TIMEOUT).await;
        let seconds = t_first.elapsed().as_secs_f64();
        worker.stop().await;
        db.close().await;
        ctx.pg.drop(name).await?;
        anyhow::ensure!(!first.is_empty() && all.len() >= n as usize, "{label}: only {} of {n} messages arrived", all.len());
        let rate = (n - 1) as f64 / seconds.max(1e-9);
        say(format!("  {label} (pool {pool}, {concurrency} at once): {n} messages, {rate:.0}/s"));
        rates.push(rate);
    }
    ctx.sink.clear();
    Ok(MailFigure { pooled: rates[0], single: rates[1], per_message: rates[2] })
}

// ---------------------------------------------------------------- figure 6: footprint

struct ColdStart {
    migrated_ms: Vec<f64>,
    fresh_ms: f64,
}

/// From spawning `firstcall serve` to `/readyz` answering 200: on a migrated database (the usual
/// restart), and once on an empty one (migrations included).
async fn cold_start(ctx: &Ctx) -> anyhow::Result<ColdStart> {
    let name = "fcbench_start";
    let mut migrated_ms = Vec::new();
    for i in 0..ctx.plan.cold_starts {
        let (url, db) = ctx.database(name, EMPTY_TEMPLATE).await?;
        db.close().await;
        let since = Instant::now();
        let mut s = Firstcall::start(&ctx.launch("serve", &url, &format!("start-{i}"), &[]))?;
        let t = s.wait_ready(since, Duration::from_secs(60)).await?;
        s.stop().await;
        migrated_ms.push(t.as_secs_f64() * 1000.0);
    }
    let url = ctx.pg.recreate(name, None).await?;
    let since = Instant::now();
    let mut s = Firstcall::start(&ctx.launch("serve", &url, "start-fresh", &[]))?;
    let fresh_ms = s.wait_ready(since, Duration::from_secs(60)).await?.as_secs_f64() * 1000.0;
    s.stop().await;
    ctx.pg.drop(name).await?;
    migrated_ms.sort_by(f64::total_cmp);
    Ok(ColdStart { migrated_ms, fresh_ms })
}

// ---------------------------------------------------------------- figure 7: CRM enrichment

/// The first HubSpot deal id of the figure (ids are digits; the K deals follow it).
const FIRST_DEAL: i64 = 9_100_000_001;

struct CrmFigure {
    /// The fake's limit, requests per second.
    limit: u32,
    deals: i64,
    /// From the first request the fake received to the last deal's proposal found stored.
    seconds: f64,
    /// From starting the worker to the first request (start-up, not counted in the rate).
    to_first_request: f64,
    /// The requests one deal's pull needs, counted on a pull of the same deal beforehand.
    needed: usize,
    /// Requests the fake answered with a 2xx (more than deals × needed when a pull was given up
    /// and done again).
    answered: usize,
    /// Requests it answered 429.
    throttled: usize,
    /// Any other answer (none expected).
    other: usize,
    /// The most requests the fake received within any one second.
    busiest: usize,
}

impl CrmFigure {
    fn rate(&self) -> f64 {
        self.deals as f64 / self.seconds.max(1e-9)
    }

    /// Requests answered 2xx beyond what the pulls needed: pulls given up part-way and done again.
    fn redone(&self) -> usize {
        self.answered.saturating_sub(self.needed * self.deals as usize)
    }

    /// The best possible rate: the limit over the requests one order needs.
    fn bound(&self) -> f64 {
        self.limit as f64 / self.needed.max(1) as f64
    }
}

/// A fake HubSpot allowing `crm_limit` requests per second (429 with `Retry-After: 1` beyond)
/// serves `crm_deals` copies of the sample deal; as many open calls wait for their `crm.enrich`
/// pull; `firstcall worker`, with its connector set to the same rate, pulls them all. The rate
/// runs from the first request the fake receives until every deal's proposal (origin `crm`) is
/// stored.
async fn crm_figure(ctx: &Ctx) -> anyhow::Result<CrmFigure> {
    let name = "fcbench_crm";
    let (limit, deals) = (ctx.plan.crm_limit, ctx.plan.crm_deals);
    let fake = FakeHubSpot::start().await;
    fake.server.limit(limit, 1);
    // The fake also enforces HubSpot's app limit (100 per 10 s unless set), announced in headers
    // that pause the connector when used up: raised out of reach, so the per-second limit is the
    // only one.
    fake.app_limit(1_000_000, 10_000);
    let deal = SampleDeal::acme(Utc::now() - TimeDelta::days(1));
    let needed = requests_per_pull(&deal).await?;
    for i in 0..deals {
        fake.put_deal(&(FIRST_DEAL + i).to_string(), &deal);
    }
    let (url, db) = ctx.database(name, EMPTY_TEMPLATE).await?;
    let mut conn = db.acquire().await?;
    let seeded = seed::crm_calls(&mut conn, "hubspot", FIRST_DEAL, deals).await?;
    drop(conn);
    anyhow::ensure!(seeded.count == deals, "seeded {} crm.enrich jobs, not {deals}", seeded.count);
    sqlx::query("ANALYZE").execute(&db).await?;

    let rate = limit.to_string();
    let env = [
        ("FIRSTCALL__CRM__HUBSPOT__TOKEN", hubspot::TOKEN),
        ("FIRSTCALL__CRM__HUBSPOT__BASE_URL", fake.server.base_url.as_str()),
        ("FIRSTCALL__CRM__HUBSPOT__REQUESTS_PER_SECOND", rate.as_str()),
    ];
    let started = Instant::now();
    let mut worker = Firstcall::start(&ctx.launch("worker", &url, "crm", &env))?;
    // Twice the time the bound allows, and start-up.
    let timeout = Duration::from_secs_f64(deals as f64 * needed as f64 / limit as f64 * 2.0 + 60.0);
    let stored = wait_enriched(&db, deals, started, timeout).await;
    let done = Instant::now();
    worker_alive(&mut worker)?;
    worker.stop().await;
    let requests = fake.server.requests();
    let busiest = fake.server.busiest_second();
    fake.server.stop().await;
    if let Err(e) = stored {
        let errors: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT last_error FROM jobs WHERE kind = 'crm.enrich' AND last_error IS NOT NULL LIMIT 3")
                .fetch_all(&db)
                .await
                .unwrap_or_default();
        anyhow::bail!("{e}; {} requests reached the fake; jobs' errors: {errors:?} (see logs/crm.log)", requests.len());
    }
    db.close().await;
    ctx.pg.drop(name).await?;
    let first = requests.iter().map(|r| r.at).min().ok_or_else(|| anyhow::anyhow!("the fake CRM received no request"))?;
    let f = CrmFigure {
        limit,
        deals,
        seconds: done.duration_since(first).as_secs_f64(),
        to_first_request: first.duration_since(started).as_secs_f64(),
        needed,
        answered: requests.iter().filter(|r| (200..300).contains(&r.status)).count(),
        throttled: requests.iter().filter(|r| r.status == 429).count(),
        other: requests.iter().filter(|r| !(200..300).contains(&r.status) && r.status != 429).count(),
        busiest,
    };
    say(format!(
        "  {} deals in {:.2} s = {:.2} orders/s; {} requests an order ({} more done again), bound {:.2} orders/s, ratio {:.2}; {} answered 429, busiest second {} requests (limit {})",
        f.deals,
        f.seconds,
        f.rate(),
        f.needed,
        f.redone(),
        f.bound(),
        f.rate() / f.bound(),
        f.throttled,
        f.busiest,
        f.limit
    ));
    anyhow::ensure!(f.other == 0, "the fake CRM answered {} requests with neither 2xx nor 429", f.other);
    Ok(f)
}

/// The requests one pull of `deal` makes: the production connector reads it once from a fake
/// HubSpot of its own, without a limit.
async fn requests_per_pull(deal: &SampleDeal) -> anyhow::Result<usize> {
    let fake = FakeHubSpot::start().await;
    fake.put_deal(&FIRST_DEAL.to_string(), deal);
    let s = CrmSettings {
        hubspot: HubspotConnector {
            base_url: fake.server.base_url.clone(),
            token: Some(Credential(hubspot::TOKEN.into())),
            ..HubspotConnector::default()
        },
        ..CrmSettings::default()
    };
    let connector = HubSpot::new(&s.hubspot, &s).map_err(anyhow::Error::msg)?;
    let pulled = connector.fetch_deal(&FIRST_DEAL.to_string()).await;
    let n = fake.server.requests().len();
    fake.server.stop().await;
    pulled.map_err(|e| anyhow::anyhow!("the sample deal could not be pulled: {e}"))?;
    Ok(n)
}

/// Waits until every deal of the figure has a proposal pulled from the CRM.
async fn wait_enriched(db: &sqlx::PgPool, deals: i64, since: Instant, timeout: Duration) -> anyhow::Result<()> {
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(DISTINCT deal_id) FROM proposals WHERE origin = 'crm'").fetch_one(db).await?;
        if stored >= deals {
            return Ok(());
        }
        if since.elapsed() > timeout {
            anyhow::bail!("only {stored} of {deals} deals were enriched within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------- figure 8: accepted → first email

struct LatencyFigure {
    rate: f64,
    seconds: f64,
    connections: usize,
    sent: u64,
    accepted: u64,
    errors: u64,
    first_error: Option<String>,
    /// Accepted events whose first email the sink received within the window after the load.
    emailed: usize,
    /// From the 200 arriving at the client to the sink receiving the deal's first email.
    from_answer: Quantiles,
    /// The same from the moment the request was sent.
    from_sent: Quantiles,
    /// When the last of those emails arrived, seconds after the load's end.
    last_after_load: f64,
}

/// `serve` as deployed gets `latency_rate` new `order.created` events a second for
/// `latency_seconds` (one a request, over a few connections, each event a new deal); for each
/// one answered 200, the time from its answer (and from its request) until the SMTP sink in the
/// bench process received the deal's first email (the deal id is in the recap it carries).
async fn latency_figure(ctx: &Ctx) -> anyhow::Result<LatencyFigure> {
    let name = "fcbench_latency";
    let (url, db) = ctx.database(name, EMPTY_TEMPLATE).await?;
    let rate_limit = RATE_LIMIT_PER_MINUTE.to_string();
    let launch = ctx.launch("serve", &url, "latency", &[("FIRSTCALL__HTTP__RATE_LIMIT_PER_MINUTE", rate_limit.as_str())]);
    ctx.sink.clear();
    let since = Instant::now();
    let mut server = Firstcall::start(&launch)?;
    let (rate, seconds) = (ctx.plan.latency_rate, ctx.plan.latency_seconds);
    let measured = async {
        server.wait_ready(since, Duration::from_secs(60)).await?;
        tokio::time::sleep(ctx.plan.settle).await;
        let tag = format!("lat{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let load = ingest::paced(&PacedLoad {
            base_url: &server.base_url(),
            secret: WEBHOOK_SECRET,
            rate,
            duration: Duration::from_secs_f64(seconds),
            connections: LATENCY_CONNECTIONS,
            tag: &tag,
            start: Instant::now(),
            keep: true,
        })
        .await?;
        let load_end = Instant::now();
        let first = first_emails(ctx, &tag, &load.answered, load_end + MAIL_WINDOW).await;
        anyhow::Ok((load, load_end, first))
    }
    .await;
    server.stop().await;
    ctx.sink.clear();
    db.close().await;
    ctx.pg.drop(name).await?;
    let (load, load_end, first) = measured?;
    let mut from_answer = Vec::with_capacity(first.len());
    let mut from_sent = Vec::with_capacity(first.len());
    let mut last = None::<Instant>;
    for (a, at) in load.answered.iter().zip(&first) {
        if let Some(at) = *at {
            from_answer.push(signed_ms(at, a.answered));
            from_sent.push(signed_ms(at, a.sent));
            last = last.max(Some(at));
        }
    }
    let f = LatencyFigure {
        rate,
        seconds,
        connections: LATENCY_CONNECTIONS,
        sent: load.sent,
        accepted: load.accepted,
        errors: load.errors,
        first_error: load.first_error,
        emailed: from_answer.len(),
        from_answer: Quantiles::of(from_answer),
        from_sent: Quantiles::of(from_sent),
        last_after_load: last.map(|l| signed_ms(l, load_end) / 1000.0).unwrap_or(0.0),
    };
    say(format!(
        "  {} sent, {} accepted, {} errors; first email {}/{} within {} s of the load's end; from the 200: {}; from the request: {}",
        f.sent,
        f.accepted,
        f.errors,
        f.emailed,
        f.accepted,
        MAIL_WINDOW.as_secs(),
        f.from_answer.show(),
        f.from_sent.show()
    ));
    anyhow::ensure!(f.accepted > 0, "no event was accepted (first error: {})", f.first_error.as_deref().unwrap_or("none"));
    anyhow::ensure!(
        f.emailed as u64 == f.accepted,
        "only {} of {} accepted events had their first email handed to SMTP within {} s of the load's end (see logs/latency.log)",
        f.emailed,
        f.accepted,
        MAIL_WINDOW.as_secs()
    );
    Ok(f)
}

/// `a - b` in milliseconds, negative when `a` came first.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    match a.checked_duration_since(b) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(b.duration_since(a).as_secs_f64() * 1000.0),
    }
}

/// When the sink received each answered event's first email (None: not by `deadline`),
/// matched by the deal id in the email's text (the recap names its deal), in `answered`'s order.
async fn first_emails(ctx: &Ctx, tag: &str, answered: &[ingest::Answered], deadline: Instant) -> Vec<Option<Instant>> {
    let index: std::collections::HashMap<&str, usize> = answered.iter().enumerate().map(|(i, a)| (a.deal.as_str(), i)).collect();
    let marker = format!("D-{tag}-");
    let mut first = vec![None; answered.len()];
    let (mut seen, mut found) = (0, 0);
    loop {
        let deliveries = ctx.sink.deliveries();
        for d in deliveries.iter().skip(seen) {
            if let Some(deal) = deal_of(&d.message, &marker)
                && let Some(&i) = index.get(deal.as_str())
                && first[i].is_none()
            {
                first[i] = Some(d.at);
                found += 1;
            }
        }
        seen = deliveries.len();
        if found == answered.len() || Instant::now() >= deadline {
            return first;
        }
        tokio::time::sleep(BACKLOG_PROBE).await;
    }
}

/// The deal id starting with `marker` that a captured email names (its text part, else its HTML).
fn deal_of(message: &testkit::Captured, marker: &str) -> Option<String> {
    let parsed = testkit::mail::try_parse(&message.raw)?;
    let body = parsed.text.or(parsed.html)?;
    let start = body.find(marker)?;
    let id: String = body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    Some(id)
}

// ---------------------------------------------------------------- figure 9: steady load, backlog

struct SteadyFigure {
    /// This round's pgbench rate, tps.
    pgbench_tps: f64,
    /// Events a second offered: half of it (capped in the smoke run).
    offered: f64,
    connections: usize,
    seconds: f64,
    sent: u64,
    accepted: u64,
    errors: u64,
    first_error: Option<String>,
    /// From the load's start to its last answer.
    load_seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Pending events, sampled once a second: seconds since the load's start, count.
    samples: Vec<(f64, i64)>,
}

impl SteadyFigure {
    fn achieved(&self) -> f64 {
        self.accepted as f64 / self.load_seconds.max(1e-9)
    }

    /// Events the engine applied a second while the load ran: accepted less what was left.
    fn applied(&self) -> f64 {
        (self.accepted as f64 - self.end() as f64).max(0.0) / self.seconds.max(1e-9)
    }

    /// The intake accepted markedly fewer events than were offered (it could not keep up).
    fn short(&self) -> bool {
        (self.accepted as f64) < 0.98 * self.offered * self.seconds
    }

    /// The sample nearest `t` seconds into the load: when it was taken, and the count.
    fn at(&self, t: f64) -> (f64, i64) {
        self.samples.iter().min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs())).copied().unwrap_or((0.0, 0))
    }

    fn end(&self) -> i64 {
        self.samples.last().map(|s| s.1).unwrap_or(0)
    }

    fn max(&self) -> i64 {
        self.samples.iter().map(|s| s.1).max().unwrap_or(0)
    }

    /// Least-squares slope of the backlog over time, events a second.
    fn slope(&self) -> f64 {
        let n = self.samples.len() as f64;
        if self.samples.len() < 2 {
            return 0.0;
        }
        let (mt, my) = (self.samples.iter().map(|s| s.0).sum::<f64>() / n, self.samples.iter().map(|s| s.1 as f64).sum::<f64>() / n);
        let sxy: f64 = self.samples.iter().map(|s| (s.0 - mt) * (s.1 as f64 - my)).sum();
        let sxx: f64 = self.samples.iter().map(|s| (s.0 - mt).powi(2)).sum();
        if sxx > 0.0 { sxy / sxx } else { 0.0 }
    }

    /// The backlog at the end in seconds of the offered rate (at most 1 for no growth).
    fn end_seconds(&self) -> f64 {
        self.end() as f64 / self.offered.max(1e-9)
    }

    /// The slope as a share of the offered rate (under 1 % for no growth).
    fn slope_share(&self) -> f64 {
        self.slope() / self.offered.max(1e-9)
    }
}

/// `serve` as deployed (its engine applying the inbox while the load runs) gets a steady half
/// of this round's pgbench rate in new `order.created` events for `steady_seconds`, each paced
/// connection sending its share; a separate connection counts the pending events once a second.
async fn steady_figure(ctx: &Ctx, pgbench_tps: f64) -> anyhow::Result<SteadyFigure> {
    let name = "fcbench_steady";
    let half = 0.5 * pgbench_tps;
    let offered = ctx.plan.steady_cap.map_or(half, |cap| half.min(cap)).max(1.0);
    let connections = ((offered / STEADY_SHARE_PER_CONNECTION).ceil() as usize).clamp(CONNECTIONS, STEADY_MAX_CONNECTIONS);
    let seconds = ctx.plan.steady_seconds;
    let (url, db) = ctx.database(name, EMPTY_TEMPLATE).await?;
    let rate_limit = RATE_LIMIT_PER_MINUTE.to_string();
    let launch = ctx.launch("serve", &url, "steady", &[("FIRSTCALL__HTTP__RATE_LIMIT_PER_MINUTE", rate_limit.as_str())]);
    ctx.sink.clear();
    let since = Instant::now();
    let mut server = Firstcall::start(&launch)?;
    let measured = async {
        server.wait_ready(since, Duration::from_secs(60)).await?;
        tokio::time::sleep(ctx.plan.settle).await;
        let mut probe = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await?;
        let tag = format!("std{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let base_url = server.base_url();
        let start = Instant::now();
        let load = PacedLoad {
            base_url: &base_url,
            secret: WEBHOOK_SECRET,
            rate: offered,
            duration: Duration::from_secs_f64(seconds),
            connections,
            tag: &tag,
            start,
            keep: false,
        };
        let sampler = async {
            let mut samples = Vec::new();
            for k in 1..=(seconds as u64) {
                tokio::time::sleep_until((start + Duration::from_secs(k)).into()).await;
                let t = start.elapsed().as_secs_f64();
                let pending: i64 = sqlx::query_scalar(PENDING_SQL).fetch_one(&mut probe).await?;
                samples.push((t, pending));
                // Nothing reads this figure's mail; the bench's memory stays flat.
                ctx.sink.clear();
            }
            anyhow::Ok(samples)
        };
        let (load, samples) = tokio::join!(ingest::paced(&load), sampler);
        anyhow::Ok((load?, samples?))
    }
    .await;
    server.stop().await;
    ctx.sink.clear();
    db.close().await;
    ctx.pg.drop(name).await?;
    let (load, samples) = measured?;
    let f = SteadyFigure {
        pgbench_tps,
        offered,
        connections,
        seconds,
        sent: load.sent,
        accepted: load.accepted,
        errors: load.errors,
        first_error: load.first_error,
        load_seconds: load.seconds,
        p50_ms: load.p50_ms,
        p99_ms: load.p99_ms,
        samples,
    };
    say(format!(
        "  offered {:.0}/s over {} connections for {:.0} s: {} accepted = {:.0}/s ({} errors); pending at {:.0} s {}, at the end {}, max {}; slope {:+.2} events/s; applied {:.0}/s meanwhile",
        f.offered,
        f.connections,
        f.seconds,
        f.accepted,
        f.achieved(),
        f.errors,
        f.at(10.0).0,
        f.at(10.0).1,
        f.end(),
        f.max(),
        f.slope(),
        f.applied()
    ));
    anyhow::ensure!(f.accepted > 0, "no event was accepted (first error: {})", f.first_error.as_deref().unwrap_or("none"));
    Ok(f)
}

// ---------------------------------------------------------------- the report

fn yes(b: bool) -> Option<bool> {
    Some(b)
}

/// One measure of every round.
fn each<T>(rounds: &[T], f: impl Fn(&T) -> f64) -> Samples {
    Samples::of(rounds.iter().map(f))
}

fn tps(s: &Samples) -> String {
    s.show(|v| format!("{v:.0}"), " tps")
}

/// The table being written, and the ratios' medians and spreads for the raw figures.
struct Rows<'a> {
    report: &'a mut Report,
    medians: Vec<String>,
}

impl Rows<'_> {
    fn note(&mut self, what: &str, s: &Samples) {
        if !s.is_empty() {
            self.medians.push(format!("{what}: {}", s.times()));
        }
    }

    /// A rate against a reference rate measured next to it, round by round; the target, when
    /// there is one, is a least ratio.
    #[allow(clippy::too_many_arguments)]
    fn versus(
        &mut self,
        figure: &str,
        measure: &str,
        rate: &Samples,
        reference: String,
        reference_rate: &Samples,
        what: &str,
        at_least: Option<f64>,
    ) {
        let vs = Samples::ratios(rate, reference_rate);
        self.note(what, &vs);
        let (target, met) = match at_least {
            Some(t) => (format!("≥ {t}×"), yes(!vs.is_empty() && vs.median() >= t)),
            None => ("–".into(), None),
        };
        self.report.row(figure, measure, rate.rate(), reference, vs.times(), (&target, met));
    }

    /// A rate at scale against the same rate on the empty database, round by round: the cost is
    /// the empty database's rate over this one's (time per job or event), at most 1.2×.
    fn cost(&mut self, measure: &str, at_scale: String, reference: String, scale: &Samples, empty: &Samples, what: &str) {
        let cost = Samples::ratios(empty, scale);
        self.note(what, &cost);
        self.report.row("4", measure, at_scale, reference, format!("cost {}", cost.times()), ("cost ≤ 1.2×", yes(cost.median() <= 1.2)));
    }
}

/// The figures of every round that are not per database.
struct Rest<'a> {
    mail: &'a [MailFigure],
    crm: &'a [CrmFigure],
    latency: &'a [LatencyFigure],
    steady: &'a [SteadyFigure],
    reads: &'a [Reads],
    /// Figure 11: timer lateness with the open promises.
    promised: &'a [Lateness],
}

/// Writes the table's rows; returns the medians and spreads of the ratios for the raw figures.
fn write_rows(ctx: &Ctx, report: &mut Report, empty: &Figures, scale: &Figures, cold: Option<&ColdStart>, rest: &Rest) -> Vec<String> {
    let p = &ctx.plan;
    let (mail, crm) = (rest.mail, rest.crm);
    let mut r = Rows { report, medians: Vec::new() };
    let pgbench = each(&empty.ingest, |i| i.pgbench.tps);
    let ingest = each(&empty.ingest, |i| i.firstcall.rate());
    if !empty.ingest.is_empty() {
        let vs = Samples::ratios(&ingest, &pgbench);
        r.note("1 ingest as deployed / pgbench", &vs);
        r.report.row(
            "1",
            &format!(
                "webhook ingest, {CONNECTIONS} connections, `serve` as deployed (engine and mailer running, mail to an SMTP sink on \
                 loopback; the per-source rate limit raised to {RATE_LIMIT_PER_MINUTE}/min, above the offered load): accepted \
                 `order.created`/s; p50 / p99 latency; the inbox's backlog when the load ended, and how long the engine took to \
                 apply it"
            ),
            format!(
                "{}; {:.1} / {:.1} ms; backlog after the load: {} events, applied in {}",
                ingest.rate(),
                each(&empty.ingest, |i| i.firstcall.p50_ms).median(),
                each(&empty.ingest, |i| i.firstcall.p99_ms).median(),
                each(&empty.ingest, |i| i.backlog.events as f64).show(|v| format!("{v:.0}"), ""),
                each(&empty.ingest, |i| i.backlog.seconds).show(|v| format!("{v:.1}"), " s"),
            ),
            format!("pgbench 1-row INSERT: {} (avg {:.1} ms)", tps(&pgbench), each(&empty.ingest, |i| i.pgbench.latency_ms).median()),
            vs.times(),
            ("≥ 0.5×", yes(!vs.is_empty() && vs.median() >= 0.5)),
        );
        let off: Vec<&IngestReport> = empty.ingest.iter().filter_map(|i| i.engine_off.as_ref()).collect();
        r.versus(
            "1",
            "breakdown: the same with the engine off (`engine.enabled=false`), the intake path alone (events stored pending, none applied)",
            &each(&off, |o| o.rate()),
            format!("pgbench: {}", tps(&pgbench)),
            &pgbench,
            "1 ingest, engine off / pgbench",
            None,
        );
    }
    let steps = each(&empty.engine, |e| e.steps.rate());
    let reminders = each(&empty.engine, |e| e.reminders.rate());
    if !empty.engine.is_empty() && !empty.graphile.is_empty() {
        let batched = each(&empty.graphile, |g| g.batched.rate());
        let defaults = each(&empty.graphile, |g| g.defaults.rate());
        let g_steps = each(&empty.graphile, |g| g.steps.rate());
        r.versus(
            "2",
            &format!("engine: {} no-op steps drained (claim → lock → handler → complete → commit), default settings", p.noop_jobs),
            &steps,
            format!("graphile-worker batched: {}", batched.rate()),
            &batched,
            "2 no-op steps / graphile-worker batched",
            Some(1.2),
        );
        r.versus(
            "2",
            "same, against graphile-worker at its defaults",
            &steps,
            format!("graphile-worker defaults ({} jobs): {}", p.graphile_default_jobs, defaults.rate()),
            &defaults,
            "2 no-op steps / graphile-worker defaults",
            None,
        );
        r.versus(
            "2",
            "breakdown: the same count of `noop` jobs, each completed by one DELETE without a transaction or a step",
            &each(&empty.engine, |e| e.shortcut.rate()),
            format!("graphile-worker batched: {}", batched.rate()),
            &batched,
            "2 no-op shortcut / graphile-worker batched",
            None,
        );
        r.versus(
            "2",
            &format!("engine: real reminder steps (claim → recap → outbox row → done), {}", p.reminder_steps),
            &reminders,
            format!(
                "graphile-worker batched, a task writing one outbox row and raising one counter in one transaction: {}",
                g_steps.rate()
            ),
            &g_steps,
            "2 reminder steps / graphile-worker steps",
            None,
        );
    }
    if !empty.timers.is_empty() {
        let t = &empty.timers;
        let p99 = each(t, |l| l.p99_ms);
        r.report.row(
            "3",
            &format!("timer lateness, {} timers due over {} s: p50 / p99; max", p.timers, p.timer_span.as_secs()),
            format!("{:.1} / {}; {:.1} ms", each(t, |l| l.p50_ms).median(), p99.ms(), each(t, |l| l.max_ms).median()),
            "–".into(),
            "–".into(),
            ("p99 < 250 ms", yes(p99.median() < 250.0 && t.iter().all(|l| l.fired == l.expected))),
        );
    }
    // Scale: cost (time per event or job) with a million open calls over the cost with none.
    if !empty.ingest.is_empty() && !scale.ingest.is_empty() {
        let at_scale = each(&scale.ingest, |i| i.firstcall.rate());
        r.cost(
            &format!("ingest as deployed with {} open calls: events/s; p99", p.scale_calls),
            format!("{}; {:.1} ms", at_scale.rate(), each(&scale.ingest, |i| i.firstcall.p99_ms).median()),
            format!("empty database: {}; pgbench here: {}", ingest.rate(), tps(&each(&scale.ingest, |i| i.pgbench.tps))),
            &at_scale,
            &ingest,
            "4 ingest cost at scale",
        );
    }
    if !empty.engine.is_empty() && !scale.engine.is_empty() {
        let at_scale = each(&scale.engine, |e| e.steps.rate());
        let reference = format!("empty database: {}", steps.rate());
        r.cost("no-op steps/s at scale", at_scale.rate(), reference, &at_scale, &steps, "4 no-op steps cost at scale");
        let at_scale = each(&scale.engine, |e| e.reminders.rate());
        let reference = format!("empty database: {}", reminders.rate());
        r.cost("reminder steps/s at scale", at_scale.rate(), reference, &at_scale, &reminders, "4 reminder steps cost at scale");
    }
    if !empty.engine.is_empty() && !scale.backlog.is_empty() {
        let at_scale = each(&scale.backlog, |d| d.rate());
        r.cost(
            &format!("reminder steps/s with {} due at once among the {} open calls (a burst: all drained)", p.backlog, p.scale_calls),
            at_scale.rate(),
            format!("empty database, {} due at once: {}", p.reminder_steps, reminders.rate()),
            &at_scale,
            &reminders,
            "4 reminder backlog cost at scale",
        );
    }
    if !empty.timers.is_empty() && !scale.timers.is_empty() {
        let e99 = each(&empty.timers, |l| l.p99_ms);
        let s99 = each(&scale.timers, |l| l.p99_ms);
        let c = Samples::ratios(&s99, &e99);
        r.note("4 timer p99 at scale / empty", &c);
        r.report.row(
            "4",
            "timer lateness p50 / p99 at scale",
            format!("{:.1} / {}", each(&scale.timers, |l| l.p50_ms).median(), s99.ms()),
            format!("empty database: {:.1} / {}", each(&empty.timers, |l| l.p50_ms).median(), e99.ms()),
            format!("p99 {}", c.times()),
            (
                "p99 ≤ 1.2× and < 250 ms",
                yes(c.median() <= 1.2 && s99.median() < 250.0 && scale.timers.iter().all(|l| l.fired == l.expected)),
            ),
        );
    }
    if !empty.timers.is_empty() && !rest.promised.is_empty() {
        let e99 = each(&empty.timers, |l| l.p99_ms);
        let p99 = each(rest.promised, |l| l.p99_ms);
        let c = Samples::ratios(&p99, &e99);
        r.note("11 timer p99 with open promises / empty", &c);
        r.report.row(
            "11",
            &format!("timer lateness p50 / p99 with {} open promises (and their {} pending timers)", p.promises, 2 * p.promises),
            format!("{:.1} / {}", each(rest.promised, |l| l.p50_ms).median(), p99.ms()),
            format!("empty database: {:.1} / {}", each(&empty.timers, |l| l.p50_ms).median(), e99.ms()),
            format!("p99 {}", c.times()),
            (
                "p99 ≤ 1.2× and < 250 ms",
                yes(c.median() <= 1.2 && p99.median() < 250.0 && rest.promised.iter().all(|l| l.fired == l.expected)),
            ),
        );
    }
    if !mail.is_empty() {
        let pooled = each(mail, |m| m.pooled);
        let single = each(mail, |m| m.single);
        r.versus(
            "5",
            &format!("mail to SMTP on loopback, {} messages: pooled (4 connections, 4 at once)", p.emails),
            &pooled,
            format!("one connection, one at a time: {}", single.rate()),
            &single,
            "5 mail pooled / one connection",
            None,
        );
        r.versus(
            "5",
            "same, a new connection per message (pool 0, 4 at once)",
            &each(mail, |m| m.per_message),
            format!("pooled: {}", pooled.rate()),
            &pooled,
            "5 mail connection per message / pooled",
            None,
        );
    }
    if !empty.ingest.is_empty() {
        let kib = |v: Option<u64>| v.map(|k| k as f64).unwrap_or(f64::INFINITY);
        let idle = each(&empty.ingest, |i| kib(i.rss_idle_kib));
        let peak = each(&empty.ingest, |i| kib(i.rss_peak_kib));
        let mib = |s: &Samples| s.show(|v| format!("{:.1}", v / 1024.0), " MiB");
        let (idle_ok, peak_ok) = (yes(idle.median() < 60.0 * 1024.0), yes(peak.median() < 250.0 * 1024.0));
        r.report.row("6", "RSS idle (`serve` as deployed, after start)", mib(&idle), "–".into(), "–".into(), ("< 60 MiB", idle_ok));
        r.report.row(
            "6",
            "RSS peak under figure 1's load (`serve` as deployed)",
            mib(&peak),
            "–".into(),
            "–".into(),
            ("< 250 MiB", peak_ok),
        );
    }
    if let Some(c) = cold {
        let binary = std::fs::metadata(&ctx.bin).map(|m| m.len()).unwrap_or(0);
        r.report.row(
            "6",
            "binary size (release as built: debug info stripped, symbols kept)",
            format!("{:.1} MiB", binary as f64 / 1048576.0),
            stripped_size(ctx).map(|b| format!("stripped: {:.1} MiB", b as f64 / 1048576.0)).unwrap_or_else(|| "–".into()),
            "–".into(),
            ("–", None),
        );
        r.report.row(
            "6",
            &format!("cold start to ready (`/readyz` 200), median of {}", c.migrated_ms.len()),
            Samples::of(c.migrated_ms.iter().copied()).show(|v| format!("{v:.0}"), " ms"),
            format!("first start on an empty database (migrations): {:.0} ms", c.fresh_ms),
            "–".into(),
            ("–", None),
        );
    }
    if let Some(first) = crm.first() {
        let rate = each(crm, |c| c.rate());
        let vs = Samples::ratios(&rate, &each(crm, |c| c.bound()));
        r.note("7 CRM enrichment / bound", &vs);
        let met = !vs.is_empty() && vs.median() >= 0.8 && crm.iter().all(|c| c.throttled == 0);
        r.report.row(
            "7",
            &format!(
                "CRM enrichment: {} HubSpot deals pulled and stored, fake CRM allowing {} requests/s: orders/s; 429s, busiest second",
                first.deals, first.limit
            ),
            format!(
                "{}; {} × 429, {} requests",
                rate.show(|v| format!("{v:.2}"), "/s"),
                crm.iter().map(|c| c.throttled).sum::<usize>(),
                crm.iter().map(|c| c.busiest).max().unwrap_or(0)
            ),
            format!("bound {} / {} requests an order: {:.2}/s", first.limit, first.needed, first.bound()),
            vs.times(),
            ("≥ 0.8× and no 429", yes(met)),
        );
    }
    if !rest.latency.is_empty() {
        let l = rest.latency;
        let p99 = each(l, |f| f.from_answer.p99);
        let errors: u64 = l.iter().map(|f| f.errors).sum();
        r.report.row(
            "8",
            &format!(
                "event accepted → first email handed to SMTP, {} orders/s for {} s, serve as deployed: p50 / p99; max",
                rate_text(p.latency_rate),
                p.latency_seconds
            ),
            format!(
                "{:.1} / {}; {:.1} ms (from the request sent: {:.1} / {:.1} ms); {} of {} emailed within {} s{}",
                each(l, |f| f.from_answer.p50).median(),
                p99.ms(),
                each(l, |f| f.from_answer.max).median(),
                each(l, |f| f.from_sent.p50).median(),
                each(l, |f| f.from_sent.p99).median(),
                l.iter().map(|f| f.emailed).sum::<usize>(),
                l.iter().map(|f| f.accepted).sum::<u64>(),
                MAIL_WINDOW.as_secs(),
                if errors > 0 { format!("; {errors} requests not accepted") } else { String::new() }
            ),
            "–".into(),
            "–".into(),
            ("–", None),
        );
    }
    if !rest.steady.is_empty() {
        let st = rest.steady;
        let end_s = each(st, |f| f.end_seconds());
        let share = each(st, |f| f.slope_share());
        let short: Vec<String> =
            st.iter().filter(|f| f.short()).map(|f| format!("{:.0}/s accepted of {:.0}/s offered", f.achieved(), f.offered)).collect();
        // An intake that could not take the offered rate did not meet it either.
        let met = !end_s.is_empty() && end_s.median() <= 1.0 && share.median() < 0.01 && short.is_empty();
        let capped = p.steady_cap.is_some_and(|cap| st.iter().any(|f| f.offered >= cap));
        r.report.row(
            "9",
            &format!(
                "inbox backlog at a steady 0.5 × pgbench's rate{} for {} s, serve as deployed (engine applying while the load runs): \
                 backlog at end / max; slope",
                if capped { format!(" (capped at {}/s)", rate_text(p.steady_cap.unwrap_or_default())) } else { String::new() },
                p.steady_seconds
            ),
            format!(
                "{} / {} events; {} events/s; accepted {}, applied {} while the load ran{}",
                each(st, |f| f.end() as f64).show(|v| format!("{v:.0}"), ""),
                each(st, |f| f.max() as f64).show(|v| format!("{v:.0}"), ""),
                each(st, |f| f.slope()).show(|v| format!("{v:+.1}"), ""),
                each(st, |f| f.achieved()).rate(),
                each(st, |f| f.applied()).rate(),
                if short.is_empty() {
                    String::new()
                } else {
                    format!("; the intake fell short of the offered rate ({})", short.join(", "))
                }
            ),
            format!("pgbench {}; offered {}", tps(&each(st, |f| f.pgbench_tps)), each(st, |f| f.offered).rate()),
            "–".into(),
            ("no growth", yes(met)),
        );
    }
    for kind in reads::Kind::ALL {
        let rounds: Vec<&reads::PathResult> = rest.reads.iter().filter_map(|r| r.path(kind)).collect();
        if let Some(first) = rounds.first() {
            let p99 = each(&rounds, |p| p.latency.p99);
            r.report.row(
                "10",
                &format!(
                    "{} with {} open calls, {} requests over {} connections: p50 / p99; max",
                    kind.label(),
                    p.scale_calls,
                    first.requests,
                    p.reads.connections
                ),
                format!(
                    "{:.1} / {}; {:.1} ms",
                    each(&rounds, |p| p.latency.p50).median(),
                    p99.ms(),
                    each(&rounds, |p| p.latency.max).median()
                ),
                "–".into(),
                "–".into(),
                ("p99 ≤ 50 ms", yes(p99.median() <= reads::TARGET_P99_MS)),
            );
        }
    }
    r.medians
}

/// A rate as an option gives it: `50`, `12.5`.
fn rate_text(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v}") }
}

/// The binary's size without symbols and debug information (`strip`, when installed).
fn stripped_size(ctx: &Ctx) -> Option<u64> {
    let out = ctx.args.out_dir.join("firstcall-stripped");
    let ok = std::process::Command::new("strip").arg("-o").arg(&out).arg(&ctx.bin).status().ok()?.success();
    let size = if ok { std::fs::metadata(&out).ok().map(|m| m.len()) } else { None };
    let _ = std::fs::remove_file(&out);
    size
}

fn promises_method(ctx: &Ctx) -> String {
    let p = &ctx.plan;
    format!(
        "- **11** Figure 3 again on a copy of a database holding {} open promises: {} calls marked done (outcome `aligned`), each \
         with its order and {PROMISES_PER_CALL} promises (owner, covered requirement, dates 7 to 96 days ahead), each promise with its \
         `promised` audit row and its two pending timers as the ledger plans them (a `promise.remind` the day before its date and a \
         `promise.escalate` after it, none due during the figure). The same {} overdue checks of open calls are due evenly over {} s \
         among them; the ratio is this p99 over the empty database's (figure 3) in the same round.",
        p.promises,
        p.promises / PROMISES_PER_CALL,
        p.timers,
        p.timer_span.as_secs(),
    )
}

fn method(ctx: &Ctx, rounds: usize) -> String {
    let p = &ctx.plan;
    format!(
        "- Every figure runs the release binary (`firstcall serve` or `firstcall worker`) as a child process configured through \
         `FIRSTCALL__…` variables, against a fresh database on the same PostgreSQL server as its reference.\n\
         - Each figure and its reference run one after the other, and the whole set {rounds} times over (rounds), so that a change in \
         the shared machine's load falls on both; the table gives the median of the rounds with the lowest and highest in brackets. A \
         ratio is taken within each round (the figure over the reference measured next to it), and then its median; targets are \
         judged on medians.\n\
         - **1** {CONNECTIONS} keep-alive connections post unique signed `order.created` events (~1 KB) for {:.0} s; only a 200 naming the \
         event accepted counts. A 200 means the event's one row is stored in the inbox (`webhook_events`, outcome `pending`); the engine \
         applies stored events afterwards, in batches. The headline is `serve` as deployed: its engine applies the inbox, runs each new \
         call's first step and its mailer sends the recap and invite to an SMTP sink in the bench process on loopback while the load runs \
         (the count the sink received during the load is in the raw figures; the figure fails if none arrives during the load, nor \
         while its backlog is applied or within {} s after). When the load ends the \
         server keeps running until no event is pending (probed every {} ms, at most {} s; the figure fails beyond): the backlog found \
         then and how long the engine took to apply it are noted in the row (not counted in the rate). Then every accepted event is \
         checked to be applied: stored with its order, its call and the call's first step (queued, or done with its email in the \
         outbox). The only setting changed is the per-source rate limit, raised to {RATE_LIMIT_PER_MINUTE} a minute (about twenty times \
         the highest rate measured) so that it runs but never refuses. The breakdown row is the same with the engine off \
         (`engine.enabled=false`): the intake path alone; nothing applies its events, so afterwards every accepted event is checked to \
         be stored and still pending, and no order or call of the load's deals to exist. The reference is pgbench \
         (`-M prepared -c {CONNECTIONS} -j 2`) running one INSERT of the same JSON body with a unique key per transaction, for as long.\n\
         - **2** Jobs are committed in one transaction with a NOTIFY while the worker idles (started and listening); the drain time runs \
         from that commit until a probe (every 10 ms, index-ordered) finds none left. The headline is `noop.step` jobs: the engine's own \
         step that writes nothing, run like every workflow step (claim, then one transaction: lease check under a row lock, `running`, a \
         savepoint, the handler, the deletion, commit). The breakdown row is `noop` jobs, which the engine completes by one DELETE that \
         checks the lease, without a transaction or a step. graphile-worker is timed the same way (`add_jobs`, which notifies), in the \
         configuration its performance page documents (`concurrentJobs` 24, `maxPoolSize` 25, `localQueue.size` 500, \
         `completeJobBatchDelay` 0, `failJobBatchDelay` 0) and at its defaults ({} jobs: it runs one at a time, and its rate is steady \
         long before that), with `NO_LOG_SUCCESS=1` in both (no console line per job; firstcall writes none either). Reminder steps: {} \
         open calls with a reminder due now, drained the same way (the mailer runs too), and checked afterwards to have each written its \
         reminder. Their reference is {} graphile-worker jobs in the documented configuration whose task, in one transaction, inserts \
         one ~8 KB row into an outbox table and raises a counter on one row of a calls table (checked afterwards); graphile-worker then \
         completes the job in a statement of its own, where firstcall's step commits with its job's completion.\n\
         - **3** {} overdue checks of open calls are due evenly over {} s; lateness is when the engine started the step (its audit row) \
         minus the due time.\n\
         - **4** Figures 1–3 again on a copy of a database holding {} open calls, each with its order, webhook event, audit row, a \
         pending reminder and a pending overdue timer (all due an hour or more later). Cost is the empty database's rate over this one's. \
         The backlog row adds {} more open calls with a reminder due now (as every rep's 09:00 reminder would be) to a copy of that \
         database, starts `firstcall worker` on it, and times from the start until the last of those reminders is done (and checked \
         to be in the outbox); its reference is the empty database's reminder steps. The claim query's plan is shown with the backlog \
         due and again once half of it is done.\n\
         - **5** {} outbox emails (~8 KB each) to the bench's SMTP sink on loopback; the rate runs from the first message received to the last.\n\
         - **6** RSS is read from `/proc` of figure 1's `serve` as deployed (VmRSS {:.1} s after `/readyz`, VmHWM once the backlog the \
         load left was applied).\n\
         - **7** A fake HubSpot in the bench process (`testkit::crm::hubspot`, real HTTP on loopback) allows {} requests per second \
         (a sliding one-second window; beyond it `429` with `Retry-After: 1`; its app limit, 100 per 10 s by default, is raised out of \
         reach) and serves {} copies of the tests' sample deal (owner, company, three contacts, two line items, notes, an email, a call, a \
         meeting). As many orders with open calls (`scheduled`, source `hubspot`) each have a `crm.enrich` job due now; no `call.start` \
         is seeded, since the pull would bring it forward and the first emails would go during the figure. `firstcall worker` runs at its \
         defaults with the connector's `requests_per_second` set to the same limit. The time runs from the first request the fake \
         receives until every deal has a proposal of origin `crm` (probed every 10 ms); worker start-up is not counted. The bound is \
         the limit over the requests one order needs (counted beforehand on one pull of the same deal from a fake of its own; 2xx \
         answers beyond deals × that are pulls given up part-way and done again, and show in the raw figures); a one-second window lets the first second's requests \
         through at once, so a short run can beat it by up to a second's worth. The 429 count (all rounds) and the busiest second (the busiest round) are the fake's.\n\
         - **8** `serve` as deployed (engine and mailer on, mail to the bench's SMTP sink on loopback, the per-source rate limit raised \
         as in figure 1) gets a steady {} signed `order.created` events a second for {} s, one event a request, each a new deal, over \
         {LATENCY_CONNECTIONS} keep-alive connections each sending its share on a fixed schedule. For each event answered 200, the \
         latency runs from the moment that answer reached the client to the moment the SMTP sink received the deal's first email (its \
         final dot; the email is matched to the deal by the deal id its recap names, in the decoded text part); both instants are taken \
         in the bench process. The same is given from the moment the request was sent, which is comparable with builds whose webhook \
         applied the event before answering. The figure fails unless every accepted event's first email arrived within {} s of the \
         load's end. No reference and no target: the issue asks that the p99 stay where it was before the inbox.\n\
         - **9** In each round, after pgbench's run for figure 1, `serve` as deployed (engine applying the inbox while the load runs; \
         the per-source rate limit raised as in figure 1) is offered half of that pgbench rate{} in new signed `order.created` events \
         for {} s, paced: max({CONNECTIONS}, rate / {STEADY_SHARE_PER_CONNECTION}) keep-alive connections each send their share on a fixed \
         schedule (a connection behind its schedule sends at once until it catches up; what is not sent by the end is not sent, so an \
         intake that cannot keep up shows as an accepted rate below the offered one, which the row then says). A separate database \
         connection counts the pending events (`{PENDING_SQL}`) once a second. The row gives the backlog at the end and its maximum, and \
         the slope of a least-squares line through the per-second samples (events a second); the raw figures add the backlog at 10 s, \
         every sample, and the rate at which the engine applied events while the load ran (accepted less the backlog at the end, over \
         the load's length; the server is stopped at the end, not left to apply the rest). Target, judged on the medians: no backlog growth, that is a \
         backlog at the end of at most one second's worth of the offered rate and a slope under 1 % of the offered rate. With \
         `--no-references` (no pgbench) the figure is skipped.",
        p.seconds,
        MAIL_WINDOW.as_secs(),
        BACKLOG_PROBE.as_millis(),
        BACKLOG_TIMEOUT.as_secs(),
        p.graphile_default_jobs,
        p.reminder_steps,
        p.reminder_steps,
        p.timers,
        p.timer_span.as_secs(),
        p.scale_calls,
        p.backlog,
        p.emails,
        p.settle.as_secs_f64(),
        p.crm_limit,
        p.crm_deals,
        rate_text(p.latency_rate),
        p.latency_seconds,
        MAIL_WINDOW.as_secs(),
        p.steady_cap.map(|c| format!(" (at most {}/s in this run)", rate_text(c))).unwrap_or_default(),
        p.steady_seconds
    )
}

fn raw(empty: &Figures, scale: &Figures, rest: &Rest, medians: &[String]) -> String {
    let (mail, crm) = (rest.mail, rest.crm);
    let mut s = String::from("```text\n");
    let rounds = [
        empty.ingest.len(),
        empty.engine.len(),
        empty.timers.len(),
        scale.ingest.len(),
        mail.len(),
        crm.len(),
        rest.latency.len(),
        rest.steady.len(),
        rest.reads.len(),
        rest.promised.len(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    for n in 0..rounds {
        let round = format!("round {}", n + 1);
        for (label, f) in [("empty", empty), ("scale", scale)] {
            if let Some(i) = f.ingest.get(n) {
                s.push_str(&format!(
                    "{round} {label} ingest as deployed: {} (first emails the sink received meanwhile: {}; backlog after the load: {} events, \
                     applied in {:.1} s; then stored and checked: {})\n",
                    i.firstcall.summary(),
                    i.mailed,
                    i.backlog.events,
                    i.backlog.seconds,
                    i.stored
                ));
                if let Some(off) = &i.engine_off {
                    s.push_str(&format!(
                        "{round} {label} ingest, engine off: {} (stored pending and checked: {})\n",
                        off.summary(),
                        i.stored_pending.unwrap_or(0)
                    ));
                }
                s.push_str(&format!("{round} {label} pgbench: {:.1} tps, latency average {:.2} ms\n", i.pgbench.tps, i.pgbench.latency_ms));
            }
            if let Some(g) = f.graphile.get(n) {
                s.push_str(&format!(
                    "{round} graphile-worker batched: {} jobs in {:.3} s; defaults: {} jobs in {:.3} s; steps (outbox row + counter): {} jobs in {:.3} s\n",
                    g.batched.jobs, g.batched.seconds, g.defaults.jobs, g.defaults.seconds, g.steps.jobs, g.steps.seconds
                ));
            }
            if let Some(e) = f.engine.get(n) {
                s.push_str(&format!(
                    "{round} {label} engine: {} no-op steps in {:.3} s; {} no-op jobs (shortcut) in {:.3} s; {} reminder steps in {:.3} s\n",
                    e.steps.jobs, e.steps.seconds, e.shortcut.jobs, e.shortcut.seconds, e.reminders.jobs, e.reminders.seconds
                ));
            }
            if let Some(b) = f.backlog.get(n) {
                s.push_str(&format!(
                    "{round} {label} backlog: {} reminders due at once done in {:.3} s from the worker's start\n",
                    b.jobs, b.seconds
                ));
            }
            if let Some(t) = f.timers.get(n) {
                s.push_str(&format!(
                    "{round} {label} timers: {}/{} fired, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
                    t.fired, t.expected, t.p50_ms, t.p99_ms, t.max_ms
                ));
            }
        }
        if let Some(t) = rest.promised.get(n) {
            s.push_str(&format!(
                "{round} promises timers: {}/{} fired, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
                t.fired, t.expected, t.p50_ms, t.p99_ms, t.max_ms
            ));
        }
        if let Some(m) = mail.get(n) {
            s.push_str(&format!(
                "{round} mail: pooled {:.1}/s, single connection {:.1}/s, connection per message {:.1}/s\n",
                m.pooled, m.single, m.per_message
            ));
        }
        if let Some(c) = crm.get(n) {
            s.push_str(&format!(
                "{round} crm: {} deals in {:.3} s from the first request ({:.3} s from worker start to it); {} requests answered 2xx ({} an order \
                 needed, {} more done again), {} answered 429, {} other; busiest second {} requests at a limit of {}/s; {:.3} orders/s \
                 against a bound of {:.3}\n",
                c.deals,
                c.seconds,
                c.to_first_request,
                c.answered,
                c.needed,
                c.redone(),
                c.throttled,
                c.other,
                c.busiest,
                c.limit,
                c.rate(),
                c.bound()
            ));
        }
        if let Some(l) = rest.latency.get(n) {
            s.push_str(&format!(
                "{round} first email: {:.0} events/s offered for {:.0} s over {} connections, {} sent, {} accepted, {} errors{}; {} of them \
                 emailed within {} s of the load's end (the last {:.2} s after it); from the 200 to the email: {}; from the request sent: {}\n",
                l.rate,
                l.seconds,
                l.connections,
                l.sent,
                l.accepted,
                l.errors,
                l.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default(),
                l.emailed,
                MAIL_WINDOW.as_secs(),
                l.last_after_load,
                l.from_answer.show(),
                l.from_sent.show()
            ));
        }
        if let Some(f) = rest.steady.get(n) {
            let samples: Vec<String> = f.samples.iter().map(|(_, c)| c.to_string()).collect();
            s.push_str(&format!(
                "{round} steady load: pgbench {:.1} tps, offered {:.1} events/s over {} connections for {:.0} s; {} sent, {} accepted in \
                 {:.1} s = {:.1}/s, {} errors{}; intake latency p50 {:.1} ms, p99 {:.1} ms; pending at {:.0} s {}, at the end {} ({:.2} s of the \
                 offered rate), max {}; slope {:+.2} events/s ({:.3} % of the offered rate); the engine applied {:.1} events/s while the load ran; \
                 pending each second: {}\n",
                f.pgbench_tps,
                f.offered,
                f.connections,
                f.seconds,
                f.sent,
                f.accepted,
                f.load_seconds,
                f.achieved(),
                f.errors,
                f.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default(),
                f.p50_ms,
                f.p99_ms,
                f.at(10.0).0,
                f.at(10.0).1,
                f.end(),
                f.end_seconds(),
                f.max(),
                f.slope(),
                f.slope_share() * 100.0,
                f.applied(),
                samples.join(" ")
            ));
        }
        if let Some(r) = rest.reads.get(n) {
            s.push_str(&r.raw(&round));
        }
    }
    if !medians.is_empty() {
        s.push_str(&format!("ratios over {rounds} rounds, median (lowest–highest):\n"));
        for m in medians {
            s.push_str(&format!("  {m}\n"));
        }
    }
    s.push_str("```");
    s
}
