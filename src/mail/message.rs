//! Turns an outbox row into a MIME message: the recap as text and HTML, and when the call has an
//! invite, the calendar part (`text/calendar; method=…`) inside the alternative plus an
//! `invite.ics` attachment for clients that only look at attachments.
//!
//! Every value that ends up in a header comes from outside (rep names from the CRM, subjects
//! built from deal names), so each one is made single-line here and then encoded by lettre: a
//! name or subject can never start a header of its own.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

/// One email as the outbox stores it, before it is turned into MIME.
#[derive(Debug, Clone, Default, PartialEq, Eq, sea_orm::FromQueryResult)]
pub struct OutgoingEmail {
    /// `id-left@id-right`, stable across retries (e.g. `call-12.first_call.1@firstcall.example.com`),
    /// so a message delivered twice is recognisably the same message.
    pub message_id: String,
    pub to_addr: String,
    pub to_name: Option<String>,
    /// In copy: the rep, when the email goes to who covers for them while they are away.
    pub cc_addr: Option<String>,
    pub cc_name: Option<String>,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    /// An iCalendar object (RFC 5545), sent as the calendar part and as `invite.ics`.
    pub ics: Option<String>,
    /// `REQUEST` or `CANCEL`; `REQUEST` when an invite has no method.
    pub ics_method: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("'{0}' is not a valid recipient address")]
    InvalidRecipient(String),
    #[error("'{0}' is not a valid Message-ID (expected id-left@id-right without spaces or angle brackets)")]
    InvalidMessageId(String),
    #[error("'{0}' is not a calendar method this service sends (REQUEST or CANCEL)")]
    InvalidIcsMethod(String),
    #[error("a calendar method was given without a calendar invite")]
    MethodWithoutInvite,
    #[error("could not build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// Builds the message dated now.
pub fn build_message(e: &OutgoingEmail, from: &Mailbox) -> Result<Message, MessageError> {
    build_message_at(e, from, Utc::now())
}

/// Builds the message with the given `Date` header.
pub fn build_message_at(e: &OutgoingEmail, from: &Mailbox, date: DateTime<Utc>) -> Result<Message, MessageError> {
    let message_id = parse_message_id(&e.message_id)?;
    let to_address = e.to_addr.trim().parse().map_err(|_| MessageError::InvalidRecipient(printable(&e.to_addr)))?;
    let to_name = e.to_name.as_deref().map(single_line).filter(|n| !n.is_empty());
    let cc = match &e.cc_addr {
        Some(addr) => Some(Mailbox::new(
            e.cc_name.as_deref().map(single_line).filter(|n| !n.is_empty()),
            addr.trim().parse().map_err(|_| MessageError::InvalidRecipient(printable(addr)))?,
        )),
        None => None,
    };
    let invite = match (&e.ics, &e.ics_method) {
        (Some(ics), method) => Some((ics, parse_method(method.as_deref())?)),
        (None, Some(_)) => return Err(MessageError::MethodWithoutInvite),
        (None, None) => None,
    };

    let mut alternative =
        MultiPart::alternative().singlepart(SinglePart::plain(e.body_text.clone())).singlepart(SinglePart::html(e.body_html.clone()));
    if let Some((ics, method)) = invite {
        alternative = alternative.singlepart(
            SinglePart::builder().header(content_type(&format!("text/calendar; method={method}; charset=UTF-8"))).body(ics.clone()),
        );
    }
    let mut mixed = MultiPart::mixed().multipart(alternative);
    if let Some((ics, _)) = invite {
        mixed = mixed.singlepart(Attachment::new("invite.ics".to_string()).body(ics.clone(), content_type("application/ics")));
    }

    let mut builder = Message::builder()
        .message_id(Some(format!("<{message_id}>")))
        .date(SystemTime::from(date))
        .from(from.clone())
        .to(Mailbox::new(to_name, to_address));
    if let Some(cc) = cc {
        builder = builder.cc(cc);
    }
    Ok(builder.subject(single_line(&e.subject)).multipart(mixed)?)
}

/// A content type written in this file; a typo is a bug caught by the tests, not bad input.
fn content_type(s: &str) -> ContentType {
    ContentType::parse(s).unwrap_or_else(|_| panic!("'{s}' is a valid content type"))
}

