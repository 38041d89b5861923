//! The ground everything stands on: the service starts and answers, migrations are idempotent
//! on both backends, every table round-trips, test databases are cleaned up.

use chrono::{NaiveDate, TimeDelta};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_some(), "every response carries a request id");
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "ready");
    app.stop().await;
}

#[tokio::test]
async fn a_callers_request_id_is_echoed() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).header("x-request-id", "crm-42").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "crm-42");
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = testkit::db::TestDb::create().await;
    let settings = firstcall::config::DatabaseSettings {
        url: db.url().to_string(),
        max_connections: 2,
        connect_timeout_secs: 5,
        migrate_on_start: true,
        intake_writers: 0,
    };
    let conn = firstcall::db::connect(&settings).await.unwrap();
    assert!(!firstcall::db::schema_is_current(&conn).await.unwrap());
    assert!(firstcall::db::migrate(&conn).await.unwrap() > 0);
    assert!(firstcall::db::schema_is_current(&conn).await.unwrap());
    assert_eq!(firstcall::db::migrate(&conn).await.unwrap(), 0, "a second run applies nothing");
}

#[tokio::test]
async fn the_embedded_database_syncs_every_commit_to_disk() {
    // A webhook answered 2xx must survive a power loss: SQLite's `synchronous = NORMAL` in WAL
    // mode may lose the last commits, FULL syncs the log at every commit.
    let dir = tempfile::tempdir().unwrap();
    let settings = firstcall::config::DatabaseSettings {
        url: format!("sqlite://{}/firstcall.db", dir.path().display()),
        max_connections: 2,
        connect_timeout_secs: 5,
        migrate_on_start: true,
        intake_writers: 0,
    };
    let conn = firstcall::db::connect(&settings).await.unwrap();
    let pragma = |name: &'static str| {
        let conn = &conn;
        async move {
            use sea_orm::{ConnectionTrait, Statement};
            let row =
                conn.query_one_raw(Statement::from_string(conn.get_database_backend(), format!("PRAGMA {name}"))).await.unwrap().unwrap();
            row.try_get_by_index::<String>(0).or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string())).unwrap()
        }
    };
    assert_eq!(pragma("journal_mode").await, "wal");
    assert_eq!(pragma("synchronous").await, "2", "2 is FULL");
}

