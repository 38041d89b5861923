//! A fixed, realistic deal used wherever a recap is needed without a database: `firstcall
//! config check` renders every template with it, and the golden-file tests compare its
//! rendering byte for byte. Changing it means regenerating `tests/golden/` (`UPDATE_GOLDEN=1`).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::domain::OrderedItem;
use crate::domain::{Currency, EmailAddress, Money, Source, Timezone};
use crate::proposals::model::{
    Account, Activity, ActivityKind, Commitment, Contact, ContactRole, LineItem, Priority, Proposal, Requirement,
};

use super::model::{CallSnapshot, OrderSnapshot, ProposalVersion, RecapInput};

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap_or_default()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn usd(minor: i64) -> Money {
    Money { minor, currency: Currency::parse("USD").unwrap_or_else(|_| unreachable!("USD is a currency code")) }
}

fn email(s: &str) -> Option<EmailAddress> {
    EmailAddress::parse(s).ok()
}

/// Northwind Health bought 130 seats after a six-week cycle; the proposal had one late
/// delivery, an unrequested promise, a changed quantity and price, an added and a removed item.
pub fn sample_input() -> RecapInput {
    let requirement = |id: &str, text: &str, priority, need_by, stated_in: Option<&str>| Requirement {
        id: id.into(),
        text: text.into(),
        priority,
        need_by,
        stated_in: stated_in.map(Into::into),
    };
    let commitment = |id: &str, text: &str, covers: &[&str], deliver_by| Commitment {
        id: id.into(),
        text: text.into(),
        covers: covers.iter().map(|s| s.to_string()).collect(),
        deliver_by,
        owner: None,
    };
    let line = |sku: &str, name: &str, quantity, minor, rationale: &str| LineItem {
        sku: sku.into(),
        name: name.into(),
        quantity,
        unit_price: usd(minor),
        rationale: Some(rationale.into()),
    };
    let proposal = Proposal {
        account: Account { name: "Northwind Health".into(), segment: Some("mid-market".into()) },
        rep_email: email("ana.lima@seller.example"),
        contacts: vec![
            Contact {
                name: "Priya Raman".into(),
                email: email("priya@northwind.example"),
                title: Some("IT lead".into()),
                role: ContactRole::FunctionalDecisionMaker,
            },
            Contact {
                name: "Dana Whitfield".into(),
                email: email("dana@northwind.example"),
                title: Some("COO".into()),
                role: ContactRole::DecisionMaker,
            },
            Contact { name: "Lee Chen".into(), email: None, title: Some("Procurement".into()), role: ContactRole::Other },
        ],
        requirements: vec![
            requirement(
                "R1",
                "Single sign-on with Okta for all staff",
                Priority::Must,
                Some(day(2026, 4, 1)),
                Some("Discovery call, 12 Jan"),
            ),
            requirement(
                "R2",
                "Appointments migrated from the legacy scheduler",
                Priority::Must,
                Some(day(2026, 3, 20)),
                Some("Requirements workshop, 3 Feb"),
            ),
            requirement("R3", "Weekly usage report for department heads", Priority::Should, None, Some("Email from Dana, 5 Feb")),
            requirement("R4", "Patient reminders in Spanish", Priority::Nice, None, None),
            requirement(
                "R5",
                "HIPAA business associate agreement",
                Priority::Must,
                Some(day(2026, 3, 10)),
                Some("Procurement review, 18 Feb"),
            ),
        ],
        commitments: vec![
            commitment("C1", "SAML SSO with Okta, set up by our onboarding team", &["R1"], Some(day(2026, 3, 25))),
            commitment("C2", "Migration of appointments and calendars", &["R2"], Some(day(2026, 3, 31))),
            commitment("C3", "Dedicated success manager for the first 90 days", &[], None),
            commitment("C4", "Usage dashboard with weekly email digest", &["R3"], None),
        ],
        line_items: vec![
            line("PRO-SEAT", "Pro seat (annual)", 120.0, 4900, "One seat per staff member"),
            line("SSO-ADDON", "SSO add-on", 1.0, 150000, "Okta SSO, required by IT"),
            line("MIGRATE", "Legacy data migration", 1.0, 400000, "One-off move off the old scheduler"),
            line("TRAINING", "Onsite training day", 2.0, 80000, "Two days for front-desk staff"),
        ],
        activities: vec![
            Activity {
                at: at(2026, 2, 3, 15, 0),
                kind: ActivityKind::Meeting,
                summary: "Requirements workshop with Dana and Priya".into(),
            },
            Activity {
                at: at(2026, 1, 12, 16, 30),
                kind: ActivityKind::Call,
                summary: "Discovery call: scheduling pain, SSO a must".into(),
            },
            Activity {
                at: at(2026, 2, 20, 14, 0),
                kind: ActivityKind::Proposal,
                summary: "Proposal sent: 120 seats, SSO, migration, training".into(),
            },
            Activity {
                at: at(2026, 2, 27, 18, 0),
                kind: ActivityKind::Quote,
                summary: "Revised quote: 130 seats, SSO discount, priority support".into(),
            },
        ],
        unreadable: vec![crate::proposals::model::Unreadable {
            line: "#promise training by end of March: Two onsite days".into(),
            reason: "'end of March' is not a date; write by YYYY-MM-DD".into(),
            stated_in: "HubSpot note, 27 Feb 2026".into(),
        }],
    };
    let ordered =
        |sku: &str, name: &str, quantity, minor| OrderedItem { sku: sku.into(), name: name.into(), quantity, unit_price: Some(usd(minor)) };
    RecapInput {
        proposal: Some(ProposalVersion { version: 3, received_at: at(2026, 2, 27, 18, 5), proposal }),
        order: OrderSnapshot {
            source: Source::Hubspot,
            deal_id: "8812345".into(),
            account_name: Some("Northwind Health".into()),
            amount: Some(usd(1_397_000)),
            line_items: vec![
                ordered("PRO-SEAT", "Pro seat (annual)", 130.0, 4900),
                ordered("SSO-ADDON", "SSO add-on", 1.0, 120000),
                ordered("MIGRATE", "Legacy data migration", 1.0, 400000),
                ordered("PRIORITY-SUPPORT", "Priority support", 1.0, 240000),
            ],
            ordered_at: at(2026, 3, 2, 15, 30),
            segment: Some("mid-market".into()),
        },
        call: CallSnapshot {
            id: 42,
            due_at: at(2026, 3, 3, 19, 0),
            rep_name: Some("Ana Lima".into()),
            rep_email: "ana.lima@seller.example".into(),
            rep_timezone: Timezone(chrono_tz::America::New_York),
            schedule_name: "default".into(),
        },
    }
}

/// The same order with no proposal on file.
pub fn sample_input_without_proposal() -> RecapInput {
    RecapInput { proposal: None, ..sample_input() }
}
