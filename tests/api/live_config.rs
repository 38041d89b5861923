//! Sales ops edit `config/` while firstcall runs: a reload puts an edit in force (or refuses it
//! and keeps what runs), re-plans the open calls the edit moves, and each process says which
//! version it runs.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::helpers::*;

const REP: &str = "ana@seller.example";
const DEFAULT_CRON: &str = r#"reminder_cron = "0 9,14 * * 1-5""#;

/// A config directory of the test's own: the repository's `default.toml`, to edit.
fn config_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(config_dir().join("default.toml"), dir.path().join("default.toml")).unwrap();
    dir
}

/// Replaces `from` with `to` in the directory's `default.toml` (which must contain it).
fn edit(dir: &tempfile::TempDir, from: &str, to: &str) {
    let path = dir.path().join("default.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "default.toml has no {from}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

/// What this thread logs from now until the guard is dropped.
fn capture_log() -> (Log, tracing::subscriber::DefaultGuard) {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    (log, tracing::subscriber::set_default(subscriber))
}

#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn with_dir(dir: &tempfile::TempDir) -> Options {
    Options { config_dir: Some(dir.path().to_path_buf()), ..Options::default() }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A won order of `amount` USD for the rep.
fn order(id: &str, deal: &str, amount: &str, now: DateTime<Utc>) -> Value {
    let mut o = order_created(id, deal, REP, now);
    o["order"]["amount"] = json!(amount);
    o
}

/// The pending timer of `kind` for call `id`, if any.
async fn timer(app: &TestApp, id: &str, kind: &str) -> Option<DateTime<Utc>> {
    let sql = format!("SELECT CAST(run_at AS TEXT) FROM jobs WHERE subject_id = {id} AND kind = '{kind}'");
    app.column(&sql).await.first().map(|t| db_time(t))
}

/// A time as either database writes it as text.
fn db_time(t: &str) -> DateTime<Utc> {
    let t = t.replace(' ', "T");
    let t = if t.ends_with("+00") {
        format!("{t}:00")
    } else if t.contains('+') || t.ends_with('Z') {
        t
    } else {
        format!("{t}Z")
    };
    at(&t)
}

async fn call_ids(app: &TestApp) -> (String, String) {
    let ids = app.column("SELECT id FROM calls ORDER BY id").await;
    (ids[0].clone(), ids[1].clone())
}

#[tokio::test]
async fn a_reminder_cron_edit_reloaded_moves_the_next_reminder_of_exactly_the_calls_the_preview_listed() {
    let dir = config_copy();
    let app = TestApp::spawn_with(with_dir(&dir)).await;
    let v1 = app.state.first_call.get().config_version.clone();
    // The rep works in Berlin (UTC+1). Monday 09:00 UTC, 10:00 there: a 12,000 USD order
    // follows "default" (reminders at 9 and 14 local), a 60,000 USD one "enterprise" (9, 13
    // and 16 local).
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana", "timezone": "Europe/Berlin"})).await.status(), 200);
    assert_eq!(app.post_generic(&order("e1", "D-1", "12000.00", app.now())).await.status(), 200);
    assert_eq!(app.post_generic(&order("e2", "D-2", "60000.00", app.now())).await.status(), 200);
    app.settle().await;
    let (default_call, enterprise_call) = call_ids(&app).await;
    assert_eq!(timer(&app, &default_call, "call.remind").await, Some(at("2026-11-23T13:00:00Z")));
    assert_eq!(timer(&app, &enterprise_call, "call.remind").await, Some(at("2026-11-23T12:00:00Z")));

    edit(&dir, DEFAULT_CRON, r#"reminder_cron = "30 10,15 * * 1-5""#);
    // The preview against what runs names the key and the one call that moves, in its rep's
    // timezone.
    let edited = test_config(app.db.url(), app.smtp.port(), &with_dir(&dir));
    let preview = firstcall::cli::compare_with_running(&edited, app.now()).await.unwrap();
    assert!(preview.contains(r#"schedule "default": reminder_cron: "0 9,14 * * 1-5" -> "30 10,15 * * 1-5""#), "{preview}");
    assert!(preview.contains("open calls that move: 1 "), "{preview}");
    assert!(
        preview.contains(&format!(
            "call {default_call} ({REP}, schedule \"default\", Europe/Berlin): next reminder Mon 2026-11-23 14:00 CET -> Mon 2026-11-23 10:30 CET"
        )),
        "{preview}"
    );
    assert!(!preview.contains(&format!("call {enterprise_call} ")), "{preview}");

    // SIGHUP (the same reload): the edit runs, and the engine re-plans the open calls.
    let reloaded = app.reloader.reload("SIGHUP").await.unwrap();
    let firstcall::reload::Reloaded::Accepted { from, to: v2, replanned, .. } = reloaded else { panic!("{reloaded:?}") };
    assert_eq!((from.as_str(), replanned), (v1.as_str(), vec!["default".to_string()]));
    assert_eq!(app.state.first_call.get().config_version, v2);
    app.run_jobs().await;
    assert_eq!(timer(&app, &default_call, "call.remind").await, Some(at("2026-11-23T09:30:00Z")));
    assert_eq!(timer(&app, &enterprise_call, "call.remind").await, Some(at("2026-11-23T12:00:00Z")));
    let replanned = app.column("SELECT CAST(entity_id AS TEXT) FROM audit_log WHERE action = 'replanned' ORDER BY id").await;
    assert_eq!(replanned, std::slice::from_ref(&default_call), "exactly the calls the preview listed");
    let detail = app.column("SELECT CAST(detail AS TEXT) FROM audit_log WHERE action = 'replanned'").await;
    let detail: Value = serde_json::from_str(&detail[0]).unwrap();
    assert_eq!(detail["config_version"], json!(v2), "{detail}");

    // The reminder goes at the new time, and names the version it was planned under.
    app.advance(TimeDelta::minutes(30));
    app.settle().await;
    let reminders: Vec<_> = app.mails_to(REP).into_iter().filter(|m| m.message_id.as_deref().unwrap().contains(".reminder.")).collect();
    assert_eq!(
        reminders.len(),
        1,
        "the default call's, at 10:30 in Berlin: {:?}",
        app.mails_to(REP).iter().map(|m| &m.message_id).collect::<Vec<_>>()
    );
    assert!(reminders.iter().any(|m| m.message_id.as_deref().unwrap().contains(&format!("call-{default_call}.reminder.1@"))));
    let versions = app.column("SELECT CAST(detail AS TEXT) FROM audit_log WHERE action = 'reminded'").await;
    assert!(versions[0].contains(&v2), "{versions:?}");
    // Loading the same files again changes nothing and re-plans nothing.
    let again = app.reloader.reload("SIGHUP").await.unwrap();
    assert!(matches!(again, firstcall::reload::Reloaded::Unchanged { ref version, .. } if *version == v2), "{again:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_edit_is_refused_with_file_key_and_reason_and_the_running_schedules_stay() {
    let dir = config_copy();
    let app = TestApp::spawn_with(with_dir(&dir)).await;
    let v1 = app.state.first_call.get().config_version.clone();
    app.post_generic(&order("e1", "D-1", "12000.00", app.now())).await;
    app.settle().await;
    let (call, _) = (app.column("SELECT id FROM calls").await[0].clone(), ());

    edit(&dir, DEFAULT_CRON, r#"reminder_cron = "every monday""#);
    let refused = app.reloader.reload("SIGHUP").await.unwrap_err().to_string();
    assert!(refused.contains("default.toml"), "names the file: {refused}");
    assert!(
        refused.contains("schedules") && refused.contains("(default)") && refused.contains("reminder_cron"),
        "names the key: {refused}"
    );
    assert_eq!(app.state.first_call.get().config_version, v1, "the running configuration stays");
    app.run_jobs().await;
    assert_eq!(timer(&app, &call, "call.remind").await, Some(at("2026-11-23T14:00:00Z")), "nothing re-planned");

    // The dashboard says so, with the reason.
    let page = app.api(reqwest::Method::GET, "/").send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Edit refused at"), "{page}");
    assert!(page.contains("reminder_cron"), "{page}");

    // A template that does not render is refused too, naming the template.
    edit(&dir, r#"reminder_cron = "every monday""#, DEFAULT_CRON);
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("templates").join("reminder.txt"), "Hi {{ rep_name }\n").unwrap();
    let refused = app.reloader.reload("a file under config/ changed").await.unwrap_err().to_string();
    assert!(refused.starts_with("templates: ") && refused.contains("reminder.txt"), "{refused}");
    assert_eq!(app.state.first_call.get().config_version, v1);

    // Mended, the edit loads (nothing changed: the same version) and the refusal goes away.
    std::fs::remove_file(dir.path().join("templates").join("reminder.txt")).unwrap();
    let mended = app.reloader.reload("SIGHUP").await.unwrap();
    assert!(matches!(mended, firstcall::reload::Reloaded::Unchanged { .. }), "{mended:?}");
    let page = app.api(reqwest::Method::GET, "/").send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Edit refused at"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn a_process_that_was_not_reloaded_shows_its_version_and_warns_after_a_minute() {
    let dir = config_copy();
    let app = TestApp::spawn_with(with_dir(&dir)).await;
    let worker = app.another_worker(&with_dir(&dir)).await;
    let v1 = app.state.first_call.get().config_version.clone();

    edit(&dir, DEFAULT_CRON, r#"reminder_cron = "0 10,15 * * 1-5""#);
    let firstcall::reload::Reloaded::Accepted { to: v2, .. } = app.reloader.reload("SIGHUP").await.unwrap() else { panic!() };
    assert_eq!(worker.reloader.beat().await.unwrap(), None, "within a minute of the new version, no warning");

    app.advance(TimeDelta::seconds(61));
    assert_eq!(app.reloader.beat().await.unwrap(), None, "the reloaded process runs the newest");
    let (log, _capture) = capture_log();
    assert_eq!(worker.reloader.beat().await.unwrap(), Some(v2.clone()), "the other one says it runs an older version");
    let said = log.text();
    assert!(
        said.contains(&format!("this process runs configuration version {v1}, but")) && said.contains(&format!("has run {v2} since")),
        "{said}"
    );
    worker.reloader.beat().await.unwrap();
    assert_eq!(log.text().matches("this process runs configuration version").count(), 1, "said once per newest version");
    let metrics = worker.state.metrics.encode();
    assert!(metrics.contains("firstcall_config_stale 1"), "{metrics}");
    assert!(app.state.metrics.encode().contains("firstcall_config_stale 0"));

    // The dashboard lists both, each with its version; the worker's is marked stale.
    let page = app.api(reqwest::Method::GET, "/").send().await.unwrap().text().await.unwrap();
    let processes = &page[page.find(r#"id="processes""#).expect("the processes table")..];
    assert!(processes.contains(&format!("<code>{v2}</code>")) && processes.contains(&format!("<code>{v1}</code>")), "{processes}");
    assert!(processes.contains(&format!("stale: the newest is {v2}")), "{processes}");
    assert_eq!(processes.matches("stale: the newest").count(), 1, "{processes}");

    // Reloaded in turn, it is current again.
    worker.reloader.reload("SIGHUP").await.unwrap();
    assert_eq!(worker.reloader.beat().await.unwrap(), None);
    assert!(worker.state.metrics.encode().contains("firstcall_config_stale 0"));

    // A replica restarted later with the old files does not make the old version the newest:
    // it is the stale one, and it re-plans nothing.
    let old_files = config_copy();
    app.advance(TimeDelta::seconds(5));
    let replans = || app.column("SELECT CAST(payload AS TEXT) FROM jobs WHERE kind = 'config.replan'");
    let before = replans().await;
    let old = app.another_worker(&with_dir(&old_files)).await;
    assert_eq!(old.state.first_call.get().config_version, v1);
    assert_eq!(replans().await, before, "no re-plan back to the old schedules");
    app.advance(TimeDelta::seconds(61));
    assert_eq!(app.reloader.beat().await.unwrap(), None);
    assert_eq!(worker.reloader.beat().await.unwrap(), None);
    assert_eq!(old.reloader.beat().await.unwrap(), Some(v2.clone()));
    app.stop().await;
}

#[tokio::test]
async fn a_due_time_edit_moves_the_due_time_of_open_calls_and_sends_the_updated_invite() {
    let dir = config_copy();
    let app = TestApp::spawn_with(with_dir(&dir)).await;
    app.post_generic(&order("e1", "D-1", "12000.00", app.now())).await;
    app.settle().await;
    let call = app.column("SELECT id FROM calls").await[0].clone();
    // Due 4 business hours after 09:00; the edit gives 6 (the invite ends at the due time).
    let path = format!("/api/v1/calls/{call}");
    let due = || app.get_json(&path);
    assert_eq!(due().await["due_at"], json!("2026-11-23T13:00:00Z"));
    edit(&dir, "due_within_business_hours = 4", "due_within_business_hours = 6");
    let edited = test_config(app.db.url(), app.smtp.port(), &with_dir(&dir));
    let preview = firstcall::cli::compare_with_running(&edited, app.now()).await.unwrap();
    assert!(
        preview.contains(&format!("call {call} ")) && preview.contains("due Mon 2026-11-23 13:00 UTC -> Mon 2026-11-23 15:00 UTC"),
        "{preview}"
    );

    app.reloader.reload("SIGHUP").await.unwrap();
    app.settle().await;
    assert_eq!(due().await["due_at"], json!("2026-11-23T15:00:00Z"));
    let invites: Vec<_> = app.mails_to(REP).into_iter().filter_map(|m| m.calendar).collect();
    assert_eq!(invites.len(), 2, "the first invite and the updated one");
    assert!(invites[1].body.contains("SEQUENCE:1") && invites[1].body.contains("DTEND;TZID=UTC:20261123T150000"), "{}", invites[1].body);
    // The call becomes overdue at the new time, not the old one.
    app.advance(TimeDelta::hours(5));
    app.settle().await;
    assert_eq!(due().await["state"], json!("due"));
    app.advance(TimeDelta::hours(1));
    app.settle().await;
    assert_eq!(due().await["state"], json!("overdue"));
    app.stop().await;
}

#[tokio::test]
async fn a_process_started_with_an_edit_replans_open_calls_once_and_an_older_process_leaves_it_to_it() {
    let dir = config_copy();
    let app = TestApp::spawn_with(with_dir(&dir)).await;
    app.post_generic(&order("e1", "D-1", "12000.00", app.now())).await;
    app.settle().await;
    let call = app.column("SELECT id FROM calls").await[0].clone();
    edit(&dir, DEFAULT_CRON, r#"reminder_cron = "30 10,15 * * 1-5""#);
    // A rolling restart: a worker with the edit starts while the old serve still runs.
    app.advance(TimeDelta::seconds(1));
    let worker = app.another_worker(&with_dir(&dir)).await;
    let v2 = worker.state.first_call.get().config_version.clone();
    // The old process finds the re-plan job of a version it does not run, loaded after its own:
    // it leaves it (for 30 s) to a process that runs it.
    app.run_jobs().await;
    assert_eq!(timer(&app, &call, "call.remind").await, Some(at("2026-11-23T14:00:00Z")));
    app.advance(TimeDelta::seconds(31));
    worker.engine.run_due().await.unwrap();
    assert_eq!(timer(&app, &call, "call.remind").await, Some(at("2026-11-23T10:30:00Z")));
    let replanned = app.column("SELECT CAST(detail AS TEXT) FROM audit_log WHERE action = 'replanned'").await;
    assert_eq!(replanned.len(), 1, "{replanned:?}");
    assert!(replanned[0].contains(&v2), "{replanned:?}");
    // The re-plan of a version no running process has is dropped, not retried for ever.
    let gone = firstcall::workflow::replan::job("v0000000000ff", vec!["default".into()], app.now());
    firstcall::engine::enqueue(&app.state.db, gone, 3, app.now()).await.unwrap();
    app.run_jobs().await;
    assert_eq!(app.column("SELECT COUNT(*) FROM jobs WHERE kind = 'config.replan'").await, ["0"]);
    assert_eq!(app.column("SELECT COUNT(*) FROM audit_log WHERE action = 'replanned'").await, ["1"]);
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_previews_a_pasted_edit_against_what_runs_and_explains_one_it_cannot_read() {
    use crate::pages::{get, log_in, post_form};
    let app = TestApp::spawn().await;
    app.post_generic(&order("e1", "D-1", "12000.00", app.now())).await;
    app.settle().await;
    let call = app.column("SELECT id FROM calls").await[0].clone();
    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);
    let board = get(&app, "/").await;
    assert!(board.html.contains(r#"id="edit-form""#));

    // The schedules as written in default.toml, with the default schedule's cron edited.
    let file = std::fs::read_to_string(config_dir().join("default.toml")).unwrap();
    let schedules = &file[file.find("[[schedules]]").unwrap()..];
    let edited = schedules.replace(DEFAULT_CRON, r#"reminder_cron = "30 10,15 * * 1-5""#);
    let page = post_form(&app.client, &app, "/dashboard/preview", &[("csrf", &board.csrf()), ("schedules", &edited)]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let report = page.html.replace("&quot;", "\"").replace("&gt;", ">");
    assert!(report.contains(r#"schedule "default": reminder_cron: "0 9,14 * * 1-5" -> "30 10,15 * * 1-5""#), "{report}");
    assert!(
        report.contains(&format!(
            "call {call} ({REP}, schedule \"default\", UTC): next reminder Mon 2026-11-23 14:00 UTC -> Mon 2026-11-23 10:30 UTC"
        )),
        "{report}"
    );
    // A preview changes nothing.
    assert_eq!(timer(&app, &call, "call.remind").await, Some(at("2026-11-23T14:00:00Z")));
    assert_eq!(app.column("SELECT COUNT(*) FROM config_versions").await, ["1"]);

    // A schedule it cannot read: 400, the key and the reason, the text kept for mending.
    let broken = schedules.replace(DEFAULT_CRON, r#"reminder_cron = "every monday""#);
    let page = post_form(&app.client, &app, "/dashboard/preview", &[("csrf", &board.csrf()), ("schedules", &broken)]).await;
    assert_eq!(page.status, 400);
    let error = &page.html[page.html.find(r#"id="edit-error""#).expect("the error")..];
    assert!(error.contains("the pasted schedules: schedules: [1] (default): reminder_cron"), "{error}");
    assert!(page.html.contains("every monday"), "the pasted text stays in the form");
    // Without the CSRF token, nothing is read.
    let page = post_form(&app.client, &app, "/dashboard/preview", &[("schedules", &edited)]).await;
    assert_eq!(page.status, 403);
    app.stop().await;
}

#[tokio::test]
async fn the_replan_goes_through_the_open_calls_in_batches_and_moves_each_once() {
    let dir = config_copy();
    // Two calls per transaction: five calls take three runs of the job.
    let opts = Options { overrides: vec![("engine.batch_size", json!(2))], ..with_dir(&dir) };
    let app = TestApp::spawn_with(opts.clone()).await;
    for i in 1..=5 {
        app.post_generic(&order(&format!("e{i}"), &format!("D-{i}"), "12000.00", app.now())).await;
    }
    app.settle().await;
    let ids = app.column("SELECT id FROM calls ORDER BY id").await;
    assert_eq!(ids.len(), 5);
    edit(&dir, DEFAULT_CRON, r#"reminder_cron = "30 10,15 * * 1-5""#);
    // A preview that may examine only two calls says so (as the dashboard does past its limit).
    let running = app.state.first_call.get().config.schedule_content();
    let edited = test_config(app.db.url(), app.smtp.port(), &opts);
    let preview = |list: usize, examine: usize| {
        firstcall::workflow::preview::moves_text(&app.state.db, &running, &edited, app.now(), list, Some(examine))
    };
    let capped = preview(50, 2).await.unwrap();
    assert!(capped.contains("open calls that move: 2 "), "{capped}");
    assert!(capped.contains("only the first 2 open calls of the changed schedules were examined"), "{capped}");
    let all = preview(50, 5).await.unwrap();
    assert!(all.contains("open calls that move: 5 ") && !all.contains("only the first"), "{all}");
    // Listed one by one up to the limit, the rest counted.
    let listed = preview(2, 5).await.unwrap();
    assert_eq!(listed.lines().filter(|l| l.trim_start().starts_with("call ")).count(), 2, "{listed}");
    assert!(listed.contains("open calls that move: 5 ") && listed.contains("    ... and 3 more"), "{listed}");
    app.reloader.reload("SIGHUP").await.unwrap();
    app.settle().await;
    for id in &ids {
        assert_eq!(timer(&app, id, "call.remind").await, Some(at("2026-11-23T10:30:00Z")), "call {id}");
    }
    let replanned = app.column("SELECT CAST(entity_id AS TEXT) FROM audit_log WHERE action = 'replanned' ORDER BY entity_id").await;
    assert_eq!(replanned, ids, "each call once");
    assert_eq!(app.column("SELECT COUNT(*) FROM jobs WHERE kind = 'config.replan'").await, ["0"], "the walk ended");
    app.stop().await;
}

#[tokio::test]
async fn a_step_inserted_before_one_already_sent_and_reloaded_sends_nothing_twice() {
    const MANAGER: &str = "mo@seller.example";
    const DIRECTOR: &str = "dee@seller.example";
    const OPS: &str = "ops@seller.example";
    let dir = config_copy();
    let app = TestApp::spawn_with(with_dir(&dir)).await;
    app.put_rep(REP, &json!({"name": "Ana", "timezone": "UTC", "manager_email": MANAGER})).await;
    app.put_rep(MANAGER, &json!({"name": "Mo", "timezone": "UTC", "manager_email": DIRECTOR})).await;
    app.post_generic(&order("e1", "D-1", "12000.00", app.now())).await;
    app.settle().await;
    // Due at 13:00; eight hours overdue at 21:00 the manager hears.
    app.advance_and_settle(TimeDelta::hours(12), TimeDelta::minutes(30)).await;
    assert_eq!(app.mails_to(MANAGER).len(), 1);

    // Sales ops insert a step before the manager's, and one after it sooner than the director's.
    edit(
        &dir,
        "  { after_reminders = 3, after_hours_overdue = 8, to = \"manager\" },",
        "  { after_reminders = 1, to = \"ops@seller.example\" },\n  { after_reminders = 3, after_hours_overdue = 8, to = \"manager\" },\n  { id = \"desk\", after_hours_overdue = 10, to = \"ops@seller.example\" },",
    );
    let reloaded = app.reloader.reload("SIGHUP").await.unwrap();
    assert!(matches!(reloaded, firstcall::reload::Reloaded::Accepted { .. }), "{reloaded:?}");
    app.advance_and_settle(TimeDelta::hours(48), TimeDelta::minutes(30)).await;
    // The inserted earlier step is passed; the new later one goes once, at 10 hours overdue
    // (re-planned at once: 23:00); the director's at 48 hours; the manager's is not sent again.
    let to_ops: Vec<_> = app.mails_to(OPS).into_iter().map(|m| m.message_id.unwrap()).collect();
    assert_eq!(to_ops.len(), 1, "{to_ops:?}");
    assert_eq!(app.mails_to(MANAGER).len(), 1);
    assert_eq!(app.mails_to(DIRECTOR).len(), 1);
    let steps = app.column("SELECT CAST(detail AS TEXT) FROM audit_log WHERE action = 'escalated' ORDER BY id").await;
    let steps: Vec<String> =
        steps.iter().map(|d| serde_json::from_str::<Value>(d).unwrap()["step"].as_str().unwrap().to_string()).collect();
    assert_eq!(steps, ["manager", "desk", "manager_of_manager"]);
    let times = app.column("SELECT CAST(at AS TEXT) FROM audit_log WHERE action = 'escalated' ORDER BY id").await;
    assert_eq!(db_time(&times[1]), at("2026-11-23T23:00:00Z"), "the new step's timer was planned when the edit loaded");
    app.stop().await;
}

#[tokio::test]
async fn the_calls_of_a_removed_schedule_move_to_the_one_their_order_matches_now() {
    let dir = config_copy();
    let app = TestApp::spawn_with(with_dir(&dir)).await;
    app.post_generic(&order("e1", "D-1", "12000.00", app.now())).await;
    app.settle().await;
    let call = app.column("SELECT id FROM calls").await[0].clone();
    // "default" is renamed "standard", with other reminder times.
    edit(
        &dir,
        "name = \"default\"\ndue_within_business_hours = 4\nreminder_cron = \"0 9,14 * * 1-5\"",
        "name = \"standard\"\ndue_within_business_hours = 4\nreminder_cron = \"0 11 * * 1-5\"",
    );
    let edited = test_config(app.db.url(), app.smtp.port(), &with_dir(&dir));
    let preview = firstcall::cli::compare_with_running(&edited, app.now()).await.unwrap();
    assert!(preview.contains(&format!("call {call} ({REP}, schedule \"standard\", UTC): next reminder")), "{preview}");
    app.reloader.reload("SIGHUP").await.unwrap();
    app.run_jobs().await;
    assert_eq!(app.get_json(&format!("/api/v1/calls/{call}")).await["schedule"], json!("standard"));
    assert_eq!(timer(&app, &call, "call.remind").await, Some(at("2026-11-23T11:00:00Z")));
    app.stop().await;
}
