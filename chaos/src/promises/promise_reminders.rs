//! Promise 6: promise reminders under SIGKILL: none lost, none sent twice. A hundred deals, each
//! with a proposal of three commitments due on one day, are ordered and their first calls marked
//! done, so three hundred promises wait for their day's reminder, all planned for one minute:
//! the schedule's business hours start at that minute, and no reminder comes ahead of the day
//! (`promises.remind_business_days_before = []`). When the minute comes, a `serve` and a
//! `worker` write and send the reminders while they are killed with SIGKILL and restarted every
//! few hundred milliseconds (the serve, the worker, both; a round that catches a mailer sending
//! reminders kills that one's process instead, mid-send); then they run healed until every
//! reminder went out.
//!
//! The final read, from the API, the SMTP server and the database: every promise was reminded
//! exactly once (one `reminded` audit entry, `reminders_sent = 1`, one outbox row); the SMTP
//! server received every reminder's `Message-ID`, a second copy only where the outbox counts
//! an unknown outcome for that email (a mailer killed between its send and the record of it
//! resends with the same `Message-ID`); and nothing else arrived about these promises.
//!
//! Time is real, so the run waits for the minute: the first whole UTC minute at least [`LEAD`]
//! after the start (the ledger takes a few seconds to build), then [`MAIL_LEASE`] after the last
//! kill for the emails a killed mailer held. The promises are due on the minute's UTC date: a
//! run whose minute falls after midnight UTC makes them due tomorrow, which changes nothing
//! (the reminder is still the day's first); 23:59, where business hours would start as they
//! end, is skipped for midnight.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, TimeDelta, Timelike, Utc};
use futures_util::StreamExt;
use serde_json::json;
use testkit::SmtpSink;
use testkit::db::TestDb;

use crate::Ctx;
use crate::crm::{Crm, History, resend_unacknowledged, unique_orders};
use crate::mailbox::{self, Received};
use crate::pg;
use crate::report::Row;
use crate::service::{API_TOKEN, Calendar, Reminders, Setup, free_port};

const DEALS: usize = 100;
const COMMITMENTS: usize = 3;
/// The reminder minute is the first whole minute at least this far ahead: the ledger (start-up,
/// proposals, orders, calls marked done, the checks) takes about two seconds on a quiet machine,
/// and the whole promise LEAD to LEAD + 60 s, plus about 40 s from the minute on.
const LEAD: Duration = Duration::from_secs(15);
/// The ledger must be ready (and the worker started) at least this long before the minute.
const PREP_MARGIN: Duration = Duration::from_secs(2);
/// A process runs this long (after it is ready) before it is killed again.
const MIN_UP: Duration = Duration::from_millis(300);
const MAX_UP: Duration = Duration::from_millis(700);
/// After that, how long a round waits for a moment when a mailer is sending reminders.
const WATCH: Duration = Duration::from_millis(300);
/// Kill rounds: the serve, then the worker, then both, and again; fewer once nothing is left
/// to write or send.
const ROUNDS: usize = 6;
const MIN_KILLS: usize = 3;
/// Small batches, one claim loop per process: the three hundred steps take a few seconds and
/// both processes hold some of them at every kill.
const BATCH: u32 = 10;
const LOOPS: u32 = 1;
/// The engine's lease in these runs (as `Setup` sets it).
const LEASE_SECS: u64 = 5;
/// How long an email claimed by a killed mailer waits before another takes it over: the
/// mailer's lease, `mail.send_timeout_secs` (2 here) + 30 s.
const MAIL_LEASE: Duration = Duration::from_secs(32);
/// Beyond the last kill's mail lease: retries, and the mailer's look for due mail.
const GRACE: Duration = Duration::from_secs(15);
const REP: &str = "rep@seller.example";