fn parse_method(method: Option<&str>) -> Result<&'static str, MessageError> {
    match method.map(str::trim) {
        None => Ok("REQUEST"),
        Some(m) if m.eq_ignore_ascii_case("REQUEST") => Ok("REQUEST"),
        Some(m) if m.eq_ignore_ascii_case("CANCEL") => Ok("CANCEL"),
        Some(m) => Err(MessageError::InvalidIcsMethod(printable(m))),
    }
}

/// Checks the RFC 5322 `msg-id` shape (dot-atom `@` dot-atom); surrounding angle brackets are
/// accepted and dropped.
fn parse_message_id(raw: &str) -> Result<&str, MessageError> {
    let id = raw.trim();
    let id = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(id);
    let dot_atom = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.ends_with('.')
            && !s.contains("..")
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
    };
    match id.split_once('@') {
        Some((left, right)) if id.len() <= 250 && dot_atom(left) && dot_atom(right) => Ok(id),
        _ => Err(MessageError::InvalidMessageId(printable(raw))),
    }
}

/// Header text on one line: control characters (CR, LF, tab, …) and Unicode line separators
/// become spaces, runs of white space collapse to one.
pub fn single_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(|c: char| c.is_control() || c.is_whitespace()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A value quoted back in an error message, without its control characters.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn from() -> Mailbox {
        "firstcall <firstcall@example.com>".parse().expect("valid mailbox")
    }

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            message_id: "call-12.first_call.1@firstcall.example.com".into(),
            to_addr: "rep@example.com".into(),
            to_name: Some("Jürgen Öztürk".into()),
            cc_addr: None,
            cc_name: None,
            subject: "First call: Müller GmbH — 12 seats".into(),
            body_text: "Hello\nline two\n".into(),
            body_html: "<p>Hello</p>".into(),
            ics: Some("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n".into()),
            ics_method: Some("request".into()),
        }
    }

    fn parsed(e: &OutgoingEmail) -> testkit::mail::ParsedMail {
        let msg = build_message_at(e, &from(), Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()).expect("builds");
        testkit::mail::parse(&msg.formatted())
    }

    #[test]
    fn builds_the_full_structure_with_stable_headers() {
        let p = parsed(&email());
        assert_eq!(p.message_id.as_deref(), Some("call-12.first_call.1@firstcall.example.com"));
        assert_eq!(p.subject.as_deref(), Some("First call: Müller GmbH — 12 seats"));
        assert_eq!(p.to.len(), 1);
        assert_eq!(p.to[0].name.as_deref(), Some("Jürgen Öztürk"));
        assert_eq!(p.to[0].address, "rep@example.com");
        assert_eq!(p.from[0].address, "firstcall@example.com");
        assert!(p.header("Date").is_some_and(|d| d.contains("2 Mar 2026")), "{:?}", p.header("Date"));
        assert_eq!(p.structure, "multipart/mixed[multipart/alternative[text/plain,text/html,text/calendar],application/ics]",);
        assert_eq!(p.text.as_deref().map(str::trim_end), Some("Hello\r\nline two"));
        assert_eq!(p.html.as_deref(), Some("<p>Hello</p>"));
        let cal = p.calendar.as_ref().expect("calendar part");
        assert_eq!(cal.method.as_deref(), Some("REQUEST"));
        assert!(cal.body.contains("BEGIN:VCALENDAR"));
        assert_eq!(p.attachments.len(), 1);
        assert_eq!(p.attachments[0].filename.as_deref(), Some("invite.ics"));
        assert_eq!(p.attachments[0].content_type, "application/ics");
        assert!(String::from_utf8_lossy(&p.attachments[0].bytes).contains("METHOD:REQUEST"));
    }

    #[test]
    fn a_copy_goes_in_cc_and_a_bad_copy_address_is_refused() {
        let p =
            parsed(&OutgoingEmail { cc_addr: Some("ana@example.com".into()), cc_name: Some("Ana\r\nBcc: x@evil.test".into()), ..email() });
        assert_eq!(p.cc.len(), 1);
        assert_eq!(p.cc[0].address, "ana@example.com");
        assert_eq!(p.cc[0].name.as_deref(), Some("Ana Bcc: x@evil.test"));
        assert_eq!(p.header_count("Bcc"), 0);
        assert!(parsed(&email()).cc.is_empty());
        let bad = build_message(&OutgoingEmail { cc_addr: Some("not an address".into()), ..email() }, &from()).expect_err("refused");
        assert!(matches!(bad, MessageError::InvalidRecipient(_)));
    }

    #[test]
    fn cancel_method_and_no_invite() {
        let p = parsed(&OutgoingEmail { ics_method: Some("CANCEL".into()), ..email() });
        assert_eq!(p.calendar.and_then(|c| c.method).as_deref(), Some("CANCEL"));

        let p = parsed(&OutgoingEmail { ics: None, ics_method: None, to_name: None, ..email() });
        assert_eq!(p.structure, "multipart/mixed[multipart/alternative[text/plain,text/html]]");
        assert!(p.calendar.is_none());
        assert!(p.attachments.is_empty());
        assert_eq!(p.to[0].name, None);
    }

    #[test]
    fn refuses_bad_ids_methods_and_addresses() {
        let bad = |e: OutgoingEmail| build_message(&e, &from()).expect_err("must be refused");
        assert!(matches!(bad(OutgoingEmail { message_id: "no-at-sign".into(), ..email() }), MessageError::InvalidMessageId(_)));
        assert!(matches!(
            bad(OutgoingEmail { message_id: "a@b>\r\nBcc: x@evil.test".into(), ..email() }),
            MessageError::InvalidMessageId(_)
        ));
        assert!(matches!(bad(OutgoingEmail { message_id: "a b@c".into(), ..email() }), MessageError::InvalidMessageId(_)));
        assert!(matches!(bad(OutgoingEmail { ics_method: Some("PUBLISH".into()), ..email() }), MessageError::InvalidIcsMethod(_)));
        assert!(matches!(bad(OutgoingEmail { ics: None, ..email() }), MessageError::MethodWithoutInvite));
        assert!(matches!(
            bad(OutgoingEmail { to_addr: "rep@example.com\r\nBcc: x@evil.test".into(), ..email() }),
            MessageError::InvalidRecipient(_)
        ));
        // Angle brackets around the id are accepted.
        let p = parsed(&OutgoingEmail { message_id: "<x.1@host>".into(), ..email() });
        assert_eq!(p.message_id.as_deref(), Some("x.1@host"));
    }

    #[test]
    fn names_and_subjects_cannot_inject_headers() {
        let attacks = [
            "Rep\r\nBcc: victim@evil.test",
            "Rep\nBcc: victim@evil.test",
            "Rep\rBcc: victim@evil.test",
            "Rep\r\n\r\nbody takeover",
            "Rep\u{2028}Bcc: victim@evil.test",
            "Evil <attacker@evil.test>, other@evil.test",
            "\"quoted\" \\ back\tslash =?utf-8?q?x?=",
        ];
        for attack in attacks {
            let e = OutgoingEmail { to_name: Some(attack.into()), subject: format!("Hi {attack}"), ..email() };
            let p = parsed(&e);
            assert_eq!(p.header_count("Bcc"), 0, "{attack:?}");
            assert_eq!(p.header_count("Subject"), 1, "{attack:?}");
            assert_eq!(p.header_count("To"), 1, "{attack:?}");
            assert_eq!(p.to.len(), 1, "{attack:?}: {:?}", p.to);
            assert_eq!(p.to[0].address, "rep@example.com", "{attack:?}");
            if !attack.contains("=?") {
                // (Text that looks like an RFC 2047 word goes out as is and is decoded by the
                // reader: a display quirk, not a new header.)
                assert_eq!(p.subject.as_deref(), Some(single_line(&format!("Hi {attack}")).as_str()), "{attack:?}");
            }
            assert_eq!(p.structure, "multipart/mixed[multipart/alternative[text/plain,text/html,text/calendar],application/ics]");
            let names: Vec<&str> = p.headers.iter().map(|(n, _)| n.as_str()).collect();
            assert!(names.iter().all(|n| !n.eq_ignore_ascii_case("bcc")), "{attack:?}: {names:?}");
        }
    }

    #[test]
    fn single_line_collapses_controls() {
        assert_eq!(single_line("  a\r\n\tb \u{0}c\u{2029}d  "), "a b c d");
        assert_eq!(single_line("\r\n"), "");
    }
}
