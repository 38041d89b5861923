//! The Pipedrive connector against a fake Pipedrive: a won deal read into the recap's proposal
//! as a rep would see it, every page followed, the CRM's rate limits respected, each way
//! Pipedrive can refuse turned into the error the engine acts on, and the reconciler's question:
//! the deals won since a time, oldest change first; and a first call's outcome written back to
//! the deal as a note.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use firstcall::config::CrmSettings;
use firstcall::config::crm::{Credential, PipedriveConnector, RoleMap};
use firstcall::crm::pipedrive::Pipedrive;
use firstcall::crm::{CallRecord, Connector, CrmError, WonDeal};
use firstcall::domain::Source;
use firstcall::proposals::model::{ActivityKind, ContactRole, Proposal};
use testkit::crm::pipedrive::{API_USER_ID, FakePipedrive, NOTES_FIELD_KEY, TOKEN};
use testkit::crm::{SampleDeal, SampleOwner};

const DEAL: u64 = 42;

fn won_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 15, 0, 0).unwrap()
}

/// A fake serving the sample deal as deal 42.
async fn fake_with_sample() -> FakePipedrive {
    let fake = FakePipedrive::start().await;
    fake.put_deal(DEAL, &SampleDeal::acme(won_at()));
    fake
}

/// `[crm]` with Pipedrive pointed at the fake, at `rps` requests per second.
fn settings(fake: &FakePipedrive, token: &str, rps: u32) -> CrmSettings {
    CrmSettings {
        pipedrive: PipedriveConnector {
            base_url: Some(fake.server.base_url.clone()),
            api_token: Some(Credential(token.into())),
            requests_per_second: rps,
            notes_field: Some(NOTES_FIELD_KEY.into()),
        },
        ..CrmSettings::default()
    }
}

fn connector(fake: &FakePipedrive, rps: u32) -> Pipedrive {
    let s = settings(fake, TOKEN, rps);
    Pipedrive::new(&s.pipedrive, &s).unwrap()
}

async fn proposal(c: &Pipedrive, deal: &str) -> Proposal {
    c.fetch_deal(deal).await.unwrap().to_proposal(Source::Pipedrive, deal, &RoleMap::default())
}

#[tokio::test]
async fn a_won_deal_reads_into_the_recap_a_rep_expects() {
    let fake = fake_with_sample().await;
    let c = connector(&fake, 50);
    let deal = c.fetch_deal("42").await.unwrap();
    let p = deal.to_proposal(Source::Pipedrive, "42", &RoleMap::default());

    assert_eq!(p.account.name, "Acme Corp");
    assert_eq!(p.rep_email.as_ref().map(|e| e.as_str()), Some("ana@seller.example"));
    let contacts: Vec<_> = p.contacts.iter().map(|c| (c.name.as_str(), c.email.as_ref().map(|e| e.as_str()), c.role)).collect();
    assert_eq!(
        contacts,
        [
            ("Dana Whitfield", Some("dana@acme.example"), ContactRole::DecisionMaker),
            ("Priya Raman", Some("priya@acme.example"), ContactRole::FunctionalDecisionMaker),
            ("Sam Otieno", None, ContactRole::Other),
        ]
    );
    // What was ordered: the deal's products (Pipedrive has no quote; the proposal lists none).
    assert!(p.line_items.is_empty());
    let ordered = deal.ordered_items();
    let items: Vec<_> = ordered
        .iter()
        .map(|l| {
            let price = l.unit_price.as_ref().unwrap();
            (l.name.as_str(), l.quantity, price.minor, price.currency.to_string())
        })
        .collect();
    assert_eq!(items, [("Pro seat (annual)", 120.0, 42_000, "USD".to_string()), ("SSO add-on", 1.0, 1_400_000, "USD".to_string())]);

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
    assert_eq!(p.activities[0].at, won_at() - chrono::TimeDelta::days(30));

    let reqs: Vec<_> = p.requirements.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(reqs, ["sso", "migrate"]);
    let promised: Vec<_> = p.commitments.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(promised, ["sso"]);
    assert_eq!(p.unreadable.len(), 1, "{:?}", p.unreadable);
    assert_eq!(p.unreadable[0].line, "#promise migrate by end of March: Migration service");
    assert!(!p.unreadable[0].reason.is_empty());
    assert!(p.unreadable[0].stated_in.starts_with("Pipedrive note"), "{}", p.unreadable[0].stated_in);

    // Eight requests, each with the token in its header and never in the URL.
    let sent = fake.server.requests();
    assert_eq!(sent.len(), 8, "{:#?}", sent.iter().map(|r| (&r.path, &r.query)).collect::<Vec<_>>());
    assert!(sent.iter().all(|r| r.api_token.as_deref() == Some(TOKEN) && r.authorization.is_none()));
    assert!(sent.iter().all(|r| !r.query.contains("api_token") && !r.query.contains(TOKEN) && !r.path.contains(TOKEN)));
}

