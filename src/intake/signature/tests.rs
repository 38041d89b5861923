use chrono::TimeZone;

use super::*;
use crate::config::secrets::{one_byte_changes, one_char_changes};

const SECRET: &str = "generic-secret-0001";
const OTHER: &str = "generic-secret-0002";

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

fn expiring(value: &str, at: DateTime<Utc>) -> Secret {
    Secret { expires_at: Some(at), ..Secret::from_value(value) }
}

fn hash_only(value: &str) -> Secret {
    Secret::from_sha256(sha256(value.as_bytes()), None)
}

fn no_secret_in(err: &SignatureError, secrets: &[&str], expected: &[String]) {
    let text = err.to_string();
    for s in secrets {
        assert!(!text.contains(s), "{text:?} shows a secret");
    }
    for e in expected {
        assert!(!text.contains(e.as_str()), "{text:?} shows the expected signature");
    }
}

// ---- generic ----------------------------------------------------------------------------------

const BODY: &[u8] = br#"{"id":"evt_1"}"#;

fn verify(header: Option<&str>, body: &[u8], secrets: &[Secret]) -> Result<(), SignatureError> {
    verify_generic(header, body, secrets, now(), 300)
}

#[test]
fn generic_signature_matches_a_vector_computed_independently() {
    // HMAC-SHA256("generic-secret-0001", "1700000000.{\"id\":\"evt_1\"}") computed with Python's hmac module.
    let expected = "t=1700000000,v1=e42a444f45ef3552cfe7ec3303eb2dc2ff8278673bd5da99556dfb3714321867";
    assert_eq!(sign_generic(SECRET.as_bytes(), 1_700_000_000, BODY), expected);
    assert_eq!(verify(Some(expected), BODY, &[Secret::from_value(SECRET)]), Ok(()));
}

#[test]
fn generic_accepts_any_active_secret_and_any_v1_entry() {
    let secrets = [Secret::from_value(OTHER), Secret::from_value(SECRET)];
    let signed = sign_generic(SECRET.as_bytes(), 1_700_000_000, BODY);
    assert_eq!(verify(Some(&signed), BODY, &secrets), Ok(()));
    // A sender mid-rotation signs with its old and new secret.
    let old = sign_generic(b"retired-secret-00", 1_700_000_000, BODY);
    let v1_old = old.split_once(",v1=").unwrap().1;
    let both = format!("{signed},v1={v1_old}");
    let reversed = format!("t=1700000000,v1={v1_old},{}", signed.split_once(',').unwrap().1);
    assert_eq!(verify(Some(&both), BODY, &[Secret::from_value(SECRET)]), Ok(()));
    assert_eq!(verify(Some(&reversed), BODY, &[Secret::from_value(SECRET)]), Ok(()));
    // Spaces around entries and unknown schemes are tolerated.
    let spaced = format!("t=1700000000, v0=abc, {}", signed.split_once(',').unwrap().1);
    assert_eq!(verify(Some(&spaced), BODY, &[Secret::from_value(SECRET)]), Ok(()));
}

