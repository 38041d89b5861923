//! The seven figures, each with its reference measured in the same run (on the same PostgreSQL,
//! or, for the CRM figure, the bound the fake CRM's rate limit sets), and the report they make. Every figure gets a fresh database (copied from a migrated empty
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
use crate::ingest::{self, IngestReport};
use crate::pg::{self, Server};
use crate::proc::{Firstcall, Graphile, Launch};
use crate::report::{Report, mib, per_s, ratio};
use crate::seed::{self, Calls};

pub const WEBHOOK_SECRET: &str = "bench-webhook-secret";
const CONNECTIONS: usize = 64;
const EMPTY_TEMPLATE: &str = "fcbench_empty";
const SCALE_TEMPLATE: &str = "fcbench_scale";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(900);

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
    /// Only these figures (1-7; 4 needs the ones it repeats); all when absent.
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
}

/// How much each figure does at a size.
struct Plan {
    seconds: f64,
    noop_jobs: i64,
    reminder_steps: i64,
    timers: i64,
    timer_span: Duration,
    /// How long after seeding the first timer is due (seeding must be done by then).
    timer_lead: Duration,
    scale_calls: i64,
    emails: i64,
    cold_starts: usize,
    /// The fake CRM's limit, requests per second (also the connector's configured rate).
    crm_limit: u32,
    /// Deals enriched in the CRM figure.
    crm_deals: i64,
}

