use chrono::TimeZone;

use super::*;

const CLOSED_WON: &str = include_str!("../../../tests/fixtures/salesforce/closed_won.xml");
const TWO: &str = include_str!("../../../tests/fixtures/salesforce/two_notifications.xml");
const REOPENED: &str = include_str!("../../../tests/fixtures/salesforce/reopened.xml");

fn cfg() -> SalesforceWebhook {
    SalesforceWebhook {
        organization_ids: vec!["00D5e000000KQ2eEAG".into()],
        owner_email_field: "Owner_Email__c".into(),
        default_currency: None,
        path_secrets: Default::default(),
    }
}

fn parse(body: &str) -> SalesforceBatch {
    parse_salesforce(body.as_bytes(), &cfg(), &window()).unwrap()
}

fn invalid(body: &str) -> (String, String) {
    match parse_salesforce(body.as_bytes(), &cfg(), &window()) {
        Err(PayloadError::Invalid { field, reason }) => (field, reason),
        other => panic!("{body}: expected Invalid, got {other:?}"),
    }
}

fn money(m: &Option<Money>) -> Option<(i64, &str)> {
    m.as_ref().map(|m| (m.minor, m.currency.as_str()))
}

#[test]
fn a_won_opportunity_creates_the_order_with_its_facts() {
    let batch = parse(CLOSED_WON);
    assert_eq!(batch.organization_id, "00D5e000000KQ2eEAG");
    assert_eq!(batch.action_id, "04k5e000000CaRkAAK");
    assert_eq!(batch.events.len(), 1);
    let e = &batch.events[0];
    assert_eq!(e.source, Source::Salesforce);
    assert_eq!(e.transition, Transition::Created);
    assert_eq!(e.dedupe_key, "04l5e00000Gx7QzAAJ");
    assert_eq!(e.deal_id.as_str(), "0065e00000Bq3ZtAAJ");
    assert_eq!(e.event_type, "OpportunityNotification");
    assert_eq!(e.occurred_at, Utc.with_ymd_and_hms(2026, 3, 2, 14, 5, 0).unwrap());
    assert_eq!(money(&e.facts.amount), Some((4_800_000, "USD")));
    assert_eq!(e.facts.owner_ref.as_deref(), Some("0055e000003XyZaAAK"));
    assert_eq!(e.facts.rep_email.as_ref().map(EmailAddress::as_str), Some("ana.silva@example.com"));
    assert_eq!(e.facts.account_name.as_deref(), Some("Acme & Sons - Platform rollout"));
    assert!(e.raw.starts_with("<Notification>") && e.raw.ends_with("</Notification>"), "{}", e.raw);
    assert!(e.raw.contains("<sf:Name>Acme &amp; Sons - Platform rollout</sf:Name>"), "kept as received");
}

#[test]
fn each_notification_becomes_an_event() {
    let batch = parse(TWO);
    assert_eq!(batch.events.len(), 2);
    let (won, lost) = (&batch.events[0], &batch.events[1]);
    assert_eq!((won.transition, won.dedupe_key.as_str()), (Transition::Created, "04l5e00000Gx7R0AAJ"));
    assert_eq!(money(&won.facts.amount), Some((1_500_000_000, "EUR")), "1.5E7 is fifteen million");
    assert_eq!(won.facts.rep_email, None, "a nil owner email states nothing");
    assert_eq!((lost.transition, lost.deal_id.as_str()), (Transition::Cancelled, "0065e00000Bq3ZvAAJ"));
    assert_eq!(lost.facts, OrderFacts::default());
    assert!(won.raw.contains("04l5e00000Gx7R0AAJ") && !won.raw.contains("04l5e00000Gx7R1AAJ"));
    assert!(lost.raw.contains("04l5e00000Gx7R1AAJ") && !lost.raw.contains("04l5e00000Gx7R0AAJ"));
}

#[test]
fn an_opportunity_moved_out_of_closed_won_cancels() {
    let batch = parse(REOPENED);
    assert_eq!(batch.events[0].transition, Transition::Cancelled);
    assert_eq!(batch.events[0].deal_id.as_str(), "0065e00000Bq3ZtAAJ");
}

