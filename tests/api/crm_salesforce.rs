//! The Salesforce connector against a fake org: what the recap reads from a won opportunity,
//! every batch of every related list, behaviour under rate limits and failures, and the access
//! token's renewal. No database: the connector is built from settings pointing at the fake.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use firstcall::config::CrmSettings;
use firstcall::config::crm::{Credential, RoleMap};
use firstcall::crm::salesforce::Salesforce;
use firstcall::crm::{CallRecord, Connector, CrmActivityKind, CrmError, DealContext};
use firstcall::domain::{Currency, Source};
use firstcall::proposals::model::{ActivityKind, ContactRole};
use testkit::crm::SampleDeal;
use testkit::crm::salesforce::{CLIENT_ID, CLIENT_SECRET, FakeSalesforce, record_id};

fn won_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 15, 14, 0, 0).unwrap()
}

fn settings(fake: &FakeSalesforce, requests_per_second: u32) -> CrmSettings {
    let mut s = CrmSettings::default();
    s.salesforce.base_url = Some(fake.server.base_url.clone());
    s.salesforce.client_id = Some(Credential(CLIENT_ID.into()));
    s.salesforce.client_secret = Some(Credential(CLIENT_SECRET.into()));
    s.salesforce.requests_per_second = requests_per_second;
    s.salesforce.notes_field = Some("Description".into());
    s
}

fn connector(s: &CrmSettings) -> Salesforce {
    Salesforce::new(&s.salesforce, s).unwrap()
}

/// A fake org holding the sample deal, and its opportunity id.
async fn org_with_acme() -> (FakeSalesforce, String) {
    let fake = FakeSalesforce::start().await;
    let id = record_id("006", 1042);
    fake.put_deal(&id, &SampleDeal::acme(won_at()));
    (fake, id)
}