#[tokio::test]
async fn the_deal_field_adds_its_lines_after_every_note() {
    let fake = FakePipedrive::start().await;
    let mut deal = SampleDeal::acme(won_at());
    deal.notes_field = Some("#need audit should: Audit log export\n#promise audit by 2027-02-01: Export to S3".into());
    fake.put_deal(DEAL, &deal);
    let p = proposal(&connector(&fake, 50), "42").await;
    let reqs: Vec<_> = p.requirements.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(reqs, ["sso", "migrate", "audit"]);
    assert_eq!(p.requirements[2].stated_in.as_deref(), Some("Pipedrive deal field"));
    let promised: Vec<_> = p.commitments.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(promised, ["sso", "audit"]);
}

#[tokio::test]
async fn every_page_is_read_following_pipedrive_s_cursors() {
    let fake = fake_with_sample().await;
    fake.set_page_size(1);
    let c = connector(&fake, 100);
    let deal = c.fetch_deal("42").await.unwrap();
    assert_eq!(deal.contacts.len(), 3);
    assert_eq!(deal.line_items.len(), 2);
    assert_eq!(deal.activities.len(), 5, "two notes, an email, a call and a meeting");
    assert_eq!(deal.ordered_items().len(), 2);
    let p = deal.to_proposal(Source::Pipedrive, "42", &RoleMap::default());
    assert_eq!(p.requirements.len(), 2);

    let queries = |path: &str| fake.server.requests_to(path).into_iter().map(|r| r.query).collect::<Vec<_>>();
    // v1 lists: `start` moves to each `next_start`.
    let participants = queries("/api/v1/deals/42/participants");
    assert_eq!(participants.len(), 3);
    for (n, q) in participants.iter().enumerate() {
        assert!(q.contains(&format!("start={n}&")) || q.ends_with(&format!("start={n}")), "{q}");
    }
    let notes = queries("/api/v1/notes");
    assert_eq!(notes.len(), 2);
    assert!(notes.iter().all(|q| q.contains("deal_id=42")));
    assert!(notes[1].contains("start=1"), "{}", notes[1]);
    // v2 lists: each next page asks for the `next_cursor` the last one gave.
    for (path, pages) in [("/api/v2/deals/42/products", 2), ("/api/v2/activities", 3), ("/api/v2/persons", 3)] {
        let qs = queries(path);
        assert_eq!(qs.len(), pages, "{path}: {qs:?}");
        assert!(!qs[0].contains("cursor="), "{path}: {}", qs[0]);
        for (n, q) in qs.iter().enumerate().skip(1) {
            assert!(q.contains(&format!("cursor={}", FakePipedrive::cursor_at(n))), "{path}: {q}");
        }
    }
    // The persons are asked for by id, together.
    assert!(queries("/api/v2/persons").iter().all(|q| q.contains("ids=701%2C702%2C703")));
}

