//! Turns a call into the emails it causes: loads what the recap needs (newest proposal, order,
//! rep), builds the recap, renders the sales-ops templates, adds the calendar invite and the
//! signed link to the call page, and returns an outbox row.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use super::steps::StepError;
use crate::domain::{EmailAddress, Source};
use crate::intake::event::OrderedItem;
use crate::mail::ics::{self, InviteInfo, InviteMethod};
use crate::mail::message::OutgoingEmail;
use crate::mail::outbox::{self, NewEmail};
use crate::mail::templates::{EmailContext, EscalationInfo, RecipientRole};
use crate::recap::{self, CallSnapshot, OrderSnapshot, ProposalVersion, Recap, RecapInput};
use crate::startup::AppState;
use entity::calls;

/// Everything the recap of `call` is built from, read now: the newest proposal version, so a
/// proposal that arrives after the order shows up in the next email.
pub async fn recap_input(db: &impl ConnectionTrait, state: &AppState, call: &calls::Model) -> Result<RecapInput, DbErr> {
    let order = entity::orders::Entity::find_by_id(call.order_id)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("order {} of call {}", call.order_id, call.id)))?;
    let proposal = crate::proposals::store::latest(db, &call.source, &call.deal_id).await?.map(|p| ProposalVersion {
        version: p.version,
        received_at: p.received_at,
        proposal: p.proposal,
    });
    let rep_email = EmailAddress::parse(&call.rep_email).unwrap_or_else(|_| state.config.settings.defaults.unassigned_email.clone());
    let rep = crate::reps::recipient(db, &rep_email, state.config.settings.defaults.timezone).await?;
    let line_items: Vec<OrderedItem> = serde_json::from_value(order.line_items.clone()).unwrap_or_default();
    Ok(RecapInput {
        proposal,
        order: OrderSnapshot {
            source: Source::parse(&order.source).unwrap_or(Source::Generic),
            deal_id: order.deal_id.clone(),
            account_name: order.account_name.clone(),
            amount: super::calls::order_amount(&order),
            line_items,
            ordered_at: call.ordered_at,
            segment: order.segment.clone(),
        },
        call: CallSnapshot {
            id: call.id,
            due_at: call.due_at,
            rep_name: rep.name.clone(),
            rep_email: call.rep_email.clone(),
            rep_timezone: rep.timezone,
            schedule_name: call.schedule_name.clone(),
        },
    })
}

pub async fn recap_for_call(db: &impl ConnectionTrait, state: &AppState, call: &calls::Model) -> Result<Recap, DbErr> {
    Ok(recap::build(&recap_input(db, state, call).await?))
}

/// The signed link to the call page that goes into an email.
pub fn call_url(state: &AppState, call_id: i64, now: DateTime<Utc>) -> String {
    let expires = now + TimeDelta::hours(state.config.settings.links.ttl_hours as i64);
    let token = state.security.links.sign(call_id, expires);
    format!("{}/calls/{call_id}?t={token}", state.config.settings.http.public_url.trim_end_matches('/'))
}

fn host(state: &AppState) -> String {
    ics::uid_host(&state.config.settings.http.public_url)
}

fn message_id(state: &AppState, call_id: i64, kind: &str, n: i64) -> String {
    format!("call-{call_id}.{kind}.{n}@{}", host(state))
}

fn render(state: &AppState, ctx: &EmailContext) -> Result<crate::mail::templates::RenderedEmail, StepError> {
    state.templates.render(ctx).map_err(|e| StepError::Failed(format!("template: {e}")))
}

/// The invite for the call's current rep and time: the call is placed to end at its due time.
fn invite(
    state: &AppState,
    call: &calls::Model,
    recap: &Recap,
    (method, sequence): (InviteMethod, i32),
    attendee: (&str, &str),
    url: &str,
    now: DateTime<Utc>,
) -> String {
    let minutes = state.config.settings.defaults.call_minutes;
    let start = (call.due_at - TimeDelta::minutes(minutes as i64)).max(call.ordered_at);
    let from = &state.config.mail_from;
    let from_email = from.email.to_string();
    let info: InviteInfo = ics::call_invite(
        recap,
        ics::CallInvite { call_id: call.id, start, duration_minutes: minutes, sequence: sequence.max(0) as u32, method },
        (from.name.as_deref().unwrap_or_default(), &from_email),
        attendee,
        url,
        &host(state),
        now,
    );
    ics::invite(&info)
}

/// The recap and calendar invite for the call's rep (also sent again, with a higher
/// `SEQUENCE`, after a reschedule or reassignment).
pub async fn first_call(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: &calls::Model,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let recap = recap_for_call(db, state, call).await?;
    let url = call_url(state, call.id, now);
    let rep_name = recap.call.rep_name.clone().unwrap_or_default();
    let ics = invite(state, call, &recap, (InviteMethod::Request, call.invite_sequence), (&rep_name, &call.rep_email), &url, now);
    let r = render(state, &EmailContext::first_call(recap, url))?;
    Ok(NewEmail {
        call_id: Some(call.id),
        kind: outbox::kinds::FIRST_CALL,
        email: OutgoingEmail {
            message_id: message_id(state, call.id, outbox::kinds::FIRST_CALL, call.invite_sequence as i64),
            to_addr: call.rep_email.clone(),
            to_name: Some(rep_name).filter(|n| !n.is_empty()),
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: Some(ics),
            ics_method: Some(InviteMethod::Request.as_str().into()),
        },
    })
}

