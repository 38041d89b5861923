//! SMTP delivery over lettre's connection type, with a small pool of our own.
//!
//! Why not lettre's `AsyncSmtpTransport`: its pool puts a connection back when the future that
//! used it is dropped, so a send cut off by our timeout in the middle of DATA leaves a connection
//! whose late reply answers the next message's command; and its `send` does not say whether the
//! message had been handed over when a connection failed. Here a connection goes back to the
//! pool only after a transaction finished cleanly, and each send tracks its [`Phase`].

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use super::{SendOutcome, TransportError};
use crate::config::{SmtpSettings, SmtpTls};

/// An idle connection older than this is closed rather than reused (servers drop idle clients
/// after a few minutes; probing one that is about to go is a wasted round trip).
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// A goodbye (`QUIT`) to a connection we are done with may take this long, in the background.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How far a send got; decides what a failure or a timeout means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Connecting, TLS, EHLO, AUTH: nothing about this message was said yet.
    Connecting,
    /// MAIL, RCPT, DATA: the server may refuse, but cannot have taken the message.
    Envelope,
    /// The content is being sent or its final reply awaited: the message may have arrived.
    Content,
}

struct Connector {
    host: String,
    port: u16,
    tls: SmtpTls,
    tls_parameters: Option<TlsParameters>,
    hello: ClientId,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
}

/// Why no SMTP session could be opened.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("cannot connect: {0}")]
    Tcp(std::io::Error),
    #[error("connecting took longer than {0:?}")]
    Timeout(Duration),
}

impl Connector {
    async fn connect(&self) -> Result<AsyncSmtpConnection, ConnectError> {
        let mut conn = if self.tls == SmtpTls::Tls {
            AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.connect_timeout),
                &self.hello,
                self.tls_parameters.clone(),
                None,
            )
            .await?
        } else {
            // Our own socket, so that Nagle's algorithm can be turned off: lettre writes the end
            // of a message (the lone dot) apart from its content, and waiting for the server's
            // delayed ACK before sending it cost tens of milliseconds per message.
            let tcp = tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect((self.host.as_str(), self.port)))
                .await
                .map_err(|_| ConnectError::Timeout(self.connect_timeout))?
                .map_err(ConnectError::Tcp)?;
            tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?
        };
        if self.tls == SmtpTls::Starttls
            && let Some(parameters) = &self.tls_parameters
        {
            // Fails when the server does not offer STARTTLS: mail is never sent in the clear
            // when encryption was asked for.
            conn.starttls(parameters.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await?;
        }
        Ok(conn)
    }
}

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

pub(super) struct SmtpSender {
    connector: Connector,
    idle: Mutex<Vec<Idle>>,
    /// Connections kept open between sends; 0 opens one connection per message.
    max_idle: usize,
}

impl fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.debug_struct("SmtpSender")
            .field("host", &self.connector.host)
            .field("port", &self.connector.port)
            .field("tls", &self.connector.tls)
            .field("auth", &self.connector.credentials.is_some())
            .field("max_idle", &self.max_idle)
            .finish()
    }
}

