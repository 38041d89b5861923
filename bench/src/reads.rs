//! Figure 10: the read paths with the scale database's open calls (a million at full size). `serve`
//! as deployed (engine and mailer running) answers the dashboard's default view, the dashboard
//! filtered by one rep and one open state, call pages, and pages of `GET /api/v1/calls?state=open`
//! walked by `next_cursor`, each a number of times over a few keep-alive connections; every answer
//! is checked. Then a second `serve` on the same database, whose sessions run PostgreSQL's
//! `auto_explain` on every statement, gets one request of each kind, and the plans of the
//! statements each request ran are read from its log (sqlx logs the notices inside the request's
//! span).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use firstcall::workflow::queries::Position;

use crate::proc::{API_TOKEN, Firstcall, Launch};
use crate::report::Quantiles;

/// The target of each path's p99, ms.
pub const TARGET_P99_MS: f64 = 50.0;
/// The open states, as the API names them.
const OPEN: [&str; 3] = ["scheduled", "due", "overdue"];
/// The state the filtered view asks for (every seeded call is in it).
const FILTER_STATE: &str = "due";
/// Calls on a dashboard page (`pages::dashboard`).
const DASHBOARD_PAGE: usize = 100;

/// How much the figure does.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Measured requests of each kind.
    pub requests: usize,
    /// Requests of each kind before, checked but not measured.
    pub warmup: usize,
    pub connections: usize,
    /// `limit` of the API pages.
    pub api_limit: usize,
}

/// The four read paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dashboard,
    Filtered,
    CallPage,
    ApiPages,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Dashboard, Kind::Filtered, Kind::CallPage, Kind::ApiPages];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Dashboard => "dashboard, default view (`GET /`)",
            Kind::Filtered => "dashboard filtered by one rep and one open state (`GET /?rep=…&state=due`)",
            Kind::CallPage => "call page (`GET /calls/{id}`, random calls)",
            Kind::ApiPages => "`GET /api/v1/calls?state=open` pages walked by `next_cursor`",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Kind::Dashboard => "dashboard",
            Kind::Filtered => "filtered",
            Kind::CallPage => "call",
            Kind::ApiPages => "api",
        }
    }
}

/// One path's latencies.
#[derive(Debug, Clone, Copy)]
pub struct PathResult {
    pub kind: Kind,
    pub requests: usize,
    pub latency: Quantiles,
}

/// A round of the figure.
pub struct Reads {
    /// Open calls in the database.
    pub calls: i64,
    pub paths: Vec<PathResult>,
    /// API pages walked to the end (then started over at the first page).
    pub api_restarts: usize,
    /// The plans of the statements one request of each kind ran (Markdown), when asked for.
    pub plans: Option<String>,
}

impl Reads {
    pub fn path(&self, kind: Kind) -> Option<&PathResult> {
        self.paths.iter().find(|p| p.kind == kind)
    }

    pub fn raw(&self, round: &str) -> String {
        self.paths
            .iter()
            .map(|p| format!("{round} reads, {} open calls: {}: {} requests, {}\n", self.calls, p.kind.tag(), p.requests, p.latency.show()))
            .collect::<String>()
            + &format!("{round} reads: the API walks reached the last page {} times and started over\n", self.api_restarts)
    }
}

/// What the requests ask for and what their answers must hold, read from the database first.
struct Targets {
    base: String,
    /// Random calls: id and deal id.
    calls: Vec<(i64, String)>,
    /// Reps and how many calls each has in [`FILTER_STATE`].
    reps: Vec<(String, i64)>,
    /// Where each connection's walk of the API pages starts: the first page for the first; the
    /// others after the open call at rank k·N/connections (their cursor made by the server's own
    /// encoder), so the walks cover deep pages too.
    starts: Vec<Option<String>>,
    api_limit: usize,
}