impl Plan {
    fn of(size: Size) -> Plan {
        match size {
            Size::Full => Plan {
                seconds: 20.0,
                noop_jobs: 100_000,
                reminder_steps: 10_000,
                timers: 10_000,
                timer_span: Duration::from_secs(60),
                timer_lead: Duration::from_secs(5),
                scale_calls: 1_000_000,
                emails: 2_000,
                cold_starts: 5,
                crm_limit: 40,
                crm_deals: 100,
            },
            Size::Smoke => Plan {
                seconds: 1.5,
                noop_jobs: 500,
                reminder_steps: 100,
                timers: 100,
                timer_span: Duration::from_secs(2),
                timer_lead: Duration::from_secs(1),
                scale_calls: 2_000,
                emails: 20,
                cold_starts: 1,
                crm_limit: 20,
                crm_deals: 6,
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

fn say(msg: impl AsRef<str>) {
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
    let ctx = Ctx { plan, pg, sink: SmtpSink::start().await, bin, args };
    let mut report = Report {
        title: format!(
            "firstcall benchmark ({} run, {})",
            if ctx.args.size == Size::Full { "full" } else { "smoke" },
            Utc::now().format("%Y-%m-%d %H:%M UTC")
        ),
        ..Report::default()
    };
    report.machine = machine(&ctx).await?;

    say("preparing the empty template database");
    prepare_empty_template(&ctx).await?;

    let mut empty = Figures::default();
    if ctx.wants(1) || ctx.wants(4) || ctx.wants(6) {
        say("figure 1: webhook ingest (empty database)");
        empty.ingest = Some(ingest_figure(&ctx, EMPTY_TEMPLATE, "empty").await?);
    }
    if ctx.wants(2) || ctx.wants(4) {
        say("figure 2: graphile-worker references");
        empty.graphile = Some(graphile_figure(&ctx).await?);
        say("figure 2: firstcall engine (empty database)");
        empty.engine = Some(engine_figure(&ctx, EMPTY_TEMPLATE, "empty").await?);
    }
    if ctx.wants(3) || ctx.wants(4) {
        say("figure 3: timer precision (empty database)");
        empty.timers = Some(timer_figure(&ctx, EMPTY_TEMPLATE, "empty").await?);
    }
    let mut scale = Figures::default();
    let mut explain = None;
    if ctx.wants(4) {
        say(format!("figure 4: seeding {} open calls with their timers", ctx.plan.scale_calls));
        let seeded = prepare_scale_template(&ctx).await?;
        say(format!("seeded in {seeded:.1} s"));
        say("figure 4: webhook ingest at scale");
        scale.ingest = Some(ingest_figure(&ctx, SCALE_TEMPLATE, "scale").await?);
        say("figure 4: engine at scale");
        let (engine, plan) = engine_figure_with_explain(&ctx, SCALE_TEMPLATE, "scale").await?;
        scale.engine = Some(engine);
        explain = Some(plan);
        say("figure 4: timer precision at scale");
        scale.timers = Some(timer_figure(&ctx, SCALE_TEMPLATE, "scale").await?);
    }
    let mail = if ctx.wants(5) {
        say("figure 5: mail");
        Some(mail_figure(&ctx).await?)
    } else {
        None
    };
    let cold = if ctx.wants(6) {
        say("figure 6: cold starts");
        Some(cold_start(&ctx).await?)
    } else {
        None
    };
    let crm = if ctx.wants(7) {
        say("figure 7: CRM enrichment");
        Some(crm_figure(&ctx).await?)
    } else {
        None
    };

    write_rows(&ctx, &mut report, &empty, &scale, mail.as_ref(), cold.as_ref(), crm.as_ref());
    report.sections.push(("How each figure is measured".into(), method(&ctx)));
    if let Some(plan) = explain {
        report.sections.push((
            format!("The claim query with {} open calls in the database (EXPLAIN ANALYZE)", ctx.plan.scale_calls),
            format!("```text\n{plan}\n```"),
        ));
    }
    report.sections.push(("Raw figures".into(), raw(&empty, &scale, mail.as_ref(), crm.as_ref())));

    for name in [EMPTY_TEMPLATE, SCALE_TEMPLATE] {
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

#[derive(Default)]
struct Figures {
    ingest: Option<IngestFigure>,
    graphile: Option<(Drain, Drain)>,
    engine: Option<EngineFigure>,
    timers: Option<Lateness>,
}

async fn machine(ctx: &Ctx) -> anyhow::Result<Vec<(String, String)>> {
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
                "{} (the machine is shared: other work on its cores shifts every figure, the references as much)",
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

// ---------------------------------------------------------------- figure 1: ingest

struct IngestFigure {
    firstcall: IngestReport,
    pgbench: Pgbench,
    /// Events found stored afterwards (each accepted one must be).
    stored: i64,
    rss_idle_kib: Option<u64>,
    rss_peak_kib: Option<u64>,
}

async fn ingest_figure(ctx: &Ctx, template: &str, label: &str) -> anyhow::Result<IngestFigure> {
    let pgbench = if ctx.args.no_references { Pgbench { tps: 0.0, latency_ms: 0.0 } } else { pgbench(ctx, template, label).await? };
    say(format!("  pgbench: {:.0} tps", pgbench.tps));

    let (url, db) = ctx.database("fcbench_ingest", template).await?;
    // The engine is off: this figure is the intake path alone (its timers stay queued). The
    // per-source rate limit is off: it would answer 429 long before the database is busy.
    let launch = ctx.launch(
        "serve",
        &url,
        &format!("ingest-{label}"),
        &[("FIRSTCALL__ENGINE__ENABLED", "false"), ("FIRSTCALL__HTTP__RATE_LIMIT_PER_MINUTE", "0")],
    );
    let since = Instant::now();
    let mut server = Firstcall::start(&launch)?;
    server.wait_ready(since, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle_kib = server.rss_kib();
    let tag = format!("{label}{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let firstcall = ingest::run(&server.base_url(), WEBHOOK_SECRET, CONNECTIONS, Duration::from_secs_f64(ctx.plan.seconds), &tag).await?;
    let rss_peak_kib = server.peak_rss_kib();
    server.stop().await;
    say(format!("  firstcall: {}", firstcall.summary()));
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events e JOIN calls c ON c.order_id = e.order_id JOIN jobs j ON j.subject_id = c.id AND j.kind = 'call.start' \
         WHERE e.dedupe_key LIKE $1",
    )
    .bind(format!("evt-{tag}-%"))
    .fetch_one(&db)
    .await?;
    anyhow::ensure!(
        stored >= firstcall.accepted as i64,
        "only {stored} of {} acknowledged events are stored with their call and timer",
        firstcall.accepted
    );
    db.close().await;
    ctx.pg.drop("fcbench_ingest").await?;
    Ok(IngestFigure { firstcall, pgbench, stored, rss_idle_kib, rss_peak_kib })
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

async fn graphile_figure(ctx: &Ctx) -> anyhow::Result<(Drain, Drain)> {
    if ctx.args.no_references {
        let none = Drain { jobs: 0, seconds: 0.0 };
        return Ok((none, none));
    }
    let mut out = Vec::new();
    // At its defaults graphile-worker runs one job at a time with a commit per step, so its rate
    // is steady long before 100,000 jobs; a tenth of them keeps the run short.
    for (mode, jobs) in [("batched", ctx.plan.noop_jobs), ("defaults", (ctx.plan.noop_jobs / 10).max(500))] {
        let name = format!("fcbench_graphile_{mode}");
        let url = ctx.pg.recreate(&name, None).await?;
        let db = pg::pool(&url).await?;
        let log = ctx.args.out_dir.join("logs").join(format!("graphile-{mode}.log"));
        let worker = Graphile::start(&ctx.args.graphile_dir, &url, mode, &log).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let d = drain::graphile_noop(&db, jobs, DRAIN_TIMEOUT).await;
        worker.stop().await;
        let d = d?;
        say(format!("  graphile-worker {mode}: {} jobs in {:.2} s = {:.0} jobs/s", d.jobs, d.seconds, d.rate()));
        db.close().await;
        ctx.pg.drop(&name).await?;
        out.push(d);
    }
    Ok((out[0], out[1]))
}

struct EngineFigure {
    noop: Drain,
    reminders: Drain,
}

async fn engine_figure(ctx: &Ctx, template: &str, label: &str) -> anyhow::Result<EngineFigure> {
    Ok(engine_run(ctx, template, label, false).await?.0)
}

async fn engine_figure_with_explain(ctx: &Ctx, template: &str, label: &str) -> anyhow::Result<(EngineFigure, String)> {
    let (fig, plan) = engine_run(ctx, template, label, true).await?;
    Ok((fig, plan.unwrap_or_default()))
}

/// `firstcall worker` at its default settings drains no-op jobs, then real reminder steps
/// (lock the call, build the recap, render the reminder into the outbox, plan the next timers).
async fn engine_run(ctx: &Ctx, template: &str, label: &str, explain: bool) -> anyhow::Result<(EngineFigure, Option<String>)> {
    let name = "fcbench_engine";
    let (url, db) = ctx.database(name, template).await?;
    let plan = if explain { Some(explain_claim(&db, ctx.plan.noop_jobs).await?) } else { None };
    let mut worker = Firstcall::start(&ctx.launch("worker", &url, &format!("engine-{label}"), &[]))?;
    // The worker has no HTTP listener; give it time to connect and LISTEN.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let noop = drain::firstcall_noop(&db, ctx.plan.noop_jobs, DRAIN_TIMEOUT).await;
    say(format!("  noop: {:?}", noop.as_ref().map(|d| format!("{} jobs in {:.2} s = {:.0} jobs/s", d.jobs, d.seconds, d.rate()))));
    let reminders = match &noop {
        Ok(_) => reminder_steps(&db, ctx.plan.reminder_steps).await,
        Err(_) => Err(anyhow::anyhow!("skipped: the no-op drain failed")),
    };
    worker_alive(&mut worker)?;
    worker.stop().await;
    let noop = noop?;
    let reminders = reminders?;
    say(format!("  reminders: {} steps in {:.2} s = {:.0} steps/s", reminders.jobs, reminders.seconds, reminders.rate()));
    db.close().await;
    ctx.pg.drop(name).await?;
    Ok((EngineFigure { noop, reminders }, plan))
}

fn worker_alive(w: &mut Firstcall) -> anyhow::Result<()> {
    anyhow::ensure!(w.rss_kib().is_some(), "the firstcall worker died during the figure (see its log)");
    Ok(())
}

async fn reminder_steps(db: &sqlx::PgPool, n: i64) -> anyhow::Result<Drain> {
    let mut tx = db.begin().await?;
    let range = Calls {
        tag: "rem",
        from: 1,
        to: n,
        ordered_at: "now()",
        due_at: "o.ordered_at + interval '1 day'",
        timers: &[("call.remind", "now()")],
        history: false,
    }
    .insert(&mut tx)
    .await?;
    tx.commit().await?;
    // Statistics as autovacuum would have them a minute after such a load, so that the empty and
    // the full database are compared in the same state (a never-analysed table gets poor plans).
    sqlx::query("ANALYZE").execute(db).await?;
    sqlx::query("NOTIFY firstcall_jobs").execute(db).await?;
    drain::wait_firstcall(db, range, Instant::now(), DRAIN_TIMEOUT).await
}

/// The claim statement's plan with `due` jobs due now among everything already there (inside a
/// transaction that is rolled back, so nothing is claimed).
async fn explain_claim(db: &sqlx::PgPool, due: i64) -> anyhow::Result<String> {
    let mut tx = db.begin().await?;
    seed::noop_jobs(&mut tx, due).await?;
    sqlx::query("ANALYZE jobs").execute(&mut *tx).await?;
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
    tx.rollback().await?;
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
    tokio::time::sleep(Duration::from_millis(1500)).await;
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

    fn met(&self) -> bool {
        self.rate() >= 0.8 * self.bound() && self.throttled == 0
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

// ---------------------------------------------------------------- the report

fn yes(b: bool) -> Option<bool> {
    Some(b)
}

fn write_rows(
    ctx: &Ctx,
    r: &mut Report,
    empty: &Figures,
    scale: &Figures,
    mail: Option<&MailFigure>,
    cold: Option<&ColdStart>,
    crm: Option<&CrmFigure>,
) {
    let p = &ctx.plan;
    if let Some(i) = &empty.ingest {
        let fc = i.firstcall.rate();
        r.row(
            "1",
            &format!("webhook ingest, {CONNECTIONS} connections: accepted `order.created`/s (p50 / p99 latency)"),
            format!("{} ({:.1} / {:.1} ms)", per_s(fc), i.firstcall.p50_ms, i.firstcall.p99_ms),
            format!("pgbench 1-row INSERT: {} tps (avg {:.1} ms)", i.pgbench.tps.round(), i.pgbench.latency_ms),
            ratio(fc, i.pgbench.tps),
            ("≥ 0.5×", yes(fc >= 0.5 * i.pgbench.tps)),
        );
    }
    if let (Some((batched, defaults)), Some(e)) = (&empty.graphile, &empty.engine) {
        let fc = e.noop.rate();
        r.row(
            "2",
            &format!("engine: {} no-op jobs drained, default settings", p.noop_jobs),
            per_s(fc),
            format!("graphile-worker batched: {}", per_s(batched.rate())),
            ratio(fc, batched.rate()),
            ("≥ 1.2×", yes(fc >= 1.2 * batched.rate())),
        );
        r.row(
            "2",
            "same, against graphile-worker at its defaults",
            per_s(fc),
            format!("graphile-worker defaults ({} jobs): {}", defaults.jobs, per_s(defaults.rate())),
            ratio(fc, defaults.rate()),
            ("–", None),
        );
        r.row(
            "2",
            &format!("engine: real reminder steps (claim → recap → outbox row → done), {}", p.reminder_steps),
            per_s(e.reminders.rate()),
            "–".into(),
            "–".into(),
            ("–", None),
        );
    }
    if let Some(t) = &empty.timers {
        r.row(
            "3",
            &format!("timer lateness, {} timers due over {} s: p50 / p99 (max)", p.timers, p.timer_span.as_secs()),
            format!("{:.1} / {:.1} ms ({:.1} ms)", t.p50_ms, t.p99_ms, t.max_ms),
            "–".into(),
            "–".into(),
            ("p99 < 250 ms", yes(t.p99_ms < 250.0 && t.fired == t.expected)),
        );
    }
    // Scale: cost (time per event or job) with a million open calls over the cost with none.
    if let (Some(e), Some(s)) = (&empty.ingest, &scale.ingest) {
        let cost = e.firstcall.rate() / s.firstcall.rate().max(1e-9);
        r.row(
            "4",
            &format!("ingest with {} open calls: events/s (p99)", p.scale_calls),
            format!("{} ({:.1} ms)", per_s(s.firstcall.rate()), s.firstcall.p99_ms),
            format!("empty database: {}; pgbench here: {} tps", per_s(e.firstcall.rate()), s.pgbench.tps.round()),
            format!("cost {cost:.2}×"),
            ("cost ≤ 1.2×", yes(cost <= 1.2)),
        );
    }
    if let (Some(e), Some(s)) = (&empty.engine, &scale.engine) {
        let cost = e.noop.rate() / s.noop.rate().max(1e-9);
        r.row(
            "4",
            "no-op jobs/s at scale",
            per_s(s.noop.rate()),
            format!("empty database: {}", per_s(e.noop.rate())),
            format!("cost {cost:.2}×"),
            ("cost ≤ 1.2×", yes(cost <= 1.2)),
        );
        let cost = e.reminders.rate() / s.reminders.rate().max(1e-9);
        r.row(
            "4",
            "reminder steps/s at scale",
            per_s(s.reminders.rate()),
            format!("empty database: {}", per_s(e.reminders.rate())),
            format!("cost {cost:.2}×"),
            ("cost ≤ 1.2×", yes(cost <= 1.2)),
        );
    }
    if let (Some(e), Some(s)) = (&empty.timers, &scale.timers) {
        let cost = s.p99_ms / e.p99_ms.max(1e-9);
        r.row(
            "4",
            "timer lateness p50 / p99 at scale",
            format!("{:.1} / {:.1} ms", s.p50_ms, s.p99_ms),
            format!("empty database: {:.1} / {:.1} ms", e.p50_ms, e.p99_ms),
            format!("p99 {cost:.2}×"),
            ("p99 ≤ 1.2× and < 250 ms", yes(cost <= 1.2 && s.p99_ms < 250.0)),
        );
    }
    if let Some(m) = mail {
        r.row(
            "5",
            &format!("mail to SMTP on loopback, {} messages: pooled (4 connections, 4 at once)", p.emails),
            per_s(m.pooled),
            format!("one connection, one at a time: {}", per_s(m.single)),
            ratio(m.pooled, m.single),
            ("–", None),
        );
        r.row(
            "5",
            "same, a new connection per message (pool 0, 4 at once)",
            per_s(m.per_message),
            format!("pooled: {}", per_s(m.pooled)),
            ratio(m.per_message, m.pooled),
            ("–", None),
        );
    }
    if let Some(i) = &empty.ingest {
        let idle = i.rss_idle_kib.unwrap_or(u64::MAX);
        let peak = i.rss_peak_kib.unwrap_or(u64::MAX);
        r.row("6", "RSS idle (`serve`, after start)", mib(i.rss_idle_kib), "–".into(), "–".into(), ("< 60 MiB", yes(idle < 60 * 1024)));
        r.row("6", "RSS peak under figure 1's load", mib(i.rss_peak_kib), "–".into(), "–".into(), ("< 250 MiB", yes(peak < 250 * 1024)));
    }
    if let Some(c) = cold {
        let binary = std::fs::metadata(&ctx.bin).map(|m| m.len()).unwrap_or(0);
        r.row(
            "6",
            "binary size (release as built: debug info stripped, symbols kept)",
            format!("{:.1} MiB", binary as f64 / 1048576.0),
            stripped_size(ctx).map(|b| format!("stripped: {:.1} MiB", b as f64 / 1048576.0)).unwrap_or_else(|| "–".into()),
            "–".into(),
            ("–", None),
        );
        let median = c.migrated_ms.get(c.migrated_ms.len() / 2).copied().unwrap_or(0.0);
        r.row(
            "6",
            &format!("cold start to ready (`/readyz` 200), median of {}", c.migrated_ms.len()),
            format!("{median:.0} ms"),
            format!("first start on an empty database (migrations): {:.0} ms", c.fresh_ms),
            "–".into(),
            ("–", None),
        );
    }
    if let Some(c) = crm {
        r.row(
            "7",
            &format!(
                "CRM enrichment: {} HubSpot deals pulled and stored, fake CRM allowing {} requests/s: orders/s (429s; busiest second)",
                c.deals, c.limit
            ),
            format!("{:.2}/s ({} × 429; {} requests)", c.rate(), c.throttled, c.busiest),
            format!("bound {} / {} requests an order: {:.2}/s", c.limit, c.needed, c.bound()),
            ratio(c.rate(), c.bound()),
            ("≥ 0.8× and no 429", yes(c.met())),
        );
    }
}

/// The binary's size without symbols and debug information (`strip`, when installed).
fn stripped_size(ctx: &Ctx) -> Option<u64> {
    let out = ctx.args.out_dir.join("firstcall-stripped");
    let ok = std::process::Command::new("strip").arg("-o").arg(&out).arg(&ctx.bin).status().ok()?.success();
    let size = if ok { std::fs::metadata(&out).ok().map(|m| m.len()) } else { None };
    let _ = std::fs::remove_file(&out);
    size
}

fn method(ctx: &Ctx) -> String {
    let p = &ctx.plan;
    format!(
        "- Every figure runs the release binary (`firstcall serve` or `firstcall worker`) as a child process configured through \
         `FIRSTCALL__…` variables, against a fresh database on the same PostgreSQL server as its reference.\n\
         - **1** {CONNECTIONS} keep-alive connections post unique signed `order.created` events (~1 KB) for {:.0} s; only a 200 naming the \
         event accepted counts, and afterwards every accepted event is checked to be stored with its order, call and first timer. The engine \
         is off (`engine.enabled=false`) so the figure is the intake path alone, and the per-source rate limit is off. The reference is \
         pgbench (`-M prepared -c {CONNECTIONS} -j 2`) running one INSERT of the same JSON body with a unique key per transaction, for as long.\n\
         - **2** No-op jobs are committed in one transaction with a NOTIFY while the worker idles; the drain time runs from that commit \
         until a probe (every 10 ms, index-ordered) finds none left. graphile-worker is timed the same way (`add_jobs`, which notifies), \
         in the configuration its performance page documents (`concurrentJobs` 24, `maxPoolSize` 25, `localQueue.size` 500, \
         `completeJobBatchDelay` 0, `failJobBatchDelay` 0) and at its defaults, with `NO_LOG_SUCCESS=1` in both (no console line per job; \
         firstcall writes none either). Reminder steps: {} open calls with a reminder due now, drained the same way (the mailer runs too).\n\
         - **3** {} overdue checks of open calls are due evenly over {} s; lateness is when the engine started the step (its audit row) \
         minus the due time.\n\
         - **4** Figures 1–3 again on a copy of a database holding {} open calls, each with its order, webhook event, audit row, a \
         pending reminder and a pending overdue timer (all due later). Cost is the empty database's rate over this one's.\n\
         - **5** {} outbox emails (~8 KB each) to the bench's SMTP sink on loopback; the rate runs from the first message received to the last.\n\
         - **6** RSS is read from `/proc` (VmRSS two seconds after `/readyz`, VmHWM after the load).\n\
         - **7** A fake HubSpot in the bench process (`testkit::crm::hubspot`, real HTTP on loopback) allows {} requests per second \
         (a sliding one-second window; beyond it `429` with `Retry-After: 1`; its app limit, 100 per 10 s by default, is raised out of \
         reach) and serves {} copies of the tests' sample deal (owner, company, three contacts, two line items, notes, an email, a call, a \
         meeting). As many orders with open calls (`scheduled`, source `hubspot`) each have a `crm.enrich` job due now; no `call.start` \
         is seeded, since the pull would bring it forward and the first emails would go during the figure. `firstcall worker` runs at its \
         defaults with the connector's `requests_per_second` set to the same limit. The time runs from the first request the fake \
         receives until every deal has a proposal of origin `crm` (probed every 10 ms); worker start-up is not counted. The bound is \
         the limit over the requests one order needs (counted beforehand on one pull of the same deal from a fake of its own; 2xx \
         answers beyond deals × that are pulls given up part-way and done again, and show in the raw figures); a one-second window lets the first second's requests \
         through at once, so a short run can beat it by up to a second's worth. The 429 count and the busiest second are the fake's.",
        p.seconds,
        p.reminder_steps,
        p.timers,
        p.timer_span.as_secs(),
        p.scale_calls,
        p.emails,
        p.crm_limit,
        p.crm_deals
    )
}

fn raw(empty: &Figures, scale: &Figures, mail: Option<&MailFigure>, crm: Option<&CrmFigure>) -> String {
    let mut s = String::from("```text\n");
    for (label, f) in [("empty", empty), ("scale", scale)] {
        if let Some(i) = &f.ingest {
            s.push_str(&format!("{label} ingest: {} (stored and checked: {})\n", i.firstcall.summary(), i.stored));
            s.push_str(&format!("{label} pgbench: {:.1} tps, latency average {:.2} ms\n", i.pgbench.tps, i.pgbench.latency_ms));
        }
        if let Some((b, d)) = &f.graphile {
            s.push_str(&format!(
                "graphile-worker batched: {} jobs in {:.3} s; defaults: {} jobs in {:.3} s\n",
                b.jobs, b.seconds, d.jobs, d.seconds
            ));
        }
        if let Some(e) = &f.engine {
            s.push_str(&format!(
                "{label} engine: {} no-op jobs in {:.3} s; {} reminder steps in {:.3} s\n",
                e.noop.jobs, e.noop.seconds, e.reminders.jobs, e.reminders.seconds
            ));
        }
        if let Some(t) = &f.timers {
            s.push_str(&format!(
                "{label} timers: {}/{} fired, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
                t.fired, t.expected, t.p50_ms, t.p99_ms, t.max_ms
            ));
        }
    }
    if let Some(m) = mail {
        s.push_str(&format!(
            "mail: pooled {:.1}/s, single connection {:.1}/s, connection per message {:.1}/s\n",
            m.pooled, m.single, m.per_message
        ));
    }
    if let Some(c) = crm {
        s.push_str(&format!(
            "crm: {} deals in {:.3} s from the first request ({:.3} s from worker start to it); {} requests answered 2xx ({} an order \
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
    s.push_str("```");
    s
}