#[test]
fn generic_rejects_tampered_body_and_wrong_secret() {
    let signed = sign_generic(SECRET.as_bytes(), 1_700_000_000, BODY);
    let mismatch = Err(SignatureError::Mismatch { header: GENERIC_SIGNATURE_HEADER });
    assert_eq!(verify(Some(&signed), br#"{"id":"evt_2"}"#, &[Secret::from_value(SECRET)]), mismatch);
    assert_eq!(verify(Some(&signed), BODY, &[Secret::from_value(OTHER)]), mismatch);
    // The timestamp is signed too: moving it breaks the signature.
    let moved = signed.replace("t=1700000000", "t=1700000001");
    assert_eq!(verify(Some(&moved), BODY, &[Secret::from_value(SECRET)]), mismatch);
    let err = verify(Some(&signed), b"tampered", &[Secret::from_value(SECRET)]).unwrap_err();
    no_secret_in(&err, &[SECRET], std::slice::from_ref(&signed));
}

#[test]
fn generic_rejects_expired_secrets() {
    let signed = sign_generic(SECRET.as_bytes(), 1_700_000_000, BODY);
    let expired = expiring(SECRET, now());
    assert!(matches!(verify(Some(&signed), BODY, std::slice::from_ref(&expired)), Err(SignatureError::NotConfigured { .. })));
    assert_eq!(
        verify(Some(&signed), BODY, &[expired, Secret::from_value(OTHER)]),
        Err(SignatureError::Mismatch { header: GENERIC_SIGNATURE_HEADER })
    );
    let still_valid = expiring(SECRET, now() + chrono::Duration::seconds(1));
    assert_eq!(verify(Some(&signed), BODY, &[still_valid]), Ok(()));
}

#[test]
fn generic_enforces_the_time_window_both_ways() {
    let secrets = [Secret::from_value(SECRET)];
    let at = |t: i64| sign_generic(SECRET.as_bytes(), t, BODY);
    assert_eq!(verify(Some(&at(1_700_000_000 - 300)), BODY, &secrets), Ok(()));
    assert_eq!(verify(Some(&at(1_700_000_000 + 300)), BODY, &secrets), Ok(()));
    assert_eq!(
        verify(Some(&at(1_700_000_000 - 301)), BODY, &secrets),
        Err(SignatureError::TimestampTooOld { age_secs: 301, tolerance_secs: 300 })
    );
    assert_eq!(
        verify(Some(&at(1_700_000_000 + 301)), BODY, &secrets),
        Err(SignatureError::TimestampInFuture { ahead_secs: 301, tolerance_secs: 300 })
    );
    assert!(matches!(verify(Some(&at(i64::MIN)), BODY, &secrets), Err(SignatureError::TimestampTooOld { .. })));
    assert!(matches!(verify(Some(&at(i64::MAX)), BODY, &secrets), Err(SignatureError::TimestampInFuture { .. })));
}

#[test]
fn generic_rejects_missing_and_malformed_headers() {
    let secrets = [Secret::from_value(SECRET)];
    assert_eq!(verify(None, BODY, &secrets), Err(SignatureError::MissingHeader("X-Firstcall-Signature")));
    let good_v1 = sign_generic(SECRET.as_bytes(), 1_700_000_000, BODY).split_once(",v1=").unwrap().1.to_string();
    let many = (0..9).map(|_| format!("v1={good_v1}")).collect::<Vec<_>>().join(",");
    for bad in [
        String::new(),
        "garbage".into(),
        format!("v1={good_v1}"),
        "t=1700000000".into(),
        format!("t=soon,v1={good_v1}"),
        format!("t=1700000000,t=1700000000,v1={good_v1}"),
        "t=1700000000,v1=xyz".into(),
        format!("t=1700000000,v1={}", &good_v1[..62]),
        format!("t=1700000000,{many}"),
    ] {
        let result = verify(Some(&bad), BODY, &secrets);
        assert!(matches!(result, Err(SignatureError::MalformedHeader { header: "X-Firstcall-Signature", .. })), "{bad:?}: {result:?}");
    }
}

#[test]
fn generic_without_usable_secrets_is_not_configured() {
    let signed = sign_generic(SECRET.as_bytes(), 1_700_000_000, BODY);
    for secrets in [vec![], vec![hash_only(SECRET)]] {
        let err = verify(Some(&signed), BODY, &secrets).unwrap_err();
        assert!(matches!(err, SignatureError::NotConfigured { crm: Source::Generic, .. }));
        assert!(err.to_string().contains("FIRSTCALL__WEBHOOKS__GENERIC__SECRETS"));
        assert_eq!(err.code(), "source_not_configured");
    }
}

// ---- HubSpot v3 -------------------------------------------------------------------------------

const HS_SECRET: &str = "hubspot-client-secret-0001";
const HS_BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":123,"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"CRM","appId":54321}]"#;
const HS_URI: &str = "https://firstcall.example.com/webhooks/hubspot?portal=62515&tag=a%3Ab%2Cc%20d";
/// base64(HMAC-SHA256(HS_SECRET, "POST" + decoded URI + HS_BODY + "1564113600500")), computed with
/// Python's hmac module from the decoded URI `…?portal=62515&tag=a:b,c%20d` (HubSpot decodes
/// `%3A` and `%2C`, not `%20`).
const HS_VECTOR: &str = "1Ns9wq3ZW7sRS+w39rQC/nmZbPDhHIOJKn0/p/gzxgc=";
const HS_TS: &str = "1564113600500";