pub async fn run(ctx: &Ctx, name: &'static str) -> anyhow::Result<Row> {
    let started = Instant::now();
    let mut row = Row::new(name);
    let minute = reminder_minute(Utc::now());
    let day = minute.date_naive();
    let db = TestDb::postgres().await;
    let smtp = SmtpSink::start().await;
    let calendar = Calendar { business_start: minute.time(), promise_days_before: Some(vec![]) };
    let mut setup =
        Setup::with_calendar(&ctx.binary, &ctx.repo, ctx.dir("6-promise-reminders"), db.url(), smtp.port(), Reminders::NEVER, &calendar)?;
    setup
        .set("FIRSTCALL__ENGINE__BATCH_SIZE", BATCH)
        .set("FIRSTCALL__ENGINE__CONCURRENCY", LOOPS)
        .set("FIRSTCALL__ENGINE__LEASE_SECS", LEASE_SECS);
    let port = free_port()?;
    let mut serve = setup.spawn("firstcall", "serve", Some(port))?;
    serve.ready(Duration::from_secs(30)).await?;
    let base = serve.base_url();
    let pool = pg::pool(db.url()).await?;
    pg::record_job_history(&pool).await?;

    // The ledger: proposals, orders, the calls marked done; every promise planned for the minute.
    let api = Api::new(&base)?;
    let deals: Vec<String> = (0..DEALS).map(|i| format!("REMIND-{i}")).collect();
    api.put_proposals(&deals, day).await?;
    let events = unique_orders("REMIND", DEALS);
    let history = History::default();
    resend_unacknowledged(&Crm::new()?, &base, &events, &history, 5).await?;
    let calls = mailbox::calls_of_deals(&base, &deals, Instant::now() + Duration::from_secs(30)).await?;
    let (_, odd) = mailbox::first_emails(&calls, deals.iter().map(String::as_str));
    anyhow::ensure!(odd.is_empty(), "before the reminders: {}", odd.join("; "));
    let call_ids: Vec<i64> = deals.iter().filter_map(|d| calls.get(d)).flatten().copied().collect();
    api.complete_all(&call_ids).await?;
    let promises = api.promises().await?;
    check_ledger(&promises, &deals, day)?;
    check_planned(&pool, minute, promises.len()).await?;
    let expected: BTreeMap<String, &Seen> = promises.iter().map(|p| (mailbox::promise_message_id(p.id, "reminder", day, 1), p)).collect();
    let expected_ids: BTreeSet<String> = expected.keys().cloned().collect();
    let ready_after = started.elapsed();

    let mut worker = setup.spawn("engine-worker", "worker", None)?;
    worker.ready(Duration::from_secs(30)).await?;
    let ahead = (minute - Utc::now()).to_std().unwrap_or_default();
    anyhow::ensure!(
        ahead >= PREP_MARGIN,
        "the ledger was ready {:.1} s before the reminder minute {minute} (less than {PREP_MARGIN:?}): the machine is slow, raise LEAD",
        ahead.as_secs_f64()
    );
    row.notes.push(format!(
        "{} promises of {DEALS} deals due {day}, reminded at {} UTC: the ledger was ready after {:.1} s, {:.1} s before that minute",
        promises.len(),
        minute.format("%H:%M"),
        ready_after.as_secs_f64(),
        ahead.as_secs_f64()
    ));
    tokio::time::sleep(ahead).await;
    let at_minute = Instant::now();

    // The faults: every few hundred milliseconds of a process's life, SIGKILL and restart, while
    // reminders are still to be written or sent.
    let mut jitter = Jitter::new();
    let mut kills: Vec<Kill> = Vec::new();
    let mut steps_done: Option<Instant> = None;
    for round in 0..ROUNDS {
        tokio::time::sleep(jitter.between(MIN_UP, MAX_UP)).await;
        // A mailer holds reminders only for the moments it sends them: watch for one a little
        // longer, and kill the process it runs in then, mid-send.
        let watch_until = Instant::now() + WATCH;
        let mut holder = mail_holder(&pool).await?;
        while holder.is_none() && Instant::now() < watch_until {
            tokio::time::sleep(Duration::from_millis(2)).await;
            holder = mail_holder(&pool).await?;
        }
        let left = outstanding(&pool).await?;
        if left.steps == 0 {
            steps_done.get_or_insert_with(Instant::now);
        }
        if left.steps + left.emails == 0 {
            break;
        }
        // The serve, the worker, both; the one holding reminders instead of either alone.
        let (kill_serve, kill_worker) = match (round % 3, holder.as_deref()) {
            (2, _) => (true, true),
            (_, Some(owner)) => (!owner.starts_with("engine-worker-"), owner.starts_with("engine-worker-")),
            (r, None) => (r == 0, r == 1),
        };
        let mid_send = |process: &str| holder.as_deref().is_some_and(|o| o.starts_with(&format!("{process}-")));
        if kill_serve {
            serve.kill();
            kills.push(Kill { at: Instant::now(), process: "serve", left, mid_send: mid_send("firstcall") });
        }
        if kill_worker {
            worker.kill();
            kills.push(Kill { at: Instant::now(), process: "worker", left, mid_send: mid_send("engine-worker") });
        }
        if kill_serve {
            serve = setup.spawn("firstcall", "serve", Some(port))?;
        }
        if kill_worker {
            worker = setup.spawn("engine-worker", "worker", None)?;
        }
        if kill_serve {
            serve.ready(Duration::from_secs(30)).await?;
        }
        if kill_worker {
            worker.ready(Duration::from_secs(30)).await?;
        }
    }
    let healed = Instant::now();

    // Healed: until every promise is reminded, every reminder sent and at the SMTP server (a
    // mailer killed holding emails leaves them to another once its lease runs out).
    let deadline = kills.last().map_or(healed, |k| k.at) + MAIL_LEASE + GRACE;
    let mut all_arrived: Option<Instant> = None;
    loop {
        let left = outstanding(&pool).await?;
        if left.steps == 0 {
            steps_done.get_or_insert_with(Instant::now);
        }
        let missing = Received::read(&smtp).missing(&expected_ids).len();
        if left.steps + left.emails == 0 && missing == 0 {
            all_arrived = Some(Instant::now());
            break;
        }
        if Instant::now() >= deadline {
            row.notes.push(format!(
                "at the deadline, {:.1} s after the minute: {} promises not reminded, {} reminders unsent, {missing} not at the SMTP server",
                at_minute.elapsed().as_secs_f64(),
                left.steps,
                left.emails
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Anything sent twice right after the last one would show in a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The final read: the API's view, then (processes stopped) the database and the SMTP server.
    let after = api.promises().await?;
    for p in [&mut serve, &mut worker] {
        row.check(p.alive(), format!("{} exited by itself; log: {}", p.name, p.log.display()));
        p.stop(Duration::from_secs(10)).await;
    }
    let received = Received::read(&smtp);
    let db_read = DbRead::read(&pool).await?;
    let judged = judge(&expected, &after, &db_read, &received);
    row.sent = expected.len();
    row.acknowledged = judged.arrived;
    row.lost = judged.lost.len();
    row.duplicated = judged.duplicated;
    row.unexplained = judged.unexplained.len();
    row.unknown = db_read.emails.iter().map(|e| e.unknown_outcomes as usize).sum();
    row.unexpected = judged.unexpected.len();
    let few = |items: &[String]| items.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    if !judged.lost.is_empty() {
        row.failures.push(format!("{} of {} reminders lost: {}", judged.lost.len(), expected.len(), few(&judged.lost)));
    }
    if !judged.unexplained.is_empty() {
        row.failures.push(format!(
            "{} reminders sent twice with nothing to explain it: {}",
            judged.unexplained.len(),
            few(&judged.unexplained)
        ));
    }
    if !judged.unexpected.is_empty() {
        row.failures.push(format!("{} things nobody expected: {}", judged.unexpected.len(), few(&judged.unexpected)));
    }

    // The job history: no reminder step held by two processes at once, none committed by a
    // process that had lost its lease.
    let history: Vec<pg::JobEvent> = pg::job_history(&pool).await?.into_iter().filter(|e| e.kind == "promise.remind").collect();
    let audit = pg::audit_jobs(&history, Duration::from_secs(LEASE_SECS));
    row.failures.extend(audit.findings());
    row.check(db_read.dead_jobs == 0, format!("{} promise jobs dead (out of attempts)", db_read.dead_jobs));

    let by = |process: &str| kills.iter().filter(|k| k.process == process).count();
    let during_steps = kills.iter().filter(|k| k.left.steps > 0).count();
    let during_mail = kills.iter().filter(|k| k.left.steps + k.left.emails > 0).count();
    let mid_send = kills.iter().filter(|k| k.mid_send).count();
    let span = match (kills.first(), kills.last()) {
        (Some(first), Some(last)) => {
            format!(" from {:.1} s to {:.1} s after the minute", (first.at - at_minute).as_secs_f64(), (last.at - at_minute).as_secs_f64())
        }
        _ => String::new(),
    };
    row.notes.push(format!(
        "{} SIGKILLs{span} (serve {}, worker {}; jitter seed {}): {during_steps} while reminder steps were uncommitted (up to {} of them), \
         {during_mail} while reminders were still to be written or sent, {mid_send} of a process whose mailer was sending reminders",
        kills.len(),
        by("serve"),
        by("worker"),
        jitter.seed,
        kills.iter().map(|k| k.left.steps).max().unwrap_or(0),
    ));
    let secs = |t: Option<Instant>| t.map_or_else(|| "never".to_string(), |t| format!("after {:.1} s", (t - at_minute).as_secs_f64()));
    row.notes.push(format!(
        "from the minute, every reminder step had committed {} and every reminder was sent and at the SMTP server {}; the promise took {:.1} s",
        secs(steps_done),
        secs(all_arrived),
        started.elapsed().as_secs_f64()
    ));
    row.notes.push(format!(
        "{} claims of reminder steps, {} taken over after a killed holder's lease ran out; {} copies beyond the first at the SMTP server, \
         {} of them explained by unknown outcomes ({} unknown outcomes in the outbox, {} copies cut mid-transfer); {} other emails (the calls')",
        history.iter().filter(|e| e.event == "claimed").count(),
        audit.reclaimed,
        judged.extra_copies,
        judged.explained,
        row.unknown,
        judged.cut,
        judged.others
    ));
    row.check(
        during_mail >= MIN_KILLS,
        format!("only {during_mail} kills landed while reminders were being written or sent: the faults missed the work"),
    );
    row.check(during_steps > 0, "no kill landed while reminder steps were uncommitted: the engine was not exercised");
    row.check(mid_send > 0, "no kill caught a mailer sending reminders: the resend path was not exercised");
    Ok(row.finish())
}

/// The first whole UTC minute at least [`LEAD`] after `now`, but never 23:59 (business hours
/// would end as they start): midnight instead.
fn reminder_minute(now: DateTime<Utc>) -> DateTime<Utc> {
    let earliest = now + TimeDelta::from_std(LEAD).unwrap_or(TimeDelta::MAX);
    let secs = earliest.timestamp() + i64::from(earliest.timestamp_subsec_nanos() > 0);
    let mut minute = DateTime::from_timestamp(secs.div_euclid(60) * 60 + if secs % 60 == 0 { 0 } else { 60 }, 0).unwrap_or(earliest);
    if minute.hour() == 23 && minute.minute() == 59 {
        minute += TimeDelta::minutes(1);
    }
    minute
}

/// A promise as the API lists it.
#[derive(Debug, Clone)]
struct Seen {
    id: i64,
    deal: String,
    state: String,
    deliver_by: Option<NaiveDate>,
    reminders_sent: i64,
    owner: String,
}

/// The API, as the CRM and the rep use it.
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> anyhow::Result<Api> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(16).build()?;
        Ok(Api { client, base: base.to_string() })
    }

    /// Each deal's proposal: three commitments due on `day`, each answering one requirement.
    async fn put_proposals(&self, deals: &[String], day: NaiveDate) -> anyhow::Result<()> {
        let body = json!({
            "account": {"name": "Chaos Corp"},
            "rep_email": REP,
            "requirements": (1..=COMMITMENTS).map(|i| json!({"id": format!("R{i}"), "text": format!("Requirement {i}"), "priority": "must"})).collect::<Vec<_>>(),
            "commitments": (1..=COMMITMENTS).map(|i| json!({
                "id": format!("C{i}"), "text": format!("Commitment {i}"), "covers": [format!("R{i}")], "deliver_by": day.to_string()
            })).collect::<Vec<_>>(),
        });
        let puts = deals.iter().map(|deal| {
            let body = &body;
            async move {
                let r = self
                    .client
                    .put(format!("{}/api/v1/proposals/generic/{deal}", self.base))
                    .bearer_auth(API_TOKEN)
                    .json(body)
                    .send()
                    .await?;
                let status = r.status();
                anyhow::ensure!(status.is_success(), "PUT the proposal of {deal}: HTTP {status}: {}", r.text().await.unwrap_or_default());
                anyhow::Ok(())
            }
        });
        futures_util::stream::iter(puts).buffer_unordered(16).collect::<Vec<_>>().await.into_iter().collect()
    }

    /// Marks every call done, as the rep would after it.
    async fn complete_all(&self, calls: &[i64]) -> anyhow::Result<()> {
        let posts = calls.iter().map(|id| async move {
            let r = self
                .client
                .post(format!("{}/api/v1/calls/{id}/complete", self.base))
                .bearer_auth(API_TOKEN)
                .json(&json!({"outcome": "aligned"}))
                .send()
                .await?;
            let status = r.status();
            anyhow::ensure!(status.is_success(), "mark call {id} done: HTTP {status}: {}", r.text().await.unwrap_or_default());
            anyhow::Ok(())
        });
        futures_util::stream::iter(posts).buffer_unordered(16).collect::<Vec<_>>().await.into_iter().collect()
    }

    /// Every promise, page after page.
    async fn promises(&self) -> anyhow::Result<Vec<Seen>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("state", "all".to_string()), ("limit", "500".to_string())];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let page: serde_json::Value = self
                .client
                .get(format!("{}/api/v1/promises", self.base))
                .bearer_auth(API_TOKEN)
                .query(&query)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            for p in page["promises"].as_array().into_iter().flatten() {
                let (Some(id), Some(deal)) = (p["id"].as_i64(), p["deal_id"].as_str()) else {
                    anyhow::bail!("a promise without id or deal_id in GET /api/v1/promises: {p}");
                };
                out.push(Seen {
                    id,
                    deal: deal.to_string(),
                    state: p["state"].as_str().unwrap_or_default().to_string(),
                    deliver_by: p["deliver_by"].as_str().and_then(|d| d.parse().ok()),
                    reminders_sent: p["reminders_sent"].as_i64().unwrap_or(-1),
                    owner: p["owner_email"].as_str().unwrap_or_default().to_string(),
                });
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(out),
            }
        }
    }
}