/// Runs the figure: `serve` from `launch` under the reads, then (with `traced`, a launch on the
/// same database that logs sqlx's notices) the plans.
pub async fn run(db: &sqlx::PgPool, launch: &Launch, traced: Option<&Launch>, setup: Setup) -> anyhow::Result<Reads> {
    let calls: i64 = sqlx::query_scalar("SELECT count(*) FROM calls WHERE state IN ('scheduled','due','overdue')").fetch_one(db).await?;
    anyhow::ensure!(calls > 0, "the scale database has no open calls");
    let mut server = Firstcall::start(launch)?;
    let measured = async {
        server.wait_ready(Instant::now(), Duration::from_secs(60)).await?;
        let targets = Arc::new(targets(db, &server.base_url(), calls, setup).await?);
        let client = client(setup.connections)?;
        let mut paths = Vec::new();
        let mut api_restarts = 0;
        for kind in Kind::ALL {
            measure(&client, &targets, kind, setup.warmup, setup.connections).await?;
            let (latencies, restarts) = measure(&client, &targets, kind, setup.requests, setup.connections).await?;
            let r = PathResult { kind, requests: latencies.len(), latency: Quantiles::of(latencies) };
            crate::figures::say(format!("  {}: {} requests, {}", kind.tag(), r.requests, r.latency.show()));
            paths.push(r);
            api_restarts += restarts;
        }
        anyhow::Ok((paths, api_restarts, targets))
    }
    .await;
    server.stop().await;
    let (paths, api_restarts, targets) = measured?;
    let plans = match traced {
        Some(l) => Some(plans(db, l, &targets).await?),
        None => None,
    };
    Ok(Reads { calls, paths, api_restarts, plans })
}

fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(connections).timeout(Duration::from_secs(30)).tcp_nodelay(true).build()?)
}

async fn targets(db: &sqlx::PgPool, base: &str, calls: i64, setup: Setup) -> anyhow::Result<Targets> {
    let sample: Vec<(i64, String)> = sqlx::query_as("SELECT id, deal_id FROM calls ORDER BY random() LIMIT $1")
        .bind(setup.requests.max(setup.warmup) as i64)
        .fetch_all(db)
        .await?;
    let reps: Vec<(String, i64)> =
        sqlx::query_as("SELECT rep_email, count(*) FROM calls WHERE state = $1 GROUP BY rep_email ORDER BY rep_email")
            .bind(FILTER_STATE)
            .fetch_all(db)
            .await?;
    anyhow::ensure!(!sample.is_empty() && !reps.is_empty(), "the scale database has no calls to ask for");
    let mut starts = vec![None];
    for k in 1..setup.connections.max(1) {
        let rank = calls * k as i64 / setup.connections as i64;
        let (due_at, id): (DateTime<Utc>, i64) = sqlx::query_as(
            "SELECT due_at, id FROM calls WHERE state IN ('scheduled','due','overdue') ORDER BY due_at, id OFFSET $1 LIMIT 1",
        )
        .bind(rank)
        .fetch_one(db)
        .await?;
        starts.push(Some(firstcall::http::cursor::encode(Position::Open { due_at, id })));
    }
    Ok(Targets { base: base.to_string(), calls: sample, reps, starts, api_limit: setup.api_limit })
}

/// A connection's walk through the API pages.
struct Walk {
    cursor: Option<String>,
    /// Calls seen since the walk's start, and the last one's key: no call twice, in list order.
    seen: HashSet<i64>,
    last: Option<(DateTime<Utc>, i64)>,
    restarts: usize,
}

