//! Promise 3: PostgreSQL stops during load (`pg_ctl stop -m immediate` on a cluster this test
//! owns). Webhooks answer 503 so the CRM retries, the service does not crash, and when the
//! database is back it recovers by itself (same process, no restart): intake answers 2xx again,
//! and the engine and mailer finish the work that was waiting. The final read counts calls per
//! deal, and reads the SMTP server for the first email of every acknowledged order's call (call
//! ids through the API): each arrived exactly once, unless the server stalled or cut a delivery
//! of it, or its first copy arrived while PostgreSQL was down (the mailer could not record it).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use testkit::SmtpSink;

use crate::Ctx;
use crate::crm::{Crm, History, Outcome, deal_of, resend_unacknowledged, unique_orders};
use crate::mailbox;
use crate::pg::OwnedCluster;
use crate::report::Row;
use crate::service::{Reminders, Setup, free_port};

const EVENTS: usize = 600;
const OUTAGE: Duration = Duration::from_secs(8);

pub async fn run(ctx: &Ctx, name: &'static str) -> anyhow::Result<Row> {
    let mut row = Row::new(name);
    let cluster = OwnedCluster::create(free_port()?)?;
    let admin = crate::pg::pool(&cluster.url("postgres")).await?;
    sqlx::raw_sql("CREATE DATABASE firstcall").execute(&admin).await?;
    admin.close().await;
    let smtp = SmtpSink::start().await;
    let url = cluster.url("firstcall");
    let mut setup = Setup::new(&ctx.binary, &ctx.repo, ctx.dir("3-database-outage"), &url, smtp.port(), Reminders::NEVER)?;
    // A request waits this long for a connection before answering 503.
    setup.set("FIRSTCALL__DATABASE__CONNECT_TIMEOUT_SECS", 1);
    let mut service = setup.spawn("firstcall", "serve", Some(free_port()?))?;
    service.ready(Duration::from_secs(30)).await?;
    let base = service.base_url();
    let pid = service.pid();

    let crm = Crm::new()?;
    let history = History::default();
    let events = unique_orders("PGDOWN", EVENTS);
    let probes = unique_orders("PGPROBE", 40);
    let load_done = AtomicBool::new(false);
    let load = async {
        let sends = events.iter().map(|(id, body)| {
            let (crm, history, base) = (&crm, &history, &base);
            async move {
                let (outcome, _) = crm.deliver(base, body).await;
                history.record(id, outcome);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        });
        futures_util::stream::iter(sends).buffer_unordered(4).collect::<Vec<()>>().await;
        load_done.store(true, Ordering::SeqCst);
    };
    let faults = async {
        let mut observed = Observed::default();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.stop_immediate()?;
        let stopped = Instant::now();
        observed.down = Some(stopped);
        let mut probe = probes.iter();
        while stopped.elapsed() < OUTAGE {
            if let Some((id, body)) = probe.next() {
                let (outcome, status) = crm.deliver(&base, body).await;
                history.record(id, outcome);
                observed.outage_statuses.push(status);
            }
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                observed.readyz_during.insert(r.status().as_u16());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        observed.alive_during = service_alive(pid);
        cluster.start()?;
        let restarted = Instant::now();
        observed.up = Some(restarted);
        // Recovery: the same process answers 2xx again, without being restarted.
        for (id, body) in probe.by_ref() {
            let (outcome, _) = crm.deliver(&base, body).await;
            let ok = outcome == Outcome::Ok;
            history.record(id, outcome);
            if ok {
                observed.recovered_after = Some(restarted.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        anyhow::Ok(observed)
    };
    let ((), observed) = tokio::join!(load, faults);
    let observed = observed?;
    let all: Vec<(String, Vec<u8>)> = events.iter().chain(probes.iter()).cloned().collect();
    let during = history.tally();
    resend_unacknowledged(&crm, &base, &all, &history, 20).await?;
    let acknowledged: Vec<String> = all.iter().map(|(id, _)| id).filter(|id| history.acknowledged(id)).map(|id| deal_of(id)).collect();

    // The engine and mailer recovered too: every call's first email arrives at the SMTP server.
    // (Emails claimed when the database vanished wait for their lease to run out: send timeout
    // + 30 s.)
    let waiting = Instant::now();
    let calls = mailbox::calls_of_deals(&base, &acknowledged, waiting + Duration::from_secs(60)).await?;
    let (expected, odd) = mailbox::first_emails(&calls, acknowledged.iter().map(String::as_str));
    row.failures.extend(odd.into_iter().take(5));
    let received = mailbox::wait_for(&smtp, &expected, waiting + Duration::from_secs(60)).await;
    // A copy accepted just before or while PostgreSQL was down may never have been recorded as
    // sent, so it goes out again: the window starts one send timeout before the stop.
    let outage = observed.down.zip(observed.up).map(|(down, up)| (down.checked_sub(Duration::from_secs(2)).unwrap_or(down), up));
    let judged = mailbox::judge(&received, &expected, |copies| {
        let n = copies.accepted.len().saturating_sub(1);
        copies.accepted[..n].iter().filter(|at| outage.is_some_and(|(from, to)| **at >= from && **at <= to)).count()
    });
    let pool = crate::pg::pool(&url).await?;
    row.notes.push(judged.summary("first emails", waiting));
    super::read_calls(&mut row, &pool, &[("PGDOWN", EVENTS), ("PGPROBE", probes.len())], &history).await?;

    let answered_503 = observed.outage_statuses.iter().filter(|s| **s == Some(503)).count();
    row.notes.push(format!(
        "{} deliveries during the load: {} ok, {} failed, {} unknown; PostgreSQL down for {OUTAGE:?}",
        during.operations, during.ok, during.failed, during.unknown
    ));
    row.notes
        .push(format!("webhooks during the outage answered {:?}; /readyz answered {:?}", observed.outage_statuses, observed.readyz_during));
    row.check(answered_503 >= 3 && answered_503 == observed.outage_statuses.len(), "webhooks did not answer 503 throughout the outage");
    row.check(observed.readyz_during == HashSet::from([503]), "/readyz did not answer 503 during the outage");
    row.check(observed.alive_during && service.alive() && service.pid() == pid, "the service crashed");
    match observed.recovered_after {
        Some(d) => row.notes.push(format!("webhooks answered 2xx again {:.1} s after PostgreSQL was back", d.as_secs_f64())),
        None => row.failures.push("webhooks never answered 2xx again after PostgreSQL was back".into()),
    }
    judged.fail_into(&mut row, "first emails");
    service.stop(Duration::from_secs(10)).await;
    Ok(row.finish())
}

#[derive(Default)]
struct Observed {
    outage_statuses: Vec<Option<u16>>,
    readyz_during: HashSet<u16>,
    alive_during: bool,
    recovered_after: Option<Duration>,
    down: Option<Instant>,
    up: Option<Instant>,
}

fn service_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}
