use serde_json::json;

use super::*;

fn load(pairs: &[(&str, serde_json::Value)]) -> Result<Config, ConfigError> {
    let source = ConfigSource { dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("config"), env_name: None, use_env: false };
    source.load_with(source.figment().merge(Config::overrides(pairs)))
}

fn smtp(host: &str, tls: &str) -> Result<Config, ConfigError> {
    load(&[
        ("mail.transport", json!("smtp")),
        ("mail.smtp.host", json!(host)),
        ("mail.smtp.tls", json!(tls)),
        ("mail.smtp.username", json!("firstcall")),
        ("mail.smtp.password", json!("smtp-password-123")),
    ])
}

#[test]
fn smtp_credentials_without_tls_to_a_remote_host_are_refused() {
    for host in ["smtp.example.com", "10.0.0.5", "2001:db8::25", "localhost.example.com"] {
        let e = smtp(host, "none").expect_err(host);
        assert_eq!(e.key, "mail.smtp.tls", "{e}");
        assert!(e.reason.contains("clear text") && e.reason.contains(host), "{e}");
        assert!(!e.to_string().contains("smtp-password-123"), "{e}");
    }
    // A username alone is refused too: the password then comes from the environment later on.
    let e = load(&[
        ("mail.transport", json!("smtp")),
        ("mail.smtp.host", json!("smtp.example.com")),
        ("mail.smtp.username", json!("firstcall")),
    ])
    .expect_err("username without TLS");
    assert_eq!(e.key, "mail.smtp.tls");
}

#[test]
fn smtp_credentials_are_allowed_with_tls_or_to_loopback() {
    for (host, tls) in [
        ("smtp.example.com", "starttls"),
        ("smtp.example.com", "tls"),
        ("localhost", "none"),
        ("LOCALHOST", "none"),
        ("127.0.0.1", "none"),
        ("127.10.0.1", "none"),
        ("::1", "none"),
        ("[::1]", "none"),
    ] {
        assert!(smtp(host, tls).is_ok(), "{host} {tls}: {:?}", smtp(host, tls).err());
    }
    // Without credentials nothing secret travels: plain SMTP to a relay stays possible.
    assert!(load(&[("mail.transport", json!("smtp")), ("mail.smtp.host", json!("relay.example.com"))]).is_ok());
}

#[test]
fn the_event_age_bound_must_be_at_least_a_day() {
    let e = load(&[("webhooks.max_event_age_days", json!(0))]).expect_err("0 days");
    assert_eq!(e.key, "webhooks.max_event_age_days");
    assert_eq!(load(&[]).unwrap().settings.webhooks.max_event_age_days, 30);
}

#[test]
fn retention_settings_are_checked_naming_the_key() {
    let r = load(&[]).unwrap().settings.retention;
    assert_eq!(r, RetentionSettings::default(), "config/default.toml states the built-in defaults");
    for (key, value, reason) in [
        ("retention.batch_size", json!(0), "between 1 and 10000"),
        ("retention.interval_minutes", json!(0), "between 1 and 10080"),
        ("retention.sent_email_bodies_days", json!(100_000), "0 to keep forever"),
    ] {
        let e = load(&[(key, value)]).expect_err(key);
        assert_eq!(e.key, key, "{e}");
        assert!(e.reason.contains(reason), "{e}");
    }
    let e = load(&[("retention.webhook_events_days", json!(-1))]).expect_err("negative days");
    assert_eq!(e.key, "retention.webhook_events_days", "{e}");
    let e = load(&[("retention.keep_forever", json!(true))]).expect_err("unknown key");
    assert!(e.to_string().contains("keep_forever"), "{e}");
    // 0 keeps a kind forever.
    assert!(load(&[("retention.orders_never_won_days", json!(0))]).is_ok());
}
