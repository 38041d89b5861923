use serde_json::json;

use super::*;

fn load(pairs: &[(&str, serde_json::Value)]) -> Result<Config, ConfigError> {
    let source = ConfigSource { dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("config"), env_name: None, use_env: false };
    source.load_with(source.figment().merge(Config::overrides(pairs)))
}

#[test]
fn the_event_age_bound_must_be_at_least_a_day() {
    let e = load(&[("webhooks.max_event_age_days", json!(0))]).expect_err("0 days");
    assert_eq!(e.key, "webhooks.max_event_age_days");
    assert_eq!(load(&[]).unwrap().settings.webhooks.max_event_age_days, 30);
}
