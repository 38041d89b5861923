//! The HubSpot connector against a fake HubSpot on loopback (`testkit::crm::hubspot`): the
//! production connector reads the sample deal as the recap needs it, follows every page, waits
//! out HubSpot's rate limits, and tells apart a server error, a missing deal, a malformed id and
//! a refused token; finds the deals won since a time for the reconciler through HubSpot's CRM
//! search; and writes a call's outcome back as a note on the deal. No database: only the
//! connector and the fake.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use firstcall::config::CrmSettings;
use firstcall::config::crm::{Credential, HubspotConnector, RoleMap};
use firstcall::crm::hubspot::HubSpot;
use firstcall::crm::{CallRecord, Connector, CrmActivityKind, CrmError, text_of_html};
use firstcall::domain::Source;
use firstcall::proposals::model::{ActivityKind, ContactRole};
use testkit::crm::hubspot::{FakeHubSpot, NOTES_PROPERTY, TOKEN};
use testkit::crm::{SampleContact, SampleDeal, SampleLineItem, SampleOwner};

const DEAL: &str = "8154002031";

fn won_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 15, 0, 0).unwrap()
}

/// The connector as production builds it, pointed at the fake, making at most `rps` requests a
/// second with `token`.
fn connector(fake: &FakeHubSpot, rps: u32, token: &str) -> HubSpot {
    let s = CrmSettings {
        hubspot: HubspotConnector {
            base_url: fake.server.base_url.clone(),
            token: Some(Credential(token.into())),
            requests_per_second: rps,
            notes_property: Some(NOTES_PROPERTY.into()),
        },
        ..CrmSettings::default()
    };
    HubSpot::new(&s.hubspot, &s).expect("a HubSpot connector")
}

async fn fake_with_sample() -> FakeHubSpot {
    let fake = FakeHubSpot::start().await;
    fake.put_deal(DEAL, &SampleDeal::acme(won_at()));
    fake
}

/// The values of `name` in a recorded query string.
fn query_values(query: &str, name: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == name).map(|(_, v)| v.into_owned()).collect()
}

