//! Promise 1: every signed event that got a 2xx ends in exactly one call. Several thousand
//! unique order events, each delivered one to three times at once, while the service is killed
//! with SIGKILL and restarted several times; events never acknowledged are re-sent, as a CRM
//! would. The final read counts calls per deal, and reads the SMTP server for every
//! acknowledged order's first email (call ids through the API): a call left without its first
//! step, or an email left unsent, shows there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use testkit::SmtpSink;
use testkit::db::TestDb;

use crate::Ctx;
use crate::crm::{Crm, History, deal_of, resend_unacknowledged, unique_orders};
use crate::mailbox;
use crate::report::Row;
use crate::service::{Reminders, Setup, free_port};

/// The service runs at least this long between kills, so each restart gets to store and apply.
const MIN_UP: Duration = Duration::from_millis(500);
const MAX_KILLS: usize = 6;
const MIN_KILLS: usize = 3;

pub async fn run(ctx: &Ctx, name: &'static str) -> anyhow::Result<Row> {
    let mut row = Row::new(name);
    let db = TestDb::postgres().await;
    let smtp = SmtpSink::start().await;
    let setup = Setup::new(&ctx.binary, &ctx.repo, ctx.dir("1-acked-events"), db.url(), smtp.port(), Reminders::NEVER)?;
    let port = free_port()?;
    let mut service = setup.spawn("firstcall", "serve", Some(port))?;
    service.ready(Duration::from_secs(30)).await?;
    let base = service.base_url();

    let events = unique_orders("KILL", ctx.events);
    let history = History::default();
    let crm = Crm::new()?;
    let load_done = AtomicBool::new(false);
    let load = async {
        let sends = events.iter().enumerate().map(|(i, (id, body))| {
            let (crm, history, base) = (&crm, &history, &base);
            async move {
                // One to three copies of each event, all at once, as a CRM retrying eagerly; while
                // none is acknowledged, the CRM tries again a little later.
                let copies = 1 + (i.wrapping_mul(2_654_435_761) >> 7) % 3;
                for attempt in 1..=5u64 {
                    let deliveries = (0..copies).map(|_| crm.deliver(base, body));
                    for (outcome, _) in futures_util::future::join_all(deliveries).await {
                        history.record(id, outcome);
                    }
                    if history.acknowledged(id) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        });
        futures_util::stream::iter(sends).buffer_unordered(16).collect::<Vec<()>>().await;
        load_done.store(true, Ordering::SeqCst);
    };
    let killer = async {
        let mut kills = Vec::new();
        while kills.len() < MAX_KILLS && !load_done.load(Ordering::SeqCst) {
            // Kills are spread over the load by its progress, whatever the service's speed: the
            // k-th comes once k sevenths of the events are acknowledged.
            tokio::time::sleep(MIN_UP).await;
            let due = (kills.len() + 1) * events.len() / (MAX_KILLS + 1);
            while history.tally().acknowledged < due && !load_done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if load_done.load(Ordering::SeqCst) {
                break;
            }
            service.kill();
            kills.push(Instant::now());
            tokio::time::sleep(Duration::from_millis(300)).await;
            service = setup.spawn("firstcall", "serve", Some(port))?;
            service.ready(Duration::from_secs(30)).await?;
        }
        anyhow::Ok(kills)
    };
    let ((), kills) = tokio::join!(load, killer);
    let kills = kills?;
    let during = history.tally();
    resend_unacknowledged(&crm, &base, &events, &history, 20).await?;

    // Every acknowledged order's first email reaches the SMTP server. An email being sent when
    // the service was killed waits for its lease to run out (send timeout + 30 s).
    let waiting = Instant::now();
    let deals: Vec<String> = events.iter().map(|(id, _)| id).filter(|id| history.acknowledged(id)).map(|id| deal_of(id)).collect();
    let calls = mailbox::calls_of_deals(&base, &deals, waiting + Duration::from_secs(60)).await?;
    let (expected, _) = mailbox::first_emails(&calls, deals.iter().map(String::as_str));
    let received = mailbox::wait_for(&smtp, &expected, waiting + Duration::from_secs(60)).await;
    // A copy accepted just before a SIGKILL may never have been recorded as sent, so it goes out
    // again: an extra copy is explained when a kill fell between it and the one before.
    let judged = mailbox::judge(&received, &expected, |copies| {
        copies.accepted.windows(2).filter(|w| kills.iter().any(|k| *k > w[0] && *k <= w[1])).count()
    });
    row.notes.push(judged.summary("first emails", waiting));
    judged.fail_into(&mut row, "first emails");

    let pool = crate::pg::pool(db.url()).await?;
    super::read_calls(&mut row, &pool, &[("KILL", events.len())], &history).await?;
    let stored = crate::pg::count(&pool, "SELECT count(*) FROM webhook_events").await?;
    let t = history.tally();
    row.notes.push(format!(
        "{} events, {} deliveries during the load: {} ok, {} failed, {} unknown; {} re-sent afterwards",
        events.len(),
        during.operations,
        during.ok,
        during.failed,
        during.unknown,
        t.operations - during.operations
    ));
    let kills = kills.len();
    row.notes.push(format!("service killed with SIGKILL and restarted {kills} times during the load"));
    for r in history.unknown_reasons() {
        row.notes.push(format!("unknown outcome, e.g.: {r}"));
    }
    row.check(kills >= MIN_KILLS, format!("only {kills} kills happened during the load; send more events (--events)"));
    row.check(stored as usize == events.len(), format!("{stored} webhook events stored for {} unique events", events.len()));
    service.stop(Duration::from_secs(10)).await;
    Ok(row.finish())
}