#[tokio::test]
async fn salesforce_a_won_opportunity_becomes_the_recap_proposal() {
    let (fake, id) = org_with_acme().await;
    let sf = connector(&settings(&fake, 50));
    let deal = sf.fetch_deal(&id).await.unwrap();
    let p = deal.to_proposal(Source::Salesforce, &id, &RoleMap::default());

    assert_eq!(p.account.name, "Acme Corp");
    assert_eq!(p.rep_email.unwrap().as_str(), "ana@seller.example");
    let roles: Vec<_> = p.contacts.iter().map(|c| (c.name.as_str(), c.role)).collect();
    assert_eq!(
        roles,
        [
            ("Dana Whitfield", ContactRole::DecisionMaker),
            ("Priya Raman", ContactRole::FunctionalDecisionMaker),
            ("Sam Otieno", ContactRole::Other)
        ]
    );
    assert_eq!(p.contacts[0].email.as_ref().unwrap().as_str(), "dana@acme.example");
    assert_eq!(p.contacts[1].title.as_deref(), Some("IT Director"));

    // Both line items, by product name, at their exact prices in the opportunity's currency:
    // what was ordered (the proposal lists none without a quote).
    assert!(p.line_items.is_empty());
    let ordered = deal.ordered_items();
    let items: Vec<_> = ordered
        .iter()
        .map(|l| {
            let price = l.unit_price.as_ref().unwrap();
            (l.sku.as_str(), l.name.as_str(), l.quantity, price.minor, price.currency.as_str())
        })
        .collect();
    assert_eq!(items, [("PRO-SEAT", "Pro seat (annual)", 120.0, 42_000, "USD"), ("SSO-ADDON", "SSO add-on", 1.0, 1_400_000, "USD")]);

    // The buying process in time order: notes, the email, the call, the meeting.
    let steps: Vec<_> = p.activities.iter().map(|a| (a.kind, a.summary.as_str())).collect();
    assert_eq!(
        steps,
        [
            (ActivityKind::Note, "Discovery with Dana and Priya."),
            (ActivityKind::Email, "Pricing for 120 seats"),
            (ActivityKind::Call, "Security review with Priya"),
            (ActivityKind::Meeting, "Proposal walkthrough"),
            (ActivityKind::Note, "Proposal review."),
        ]
    );
    assert!(p.activities.windows(2).all(|w| w[0].at <= w[1].at));

    // Requirements and commitments from the notes; the unreadable promise is reported.
    let reqs: Vec<_> = p.requirements.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(reqs, ["sso", "migrate"]);
    let commits: Vec<_> = p.commitments.iter().map(|c| (c.id.as_str(), c.text.as_str())).collect();
    assert_eq!(commits, [("sso", "SAML SSO with the Okta connector")]);
    let bad = p
        .unreadable
        .iter()
        .find(|u| u.line == "#promise migrate by end of March: Migration service")
        .expect("the unreadable promise is reported");
    assert!(!bad.reason.is_empty());
    assert_eq!(p.unreadable.len(), 1);

    // The email is read by its subject only.
    assert!(deal.activities.iter().filter(|a| a.kind == CrmActivityKind::Email).all(|a| a.body.is_none()));
    // One token and one query.
    assert_eq!(fake.server.requests().len(), 2);
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn salesforce_the_notes_field_adds_requirements() {
    let fake = FakeSalesforce::start().await;
    let id = record_id("006", 7);
    let mut sample = SampleDeal::acme(won_at());
    sample.notes_field = Some("#need audit should: Audit log export".into());
    fake.put_deal(&id, &sample);
    let deal = connector(&settings(&fake, 50)).fetch_deal(&id).await.unwrap();
    assert_eq!(deal.modified_at, Some(won_at()));
    let p = deal.to_proposal(Source::Salesforce, &id, &RoleMap::default());
    let reqs: Vec<_> = p.requirements.iter().map(|r| (r.id.as_str(), r.stated_in.as_deref())).collect();
    assert_eq!(reqs[2], ("audit", Some("Salesforce deal field")));
}

#[tokio::test]
async fn salesforce_every_batch_of_every_related_list_is_read() {
    let (fake, id) = org_with_acme().await;
    let whole = connector(&settings(&fake, 100)).fetch_deal(&id).await.unwrap();

    fake.set_page_size(1);
    let before = fake.server.requests().len();
    let paged: DealContext = connector(&settings(&fake, 100)).fetch_deal(&id).await.unwrap();
    assert_eq!(paged, whole, "batches of one read the same deal");
    assert_eq!((paged.contacts.len(), paged.line_items.len(), paged.activities.len()), (3, 2, 5));

    // 1 token + 1 query + (3-1) contact roles + (2-1) line items + (2-1) tasks + (2-1) notes.
    let requests = &fake.server.requests()[before..];
    assert_eq!(requests.len(), 7);
    let more: Vec<_> = requests.iter().filter(|r| r.path.starts_with("/services/data/v62.0/query/01g")).collect();
    assert_eq!(more.len(), 5);
    // Each follows a locator the previous batch gave: `<locator>-<offset>`, no parameters.
    assert!(more.iter().all(|r| r.query.is_empty() && r.status == 200));
    let offsets: Vec<_> = more.iter().map(|r| r.path.rsplit('-').next().unwrap().to_string()).collect();
    assert_eq!(offsets, ["1", "2", "1", "1", "1"]);
}

#[tokio::test]
async fn salesforce_a_rate_limit_storm_is_waited_out() {
    let (fake, id) = org_with_acme().await;
    fake.set_page_size(1);
    fake.server.limit(2, 1);
    let sf = connector(&settings(&fake, 20));
    sf.fetch_deal(&id).await.unwrap();
    assert!(fake.server.throttled() >= 1);
    let mut requests = fake.server.requests();
    requests.sort_by_key(|r| r.at);
    for (i, r) in requests.iter().enumerate().filter(|(_, r)| r.status == 429) {
        if let Some(next) = requests.get(i + 1) {
            assert!(
                next.at.duration_since(r.at) >= Duration::from_secs(1),
                "a request came {:?} after a 429",
                next.at.duration_since(r.at)
            );
        }
    }

    // A connector set at the org's limit is never throttled.
    let (fake, id) = org_with_acme().await;
    fake.set_page_size(1);
    fake.server.limit(2, 1);
    connector(&settings(&fake, 2)).fetch_deal(&id).await.unwrap();
    assert_eq!(fake.server.throttled(), 0);
}

#[tokio::test]
async fn salesforce_failures_are_told_apart() {
    let (fake, id) = org_with_acme().await;
    let sf = connector(&settings(&fake, 50));
    sf.fetch_deal(&id).await.unwrap();

    fake.server.fail_next(1);
    assert!(matches!(sf.fetch_deal(&id).await, Err(CrmError::Unavailable(_))));

    assert!(matches!(sf.fetch_deal(&record_id("006", 999)).await, Err(CrmError::NotFound(_))));

    // Ids that are not Salesforce ids, the injection attempt among them, never reach the org.
    let before = fake.server.requests().len();
    for bad in ["006' OR Name != '", "006Dn000004ABC", "006Dn0000041042AA%", ""] {
        assert!(matches!(sf.fetch_deal(bad).await, Err(CrmError::NotFound(_))), "{bad}");
    }
    assert_eq!(fake.server.requests().len(), before);
}

#[tokio::test]
async fn salesforce_a_wrong_client_secret_is_unauthorized() {
    let (fake, id) = org_with_acme().await;
    let mut s = settings(&fake, 50);
    s.salesforce.client_secret = Some(Credential("not-the-secret".into()));
    let err = connector(&s).fetch_deal(&id).await.unwrap_err();
    assert!(matches!(err, CrmError::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains("invalid_client"));
    assert!(!err.to_string().contains("not-the-secret") && !err.to_string().contains(CLIENT_ID));
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn salesforce_an_expired_token_is_renewed_once() {
    let (fake, id) = org_with_acme().await;
    let sf = connector(&settings(&fake, 50));
    sf.fetch_deal(&id).await.unwrap();
    assert_eq!(fake.token_requests(), 1);

    fake.expire_tokens();
    let deal = sf.fetch_deal(&id).await.unwrap();
    assert_eq!(deal.owner_email.as_deref(), Some("ana@seller.example"));
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.server.requests().iter().filter(|r| r.status == 401).count(), 1);

    // A token refused again right after renewal is a refusal, not a loop.
    fake.set_sessions_refused(true);
    assert!(matches!(sf.fetch_deal(&id).await, Err(CrmError::Unauthorized(_))));
    assert_eq!(fake.token_requests(), 3);
}

#[tokio::test]
async fn salesforce_fetches_refused_together_share_one_renewal() {
    let fake = FakeSalesforce::start().await;
    let ids: Vec<String> = (1..=8).map(|n| record_id("006", n)).collect();
    for id in &ids {
        fake.put_deal(id, &SampleDeal::acme(won_at()));
    }
    fake.set_page_size(1);
    let sf = connector(&settings(&fake, 200));
    sf.fetch_deal(&ids[0]).await.unwrap();

    fake.expire_tokens();
    let all = futures_util::future::join_all(ids.iter().map(|id| sf.fetch_deal(id))).await;
    assert!(all.iter().all(Result::is_ok));
    assert_eq!(fake.token_requests(), 2);
    assert!(fake.server.requests().iter().filter(|r| r.status == 401).count() > 1, "the fetches were refused together");
}

#[tokio::test]
async fn salesforce_an_org_without_multi_currency_needs_its_currency_set() {
    let (fake, id) = org_with_acme().await;
    fake.set_multi_currency(false);
    let err = connector(&settings(&fake, 50)).fetch_deal(&id).await.unwrap_err();
    assert!(matches!(&err, CrmError::Invalid(m) if m.contains("default_currency")), "{err:?}");

    let mut s = settings(&fake, 50);
    s.salesforce.default_currency = Some(Currency::parse("EUR").unwrap());
    let deal = connector(&s).fetch_deal(&id).await.unwrap();
    let ordered = deal.ordered_items();
    assert_eq!(ordered.len(), 2);
    assert!(ordered.iter().all(|l| l.unit_price.as_ref().is_some_and(|p| p.currency.as_str() == "EUR")), "{ordered:?}");
    let last_query = fake.server.requests().into_iter().rfind(|r| r.path.ends_with("/query")).unwrap();
    assert!(!last_query.query.contains("CurrencyIsoCode"));
}

/// The sample deal won at `at` by `account`, for `amount` in `currency`.
fn won_deal(account: &str, amount: &str, currency: &str, at: DateTime<Utc>) -> SampleDeal {
    let mut d = SampleDeal::acme(at);
    d.name = format!("{account} - renewal");
    d.account = account.into();
    d.amount = amount.into();
    d.currency = currency.into();
    d
}

fn day(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, d, h, 0, 0).unwrap()
}

#[tokio::test]
async fn salesforce_won_since_reads_the_won_opportunities_modified_since_oldest_first() {
    let fake = FakeSalesforce::start().await;
    let id = |n: u64| record_id("006", n);
    let since = day(10, 9) + chrono::TimeDelta::milliseconds(250);
    // Won before `since` and not touched since: not asked for.
    fake.put_deal(&id(1), &won_deal("Old Co", "1000.00", "USD", day(3, 12)));
    // Won on the 12th.
    fake.put_deal(&id(2), &won_deal("Globex", "52000.50", "EUR", day(12, 16)));
    // Won on the 5th, changed on the 14th: asked for again, still closed on the 5th.
    fake.put_deal(&id(3), &won_deal("Initech", "8000.00", "USD", day(5, 10)));
    fake.set_last_modified(&id(3), day(14, 8));
    // Lost, and still being negotiated, both changed after `since`.
    fake.put_deal(&id(4), &won_deal("Lost Corp", "9000.00", "USD", day(11, 10)));
    fake.set_stage(&id(4), "Closed Lost");
    fake.put_deal(&id(5), &won_deal("Open Inc", "9100.00", "USD", day(11, 11)));
    fake.set_stage(&id(5), "Negotiation/Review");
    // Modified exactly at `since` (to the millisecond), and just before it in the same second.
    fake.put_deal(&id(6), &won_deal("Edge Ltd", "300.00", "GBP", since));
    fake.put_deal(&id(7), &won_deal("Early Ltd", "301.00", "GBP", since - chrono::TimeDelta::milliseconds(200)));
    // A deal without an owner.
    let mut no_owner = won_deal("Ownerless", "42.00", "USD", day(13, 9));
    no_owner.owner = None;
    fake.put_deal(&id(8), &no_owner);

    let sf = connector(&settings(&fake, 50));
    let won = sf.won_since(since, 100).await.unwrap();
    let got: Vec<_> = won.iter().map(|d| (d.deal_id.as_str(), d.account_name.as_deref().unwrap())).collect();
    assert_eq!(got, [(id(6).as_str(), "Edge Ltd"), (id(2).as_str(), "Globex"), (id(8).as_str(), "Ownerless"), (id(3).as_str(), "Initech")]);
    assert!(won.windows(2).all(|w| w[0].modified_at <= w[1].modified_at));

    let globex = &won[1];
    assert_eq!(globex.won_at, Utc.with_ymd_and_hms(2026, 10, 12, 0, 0, 0).unwrap(), "the close date, at midnight UTC");
    assert_eq!(globex.modified_at, day(12, 16));
    assert_eq!((globex.amount.as_deref(), globex.currency.as_deref()), (Some("52000.5"), Some("EUR")));
    assert_eq!(globex.owner_email.as_deref(), Some("ana@seller.example"));
    assert_eq!(globex.owner_id, Some(record_id("005", 5501)));
    assert_eq!((won[0].modified_at, won[0].amount.as_deref(), won[0].currency.as_deref()), (since, Some("300.0"), Some("GBP")));
    assert_eq!((won[2].owner_email.as_deref(), won[2].owner_id.as_deref()), (None, None));
    let initech = &won[3];
    assert_eq!((initech.won_at, initech.modified_at), (Utc.with_ymd_and_hms(2026, 10, 5, 0, 0, 0).unwrap(), day(14, 8)));

    // One query, with the bound as an unquoted dateTime literal, and a token.
    assert_eq!(fake.server.requests().len(), 2);
    assert_eq!(
        fake.queries(),
        ["SELECT Id, Name, Amount, CloseDate, LastModifiedDate, OwnerId, Owner.Email, Account.Name, CurrencyIsoCode \
          FROM Opportunity WHERE IsWon = true AND LastModifiedDate >= 2026-10-10T09:00:00Z \
          ORDER BY LastModifiedDate ASC, Id ASC LIMIT 100"]
    );

    // Nothing asked for, nothing sent.
    assert!(sf.won_since(since, 0).await.unwrap().is_empty());
    assert_eq!(fake.server.requests().len(), 2);
}

#[tokio::test]
async fn salesforce_won_since_follows_every_batch_and_stops_at_max() {
    let fake = FakeSalesforce::start().await;
    let ids: Vec<String> = (1..=5).map(|n| record_id("006", 100 + n)).collect();
    for (i, id) in ids.iter().enumerate() {
        fake.put_deal(id, &won_deal(&format!("Customer {i}"), "100.00", "USD", day(10 + i as u32, 12)));
    }
    fake.set_page_size(2);
    let sf = connector(&settings(&fake, 100));
    let since = day(1, 0);

    let all = sf.won_since(since, 50).await.unwrap();
    assert_eq!(all.iter().map(|d| d.deal_id.clone()).collect::<Vec<_>>(), ids);
    // The query, then the two locators its batches gave: `<locator>-<offset>`, no parameters.
    let more: Vec<_> = fake.server.requests_to("/services/data/v62.0/query/").into_iter().collect();
    assert_eq!(more.len(), 2);
    assert!(more.iter().all(|r| r.query.is_empty() && r.status == 200 && r.path.contains("/query/01g")));
    let offsets: Vec<_> = more.iter().map(|r| r.path.rsplit('-').next().unwrap().to_string()).collect();
    assert_eq!(offsets, ["2", "4"]);

    // At most three: the three oldest, in two batches; the rest from the last one's time, which
    // comes again (the caller's intake drops the repeat).
    let before = fake.server.requests().len();
    let first = sf.won_since(since, 3).await.unwrap();
    assert_eq!(first.iter().map(|d| d.deal_id.clone()).collect::<Vec<_>>(), ids[..3]);
    assert_eq!(fake.server.requests().len() - before, 2, "the query and one more batch");
    assert!(fake.queries().last().unwrap().ends_with(" LIMIT 3"));
    let rest = sf.won_since(first[2].modified_at, 3).await.unwrap();
    assert_eq!(rest.iter().map(|d| d.deal_id.clone()).collect::<Vec<_>>(), ids[2..]);
}

#[tokio::test]
async fn salesforce_won_since_skips_rows_it_cannot_read() {
    let fake = FakeSalesforce::start().await;
    let id = |n: u64| record_id("006", 200 + n);
    for n in 1..=4 {
        fake.put_deal(&id(n), &won_deal(&format!("Customer {n}"), "10.00", "USD", day(10 + n as u32, 12)));
    }
    fake.set_field(&id(1), "Id", serde_json::Value::Null);
    fake.set_field(&id(2), "CloseDate", serde_json::json!("last Tuesday"));
    fake.set_field(&id(3), "CloseDate", serde_json::Value::Null);
    fake.set_field(&id(3), "Amount", serde_json::Value::Null);
    let won = connector(&settings(&fake, 50)).won_since(day(1, 0), 10).await.unwrap();
    let got: Vec<_> = won.iter().map(|d| (d.deal_id.as_str(), d.won_at, d.amount.as_deref())).collect();
    // No close date: won when last modified.
    assert_eq!(
        got,
        [(id(3).as_str(), day(13, 12), None), (id(4).as_str(), Utc.with_ymd_and_hms(2026, 10, 14, 0, 0, 0).unwrap(), Some("10.0"))]
    );
}

#[tokio::test]
async fn salesforce_won_since_failures_are_told_apart() {
    let (fake, id) = org_with_acme().await;
    let sf = connector(&settings(&fake, 50));
    assert_eq!(sf.won_since(won_at(), 10).await.unwrap().len(), 1);

    fake.server.fail_next(1);
    assert!(matches!(sf.won_since(won_at(), 10).await, Err(CrmError::Unavailable(_))));

    // An expired token is renewed once.
    fake.expire_tokens();
    let won = sf.won_since(won_at(), 10).await.unwrap();
    assert_eq!(won[0].deal_id, id);
    assert_eq!(fake.token_requests(), 2);

    // An org without multi-currency: the configured currency, and no CurrencyIsoCode asked for.
    fake.set_multi_currency(false);
    let err = sf.won_since(won_at(), 10).await.unwrap_err();
    assert!(matches!(&err, CrmError::Invalid(m) if m.contains("default_currency") && !m.contains("notes_field")), "{err:?}");
    let mut s = settings(&fake, 50);
    s.salesforce.default_currency = Some(Currency::parse("EUR").unwrap());
    let won = connector(&s).won_since(won_at(), 10).await.unwrap();
    assert_eq!(won[0].currency.as_deref(), Some("EUR"));
    assert!(!fake.queries().last().unwrap().contains("CurrencyIsoCode"));
}

/// The rep marked the call on the sample deal done at `at`.
fn call_done(at: DateTime<Utc>, notes: &str) -> CallRecord {
    CallRecord {
        call_id: 314,
        event: "done".into(),
        at,
        outcome: Some("adjusted".into()),
        notes: Some(notes.into()),
        rep_email: "ana@seller.example".into(),
        call_url: "https://firstcall.example/calls/314".into(),
    }
}

#[tokio::test]
async fn salesforce_a_call_is_recorded_as_a_completed_task_on_the_opportunity() {
    let (fake, id) = org_with_acme().await;
    let sf = connector(&settings(&fake, 50));
    let record = call_done(Utc.with_ymd_and_hms(2026, 10, 22, 16, 45, 0).unwrap(), "Migration moved to April; Dana agreed.");
    sf.record_call(&id, &record).await.unwrap();

    // One task, on the opportunity, done, with the subject and the text as plain text.
    let tasks = fake.created_tasks();
    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    assert_eq!(task["WhatId"], id.as_str());
    assert_eq!(task["Subject"], "First call after the order: done (expectations adjusted)");
    assert_eq!(task["Description"], record.text().as_str());
    let text = task["Description"].as_str().unwrap();
    assert!(text.contains("Outcome: adjusted: expectations were reset on the call and the customer agreed"));
    assert!(text.contains("Notes from the call:\n> Migration moved to April; Dana agreed."));
    assert!(text.contains("Call page: https://firstcall.example/calls/314"));
    assert!(text.contains("(call 314)"), "the call id, to recognise a task sent twice");
    assert_eq!((task["Status"].as_str(), task["Priority"].as_str()), (Some("Completed"), Some("Normal")));
    assert_eq!((task["ActivityDate"].as_str(), task["IsClosed"].as_bool()), (Some("2026-10-22"), Some(true)));
    assert!(task["Id"].as_str().unwrap().starts_with("00T"));

    // A token and one create, at the documented resource.
    let requests = fake.server.requests();
    assert_eq!(requests.len(), 2);
    let create = &requests[1];
    assert_eq!((create.method.as_str(), create.path.as_str(), create.status), ("POST", "/services/data/v62.0/sobjects/Task/", 201));

    // The opportunity lists it under its tasks: the next read of the deal sees it.
    let deal = sf.fetch_deal(&id).await.unwrap();
    let recorded: Vec<_> = deal.activities.iter().filter(|a| a.kind == CrmActivityKind::Task).collect();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].subject, "First call after the order: done (expectations adjusted)");
    assert_eq!(recorded[0].body.as_deref(), Some(record.text().as_str()));

    // A cancelled call, on the opportunity's 15-character id.
    let cancelled = CallRecord { event: "cancelled".into(), outcome: None, notes: None, ..record.clone() };
    sf.record_call(&id[..15], &cancelled).await.unwrap();
    let tasks = fake.created_tasks();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[1]["Subject"], "First call after the order: cancelled (the order was cancelled)");
    assert_eq!(tasks[1]["WhatId"], &id[..15]);
}