/// `n` requests of `kind` over `connections` connections; each answer checked. Returns the
/// latencies (ms) and how often an API walk started over.
async fn measure(
    client: &reqwest::Client,
    t: &Arc<Targets>,
    kind: Kind,
    n: usize,
    connections: usize,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for conn in 0..connections.max(1) {
        let (client, t, next) = (client.clone(), t.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let start = t.starts.get(conn).cloned().flatten();
            let mut walk = Walk { cursor: start, seen: HashSet::new(), last: None, restarts: 0 };
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (path, expect) = request(&t, kind, i, &walk);
                let started = Instant::now();
                let (status, body) = get(&client, &t.base, &path, None).await?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(status == 200, "{path} answered {status}: {}", body.chars().take(300).collect::<String>());
                check(&expect, &body, &mut walk).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            }
            anyhow::Ok((latencies, walk.restarts))
        }));
    }
    let mut all = Vec::with_capacity(n);
    let mut restarts = 0;
    for task in tasks {
        let (latencies, r) = task.await??;
        all.extend(latencies);
        restarts += r;
    }
    Ok((all, restarts))
}

async fn get(client: &reqwest::Client, base: &str, path: &str, request_id: Option<&str>) -> anyhow::Result<(u16, String)> {
    let mut req = client.get(format!("{base}{path}")).bearer_auth(API_TOKEN);
    if let Some(id) = request_id {
        req = req.header("X-Request-Id", id);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    Ok((status, res.text().await?))
}

/// What an answer must hold.
enum Expect {
    /// A dashboard page with this many call rows, each of this rep (and state) when filtered.
    Dashboard { rows: usize, rep: Option<String> },
    /// The call page of this deal.
    Call { deal_id: String },
    /// A page of open calls, continuing the walk.
    ApiPage,
}

/// The path of request `i` of `kind`, and what its answer must hold.
fn request(t: &Targets, kind: Kind, i: usize, walk: &Walk) -> (String, Expect) {
    match kind {
        Kind::Dashboard => ("/".into(), Expect::Dashboard { rows: DASHBOARD_PAGE, rep: None }),
        Kind::Filtered => {
            let (rep, n) = &t.reps[(i * 7) % t.reps.len()];
            let rows = (*n as usize).min(DASHBOARD_PAGE);
            (format!("/?rep={rep}&state={FILTER_STATE}"), Expect::Dashboard { rows, rep: Some(rep.clone()) })
        }
        Kind::CallPage => {
            let (id, deal_id) = &t.calls[i % t.calls.len()];
            (format!("/calls/{id}"), Expect::Call { deal_id: deal_id.clone() })
        }
        Kind::ApiPages => {
            let mut path = format!("/api/v1/calls?state=open&limit={}", t.api_limit);
            if let Some(c) = &walk.cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            (path, Expect::ApiPage)
        }
    }
}

fn check(expect: &Expect, body: &str, walk: &mut Walk) -> anyhow::Result<()> {
    match expect {
        Expect::Dashboard { rows, rep } => {
            let found = body.matches("<tr id=\"call-").count();
            anyhow::ensure!(found == *rows, "{found} call rows on the dashboard, expected {rows}");
            anyhow::ensure!(body.contains("id=\"count-open\""), "no count of open calls on the dashboard");
            if let Some(rep) = rep {
                let of_rep = body.matches(&format!("<span class=\"muted\">{rep}</span>")).count();
                let in_state = body.matches(&format!("<span class=\"badge {FILTER_STATE}\">")).count();
                anyhow::ensure!(
                    of_rep == *rows && in_state == *rows,
                    "{of_rep} of {rows} rows are {rep}'s and {in_state} are {FILTER_STATE}"
                );
            }
        }
        Expect::Call { deal_id } => {
            anyhow::ensure!(body.contains(&format!("deal {deal_id}<")), "the call page does not name deal {deal_id}");
        }
        Expect::ApiPage => {
            let page: serde_json::Value = serde_json::from_str(body)?;
            let calls = page["calls"].as_array().ok_or_else(|| anyhow::anyhow!("no calls in the answer"))?;
            anyhow::ensure!(!calls.is_empty(), "an empty page");
            for c in calls {
                let id = c["id"].as_i64().ok_or_else(|| anyhow::anyhow!("a call without an id"))?;
                let state = c["state"].as_str().unwrap_or_default();
                anyhow::ensure!(OPEN.contains(&state), "call {id} is {state}, not open");
                let due_at: DateTime<Utc> = c["due_at"].as_str().unwrap_or_default().parse()?;
                anyhow::ensure!(walk.seen.insert(id), "call {id} came again on a later page");
                anyhow::ensure!(walk.last.is_none_or(|last| (due_at, id) > last), "call {id} is out of order");
                walk.last = Some((due_at, id));
            }
            walk.cursor = page["next_cursor"].as_str().map(String::from);
            if walk.cursor.is_none() {
                // The last page: start over at the first.
                walk.seen.clear();
                walk.last = None;
                walk.restarts += 1;
            }
        }
    }
    Ok(())
}

/// Settings of the database for the statement log: PostgreSQL's `auto_explain` in every session
/// of a process started after them, reporting each statement's plan as it ran (`ANALYZE`,
/// `BUFFERS`) to the client as a notice, which sqlx logs inside the request's span.
const AUTO_EXPLAIN: [(&str, &str); 6] = [
    ("session_preload_libraries", "auto_explain"),
    ("auto_explain.log_min_duration", "0"),
    ("auto_explain.log_analyze", "on"),
    ("auto_explain.log_buffers", "on"),
    ("auto_explain.log_timing", "on"),
    ("auto_explain.log_level", "notice"),
];

/// One request of each kind to a `serve` whose sessions explain every statement they run; the
/// plans of the statements each request ran.
async fn plans(db: &sqlx::PgPool, launch: &Launch, t: &Targets) -> anyhow::Result<String> {
    let name: String = sqlx::query_scalar("SELECT current_database()::text").fetch_one(db).await?;
    for (setting, value) in AUTO_EXPLAIN {
        sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{name}\" SET {setting} = '{value}'"))).execute(db).await?;
    }
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut server = Firstcall::start(launch)?;
    let asked = async {
        server.wait_ready(Instant::now(), Duration::from_secs(60)).await?;
        let client = client(1)?;
        let t = Targets {
            base: server.base_url(),
            calls: t.calls.clone(),
            reps: t.reps.clone(),
            starts: t.starts.clone(),
            api_limit: t.api_limit,
        };
        let mut ids = Vec::new();
        for kind in Kind::ALL {
            // A deep API page (a cursor from the middle of the list) rather than the first.
            let walk = Walk { cursor: t.starts.get(t.starts.len() / 2).cloned().flatten(), seen: HashSet::new(), last: None, restarts: 0 };
            let (path, _) = request(&t, kind, 0, &walk);
            let id = format!("plan-{}-{run}", kind.tag());
            let (status, _) = get(&client, &t.base, &path, Some(&id)).await?;
            anyhow::ensure!(status == 200, "{path} answered {status} to the statement log's request");
            ids.push((kind, path, id));
        }
        anyhow::Ok(ids)
    }
    .await;
    // Stopped first, so that its log is complete.
    server.stop().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{name}\" RESET ALL"))).execute(db).await?;
    let ids = asked?;
    let plans = logged_plans(&std::fs::read_to_string(&launch.log)?);
    let mut out = String::from(
        "The plan of every statement one request of each kind ran, as `serve` ran it: PostgreSQL's `auto_explain` (`log_analyze`, \
         `log_buffers`, every statement) in the sessions of a second `serve` on the same database, its notices logged by sqlx in \
         the request's span. Long query texts are cut.\n",
    );
    for (kind, path, id) in ids {
        let ran = plans.get(&id).cloned().unwrap_or_default();
        anyhow::ensure!(!ran.is_empty(), "no plan of request {id} in {}", launch.log.display());
        out.push_str(&format!("\n### {}\n\n`GET {path}`: {} statements.\n", kind.label(), ran.len()));
        for (n, plan) in ran.iter().enumerate() {
            out.push_str(&format!("\n{}.\n\n```text\n{}\n```\n", n + 1, plan));
        }
    }
    Ok(out)
}

