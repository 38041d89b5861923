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
fn allowed_recipient_domains_are_lower_cased_and_each_must_be_a_domain() {
    assert!(load(&[]).unwrap().settings.mail.allowed_recipient_domains.is_empty(), "none by default: only the rep directory");
    let c = load(&[("mail.allowed_recipient_domains", json!([" Seller.Example ", "example.com", "seller.example"]))]).unwrap();
    assert_eq!(c.settings.mail.allowed_recipient_domains, ["seller.example", "example.com"]);
    let from_env = load(&[("mail.allowed_recipient_domains", json!("Seller.example, partner.example"))]).unwrap();
    assert_eq!(from_env.settings.mail.allowed_recipient_domains, ["seller.example", "partner.example"], "one comma-separated string");
    let addr = |s: &str| EmailAddress::parse(s).unwrap();
    assert!(c.settings.mail.allows_domain_of(&addr("Ana@SELLER.example")));
    assert!(!c.settings.mail.allows_domain_of(&addr("ana@eu.seller.example")), "a subdomain is another domain");
    assert!(!c.settings.mail.allows_domain_of(&addr("ana@seller.example.evil.example")));
    for (bad, says) in [
        ("ana@seller.example", "write its domain only"),
        ("*.seller.example", "wildcards are not supported"),
        ("seller..example", "not a domain name"),
        ("https://seller.example", "not a domain name"),
        ("-seller.example", "not a domain name"),
        ("", "is empty"),
    ] {
        let e = load(&[("mail.allowed_recipient_domains", json!(["example.com", bad]))]).expect_err(bad);
        assert_eq!(e.key, "mail.allowed_recipient_domains", "{e}");
        assert!(e.reason.starts_with("[1]: ") && e.reason.contains(says), "{bad}: {e}");
    }
}

#[test]
fn a_salesforce_path_secret_comes_from_the_environment_and_fits_in_a_url_path() {
    let ok = load(&[("webhooks.salesforce.path_secrets", json!(["sf-path-7f3a9c2e41b8d605", "Old_secret.1~"]))]).unwrap();
    assert_eq!(ok.settings.webhooks.salesforce.path_secrets.secrets().unwrap().len(), 2);
    for bad in ["has/slash-123", "has space-123", "percent%2F-123", "query?x=123"] {
        let e = load(&[("webhooks.salesforce.path_secrets", json!([bad]))]).expect_err(bad);
        assert_eq!(e.key, "webhooks.salesforce.path_secrets", "{e}");
        assert!(e.reason.contains("URL path") && !e.reason.contains(bad), "{bad}: {e}");
    }
    let e = load(&[("webhooks.salesforce.path_secrets", json!("short"))]).expect_err("too short");
    assert!(e.reason.contains("shorter than 8"), "{e}");
    // Written in a file: refused, naming the variable to use instead.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"), dir.path().join("default.toml")).unwrap();
    std::fs::write(dir.path().join("production.toml"), "[webhooks.salesforce]\npath_secrets = \"sf-path-in-a-file-123\"\n").unwrap();
    let source = ConfigSource { dir: dir.path().to_path_buf(), env_name: Some("production".into()), use_env: false };
    let e = source.load().expect_err("a secret in a file");
    assert_eq!(e.key, "webhooks.salesforce.path_secrets", "{e}");
    assert!(e.origin.ends_with("production.toml") && e.reason.contains("FIRSTCALL__WEBHOOKS__SALESFORCE__PATH_SECRETS"), "{e}");
    assert!(!e.to_string().contains("sf-path-in-a-file-123"), "{e}");
}

