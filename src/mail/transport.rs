//! Hands one built message to the outside world and says what became of it.
//!
//! Two transports, chosen by `mail.transport`: SMTP (production) and `.eml` files in
//! `mail.outbox_dir` (the embedded default). Every send is bounded by `mail.send_timeout_secs`
//! and ends in a [`SendOutcome`] the mailer can act on: retry later, give up, or retry knowing
//! the message may already have arrived (the stable Message-ID lets clients drop the duplicate).

mod file;
mod smtp;

use std::path::PathBuf;
use std::time::Duration;

use lettre::Message;
use lettre::address::Envelope;

use crate::config::{MailSettings, MailTransportKind, SmtpSettings};
use file::FileSender;
use smtp::SmtpSender;

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The server took responsibility for the message (or the file is written).
    Delivered,
    /// Not delivered, and worth trying again later: a 4xx reply, a refused or failed connection,
    /// a timeout before the message was handed over.
    Transient(String),
    /// The server refused this message for good (5xx); retrying will not help.
    Permanent(String),
    /// The message was handed over but no verdict came back (timeout or lost connection after
    /// DATA began): it may have arrived.
    Unknown(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("mail.smtp: cannot set up TLS for {host}: {source}")]
    Tls { host: String, source: lettre::transport::smtp::Error },
    #[error("mail.smtp: a username is set but no password (set FIRSTCALL__MAIL__SMTP__PASSWORD)")]
    MissingPassword,
}

#[derive(Debug)]
enum Kind {
    Smtp(SmtpSender),
    File(FileSender),
}

/// The configured way out for mail. Cheap to share behind an `Arc`; SMTP connections are pooled.
#[derive(Debug)]
pub struct MailTransport {
    kind: Kind,
    send_timeout: Duration,
}

impl MailTransport {
    /// The transport `mail.transport` names, with `mail.send_timeout_secs` (at least one second).
    pub fn from_settings(settings: &MailSettings) -> Result<MailTransport, TransportError> {
        let send_timeout = Duration::from_secs(settings.send_timeout_secs.max(1));
        Ok(match settings.transport {
            MailTransportKind::Smtp => MailTransport::smtp(&settings.smtp, send_timeout)?,
            MailTransportKind::File => MailTransport::file(&settings.outbox_dir, send_timeout),
        })
    }

    /// SMTP keeping up to `smtp.pool_size` connections open between sends.
    pub fn smtp(smtp: &SmtpSettings, send_timeout: Duration) -> Result<MailTransport, TransportError> {
        Ok(MailTransport { kind: Kind::Smtp(SmtpSender::new(smtp, smtp.pool_size as usize)?), send_timeout })
    }

    /// SMTP with one connection per message, closed after it: no pool (for comparing).
    pub fn smtp_unpooled(smtp: &SmtpSettings, send_timeout: Duration) -> Result<MailTransport, TransportError> {
        Ok(MailTransport { kind: Kind::Smtp(SmtpSender::new(smtp, 0)?), send_timeout })
    }

    /// `.eml` files in `dir` (created when missing).
    pub fn file(dir: impl Into<PathBuf>, send_timeout: Duration) -> MailTransport {
        MailTransport { kind: Kind::File(FileSender::new(dir.into())), send_timeout }
    }