/// The plans `auto_explain` reported in a JSON log, by the id of the request whose span they
/// came in, in order; each query text folded onto one line and cut.
fn logged_plans(log: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (Some(target), Some(id), Some(message)) = (v["target"].as_str(), v["span"]["request_id"].as_str(), v["message"].as_str())
        else {
            continue;
        };
        let Some((_, plan)) = message.split_once("plan:") else { continue };
        if target == "sqlx::postgres::notice" {
            let plan = match plan.trim().split_once("\n") {
                Some((query, rest)) if query.starts_with("Query Text:") => format!("{}\n{}", shorten(query), rest.trim_end()),
                _ => plan.trim().to_string(),
            };
            out.entry(id.to_string()).or_default().push(plan);
        }
    }
    out
}

/// A query text as the report quotes it: whitespace folded, long ones cut.
fn shorten(sql: &str) -> String {
    let folded = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match folded.char_indices().nth(400) {
        Some((i, _)) => format!("{}…", &folded[..i]),
        None => folded,
    }
}

/// The figure's paragraph of the report's method.
pub fn method(setup: Setup, calls: i64) -> String {
    format!(
        "- **10** `serve` as deployed (engine and mailer running) on a copy of the scale database ({calls} open calls, 500 reps) \
         answers, after {} unmeasured requests of each kind, {} requests of each of: the dashboard's default view (`GET /`); the \
         dashboard filtered by one rep and the state `{FILTER_STATE}` (the reps taken in turn); a call page of a random seeded call; and \
         `GET /api/v1/calls?state=open&limit={}` pages, each connection following `next_cursor` from its own start (the first page, or \
         for the others the page after the open call at rank k·N/{}, its cursor made by the server's encoder) and starting over at the \
         first page after the last. {} keep-alive connections, each with the API token as a bearer token; latency from sending the \
         request to the whole body read. Every answer must be a 200 with what it should hold: the dashboard's 100 rows (filtered: each \
         of the rep and state asked for), the call page naming the call's deal, API pages of open calls in list order with no call \
         twice in a walk. Target: p99 ≤ {TARGET_P99_MS} ms for each path. Then a second `serve` on the same database, whose sessions load PostgreSQL's `auto_explain` (every statement, \
         `log_analyze`, `log_buffers`, reported to the client as a notice, which sqlx logs in the request's span), gets one request of \
         each kind (the API page a deep one); the plan of every statement each request ran is in the section below.",
        setup.warmup, setup.requests, setup.api_limit, setup.connections, setup.connections
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_grouped_by_the_request_they_ran_in() {
        let notice = |id: &str, text: &str| {
            serde_json::json!({"level": "INFO", "target": "sqlx::postgres::notice", "message": format!("duration: 0.1 ms  plan:\nQuery Text: {text}\nLimit  (actual rows=1)"), "span": {"request_id": id, "name": "request"}}).to_string()
        };
        let log = [
            notice("a", "SELECT 1"),
            serde_json::json!({"level": "INFO", "target": "sqlx::postgres::notice", "message": "duration: 0.1 ms  plan:\nQuery Text: SELECT 2"}).to_string(),
            serde_json::json!({"level": "INFO", "target": "firstcall::http", "message": "request", "span": {"request_id": "a"}}).to_string(),
            notice("b", "SELECT   3  FROM calls"),
            notice("a", "SELECT 4"),
            "not json".to_string(),
        ]
        .join("\n");
        let p = logged_plans(&log);
        assert_eq!(p["a"], ["Query Text: SELECT 1\nLimit  (actual rows=1)", "Query Text: SELECT 4\nLimit  (actual rows=1)"]);
        assert_eq!(p["b"], ["Query Text: SELECT 3 FROM calls\nLimit  (actual rows=1)"]);
        assert_eq!(p.len(), 2);
    }
}
