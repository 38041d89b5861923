//! Which escalation steps a call has had and which are still ahead of it. Steps are known by
//! their names (`EscalationStep::id`), so a schedule edited while calls are open (a step
//! inserted, removed or moved) never sends a call the same step twice, and a step inserted
//! before the last one a call had is passed, not sent late.

use entity::calls;
use sea_orm::{ConnectionTrait, DbErr};

use super::FirstCall;
use crate::config::schedule::{EscalationStep, EscalationTarget, Schedule};
use crate::domain::EmailAddress;
use crate::reps::Recipient;

/// Who a step for `rep` (as the directory knows them: `rep_info`) goes to, in which role, and
/// why it is sales ops when the directory has no manager to escalate to.
pub async fn recipient(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    rep: &EmailAddress,
    rep_info: &Recipient,
    target: &EscalationTarget,
) -> Result<(EmailAddress, &'static str, Option<String>), DbErr> {
    let sales_ops = || fc.config.settings.defaults.unassigned_email.clone();
    Ok(match target {
        EscalationTarget::Manager => match &rep_info.manager_email {
            Some(m) => (m.clone(), "manager", None),
            None => (sales_ops(), "sales_ops", Some(format!("{rep} has no manager in the rep directory"))),
        },
        EscalationTarget::ManagerOfManager => {
            let mm = match &rep_info.manager_email {
                Some(m) => crate::reps::recipient(db, m, fc.config.settings.defaults.timezone).await?.manager_email,
                None => None,
            };
            match mm {
                Some(m) => (m, "manager_of_manager", None),
                None => (sales_ops(), "sales_ops", Some(format!("no manager's manager on file for {rep}"))),
            }
        }
        EscalationTarget::Address(a) => (a.clone(), "escalation_contact", None),
    })
}

/// The names of the steps sent for `call`, in the order sent. A call escalated before steps had
/// names (`escalated_steps` unset) had the first `escalation_level` steps of its schedule.
pub fn sent(call: &calls::Model, schedule: &Schedule) -> Vec<String> {
    recorded(call.escalated_steps.as_deref(), call.escalation_level, schedule)
}

/// The names of the steps sent, from what a call or promise recorded.
pub fn recorded(escalated_steps: Option<&str>, escalation_level: i32, schedule: &Schedule) -> Vec<String> {
    match escalated_steps.map(serde_json::from_str::<Vec<String>>) {
        Some(Ok(names)) => names,
        _ => schedule.escalation.iter().take(escalation_level.max(0) as usize).map(|s| s.id.clone()).collect(),
    }
}

/// The steps still ahead of a call that had `sent`: those after the last sent step in the
/// schedule's current order, not sent themselves.
pub fn ahead<'a>(schedule: &'a Schedule, sent: &[String]) -> Vec<&'a EscalationStep> {
    let after = schedule.escalation.iter().rposition(|s| sent.contains(&s.id)).map_or(0, |i| i + 1);
    schedule.escalation.iter().skip(after).filter(|s| !sent.contains(&s.id)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::config::schedule::ScheduleSettings;

    fn settings(steps: Value) -> ScheduleSettings {
        let s = json!({"name": "s", "due_within_business_hours": 4, "reminder_cron": "0 9 * * 1-5", "escalation": steps});
        serde_json::from_value(s).expect("schedule settings")
    }

    fn schedule(steps: Value) -> Schedule {
        settings(steps).parse(&[]).unwrap_or_else(|e| panic!("{}: {}", e.key, e.reason))
    }

    fn step(after_reminders: u32, to: &str) -> Value {
        json!({"after_reminders": after_reminders, "to": to})
    }

    fn names(steps: &[&EscalationStep]) -> Vec<String> {
        steps.iter().map(|s| s.id.clone()).collect()
    }

    #[test]
    fn steps_are_named_by_their_id_or_target_and_a_repeated_target_is_numbered() {
        let mut director = step(4, "manager_of_manager");
        director["id"] = json!("director");
        let s = schedule(json!([step(1, "manager"), step(2, "manager"), step(3, "VP@Seller.example"), director]));
        let ids: Vec<&str> = s.escalation.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["manager", "manager#2", "vp@seller.example", "director"]);
    }

    #[test]
    fn a_step_inserted_before_the_last_sent_one_is_passed_and_one_after_it_is_ahead() {
        let sent = vec!["manager".to_string()];
        let before = schedule(json!([step(2, "manager"), step(4, "manager_of_manager")]));
        assert_eq!(names(&ahead(&before, &sent)), ["manager_of_manager"]);
        let edited = schedule(json!([
            step(1, "ops@seller.example"),
            step(2, "manager"),
            step(3, "vp@seller.example"),
            step(4, "manager_of_manager")
        ]));
        assert_eq!(names(&ahead(&edited, &sent)), ["vp@seller.example", "manager_of_manager"]);
        // Moved: the sent step now comes last, so nothing is ahead.
        let moved = schedule(json!([step(4, "manager_of_manager"), step(2, "manager")]));
        assert!(ahead(&moved, &sent).is_empty());
        // Removed: every step is ahead.
        let removed = schedule(json!([step(4, "manager_of_manager")]));
        assert_eq!(names(&ahead(&removed, &sent)), ["manager_of_manager"]);
    }

    #[test]
    fn a_call_escalated_before_steps_had_names_had_the_first_steps_of_its_level() {
        let s = schedule(json!([step(2, "manager"), step(4, "manager_of_manager")]));
        assert_eq!(recorded(None, 1, &s), ["manager"]);
        assert_eq!(names(&ahead(&s, &recorded(None, 1, &s))), ["manager_of_manager"]);
        assert_eq!(recorded(Some(r#"["manager_of_manager"]"#), 1, &s), ["manager_of_manager"]);
        assert!(recorded(None, 0, &s).is_empty());
    }

    #[test]
    fn two_steps_with_one_id_or_an_id_that_is_no_name_are_refused_naming_the_key() {
        let (mut a, mut b) = (step(1, "manager"), step(2, "manager_of_manager"));
        a["id"] = json!("first");
        b["id"] = json!("first");
        let e = settings(json!([a.clone(), b])).parse(&[]).expect_err("refused");
        assert_eq!(e.key, "escalation[1].id");
        assert!(e.reason.contains("'first' names an earlier step too"), "{}", e.reason);
        a["id"] = json!("no spaces");
        let e = settings(json!([a])).parse(&[]).expect_err("refused");
        assert_eq!(e.key, "escalation[0].id");
        assert!(e.reason.contains("'no spaces' is not a step name"), "{}", e.reason);
    }
}
