//! The outbox: every email, written with the state change that causes it, then delivered.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "emails")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub message_id: String,
    pub call_id: Option<i64>,
    /// The promise an email is about (its call is `call_id`): one whose promise was delivered or
    /// dropped before it went is not sent.
    pub promise_id: Option<i64>,
    pub kind: EmailKind,
    pub to_addr: String,
    pub to_name: Option<String>,
    /// In copy: the rep, when the email goes to who covers for them.
    pub cc_addr: Option<String>,
    pub cc_name: Option<String>,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub ics: Option<String>,
    pub ics_method: Option<String>,
    pub state: EmailState,
    pub attempts: i32,
    /// Sends whose outcome could not be known (timeout mid-transfer); each may have arrived.
    pub unknown_outcomes: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_owner: Option<String>,
    pub lease_token: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTimeUtc>,
    /// When retention removed the text, HTML and invite of this email (sent or skipped long
    /// enough ago, its call closed); the subject, recipient and outcome stay.
    pub body_removed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// An email waits (`pending`, possibly under a lease) until it is `sent`, `skipped` (its call
/// closed before a reminder or escalation went out) or `failed` (rejected, or out of attempts;
/// an operator can retry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize, utoipa::ToSchema)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum EmailState {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "sent")]
    Sent,
    #[sea_orm(string_value = "skipped")]
    Skipped,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl EmailState {
    pub fn as_str(&self) -> &'static str {
        match self {
            EmailState::Pending => "pending",
            EmailState::Sent => "sent",
            EmailState::Skipped => "skipped",
            EmailState::Failed => "failed",
        }
    }
}

/// What an email is about; also which templates render it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize, utoipa::ToSchema)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    /// The recap and calendar invite.
    #[sea_orm(string_value = "first_call")]
    FirstCall,
    #[sea_orm(string_value = "reminder")]
    Reminder,
    #[sea_orm(string_value = "escalation")]
    Escalation,
    /// The order was cancelled; the invite is withdrawn.
    #[sea_orm(string_value = "cancellation")]
    Cancellation,
    /// To the previous rep: the call moved to someone else.
    #[sea_orm(string_value = "reassigned")]
    Reassigned,
    /// To the rep: what the CRM's view of the deal changed in the recap, when it arrived after
    /// the first email.
    #[sea_orm(string_value = "context_update")]
    ContextUpdate,
    /// To a promise's owner: its date is near (or today), with links to mark it.
    #[sea_orm(string_value = "promise_reminder")]
    PromiseReminder,
    /// To the owner's manager (then up the chain): a promise is overdue.
    #[sea_orm(string_value = "promise_escalation")]
    PromiseEscalation,
    /// To the rep's manager, at once: a call marked at risk, a promise slipped past the
    /// customer's date, a must-have promise dropped.
    #[sea_orm(string_value = "manager_alert")]
    ManagerAlert,
    /// To the rep: every promise is delivered; call the customer and ask how it went.
    #[sea_orm(string_value = "check_in")]
    CheckIn,
    /// A one-time sign-in link, asked for on the sign-in page. Written by firstcall itself, not
    /// from the templates; its body is removed once it is sent.
    #[sea_orm(string_value = "sign_in")]
    SignIn,
}

impl EmailKind {
    /// The kinds rendered from the templates in `config/templates`.
    pub const ALL: [EmailKind; 10] = [
        EmailKind::FirstCall,
        EmailKind::Reminder,
        EmailKind::Escalation,
        EmailKind::Cancellation,
        EmailKind::Reassigned,
        EmailKind::ContextUpdate,
        EmailKind::PromiseReminder,
        EmailKind::PromiseEscalation,
        EmailKind::ManagerAlert,
        EmailKind::CheckIn,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            EmailKind::FirstCall => "first_call",
            EmailKind::Reminder => "reminder",
            EmailKind::Escalation => "escalation",
            EmailKind::Cancellation => "cancellation",
            EmailKind::Reassigned => "reassigned",
            EmailKind::ContextUpdate => "context_update",
            EmailKind::PromiseReminder => "promise_reminder",
            EmailKind::PromiseEscalation => "promise_escalation",
            EmailKind::ManagerAlert => "manager_alert",
            EmailKind::CheckIn => "check_in",
            EmailKind::SignIn => "sign_in",
        }
    }

    /// Reminders, escalations and recap updates only make sense while their call is open: the
    /// mailer skips them once it is not.
    pub fn needs_open_call(&self) -> bool {
        matches!(self, EmailKind::Reminder | EmailKind::Escalation | EmailKind::ContextUpdate)
    }

    /// Emails about a promise only make sense while it is to be delivered: the mailer skips them
    /// once it is delivered or dropped.
    pub fn needs_open_promise(&self) -> bool {
        matches!(self, EmailKind::PromiseReminder | EmailKind::PromiseEscalation)
    }

    /// Emails whose body carries a secret (a sign-in link): the outbox removes their text and
    /// HTML once they went, or failed for good.
    pub fn carries_secret(&self) -> bool {
        matches!(self, EmailKind::SignIn)
    }
}

impl std::fmt::Display for EmailKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