/// Before the minute: each deal has its three promises, open, due on `day`, not reminded yet.
fn check_ledger(promises: &[Seen], deals: &[String], day: NaiveDate) -> anyhow::Result<()> {
    let mut per_deal: HashMap<&str, usize> = HashMap::new();
    for p in promises {
        *per_deal.entry(p.deal.as_str()).or_default() += 1;
        anyhow::ensure!(
            p.state == "open" && p.deliver_by == Some(day) && p.reminders_sent == 0 && p.owner == REP,
            "before the reminders, promise {} of {} is {}, due {:?}, reminded {} times, owned by {}: expected open, due {day}, never \
             reminded, owned by {REP}",
            p.id,
            p.deal,
            p.state,
            p.deliver_by,
            p.reminders_sent,
            p.owner
        );
    }
    let short: Vec<String> = deals
        .iter()
        .filter(|d| per_deal.get(d.as_str()).copied().unwrap_or(0) != COMMITMENTS)
        .map(|d| format!("{d} has {}", per_deal.get(d.as_str()).copied().unwrap_or(0)))
        .take(5)
        .collect();
    anyhow::ensure!(
        short.is_empty() && promises.len() == deals.len() * COMMITMENTS,
        "before the reminders, the API lists {} promises for {} deals of {COMMITMENTS} commitments each ({})",
        promises.len(),
        deals.len(),
        short.join(", ")
    );
    Ok(())
}

