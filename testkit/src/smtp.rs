//! A real SMTP server for tests: listens on `127.0.0.1`, speaks enough ESMTP for any ordinary
//! client (EHLO/HELO, optional AUTH PLAIN/LOGIN, MAIL, RCPT, DATA with dot-unstuffing, RSET,
//! NOOP, VRFY, QUIT), and keeps every accepted message.
//!
//! Faults are switched at run time with [`SmtpSink::set_mode`] and apply from the next decision
//! on: answer 451 or 550, swallow a message without ever answering after the final dot (the
//! client cannot know whether it arrived), or go down (refuse new connections and drop the open
//! ones) and come back on the same port.
//!
//! Each connection runs in its own task; odd input gets an SMTP error reply, never a panic.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};

mod session;
use session::Session;

/// How the sink answers from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Accept every message (`250`).
    #[default]
    Accept,
    /// Take the whole message, then answer `451` after the final dot.
    TempFail,
    /// Answer `451` to every `RCPT`.
    TempFailAtRcpt,
    /// Answer `550` to every `RCPT` (mailbox unavailable).
    PermFail,
    /// Take the whole message, then answer `554` after the final dot.
    PermFailAtData,
    /// Take the whole message and never answer after the final dot.
    StallData,
    /// Refuse connections and drop the open ones.
    Down,
}

/// A message as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The reverse path of `MAIL FROM` (empty for the null sender `<>`).
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message after dot-unstuffing, exactly as the client meant it.
    pub raw: Vec<u8>,
}

impl Captured {
    pub fn parse(&self) -> crate::mail::ParsedMail {
        crate::mail::parse(&self.raw)
    }
}

/// What the sink did with a message that arrived whole (its final dot was read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answered `250`: the client knows it was delivered.
    Accepted,
    /// Never answered ([`Mode::StallData`]): the client cannot know whether it arrived.
    Stalled,
    /// Taken, but the connection ended (the sink went down, the client vanished) before the
    /// `250` was written: the client cannot know either.
    Cut,
}

/// One message that arrived whole, with the sink's verdict and when it arrived.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Captured,
    pub verdict: Verdict,
    pub at: std::time::Instant,
    /// Tells deliveries apart while a verdict is still being given.
    seq: u64,
}

#[derive(Default)]
struct Record {
    deliveries: Vec<Delivery>,
    next_seq: u64,
    refusals: usize,
    connections: usize,
    logins: Vec<String>,
}

impl Record {
    fn with_verdict(&self, wanted: impl Fn(Verdict) -> bool) -> Vec<Captured> {
        self.deliveries.iter().filter(|d| wanted(d.verdict)).map(|d| d.message.clone()).collect()
    }
}

struct Shared {
    record: Mutex<Record>,
    changed: Notify,
    mode: watch::Sender<Mode>,
    credentials: Option<(String, String)>,
}

impl Shared {
    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Records a message that arrived whole; returns its number for [`Shared::settle`].
    fn deliver(&self, message: Captured, verdict: Verdict) -> u64 {
        let seq = {
            let mut record = self.record();
            let seq = record.next_seq;
            record.next_seq += 1;
            record.deliveries.push(Delivery { message, verdict, at: std::time::Instant::now(), seq });
            seq
        };
        self.changed.notify_waiters();
        seq
    }

    /// Changes the verdict on delivery `seq` (gone after [`SmtpSink::clear`]: nothing to do).
    fn settle(&self, seq: u64, verdict: Verdict) {
        if let Some(d) = self.record().deliveries.iter_mut().rev().find(|d| d.seq == seq) {
            d.verdict = verdict;
        }
    }

    fn refused(&self) {
        self.record().refusals += 1;
    }
}

enum Control {
    Listen(bool, oneshot::Sender<io::Result<()>>),
}

/// The running server. Dropping it stops the listener and closes every connection.
pub struct SmtpSink {
    shared: Arc<Shared>,
    port: u16,
    control: mpsc::UnboundedSender<Control>,
    // Never sent on: connection tasks end when this is dropped with the sink.
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink").field("port", &self.port).field("mode", &self.shared.mode()).finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// Starts a sink on a free loopback port that takes mail without authentication.
    pub async fn start() -> SmtpSink {
        Self::start_inner(None).await
    }

