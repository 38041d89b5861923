//! Who firstcall emails: only addresses in the rep directory or in `mail.allowed_recipient_domains`
//! (the harness allows `seller.example` and `example.com`), whatever a webhook names. A call for
//! any other address goes to sales ops (`defaults.unassigned_email`) with the reason, on every
//! email, in the API and in the audit trail; the outside address gets nothing, ever.

use chrono::TimeDelta;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::*;

const SALES_OPS: &str = "sales-ops@seller.example";
const OUTSIDER: &str = "victim@evil.example";

/// The reason sales ops read for a call whose owner address is `addr`.
fn reason(addr: &str) -> String {
    format!("{addr} is not in the rep directory nor in mail.allowed_recipient_domains")
}

fn kinds(mails: &[testkit::mail::ParsedMail]) -> Vec<String> {
    mails.iter().map(|m| m.message_id.clone().unwrap_or_default().split('.').nth(1).unwrap_or("").to_string()).collect()
}

/// The audit rows of call `id`, oldest first, as (action, detail).
async fn audit_of_call(app: &TestApp, id: i64) -> Vec<(String, Value)> {
    use entity::audit_log;
    audit_log::Entity::find()
        .filter(audit_log::Column::Entity.eq("call"))
        .filter(audit_log::Column::EntityId.eq(id))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.detail.unwrap_or(Value::Null)))
        .collect()
}

#[tokio::test]
async fn a_forged_salesforce_message_cannot_make_firstcall_email_an_outside_address() {
    let app = TestApp::spawn().await;
    // The org id is not a secret: anyone can send a message that names it, and any owner email.
    let forged = String::from_utf8(fixture("salesforce/closed_won.xml"))
        .unwrap()
        .replace("ana.silva@example.com", OUTSIDER)
        .replace("Acme &amp; Sons - Platform rollout", "Your account is locked: reset it at http://evil.example/reset");
    let r = app.post_salesforce(forged.as_bytes()).await;
    assert_eq!(r.status(), 200, "the message itself is well-formed and from the configured org");
    app.settle().await;
    // Days of reminders and escalations: none reaches the outside address.
    app.advance_and_settle(TimeDelta::days(3), TimeDelta::hours(1)).await;
    assert!(app.mails_to(OUTSIDER).is_empty(), "mailed the forged owner: {:?}", kinds(&app.mails_to(OUTSIDER)));
    assert!(app.mails().iter().all(|m| m.to.iter().all(|t| !t.address.ends_with("@evil.example"))));

    // Sales ops get the call, and every email says why.
    let ops = app.mails_to(SALES_OPS);
    let k = kinds(&ops);
    for kind in ["first_call", "reminder", "escalation"] {
        assert!(k.iter().any(|x| x == kind), "no {kind} to sales ops: {k:?}");
    }
    for m in &ops {
        let text = m.text.as_deref().unwrap_or_default();
        assert!(text.contains(&reason(OUTSIDER)), "no reason in the {} email: {text}", m.message_id.as_deref().unwrap_or_default());
        assert!(m.html.as_deref().unwrap_or_default().contains(&reason(OUTSIDER)), "no reason in the HTML part");
    }
    let first = ops.iter().find(|m| kinds(std::slice::from_ref(m)) == ["first_call"]).unwrap();
    let text = first.text.as_deref().unwrap();
    assert!(text.contains("This call was routed to you because the owner address victim@evil.example"), "{text}");
    // The call page that the email links to says it as well.
    let page = app.client.get(app.url(&call_link(first))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"fallback-reason\"") && html.contains(&reason(OUTSIDER)), "{html}");

    // The API and the audit trail say so too.
    let call = &app.calls().await[0];
    assert_eq!(call["rep_email"], SALES_OPS);
    assert!(call["fallback_reason"].as_str().unwrap_or_default().contains(&reason(OUTSIDER)), "{call}");
    let audit = audit_of_call(&app, call["id"].as_i64().unwrap()).await;
    let opened = audit.iter().find(|(a, _)| a == "opened").expect("an opened row");
    assert_eq!(opened.1["rep"], SALES_OPS);
    assert!(opened.1["fallback_reason"].as_str().unwrap_or_default().contains(&reason(OUTSIDER)), "{:?}", opened.1);
    app.stop().await;
}