fn hs_now() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_564_113_600_500).unwrap()
}

fn hs_verify(sig: Option<&str>, ts: Option<&str>, uri: &str, body: &str, secrets: &[Secret]) -> Result<(), SignatureError> {
    verify_hubspot_v3(sig, ts, "POST", uri, body.as_bytes(), secrets, hs_now(), 300)
}

#[test]
fn hubspot_v3_matches_the_documented_algorithm() {
    assert_eq!(sign_hubspot_v3(HS_SECRET.as_bytes(), "POST", HS_URI, HS_BODY.as_bytes(), 1_564_113_600_500), HS_VECTOR);
    let secrets = [Secret::from_value(HS_SECRET)];
    assert_eq!(hs_verify(Some(HS_VECTOR), Some(HS_TS), HS_URI, HS_BODY, &secrets), Ok(()));
    // The listed characters are decoded before signing, in either hex case; others stay encoded.
    let decoded = "https://firstcall.example.com/webhooks/hubspot?portal=62515&tag=a:b,c%20d";
    let lower = "https://firstcall.example.com/webhooks/hubspot?portal=62515&tag=a%3ab%2cc%20d";
    assert_eq!(hs_verify(Some(HS_VECTOR), Some(HS_TS), decoded, HS_BODY, &secrets), Ok(()));
    assert_eq!(hs_verify(Some(HS_VECTOR), Some(HS_TS), lower, HS_BODY, &secrets), Ok(()));
    let space_decoded = "https://firstcall.example.com/webhooks/hubspot?portal=62515&tag=a:b,c d";
    assert!(hs_verify(Some(HS_VECTOR), Some(HS_TS), space_decoded, HS_BODY, &secrets).is_err());
}

#[test]
fn hubspot_uri_decoding_covers_exactly_the_listed_characters() {
    let all = "%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B";
    assert_eq!(hubspot_uri(all), b":/?@!$'()*,;");
    for kept in ["%20", "%25", "%26", "%3D", "%2B", "%23", "%E2%82%AC", "%", "%3", "%+3A", "%zz"] {
        assert_eq!(hubspot_uri(kept), kept.as_bytes(), "{kept}");
    }
}

#[test]
fn hubspot_v3_accepts_any_active_secret() {
    let secrets = [expiring(HS_SECRET, hs_now() + chrono::Duration::hours(1)), Secret::from_value("hubspot-client-secret-0002")];
    let second = sign_hubspot_v3(b"hubspot-client-secret-0002", "POST", HS_URI, HS_BODY.as_bytes(), 1_564_113_600_500);
    assert_eq!(hs_verify(Some(HS_VECTOR), Some(HS_TS), HS_URI, HS_BODY, &secrets), Ok(()));
    assert_eq!(hs_verify(Some(&second), Some(HS_TS), HS_URI, HS_BODY, &secrets), Ok(()));
}