    /// Starts a sink that advertises `AUTH PLAIN LOGIN` and refuses `MAIL` until the client has
    /// logged in with exactly these credentials.
    pub async fn start_with_auth(username: &str, password: &str) -> SmtpSink {
        Self::start_inner(Some((username.to_string(), password.to_string()))).await
    }

    async fn start_inner(credentials: Option<(String, String)>) -> SmtpSink {
        let listener = bind(0).unwrap_or_else(|e| panic!("the SMTP sink could not listen on 127.0.0.1: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("the SMTP sink has no local address: {e}"));
        let shared =
            Arc::new(Shared { record: Mutex::default(), changed: Notify::new(), mode: watch::Sender::new(Mode::Accept), credentials });
        let (control, control_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(());
        tokio::spawn(run_listener(Arc::clone(&shared), listener, port, control_rx, stop_rx));
        SmtpSink { shared, port, control, _stop: stop }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Switches how the sink answers from the next decision on. Going [`Mode::Down`] returns
    /// once new connections are refused and open ones are being dropped; leaving it returns once
    /// the sink listens again on the same port.
    pub async fn set_mode(&self, mode: Mode) {
        let previous = self.shared.mode.send_replace(mode);
        if (previous == Mode::Down) == (mode == Mode::Down) {
            return;
        }
        let (ack, done) = oneshot::channel();
        if self.control.send(Control::Listen(mode != Mode::Down, ack)).is_ok()
            && let Ok(Err(e)) = done.await
        {
            panic!("the SMTP sink could not listen again on port {}: {e}", self.port);
        }
    }

    /// Messages accepted so far, in arrival order (with those cut before their `250`).
    pub fn messages(&self) -> Vec<Captured> {
        self.shared.record().with_verdict(|v| v != Verdict::Stalled)
    }

    /// Every message that arrived whole, with what the sink did with it, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.record().deliveries.clone()
    }

    /// Replies that refused a recipient or a message (`451`, `550`, `554`).
    pub fn refusals(&self) -> usize {
        self.shared.record().refusals
    }

    /// Waits until at least `n` messages were accepted or `timeout` passed, and returns what
    /// arrived (check the length: fewer than `n` means the wait timed out).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Captured> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let messages = self.shared.record().with_verdict(|v| v != Verdict::Stalled);
                if messages.len() >= n {
                    return messages;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.messages();
            }
        }
    }

    /// DATA transactions whose outcome the client could not learn: the whole message arrived
    /// and the sink never answered (see [`Mode::StallData`]).
    pub fn unknown_outcomes(&self) -> usize {
        self.shared.record().deliveries.iter().filter(|d| d.verdict == Verdict::Stalled).count()
    }

    /// The messages behind [`SmtpSink::unknown_outcomes`].
    pub fn stalled(&self) -> Vec<Captured> {
        self.shared.record().with_verdict(|v| v == Verdict::Stalled)
    }

    /// Connections accepted so far (a pooled client reuses them).
    pub fn connections(&self) -> usize {
        self.shared.record().connections
    }

    /// User names that logged in successfully, one entry per login.
    pub fn logins(&self) -> Vec<String> {
        self.shared.record().logins.clone()
    }

    /// Forgets the messages, stalls, refusals, connections and logins counted so far.
    pub fn clear(&self) {
        *self.shared.record() = Record::default();
    }
}

fn bind(port: u16) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // The port is bound again after Mode::Down, while old connections may sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    socket.listen(128)
}