#[tokio::test]
async fn a_429_storm_pauses_the_connector_until_pipedrive_allows_it() {
    let fake = fake_with_sample().await;
    fake.server.limit(2, 1);
    let c = connector(&fake, 20);
    let deal = c.fetch_deal("42").await.unwrap();
    assert_eq!(deal.ordered_items().len(), 2);
    let p = deal.to_proposal(Source::Pipedrive, "42", &RoleMap::default());
    assert_eq!(p.contacts.len(), 3);

    let sent = fake.server.requests();
    assert!(fake.server.throttled() >= 1, "the fake never throttled");
    for (n, r) in sent.iter().enumerate().filter(|(_, r)| r.status == 429) {
        if let Some(next) = sent.get(n + 1) {
            let gap = next.at.duration_since(r.at);
            assert!(gap >= Duration::from_secs(1), "a request {gap:?} after a 429 with Retry-After: 1");
        }
    }
}

#[tokio::test]
async fn a_connector_at_pipedrive_s_limit_is_never_throttled() {
    let fake = fake_with_sample().await;
    fake.server.limit(2, 1);
    let c = connector(&fake, 2);
    proposal(&c, "42").await;
    assert_eq!(fake.server.throttled(), 0);
}

#[tokio::test]
async fn pipedrive_s_limit_headers_pause_the_connector_before_a_429() {
    let fake = fake_with_sample().await;
    fake.set_window_limit(4);
    let c = connector(&fake, 100);
    let started = Instant::now();
    let p = proposal(&c, "42").await;
    assert_eq!(p.contacts.len(), 3);
    // Eight requests at four per 2-second window: the connector waited out one window.
    assert!(started.elapsed() >= Duration::from_millis(1900), "{:?}", started.elapsed());
    let times: Vec<Instant> = fake.server.requests().iter().map(|r| r.at).collect();
    for (n, t) in times.iter().enumerate() {
        let within = times[n..].iter().take_while(|u| u.duration_since(*t) < Duration::from_secs(2)).count();
        assert!(within <= 4, "{within} requests within 2 s");
    }
}