#[test]
fn hubspot_v3_rejects_tampering_wrong_or_expired_secrets() {
    let mismatch = Err(SignatureError::Mismatch { header: HUBSPOT_SIGNATURE_HEADER });
    let secrets = [Secret::from_value(HS_SECRET)];
    assert_eq!(hs_verify(Some(HS_VECTOR), Some(HS_TS), HS_URI, &HS_BODY.replace("closedwon", "closedlost"), &secrets), mismatch);
    assert_eq!(hs_verify(Some(HS_VECTOR), Some(HS_TS), "https://evil.example.com/webhooks/hubspot", HS_BODY, &secrets), mismatch);
    assert_eq!(hs_verify(Some(HS_VECTOR), Some("1564113600501"), HS_URI, HS_BODY, &secrets), mismatch);
    assert_eq!(verify_hubspot_v3(Some(HS_VECTOR), Some(HS_TS), "GET", HS_URI, HS_BODY.as_bytes(), &secrets, hs_now(), 300), mismatch);
    assert_eq!(hs_verify(Some(HS_VECTOR), Some(HS_TS), HS_URI, HS_BODY, &[Secret::from_value("another-secret-1")]), mismatch);
    let expired = [expiring(HS_SECRET, hs_now()), Secret::from_value("another-secret-1")];
    assert_eq!(hs_verify(Some(HS_VECTOR), Some(HS_TS), HS_URI, HS_BODY, &expired), mismatch);
    assert!(matches!(
        hs_verify(Some(HS_VECTOR), Some(HS_TS), HS_URI, HS_BODY, &[expiring(HS_SECRET, hs_now())]),
        Err(SignatureError::NotConfigured { crm: Source::Hubspot, .. })
    ));
    let err = hs_verify(Some(HS_VECTOR), Some(HS_TS), HS_URI, "{}", &secrets).unwrap_err();
    no_secret_in(&err, &[HS_SECRET], &[HS_VECTOR.to_string()]);
}

#[test]
fn hubspot_v3_enforces_the_time_window_in_milliseconds() {
    let secrets = [Secret::from_value(HS_SECRET)];
    let signed_at = |ms: i64| {
        let sig = sign_hubspot_v3(HS_SECRET.as_bytes(), "POST", HS_URI, HS_BODY.as_bytes(), ms);
        hs_verify(Some(&sig), Some(&ms.to_string()), HS_URI, HS_BODY, &secrets)
    };
    let now_ms = 1_564_113_600_500;
    assert_eq!(signed_at(now_ms - 300_000), Ok(()));
    assert_eq!(signed_at(now_ms + 300_000), Ok(()));
    assert_eq!(signed_at(now_ms - 300_001), Err(SignatureError::TimestampTooOld { age_secs: 301, tolerance_secs: 300 }));
    assert_eq!(signed_at(now_ms - 3_600_000), Err(SignatureError::TimestampTooOld { age_secs: 3600, tolerance_secs: 300 }));
    assert_eq!(signed_at(now_ms + 301_000), Err(SignatureError::TimestampInFuture { ahead_secs: 301, tolerance_secs: 300 }));
}

#[test]
fn hubspot_v3_rejects_missing_and_malformed_headers() {
    let secrets = [Secret::from_value(HS_SECRET)];
    assert_eq!(hs_verify(None, Some(HS_TS), HS_URI, HS_BODY, &secrets), Err(SignatureError::MissingHeader("X-HubSpot-Signature-v3")));
    assert_eq!(
        hs_verify(Some(HS_VECTOR), None, HS_URI, HS_BODY, &secrets),
        Err(SignatureError::MissingHeader("X-HubSpot-Request-Timestamp"))
    );
    for (sig, ts, header) in [
        ("not base64!", HS_TS, HUBSPOT_SIGNATURE_HEADER),
        ("c2hvcnQ=", HS_TS, HUBSPOT_SIGNATURE_HEADER),
        ("sha256=abc123", HS_TS, HUBSPOT_SIGNATURE_HEADER),
        (HS_VECTOR, "2019-07-26T04:00:00Z", HUBSPOT_TIMESTAMP_HEADER),
        (HS_VECTOR, "", HUBSPOT_TIMESTAMP_HEADER),
        (HS_VECTOR, "1564113600.5", HUBSPOT_TIMESTAMP_HEADER),
    ] {
        let result = hs_verify(Some(sig), Some(ts), HS_URI, HS_BODY, &secrets);
        assert!(matches!(&result, Err(SignatureError::MalformedHeader { header: h, .. }) if *h == header), "{sig:?} {ts:?}: {result:?}");
    }
}

// ---- Pipedrive basic auth ---------------------------------------------------------------------

fn basic(credentials: &str) -> String {
    format!("Basic {}", BASE64.encode(credentials))
}