    /// For logs and the start-up banner; never includes credentials.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Smtp(s) => s.describe(),
            Kind::File(f) => format!("files in {}", f.dir().display()),
        }
    }

    /// Delivers `msg` to the envelope's recipients (usually `msg.envelope()`), within the send
    /// timeout.
    pub async fn send(&self, msg: &Message, envelope: &Envelope) -> SendOutcome {
        let raw = msg.formatted();
        let message_id = msg.headers().get_raw("Message-ID");
        let outcome = match &self.kind {
            Kind::Smtp(s) => s.send(envelope, &raw, self.send_timeout).await,
            Kind::File(f) => match tokio::time::timeout(self.send_timeout, f.write(message_id, &raw)).await {
                Ok(Ok(_)) => SendOutcome::Delivered,
                Ok(Err(e)) => SendOutcome::Transient(format!("could not write to {}: {e}", f.dir().display())),
                Err(_) => SendOutcome::Unknown(format!("writing to {} took longer than {:?}", f.dir().display(), self.send_timeout)),
            },
        };
        tracing::debug!(message_id = message_id.unwrap_or("-"), recipients = envelope.to().len(), ?outcome, "mail send attempt");
        outcome
    }

    /// Closes pooled connections politely; call once when the process stops.
    pub async fn shutdown(&self) {
        if let Kind::Smtp(s) = &self.kind {
            s.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use lettre::message::Mailbox;
    use testkit::{Mode, SmtpSink};

    use super::*;
    use crate::config::SmtpTls;
    use crate::mail::message::{OutgoingEmail, build_message};

    const WAIT: Duration = Duration::from_secs(5);

    fn smtp_settings(port: u16) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            pool_size: 2,
            connect_timeout_secs: 2,
        }
    }

    fn smtp(sink: &SmtpSink) -> MailTransport {
        MailTransport::smtp(&smtp_settings(sink.port()), WAIT).expect("transport")
    }

    fn email(n: u32) -> OutgoingEmail {
        OutgoingEmail {
            message_id: format!("call-12.first_call.{n}@firstcall.test"),
            to_addr: "rep@example.com".into(),
            to_name: Some("Renée Rep".into()),
            cc_addr: None,
            cc_name: None,
            subject: "First call after your order: Acme — ünïcode".into(),
            body_text: "Recap\n.a line that starts with a dot\n..and two\n".into(),
            body_html: "<h1>Recap</h1>".into(),
            ics: Some("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nUID:call-12@firstcall.test\r\nEND:VCALENDAR\r\n".into()),
            ics_method: Some("REQUEST".into()),
        }
    }

    fn message(e: &OutgoingEmail) -> Message {
        let from: Mailbox = "firstcall <firstcall@firstcall.test>".parse().expect("mailbox");
        build_message(e, &from).expect("message builds")
    }

    async fn send(t: &MailTransport, e: &OutgoingEmail) -> SendOutcome {
        let msg = message(e);
        t.send(&msg, msg.envelope()).await
    }

    #[tokio::test]
    async fn delivers_a_message_with_every_part_and_header() {
        let sink = SmtpSink::start().await;
        let t = smtp(&sink);
        assert_eq!(send(&t, &email(1)).await, SendOutcome::Delivered);
        let got = sink.wait_for(1, WAIT).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].mail_from, "firstcall@firstcall.test");
        assert_eq!(got[0].rcpt_to, vec!["rep@example.com".to_string()]);
        let p = got[0].parse();
        assert_eq!(p.message_id.as_deref(), Some("call-12.first_call.1@firstcall.test"));
        assert_eq!(p.subject.as_deref(), Some("First call after your order: Acme — ünïcode"));
        assert_eq!(p.to[0].name.as_deref(), Some("Renée Rep"));
        assert_eq!(p.from[0].address, "firstcall@firstcall.test");
        assert!(p.header("Date").is_some());
        assert_eq!(p.structure, "multipart/mixed[multipart/alternative[text/plain,text/html,text/calendar],application/ics]");
        let text = p.text.expect("text part");
        assert!(text.contains("\r\n.a line that starts with a dot\r\n..and two"), "dots survive the wire: {text:?}");
        assert_eq!(p.html.as_deref(), Some("<h1>Recap</h1>"));
        let cal = p.calendar.expect("calendar part");
        assert_eq!(cal.method.as_deref(), Some("REQUEST"));
        assert!(cal.body.contains("UID:call-12@firstcall.test"));
        assert_eq!(p.attachments[0].filename.as_deref(), Some("invite.ics"));
        assert_eq!(p.attachments[0].content_type, "application/ics");
    }

    #[tokio::test]
    async fn pooled_sends_reuse_one_connection_and_unpooled_do_not() {
        let sink = SmtpSink::start().await;
        let pooled = smtp(&sink);
        for n in 0..3 {
            assert_eq!(send(&pooled, &email(n)).await, SendOutcome::Delivered);
        }
        assert_eq!(sink.wait_for(3, WAIT).await.len(), 3);
        assert_eq!(sink.connections(), 1);

        let sink = SmtpSink::start().await;
        let unpooled = MailTransport::smtp_unpooled(&smtp_settings(sink.port()), WAIT).expect("transport");
        for n in 0..3 {
            assert_eq!(send(&unpooled, &email(n)).await, SendOutcome::Delivered);
        }
        assert_eq!(sink.wait_for(3, WAIT).await.len(), 3);
        assert_eq!(sink.connections(), 3);
    }

    #[tokio::test]
    async fn temporary_refusals_are_transient() {
        let sink = SmtpSink::start().await;
        let t = smtp(&sink);
        for mode in [Mode::TempFail, Mode::TempFailAtRcpt] {
            sink.set_mode(mode).await;
            match send(&t, &email(1)).await {
                SendOutcome::Transient(why) => assert!(why.contains("451"), "{mode:?}: {why}"),
                other => panic!("{mode:?}: expected Transient, got {other:?}"),
            }
        }
        sink.set_mode(Mode::Accept).await;
        assert_eq!(send(&t, &email(1)).await, SendOutcome::Delivered);
        assert_eq!(sink.messages().len(), 1);
    }

    #[tokio::test]
    async fn permanent_refusals_are_permanent() {
        let sink = SmtpSink::start().await;
        let t = smtp(&sink);
        for (mode, code) in [(Mode::PermFail, "550"), (Mode::PermFailAtData, "554")] {
            sink.set_mode(mode).await;
            match send(&t, &email(1)).await {
                SendOutcome::Permanent(why) => assert!(why.contains(code), "{mode:?}: {why}"),
                other => panic!("{mode:?}: expected Permanent, got {other:?}"),
            }
        }
        assert!(sink.messages().is_empty());
    }

    #[tokio::test]
    async fn a_stalled_data_reply_is_unknown_within_the_timeout_and_does_not_poison_the_pool() {
        let sink = SmtpSink::start().await;
        let t = MailTransport::smtp(&smtp_settings(sink.port()), Duration::from_secs(1)).expect("transport");
        // A pooled connection exists before the stall.
        assert_eq!(send(&t, &email(1)).await, SendOutcome::Delivered);

        sink.set_mode(Mode::StallData).await;
        let started = Instant::now();
        let outcome = send(&t, &email(2)).await;
        assert!(matches!(outcome, SendOutcome::Unknown(_)), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "bounded by the 1 s timeout: {:?}", started.elapsed());
        assert_eq!(sink.unknown_outcomes(), 1);

        // The next message gets a clean connection and its own verdict.
        sink.set_mode(Mode::PermFail).await;
        assert!(matches!(send(&t, &email(3)).await, SendOutcome::Permanent(_)));
        sink.set_mode(Mode::Accept).await;
        assert_eq!(send(&t, &email(4)).await, SendOutcome::Delivered);
        let ids: Vec<_> = sink.messages().iter().map(|c| c.parse().message_id.unwrap_or_default()).collect();
        assert_eq!(ids, ["call-12.first_call.1@firstcall.test", "call-12.first_call.4@firstcall.test"]);
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_transient_and_recovery_needs_no_restart() {
        let sink = SmtpSink::start().await;
        let t = smtp(&sink);
        assert_eq!(send(&t, &email(1)).await, SendOutcome::Delivered);

        sink.set_mode(Mode::Down).await;
        // The pooled connection is dead and new ones are refused.
        match send(&t, &email(2)).await {
            SendOutcome::Transient(why) => assert!(why.contains("127.0.0.1"), "{why}"),
            other => panic!("expected Transient, got {other:?}"),
        }

        sink.set_mode(Mode::Accept).await;
        assert_eq!(send(&t, &email(3)).await, SendOutcome::Delivered);
        assert_eq!(sink.wait_for(2, WAIT).await.len(), 2);
    }

    #[tokio::test]
    async fn nothing_listening_is_transient() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let t = MailTransport::smtp(&smtp_settings(port), WAIT).expect("transport");
        assert!(matches!(send(&t, &email(1)).await, SendOutcome::Transient(_)));
    }

    #[tokio::test]
    async fn logs_in_when_configured_and_never_shows_the_password() {
        let sink = SmtpSink::start_with_auth("firstcall", "s3cret-password").await;
        let settings =
            SmtpSettings { username: Some("firstcall".into()), password: Some("s3cret-password".into()), ..smtp_settings(sink.port()) };
        let t = MailTransport::smtp(&settings, WAIT).expect("transport");
        assert!(!format!("{t:?} {}", t.describe()).contains("s3cret"));
        assert_eq!(send(&t, &email(1)).await, SendOutcome::Delivered);
        assert_eq!(sink.logins(), vec!["firstcall".to_string()]);

        // A wrong password is a setup problem, not this message's fault.
        let wrong = SmtpSettings { password: Some("wrong-password".into()), ..settings.clone() };
        let outcome = send(&MailTransport::smtp(&wrong, WAIT).expect("transport"), &email(2)).await;
        assert!(matches!(&outcome, SendOutcome::Transient(why) if !why.contains("wrong-password")), "{outcome:?}");

        let no_password = SmtpSettings { password: None, ..settings };
        assert!(matches!(MailTransport::smtp(&no_password, WAIT), Err(TransportError::MissingPassword)));
    }

    #[tokio::test]
    async fn starttls_required_but_not_offered_sends_nothing() {
        let sink = SmtpSink::start().await;
        let settings = SmtpSettings { tls: SmtpTls::Starttls, host: "localhost".into(), ..smtp_settings(sink.port()) };
        let t = MailTransport::smtp(&settings, WAIT).expect("transport");
        assert!(matches!(send(&t, &email(1)).await, SendOutcome::Transient(_)));
        assert!(sink.messages().is_empty());
    }

    #[tokio::test]
    async fn header_injection_attempts_stay_inside_their_headers() {
        let sink = SmtpSink::start().await;
        let t = smtp(&sink);
        let e = OutgoingEmail {
            to_name: Some("Rep\r\nBcc: victim@evil.test".into()),
            cc_addr: None,
            cc_name: None,
            subject: "Hello\r\nBcc: victim@evil.test\r\nX-Injected: yes".into(),
            ..email(1)
        };
        assert_eq!(send(&t, &e).await, SendOutcome::Delivered);
        let got = sink.wait_for(1, WAIT).await;
        assert_eq!(got[0].rcpt_to, vec!["rep@example.com".to_string()]);
        let p = got[0].parse();
        assert_eq!(p.header_count("Bcc"), 0);
        assert_eq!(p.header_count("X-Injected"), 0);
        assert_eq!(p.subject.as_deref(), Some("Hello Bcc: victim@evil.test X-Injected: yes"));
        assert_eq!(p.to.len(), 1);
        assert_eq!(p.to[0].address, "rep@example.com");
    }

    #[tokio::test]
    async fn file_transport_writes_a_parseable_eml_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = dir.path().join("outbox");
        let t = MailTransport::file(&outbox, WAIT);
        assert_eq!(send(&t, &email(1)).await, SendOutcome::Delivered);
        // A retry of the same message replaces its file.
        assert_eq!(send(&t, &email(1)).await, SendOutcome::Delivered);

        let names: Vec<String> = std::fs::read_dir(&outbox)
            .expect("outbox exists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["call-12.first_call.1@firstcall.test.eml"], "one file, no temporary files left");
        let raw = std::fs::read(outbox.join(&names[0])).expect("readable");
        let p = testkit::mail::parse(&raw);
        assert_eq!(p.message_id.as_deref(), Some("call-12.first_call.1@firstcall.test"));
        assert_eq!(p.calendar.and_then(|c| c.method).as_deref(), Some("REQUEST"));
        assert_eq!(p.attachments.len(), 1);
    }

    #[tokio::test]
    async fn file_transport_reports_an_unwritable_dir_as_transient() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").expect("write");
        let t = MailTransport::file(blocker.join("outbox"), WAIT);
        assert!(matches!(send(&t, &email(1)).await, SendOutcome::Transient(_)));
    }

    #[test]
    fn builds_from_settings() {
        let mut settings = crate::config::ConfigSource { dir: "config".into(), env_name: None, use_env: false }
            .load()
            .expect("default config loads")
            .settings
            .mail;
        settings.transport = MailTransportKind::File;
        assert!(MailTransport::from_settings(&settings).expect("file").describe().starts_with("files in"));
        settings.transport = MailTransportKind::Smtp;
        settings.smtp.tls = SmtpTls::Tls;
        assert!(MailTransport::from_settings(&settings).expect("smtp").describe().contains("(TLS, pool of"));
    }
}
