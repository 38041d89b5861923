//! Promise 2: every due email is sent at least once. Orders keep coming while the SMTP server
//! answers 451 after DATA, 451 at RCPT, stalls after the message (no verdict: the outcome is
//! unknown to the sender), and goes down; then it heals.
//!
//! The final read judges from outside the service: the emails expected are those the test's own
//! orders imply (each call's first email and the reminders the schedule gives it, the call ids
//! read through the API), and what arrived is what the SMTP server received. Every expected
//! email arrived; a copy arrived twice only where the server itself stalled or cut a delivery of
//! it; nothing else arrived (no reminder beyond the schedule's maximum).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use testkit::db::TestDb;
use testkit::{Mode, SmtpSink};

use crate::Ctx;
use crate::crm::{Crm, History, resend_unacknowledged, unique_orders};
use crate::mailbox::{self, Received};
use crate::report::Row;
use crate::service::{Reminders, Setup, free_port};

const ORDERS_PER_PHASE: usize = 12;
const REMINDERS: Reminders = Reminders { every_secs: Some(3), max: 2 };
const PHASES: [(Mode, u64); 6] =
    [(Mode::Accept, 2), (Mode::TempFail, 5), (Mode::StallData, 7), (Mode::TempFailAtRcpt, 3), (Mode::Down, 5), (Mode::Accept, 0)];
/// After the last reminder is due: room for retries and for an email whose send stalled, which
/// waits for its lease to run out (`mail.send_timeout_secs` + 30 s) before it is sent again.
const GRACE: Duration = Duration::from_secs(60);

pub async fn run(ctx: &Ctx, name: &'static str) -> anyhow::Result<Row> {
    let mut row = Row::new(name);
    let db = TestDb::postgres().await;
    let smtp = SmtpSink::start().await;
    let setup = Setup::new(&ctx.binary, &ctx.repo, ctx.dir("2-mail"), db.url(), smtp.port(), REMINDERS)?;
    let mut service = setup.spawn("firstcall", "serve", Some(free_port()?))?;
    service.ready(Duration::from_secs(30)).await?;
    let base = service.base_url();
    let crm = Crm::new()?;
    let history = History::default();
    let events = unique_orders("MAIL", ORDERS_PER_PHASE * PHASES.len());

    for (i, (mode, secs)) in PHASES.iter().enumerate() {
        smtp.set_mode(*mode).await;
        let batch = &events[i * ORDERS_PER_PHASE..(i + 1) * ORDERS_PER_PHASE];
        resend_unacknowledged(&crm, &base, batch, &history, 5).await?;
        tokio::time::sleep(Duration::from_secs(*secs)).await;
        row.notes.push(format!("{mode:?} for {secs} s: {} orders placed", batch.len()));
    }
    let healed = Instant::now();

    // What the orders imply: per call, its first email and every reminder up to the maximum.
    let every = Duration::from_secs(REMINDERS.every_secs.unwrap_or(0).into());
    let deals: Vec<String> = (0..events.len()).map(|i| format!("MAIL-{i}")).collect();
    let calls = mailbox::calls_of_deals(&base, &deals, Instant::now() + Duration::from_secs(60)).await?;
    let (mut expected, odd) = mailbox::first_emails(&calls, deals.iter().map(String::as_str));
    row.failures.extend(odd);
    let call_ids: Vec<i64> = deals.iter().filter_map(|d| calls.get(d)).flatten().copied().collect();
    expected.extend(call_ids.iter().flat_map(|id| (1..=REMINDERS.max).map(move |n| mailbox::message_id(*id, "reminder", n))));

    // Done when the SMTP server has every one of them: the last order's last reminder is due
    // `max` ticks after its first step; then the grace period.
    let deadline = healed + every * (REMINDERS.max + 1) + GRACE;
    let received = mailbox::wait_for(&smtp, &expected, deadline).await;
    let missing = received.missing(&expected).len();
    row.notes.push(match missing {
        0 => format!("every expected email arrived {:.1} s after healing", healed.elapsed().as_secs_f64()),
        n => format!("{n} expected emails still missing at the deadline, {:.1} s after healing", healed.elapsed().as_secs_f64()),
    });
    // A reminder beyond the maximum would be due one tick after the last one: wait two ticks
    // (and a moment for the mailer) before the final read.
    tokio::time::sleep(every * 2 + Duration::from_secs(2)).await;
    service.stop(Duration::from_secs(10)).await;

    let received = Received::read(&smtp);
    let judged = mailbox::judge(&received, &expected, |_| 0);
    row.sent = judged.expected;
    row.acknowledged = judged.arrived;
    row.lost = judged.lost.len();
    row.duplicated = judged.duplicated;
    row.unexplained = judged.unexplained.len();
    row.unknown = judged.unknown;
    row.unexpected = judged.unexpected.len();
    judged.fail_into(&mut row, "expected emails");

    // Every delivery the server left without a verdict is one the service must have noticed.
    let log = service.log_text();
    let unknown_ids: BTreeSet<&String> = received.0.iter().filter(|(_, c)| c.unknown > 0).map(|(id, _)| id).collect();
    let unlogged: Vec<&&String> = unknown_ids
        .iter()
        .filter(|id| !log.lines().any(|l| l.contains("outcome unknown") && l.contains(&format!("message_id={id}"))))
        .collect();
    row.notes.push(format!(
        "{} calls, {} emails expected; the server refused {} times, stalled {} deliveries and accepted {} messages",
        call_ids.len(),
        expected.len(),
        smtp.refusals(),
        smtp.unknown_outcomes(),
        smtp.messages().len()
    ));
    row.check(smtp.unknown_outcomes() > 0, "no delivery stalled: the unknown-outcome path was not exercised");
    row.check(smtp.refusals() > 0, "the server refused nothing: the retry path was not exercised");
    row.check(unlogged.is_empty(), format!("unknown outcomes not logged for {unlogged:?}"));
    Ok(row.finish())
}
