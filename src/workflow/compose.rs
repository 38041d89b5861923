//! Turns a call into the emails it causes: loads what the recap needs (newest proposal, order,
//! rep), builds the recap, renders the sales-ops templates, adds the calendar invite and the
//! signed link to the call page, and returns an outbox row. An email meant for the call's rep is
//! checked against [`super::recipients`] as it is written: one for an address firstcall may not
//! email (say, a call opened before the rule, or a domain since removed from the list) goes to
//! sales ops with the reason instead.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use super::FirstCall;
use super::recipients::{self, Named};
use crate::domain::{EmailAddress, OrderedItem, Source, Timezone};
use crate::engine::StepError;
use crate::mail::ics::{self, InviteInfo, InviteMethod};
use crate::mail::message::OutgoingEmail;
use crate::mail::outbox::{EmailKind, NewEmail};
use crate::mail::templates::{
    AlertInfo, CoverInfo, EmailContext, EscalationInfo, PromiseInfo, RecipientRole, days_from, local_date, local_time, overdue_in_words,
};
use crate::recap::{self, CallSnapshot, OrderSnapshot, ProposalVersion, Recap, RecapInput};
use crate::reps::Recipient;
use entity::calls;

/// Everything the recap of `call` is built from, read now: the newest proposal version, so a
/// proposal that arrives after the order shows up in the next email.
pub async fn recap_input(db: &impl ConnectionTrait, fc: &FirstCall, call: &calls::Model) -> Result<RecapInput, DbErr> {
    let rep = rep_of(db, fc, call).await?;
    recap_input_for(db, call, &rep).await
}

/// The call's rep as the directory knows them.
async fn rep_of(db: &impl ConnectionTrait, fc: &FirstCall, call: &calls::Model) -> Result<Recipient, DbErr> {
    let rep_email = EmailAddress::parse(&call.rep_email).unwrap_or_else(|_| fc.config.settings.defaults.unassigned_email.clone());
    crate::reps::recipient(db, &rep_email, fc.config.settings.defaults.timezone).await
}

/// [`recap_input`] with the call's rep already looked up.
async fn recap_input_for(db: &impl ConnectionTrait, call: &calls::Model, rep: &Recipient) -> Result<RecapInput, DbErr> {
    let order = entity::orders::Entity::find_by_id(call.order_id)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("order {} of call {}", call.order_id, call.id)))?;
    let proposal = crate::proposals::store::latest(db, &call.source, &call.deal_id).await?;
    Ok(input_from(call, &order, proposal, rep))
}

