//! What an edit changes in the schedules, key by key, against a configuration that runs (for
//! `firstcall config check --against-running`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::ScheduleContent;
use super::schedule::ScheduleSettings;

/// One line per change: each schedule (by name) added or removed; in a schedule both have, each
/// key set, unset or changed, with its value before and after (escalation steps by position:
/// `escalation[1].to`); a new order of the schedules both have (the first whose `match` fits an
/// order applies); the shared holidays. Nothing for an edit that changes nothing.
pub fn schedule_changes(running: &ScheduleContent, edited: &ScheduleContent) -> Vec<String> {
    let name = |s: &ScheduleSettings| s.name.trim().to_string();
    let find = |list: &[ScheduleSettings], n: &str| list.iter().find(|s| s.name.trim() == n).cloned();
    let mut out = Vec::new();
    for s in &running.schedules {
        if find(&edited.schedules, &name(s)).is_none() {
            out.push(format!("schedule \"{}\": removed (its open calls move to the schedule their order matches)", name(s)));
        }
    }
    for s in &edited.schedules {
        let Some(before) = find(&running.schedules, &name(s)) else {
            out.push(format!("schedule \"{}\": added", name(s)));
            continue;
        };
        let (a, b) = (flatten(&before), flatten(s));
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for key in keys {
            let change = match (a.get(key), b.get(key)) {
                (Some(x), Some(y)) if x != y => format!("{x} -> {y}"),
                (Some(x), None) => format!("{x} -> (not set)"),
                (None, Some(y)) => format!("(not set) -> {y}"),
                _ => continue,
            };
            out.push(format!("schedule \"{}\": {key}: {change}", name(s)));
        }
    }
    let order = |list: &[ScheduleSettings], other: &[ScheduleSettings]| -> Vec<String> {
        list.iter().map(name).filter(|n| find(other, n).is_some()).collect()
    };
    let (before, after) = (order(&running.schedules, &edited.schedules), order(&edited.schedules, &running.schedules));
    if before != after {
        out.push(format!("schedule order: {} -> {} (the first whose match fits an order applies)", before.join(", "), after.join(", ")));
    }
    if running.holidays != edited.holidays {
        out.push(format!("defaults.holidays: {} -> {}", Value::from(running.holidays.clone()), Value::from(edited.holidays.clone())));
    }
    out
}

/// The schedules (by name) of `running` whose open calls an edit may move: each one the edit
/// changes or removes, or every one when the shared holidays change. A schedule the edit adds
/// has no open calls yet; a schedule only moved in the order keeps its calls.
pub fn changed_schedules(running: &ScheduleContent, edited: &ScheduleContent) -> Vec<String> {
    let holidays = running.holidays != edited.holidays;
    running
        .schedules
        .iter()
        .filter(|s| holidays || !edited.schedules.iter().any(|e| e.name.trim() == s.name.trim() && flatten(e) == flatten(s)))
        .map(|s| s.name.trim().to_string())
        .collect()
}

/// The settings (dotted keys; a list is one key) whose values differ between `a` and `b`, both
/// settings as JSON, leaving out the keys in `except`. Only the keys are named, never a value:
/// secrets are among them.
pub fn changed_keys(a: &Value, b: &Value, except: &[&str]) -> Vec<String> {
    fn leaves(path: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    leaves(&key, v, out);
                }
            }
            leaf => {
                out.insert(path.to_string(), leaf.clone());
            }
        }
    }
    let (mut x, mut y) = (BTreeMap::new(), BTreeMap::new());
    leaves("", a, &mut x);
    leaves("", b, &mut y);
    let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
    keys.into_iter()
        .filter(|k| !except.iter().any(|e| *k == e || k.starts_with(&format!("{e}."))))
        .filter(|k| x.get(*k) != y.get(*k))
        .cloned()
        .collect()
}

/// A schedule as `key → value` leaves, its name left out.
fn flatten(s: &ScheduleSettings) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    walk(String::new(), serde_json::to_value(s).unwrap_or(Value::Null), &mut out);
    out.remove("name");
    out
}