/// Before the minute: one `promise.remind` job per promise, due at the minute, and nothing else.
async fn check_planned(pool: &sqlx::PgPool, minute: DateTime<Utc>, promises: usize) -> anyhow::Result<()> {
    let planned: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT run_at, count(*) FROM jobs WHERE kind = 'promise.remind' AND state = 'pending' GROUP BY run_at ORDER BY run_at",
    )
    .fetch_all(pool)
    .await?;
    anyhow::ensure!(
        planned == [(minute, promises as i64)],
        "before the reminders, {promises} promises should each have a reminder at {minute}; the jobs planned are (run_at, count) {planned:?}"
    );
    Ok(())
}

/// Work left at a moment: promises not reminded yet, and reminders in the outbox not yet sent.
#[derive(Debug, Clone, Copy)]
struct Left {
    steps: i64,
    emails: i64,
}

async fn outstanding(pool: &sqlx::PgPool) -> anyhow::Result<Left> {
    let (steps, emails): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM promises WHERE reminders_sent = 0), \
         (SELECT count(*) FROM emails WHERE kind = 'promise_reminder' AND state = 'pending')",
    )
    .fetch_one(pool)
    .await?;
    Ok(Left { steps, emails })
}

/// The lease owner (`<process name>-<uuid>`) of a reminder a mailer is sending right now: one
/// claimed or renewed (before each send) in the last quarter second, so not one a process
/// killed earlier left behind.
async fn mail_holder(pool: &sqlx::PgPool) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT lease_owner FROM emails WHERE kind = 'promise_reminder' AND state = 'pending' AND lease_token IS NOT NULL \
         AND lease_until > clock_timestamp() + make_interval(secs => $1) LIMIT 1",
    )
    .bind(MAIL_LEASE.as_secs_f64() - 0.25)
    .fetch_optional(pool)
    .await?
    .flatten())
}

