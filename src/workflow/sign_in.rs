//! Asking for a sign-in link: the link's row ([`crate::people::links`]) and the email that
//! carries it are written in one transaction, so a link is never issued without its email, nor
//! an email sent for a link that was not stored. Only addresses that may sign in (the rep
//! directory, `[sign_in] sales_ops`) get an email; the caller answers the same either way, so the
//! form does not tell who is in the directory.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};

use super::FirstCall;
use crate::domain::EmailAddress;
use crate::mail::message::OutgoingEmail;
use crate::mail::outbox::{NewEmail, enqueue};
use crate::mail::templates::local_time;
use crate::people::links::{self, Asked};
use entity::emails::EmailKind;

/// Asks for a link for `email` from `client`; after signing in, the browser goes to `next` (a path
/// on this site).
pub async fn ask(
    db: &DatabaseConnection,
    fc: &FirstCall,
    email: &EmailAddress,
    client: &str,
    next: &str,
    now: DateTime<Utc>,
) -> Result<Asked, DbErr> {
    let settings = &fc.config.settings.sign_in;
    let txn = crate::db::begin_write(db).await?;
    // Who may sign in: the directory (which also gives the name and timezone) or sales ops.
    let person = crate::reps::recipient(&txn, email, fc.config.settings.defaults.timezone).await?;
    let allowed = person.known || settings.is_sales_ops(email.as_str());
    let asked = links::ask(&txn, email.as_str(), client, allowed, settings, now).await?;
    if let Asked::Issued { secret, expires_at } = &asked {
        let tz = person.timezone;
        let mut url = url::Url::parse(&format!("{}/login/link", fc.composer.public_url.trim_end_matches('/')))
            .map_err(|e| DbErr::Custom(format!("http.public_url: {e}")))?;
        url.query_pairs_mut().append_pair("t", secret);
        if next != "/" {
            url.query_pairs_mut().append_pair("next", next);
        }
        let until = local_time(*expires_at, tz.0);
        let minutes = settings.link_minutes;
        let hello = person.name.as_deref().unwrap_or("there");
        let body_text = format!(
            "Hello {hello},\n\nOpen this link to sign in to firstcall:\n\n{url}\n\nIt works once, for {minutes} minutes (until {until}). \
             If you did not ask for it, ignore this email: nobody can sign in without the link.\n"
        );
        let e = |s: &str| html_escape::encode_text(s).into_owned();
        let href = html_escape::encode_double_quoted_attribute(url.as_str()).into_owned();
        let body_html = format!(
            "<!DOCTYPE html><html><body style=\"font-family:sans-serif\"><p>Hello {},</p>\
             <p><a href=\"{href}\" style=\"display:inline-block;padding:12px 20px;background:#1d4ed8;color:#fff;text-decoration:none;border-radius:6px\">Sign in to firstcall</a></p>\
             <p>It works once, for {minutes} minutes (until {}). If you did not ask for it, ignore this email: nobody can sign in without the link.</p></body></html>",
            e(hello),
            e(&until),
        );
        let message_id = format!("sign-in.{}@{}", &crate::sessions::row_id(secret).unwrap_or_default()[..16], fc.composer.host());
        let email = OutgoingEmail {
            message_id,
            to_addr: email.to_string(),
            to_name: person.name,
            subject: "Your firstcall sign-in link".into(),
            body_text,
            body_html,
            ..OutgoingEmail::default()
        };
        enqueue(&txn, NewEmail { call_id: None, promise_id: None, kind: EmailKind::SignIn, email }, now).await?;
    }
    txn.commit().await?;
    Ok(asked)
}