/// What the recap of `call` is built from, given its order, its deal's newest proposal and its rep.
fn input_from(
    call: &calls::Model,
    order: &entity::orders::Model,
    proposal: Option<crate::proposals::store::StoredProposal>,
    rep: &Recipient,
) -> RecapInput {
    let proposal = proposal.map(|p| ProposalVersion { version: p.version, received_at: p.received_at, proposal: p.proposal });
    let line_items: Vec<OrderedItem> = serde_json::from_value(order.line_items.clone()).unwrap_or_default();
    RecapInput {
        proposal,
        order: OrderSnapshot {
            source: Source::parse(&order.source).unwrap_or(Source::Generic),
            deal_id: order.deal_id.clone(),
            account_name: order.account_name.clone(),
            amount: super::calls::order_amount(order),
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
    }
}

/// The recaps of several calls, read in three queries whatever their number (their orders, their
/// deals' newest proposals, their reps); a call whose order is gone has none.
pub async fn recaps_for_calls(db: &impl ConnectionTrait, fc: &FirstCall, calls: &[calls::Model]) -> Result<Vec<Recap>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let defaults = &fc.config.settings.defaults;
    let orders: std::collections::HashMap<i64, entity::orders::Model> = entity::orders::Entity::find()
        .filter(entity::orders::Column::Id.is_in(calls.iter().map(|c| c.order_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|o| (o.id, o))
        .collect();
    let deals: Vec<(String, String)> = calls.iter().map(|c| (c.source.clone(), c.deal_id.clone())).collect();
    let proposals = crate::proposals::store::latest_many(db, &deals).await?;
    let emails: Vec<EmailAddress> =
        calls.iter().map(|c| EmailAddress::parse(&c.rep_email).unwrap_or_else(|_| defaults.unassigned_email.clone())).collect();
    let reps = crate::reps::recipients(db, &emails, defaults.timezone).await?;
    Ok(calls
        .iter()
        .zip(&emails)
        .filter_map(|(call, email)| {
            let order = orders.get(&call.order_id)?;
            let proposal = proposals.get(&(call.source.clone(), call.deal_id.clone())).cloned();
            let rep = reps.get(email).cloned().unwrap_or_else(|| Recipient::unknown(email.clone(), defaults.timezone));
            Some(recap::build(&input_from(call, order, proposal, &rep)))
        })
        .collect())
}

pub async fn recap_for_call(db: &impl ConnectionTrait, fc: &FirstCall, call: &calls::Model) -> Result<Recap, DbErr> {
    Ok(recap::build(&recap_input(db, fc, call).await?))
}

/// The recap of `call` and who its rep-bound emails go to at `now`: the rep; who covers for them
/// while they are out of office (the rep in copy); or sales ops when firstcall may not email the
/// rep (then the address is sales ops' and the reason says why).
async fn recap_and_addressee(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    now: DateTime<Utc>,
) -> Result<(Recap, Addressee), DbErr> {
    let rep = rep_of(db, fc, call).await?;
    let recap = recap::build(&recap_input_for(db, call, &rep).await?);
    let addressee = if recipients::may_email(&fc.config, &rep) {
        let cover = crate::reps::absences::cover(db, &rep, now, fc.config.settings.defaults.timezone)
            .await?
            .filter(|c| recipients::may_email(&fc.config, &c.delegate));
        match cover {
            Some(c) => {
                let covering = cover_info(&rep, &c);
                Addressee {
                    email: c.delegate.email.to_string(),
                    name: c.delegate.name.clone(),
                    fallback_reason: call.fallback_reason.clone(),
                    cc: Some((rep.email.to_string(), rep.name.clone())),
                    covering: Some((covering, c.delegate.timezone)),
                }
            }
            None => Addressee {
                email: rep.email.to_string(),
                name: rep.name.clone(),
                fallback_reason: call.fallback_reason.clone(),
                cc: None,
                covering: None,
            },
        }
    } else {
        let reason = recipients::refusal(Named::CallRep, &rep.email);
        tracing::warn!(call = call.id, "an email about the call goes to sales ops: {reason}");
        Addressee {
            email: fc.config.settings.defaults.unassigned_email.to_string(),
            name: None,
            fallback_reason: Some(reason),
            cc: None,
            covering: None,
        }
    };
    Ok((recap, addressee))
}

/// What an email to who covers says of it: for whom, until when.
fn cover_info(away: &Recipient, c: &crate::reps::Cover) -> CoverInfo {
    CoverInfo {
        rep_name: away.name.clone().unwrap_or_else(|| away.email.to_string()),
        delegate_name: c.delegate.name.clone().unwrap_or_else(|| c.delegate.email.to_string()),
        until: local_date(c.absence.last_day),
    }
}

/// Who an email about a call goes to, and why it is sales ops or a delegate when it is.
struct Addressee {
    email: String,
    name: Option<String>,
    fallback_reason: Option<String>,
    /// The rep, in copy of what goes to who covers for them.
    cc: Option<(String, Option<String>)>,
    /// The rep is out of office: who covers, and their timezone (the email's times are in it).
    covering: Option<(CoverInfo, Timezone)>,
}

impl Addressee {
    /// What the email says of its addressee: why sales ops got it, or that its reader covers
    /// for the rep (with the due time on the reader's clock).
    fn tell(&self, ctx: &mut EmailContext) {
        ctx.fallback_reason = self.fallback_reason.clone();
        if let Some((covering, tz)) = &self.covering {
            ctx.covering = Some(covering.clone());
            ctx.due_local = local_time(ctx.due_at, tz.0);
            ctx.timezone = tz.name().to_string();
        }
    }

    fn cc_addr(&self) -> Option<String> {
        self.cc.as_ref().map(|(a, _)| a.clone())
    }

    fn cc_name(&self) -> Option<String> {
        self.cc.as_ref().and_then(|(_, n)| n.clone())
    }
}

fn message_id(fc: &FirstCall, call_id: i64, kind: EmailKind, n: i64) -> String {
    format!("call-{call_id}.{kind}.{n}@{}", fc.composer.host())
}

fn render(fc: &FirstCall, ctx: &EmailContext) -> Result<crate::mail::templates::RenderedEmail, StepError> {
    fc.composer.render(ctx).map_err(|e| StepError::Failed(format!("template: {e}")))
}

/// The invite for the call's current rep and time: the call is placed to end at its due time.
fn invite(
    fc: &FirstCall,
    call: &calls::Model,
    recap: &Recap,
    (method, sequence): (InviteMethod, i32),
    attendee: (&str, &str),
    url: &str,
    now: DateTime<Utc>,
) -> String {
    let minutes = fc.config.settings.defaults.call_minutes;
    let start = (call.due_at - TimeDelta::minutes(minutes as i64)).max(call.ordered_at);
    let from = &fc.composer.from;
    let from_email = from.email.to_string();
    let info: InviteInfo = ics::call_invite(
        recap,
        ics::CallInvite { call_id: call.id, start, duration_minutes: minutes, sequence: sequence.max(0) as u32, method },
        (from.name.as_deref().unwrap_or_default(), &from_email),
        attendee,
        url,
        &fc.composer.host(),
        now,
    );
    ics::invite(&info)
}

/// The line saying the CRM's view of the deal is missing from the recap, while its pull has not
/// succeeded.
async fn context_note(db: &impl ConnectionTrait, call: &calls::Model) -> Result<Option<String>, DbErr> {
    let Some(missing) = super::enrich::missing_context(db, call.id).await? else {
        return Ok(None);
    };
    let crm = crate::recap::format::source_name(Source::parse(&call.source).unwrap_or(Source::Generic));
    let why = match (&missing.last_error, missing.tried) {
        (Some(e), _) => format!(" ({})", crate::domain::printable_up_to(e, 160)),
        (None, true) => " (no answer yet)".to_string(),
        (None, false) => String::new(),
    };
    Ok(Some(format!(
        "{crm} had not answered when this was sent{why}, so this recap shows only what firstcall had on file. \
         firstcall keeps asking; what {crm} says will follow in a short update."
    )))
}

/// The recap and calendar invite for the call's rep (also sent again, with a higher
/// `SEQUENCE`, after a reschedule or reassignment), and the recap it holds.
pub async fn first_call(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    now: DateTime<Utc>,
) -> Result<(NewEmail, Recap), StepError> {
    let (recap, to) = recap_and_addressee(db, fc, call, now).await?;
    let sent = recap.clone();
    let url = fc.composer.call_url(call.id, now);
    let to_name = to.name.clone().unwrap_or_default();
    let ics = invite(fc, call, &recap, (InviteMethod::Request, call.invite_sequence), (&to_name, &to.email), &url, now);
    let mut ctx = EmailContext::first_call(recap, url);
    to.tell(&mut ctx);
    ctx.context_note = context_note(db, call).await?;
    let r = render(fc, &ctx)?;
    let email = NewEmail {
        call_id: Some(call.id),
        promise_id: None,
        kind: EmailKind::FirstCall,
        email: OutgoingEmail {
            message_id: message_id(fc, call.id, EmailKind::FirstCall, call.invite_sequence as i64),
            cc_addr: to.cc_addr(),
            cc_name: to.cc_name(),
            to_addr: to.email,
            to_name: to.name,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: Some(ics),
            ics_method: Some(InviteMethod::Request.as_str().into()),
        },
    };
    Ok((email, sent))
}

pub async fn reminder(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    n: i32,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let (recap, to) = recap_and_addressee(db, fc, call, now).await?;
    let url = fc.composer.call_url(call.id, now);
    let overdue = (now > call.due_at).then(|| now - call.due_at);
    let mut ctx = EmailContext::reminder(recap, url, n.max(1) as u32, overdue);
    to.tell(&mut ctx);
    let r = render(fc, &ctx)?;
    Ok(NewEmail {
        call_id: Some(call.id),
        promise_id: None,
        kind: EmailKind::Reminder,
        email: OutgoingEmail {
            message_id: message_id(fc, call.id, EmailKind::Reminder, n as i64),
            cc_addr: to.cc_addr(),
            cc_name: to.cc_name(),
            to_addr: to.email,
            to_name: to.name,
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
    fc: &FirstCall,
    call: &calls::Model,
    to: &EmailAddress,
    role: &str,
    level: i32,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let recap = recap_for_call(db, fc, call).await?;
    let url = fc.composer.call_url(call.id, now);
    let recipient = crate::reps::recipient(db, to, fc.config.settings.defaults.timezone).await?;
    let recipient_role = recipient_role(role);
    let overdue = (now > call.due_at).then(|| now - call.due_at);
    let info =
        EscalationInfo { level: level.max(1) as u32, recipient_role, recipient_name: recipient.name.clone(), note: note.map(String::from) };
    let mut ctx = EmailContext::escalation(recap, url, info, overdue);
    ctx.fallback_reason = call.fallback_reason.clone();
    let r = render(fc, &ctx)?;
    Ok(NewEmail {
        call_id: Some(call.id),
        promise_id: None,
        kind: EmailKind::Escalation,
        email: OutgoingEmail {
            message_id: message_id(fc, call.id, EmailKind::Escalation, level as i64),
            to_addr: to.to_string(),
            to_name: recipient.name,
            cc_addr: None,
            cc_name: None,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: None,
            ics_method: None,
        },
    })
}

/// The order was cancelled: the call is off, and the rep's invite is withdrawn (`METHOD:CANCEL`).
pub async fn cancellation(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    sequence: i32,
    cancel_reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let (recap, to) = recap_and_addressee(db, fc, call, now).await?;
    let url = fc.composer.call_url(call.id, now);
    let to_name = to.name.clone().unwrap_or_default();
    let ics = invite(fc, call, &recap, (InviteMethod::Cancel, sequence), (&to_name, &to.email), &url, now);
    let mut ctx = EmailContext::cancellation(recap, url);
    to.tell(&mut ctx);
    ctx.cancel_reason = cancel_reason;
    let r = render(fc, &ctx)?;
    Ok(NewEmail {
        call_id: Some(call.id),
        promise_id: None,
        kind: EmailKind::Cancellation,
        email: OutgoingEmail {
            message_id: message_id(fc, call.id, EmailKind::Cancellation, sequence as i64),
            cc_addr: to.cc_addr(),
            cc_name: to.cc_name(),
            to_addr: to.email,
            to_name: to.name,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: Some(ics),
            ics_method: Some(InviteMethod::Cancel.as_str().into()),
        },
    })
}

/// To the rep who had the call: it moved to someone else; their invite is withdrawn. `None` when
/// firstcall may not email that rep (a call opened before the rule on who may be emailed).
pub async fn reassigned(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    old_rep: &str,
    now: DateTime<Utc>,
) -> Result<Option<NewEmail>, StepError> {
    let old = EmailAddress::parse(old_rep).map_err(|e| StepError::Failed(format!("previous rep: {e}")))?;
    let old_info = crate::reps::recipient(db, &old, fc.config.settings.defaults.timezone).await?;
    if !recipients::may_email(&fc.config, &old_info) {
        tracing::info!(call = call.id, "no withdrawal to the previous rep: {}", recipients::refusal(Named::CallRep, &old));
        return Ok(None);
    }
    let recap = recap_for_call(db, fc, call).await?;
    let url = fc.composer.call_url(call.id, now);
    let old_name = old_info.name.clone().unwrap_or_else(|| old_rep.to_string());
    let ics = invite(fc, call, &recap, (InviteMethod::Cancel, call.invite_sequence), (&old_name, old_rep), &url, now);
    let r = render(fc, &EmailContext::reassigned(recap, url, old_name.clone()))?;
    // One per reassignment: the sequence tells them apart.
    let digest = hex::encode(&crate::config::secrets::sha256(old_rep.as_bytes())[..4]);
    Ok(Some(NewEmail {
        call_id: Some(call.id),
        promise_id: None,
        kind: EmailKind::Reassigned,
        email: OutgoingEmail {
            message_id: format!("call-{}.reassigned.{}.{digest}@{}", call.id, call.invite_sequence, fc.composer.host()),
            to_addr: old_rep.to_string(),
            to_name: old_info.name,
            cc_addr: None,
            cc_name: None,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: Some(ics),
            ics_method: Some(InviteMethod::Cancel.as_str().into()),
        },
    }))
}

/// What changed a recap after its first email: the CRM answered late (its proposal `version`),
/// or the proposal or the order changed (told by the `call.changed` job `job_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangedBy {
    Crm { version: i32 },
    Deal { job_id: i64 },
}

/// A short email to the call's rep with what changed, the changes, and the recap as it is now.
pub struct RecapUpdate {
    pub email: NewEmail,
    pub changes: Vec<String>,
    pub recap: Recap,
}

/// To the call's rep: what changed in the recap since `baseline`, the one they last heard of
/// (see [`crate::recap::changes`]); `None` when nothing a rep would notice changed. One per
/// CRM answer or `call.changed` job, so a retried step does not send it twice.
pub async fn recap_update(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    baseline: &Recap,
    by: ChangedBy,
    now: DateTime<Utc>,
) -> Result<Option<RecapUpdate>, StepError> {
    let (recap, to) = recap_and_addressee(db, fc, call, now).await?;
    let changes = crate::recap::changes(baseline, &recap);
    if changes.is_empty() {
        return Ok(None);
    }
    let url = fc.composer.call_url(call.id, now);
    let (crm, message_id) = match by {
        ChangedBy::Crm { version } => (
            Some(crate::recap::format::source_name(Source::parse(&call.source).unwrap_or(Source::Generic)).to_string()),
            message_id(fc, call.id, EmailKind::ContextUpdate, version as i64),
        ),
        ChangedBy::Deal { job_id } => (None, format!("call-{}.recap_changed.{job_id}@{}", call.id, fc.composer.host())),
    };
    let mut ctx = EmailContext::context_update(recap.clone(), url, crm, changes.clone());
    to.tell(&mut ctx);
    let r = render(fc, &ctx)?;
    let email = NewEmail {
        call_id: Some(call.id),
        promise_id: None,
        kind: EmailKind::ContextUpdate,
        email: OutgoingEmail {
            message_id,
            cc_addr: to.cc_addr(),
            cc_name: to.cc_name(),
            to_addr: to.email,
            to_name: to.name,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: None,
            ics_method: None,
        },
    };
    Ok(Some(RecapUpdate { email, changes, recap }))
}

/// A promise as its emails show it, with its owner as the directory knows them.
async fn promise_info(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    promise: &entity::promises::Model,
    recap: &Recap,
    now: DateTime<Utc>,
) -> Result<(PromiseInfo, Recipient), DbErr> {
    let owner = super::promises::owner_of(db, fc, promise).await?;
    let today = now.with_timezone(&owner.timezone.0).date_naive();
    let covers: Vec<String> = serde_json::from_value(promise.covers.clone()).unwrap_or_default();
    let overdue_by = promise.deliver_by.and_then(|d| overdue_in_words(d, today));
    let info = PromiseInfo {
        text: promise.text.clone(),
        deliver_by: promise.deliver_by.map(local_date),
        due_in: promise.deliver_by.map(|d| days_from(today, d)),
        overdue_by,
        answers: recap.requirements.iter().filter(|r| covers.contains(&r.id)).map(|r| r.text.clone()).collect(),
        must_have: promise.must_have,
        need_by: promise.need_by.map(local_date),
        state: promise.state.as_str().into(),
        reason: promise.reason.clone(),
        owner_name: owner.name.clone().unwrap_or_else(|| owner.email.to_string()),
        url: format!("{}#promises", fc.composer.call_url(call.id, now)),
    };
    Ok((info, owner))
}

/// `promise-{id}.{what}.{date}.{n}@host`: one per `n` of each date the promise had.
fn promise_message_id(fc: &FirstCall, promise: &entity::promises::Model, what: &str, n: i32) -> String {
    let date = promise.deliver_by.map_or_else(|| "undated".to_string(), |d| d.format("%Y%m%d").to_string());
    format!("promise-{}.{what}.{date}.{n}@{}", promise.id, fc.composer.host())
}

/// To a promise's owner (or sales ops, when firstcall may not email them): the `n`th reminder
/// of `promise`, with the call page's promises to mark it.
pub async fn promise_reminder(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    promise: &entity::promises::Model,
    n: i32,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let recap = recap_for_call(db, fc, call).await?;
    let (info, owner) = promise_info(db, fc, call, promise, &recap, now).await?;
    let (mut to, fallback_reason) = recipients::route(&fc.config, &owner, Named::PromiseOwner);
    let url = fc.composer.call_url(call.id, now);
    let mut ctx = EmailContext::promise_reminder(recap, url, n.max(1) as u32, info);
    ctx.overdue_by = ctx.promise.as_ref().and_then(|p| p.overdue_by.clone());
    ctx.fallback_reason = fallback_reason;
    // An owner out of office: who covers for them gets it, the owner in copy.
    let mut to_name = if to == owner.email { owner.name.clone() } else { None };
    let mut cc = None;
    if to == owner.email
        && let Some(c) = crate::reps::absences::cover(db, &owner, now, fc.config.settings.defaults.timezone)
            .await?
            .filter(|c| recipients::may_email(&fc.config, &c.delegate))
    {
        ctx.covering = Some(cover_info(&owner, &c));
        cc = Some((owner.email.to_string(), owner.name.clone()));
        (to, to_name) = (c.delegate.email, c.delegate.name);
    }
    let r = render(fc, &ctx)?;
    Ok(NewEmail {
        call_id: Some(call.id),
        promise_id: Some(promise.id),
        kind: EmailKind::PromiseReminder,
        email: OutgoingEmail {
            message_id: promise_message_id(fc, promise, "reminder", n),
            to_name,
            cc_addr: cc.as_ref().map(|(a, _)| a.clone()),
            cc_name: cc.and_then(|(_, n)| n),
            to_addr: to.to_string(),
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: None,
            ics_method: None,
        },
    })
}

/// To `to` (the owner's manager, the manager's manager, a configured address, or sales ops):
/// `promise` is overdue; escalation `level` of its date.
pub async fn promise_escalation(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    promise: &entity::promises::Model,
    (to, role, note): (&EmailAddress, &str, Option<&str>),
    level: i32,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let recap = recap_for_call(db, fc, call).await?;
    let (info, _) = promise_info(db, fc, call, promise, &recap, now).await?;
    let recipient = crate::reps::recipient(db, to, fc.config.settings.defaults.timezone).await?;
    let escalation = EscalationInfo {
        level: level.max(1) as u32,
        recipient_role: recipient_role(role),
        recipient_name: recipient.name.clone(),
        note: note.map(String::from),
    };
    let url = fc.composer.call_url(call.id, now);
    let r = render(fc, &EmailContext::promise_escalation(recap, url, escalation, info))?;
    Ok(NewEmail {
        call_id: Some(call.id),
        promise_id: Some(promise.id),
        kind: EmailKind::PromiseEscalation,
        email: OutgoingEmail {
            message_id: promise_message_id(fc, promise, "escalation", level),
            to_addr: to.to_string(),
            to_name: recipient.name,
            cc_addr: None,
            cc_name: None,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: None,
            ics_method: None,
        },
    })
}

/// To the call's rep's manager (sales ops when the directory names none), at once: `alert`,
/// with the recap (and the promise it is about).
pub async fn manager_alert(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    promise: Option<&entity::promises::Model>,
    alert: super::promises::Alert,
    by: &str,
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    let rep = rep_of(db, fc, call).await?;
    let (to, _, note) = super::escalation::recipient(db, fc, &rep.email, &rep, &crate::config::schedule::EscalationTarget::Manager).await?;
    let recipient = crate::reps::recipient(db, &to, fc.config.settings.defaults.timezone).await?;
    let recap = recap_for_call(db, fc, call).await?;
    let account = recap.deal.account_name.clone().unwrap_or_else(|| format!("deal {}", call.deal_id));
    let info = match promise {
        Some(p) => Some(promise_info(db, fc, call, p, &recap, now).await?.0),
        None => None,
    };
    let info_alert = AlertInfo {
        headline: alert.headline.replace("{account}", &account),
        changes: alert.changes,
        by: by.to_string(),
        recipient_name: recipient.name.clone(),
        note,
    };
    let url = fc.composer.call_url(call.id, now);
    let r = render(fc, &EmailContext::manager_alert(recap, url, info_alert, info))?;
    let subject = match promise {
        Some(p) => format!("promise-{}", p.id),
        None => format!("call-{}", call.id),
    };
    Ok(NewEmail {
        call_id: Some(call.id),
        promise_id: promise.map(|p| p.id),
        kind: EmailKind::ManagerAlert,
        email: OutgoingEmail {
            message_id: format!("{subject}.alert.{}@{}", alert.key, fc.composer.host()),
            to_addr: to.to_string(),
            to_name: recipient.name,
            cc_addr: None,
            cc_name: None,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: None,
            ics_method: None,
        },
    })
}

/// To the call's rep (or sales ops, when firstcall may not email them): every promise is
/// delivered; call the customer's decision maker, ask how it went, and record the answer.
pub async fn check_in(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    promises: &[entity::promises::Model],
    now: DateTime<Utc>,
) -> Result<NewEmail, StepError> {
    use entity::promises::PromiseState;
    let (recap, to) = recap_and_addressee(db, fc, call, now).await?;
    let tz = recap.call.rep_timezone.0;
    let history = promises
        .iter()
        .map(|p| {
            let promised = p.agreed_deliver_by.map(|d| format!(", promised for {}", local_date(d))).unwrap_or_default();
            let on = |t: Option<DateTime<Utc>>| t.map(|t| local_date(t.with_timezone(&tz).date_naive())).unwrap_or_default();
            match p.state {
                PromiseState::Delivered => format!("Delivered {}{promised}: {}", on(p.closed_at), p.text),
                PromiseState::Dropped => {
                    format!("Dropped {}{promised}: {} (why: {})", on(p.closed_at), p.text, p.reason.as_deref().unwrap_or("not given"))
                }
                _ => format!("Still open{promised}: {}", p.text),
            }
        })
        .collect();
    let url = format!("{}#check-in", fc.composer.call_url(call.id, now));
    let mut ctx = EmailContext::check_in(recap, url, history);
    to.tell(&mut ctx);
    let r = render(fc, &ctx)?;
    Ok(NewEmail {
        call_id: Some(call.id),
        promise_id: None,
        kind: EmailKind::CheckIn,
        email: OutgoingEmail {
            message_id: message_id(fc, call.id, EmailKind::CheckIn, 1),
            cc_addr: to.cc_addr(),
            cc_name: to.cc_name(),
            to_addr: to.email,
            to_name: to.name,
            subject: r.subject,
            body_text: r.text,
            body_html: r.html,
            ics: None,
            ics_method: None,
        },
    })
}

fn recipient_role(role: &str) -> RecipientRole {
    match role {
        "manager" => RecipientRole::Manager,
        "manager_of_manager" => RecipientRole::ManagerOfManager,
        "sales_ops" => RecipientRole::SalesOps,
        _ => RecipientRole::Contact,
    }
}

/// The recap of a deal's newest call (for `firstcall recap`), or `None` when no order of the
/// deal has reached firstcall.
pub async fn recap_for_deal(db: &impl ConnectionTrait, fc: &FirstCall, source: Source, deal: &str) -> Result<Option<Recap>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    let call = calls::Entity::find()
        .filter(calls::Column::Source.eq(source.as_str()))
        .filter(calls::Column::DealId.eq(deal))
        .order_by_desc(calls::Column::Id)
        .one(db)
        .await?;
    match call {
        Some(call) => Ok(Some(recap_for_call(db, fc, &call).await?)),
        None => Ok(None),
    }
}