struct Kill {
    at: Instant,
    process: &'static str,
    /// What was left to do when it came.
    left: Left,
    /// Whether the process's mailer held reminders then.
    mid_send: bool,
}

/// Uneven pauses between kills (xorshift, seeded from the clock; the seed is in the notes).
struct Jitter {
    seed: u64,
    state: u64,
}

impl Jitter {
    fn new() -> Jitter {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
        Jitter { seed, state: seed }
    }

    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        lo + (hi.saturating_sub(lo)).mul_f64((self.state % 1000) as f64 / 1000.0)
    }
}

/// One reminder row of the outbox.
struct OutboxRow {
    promise_id: Option<i64>,
    message_id: String,
    state: String,
    unknown_outcomes: i32,
}

/// What the database says once the processes stopped.
struct DbRead {
    /// Per promise: `reminders_sent`, its `reminded` audit entries, and how many of them say
    /// reminder 1.
    promises: HashMap<i64, (i32, i64, i64)>,
    emails: Vec<OutboxRow>,
    /// Emails of other kinds about a promise (an escalation), as (promise, message id).
    other_emails: Vec<(i64, String)>,
    /// Promises with more than one pending reminder ahead (each would be sent).
    next_reminders: HashMap<i64, i64>,
    dead_jobs: i64,
}