#[test]
fn basic_auth_accepts_any_active_credential_plain_or_hashed() {
    let creds = [Secret::from_value("pipedrive:first-password"), hash_only("pipedrive:second-password")];
    assert_eq!(verify_basic_auth(Some(&basic("pipedrive:first-password")), &creds, now()), Ok(()));
    assert_eq!(verify_basic_auth(Some(&basic("pipedrive:second-password")), &creds, now()), Ok(()));
    let lower = format!("basic   {}", BASE64.encode("pipedrive:first-password"));
    assert_eq!(verify_basic_auth(Some(&lower), &creds, now()), Ok(()));
}

#[test]
fn basic_auth_rejects_wrong_and_expired_credentials() {
    let mismatch = Err(SignatureError::Mismatch { header: AUTHORIZATION_HEADER });
    let creds = [Secret::from_value("pipedrive:first-password"), expiring("pipedrive:old-password", now())];
    assert_eq!(verify_basic_auth(Some(&basic("pipedrive:wrong-password")), &creds, now()), mismatch);
    assert_eq!(verify_basic_auth(Some(&basic("other:first-password")), &creds, now()), mismatch);
    assert_eq!(verify_basic_auth(Some(&basic("pipedrive:old-password")), &creds, now()), mismatch);
    let before_expiry = now() - chrono::Duration::seconds(1);
    assert_eq!(verify_basic_auth(Some(&basic("pipedrive:old-password")), &creds, before_expiry), Ok(()));
    let err = verify_basic_auth(Some(&basic("pipedrive:wrong-password")), &creds, now()).unwrap_err();
    no_secret_in(&err, &["first-password", "old-password", "wrong-password"], &[]);
}

#[test]
fn basic_auth_rejects_missing_and_malformed_headers() {
    let creds = [Secret::from_value("pipedrive:first-password")];
    assert_eq!(verify_basic_auth(None, &creds, now()), Err(SignatureError::MissingHeader("Authorization")));
    for bad in [
        String::new(),
        "Basic".into(),
        format!("Bearer {}", BASE64.encode("pipedrive:first-password")),
        "Basic !!!".into(),
        basic("no-colon-here"),
    ] {
        let result = verify_basic_auth(Some(&bad), &creds, now());
        assert!(matches!(result, Err(SignatureError::MalformedHeader { header: "Authorization", .. })), "{bad:?}: {result:?}");
    }
}

#[test]
fn basic_auth_without_active_credentials_is_not_configured() {
    for creds in [vec![], vec![expiring("pipedrive:first-password", now())]] {
        let result = verify_basic_auth(Some(&basic("pipedrive:first-password")), &creds, now());
        assert!(matches!(result, Err(SignatureError::NotConfigured { crm: Source::Pipedrive, .. })), "{result:?}");
    }
}

#[test]
fn every_error_has_a_code_and_a_message_for_a_crm_admin() {
    let errors = [
        SignatureError::MissingHeader("X"),
        malformed("X", "why"),
        SignatureError::TimestampTooOld { age_secs: 400, tolerance_secs: 300 },
        SignatureError::TimestampInFuture { ahead_secs: 400, tolerance_secs: 300 },
        SignatureError::Mismatch { header: "X" },
        SignatureError::NotConfigured { crm: Source::Hubspot, missing: "m" },
        SignatureError::UnknownOrganization("00D".into()),
        SignatureError::NoOrganization,
        SignatureError::MissingPathSecret,
        SignatureError::WrongPathSecret,
        SignatureError::PathSecretNotConfigured,
    ];
    let codes: std::collections::HashSet<_> = errors.iter().map(SignatureError::code).collect();
    assert_eq!(codes.len(), errors.len());
    assert!(errors[2].to_string().contains("400 seconds ago"));
    assert!(errors[3].to_string().contains("in the future"));
}

// ---- path secret ------------------------------------------------------------------------------

