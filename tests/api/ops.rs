//! The operator's surface: metrics after a known sequence, readiness, the OpenAPI document.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::*;

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name_and_labels} in\n{text}"))
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let app = TestApp::spawn().await;
    app.put_rep("ana@seller.example", &json!({"name": "Ana", "timezone": "UTC", "manager_email": "mo@seller.example"})).await;
    let ev = order_created("e1", "D-1", "ana@seller.example", app.now());
    app.post_generic(&ev).await;
    app.post_generic(&ev).await;
    app.post_generic_raw(b"{}", "wrong-secret-123456", app.now().timestamp()).await;
    app.settle().await;
    // Monday 14:00 reminder and 21:00 escalation (8 hours overdue).
    app.advance_and_settle(TimeDelta::hours(13), TimeDelta::minutes(30)).await;
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&text, "firstcall_webhooks_received_total{source=\"generic\"}"), 3.0);
    assert_eq!(metric(&text, "firstcall_webhooks_rejected_total{source=\"generic\",reason=\"invalid_signature\"}"), 1.0);
    assert_eq!(metric(&text, "firstcall_webhook_events_total{source=\"generic\",outcome=\"accepted\"}"), 1.0);
    assert_eq!(metric(&text, "firstcall_events_applied_total{source=\"generic\",outcome=\"opened\"}"), 1.0);
    assert_eq!(metric(&text, "firstcall_webhook_events_total{source=\"generic\",outcome=\"duplicate\"}"), 1.0);
    assert_eq!(metric(&text, "firstcall_calls{state=\"overdue\"}"), 1.0);
    assert_eq!(metric(&text, "firstcall_calls{state=\"done\"}"), 0.0);
    assert_eq!(metric(&text, "firstcall_reminders_sent_total"), 1.0);
    assert_eq!(metric(&text, "firstcall_escalations_sent_total"), 1.0);
    assert_eq!(metric(&text, "firstcall_emails_total{kind=\"first_call\",outcome=\"sent\"}"), 1.0);
    assert_eq!(metric(&text, "firstcall_outbox_depth"), 0.0);
    assert_eq!(metric(&text, "firstcall_jobs_dead"), 0.0);
    assert!(metric(&text, "firstcall_job_claim_latency_seconds_count") >= 4.0, "start, remind, overdue, escalate");
    assert!(metric(&text, "firstcall_jobs_pending") >= 1.0, "the next reminder waits");
    app.stop().await;
}

#[tokio::test]
async fn readiness_fails_while_the_database_is_away_and_recovers() {
    let app = TestApp::spawn_with(quick_outage()).await;
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    let outage = app.database_down().await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let b: Value = r.json().await.unwrap();
    assert!(b["reason"].as_str().unwrap().contains("database"), "{b}");
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200, "the process itself is fine");
    outage.end().await;
    let mut status = 0;
    for _ in 0..50 {
        status = app.client.get(app.url("/readyz")).send().await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "ready again without a restart");
    app.stop().await;
}

/// The public contract (DESIGN.md) plus the operator endpoints.
const ROUTES: &[(&str, &str)] = &[
    ("put", "/api/v1/proposals/{source}/{deal_id}"),
    ("get", "/api/v1/proposals/{source}/{deal_id}"),
    ("put", "/api/v1/reps/{email}"),
    ("get", "/api/v1/reps/{email}"),
    ("post", "/webhooks/generic"),
    ("post", "/webhooks/hubspot"),
    ("post", "/webhooks/pipedrive"),
    ("post", "/webhooks/salesforce"),
    ("post", "/webhooks/salesforce/{path_secret}"),
    ("get", "/api/v1/calls"),
    ("get", "/api/v1/calls/{id}"),
    ("get", "/api/v1/calls/{id}/recap"),
    ("post", "/api/v1/calls/{id}/complete"),
    ("get", "/api/v1/jobs"),
    ("post", "/api/v1/jobs/{id}/retry"),
    ("get", "/api/v1/emails"),
    ("post", "/api/v1/emails/{id}/retry"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/"),
    ("get", "/calls/{id}"),
    ("post", "/calls/{id}/done"),
    ("get", "/login"),
    ("post", "/login"),
    ("post", "/logout"),
    ("post", "/dashboard/jobs/{id}/retry"),
    ("post", "/dashboard/emails/{id}/retry"),
];

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_every_route_exists() {
    let app = TestApp::spawn().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        let op = &paths.get(*path).unwrap_or_else(|| panic!("{path} is not documented"))[*method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(!op["responses"].as_object().unwrap().is_empty(), "{method} {path} has no responses");
    }
    // Every documented operation is served (no "no route" 404), and every schema reference resolves.
    let schemas = doc["components"]["schemas"].as_object().cloned().unwrap_or_default();
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = app.url(
                &path.replace("{source}", "generic").replace("{deal_id}", "D-1").replace("{email}", "a@b.example").replace("{id}", "1"),
            );
            let r = app.client.request(method.to_uppercase().parse().unwrap(), url).bearer_auth(API_TOKEN).send().await.unwrap();
            if r.status() == 404 {
                let b: Value = r.json().await.unwrap_or(Value::Null);
                assert!(
                    !b["error"]["message"].as_str().unwrap_or("").starts_with("no route"),
                    "{method} {path} is documented but not served"
                );
            }
        }
    }
    app.stop().await;
}