pub async fn reminder(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: &calls::Model,
    n: i32,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let recap = recap_for_call(db, state, call).await?;
    let url = call_url(state, call.id, now);
    let rep_name = recap.call.rep_name.clone();
    let overdue = (now > call.due_at).then(|| now - call.due_at);
    let r = render(state, &EmailContext::reminder(recap, url, n.max(1) as u32, overdue))?;
    Ok(NewEmail {
        call_id: Some(call.id),
        kind: outbox::kinds::REMINDER,
        email: OutgoingEmail {
            message_id: message_id(state, call.id, outbox::kinds::REMINDER, n as i64),
            to_addr: call.rep_email.clone(),
            to_name: rep_name,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: None,
            ics_method: None,
        },
    })
}

/// An escalation to `to` (the manager, the manager's manager, a configured address, or sales
/// ops when the directory has no manager), with the recap and how late the call is.
#[allow(clippy::too_many_arguments)]
pub async fn escalation(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: &calls::Model,
    to: &EmailAddress,
    role: &str,
    level: i32,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let recap = recap_for_call(db, state, call).await?;
    let url = call_url(state, call.id, now);
    let recipient = crate::reps::recipient(db, to, state.config.settings.defaults.timezone).await?;
    let recipient_role = match role {
        "manager" => RecipientRole::Manager,
        "manager_of_manager" => RecipientRole::ManagerOfManager,
        "sales_ops" => RecipientRole::SalesOps,
        _ => RecipientRole::Contact,
    };
    let overdue = (now > call.due_at).then(|| now - call.due_at);
    let info =
        EscalationInfo { level: level.max(1) as u32, recipient_role, recipient_name: recipient.name.clone(), note: note.map(String::from) };
    let r = render(state, &EmailContext::escalation(recap, url, info, overdue))?;
    Ok(NewEmail {
        call_id: Some(call.id),
        kind: outbox::kinds::ESCALATION,
        email: OutgoingEmail {
            message_id: message_id(state, call.id, outbox::kinds::ESCALATION, level as i64),
            to_addr: to.to_string(),
            to_name: recipient.name,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: None,
            ics_method: None,
        },
    })
}

/// The order was cancelled: the call is off, and the invite is withdrawn (`METHOD:CANCEL`).
pub async fn cancellation(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: &calls::Model,
    to: &str,
    sequence: i32,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let recap = recap_for_call(db, state, call).await?;
    let url = call_url(state, call.id, now);
    let rep_name = recap.call.rep_name.clone().unwrap_or_default();
    let ics = invite(state, call, &recap, (InviteMethod::Cancel, sequence), (&rep_name, to), &url, now);
    let r = render(state, &EmailContext::cancellation(recap, url))?;
    Ok(NewEmail {
        call_id: Some(call.id),
        kind: outbox::kinds::CANCELLATION,
        email: OutgoingEmail {
            message_id: message_id(state, call.id, outbox::kinds::CANCELLATION, sequence as i64),
            to_addr: to.to_string(),
            to_name: Some(rep_name).filter(|n| !n.is_empty()),
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: Some(ics),
            ics_method: Some(InviteMethod::Cancel.as_str().into()),
        },
    })
}

/// To the rep who had the call: it moved to someone else; their invite is withdrawn.
pub async fn reassigned(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: &calls::Model,
    old_rep: &str,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let recap = recap_for_call(db, state, call).await?;
    let url = call_url(state, call.id, now);
    let old = EmailAddress::parse(old_rep).map_err(|e| StepError::Failed(format!("previous rep: {e}")))?;
    let old_info = crate::reps::recipient(db, &old, state.config.settings.defaults.timezone).await?;
    let old_name = old_info.name.clone().unwrap_or_else(|| old_rep.to_string());
    let ics = invite(state, call, &recap, (InviteMethod::Cancel, call.invite_sequence), (&old_name, old_rep), &url, now);
    let r = render(state, &EmailContext::reassigned(recap, url, old_name.clone()))?;
    // One per reassignment: the sequence tells them apart.
    let digest = hex::encode(&crate::config::secrets::sha256(old_rep.as_bytes())[..4]);
    Ok(NewEmail {
        call_id: Some(call.id),
        kind: outbox::kinds::REASSIGNED,
        email: OutgoingEmail {
            message_id: format!("call-{}.reassigned.{}.{digest}@{}", call.id, call.invite_sequence, host(state)),
            to_addr: old_rep.to_string(),
            to_name: old_info.name,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: Some(ics),
            ics_method: Some(InviteMethod::Cancel.as_str().into()),
        },
    })
}

/// The recap of a deal's newest call, for `firstcall recap`.
pub async fn recap_for_deal(state: &AppState, source: Source, deal: &str, format: crate::cli::RecapFormat) -> anyhow::Result<String> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    let call = calls::Entity::find()
        .filter(calls::Column::Source.eq(source.as_str()))
        .filter(calls::Column::DealId.eq(deal))
        .order_by_desc(calls::Column::Id)
        .one(&state.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no call for {source}/{deal}: firstcall has not received an order for this deal"))?;
    let recap = recap_for_call(&state.db, state, &call).await?;
    Ok(match format {
        crate::cli::RecapFormat::Json => serde_json::to_string_pretty(&recap)?,
        crate::cli::RecapFormat::Html => state.templates.render_recap_html_fragment(&recap)?,
        crate::cli::RecapFormat::Text => state.templates.render_recap_text(&recap)?,
    })
}