#[tokio::test]
async fn the_sample_deal_reads_into_the_recap_the_rep_gets() {
    let fake = fake_with_sample().await;
    let hubspot = connector(&fake, 50, TOKEN);

    let deal = hubspot.fetch_deal(DEAL).await.expect("the deal is read");
    let p = deal.to_proposal(Source::Hubspot, DEAL, &RoleMap::default());

    // The owner is the rep; the primary company is the account.
    assert_eq!(p.rep_email.as_ref().map(|e| e.as_str()), Some("ana@seller.example"));
    assert_eq!(p.account.name, "Acme Corp");
    // Association labels are the contacts' roles; no label is no role.
    let contacts: Vec<_> = p.contacts.iter().map(|c| (c.name.as_str(), c.role, c.title.as_deref())).collect();
    assert_eq!(
        contacts,
        [
            ("Dana Whitfield", ContactRole::DecisionMaker, Some("COO")),
            ("Priya Raman", ContactRole::FunctionalDecisionMaker, Some("IT Director")),
            ("Sam Otieno", ContactRole::Other, None),
        ]
    );
    // Both line items at their exact prices: what was ordered (the deal has no quote, so the
    // proposal lists none).
    assert!(p.line_items.is_empty());
    let ordered = deal.ordered_items();
    let items: Vec<_> = ordered
        .iter()
        .map(|i| {
            let price = i.unit_price.as_ref().unwrap();
            (i.sku.as_str(), i.name.as_str(), i.quantity, price.minor, price.currency.as_str())
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
    // What the notes say: two requirements, one commitment, and the promise without a date.
    let reqs: Vec<_> = p.requirements.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(reqs, ["sso", "migrate"]);
    let commitments: Vec<_> = p.commitments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(commitments, ["SAML SSO with the Okta connector"]);
    let bad = p.unreadable.iter().find(|u| u.line == "#promise migrate by end of March: Migration service").expect("the undated promise");
    assert!(!bad.reason.trim().is_empty());
    assert!(bad.stated_in.starts_with("HubSpot note"), "{}", bad.stated_in);
    // An email's body is never read for markup.
    let email = deal.activities.iter().find(|a| a.kind == CrmActivityKind::Email).unwrap();
    assert_eq!(email.body, None);

    // Every request carried the private app token; the deal cost what the module doc says.
    let requests = fake.server.requests();
    assert!(requests.iter().all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}"))));
    assert_eq!(requests.len(), 18, "{:#?}", requests.iter().map(|r| &r.path).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_deal_property_named_in_config_is_read_after_the_notes() {
    let fake = FakeHubSpot::start().await;
    let mut deal = SampleDeal::acme(won_at());
    deal.notes_field = Some("#need audit should: Audit log export\n#need sso must by 2027-02-01: SSO through Okta and Azure AD".into());
    fake.put_deal(DEAL, &deal);

    let p = connector(&fake, 50, TOKEN).fetch_deal(DEAL).await.unwrap().to_proposal(Source::Hubspot, DEAL, &RoleMap::default());

    // The property is the deal's latest word: it amends the note's `sso` and adds `audit`.
    let reqs: Vec<_> = p.requirements.iter().map(|r| (r.id.as_str(), r.text.as_str())).collect();
    assert_eq!(
        reqs,
        [
            ("sso", "SSO through Okta and Azure AD"),
            ("migrate", "Move five years of bookings off the old scheduler"),
            ("audit", "Audit log export")
        ]
    );
    assert_eq!(p.requirements[2].stated_in.as_deref(), Some("HubSpot deal field"));
    let deal_get = &fake.server.requests_to("/crm/v3/objects/deals/")[0];
    assert!(query_values(&deal_get.query, "properties")[0].split(',').any(|p| p == NOTES_PROPERTY));
}

#[tokio::test]
async fn with_one_record_a_page_every_page_is_followed_by_its_cursor() {
    let fake = fake_with_sample().await;
    fake.set_page_size(1);

    let deal = connector(&fake, 100, TOKEN).fetch_deal(DEAL).await.unwrap();

    let names: Vec<_> = deal.contacts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Dana Whitfield", "Priya Raman", "Sam Otieno"]);
    assert_eq!(deal.line_items.len(), 2);
    let kinds: Vec<_> = deal.activities.iter().map(|a| a.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == CrmActivityKind::Note).count(), 2);
    assert_eq!(kinds.len(), 5, "two notes, an email, a call and a meeting");

    // Three contacts, three pages: the first without a cursor, then each `paging.next.after`.
    let pages = fake.server.requests_to(&format!("/crm/v4/objects/deals/{DEAL}/associations/contacts"));
    let afters: Vec<Vec<String>> = pages.iter().map(|r| query_values(&r.query, "after")).collect();
    assert_eq!(afters.len(), 3);
    assert!(afters[0].is_empty());
    // Every cursor the fake handed out came back exactly once, and no other did.
    let issued = fake.issued_cursors();
    assert_eq!(issued.len(), 2 + 1 + 1, "contacts, line items, notes");
    let sent: Vec<String> = fake.server.requests_to("/crm/v4/").iter().flat_map(|r| query_values(&r.query, "after")).collect();
    let mut issued_sorted = issued.clone();
    issued_sorted.sort();
    let mut sent_sorted = sent.clone();
    sent_sorted.sort();
    assert_eq!(sent_sorted, issued_sorted);
}

fn item(sku: &str, name: &str, quantity: f64, price: &str) -> SampleLineItem {
    SampleLineItem { sku: sku.into(), name: name.into(), quantity, price: price.into() }
}

/// A line item as (sku, name, quantity, unit price, currency).
type Priced<'a> = (Option<&'a str>, &'a str, f64, &'a str, Option<&'a str>);

fn priced(items: &[firstcall::crm::CrmLineItem]) -> Vec<Priced<'_>> {
    items.iter().map(|i| (i.sku.as_deref(), i.name.as_str(), i.quantity, i.unit_price.as_str(), i.currency.as_deref())).collect()
}

#[tokio::test]
async fn a_deal_with_two_quotes_gets_the_newest_quotes_line_items_beside_its_own() {
    let fake = fake_with_sample().await;
    // The newer quote is added first: the connector goes by `hs_createdate`, not by id.
    let newest = fake.put_quote(
        DEAL,
        "Acme proposal v2",
        won_at() - chrono::TimeDelta::days(5),
        &[item("PRO-SEAT", "Pro seat (annual)", 100.0, "399.99"), item("SSO-ADDON", "SSO add-on", 1.0, "12500.50")],
    );
    let older = fake.put_quote(
        DEAL,
        "Acme proposal v1",
        won_at() - chrono::TimeDelta::days(20),
        &[item("PRO-SEAT", "Pro seat (annual)", 80.0, "450.00")],
    );

    let deal = connector(&fake, 100, TOKEN).fetch_deal(DEAL).await.expect("the deal is read");

    assert_eq!(
        priced(deal.quote_line_items.as_deref().expect("the deal has a quote")),
        [
            (Some("PRO-SEAT"), "Pro seat (annual)", 100.0, "399.99", Some("USD")),
            (Some("SSO-ADDON"), "SSO add-on", 1.0, "12500.50", Some("USD")),
        ]
    );
    // The deal's own line items stay its own, not the quotes' copies.
    assert_eq!(
        priced(&deal.line_items),
        [
            (Some("PRO-SEAT"), "Pro seat (annual)", 120.0, "420.00", Some("USD")),
            (Some("SSO-ADDON"), "SSO add-on", 1.0, "14000.00", Some("USD")),
        ]
    );
    // Both quotes are in the buying process; only the newest one's line items were asked for.
    let mut quotes: Vec<_> = deal.activities.iter().filter(|a| a.kind == CrmActivityKind::Quote).map(|a| a.subject.as_str()).collect();
    quotes.sort();
    assert_eq!(quotes, ["Acme proposal v1", "Acme proposal v2"]);
    assert_eq!(fake.server.requests_to(&format!("/crm/v4/objects/quotes/{newest}/associations/line_items")).len(), 1);
    assert!(fake.server.requests_to(&format!("/crm/v4/objects/quotes/{older}/")).is_empty());
    // The module doc's count: the sample's 18, the quotes' batch read, the quote's line items'
    // association page and their batch read.
    let requests = fake.server.requests();
    assert_eq!(requests.len(), 18 + 3, "{:#?}", requests.iter().map(|r| &r.path).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_deal_without_a_quote_has_no_quote_line_items() {
    let fake = fake_with_sample().await;

    let deal = connector(&fake, 100, TOKEN).fetch_deal(DEAL).await.unwrap();

    assert_eq!(deal.quote_line_items, None);
    assert_eq!(deal.line_items.len(), 2);
    assert!(fake.server.requests_to("/crm/v4/objects/quotes/").is_empty());
}

#[tokio::test]
async fn a_quote_without_line_items_has_an_empty_list() {
    let fake = fake_with_sample().await;
    fake.put_quote(DEAL, "Empty quote", won_at() - chrono::TimeDelta::days(3), &[]);

    let deal = connector(&fake, 100, TOKEN).fetch_deal(DEAL).await.unwrap();

    assert_eq!(deal.quote_line_items, Some(Vec::new()));
    // No line items, no batch read for them beyond the deal's own.
    assert_eq!(fake.server.requests_to("/crm/v3/objects/line_items/batch/read").len(), 1);
}

#[tokio::test]
async fn the_quotes_line_items_are_read_page_by_page() {
    let fake = fake_with_sample().await;
    let items: Vec<SampleLineItem> =
        (1..=5).map(|i| item(&format!("SKU-{i}"), &format!("Item {i}"), i as f64, &format!("{i}0.05"))).collect();
    let quote = fake.put_quote(DEAL, "Acme proposal", won_at() - chrono::TimeDelta::days(5), &items);
    fake.set_page_size(2);

    let deal = connector(&fake, 200, TOKEN).fetch_deal(DEAL).await.unwrap();

    let read: Vec<_> = deal.quote_line_items.as_deref().unwrap().iter().map(|i| (i.sku.clone().unwrap(), i.unit_price.clone())).collect();
    let expected: Vec<_> = (1..=5).map(|i| (format!("SKU-{i}"), format!("{i}0.05"))).collect();
    assert_eq!(read, expected);
    // Five line items at two a page: three pages, the first without a cursor, each later one
    // with the cursor the page before handed out.
    let pages = fake.server.requests_to(&format!("/crm/v4/objects/quotes/{quote}/associations/line_items"));
    let afters: Vec<Vec<String>> = pages.iter().map(|r| query_values(&r.query, "after")).collect();
    assert_eq!(afters.len(), 3);
    assert!(afters[0].is_empty());
    assert!(afters[1..].iter().all(|a| a.len() == 1));
    let issued = fake.issued_cursors();
    assert!(afters[1..].iter().all(|a| issued.contains(&a[0])));
}

#[tokio::test]
async fn a_large_deal_is_read_in_batches_of_a_hundred() {
    let fake = FakeHubSpot::start().await;
    let mut deal = SampleDeal::acme(won_at());
    deal.contacts = (0..250)
        .map(|i| SampleContact {
            id: (90_000 + i).to_string(),
            first_name: format!("Person{i}"),
            last_name: "Acme".into(),
            email: Some(format!("p{i}@acme.example")),
            title: None,
            role: None,
        })
        .collect();
    fake.put_deal(DEAL, &deal);

    let read = connector(&fake, 200, TOKEN).fetch_deal(DEAL).await.unwrap();

    assert_eq!(read.contacts.len(), 250);
    assert_eq!(read.contacts[249].email.as_deref(), Some("p249@acme.example"));
    assert_eq!(fake.server.requests_to("/crm/v3/objects/contacts/batch/read").len(), 3);
}

#[tokio::test]
async fn a_429_storm_pauses_the_connector_for_retry_after() {
    let fake = fake_with_sample().await;
    fake.server.limit(2, 1);

    // Configured well above what the CRM allows.
    let deal = connector(&fake, 20, TOKEN).fetch_deal(DEAL).await.expect("the deal is read despite the 429s");

    assert_eq!(deal.contacts.len(), 3);
    assert!(fake.server.throttled() >= 1, "the fake answered no 429");
    let requests = fake.server.requests();
    for refused in requests.iter().filter(|r| r.status == 429) {
        let too_soon: Vec<_> =
            requests.iter().filter(|r| r.at > refused.at && r.at.duration_since(refused.at) < Duration::from_secs(1)).collect();
        assert!(too_soon.is_empty(), "{} request(s) within 1 s after a 429: {too_soon:#?}", too_soon.len());
    }
}

#[tokio::test]
async fn a_connector_at_the_crms_limit_is_never_refused() {
    let fake = fake_with_sample().await;
    fake.server.limit(2, 1);

    connector(&fake, 2, TOKEN).fetch_deal(DEAL).await.unwrap();

    assert_eq!(fake.server.throttled(), 0);
    assert!(fake.server.busiest_second() <= 2);
}

#[tokio::test]
async fn hubspots_limit_headers_slow_the_connector_before_a_429() {
    let fake = fake_with_sample().await;
    // HubSpot announces 5 requests a second in X-HubSpot-RateLimit-* and answers 429 beyond.
    fake.app_limit(5, 1000);
    let started = Instant::now();

    connector(&fake, 100, TOKEN).fetch_deal(DEAL).await.unwrap();

    assert_eq!(fake.server.throttled(), 0, "the connector waited when Remaining said 0");
    assert!(started.elapsed() >= Duration::from_secs(3), "18 requests at 5 a second take over 3 s");
}

#[tokio::test]
async fn a_server_error_is_unavailable_for_the_engine_to_retry() {
    let fake = fake_with_sample().await;
    fake.server.fail_next(1);

    let err = connector(&fake, 50, TOKEN).fetch_deal(DEAL).await.unwrap_err();

    assert!(matches!(err, CrmError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_deal_hubspot_does_not_have_is_not_found() {
    let fake = fake_with_sample().await;

    let err = connector(&fake, 50, TOKEN).fetch_deal("8154009999").await.unwrap_err();

    assert!(matches!(&err, CrmError::NotFound(why) if why.contains("OBJECT_NOT_FOUND")), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_malformed_deal_id_is_not_found_without_a_request() {
    let fake = fake_with_sample().await;
    let hubspot = connector(&fake, 50, TOKEN);

    for id in ["", "81540O2031", "../owners/5501", "8154002031?archived=true", "1 OR 1=1", "٨١٥٤", "123456789012345678901"] {
        let err = hubspot.fetch_deal(id).await.unwrap_err();
        assert!(matches!(err, CrmError::NotFound(_)), "{id:?}: {err:?}");
    }
    assert!(fake.server.requests().is_empty());
}

#[tokio::test]
async fn a_refused_token_is_unauthorized_at_once_and_never_repeated_back() {
    let fake = fake_with_sample().await;
    // The private app's token was rotated in HubSpot: the connector's is now refused.
    fake.set_token("pat-na1-00000000-aaaa-bbbb-cccc-dddddddddddd");

    let err = connector(&fake, 50, TOKEN).fetch_deal(DEAL).await.unwrap_err();

    assert!(matches!(&err, CrmError::Unauthorized(why) if why.contains("INVALID_AUTHENTICATION")), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(TOKEN));
    // Private-app tokens do not refresh: one request, no second try.
    assert_eq!(fake.server.requests().len(), 1);
}

// The reconciler's question: the deals won since a time, through the CRM search.

/// The connector with the portal's won stages, as `Connectors::from_settings` builds it.
fn reconciling(fake: &FakeHubSpot, rps: u32) -> HubSpot {
    connector(fake, rps, TOKEN).with_won_stages(&["closedwon".into(), "contractsigned".into()])
}

/// A won deal with only what the search reads: `won_at` is its close date and last modification.
fn bare(won_at: DateTime<Utc>, owner: Option<(&str, &str)>) -> SampleDeal {
    let mut deal = SampleDeal::acme(won_at);
    deal.owner =
        owner.map(|(id, email)| SampleOwner { id: id.into(), email: email.into(), first_name: "Rep".into(), last_name: id.into() });
    deal.contacts.clear();
    deal.line_items.clear();
    deal.notes.clear();
    deal.activities.clear();
    deal
}

fn hours(h: i64) -> chrono::TimeDelta {
    chrono::TimeDelta::hours(h)
}

#[tokio::test]
async fn won_since_finds_the_deals_won_and_modified_since_oldest_first_with_their_owners() {
    let fake = FakeHubSpot::start().await;
    let since = won_at();
    let ana = Some(("5501", "ana@seller.example"));
    // Won before `since` and not touched since: not asked again.
    fake.put_deal("8154002001", &bare(since - chrono::TimeDelta::days(3), ana));
    // Won exactly at `since`.
    fake.put_deal("8154002002", &bare(since, ana));
    // Won ten days ago, its amount changed two hours after `since`: found, won when it closed.
    fake.put_deal("8154002003", &bare(since - chrono::TimeDelta::days(10), ana));
    fake.set_property("8154002003", "amount", "70000.50");
    fake.set_modified("8154002003", since + hours(2));
    // Lost, and still open: never found, however recent.
    fake.put_deal("8154002004", &bare(since + hours(1), ana));
    fake.set_stage("8154002004", "closedlost");
    fake.put_deal("8154002005", &bare(since + hours(1), ana));
    fake.set_stage("8154002005", "appointmentscheduled");
    fake.set_property("8154002005", "closedate", "");
    // Won in the portal's own won stage, in euros, by another rep.
    let mut euro = bare(since + hours(3), Some(("5502", "ben@seller.example")));
    euro.currency = "EUR".into();
    euro.amount = "12000".into();
    fake.put_deal("8154002006", &euro);
    fake.set_stage("8154002006", "contractsigned");
    // Ana's again: her email is looked up once.
    fake.put_deal("8154002007", &bare(since + hours(1), ana));
    // An owner HubSpot no longer knows, and no owner at all.
    fake.put_deal("8154002008", &bare(since + hours(4), ana));
    fake.set_property("8154002008", "hubspot_owner_id", "5599");
    fake.put_deal("8154002009", &bare(since + hours(5), None));
    // A close date nobody can read: skipped, not the whole call failed.
    fake.put_deal("8154002010", &bare(since + hours(6), ana));
    fake.set_property("8154002010", "closedate", "someday");

    let won = reconciling(&fake, 50).won_since(since, 100).await.expect("the won deals");

    let got: Vec<_> = won
        .iter()
        .map(|d| (d.deal_id.as_str(), d.modified_at - since, d.owner_email.as_deref(), d.amount.as_deref(), d.currency.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("8154002002", hours(0), Some("ana@seller.example"), Some("64400.00"), Some("USD")),
            ("8154002007", hours(1), Some("ana@seller.example"), Some("64400.00"), Some("USD")),
            ("8154002003", hours(2), Some("ana@seller.example"), Some("70000.50"), Some("USD")),
            ("8154002006", hours(3), Some("ben@seller.example"), Some("12000"), Some("EUR")),
            ("8154002008", hours(4), None, Some("64400.00"), Some("USD")),
            ("8154002009", hours(5), None, Some("64400.00"), Some("USD")),
        ]
    );
    assert_eq!(won[2].won_at, since - chrono::TimeDelta::days(10), "won when it closed, not when it was last changed");
    assert_eq!(won[0].won_at, since);
    let owners: Vec<_> = won.iter().map(|d| d.owner_id.as_deref()).collect();
    assert_eq!(owners, [Some("5501"), Some("5501"), Some("5501"), Some("5502"), Some("5599"), None]);
    assert!(won.iter().all(|d| d.account_name.is_none()));

    // One search and one lookup per distinct owner: 1 + 3.
    let requests = fake.server.requests();
    let paths: Vec<_> = requests.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(
        paths,
        [
            ("POST", "/crm/v3/objects/deals/search"),
            ("GET", "/crm/v3/owners/5501"),
            ("GET", "/crm/v3/owners/5502"),
            ("GET", "/crm/v3/owners/5599"),
        ]
    );
    assert!(requests.iter().all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}"))));
    // The search as HubSpot documents it: the won stages, modified at or after `since` in
    // epoch milliseconds, oldest first, 100 a page, no cursor on the first page.
    let search = &fake.searches()[0];
    let filters = &search["filterGroups"][0]["filters"];
    assert_eq!(filters[0], serde_json::json!({"propertyName": "dealstage", "operator": "IN", "values": ["closedwon", "contractsigned"]}));
    assert_eq!(
        filters[1],
        serde_json::json!({"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since.timestamp_millis().to_string()})
    );
    assert_eq!(search["sorts"], serde_json::json!([{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]));
    assert_eq!(search["limit"], 100);
    assert!(search.get("after").is_none());
}

#[tokio::test]
async fn won_since_follows_every_page_and_stops_at_max() {
    let fake = FakeHubSpot::start().await;
    let since = won_at();
    let ids: Vec<String> = (1..=5).map(|i| format!("81540021{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        fake.put_deal(id, &bare(since + chrono::TimeDelta::minutes(i as i64), Some(("5501", "ana@seller.example"))));
    }
    fake.set_page_size(2);
    let hubspot = reconciling(&fake, 100);

    // Every page, each asked for with the last one's `paging.next.after`.
    let all = hubspot.won_since(since, 100).await.unwrap();
    assert_eq!(all.iter().map(|d| d.deal_id.clone()).collect::<Vec<_>>(), ids);
    let afters: Vec<_> = fake.searches().iter().map(|b| b.get("after").cloned()).collect();
    assert_eq!(afters, [None, Some("2".into()), Some("4".into())]);
    assert_eq!(fake.server.requests_to("/crm/v3/owners/").len(), 1);

    // `max` stops early: the pages ask for no more than are still wanted, and no page follows.
    let first = hubspot.won_since(since, 3).await.unwrap();
    assert_eq!(first.iter().map(|d| d.deal_id.as_str()).collect::<Vec<_>>(), &ids[..3]);
    let searches = fake.searches();
    let asked: Vec<_> = searches[3..].iter().map(|b| (b["limit"].clone(), b.get("after").cloned())).collect();
    assert_eq!(asked, [(3.into(), None), (1.into(), Some("2".into()))]);

    // The rest comes with the next call from the last one's modification (which it repeats).
    let rest = hubspot.won_since(first[2].modified_at, 3).await.unwrap();
    assert_eq!(rest.iter().map(|d| d.deal_id.as_str()).collect::<Vec<_>>(), &ids[2..]);
}

#[tokio::test]
async fn won_since_stops_at_the_ten_thousand_results_hubspot_serves_for_one_search() {
    let fake = FakeHubSpot::start().await;
    let since = won_at();
    let count = 10_050;
    for i in 0..count {
        fake.put_deal(&(8_154_100_000u64 + i as u64).to_string(), &bare(since + chrono::TimeDelta::seconds(i), None));
    }
    fake.app_limit(1_000_000, 1000);
    let hubspot = reconciling(&fake, 1000);

    let first = hubspot.won_since(since, 20_000).await.expect("the first 10,000");

    assert_eq!(first.len(), 10_000);
    assert_eq!(fake.searches().len(), 100);
    assert!(fake.server.requests().iter().all(|r| r.status == 200), "no page past 10,000 was asked for");
    let last = first.last().unwrap();
    let rest = hubspot.won_since(last.modified_at, 20_000).await.expect("the rest");
    assert_eq!(rest.len(), 51, "the last one again, and the 50 after it");
    assert_eq!(rest[0].deal_id, last.deal_id);
    assert_eq!(rest[50].deal_id, (8_154_100_000u64 + count as u64 - 1).to_string());
}

#[tokio::test]
async fn won_since_on_a_server_error_is_unavailable_and_on_a_refused_token_unauthorized() {
    let fake = FakeHubSpot::start().await;
    fake.put_deal(DEAL, &SampleDeal::acme(won_at()));
    let hubspot = reconciling(&fake, 50);

    fake.server.fail_next(1);
    let err = hubspot.won_since(won_at(), 100).await.unwrap_err();
    assert!(matches!(err, CrmError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());

    fake.set_token("pat-na1-00000000-aaaa-bbbb-cccc-dddddddddddd");
    let err = hubspot.won_since(won_at(), 100).await.unwrap_err();
    assert!(matches!(&err, CrmError::Unauthorized(why) if why.contains("INVALID_AUTHENTICATION")), "{err:?}");
    assert_eq!(fake.server.requests().len(), 2, "one search each, no owner lookups");
}

// Writing the call's outcome back: a note on the deal.

/// Call 42 marked done with `outcome` and `notes`.
fn call_record(outcome: Option<&str>, notes: Option<&str>) -> CallRecord {
    CallRecord {
        call_id: 42,
        event: if outcome.is_some() { "done" } else { "cancelled" }.into(),
        at: Utc.with_ymd_and_hms(2026, 12, 3, 16, 45, 0).unwrap(),
        outcome: outcome.map(String::from),
        notes: notes.map(String::from),
        rep_email: "ana@seller.example".into(),
        call_url: "https://firstcall.example/calls/42?view=recap&tab=outcome".into(),
    }
}

#[tokio::test]
async fn record_call_creates_one_note_on_the_deal_as_hubspot_documents_it() {
    let fake = fake_with_sample().await;
    let hubspot = connector(&fake, 50, TOKEN);
    let record = call_record(Some("adjusted"), Some("Dana wants <SSO> by January & a migration plan.\r\nPriya: \"SAML first\"."));

    hubspot.record_call(DEAL, &record).await.expect("the note is created");

    // One request: the note, created and associated with the deal at once.
    let requests = fake.server.requests();
    let sent: Vec<_> = requests.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.status)).collect();
    assert_eq!(sent, [("POST", "/crm/v3/objects/notes", 201)]);
    assert_eq!(requests[0].authorization.as_deref(), Some(&*format!("Bearer {TOKEN}")));
    let notes = fake.created_notes();
    assert_eq!(notes.len(), 1);
    let note = &notes[0];
    assert_eq!(note.deals, [DEAL]);
    assert_eq!(
        note.request["associations"],
        serde_json::json!([{"to": {"id": DEAL}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}])
    );
    assert_eq!(note.timestamp, "2026-12-03T16:45:00.000Z");
    // The body is HTML: the subject in bold, a line break per line, the rep's text escaped.
    assert!(
        note.body.starts_with("<strong>First call after the order: done (expectations adjusted)</strong><br>Outcome: adjusted: "),
        "{}",
        note.body
    );
    assert!(note.body.contains(
        "<br>Notes from the call:<br>&gt; Dana wants &lt;SSO&gt; by January &amp; a migration plan.<br>&gt; Priya: \"SAML first\".<br>"
    ));
    assert!(note.body.contains("<br>Call page: https://firstcall.example/calls/42?view=recap&amp;tab=outcome<br>"));
    assert!(!note.body.contains('\n') && !note.body.contains("<SSO>"));
    // Read as HubSpot shows it, it is the record's text line for line, call id included.
    let shown: Vec<String> = text_of_html(&note.body).lines().map(|l| l.trim().to_string()).collect();
    let text: Vec<String> = record.text().lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(shown, text);
    assert!(shown.last().unwrap().starts_with("Recorded by firstcall (call 42) at 2026-12-03 16:45 UTC"));

    // The deal lists the note now: a later read finds it, summarised by its subject.
    let deal = hubspot.fetch_deal(DEAL).await.unwrap();
    assert_eq!(deal.activities.iter().filter(|a| a.kind == CrmActivityKind::Note).count(), 3);
    let p = deal.to_proposal(Source::Hubspot, DEAL, &RoleMap::default());
    let last = p.activities.last().unwrap();
    assert_eq!((last.kind, last.summary.as_str()), (ActivityKind::Note, "First call after the order: done (expectations adjusted)"));
}

#[tokio::test]
async fn record_call_waits_out_a_429_and_creates_the_note_once() {
    let fake = fake_with_sample().await;
    fake.server.limit(1, 1);
    let hubspot = connector(&fake, 50, TOKEN);
    // A first request (a deal HubSpot does not have) uses up the one the fake allows this second.
    let _ = hubspot.fetch_deal("8154009999").await;

    hubspot.record_call(DEAL, &call_record(None, None)).await.expect("the note is created after the wait");

    assert!(fake.server.throttled() >= 1, "the fake answered no 429");
    let notes = fake.created_notes();
    assert_eq!(notes.len(), 1, "a 429 creates nothing: the one note is the request sent again");
    assert!(notes[0].body.starts_with("<strong>First call after the order: cancelled (the order was cancelled)</strong><br>Rep: "));
}

#[tokio::test]
async fn record_call_on_a_server_error_is_unavailable_for_the_engine_to_retry() {
    let fake = fake_with_sample().await;
    fake.server.fail_next(1);

    let err = connector(&fake, 50, TOKEN).record_call(DEAL, &call_record(Some("aligned"), None)).await.unwrap_err();

    assert!(matches!(err, CrmError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(fake.created_notes().is_empty());
}

#[tokio::test]
async fn record_call_on_a_deal_hubspot_does_not_have_is_not_found() {
    let fake = fake_with_sample().await;

    let err = connector(&fake, 50, TOKEN).record_call("8154009999", &call_record(Some("at_risk"), None)).await.unwrap_err();

    // HubSpot answers a create whose association names an unknown deal with a 400.
    assert!(matches!(&err, CrmError::NotFound(why) if why.contains("8154009999") && why.contains("associations are invalid")), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(fake.server.requests().iter().map(|r| r.status).collect::<Vec<_>>(), [400]);
    assert!(fake.created_notes().is_empty());
}

#[tokio::test]
async fn record_call_with_a_malformed_deal_id_makes_no_request() {
    let fake = fake_with_sample().await;
    let hubspot = connector(&fake, 50, TOKEN);

    for id in ["", "81540O2031", "../owners/5501", "8154002031?archived=true", "123456789012345678901"] {
        let err = hubspot.record_call(id, &call_record(Some("aligned"), None)).await.unwrap_err();
        assert!(matches!(err, CrmError::NotFound(_)), "{id:?}: {err:?}");
    }
    assert!(fake.server.requests().is_empty());
}

#[tokio::test]
async fn record_call_with_a_refused_token_is_unauthorized_and_creates_nothing() {
    let fake = fake_with_sample().await;
    fake.set_token("pat-na1-00000000-aaaa-bbbb-cccc-dddddddddddd");

    let err = connector(&fake, 50, TOKEN).record_call(DEAL, &call_record(Some("aligned"), None)).await.unwrap_err();

    assert!(matches!(&err, CrmError::Unauthorized(why) if why.contains("INVALID_AUTHENTICATION")), "{err:?}");
    assert_eq!(fake.server.requests().len(), 1);
    assert!(fake.created_notes().is_empty());
}