impl DbRead {
    async fn read(pool: &sqlx::PgPool) -> anyhow::Result<DbRead> {
        let promises: Vec<(i64, i32, i64, i64)> = sqlx::query_as(
            "SELECT p.id, p.reminders_sent, \
               (SELECT count(*) FROM audit_log a WHERE a.entity = 'promise' AND a.entity_id = p.id AND a.action = 'reminded'), \
               (SELECT count(*) FROM audit_log a WHERE a.entity = 'promise' AND a.entity_id = p.id AND a.action = 'reminded' \
                  AND a.detail->>'reminder' = '1') \
             FROM promises p ORDER BY p.id",
        )
        .fetch_all(pool)
        .await?;
        let emails: Vec<(Option<i64>, String, String, i32)> = sqlx::query_as(
            "SELECT promise_id, message_id, state, unknown_outcomes FROM emails WHERE kind = 'promise_reminder' ORDER BY id",
        )
        .fetch_all(pool)
        .await?;
        let other_emails: Vec<(i64, String)> = sqlx::query_as(
            "SELECT promise_id, message_id FROM emails WHERE promise_id IS NOT NULL AND kind <> 'promise_reminder' ORDER BY id",
        )
        .fetch_all(pool)
        .await?;
        let next: Vec<(i64, i64)> =
            sqlx::query_as("SELECT subject_id, count(*) FROM jobs WHERE kind = 'promise.remind' AND state = 'pending' GROUP BY subject_id")
                .fetch_all(pool)
                .await?;
        let dead_jobs = pg::count(pool, "SELECT count(*) FROM jobs WHERE kind LIKE 'promise.%' AND state = 'dead'").await?;
        Ok(DbRead {
            promises: promises.into_iter().map(|(id, sent, all, first)| (id, (sent, all, first))).collect(),
            emails: emails
                .into_iter()
                .map(|(promise_id, message_id, state, unknown_outcomes)| OutboxRow { promise_id, message_id, state, unknown_outcomes })
                .collect(),
            other_emails,
            next_reminders: next.into_iter().collect(),
            dead_jobs,
        })
    }
}