#[test]
fn a_path_secret_is_required_once_configured_and_refused_when_not() {
    let secrets = [Secret::from_value("sf-path-new-0001"), expiring("sf-path-old-0001", now() + chrono::TimeDelta::hours(1))];
    assert_eq!(verify_path_secret(Some("sf-path-new-0001"), &secrets, now()), Ok(()));
    assert_eq!(verify_path_secret(Some("sf-path-old-0001"), &secrets, now()), Ok(()), "the old one during the overlap");
    let later = now() + chrono::TimeDelta::hours(2);
    assert_eq!(verify_path_secret(Some("sf-path-old-0001"), &secrets, later), Err(SignatureError::WrongPathSecret), "expired");
    for wrong in ["", "sf-path-new-000", "sf-path-new-00011", "SF-PATH-NEW-0001", "sf-path-new-0001/"] {
        assert_eq!(verify_path_secret(Some(wrong), &secrets, now()), Err(SignatureError::WrongPathSecret), "{wrong:?}");
    }
    assert_eq!(verify_path_secret(None, &secrets, now()), Err(SignatureError::MissingPathSecret));
    assert_eq!(verify_path_secret(Some("sf-path-new-0001"), &[hash_only("sf-path-new-0001")], now()), Ok(()), "a hash only");
    assert_eq!(verify_path_secret(None, &[], now()), Ok(()), "no secret: the bare endpoint");
    assert_eq!(verify_path_secret(Some("anything-at-all"), &[], now()), Err(SignatureError::PathSecretNotConfigured));
    for e in [SignatureError::MissingPathSecret, SignatureError::WrongPathSecret, SignatureError::PathSecretNotConfigured] {
        no_secret_in(&e, &["sf-path-new-0001", "sf-path-old-0001"], &[]);
    }
}

// ---- one-byte differences ---------------------------------------------------------------------
// Each comparison refuses a presented value that differs from the right one in any single byte.

#[test]
fn a_generic_signature_one_byte_off_is_refused() {
    let secrets = [Secret::from_value(SECRET)];
    let signed = sign_generic(SECRET.as_bytes(), 1_700_000_000, BODY);
    let (head, sig) = signed.split_once("v1=").unwrap();
    assert_eq!(verify(Some(&signed), BODY, &secrets), Ok(()));
    for changed in one_byte_changes(&hex::decode(sig).unwrap()) {
        let header = format!("{head}v1={}", hex::encode(changed));
        assert_eq!(verify(Some(&header), BODY, &secrets), Err(SignatureError::Mismatch { header: GENERIC_SIGNATURE_HEADER }));
    }
}

#[test]
fn a_hubspot_signature_one_byte_off_is_refused() {
    let secrets = [Secret::from_value(HS_SECRET)];
    for changed in one_byte_changes(&BASE64.decode(HS_VECTOR).unwrap()) {
        let sig = BASE64.encode(changed);
        let result = hs_verify(Some(&sig), Some(HS_TS), HS_URI, HS_BODY, &secrets);
        assert_eq!(result, Err(SignatureError::Mismatch { header: HUBSPOT_SIGNATURE_HEADER }), "{sig}");
    }
}

#[test]
fn basic_auth_one_byte_off_is_refused_plain_or_hashed() {
    const RIGHT: &str = "pipedrive:first-password";
    for creds in [[Secret::from_value(RIGHT)], [hash_only(RIGHT)]] {
        assert_eq!(verify_basic_auth(Some(&basic(RIGHT)), &creds, now()), Ok(()));
        // Changing the colon makes the header malformed, not a wrong password.
        for changed in one_char_changes(RIGHT).filter(|c| c.contains(':')) {
            let result = verify_basic_auth(Some(&basic(&changed)), &creds, now());
            assert_eq!(result, Err(SignatureError::Mismatch { header: AUTHORIZATION_HEADER }), "{changed}");
        }
    }
}

#[test]
fn a_path_secret_one_byte_off_is_refused_plain_or_hashed() {
    const RIGHT: &str = "sf-path-new-0001";
    for secrets in [[Secret::from_value(RIGHT)], [hash_only(RIGHT)]] {
        assert_eq!(verify_path_secret(Some(RIGHT), &secrets, now()), Ok(()));
        for changed in one_char_changes(RIGHT) {
            assert_eq!(verify_path_secret(Some(&changed), &secrets, now()), Err(SignatureError::WrongPathSecret), "{changed}");
        }
    }
}
