//! The pages' forms as the OpenAPI document describes them (the handlers read the fields
//! leniently from the urlencoded body, so a browser's quirks never cause a 500).

#![allow(dead_code)]

/// `POST /login`.
#[derive(utoipa::ToSchema)]
pub struct LoginForm {
    /// One of the API tokens.
    token: String,
    /// Where to go after logging in (a path on this site).
    next: Option<String>,
    /// The form's CSRF token.
    csrf: String,
}

/// `POST /login/email`.
#[derive(utoipa::ToSchema)]
pub struct SignInEmailForm {
    /// The address to send the link to: in the rep directory, or a sales-ops address.
    email: String,
    /// Where to go after signing in (a path on this site).
    next: Option<String>,
    /// The form's CSRF token.
    csrf: String,
}

/// `POST /login/link`.
#[derive(utoipa::ToSchema)]
pub struct SignInLinkForm {
    /// The link's secret (its `t`).
    t: String,
    /// Where to go after signing in (a path on this site).
    next: Option<String>,
    /// The form's CSRF token.
    csrf: String,
}

/// `POST /logout`, `POST /dashboard/jobs/{id}/retry`, `POST /dashboard/emails/{id}/retry`.
#[derive(utoipa::ToSchema)]
pub struct CsrfForm {
    /// The form's CSRF token.
    csrf: String,
}

/// `POST /dashboard/preview`.
#[derive(utoipa::ToSchema)]
pub struct EditPreviewForm {
    /// `[[schedules]]` tables (and optionally `[defaults]` with `holidays`) as written in
    /// `config/default.toml`.
    schedules: String,
    /// The form's CSRF token.
    csrf: String,
}

/// `POST /absences`.
#[derive(utoipa::ToSchema)]
pub struct AbsenceForm {
    /// The rep's email address.
    rep: String,
    /// `2026-12-21`, in the rep's timezone.
    first_day: String,
    /// The last day away (included).
    last_day: String,
    /// Who covers: a rep in the directory.
    delegate: String,
    /// Why (optional).
    reason: Option<String>,
    /// The form's CSRF token.
    csrf: String,
}

/// `POST /calls/{id}/done`.
#[derive(utoipa::ToSchema)]
pub struct DoneForm {
    /// aligned, adjusted or at_risk.
    outcome: String,
    notes: Option<String>,
    /// The form's CSRF token.
    csrf: String,
    /// The signed link token from the email (absent when logged in to the dashboard).
    t: Option<String>,
    /// `date.<commitment id>`: the date agreed on the call, `YYYY-MM-DD` (one field per
    /// commitment of the proposal).
    #[schema(rename = "date.C1")]
    date: Option<String>,
    /// `added_text_0` … `added_text_2`: a promise made on the call (with `added_date_N`,
    /// `added_owner_N`).
    added_text_0: Option<String>,
    added_date_0: Option<String>,
    added_owner_0: Option<String>,
}

/// `POST /calls/{id}/promises/{promise}`.
#[derive(utoipa::ToSchema)]
pub struct PromiseForm {
    /// delivered, slip or drop.
    action: String,
    /// slip: the new date, YYYY-MM-DD.
    deliver_by: Option<String>,
    /// slip and drop: why.
    reason: Option<String>,
    /// The form's CSRF token.
    csrf: String,
    /// The signed link token from the email (absent when logged in to the dashboard).
    t: Option<String>,
}

/// `POST /calls/{id}/check-in`.
#[derive(utoipa::ToSchema)]
pub struct CheckInForm {
    /// satisfied, mixed or unhappy.
    answer: String,
    /// What the customer said.
    note: Option<String>,
    /// The form's CSRF token.
    csrf: String,
    /// The signed link token from the email (absent when logged in to the dashboard).
    t: Option<String>,
}

/// `POST /calls/{id}/book`.
#[derive(utoipa::ToSchema)]
pub struct BookForm {
    /// When the call is booked with the customer, `YYYY-MM-DDTHH:MM` in the rep's timezone.
    at: String,
    /// Who the call is with.
    with: Option<String>,
    /// Why the call moved.
    reason: String,
    /// The form's CSRF token.
    csrf: String,
    /// The signed link token from the email (absent when logged in to the dashboard).
    t: Option<String>,
}

/// `POST /calls/{id}/snooze`.
#[derive(utoipa::ToSchema)]
pub struct SnoozeForm {
    /// No reminder before this time, `YYYY-MM-DDTHH:MM` in the rep's timezone.
    until: String,
    /// Why.
    reason: String,
    /// The form's CSRF token.
    csrf: String,
    /// The signed link token from the email (absent when logged in to the dashboard).
    t: Option<String>,
}

/// `POST /calls/{id}/reassign` (signed in to the dashboard).
#[derive(utoipa::ToSchema)]
pub struct ReassignForm {
    /// The email address of the rep who takes the call.
    rep: String,
    /// Why.
    reason: String,
    /// The form's CSRF token.
    csrf: String,
}

/// `POST /calls/{id}/cancel` (signed in to the dashboard).
#[derive(utoipa::ToSchema)]
pub struct CancelForm {
    /// Why; the rep's cancellation email says it.
    reason: String,
    /// The form's CSRF token.
    csrf: String,
}