#[test]
fn amounts_use_the_default_currency_in_single_currency_orgs() {
    let body = CLOSED_WON.replace("<sf:CurrencyIsoCode>USD</sf:CurrencyIsoCode>", "");
    assert_eq!(parse(&body).events[0].facts.amount, None);
    let cfg = SalesforceWebhook { default_currency: Some(Currency::parse("EUR").unwrap()), ..cfg() };
    let batch = parse_salesforce(body.as_bytes(), &cfg, &window()).unwrap();
    assert_eq!(money(&batch.events[0].facts.amount), Some((4_800_000, "EUR")));
    let nil_amount = CLOSED_WON.replace("<sf:Amount>48000.0</sf:Amount>", r#"<sf:Amount xsi:nil="true"/>"#);
    assert_eq!(parse(&nil_amount).events[0].facts.amount, None);
}

#[test]
fn the_owner_email_field_is_configurable() {
    let cfg = SalesforceWebhook { owner_email_field: "sf:Owner_Email__c".into(), ..cfg() };
    let batch = parse_salesforce(CLOSED_WON.as_bytes(), &cfg, &window()).unwrap();
    assert!(batch.events[0].facts.rep_email.is_some());
    for field in ["Rep_Email__c", ""] {
        let cfg = SalesforceWebhook { owner_email_field: field.into(), ..cfg.clone() };
        assert_eq!(parse_salesforce(CLOSED_WON.as_bytes(), &cfg, &window()).unwrap().events[0].facts.rep_email, None);
    }
}

#[test]
fn doubles_convert_exactly_to_minor_units() {
    for (text, exponent, minor) in [
        ("48000.0", 2, Some(4_800_000)),
        ("1.5E7", 2, Some(1_500_000_000)),
        ("1.0e-2", 2, Some(1)),
        ("1234.5600000000001", 2, Some(123_456)),
        ("0.005", 2, Some(1)),
        ("0.004", 2, Some(0)),
        ("-12.5", 2, Some(-1250)),
        ("+7", 2, Some(700)),
        (".5", 2, Some(50)),
        ("1E-10", 2, Some(0)),
        ("1200.5", 0, Some(1201)),
        ("1.2345", 3, Some(1235)),
        ("abc", 2, None),
        ("", 2, None),
        ("1.2.3", 2, None),
        ("NaN", 2, None),
        ("Infinity", 2, None),
        ("1e400", 2, None),
        ("99999999999999999999", 2, None),
        ("1E", 2, None),
    ] {
        assert_eq!(double_to_minor(text, exponent), minor, "{text:?}");
    }
}

#[test]
fn malformed_and_invalid_messages_name_the_field() {
    for body in ["", "<soapenv:Envelope", "not xml at all", "<a></b>"] {
        assert!(matches!(parse_salesforce(body.as_bytes(), &cfg(), &window()), Err(PayloadError::Malformed(_))), "{body:?}");
    }
    assert!(matches!(parse_salesforce(&[0x3c, 0xff, 0x3e], &cfg(), &window()), Err(PayloadError::Malformed(_))));
    let second = |from: &str, to: &str| {
        let i = TWO.rfind(from).unwrap();
        format!("{}{}{}", &TWO[..i], to, &TWO[i + from.len()..])
    };
    let cases: Vec<(String, &str)> = vec![
        ("<notifications/>".into(), "(body)"),
        (CLOSED_WON.replace("http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"), "(body)"),
        (CLOSED_WON.replace("http://soap.sforce.com/2005/09/outbound", "urn:other"), "Body"),
        (CLOSED_WON.replace("<OrganizationId>00D5e000000KQ2eEAG</OrganizationId>", ""), "notifications.OrganizationId"),
        (CLOSED_WON.replace("<ActionId>04k5e000000CaRkAAK</ActionId>", "<ActionId></ActionId>"), "notifications.ActionId"),
        (CLOSED_WON.replace("<Id>04l5e00000Gx7QzAAJ</Id>", ""), "Notification[0].Id"),
        (CLOSED_WON.replace("sf:Opportunity", "sf:Account"), "Notification[0].sObject"),
        (CLOSED_WON.replace("<sf:Id>0065e00000Bq3ZtAAJ</sf:Id>", ""), "Notification[0].sObject.Id"),
        (CLOSED_WON.replace("<sf:IsWon>true</sf:IsWon>", ""), "Notification[0].sObject.IsWon"),
        (CLOSED_WON.replace("<sf:IsWon>true</sf:IsWon>", "<sf:IsWon>yes</sf:IsWon>"), "Notification[0].sObject.IsWon"),
        (
            CLOSED_WON.replace("<sf:LastModifiedDate>2026-03-02T14:05:00.000Z</sf:LastModifiedDate>", ""),
            "Notification[0].sObject.LastModifiedDate",
        ),
        (CLOSED_WON.replace("2026-03-02T14:05:00.000Z", "yesterday"), "Notification[0].sObject.LastModifiedDate"),
        (CLOSED_WON.replace("48000.0", "lots"), "Notification[0].sObject.Amount"),
        (CLOSED_WON.replace(">USD<", ">dollars<"), "Notification[0].sObject.CurrencyIsoCode"),
        (CLOSED_WON.replace("ana.silva@example.com", "Ana Silva"), "Notification[0].sObject.Owner_Email__c"),
        (second("<sf:IsWon>false</sf:IsWon>", ""), "Notification[1].sObject.IsWon"),
    ];
    for (body, field) in cases {
        assert_eq!(invalid(&body).0, field);
    }
    let modstamp = CLOSED_WON.replace("LastModifiedDate", "SystemModstamp");
    assert_eq!(parse(&modstamp).events[0].occurred_at, Utc.with_ymd_and_hms(2026, 3, 2, 14, 5, 0).unwrap());
}

#[test]
fn messages_over_the_limit_are_refused() {
    let start = CLOSED_WON.find("<Notification>").unwrap();
    let end = CLOSED_WON.find("</notifications>").unwrap();
    let one = &CLOSED_WON[start..end];
    let body = format!("{}{}{}", &CLOSED_WON[..start], one.repeat(crate::intake::MAX_EVENTS_PER_REQUEST + 1), &CLOSED_WON[end..]);
    assert_eq!(invalid(&body).0, "notifications");
}

#[test]
fn only_configured_organizations_are_accepted() {
    assert_eq!(check_organization(Some("00D5e000000KQ2eEAG"), &cfg()), Ok(()));
    assert_eq!(check_organization(Some("00D5e000000KQ2e"), &cfg()), Ok(()));
    let fifteen = SalesforceWebhook { organization_ids: vec!["00D5e000000KQ2e".into()], ..cfg() };
    assert_eq!(check_organization(Some("00D5e000000KQ2eEAG"), &fifteen), Ok(()));
    for other in ["00D5e000000KQ2fEAG", "00d5e000000kq2eeag", "", "00D5e000000KQ2eEAG<", "00D5e"] {
        assert!(matches!(check_organization(Some(other), &cfg()), Err(SignatureError::UnknownOrganization(_))), "{other:?}");
    }
    let none = SalesforceWebhook { organization_ids: vec![], ..cfg() };
    assert!(matches!(
        check_organization(Some("00D5e000000KQ2eEAG"), &none),
        Err(SignatureError::NotConfigured { crm: Source::Salesforce, .. })
    ));
}

#[test]
fn an_organization_id_one_character_off_is_refused() {
    // The first 15 characters are the id (the last 3 a checksum of its case): any one changed is another org.
    for changed in crate::config::secrets::one_char_changes("00D5e000000KQ2e") {
        let result = check_organization(Some(&changed), &cfg());
        assert!(matches!(result, Err(SignatureError::UnknownOrganization(_))), "{changed}: {result:?}");
    }
}

#[test]
fn the_ack_is_what_salesforce_expects() {
    let ack = salesforce_ack();
    let envelope = parse_document(&ack).unwrap();
    assert!(envelope.is(SOAP_ENVELOPE_NS, "Envelope"));
    let response = envelope.child("Body").and_then(|b| b.child("notificationsResponse")).unwrap();
    assert!(response.is(OUTBOUND_NS, "notificationsResponse"));
    assert_eq!(response.child("Ack").map(|a| a.text.as_str()), Some("true"));
}

#[test]
fn faults_escape_the_message() {
    let message = "deal <D&1> \"quoted\" \u{1}bell";
    for (fault, code) in [(salesforce_fault(message), "soapenv:Client"), (salesforce_server_fault(message), "soapenv:Server")] {
        let envelope = parse_document(&fault).unwrap();
        let f = envelope.child("Body").and_then(|b| b.child("Fault")).unwrap();
        assert!(f.is(SOAP_ENVELOPE_NS, "Fault"));
        assert_eq!(f.child("faultcode").map(|c| c.text.as_str()), Some(code));
        assert_eq!(f.child("faultstring").map(|c| c.text.as_str()), Some("deal <D&1> \"quoted\" bell"));
        assert!(fault.contains("&lt;D&amp;1&gt;"));
    }
}

#[test]
fn truncated_bodies_never_panic() {
    for fixture in [CLOSED_WON, TWO] {
        for end in 0..fixture.len() {
            // Some prefixes are whole documents short of trailing whitespace; the rest must fail.
            let result = parse_salesforce(&fixture.as_bytes()[..end], &cfg(), &window());
            assert!(result.is_err() || fixture[end..].trim().is_empty(), "{end}");
        }
    }
}

#[test]
fn a_last_modified_date_outside_the_window_is_refused_naming_the_field() {
    for at in ["1970-01-01T00:00:00.000Z", "2001-09-09T01:46:40.000Z", "2026-03-09T00:00:00.000Z"] {
        let (field, _) = invalid(&CLOSED_WON.replace("2026-03-02T14:05:00.000Z", at));
        assert_eq!(field, "Notification[0].sObject.LastModifiedDate", "{at}");
    }
}

/// firstcall's clock a day after the fixtures' events, with the shipped 30-day bound.
fn window() -> crate::intake::event::EventWindow {
    crate::intake::event::EventWindow::new(chrono::DateTime::parse_from_rfc3339("2026-03-07T00:00:00Z").unwrap().to_utc(), 30)
}

#[test]
fn the_organization_is_read_before_any_field_is_checked() {
    // From another org, missing the fields a message needs: the org is still read.
    let foreign = CLOSED_WON.replace("00D5e000000KQ2eEAG", "00D000000000001AAA").replace("<sf:IsWon>true</sf:IsWon>", "");
    let message = read_outbound_message(foreign.as_bytes()).unwrap();
    assert_eq!(message.organization_id(), Some("00D000000000001AAA"));
    assert!(matches!(check_organization(message.organization_id(), &cfg()), Err(SignatureError::UnknownOrganization(_))));
    assert!(message.parse(&cfg(), &window()).is_err(), "the fields are checked afterwards");
    // A message that names no org, or a body that is not an outbound message: no org, refused.
    let anonymous = CLOSED_WON.replace("<OrganizationId>00D5e000000KQ2eEAG</OrganizationId>", "");
    let nil = CLOSED_WON.replace("<OrganizationId>00D5e000000KQ2eEAG</OrganizationId>", r#"<OrganizationId xsi:nil="true"/>"#);
    let other_ns = CLOSED_WON.replace("http://soap.sforce.com/2005/09/outbound", "urn:not-outbound");
    for body in [anonymous.as_str(), nil.as_str(), other_ns.as_str(), "<order><OrganizationId>00D5e000000KQ2eEAG</OrganizationId></order>"]
    {
        let message = read_outbound_message(body.as_bytes()).unwrap();
        assert_eq!(message.organization_id(), None, "{body}");
        assert_eq!(check_organization(message.organization_id(), &cfg()), Err(SignatureError::NoOrganization));
    }
    // Not XML at all: malformed, before any question of who sent it.
    assert!(matches!(read_outbound_message(b"<not-soap"), Err(PayloadError::Malformed(_))));
    // The org read first is the org the parsed batch carries.
    let message = read_outbound_message(CLOSED_WON.as_bytes()).unwrap();
    assert_eq!(message.organization_id(), Some(message.parse(&cfg(), &window()).unwrap().organization_id.as_str()));
}
