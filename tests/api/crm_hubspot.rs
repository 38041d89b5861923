//! The HubSpot connector against a fake HubSpot on loopback (`testkit::crm::hubspot`): the
//! production connector reads the sample deal as the recap needs it, follows every page, waits
//! out HubSpot's rate limits, and tells apart a server error, a missing deal, a malformed id and
//! a refused token. No database: only the connector and the fake.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use firstcall::config::CrmSettings;
use firstcall::config::crm::{Credential, HubspotConnector, RoleMap};
use firstcall::crm::hubspot::HubSpot;
use firstcall::crm::{Connector, CrmActivityKind, CrmError};
use firstcall::domain::Source;
use firstcall::proposals::model::{ActivityKind, ContactRole};
use testkit::crm::hubspot::{FakeHubSpot, NOTES_PROPERTY, TOKEN};
use testkit::crm::{SampleContact, SampleDeal};

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
    // Both line items at their exact prices.
    let items: Vec<_> = p
        .line_items
        .iter()
        .map(|i| (i.sku.as_str(), i.name.as_str(), i.quantity, i.unit_price.minor, i.unit_price.currency.as_str()))
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