#[tokio::test]
async fn a_server_error_is_unavailable_for_the_engine_to_retry() {
    let fake = fake_with_sample().await;
    fake.server.fail_next(1);
    let err = connector(&fake, 50).fetch_deal("42").await.unwrap_err();
    assert!(matches!(err, CrmError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_deal_pipedrive_does_not_have_is_not_found() {
    let fake = fake_with_sample().await;
    let err = connector(&fake, 50).fetch_deal("4242").await.unwrap_err();
    assert!(matches!(err, CrmError::NotFound(_)), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_malformed_deal_id_is_not_found_without_asking_pipedrive() {
    let fake = fake_with_sample().await;
    let c = connector(&fake, 50);
    for bad in ["", "abc", "42/../../users/1", "42?limit=1", "-42", "4.2", "99999999999999999999"] {
        let err = c.fetch_deal(bad).await.unwrap_err();
        assert!(matches!(err, CrmError::NotFound(_)), "{bad:?}: {err:?}");
    }
    assert!(fake.server.requests().is_empty());
}

#[tokio::test]
async fn a_refused_token_is_unauthorized_and_never_shown() {
    let fake = fake_with_sample().await;
    // A token Pipedrive never issued.
    let s = settings(&fake, "not-a-pipedrive-token", 50);
    let err = Pipedrive::new(&s.pipedrive, &s).unwrap().fetch_deal("42").await.unwrap_err();
    assert!(matches!(err, CrmError::Unauthorized(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("not-a-pipedrive-token"));

    // A good token the user has since regenerated.
    let c = connector(&fake, 50);
    c.fetch_deal("42").await.unwrap();
    fake.set_token("a-regenerated-token");
    let err = c.fetch_deal("42").await.unwrap_err();
    assert!(matches!(err, CrmError::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains("unauthorized access"), "{err}");
    assert!(!format!("{err} {err:?}").contains(TOKEN));
}

// The reconciler's question: `won_since`.

/// The sample deal won at `at`, for `account`, owned by `owner` (`5501` is Ana's, the sample's
/// owner), for `amount` in `currency`.
fn won_deal(at: DateTime<Utc>, account: &str, owner: &str, amount: &str, currency: &str) -> SampleDeal {
    let mut deal = SampleDeal::acme(at);
    deal.account = account.into();
    deal.amount = amount.into();
    deal.currency = currency.into();
    if owner != "5501" {
        deal.owner = Some(SampleOwner {
            id: owner.into(),
            email: format!("rep{owner}@seller.example"),
            first_name: "Rep".into(),
            last_name: owner.into(),
        });
    }
    deal
}

fn hours(h: i64) -> chrono::TimeDelta {
    chrono::TimeDelta::hours(h)
}

/// `(deal id, modified at)` of each deal, in the order returned.
fn ids_and_times(deals: &[WonDeal]) -> Vec<(&str, DateTime<Utc>)> {
    deals.iter().map(|d| (d.deal_id.as_str(), d.modified_at)).collect()
}

#[tokio::test]
async fn won_since_returns_the_won_deals_changed_since_oldest_change_first() {
    let since = won_at();
    let fake = FakePipedrive::start().await;
    // Won before `since` and not changed since: already read.
    fake.put_deal(101, &won_deal(since - hours(1), "Initech", "5501", "900", "USD"));
    // Won exactly at `since`.
    fake.put_deal(102, &won_deal(since, "Acme Corp", "5501", "64400.00", "USD"));
    // Won after `since` and changed later: its place is its last change.
    fake.put_deal(103, &won_deal(since + hours(24), "Umbrella", "5501", "15000", "USD"));
    fake.set_deal_update_time(103, since + hours(72));
    // Another rep's deal, in euros.
    fake.put_deal(104, &won_deal(since + hours(48), "Globex", "5502", "1200.5", "EUR"));
    // Pipedrive kept no won time: the last change stands in.
    fake.put_deal(105, &won_deal(since + hours(12), "Hooli", "5502", "300", "EUR"));
    fake.set_deal_update_time(105, since + hours(96));
    fake.edit_deal(105, |d| d["won_time"] = serde_json::Value::Null);
    // Lost and open deals changed since: not won.
    fake.put_deal(106, &won_deal(since + hours(24), "Soylent", "5501", "700", "USD"));
    fake.set_deal_status(106, "lost");
    fake.put_deal(107, &won_deal(since + hours(36), "Stark", "5503", "800", "USD"));
    fake.set_deal_status(107, "open");

    let c = connector(&fake, 50);
    let deals = c.won_since(since, 100).await.unwrap();
    assert_eq!(ids_and_times(&deals), [("102", since), ("104", since + hours(48)), ("103", since + hours(72)), ("105", since + hours(96))]);
    let won: Vec<_> = deals.iter().map(|d| d.won_at).collect();
    assert_eq!(won, [since, since + hours(48), since + hours(24), since + hours(96)]);
    let owners: Vec<_> = deals.iter().map(|d| (d.owner_id.as_deref(), d.owner_email.as_deref())).collect();
    assert_eq!(
        owners,
        [
            (Some("5501"), Some("ana@seller.example")),
            (Some("5502"), Some("rep5502@seller.example")),
            (Some("5501"), Some("ana@seller.example")),
            (Some("5502"), Some("rep5502@seller.example")),
        ]
    );
    let money: Vec<_> = deals.iter().map(|d| (d.amount.as_deref().unwrap().parse::<f64>().unwrap(), d.currency.as_deref())).collect();
    assert_eq!(money, [(64400.0, Some("USD")), (1200.5, Some("EUR")), (15000.0, Some("USD")), (300.0, Some("EUR"))]);
    assert_eq!(deals[1].amount.as_deref(), Some("1200.5"), "the amount is the value as Pipedrive sent it");
    let accounts: Vec<_> = deals.iter().map(|d| d.account_name.as_deref()).collect();
    assert_eq!(accounts, [Some("Acme Corp"), Some("Globex"), Some("Umbrella"), Some("Hooli")]);

    // One page of deals asked for as the v2 reference documents it, one lookup per owner, and
    // the four organizations in one request.
    let sent = fake.server.requests();
    let paths: Vec<_> = sent.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/api/v2/deals", "/api/v1/users/5501", "/api/v1/users/5502", "/api/v2/organizations"]);
    let q = &sent[0].query;
    for part in ["status=won", "updated_since=2026-11-20T15%3A00%3A00Z", "sort_by=update_time", "sort_direction=asc", "limit=100"] {
        assert!(q.contains(part), "{part} not in {q}");
    }
    assert!(!q.contains("cursor="), "{q}");
    assert!(sent.iter().all(|r| r.api_token.as_deref() == Some(TOKEN) && !r.query.contains(TOKEN)));

    // Pipedrive keeps whole seconds: a `since` within a second asks from its start and drops
    // what was changed before `since`.
    let later = c.won_since(since + chrono::TimeDelta::milliseconds(500), 100).await.unwrap();
    assert_eq!(later.iter().map(|d| d.deal_id.as_str()).collect::<Vec<_>>(), ["104", "103", "105"]);
    let q = &fake.server.requests_to("/api/v2/deals")[1].query;
    assert!(q.contains("updated_since=2026-11-20T15%3A00%3A00Z"), "{q}");
}

#[tokio::test]
async fn every_page_of_won_deals_is_followed_by_pipedrive_s_cursor() {
    let since = won_at();
    let fake = FakePipedrive::start().await;
    for n in 0..5u64 {
        fake.put_deal(201 + n, &won_deal(since + hours(n as i64), &format!("Account {n}"), "5501", "100", "USD"));
    }
    fake.set_page_size(2);
    let c = connector(&fake, 100);
    let deals = c.won_since(since, 100).await.unwrap();
    let want: Vec<_> = (0..5).map(|n| (format!("{}", 201 + n), since + hours(n))).collect();
    let got: Vec<_> = deals.iter().map(|d| (d.deal_id.clone(), d.modified_at)).collect();
    assert_eq!(got, want);
    assert!(deals.iter().all(|d| d.owner_email.as_deref() == Some("ana@seller.example") && d.account_name.is_some()));

    // Three pages: each next one asks for the `next_cursor` the last one gave, which names the
    // last deal read; the owner once; the five organizations asked for together (three pages of
    // two here).
    let pages: Vec<_> = fake.server.requests_to("/api/v2/deals").into_iter().map(|r| r.query).collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(!pages[0].contains("cursor="));
    assert!(pages[1].contains(&format!("cursor={}", FakePipedrive::update_time_cursor(since + hours(1), 202))), "{}", pages[1]);
    assert!(pages[2].contains(&format!("cursor={}", FakePipedrive::update_time_cursor(since + hours(3), 204))), "{}", pages[2]);
    assert!(pages.iter().all(|q| q.contains("status=won") && q.contains("sort_by=update_time")));
    assert_eq!(fake.server.requests_to("/api/v1/users").len(), 1);
    let orgs: Vec<_> = fake.server.requests_to("/api/v2/organizations").into_iter().map(|r| r.query).collect();
    assert_eq!(orgs.len(), 3, "{orgs:?}");
    assert!(orgs.iter().all(|q| q.contains("ids=") && q.matches("%2C").count() == 4), "{orgs:?}");
    assert_eq!(fake.server.requests().len(), 7);
}

#[tokio::test]
async fn max_stops_early_and_the_rest_comes_from_the_last_modified_at() {
    let since = won_at();
    let fake = FakePipedrive::start().await;
    for n in 0..5u64 {
        fake.put_deal(301 + n, &won_deal(since + hours(n as i64), &format!("Account {n}"), "5501", "100", "USD"));
    }
    fake.set_page_size(2);
    let c = connector(&fake, 100);

    let first = c.won_since(since, 3).await.unwrap();
    assert_eq!(ids_and_times(&first), [("301", since), ("302", since + hours(1)), ("303", since + hours(2))]);
    // Two pages were enough: the third was never asked for.
    assert_eq!(fake.server.requests_to("/api/v2/deals").len(), 2);

    // Asked again from the last one's time: that one again (at `since` is included), then the rest.
    let last = first.last().unwrap().modified_at;
    let second = c.won_since(last, 3).await.unwrap();
    assert_eq!(ids_and_times(&second), [("303", since + hours(2)), ("304", since + hours(3)), ("305", since + hours(4))]);
    let third = c.won_since(second.last().unwrap().modified_at, 3).await.unwrap();
    assert_eq!(ids_and_times(&third), [("305", since + hours(4))]);
}

#[tokio::test]
async fn a_listed_deal_pipedrive_sends_broken_is_skipped_not_the_whole_answer() {
    let since = won_at();
    let fake = FakePipedrive::start().await;
    for n in 0..4u64 {
        fake.put_deal(401 + n, &won_deal(since + hours(n as i64), "Acme Corp", "5501", "100", "USD"));
    }
    fake.edit_deal(402, |d| {
        d.as_object_mut().unwrap().remove("id");
    });
    fake.edit_deal(403, |d| d["won_time"] = serde_json::json!("the day we signed"));
    let deals = connector(&fake, 50).won_since(since, 100).await.unwrap();
    assert_eq!(ids_and_times(&deals), [("401", since), ("404", since + hours(3))]);
}

#[tokio::test]
async fn won_since_with_a_server_error_is_unavailable_for_the_engine_to_retry() {
    let fake = fake_with_sample().await;
    fake.server.fail_next(1);
    let err = connector(&fake, 50).won_since(won_at(), 100).await.unwrap_err();
    assert!(matches!(err, CrmError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(fake.server.requests().len(), 1);

    // Pipedrive down is unavailable too; back up, the same question is answered.
    fake.server.set_down(true);
    let c = connector(&fake, 50);
    assert!(matches!(c.won_since(won_at(), 100).await, Err(CrmError::Unavailable(_))));
    fake.server.set_down(false);
    let deals = c.won_since(won_at(), 100).await.unwrap();
    assert_eq!(ids_and_times(&deals), [("42", won_at())]);
}

// Writing the call's outcome back: `record_call`.

/// Call 17 on the sample deal, marked done at risk, with notes that hold HTML's special characters.
fn call_done() -> CallRecord {
    CallRecord {
        call_id: 17,
        event: "done".into(),
        at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 5, 0).unwrap(),
        outcome: Some("at_risk".into()),
        notes: Some("Dana expects <SSO> & audit export by January.\nPriya will confirm the Okta tenant.".into()),
        rep_email: "ana@seller.example".into(),
        call_url: "https://firstcall.example/calls/17?view=recap&tab=outcome".into(),
    }
}

#[tokio::test]
async fn a_call_outcome_becomes_one_note_on_the_deal_as_pipedrive_documents_it() {
    let fake = fake_with_sample().await;
    let c = connector(&fake, 50);
    let record = call_done();
    c.record_call("42", &record).await.unwrap();

    // One request: "Add a note", the token in its header.
    let sent = fake.server.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].method.as_str(), sent[0].path.as_str(), sent[0].status), ("POST", "/api/v1/notes", 200));
    assert_eq!(sent[0].api_token.as_deref(), Some(TOKEN));
    assert!(sent[0].query.is_empty(), "{}", sent[0].query);

    // Its body: the HTML content and the deal's id as a number, nothing else.
    let bodies = fake.added_notes();
    assert_eq!(bodies.len(), 1);
    let keys: Vec<&String> = bodies[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["content", "deal_id"]);
    assert_eq!(bodies[0]["deal_id"], serde_json::json!(42));
    let content = bodies[0]["content"].as_str().unwrap();
    assert_eq!(
        content,
        "<p><b>First call after the order: done (at risk)</b></p>\
         <p>Outcome: at risk: the customer expects more than will be delivered</p>\
         <p>Rep: ana@seller.example</p>\
         <p>Notes from the call:</p>\
         <p>&gt; Dana expects &lt;SSO&gt; &amp; audit export by January.</p>\
         <p>&gt; Priya will confirm the Okta tenant.</p>\
         <p>Call page: https://firstcall.example/calls/17?view=recap&amp;tab=outcome</p>\
         <p>Recorded by firstcall (call 17) at 2026-12-01 10:05 UTC</p>"
    );

    // The deal now has one note more, that note, written by the token's user.
    let notes = fake.notes_of(DEAL);
    assert_eq!(notes.len(), 3, "the sample's two notes and the call's");
    let note = &notes[2];
    assert_eq!(note["deal_id"], serde_json::json!(DEAL));
    assert_eq!(note["content"].as_str(), Some(content));
    assert_eq!(note["user_id"], serde_json::json!(API_USER_ID));

    // Read back with the deal, it is a note whose first line is the subject, its text the
    // record's (the rep's notes unescaped again).
    let deal = c.fetch_deal("42").await.unwrap();
    let recorded: Vec<_> = deal.activities.iter().filter(|a| a.body.as_deref() == Some(content)).collect();
    assert_eq!(recorded.len(), 1);
    let text = firstcall::crm::text_of_html(content);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(lines, record.text().lines().collect::<Vec<_>>());
    let p = deal.to_proposal(Source::Pipedrive, "42", &RoleMap::default());
    let last = p.activities.last().unwrap();
    assert_eq!((last.kind, last.summary.as_str()), (ActivityKind::Note, "First call after the order: done (at risk)"));
}

#[tokio::test]
async fn recording_with_a_server_error_is_unavailable_and_the_retry_adds_the_note() {
    let fake = fake_with_sample().await;
    let c = connector(&fake, 50);
    fake.server.fail_next(1);
    let err = c.record_call("42", &call_done()).await.unwrap_err();
    assert!(matches!(err, CrmError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(fake.notes_of(DEAL).len(), 2, "no note was added");

    // The engine's retry: the note is added once.
    c.record_call("42", &call_done()).await.unwrap();
    assert_eq!(fake.notes_of(DEAL).len(), 3);
    assert_eq!(fake.server.requests_to("/api/v1/notes").len(), 2);
}

#[tokio::test]
async fn recording_on_a_deal_pipedrive_does_not_have_is_not_found() {
    let fake = fake_with_sample().await;
    let err = connector(&fake, 50).record_call("4242", &call_done()).await.unwrap_err();
    assert!(matches!(err, CrmError::NotFound(_)), "{err:?}");
    assert!(!err.is_retryable());
    let sent = fake.server.requests();
    assert_eq!(sent.iter().map(|r| (r.method.as_str(), r.status)).collect::<Vec<_>>(), [("POST", 404)]);
    assert_eq!(fake.notes_of(4242).len(), 0);
    assert_eq!(fake.notes_of(DEAL).len(), 2);
}

#[tokio::test]
async fn recording_on_a_malformed_deal_id_is_not_found_without_asking_pipedrive() {
    let fake = fake_with_sample().await;
    let c = connector(&fake, 50);
    for bad in ["", "abc", "42/../../users/1", "42?limit=1", "-42", "4.2", "0", "99999999999999999999"] {
        let err = c.record_call(bad, &call_done()).await.unwrap_err();
        assert!(matches!(err, CrmError::NotFound(_)), "{bad:?}: {err:?}");
    }
    assert!(fake.server.requests().is_empty());
}

#[tokio::test]
async fn recording_with_a_refused_token_is_unauthorized_and_adds_no_note() {
    let fake = fake_with_sample().await;
    fake.set_token("a-regenerated-token");
    let err = connector(&fake, 50).record_call("42", &call_done()).await.unwrap_err();
    assert!(matches!(err, CrmError::Unauthorized(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(TOKEN));
    assert_eq!(fake.notes_of(DEAL).len(), 2);
}