#[test]
fn the_inbox_batch_is_checked_naming_the_key() {
    assert_eq!(load(&[]).unwrap().settings.webhooks.apply_batch_size, 250);
    for bad in [0, 5001] {
        let e = load(&[("webhooks.apply_batch_size", json!(bad))]).expect_err("out of range");
        assert_eq!(e.key, "webhooks.apply_batch_size", "{e}");
        assert!(e.reason.contains("between 1 and 5000"), "{e}");
    }
    assert_eq!(load(&[("webhooks.apply_batch_size", json!(5000))]).unwrap().settings.webhooks.apply_batch_size, 5000);
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

#[test]
fn promise_lead_times_are_checked_naming_the_key() {
    let p = load(&[]).unwrap().settings.promises;
    assert_eq!(p, PromiseSettings::default(), "config/default.toml states the built-in defaults");
    for (value, reason) in [(json!([5, 0]), "holds 0"), (json!([61]), "between 1 and 60"), (json!([3, 1, 3]), "holds 3 twice")] {
        let e = load(&[("promises.remind_business_days_before", value)]).expect_err("refused");
        assert_eq!(e.key, "promises.remind_business_days_before", "{e}");
        assert!(e.reason.contains(reason), "{e}");
    }
    let ok = load(&[("promises.remind_business_days_before", json!([]))]).unwrap();
    assert!(ok.settings.promises.remind_business_days_before.is_empty(), "on the day only");
}

#[test]
fn the_quiet_period_of_recap_changes_is_checked_naming_the_key() {
    let c = load(&[]).unwrap().settings.recap_changes;
    assert_eq!(c, crate::config::RecapChangeSettings::default(), "config/default.toml states the built-in defaults");
    for (pairs, key, reason) in [
        (vec![("recap_changes.quiet_minutes", json!(1441))], "recap_changes.quiet_minutes", "up to 1440"),
        (
            vec![("recap_changes.quiet_minutes", json!(30)), ("recap_changes.max_wait_minutes", json!(20))],
            "recap_changes.max_wait_minutes",
            "from quiet_minutes (30)",
        ),
        (vec![("recap_changes.max_wait_minutes", json!(20000))], "recap_changes.max_wait_minutes", "up to 10080"),
    ] {
        let e = load(&pairs).expect_err("refused");
        assert_eq!(e.key, key, "{e}");
        assert!(e.reason.contains(reason), "{e}");
    }
    assert_eq!(load(&[("recap_changes.quiet_minutes", json!(0))]).unwrap().settings.recap_changes.quiet_minutes, 0, "at once");
}

#[test]
fn the_reps_controls_limits_are_checked_naming_the_key() {
    let c = load(&[]).unwrap().settings.controls;
    assert_eq!(c, ControlSettings::default(), "config/default.toml states the built-in defaults");
    for (key, value, reason) in [
        ("controls.move_business_days", json!(61), "up to 60"),
        ("controls.max_days_ahead", json!(0), "from 1 to 365"),
        ("controls.max_days_ahead", json!(400), "from 1 to 365"),
    ] {
        let e = load(&[(key, value)]).expect_err("refused");
        assert_eq!(e.key, key, "{e}");
        assert!(e.reason.contains(reason), "{e}");
    }
    assert_eq!(
        load(&[("controls.move_business_days", json!(0))]).unwrap().settings.controls.move_business_days,
        0,
        "any move tells the manager"
    );
}

#[test]
fn the_smtp_password_is_not_printed_with_the_settings() {
    let c = load(&[("mail.smtp.password", json!("hunter2-smtp-password")), ("mail.smtp.username", json!("firstcall"))]).unwrap();
    let printed = format!("{:?}", c.settings);
    assert!(!printed.contains("hunter2-smtp-password"), "{printed}");
    assert!(printed.contains("password: Some(\"<redacted>\")") && printed.contains("username: Some(\"firstcall\")"), "{printed}");
}

/// Loads `config/default.toml` with `production.toml` holding `extra`.
fn load_with_file(extra: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"), dir.path().join("default.toml")).unwrap();
    std::fs::write(dir.path().join("production.toml"), extra).unwrap();
    ConfigSource { dir: dir.path().to_path_buf(), env_name: Some("production".into()), use_env: false }.load()
}

#[test]
fn crm_credentials_written_in_a_file_are_refused_and_not_shown() {
    for (section, key, var) in [
        ("hubspot", "token", "FIRSTCALL__CRM__HUBSPOT__TOKEN"),
        ("pipedrive", "api_token", "FIRSTCALL__CRM__PIPEDRIVE__API_TOKEN"),
        ("salesforce", "client_secret", "FIRSTCALL__CRM__SALESFORCE__CLIENT_SECRET"),
    ] {
        let e = load_with_file(&format!("[crm.{section}]\n{key} = \"crm-secret-in-a-file-123\"\n")).expect_err(key);
        assert_eq!(e.key, format!("crm.{section}.{key}"), "{e}");
        assert!(e.origin.ends_with("production.toml") && e.reason.contains(var), "{e}");
        assert!(!e.to_string().contains("crm-secret-in-a-file-123"), "{e}");
    }
    // From the environment (here: an override) they are accepted.
    let ok = load(&[("crm.hubspot.token", json!("pat-na1-123"))]).unwrap();
    assert_eq!(ok.settings.crm.hubspot.token.unwrap().expose(), "pat-na1-123");
}

#[test]
fn the_version_follows_the_schedules_and_templates_and_nothing_else() {
    let base = load(&[]).unwrap();
    let digest = [7u8; 32];
    let v = base.version(&digest);
    assert!(v.starts_with('v') && v.len() == 13, "{v}");
    assert_eq!(load(&[]).unwrap().version(&digest), v, "the same configuration has the same version");
    let other_settings = load(&[("mail.concurrency", json!(9)), ("http.port", json!(9999))]).unwrap();
    assert_eq!(other_settings.version(&digest), v, "settings outside the schedules and templates do not count");
    assert_ne!(base.version(&[8u8; 32]), v, "another wording is another version");
    let mut edited = base.settings.schedules.clone();
    edited[0].reminder_cron = "0 10 * * 1-5".into();
    assert_ne!(load(&[("schedules", serde_json::to_value(&edited).unwrap())]).unwrap().version(&digest), v, "an edited schedule");
    assert_ne!(load(&[("defaults.holidays", json!(["2026-12-24"]))]).unwrap().version(&digest), v, "shared holidays count");
}

#[test]
fn pasted_schedules_replace_the_running_ones_only_when_they_pass_every_load_check() {
    let running = load(&[]).unwrap();
    let one = r#"
        [[schedules]]
        name = "default"
        due_within_business_hours = 6
        reminder_cron = "0 10 * * 1-5"
    "#;
    let edited = running.with_schedules_from(one).unwrap();
    assert_eq!(edited.schedules.len(), 1);
    assert_eq!(edited.settings.defaults.holidays, running.settings.defaults.holidays, "holidays kept unless given");
    assert_eq!(edited.settings.http.port, running.settings.http.port, "nothing else changes");
    let with_holidays = format!("{one}\n[defaults]\nholidays = [\"2026-12-24\"]\n");
    assert_eq!(running.with_schedules_from(&with_holidays).unwrap().settings.defaults.holidays, ["2026-12-24"]);

    let refused = |text: &str| running.with_schedules_from(text).expect_err(text).to_string();
    assert!(refused("").contains("no [[schedules]] table"));
    assert!(refused("[http]\nport = 1\n").contains("http"), "only schedules and holidays are previewed");
    let matched_only = one.replace("[[schedules]]", "[[schedules]]\nmatch = { sources = [\"hubspot\"] }");
    assert!(refused(&matched_only).contains("no schedule applies to every order"));
    assert!(refused(&format!("{one}{one}")).contains("used twice"));
}

#[test]
fn who_may_sign_in_and_for_how_long_is_checked_naming_the_key() {
    let c = load(&[]).unwrap().settings.sign_in;
    assert_eq!(c, crate::config::SignInSettings::default(), "config/default.toml states the built-in defaults");
    for (key, value, reason) in [
        ("sign_in.link_minutes", json!(0), "from 1 to 1440"),
        ("sign_in.session_hours", json!(721), "from 1 to 720"),
        ("sign_in.per_address_per_hour", json!(0), "from 1 to 1000"),
        ("sign_in.per_client_per_hour", json!(0), "from 1 to 10000"),
    ] {
        let e = load(&[(key, value)]).expect_err("refused");
        assert_eq!(e.key, key, "{e}");
        assert!(e.reason.contains(reason), "{e}");
    }
    let e = load(&[("sign_in.sales_ops", json!(["ops at seller"]))]).expect_err("not an address");
    assert!(e.to_string().contains("sign_in.sales_ops") && e.to_string().contains("not a valid email address"), "{e}");
    let ops = load(&[("sign_in.sales_ops", json!(["Ops@Seller.example"]))]).unwrap().settings.sign_in;
    assert!(ops.is_sales_ops("ops@seller.example"), "compared in lower case");
    let from_env = load(&[("sign_in.sales_ops", json!("ops@seller.example, lead@seller.example"))]).unwrap().settings.sign_in;
    assert_eq!(from_env.sales_ops.len(), 2, "one comma-separated string, as an environment variable gives");
}