/// The final read, judged per promise.
#[derive(Debug, Default)]
struct Judged {
    /// Reminders that reached the SMTP server.
    arrived: usize,
    /// Promises missing a part of their reminder (the step's commit, the outbox row, the mail).
    lost: Vec<String>,
    /// Extra `reminded` entries, outbox rows and copies at the SMTP server.
    duplicated: usize,
    /// Copies beyond the first at the SMTP server (part of `duplicated`).
    extra_copies: usize,
    /// Extra copies the outbox's unknown outcomes account for.
    explained: usize,
    unexplained: Vec<String>,
    unexpected: Vec<String>,
    /// Copies the SMTP server took but never acknowledged (the sender died mid-transfer).
    cut: usize,
    /// Mail about the calls, not the promises.
    others: usize,
}

fn judge(expected: &BTreeMap<String, &Seen>, after: &[Seen], db: &DbRead, received: &Received) -> Judged {
    let mut j = Judged::default();
    let api: HashMap<i64, &Seen> = after.iter().map(|p| (p.id, p)).collect();
    let mut rows: HashMap<&str, Vec<&OutboxRow>> = HashMap::new();
    for e in &db.emails {
        rows.entry(e.message_id.as_str()).or_default().push(e);
    }
    let mut rows_per_promise: HashMap<i64, usize> = HashMap::new();
    for e in &db.emails {
        if let Some(p) = e.promise_id {
            *rows_per_promise.entry(p).or_default() += 1;
        }
    }
    for (id, p) in expected {
        let mut missing = Vec::new();
        let (sent, reminded, first) = db.promises.get(&p.id).copied().unwrap_or((0, 0, 0));
        if reminded == 0 {
            missing.push("no reminded audit entry");
        }
        let own = rows.get(id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        if own.is_empty() {
            missing.push("no outbox row");
        }
        let copies = received.0.get(id).cloned().unwrap_or_default();
        if copies.accepted.is_empty() {
            missing.push("never accepted by the SMTP server");
        } else {
            j.arrived += 1;
        }
        if !missing.is_empty() {
            j.lost.push(format!("promise {} of {} ({id}): {}", p.id, p.deal, missing.join(", ")));
        }
        // A step committed twice writes a second entry (and a second reminder number).
        if reminded > 1 {
            j.duplicated += (reminded - 1) as usize;
            j.unexplained.push(format!("promise {} of {}: {reminded} reminded audit entries, {first} of them reminder 1", p.id, p.deal));
        }
        let rows_of_promise = rows_per_promise.get(&p.id).copied().unwrap_or(0);
        if rows_of_promise > 1 {
            j.duplicated += rows_of_promise - 1;
            j.unexplained.push(format!("promise {} of {}: {rows_of_promise} reminder emails in the outbox", p.id, p.deal));
        }
        let api_sent = api.get(&p.id).map_or(-1, |s| s.reminders_sent);
        if sent != 1 || api_sent != 1 || (reminded > 0 && first != 1) {
            j.unexpected.push(format!(
                "promise {} of {}: reminders_sent {sent} in the database, {api_sent} through the API, {first} of {reminded} audit entries say reminder 1",
                p.id, p.deal
            ));
        }
        for r in own.iter().filter(|r| r.state != "sent") {
            j.unexpected.push(format!("{id}: the outbox row is {}", r.state));
        }
        // Each unknown outcome of the row (a send it could not know the fate of, or a lease a
        // killed mailer held) allows one more copy: the resend, with the same Message-ID.
        j.cut += copies.unknown;
        let extra = copies.total().saturating_sub(1);
        let unknown: usize = own.iter().map(|r| r.unknown_outcomes.max(0) as usize).sum();
        j.duplicated += extra;
        j.extra_copies += extra;
        j.explained += extra.min(unknown);
        if extra > unknown {
            j.unexplained.push(format!(
                "{id} arrived {} times ({} cut mid-transfer); its outbox row counts {unknown} unknown outcomes",
                copies.total(),
                copies.unknown
            ));
        }
        if db.next_reminders.get(&p.id).copied().unwrap_or(0) > 1 {
            j.unexpected.push(format!("promise {}: {} reminders pending after the day's", p.id, db.next_reminders[&p.id]));
        }
    }
    let ours: BTreeSet<i64> = expected.values().map(|p| p.id).collect();
    for e in &db.emails {
        if !expected.contains_key(&e.message_id) {
            j.unexpected.push(format!("an outbox reminder nobody expected: {} (promise {:?})", e.message_id, e.promise_id));
        }
    }
    for (promise, id) in &db.other_emails {
        j.unexpected.push(format!("an email of another kind about promise {promise}: {id}"));
    }
    for id in db.promises.keys().filter(|id| !ours.contains(id)) {
        j.unexpected.push(format!("promise {id}, which the API did not list before the minute"));
    }
    let mut strays: Vec<&String> = received.0.keys().filter(|id| !expected.contains_key(*id)).collect();
    strays.sort();
    for id in strays {
        if id.starts_with("call-") {
            j.others += received.0[id].total();
        } else {
            j.unexpected.push(format!("{id} reached the SMTP server ({} copies)", received.0[id].total()));
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn the_reminder_minute_is_a_whole_minute_at_least_the_lead_ahead() {
        let lead = LEAD.as_secs() as i64;
        for now in ["2026-12-01T10:00:00Z", "2026-12-01T10:00:00.5Z", "2026-12-01T10:00:35Z", "2026-12-01T10:00:59.999Z"] {
            let now = utc(now);
            let m = reminder_minute(now);
            assert_eq!(m.second(), 0, "{now} -> {m}");
            assert_eq!(m.nanosecond(), 0, "{now} -> {m}");
            assert!(m >= now + TimeDelta::seconds(lead), "{now} -> {m}");
            assert!(m < now + TimeDelta::seconds(lead + 60), "{now} -> {m}");
        }
        // Exactly on a minute's edge: that minute.
        assert_eq!(reminder_minute(utc("2026-12-01T10:00:00Z") - TimeDelta::seconds(lead)), utc("2026-12-01T10:00:00Z"));
        // Never 23:59 (business hours would end as they start), and past midnight the next day.
        assert_eq!(reminder_minute(utc("2026-12-01T23:58:20Z")), utc("2026-12-02T00:00:00Z"));
        assert_eq!(reminder_minute(utc("2026-12-01T23:59:50Z")), utc("2026-12-02T00:01:00Z"));
    }
}