#[tokio::test]
async fn salesforce_long_notes_fit_the_task_and_keep_the_call_id() {
    let (fake, id) = org_with_acme().await;
    let sf = connector(&settings(&fake, 50));
    // Longer than a task's Comments (32,000 characters), which the org would refuse.
    let record = call_done(won_at(), &"All good. ".repeat(4_000));
    sf.record_call(&id, &record).await.unwrap();
    let tasks = fake.created_tasks();
    let text = tasks[0]["Description"].as_str().unwrap();
    assert_eq!(text.chars().count(), 32_000);
    assert!(text.ends_with("Call page: https://firstcall.example/calls/314\nRecorded by firstcall (call 314) at 2026-10-15 14:00 UTC"));
}

#[tokio::test]
async fn salesforce_recording_a_call_failures_are_told_apart() {
    let (fake, id) = org_with_acme().await;
    let sf = connector(&settings(&fake, 50));
    let record = call_done(won_at(), "fine");

    // A server error is retried later; nothing was created.
    sf.fetch_deal(&id).await.unwrap();
    fake.server.fail_next(1);
    assert!(matches!(sf.record_call(&id, &record).await, Err(CrmError::Unavailable(_))));
    assert!(fake.created_tasks().is_empty());

    // An opportunity that is gone: Salesforce answers 400 INVALID_CROSS_REFERENCE_KEY on WhatId.
    let err = sf.record_call(&record_id("006", 999), &record).await.unwrap_err();
    assert!(matches!(&err, CrmError::NotFound(m) if m.contains("INVALID_CROSS_REFERENCE_KEY")), "{err:?}");
    assert_eq!(fake.server.requests().last().unwrap().status, 400);
    assert!(fake.created_tasks().is_empty());

    // Ids that are not opportunity ids never reach the org: an account's id would put the task
    // on the account.
    let before = fake.server.requests().len();
    for bad in ["006' OR Name != '", "006Dn000004ABC", "", "12345", &record_id("001", 1042)] {
        assert!(matches!(sf.record_call(bad, &record).await, Err(CrmError::NotFound(_))), "{bad}");
    }
    assert_eq!(fake.server.requests().len(), before);

    // An expired token is renewed once and the task sent once more; it is created once.
    fake.expire_tokens();
    sf.record_call(&id, &record).await.unwrap();
    assert_eq!(fake.created_tasks().len(), 1);
    assert_eq!(fake.token_requests(), 2);
    let creates: Vec<_> = fake.server.requests_to("/services/data/v62.0/sobjects/Task").iter().map(|r| r.status).collect();
    assert_eq!(creates, [500, 400, 401, 201]);

    // A refused session after the renewal is a refusal.
    fake.set_sessions_refused(true);
    assert!(matches!(sf.record_call(&id, &record).await, Err(CrmError::Unauthorized(_))));
    assert_eq!(fake.created_tasks().len(), 1);
}