impl SmtpSender {
    pub(super) fn new(settings: &SmtpSettings, max_idle: usize) -> Result<SmtpSender, TransportError> {
        let tls_parameters = match settings.tls {
            SmtpTls::None => None,
            SmtpTls::Starttls | SmtpTls::Tls => Some(
                TlsParameters::new(settings.host.clone()).map_err(|source| TransportError::Tls { host: settings.host.clone(), source })?,
            ),
        };
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.clone())),
            (Some(_), None) => return Err(TransportError::MissingPassword),
            (None, _) => None,
        };
        Ok(SmtpSender {
            connector: Connector {
                host: settings.host.clone(),
                port: settings.port,
                tls: settings.tls,
                tls_parameters,
                hello: ClientId::default(),
                credentials,
                connect_timeout: Duration::from_secs(settings.connect_timeout_secs.max(1)),
            },
            idle: Mutex::new(Vec::new()),
            max_idle,
        })
    }

    pub(super) fn describe(&self) -> String {
        let c = &self.connector;
        let tls = match c.tls {
            SmtpTls::None => "no TLS",
            SmtpTls::Starttls => "STARTTLS",
            SmtpTls::Tls => "TLS",
        };
        let auth = if c.credentials.is_some() { ", with login" } else { "" };
        let pool = if self.max_idle == 0 { "one connection per message".to_string() } else { format!("pool of {}", self.max_idle) };
        format!("smtp://{}:{} ({tls}{auth}, {pool})", c.host, c.port)
    }

    /// One delivery, bounded by `timeout`.
    pub(super) async fn send(&self, envelope: &Envelope, raw: &[u8], timeout: Duration) -> SendOutcome {
        let mut phase = Phase::Connecting;
        match tokio::time::timeout(timeout, self.transaction(envelope, raw, &mut phase)).await {
            Ok(outcome) => outcome,
            Err(_) if phase == Phase::Content => SendOutcome::Unknown(format!(
                "{} did not answer within {timeout:?} after the message was sent; it may have been delivered",
                self.endpoint()
            )),
            Err(_) => SendOutcome::Transient(format!(
                "{} did not answer within {timeout:?} ({}); the message was not handed over",
                self.endpoint(),
                if phase == Phase::Connecting { "while connecting" } else { "during MAIL/RCPT/DATA" }
            )),
        }
    }

    fn endpoint(&self) -> String {
        format!("{}:{}", self.connector.host, self.connector.port)
    }

    async fn transaction(&self, envelope: &Envelope, raw: &[u8], phase: &mut Phase) -> SendOutcome {
        let mut conn = match self.checkout().await {
            Ok(conn) => conn,
            Err(e) => return SendOutcome::Transient(format!("could not open an SMTP session with {}: {e}", self.endpoint())),
        };
        *phase = Phase::Envelope;

        let mut parameters = Vec::new();
        let addresses_ascii = envelope.from().is_none_or(|a| AsRef::<str>::as_ref(a).is_ascii())
            && envelope.to().iter().all(|a| AsRef::<str>::as_ref(a).is_ascii());
        if !addresses_ascii {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                self.checkin(conn);
                return SendOutcome::Permanent("an address is not ASCII and the server does not offer SMTPUTF8".into());
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !raw.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                self.checkin(conn);
                return SendOutcome::Permanent("the message is not 7-bit and the server does not offer 8BITMIME".into());
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }

        match exchange(&mut conn, envelope, raw, parameters, phase).await {
            Ok(()) => {
                self.checkin(conn);
                SendOutcome::Delivered
            }
            Err(e) => {
                quit_in_background(conn);
                if e.is_transient() {
                    SendOutcome::Transient(e.to_string())
                } else if e.is_permanent() {
                    SendOutcome::Permanent(e.to_string())
                } else if *phase == Phase::Content {
                    SendOutcome::Unknown(format!("the connection failed after the message was sent ({e}); it may have been delivered"))
                } else {
                    SendOutcome::Transient(format!("the connection failed before the message was handed over: {e}"))
                }
            }
        }
    }

    /// A connection that answers: a pooled one that still answers NOOP, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, ConnectError> {
        loop {
            let Some(Idle { mut conn, since }) = self.idle().pop() else {
                break;
            };
            if since.elapsed() > IDLE_LIMIT {
                quit_in_background(conn);
                continue;
            }
            // A probe that does not answer in time drops the connection (the future owns it).
            if let Ok(true) = tokio::time::timeout(self.connector.connect_timeout, conn.test_connected()).await {
                return Ok(conn);
            }
        }
        self.connector.connect().await
    }

    /// Keeps a connection whose transaction finished cleanly, if the pool has room.
    fn checkin(&self, conn: AsyncSmtpConnection) {
        let conn = {
            let mut idle = self.idle();
            if !conn.has_broken() && idle.len() < self.max_idle {
                idle.push(Idle { conn, since: Instant::now() });
                return;
            }
            conn
        };
        quit_in_background(conn);
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Says goodbye on every pooled connection.
    pub(super) async fn shutdown(&self) {
        let idle: Vec<Idle> = std::mem::take(&mut *self.idle());
        for mut i in idle {
            let _ = tokio::time::timeout(QUIT_TIMEOUT, i.conn.abort()).await;
        }
    }
}

/// MAIL, RCPT for each recipient, DATA, content; moves `phase` to [`Phase::Content`] once the
/// server said to go ahead with the content.
async fn exchange(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    raw: &[u8],
    parameters: Vec<MailParameter>,
    phase: &mut Phase,
) -> Result<(), lettre::transport::smtp::Error> {
    conn.command(Mail::new(envelope.from().cloned(), parameters)).await?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![])).await?;
    }
    conn.command(Data).await?;
    *phase = Phase::Content;
    conn.message(raw).await?;
    Ok(())
}

fn quit_in_background(mut conn: AsyncSmtpConnection) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(QUIT_TIMEOUT, conn.abort()).await;
    });
}