#[tokio::test]
async fn every_entity_round_trips() {
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    let now = app.now();
    use entity::*;
    let rep = reps::ActiveModel {
        email: Set("ana@seller.example".into()),
        name: Set("Ana Ávila".into()),
        timezone: Set("Europe/Madrid".into()),
        manager_email: Set(Some("mo@seller.example".into())),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(reps::Entity::find_by_id("ana@seller.example".to_string()).one(db).await.unwrap().unwrap(), rep);
    let crm = rep_crm_ids::ActiveModel {
        source: Set("hubspot".into()),
        crm_user_id: Set("41".into()),
        rep_email: Set("ana@seller.example".into()),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(rep_crm_ids::Entity::find_by_id(("hubspot".to_string(), "41".to_string())).one(db).await.unwrap().unwrap(), crm);

    let p = proposals::ActiveModel {
        source: Set("generic".into()),
        deal_id: Set("D-1".into()),
        version: Set(1),
        body_sha256: Set("ab".repeat(32)),
        body: Set(json!({"account": {"name": "Acme"}})),
        account_name: Set("Acme".into()),
        rep_email: Set(None),
        received_at: Set(now),
        origin: Set("api".into()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(proposals::Entity::find_by_id(p.id).one(db).await.unwrap().unwrap(), p);
    let c = proposal_contacts::ActiveModel {
        proposal_id: Set(p.id),
        position: Set(0),
        name: Set("Dana".into()),
        email: Set(None),
        title: Set(Some("CFO".into())),
        role: Set("decision_maker".into()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(proposal_contacts::Entity::find_by_id(c.id).one(db).await.unwrap().unwrap(), c);
    let r = proposal_requirements::ActiveModel {
        proposal_id: Set(p.id),
        position: Set(0),
        ext_id: Set("R1".into()),
        text: Set("SSO".into()),
        priority: Set("must".into()),
        need_by: Set(NaiveDate::from_ymd_opt(2026, 12, 1)),
        stated_in: Set(Some("Discovery".into())),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(proposal_requirements::Entity::find_by_id(r.id).one(db).await.unwrap().unwrap(), r);
    let cm = proposal_commitments::ActiveModel {
        proposal_id: Set(p.id),
        position: Set(0),
        ext_id: Set("C1".into()),
        text: Set("SAML".into()),
        covers: Set(json!(["R1"])),
        deliver_by: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(proposal_commitments::Entity::find_by_id(cm.id).one(db).await.unwrap().unwrap(), cm);
    let li = proposal_line_items::ActiveModel {
        proposal_id: Set(p.id),
        position: Set(0),
        sku: Set("PRO".into()),
        name: Set("Pro".into()),
        quantity: Set(2.5),
        unit_price_minor: Set(4990),
        currency: Set("EUR".into()),
        rationale: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(proposal_line_items::Entity::find_by_id(li.id).one(db).await.unwrap().unwrap(), li);
    let a = proposal_activities::ActiveModel {
        proposal_id: Set(p.id),
        position: Set(0),
        occurred_at: Set(now - TimeDelta::days(3)),
        kind: Set("call".into()),
        summary: Set("Discovery".into()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(proposal_activities::Entity::find_by_id(a.id).one(db).await.unwrap().unwrap(), a);

    let o = orders::ActiveModel {
        source: Set("generic".into()),
        deal_id: Set("D-1".into()),
        status: Set(orders::OrderStatus::Open),
        amount_minor: Set(Some(1_200_000)),
        currency: Set(Some("USD".into())),
        rep_email: Set(Some("ana@seller.example".into())),
        segment: Set(None),
        account_name: Set(Some("Acme".into())),
        line_items: Set(json!([{"sku": "PRO", "name": "Pro", "quantity": 1}])),
        ordered_at: Set(Some(now)),
        status_at: Set(now),
        last_event_at: Set(now),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(orders::Entity::find_by_id(o.id).one(db).await.unwrap().unwrap(), o);
    let w = webhook_events::ActiveModel {
        source: Set("generic".into()),
        dedupe_key: Set("evt-1".into()),
        event_type: Set("order.created".into()),
        deal_id: Set(Some("D-1".into())),
        occurred_at: Set(Some(now)),
        received_at: Set(now),
        payload: Set("{\"id\":\"evt-1\"}".into()),
        outcome: Set("opened".into()),
        order_id: Set(Some(o.id)),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(webhook_events::Entity::find_by_id(w.id).one(db).await.unwrap().unwrap(), w);
    let call = calls::ActiveModel {
        order_id: Set(o.id),
        source: Set("generic".into()),
        deal_id: Set("D-1".into()),
        rep_email: Set("ana@seller.example".into()),
        state: Set(calls::CallState::Due),
        schedule_name: Set("default".into()),
        ordered_at: Set(now),
        due_at: Set(now + TimeDelta::hours(4)),
        invite_sequence: Set(0),
        reminders_sent: Set(1),
        escalation_level: Set(0),
        last_reminder_at: Set(Some(now)),
        outcome: Set(None),
        notes: Set(Some("ünïcødé".into())),
        completed_at: Set(None),
        completed_by: Set(None),
        cancelled_at: Set(None),
        fallback_reason: Set(Some("the owner address ünï@elsewhere.example is not in the rep directory".into())),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(calls::Entity::find_by_id(call.id).one(db).await.unwrap().unwrap(), call);
    let j = jobs::ActiveModel {
        kind: Set(jobs::JobKind::Noop),
        subject_id: Set(Some(call.id)),
        payload: Set(Some(json!({"k": 1}))),
        run_at: Set(now + TimeDelta::milliseconds(1500)),
        state: Set(jobs::JobState::Pending),
        attempts: Set(0),
        max_attempts: Set(8),
        lease_owner: Set(None),
        lease_token: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(jobs::Entity::find_by_id(j.id).one(db).await.unwrap().unwrap(), j);
    let e = emails::ActiveModel {
        message_id: Set("m-1@test".into()),
        call_id: Set(Some(call.id)),
        kind: Set(emails::EmailKind::Reminder),
        to_addr: Set("ana@seller.example".into()),
        to_name: Set(Some("Ana".into())),
        subject: Set("Reminder".into()),
        body_text: Set("text".into()),
        body_html: Set("<p>html</p>".into()),
        ics: Set(None),
        ics_method: Set(None),
        state: Set(emails::EmailState::Pending),
        attempts: Set(0),
        unknown_outcomes: Set(0),
        next_attempt_at: Set(now),
        lease_owner: Set(None),
        lease_token: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
        sent_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(emails::Entity::find_by_id(e.id).one(db).await.unwrap().unwrap(), e);
    let au = audit_log::ActiveModel {
        at: Set(now),
        actor: Set("test".into()),
        entity: Set("call".into()),
        entity_id: Set(call.id),
        action: Set("state".into()),
        from_state: Set(Some("due".into())),
        to_state: Set(Some("done".into())),
        detail: Set(Some(json!({"why": "test"}))),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(audit_log::Entity::find_by_id(au.id).one(db).await.unwrap().unwrap(), au);
    let kv = kv_store::ActiveModel { key: Set("k".into()), value: Set("v".into()), updated_at: Set(now) }.insert(db).await.unwrap();
    assert_eq!(kv_store::Entity::find_by_id("k".to_string()).one(db).await.unwrap().unwrap(), kv);
    let session = sessions::ActiveModel {
        id: Set("ab".repeat(32)),
        token_prefix: Set(String::new()),
        person: Set(Some("ana@seller.example".into())),
        created_at: Set(now),
        expires_at: Set(now + chrono::TimeDelta::hours(12)),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(sessions::Entity::find_by_id("ab".repeat(32)).one(db).await.unwrap().unwrap(), session);
    let link = sign_in_links::ActiveModel {
        id: Set("cd".repeat(32)),
        email: Set("ana@seller.example".into()),
        client: Set("127.0.0.1".into()),
        sent: Set(true),
        created_at: Set(now),
        expires_at: Set(now + chrono::TimeDelta::minutes(15)),
        used_at: Set(Some(now)),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(sign_in_links::Entity::find_by_id("cd".repeat(32)).one(db).await.unwrap().unwrap(), link);
    app.stop().await;
}

#[tokio::test]
async fn a_test_database_is_dropped_after_its_test() {
    let db = testkit::db::TestDb::create().await;
    let name = db.name().to_string();
    match db.backend() {
        testkit::db::Backend::Postgres => {
            assert!(testkit::db::postgres_database_exists(&name).await);
            drop(db);
            assert!(!testkit::db::postgres_database_exists(&name).await, "{name} still exists");
        }
        testkit::db::Backend::Sqlite => {
            let settings = firstcall::config::DatabaseSettings {
                url: db.url().to_string(),
                max_connections: 1,
                connect_timeout_secs: 5,
                migrate_on_start: true,
                intake_writers: 0,
            };
            let conn = firstcall::db::connect(&settings).await.unwrap();
            conn.close().await.unwrap();
            assert!(std::path::Path::new(&name).exists());
            drop(db);
            assert!(!std::path::Path::new(&name).exists(), "{name} still exists");
        }
    }
}

#[tokio::test]
async fn database_errors_are_told_apart_by_kind_not_by_message() {
    use firstcall::db::{ErrorKind, error_kind};
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    // A second row with a taken unique key.
    let insert = "INSERT INTO kv_store (key, value, updated_at) VALUES ('k', 'v', CURRENT_TIMESTAMP)";
    db.execute_unprepared(insert).await.unwrap();
    let dup = db.execute_unprepared(insert).await.unwrap_err();
    assert_eq!(error_kind(&dup), ErrorKind::Duplicate, "{dup}");
    // A statement the database cannot run.
    let bad = db.execute_unprepared("SELECT no_such_column FROM kv_store").await.unwrap_err();
    assert_eq!(error_kind(&bad), ErrorKind::Other, "{bad}");
    // A server that is not there.
    let settings = firstcall::config::DatabaseSettings {
        url: "postgres://postgres@127.0.0.1:1/nothing".into(),
        max_connections: 1,
        connect_timeout_secs: 1,
        migrate_on_start: false,
        intake_writers: 0,
    };
    let away = firstcall::db::connect(&settings).await.unwrap();
    let gone = away.execute_unprepared("SELECT 1").await.unwrap_err();
    assert_eq!(error_kind(&gone), ErrorKind::Unavailable, "{gone}");
    app.stop().await;
}