fn walk(path: String, v: Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                walk(if path.is_empty() { k } else { format!("{path}.{k}") }, v, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for (i, v) in items.into_iter().enumerate() {
                walk(format!("{path}[{i}]"), v, out);
            }
        }
        leaf => {
            out.insert(path, leaf);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn content(schedules: Value, holidays: &[&str]) -> ScheduleContent {
        ScheduleContent {
            schedules: serde_json::from_value(schedules).expect("schedules"),
            holidays: holidays.iter().map(|h| h.to_string()).collect(),
        }
    }

    fn schedule(name: &str, cron: &str, escalation: Value) -> Value {
        json!({"name": name, "due_within_business_hours": 4, "reminder_cron": cron, "escalation": escalation})
    }

    #[test]
    fn the_schedules_whose_calls_may_move_are_the_changed_and_removed_ones_or_all_when_holidays_change() {
        let running = content(json!([schedule("vip", "0 9 * * *", json!([])), schedule("default", "0 * * * *", json!([]))]), &[]);
        let same = changed_schedules(&running, &running.clone());
        assert!(same.is_empty(), "{same:?}");
        let edited = content(json!([schedule("default", "30 * * * *", json!([])), schedule("new", "0 * * * *", json!([]))]), &[]);
        assert_eq!(changed_schedules(&running, &edited), ["vip", "default"]);
        let reordered = content(json!([schedule("default", "0 * * * *", json!([])), schedule("vip", "0 9 * * *", json!([]))]), &[]);
        assert!(changed_schedules(&running, &reordered).is_empty());
        let holiday =
            content(json!([schedule("vip", "0 9 * * *", json!([])), schedule("default", "0 * * * *", json!([]))]), &["2026-12-24"]);
        assert_eq!(changed_schedules(&running, &holiday), ["vip", "default"]);
    }

    #[test]
    fn changed_settings_are_named_by_key_without_their_values() {
        let a = json!({"http": {"port": 8080, "host": "0.0.0.0"}, "api": {"tokens": ["old-secret"]}, "schedules": [1]});
        let b = json!({"http": {"port": 9090, "host": "0.0.0.0"}, "api": {"tokens": ["new-secret"]}, "schedules": [2]});
        assert_eq!(changed_keys(&a, &b, &["schedules"]), ["api.tokens", "http.port"]);
        assert!(changed_keys(&a, &a, &[]).is_empty());
    }

    #[test]
    fn each_changed_key_is_named_with_its_value_before_and_after() {
        let running = content(
            json!([
                schedule("enterprise", "0 9 * * 1-5", json!([{"after_reminders": 2, "to": "manager"}])),
                schedule("default", "0 9,14 * * 1-5", json!([])),
                schedule("old", "0 9 * * 1-5", json!([])),
            ]),
            &[],
        );
        let edited = content(
            json!([
                schedule("default", "0 10 * * 1-5", json!([])),
                schedule(
                    "enterprise",
                    "0 9 * * 1-5",
                    json!([{"after_reminders": 3, "to": "manager"}, {"after_hours_overdue": 24.0, "to": "manager_of_manager"}])
                ),
                schedule("new", "0 9 * * 1-5", json!([])),
            ]),
            &["2026-12-24"],
        );
        assert_eq!(
            schedule_changes(&running, &edited),
            [
                "schedule \"old\": removed (its open calls move to the schedule their order matches)",
                "schedule \"default\": reminder_cron: \"0 9,14 * * 1-5\" -> \"0 10 * * 1-5\"",
                "schedule \"enterprise\": escalation[0].after_reminders: 2 -> 3",
                "schedule \"enterprise\": escalation[1].after_hours_overdue: (not set) -> 24.0",
                "schedule \"enterprise\": escalation[1].to: (not set) -> \"manager_of_manager\"",
                "schedule \"new\": added",
                "schedule order: enterprise, default -> default, enterprise (the first whose match fits an order applies)",
                "defaults.holidays: [] -> [\"2026-12-24\"]",
            ]
        );
        assert!(schedule_changes(&running, &running).is_empty(), "no edit, no change");
    }
}
