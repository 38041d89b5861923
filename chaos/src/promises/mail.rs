//! Promise 2: every due email is sent at least once. Orders keep coming while the SMTP server
//! answers 451 after DATA, 451 at RCPT, stalls after the message (no verdict: the outcome is
//! unknown to the sender), and goes down; then it heals. The final read compares the outbox with
//! what the server received, by `Message-ID`: every email arrived, and an email arrived more than
//! once only where the mailer recorded (and logged) an unknown outcome for it.

use std::collections::HashMap;
use std::time::Duration;

use testkit::db::TestDb;
use testkit::{Mode, SmtpSink};

use crate::Ctx;
use crate::crm::{Crm, History, resend_unacknowledged, unique_orders};
use crate::report::Row;
use crate::service::{Reminders, Setup, free_port};

const ORDERS_PER_PHASE: usize = 12;
const REMINDERS: Reminders = Reminders { every_secs: Some(3), max: 2 };
const PHASES: [(Mode, u64); 6] =
    [(Mode::Accept, 2), (Mode::TempFail, 5), (Mode::StallData, 7), (Mode::TempFailAtRcpt, 3), (Mode::Down, 5), (Mode::Accept, 0)];

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

    // Healed: wait until every call had all its reminders and nothing is left to send.
    let pool = crate::pg::pool(db.url()).await?;
    let calls = events.len() as i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let reminded = crate::pg::count(&pool, &format!("SELECT count(*) FROM calls WHERE reminders_sent >= {}", REMINDERS.max)).await?;
        let pending = crate::pg::count(&pool, "SELECT count(*) FROM emails WHERE state = 'pending'").await?;
        if reminded == calls && pending == 0 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            row.failures
                .push(format!("after healing, {reminded}/{calls} calls had their reminders and {pending} emails were still pending"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    service.stop(Duration::from_secs(10)).await;

    // The final read: the outbox against what arrived.
    let outbox: Vec<(String, String, i32, i32)> =
        sqlx::query_as("SELECT message_id, state, unknown_outcomes, attempts FROM emails").fetch_all(&pool).await?;
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut stalled: HashMap<String, usize> = HashMap::new();
    for (map, captured) in [(&mut accepted, smtp.messages()), (&mut stalled, smtp.stalled())] {
        for m in captured {
            *map.entry(m.parse().message_id.unwrap_or_default()).or_default() += 1;
        }
    }
    let log = service.log_text();
    let mut unlogged = Vec::new();
    for (id, state, unknown, _) in &outbox {
        let arrived = accepted.get(id).copied().unwrap_or(0);
        let copies = arrived + stalled.get(id).copied().unwrap_or(0);
        row.sent += 1;
        row.acknowledged += usize::from(state == "sent");
        row.unknown += *unknown as usize;
        if arrived == 0 || state != "sent" {
            row.lost += 1;
            row.failures.push(format!("{id} is {state} and arrived {arrived} times"));
        }
        let duplicates = copies.saturating_sub(1);
        row.duplicated += duplicates;
        row.unexplained += duplicates.saturating_sub(*unknown as usize);
        if *unknown > 0 && !log.lines().any(|l| l.contains("outcome unknown") && l.contains(&format!("message_id={id}"))) {
            unlogged.push(id.clone());
        }
    }
    row.unexpected = accepted.keys().chain(stalled.keys()).filter(|id| !outbox.iter().any(|(o, ..)| o == *id)).count();
    let attempts: i64 = outbox.iter().map(|o| o.3 as i64).sum();
    row.notes.push(format!(
        "{} emails in the outbox, {attempts} delivery attempts; the server stalled {} times and accepted {} messages",
        outbox.len(),
        smtp.unknown_outcomes(),
        smtp.messages().len()
    ));
    row.check(smtp.unknown_outcomes() > 0, "no delivery stalled: the unknown-outcome path was not exercised");
    row.check(attempts > outbox.len() as i64, "no delivery was retried: the faults were not exercised");
    row.check(unlogged.is_empty(), format!("unknown outcomes not logged for {unlogged:?}"));
    Ok(row.finish())
}