#[tokio::test]
async fn salesforce_the_fake_org_refuses_tasks_an_org_refuses() {
    let (fake, id) = org_with_acme().await;
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/services/oauth2/token", fake.server.base_url))
        .form(&[("grant_type", "client_credentials"), ("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{}/services/data/v62.0/sobjects/Task/", fake.server.base_url);
    let create = |body: serde_json::Value| {
        let req = http.post(&url).bearer_auth(token["access_token"].as_str().unwrap()).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, body[0]["errorCode"].as_str().unwrap_or_default().to_string(), body[0]["fields"][0].as_str().map(String::from))
        }
    };
    let task = |k: &str, v: serde_json::Value| {
        let mut t =
            serde_json::json!({"WhatId": id, "Subject": "x", "Status": "Completed", "Priority": "Normal", "ActivityDate": "2026-10-22"});
        t[k] = v;
        t
    };
    let field = |f: &str| Some(f.to_string());
    assert_eq!(create(task("Status", serde_json::Value::Null)).await, (400, "REQUIRED_FIELD_MISSING".into(), field("Status")));
    assert_eq!(create(task("Priority", "Urgent".into())).await, (400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST".into(), field("Priority")));
    assert_eq!(create(task("Subject", "s".repeat(256).into())).await, (400, "STRING_TOO_LONG".into(), field("Subject")));
    assert_eq!(create(task("ActivityDate", "22/10/2026".into())).await, (400, "JSON_PARSER_ERROR".into(), field("ActivityDate")));
    assert_eq!(create(task("WhatId", record_id("006", 5).into())).await, (400, "INVALID_CROSS_REFERENCE_KEY".into(), field("WhatId")));
    assert_eq!(create(task("WhatId", "not-an-id".into())).await, (400, "FIELD_INTEGRITY_EXCEPTION".into(), field("WhatId")));
    assert_eq!(create(task("Comments", "x".into())).await.1, "INVALID_FIELD");
    assert!(fake.created_tasks().is_empty());
    // Status and Priority left out take the org's defaults.
    let mut minimal = task("Subject", "y".into());
    minimal.as_object_mut().unwrap().retain(|k, _| k == "WhatId" || k == "Subject");
    assert_eq!(create(minimal).await.0, 201);
    let created = fake.created_tasks();
    assert_eq!(
        (created[0]["Status"].as_str(), created[0]["Priority"].as_str(), created[0]["IsClosed"].as_bool()),
        (Some("Not Started"), Some("Normal"), Some(false))
    );
}
