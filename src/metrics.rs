//! Prometheus metrics. Counters and histograms are bumped where things happen; gauges that
//! describe the database (calls by state, outbox depth and age, dead jobs) are read when
//! `/metrics` is scraped, so every process reports the shared truth.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use entity::emails::EmailKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabel {
    pub source: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    pub source: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailLabel {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

pub struct Metrics {
    registry: Registry,
    pub webhooks_received: Family<SourceLabel, Counter>,
    pub webhooks_rejected: Family<RejectLabel, Counter>,
    pub webhook_events: Family<EventLabel, Counter>,
    pub events_applied: Family<EventLabel, Counter>,
    pub crm_reconciled: Family<EventLabel, Counter>,
    pub emails: Family<EmailLabel, Counter>,
    pub reminders_sent: Counter,
    pub escalations_sent: Counter,
    pub mail_send_seconds: Histogram,
    pub job_claim_lateness: Histogram,
    pub jobs_completed: Counter,
    pub jobs_died: Counter,
    pub calls: Family<StateLabel, Gauge>,
    pub outbox_depth: Gauge,
    pub outbox_oldest_age_seconds: Gauge,
    pub jobs_pending: Gauge,
    pub jobs_dead: Gauge,
    pub emails_failed: Gauge,
    /// Edits of `config/` this process loaded, by outcome (accepted, unchanged, refused).
    pub config_reloads: Family<OutcomeLabel, Counter>,
    /// 1 while this process runs another configuration version than the newest running one,
    /// for more than a minute.
    pub config_stale: Gauge,
    /// Promises by state (exact up to 10000 a state).
    pub promises: Family<StateLabel, Gauge>,
    /// Promises this process marked delivered, slipped or dropped.
    pub promise_marks: Family<StateLabel, Counter>,
    /// Check-in answers this process recorded, by answer.
    pub check_in_answers: Family<AnswerLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnswerLabel {
    pub answer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("firstcall");
        let m = Metrics {
            registry: Registry::default(),
            webhooks_received: Family::default(),
            webhooks_rejected: Family::default(),
            webhook_events: Family::default(),
            crm_reconciled: Family::default(),
            emails: Family::default(),
            reminders_sent: Counter::default(),
            escalations_sent: Counter::default(),
            mail_send_seconds: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            job_claim_lateness: Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0]),
            jobs_completed: Counter::default(),
            jobs_died: Counter::default(),
            calls: Family::default(),
            outbox_depth: Gauge::default(),
            outbox_oldest_age_seconds: Gauge::default(),
            jobs_pending: Gauge::default(),
            jobs_dead: Gauge::default(),
            emails_failed: Gauge::default(),
            events_applied: Family::default(),
            config_reloads: Family::default(),
            config_stale: Gauge::default(),
            promises: Family::default(),
            promise_marks: Family::default(),
            check_in_answers: Family::default(),
        };
        registry.register("webhooks_received", "Webhook requests received, by CRM source", m.webhooks_received.clone());
        registry.register("webhooks_rejected", "Webhook requests rejected, by source and reason", m.webhooks_rejected.clone());
        registry.register(
            "webhook_events",
            "CRM events received in webhooks, by source and outcome (accepted: stored now; duplicate: stored before)",
            m.webhook_events.clone(),
        );
        registry.register(
            "events_applied",
            "Stored CRM events the engine applied, by source and outcome (opened, cancelled, updated, recorded, stale, failed)",
            m.events_applied.clone(),
        );
        registry.register(
            "crm_reconciled",
            "Won deals the reconciler found in a CRM, by source and outcome (opened: its webhook never came; known: it had)",
            m.crm_reconciled.clone(),
        );
        registry.register("emails", "Delivery attempts by email kind and outcome", m.emails.clone());
        registry.register("reminders_sent", "Reminder emails delivered", m.reminders_sent.clone());
        registry.register("escalations_sent", "Escalation emails delivered", m.escalations_sent.clone());
        registry.register("mail_send_seconds", "Time to hand one email to the transport", m.mail_send_seconds.clone());
        registry.register(
            "job_claim_latency_seconds",
            "How late a timer was when a worker claimed it (claimed - due)",
            m.job_claim_lateness.clone(),
        );
        registry.register("jobs_completed", "Timer steps completed", m.jobs_completed.clone());
        registry.register("jobs_died", "Timer steps that failed too often and were marked dead", m.jobs_died.clone());
        registry.register(
            "calls",
            // The bound is `workflow::queries::COUNTED`, a layer above this one.
            "First calls by state: exact up to 10000 a state; above, PostgreSQL's estimate from its statistics (or 10000 when it has none)",
            m.calls.clone(),
        );
        registry.register("outbox_depth", "Emails waiting to be delivered", m.outbox_depth.clone());
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest email waiting to be delivered",
            m.outbox_oldest_age_seconds.clone(),
        );
        registry.register("jobs_pending", "Timers waiting to run", m.jobs_pending.clone());
        registry.register("jobs_dead", "Timers marked dead, waiting for an operator to retry them", m.jobs_dead.clone());
        registry.register("emails_failed", "Emails that failed permanently, waiting for an operator", m.emails_failed.clone());
        registry.register(
            "config_reloads",
            "Edits of config/ loaded at run time, by outcome (accepted, unchanged, refused)",
            m.config_reloads.clone(),
        );
        registry.register(
            "config_stale",
            "1 while this process has run another configuration version than the newest running one for more than a minute",
            m.config_stale.clone(),
        );
        registry.register("promises", "Promises made on first calls, by state (exact up to 10000 a state)", m.promises.clone());
        registry.register(
            "promise_marks",
            "Promises marked delivered, slipped or dropped, by the state they moved to",
            m.promise_marks.clone(),
        );
        registry.register(
            "check_in_answers",
            "Customers' answers to the check-in after delivery (satisfied, mixed, unhappy)",
            m.check_in_answers.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn promise_marked(&self, state: &str) {
        self.promise_marks.get_or_create(&StateLabel { state: state.into() }).inc();
    }

    pub fn check_in_answered(&self, answer: &str) {
        self.check_in_answers.get_or_create(&AnswerLabel { answer: answer.into() }).inc();
    }

    pub fn webhook_received(&self, source: &str) {
        self.webhooks_received.get_or_create(&SourceLabel { source: source.into() }).inc();
    }

    pub fn webhook_rejected(&self, source: &str, reason: &str) {
        self.webhooks_rejected.get_or_create(&RejectLabel { source: source.into(), reason: reason.into() }).inc();
    }

    pub fn webhook_event(&self, source: &str, outcome: &str) {
        self.webhook_events.get_or_create(&EventLabel { source: source.into(), outcome: outcome.into() }).inc();
    }

    pub fn event_applied(&self, source: &str, outcome: &str) {
        self.events_applied.get_or_create(&EventLabel { source: source.into(), outcome: outcome.into() }).inc();
    }

    pub fn crm_reconciled(&self, source: &str, outcome: &str, n: u64) {
        self.crm_reconciled.get_or_create(&EventLabel { source: source.into(), outcome: outcome.into() }).inc_by(n);
    }

    pub fn config_reloaded(&self, outcome: &str) {
        self.config_reloads.get_or_create(&OutcomeLabel { outcome: outcome.into() }).inc();
    }

    pub fn job_claimed(&self, lateness_secs: f64) {
        self.job_claim_lateness.observe(lateness_secs);
    }

    pub fn jobs_done(&self, n: u64) {
        self.jobs_completed.inc_by(n);
    }

    pub fn job_dead(&self) {
        self.jobs_died.inc();
    }

    pub fn mail_send_seconds(&self, secs: f64) {
        self.mail_send_seconds.observe(secs);
    }

    /// One delivery attempt's outcome: `sent`, `skipped`, `unknown`, `retry` or `failed`.
    pub fn mail_outcome(&self, kind: EmailKind, outcome: &'static str) {
        self.emails.get_or_create(&EmailLabel { kind: kind.as_str().into(), outcome: outcome.into() }).inc();
        if outcome == "sent" {
            match kind {
                EmailKind::Reminder => self.reminders_sent.inc(),
                EmailKind::Escalation => self.escalations_sent.inc(),
                _ => 0,
            };
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