#[tokio::test]
async fn a_generic_order_or_a_later_owner_change_to_an_outside_address_goes_to_sales_ops() {
    let app = TestApp::spawn().await;
    let rep = "ana@seller.example";
    // A new order naming an outside rep.
    assert_eq!(app.post_generic(&order_created("e1", "D-1", "mallory@evil.example", app.now())).await.status(), 200);
    // An order whose rep is allowed, then moved to an outside address.
    assert_eq!(app.post_generic(&order_created("e2", "D-2", rep, app.now())).await.status(), 200);
    app.settle().await;
    app.advance(TimeDelta::minutes(30));
    let moved = order_event("u2", "order.updated", "D-2", app.now(), json!({"rep_email": "eve@evil.example"}));
    assert_eq!(app.post_generic(&moved).await.status(), 200);
    app.settle().await;
    app.advance_and_settle(TimeDelta::days(2), TimeDelta::hours(1)).await;

    assert!(app.mails().iter().all(|m| m.to.iter().all(|t| !t.address.ends_with("@evil.example"))), "mail to an outside address");
    // The rep who had D-2 hears that the call moved on; sales ops have both calls.
    assert_eq!(kinds(&app.mails_to(rep))[..2], ["first_call", "reassigned"]);
    let calls = app.calls().await;
    assert!(calls.iter().all(|c| c["rep_email"] == SALES_OPS), "{calls:?}");
    let by_deal = |d: &str| calls.iter().find(|c| c["deal_id"] == d).unwrap().clone();
    assert!(by_deal("D-1")["fallback_reason"].as_str().unwrap().contains(&reason("mallory@evil.example")));
    assert!(by_deal("D-2")["fallback_reason"].as_str().unwrap().contains(&reason("eve@evil.example")));
    let ops = app.mails_to(SALES_OPS);
    for addr in ["mallory@evil.example", "eve@evil.example"] {
        assert!(
            ops.iter().any(|m| kinds(std::slice::from_ref(m)) == ["first_call"] && m.text.as_deref().unwrap().contains(&reason(addr))),
            "no recap to sales ops naming {addr}"
        );
    }
    let audit = audit_of_call(&app, by_deal("D-2")["id"].as_i64().unwrap()).await;
    let reassigned = audit.iter().find(|(a, _)| a == "reassigned").expect("a reassigned row");
    assert_eq!(reassigned.1["to_rep"], SALES_OPS);
    assert!(reassigned.1["fallback_reason"].as_str().unwrap().contains(&reason("eve@evil.example")), "{:?}", reassigned.1);

    // Back to an allowed rep: the call follows, and the reason is gone.
    let back = order_event("u3", "order.updated", "D-2", app.now(), json!({"rep_email": rep}));
    assert_eq!(app.post_generic(&back).await.status(), 200);
    app.settle().await;
    let call = app.calls().await.into_iter().find(|c| c["deal_id"] == "D-2").unwrap();
    assert_eq!(call["rep_email"], rep);
    assert!(call["fallback_reason"].is_null(), "{call}");
    app.stop().await;
}

#[tokio::test]
async fn addresses_in_the_rep_directory_or_an_allowed_domain_get_their_mail_and_subdomains_do_not_count() {
    let app = TestApp::spawn().await;
    // In the directory, outside every allowed domain.
    let partner = "pat@partner.example";
    assert_eq!(app.put_rep(partner, &json!({"name": "Pat Partner", "timezone": "UTC"})).await.status(), 200);
    // An allowed domain (`seller.example`), not in the directory, written in capitals by the CRM.
    let new_rep = "Nia@Seller.Example";
    // A subdomain of an allowed domain: not allowed (domains match exactly).
    let sub = "sam@eu.seller.example";
    for (i, addr) in [partner, new_rep, sub].into_iter().enumerate() {
        let r = app.post_generic(&order_created(&format!("e{i}"), &format!("D-{i}"), addr, app.now())).await;
        assert_eq!(r.status(), 200);
    }
    // A proposal's rep follows the same rule as the order's.
    let mut order = order_created("e9", "D-9", "x@seller.example", app.now());
    order["order"].as_object_mut().unwrap().remove("rep_email");
    app.put_proposal("generic", "D-9", &proposal("quinn@elsewhere.example")).await;
    assert_eq!(app.post_generic(&order).await.status(), 200);
    app.settle().await;

    assert_eq!(kinds(&app.mails_to(partner)), ["first_call"]);
    assert_eq!(kinds(&app.mails_to("nia@seller.example")), ["first_call"]);
    assert!(app.mails_to(sub).is_empty(), "a subdomain of an allowed domain got mail");
    assert!(app.mails_to("quinn@elsewhere.example").is_empty(), "the proposal's outside rep got mail");
    let ops = app.mails_to(SALES_OPS);
    assert_eq!(ops.len(), 2, "{:?}", kinds(&ops));
    assert!(ops.iter().any(|m| m.text.as_deref().unwrap().contains(&reason(sub))));
    assert!(ops.iter().any(|m| m.text.as_deref().unwrap().contains(&reason("quinn@elsewhere.example"))));
    let calls = app.calls().await;
    let with_reason = calls.iter().filter(|c| !c["fallback_reason"].is_null()).count();
    assert_eq!(with_reason, 2, "{calls:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_call_whose_rep_may_not_be_emailed_any_more_sends_every_email_to_sales_ops_instead() {
    let app = TestApp::spawn().await;
    let legacy = "old@legacy.example";
    assert_eq!(app.post_generic(&order_created("e1", "D-1", "ana@seller.example", app.now())).await.status(), 200);
    // A call opened before this rule (or whose domain was since taken off the list): its rep is an
    // address firstcall may not email.
    {
        use sea_orm::sea_query::Expr;
        entity::calls::Entity::update_many()
            .col_expr(entity::calls::Column::RepEmail, Expr::value(legacy))
            .exec(&app.state.db)
            .await
            .unwrap();
    }
    app.settle().await;
    app.advance_and_settle(TimeDelta::hours(8), TimeDelta::hours(1)).await;
    // The order moves to an allowed rep: the old address gets no withdrawal; then it is cancelled.
    let bo = "bo@seller.example";
    assert_eq!(app.post_generic(&order_event("u1", "order.updated", "D-1", app.now(), json!({"rep_email": bo}))).await.status(), 200);
    app.settle().await;
    assert_eq!(app.post_generic(&order_event("c1", "order.cancelled", "D-1", app.now(), json!({}))).await.status(), 200);
    app.settle().await;

    assert!(app.mails_to(legacy).is_empty(), "mailed {legacy}: {:?}", kinds(&app.mails_to(legacy)));
    let ops = app.mails_to(SALES_OPS);
    let k = kinds(&ops);
    assert!(k.contains(&"first_call".to_string()) && k.contains(&"reminder".to_string()), "{k:?}");
    let why = format!("the call's rep address {}", reason(legacy));
    for m in ops.iter().filter(|m| kinds(std::slice::from_ref(m)) != ["escalation"]) {
        assert!(m.text.as_deref().unwrap().contains(&why), "{}", m.text.as_deref().unwrap());
    }
    assert_eq!(kinds(&app.mails_to(bo)), ["first_call", "cancellation"]);
    app.stop().await;
}