async fn run_listener(
    shared: Arc<Shared>,
    listener: TcpListener,
    port: u16,
    mut control: mpsc::UnboundedReceiver<Control>,
    stop: watch::Receiver<()>,
) {
    let mut listener = Some(listener);
    loop {
        tokio::select! {
            command = control.recv() => match command {
                None => return,
                Some(Control::Listen(on, ack)) => {
                    let result = match (on, &listener) {
                        (true, None) => bind(port).map(|l| listener = Some(l)),
                        (false, _) => {
                            listener = None;
                            Ok(())
                        }
                        (true, Some(_)) => Ok(()),
                    };
                    let _ = ack.send(result);
                }
            },
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(stream) => {
                    tokio::spawn(run_connection(Arc::clone(&shared), stream, stop.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

async fn run_connection(shared: Arc<Shared>, stream: TcpStream, mut stop: watch::Receiver<()>) {
    shared.record().connections += 1;
    let mut mode = shared.mode.subscribe();
    tokio::select! {
        _ = Session::new(Arc::clone(&shared)).run(stream) => {}
        _ = mode.wait_for(|m| *m == Mode::Down) => {}
        _ = stop.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use tokio::io::AsyncReadExt;
    use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::tcp::OwnedWriteHalf;

    async fn connect(sink: &SmtpSink) -> (BufReader<tokio::net::tcp::OwnedReadHalf>, OwnedWriteHalf) {
        let stream = TcpStream::connect(sink.addr()).await.expect("connects");
        let (r, w) = stream.into_split();
        let mut r = BufReader::new(r);
        assert!(response(&mut r).await.starts_with("220"));
        (r, w)
    }

    /// Reads one (possibly multi-line) reply.
    async fn response<R: AsyncBufRead + Unpin>(r: &mut R) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.expect("reads") == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn say<R: AsyncBufRead + Unpin>(r: &mut R, w: &mut OwnedWriteHalf, line: &str) -> String {
        w.write_all(line.as_bytes()).await.expect("writes");
        response(r).await
    }

    #[tokio::test]
    async fn captures_with_dot_unstuffing_and_bare_from() {
        let sink = SmtpSink::start().await;
        let (mut r, mut w) = connect(&sink).await;
        assert!(say(&mut r, &mut w, "EHLO me\r\n").await.contains("250 SIZE"));
        assert!(say(&mut r, &mut w, "MAIL FROM:<a@example.com> BODY=8BITMIME\r\n").await.starts_with("250"));
        assert!(say(&mut r, &mut w, "RCPT TO:<b@example.com>\r\n").await.starts_with("250"));
        assert!(say(&mut r, &mut w, "DATA\r\n").await.starts_with("354"));
        let body = "From: a@example.com\r\nSubject: x\r\n\r\n..leading dot\r\n.\r\n";
        assert!(say(&mut r, &mut w, body).await.starts_with("250"));
        assert!(say(&mut r, &mut w, "QUIT\r\n").await.starts_with("221"));
        let got = sink.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].mail_from, "a@example.com");
        assert_eq!(got[0].rcpt_to, vec!["b@example.com".to_string()]);
        assert_eq!(got[0].raw, b"From: a@example.com\r\nSubject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(got[0].parse().from[0].address, "a@example.com");
    }

    #[tokio::test]
    async fn odd_input_gets_errors_not_panics() {
        let sink = SmtpSink::start().await;
        let (mut r, mut w) = connect(&sink).await;
        assert!(say(&mut r, &mut w, "MAIL FROM:<a@b>\r\n").await.starts_with("503"));
        assert!(say(&mut r, &mut w, "\r\n").await.starts_with("500"));
        assert!(say(&mut r, &mut w, "\u{0}\u{ff}garbage\r\n").await.starts_with("502"));
        let long = format!("EHLO {}\r\n", "x".repeat(10_000));
        assert!(say(&mut r, &mut w, &long).await.starts_with("500"));
        assert!(say(&mut r, &mut w, "HELO me\r\n").await.starts_with("250"));
        assert!(say(&mut r, &mut w, "MAIL\r\n").await.starts_with("501"));
        assert!(say(&mut r, &mut w, "RCPT TO:<x@y>\r\n").await.starts_with("503"));
        assert!(say(&mut r, &mut w, "MAIL FROM:<>\r\n").await.starts_with("250"));
        assert!(say(&mut r, &mut w, "MAIL FROM:<a@b>\r\n").await.starts_with("503"));
        assert!(say(&mut r, &mut w, "DATA\r\n").await.starts_with("554"));
        assert!(say(&mut r, &mut w, "RSET\r\n").await.starts_with("250"));
        assert!(say(&mut r, &mut w, "AUTH PLAIN AGZvbwBiYXI=\r\n").await.starts_with("502"));
        assert!(say(&mut r, &mut w, "NOOP\r\n").await.starts_with("250"));
        // The client vanishing mid-message is not a message.
        assert!(say(&mut r, &mut w, "MAIL FROM:<a@b>\r\n").await.starts_with("250"));
        assert!(say(&mut r, &mut w, "RCPT TO:<c@d>\r\n").await.starts_with("250"));
        assert!(say(&mut r, &mut w, "DATA\r\n").await.starts_with("354"));
        w.write_all(b"Subject: half").await.expect("writes");
        drop(w);
        drop(r);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(sink.messages().is_empty());
        // Still serving.
        let (mut r, mut w) = connect(&sink).await;
        assert!(say(&mut r, &mut w, "NOOP\r\n").await.starts_with("250"));
    }

    #[tokio::test]
    async fn modes_answer_as_told_and_down_refuses() {
        let sink = SmtpSink::start().await;
        let (mut r, mut w) = connect(&sink).await;
        say(&mut r, &mut w, "EHLO me\r\n").await;
        sink.set_mode(Mode::PermFail).await;
        say(&mut r, &mut w, "MAIL FROM:<a@b>\r\n").await;
        assert!(say(&mut r, &mut w, "RCPT TO:<c@d>\r\n").await.starts_with("550"));
        sink.set_mode(Mode::TempFailAtRcpt).await;
        assert!(say(&mut r, &mut w, "RCPT TO:<c@d>\r\n").await.starts_with("451"));
        sink.set_mode(Mode::TempFail).await;
        assert!(say(&mut r, &mut w, "RCPT TO:<c@d>\r\n").await.starts_with("250"));
        say(&mut r, &mut w, "DATA\r\n").await;
        assert!(say(&mut r, &mut w, "x\r\n.\r\n").await.starts_with("451"));
        assert!(sink.messages().is_empty());
        assert_eq!(sink.refusals(), 3);

        sink.set_mode(Mode::Down).await;
        let mut buf = [0u8; 16];
        assert_eq!(r.read(&mut buf).await.unwrap_or(0), 0, "open connections are dropped");
        assert!(TcpStream::connect(sink.addr()).await.is_err(), "new connections are refused");
        sink.set_mode(Mode::Accept).await;
        let (mut r, mut w) = connect(&sink).await;
        assert!(say(&mut r, &mut w, "NOOP\r\n").await.starts_with("250"));
    }

    #[tokio::test]
    async fn each_whole_message_carries_the_verdict_it_got() {
        let sink = SmtpSink::start().await;
        let (mut r, mut w) = connect(&sink).await;
        say(&mut r, &mut w, "EHLO me\r\n").await;
        for _ in 0..2 {
            say(&mut r, &mut w, "MAIL FROM:<a@b>\r\n").await;
            say(&mut r, &mut w, "RCPT TO:<c@d>\r\n").await;
            say(&mut r, &mut w, "DATA\r\n").await;
            if sink.deliveries().is_empty() {
                assert!(say(&mut r, &mut w, "Message-ID: <one@x>\r\n\r\nhi\r\n.\r\n").await.starts_with("250"));
                sink.set_mode(Mode::StallData).await;
            } else {
                w.write_all(b"Message-ID: <two@x>\r\n\r\nhi\r\n.\r\n").await.expect("writes");
            }
        }
        sink.wait_for(usize::MAX, Duration::from_millis(200)).await;
        let got: Vec<(Option<String>, Verdict)> = sink.deliveries().iter().map(|d| (d.message.parse().message_id, d.verdict)).collect();
        assert_eq!(got, vec![(Some("one@x".into()), Verdict::Accepted), (Some("two@x".into()), Verdict::Stalled)]);
        assert_eq!((sink.messages().len(), sink.stalled().len(), sink.unknown_outcomes()), (1, 1, 1));
    }

    #[tokio::test]
    async fn auth_plain_and_login() {
        let sink = SmtpSink::start_with_auth("user", "secret-pass").await;
        let (mut r, mut w) = connect(&sink).await;
        assert!(say(&mut r, &mut w, "EHLO me\r\n").await.contains("AUTH PLAIN LOGIN"));
        assert!(say(&mut r, &mut w, "MAIL FROM:<a@b>\r\n").await.starts_with("530"));
        let wrong = BASE64.encode(b"\0user\0nope");
        assert!(say(&mut r, &mut w, &format!("AUTH PLAIN {wrong}\r\n")).await.starts_with("535"));
        assert!(say(&mut r, &mut w, "AUTH LOGIN\r\n").await.starts_with("334"));
        assert!(say(&mut r, &mut w, &format!("{}\r\n", BASE64.encode("user"))).await.starts_with("334"));
        assert!(say(&mut r, &mut w, &format!("{}\r\n", BASE64.encode("secret-pass"))).await.starts_with("235"));
        assert!(say(&mut r, &mut w, "MAIL FROM:<a@b>\r\n").await.starts_with("250"));
        assert_eq!(sink.logins(), vec!["user".to_string()]);
    }
}
