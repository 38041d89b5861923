//! One SMTP conversation: reads commands, answers them as the sink's current [`Mode`] says,
//! and records what it accepted. Odd input gets an SMTP error reply, never a panic.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

use super::{Captured, Mode, Shared, Verdict};

/// Longest command line taken (RFC 5321 asks for 512; some clients send long parameters).
const MAX_COMMAND_LINE: usize = 4096;
/// Longest message line taken (RFC 5321 says 1000; anything longer still ends the message cleanly).
const MAX_DATA_LINE: usize = 1 << 20;
/// Largest message kept; larger ones are read to the end and refused with 552.
const MAX_MESSAGE: usize = 32 << 20;
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

enum Line {
    Eof,
    TooLong,
    Text(Vec<u8>),
}

/// Reads one line (with its line ending), keeping at most `max` bytes; a longer line is read to
/// its end and reported as [`Line::TooLong`]. A line cut off by the end of input counts as end
/// of input: the client went away mid-line.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, max: usize) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = match tokio::time::timeout(IDLE_TIMEOUT, reader.fill_buf()).await {
            Ok(r) => r?,
            Err(_) => return Ok(Line::Eof),
        };
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let used = chunk.len();
        if !too_long && line.len() + used <= max {
            line.extend_from_slice(chunk);
        } else {
            too_long = true;
            line.clear();
        }
        reader.consume(used);
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Text(line) });
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

struct Transaction {
    mail_from: String,
    rcpt_to: Vec<String>,
}

pub(super) struct Session {
    shared: Arc<Shared>,
    greeted: bool,
    authenticated: bool,
    transaction: Option<Transaction>,
}

impl Session {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Session { shared, greeted: false, authenticated: false, transaction: None }
    }

    pub(super) async fn run(mut self, stream: TcpStream) -> io::Result<()> {
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);
        reply(&mut writer, "220 testkit ESMTP capture server ready").await?;
        loop {
            let line = match read_line(&mut reader, MAX_COMMAND_LINE).await? {
                Line::Eof => return Ok(()),
                Line::TooLong => {
                    reply(&mut writer, "500 5.5.2 line too long").await?;
                    continue;
                }
                Line::Text(line) => line,
            };
            let line = String::from_utf8_lossy(trim_eol(&line)).into_owned();
            let (verb, arg) = match line.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
                None => (line.trim().to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "EHLO" => {
                    self.greeted = true;
                    self.transaction = None;
                    let mut lines = vec!["250-testkit greets you".to_string(), "250-8BITMIME".into(), "250-PIPELINING".into()];
                    lines.push("250-SMTPUTF8".into());
                    if self.shared.credentials.is_some() {
                        lines.push("250-AUTH PLAIN LOGIN".into());
                    }
                    lines.push(format!("250 SIZE {MAX_MESSAGE}"));
                    reply(&mut writer, &lines.join("\r\n")).await?;
                }
                "HELO" => {
                    self.greeted = true;
                    self.transaction = None;
                    reply(&mut writer, "250 testkit").await?;
                }
                "AUTH" => {
                    let answer = self.auth(&arg, &mut reader, &mut writer).await?;
                    reply(&mut writer, answer).await?;
                }
                "MAIL" => {
                    let answer = self.mail(&arg);
                    reply(&mut writer, answer).await?;
                }
                "RCPT" => {
                    let answer = self.rcpt(&arg);
                    reply(&mut writer, answer).await?;
                }
                "DATA" => {
                    if !self.data(&mut reader, &mut writer).await? {
                        return Ok(());
                    }
                }
                "RSET" => {
                    self.transaction = None;
                    reply(&mut writer, "250 2.0.0 reset").await?;
                }
                "NOOP" => reply(&mut writer, "250 2.0.0 ok").await?,
                "VRFY" => reply(&mut writer, "252 2.5.0 cannot verify, will try").await?,
                "QUIT" => {
                    reply(&mut writer, "221 2.0.0 bye").await?;
                    return Ok(());
                }
                "" => reply(&mut writer, "500 5.5.2 empty command").await?,
                _ => reply(&mut writer, "502 5.5.1 command not implemented").await?,
            }
        }
    }

    fn mail(&mut self, arg: &str) -> &'static str {
        if !self.greeted {
            return "503 5.5.1 say EHLO first";
        }
        if self.shared.credentials.is_some() && !self.authenticated {
            return "530 5.7.0 authentication required";
        }
        if self.transaction.is_some() {
            return "503 5.5.1 nested MAIL command";
        }
        match path_argument(arg, "FROM:") {
            Some(from) => {
                self.transaction = Some(Transaction { mail_from: from, rcpt_to: Vec::new() });
                "250 2.1.0 sender ok"
            }
            None => "501 5.5.4 syntax: MAIL FROM:<address>",
        }
    }

    fn rcpt(&mut self, arg: &str) -> &'static str {
        let Some(transaction) = self.transaction.as_mut() else {
            return "503 5.5.1 need MAIL before RCPT";
        };
        let Some(to) = path_argument(arg, "TO:").filter(|a| !a.is_empty()) else {
            return "501 5.5.4 syntax: RCPT TO:<address>";
        };
        match self.shared.mode() {
            Mode::TempFailAtRcpt => {
                self.shared.refused();
                "451 4.3.0 try again later"
            }
            Mode::PermFail => {
                self.shared.refused();
                "550 5.1.1 mailbox unavailable"
            }
            _ => {
                transaction.rcpt_to.push(to);
                "250 2.1.5 recipient ok"
            }
        }
    }

    /// Runs one DATA exchange; `false` when the connection is finished (client gone or stalled).
    async fn data<R: AsyncBufRead + Unpin>(&mut self, reader: &mut R, writer: &mut OwnedWriteHalf) -> io::Result<bool> {
        match &self.transaction {
            None => {
                reply(writer, "503 5.5.1 need MAIL before DATA").await?;
                return Ok(true);
            }
            Some(t) if t.rcpt_to.is_empty() => {
                reply(writer, "554 5.5.1 no valid recipients").await?;
                return Ok(true);
            }
            Some(_) => {}
        }
        reply(writer, "354 end data with <CR><LF>.<CR><LF>").await?;
        let mut raw = Vec::new();
        let mut oversized = false;
        loop {
            match read_line(reader, MAX_DATA_LINE).await? {
                Line::Eof => return Ok(false),
                Line::TooLong => oversized = true,
                Line::Text(line) => {
                    if trim_eol(&line) == b"." {
                        break;
                    }
                    let line = line.strip_prefix(b".").unwrap_or(&line);
                    if raw.len() + line.len() > MAX_MESSAGE {
                        oversized = true;
                    } else {
                        raw.extend_from_slice(line);
                    }
                }
            }
        }
        let Some(transaction) = self.transaction.take() else {
            return Ok(true);
        };
        if oversized {
            reply(writer, "552 5.3.4 message too big").await?;
            return Ok(true);
        }
        let captured = Captured { mail_from: transaction.mail_from, rcpt_to: transaction.rcpt_to, raw };
        match self.shared.mode() {
            Mode::TempFail => {
                self.shared.refused();
                reply(writer, "451 4.3.0 temporary failure, try again later").await?
            }
            Mode::PermFailAtData => {
                self.shared.refused();
                reply(writer, "554 5.6.0 message refused").await?
            }
            Mode::StallData => {
                self.shared.deliver(captured, Verdict::Stalled);
                // Never answer; wait for the client to give up.
                while !matches!(read_line(reader, MAX_COMMAND_LINE).await?, Line::Eof) {}
                return Ok(false);
            }
            _ => {
                // Cut until the 250 is out: a connection dropped meanwhile (this task is
                // cancelled when the sink goes down) leaves it so.
                let seq = self.shared.deliver(captured, Verdict::Cut);
                reply(writer, "250 2.0.0 queued").await?;
                self.shared.settle(seq, Verdict::Accepted);
            }
        }
        Ok(true)
    }

    async fn auth<R: AsyncBufRead + Unpin>(&mut self, arg: &str, reader: &mut R, writer: &mut OwnedWriteHalf) -> io::Result<&'static str> {
        let Some((username, password)) = self.shared.credentials.clone() else {
            return Ok("502 5.5.1 AUTH not available");
        };
        if self.authenticated {
            return Ok("503 5.5.1 already authenticated");
        }
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_string())),
            None => (arg.to_ascii_uppercase(), None),
        };
        let given = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(i) => Some(i),
                    None => challenge(reader, writer, "334 ").await?,
                };
                response.and_then(|r| decode(&r)).and_then(|plain| {
                    // authzid \0 authcid \0 password
                    let mut fields = plain.split(|&b| b == 0);
                    let (_, user, pass) = (fields.next()?, fields.next()?, fields.next()?);
                    Some((String::from_utf8_lossy(user).into_owned(), String::from_utf8_lossy(pass).into_owned()))
                })
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => Some(i),
                    None => challenge(reader, writer, "334 VXNlcm5hbWU6").await?,
                };
                match user.and_then(|u| decode(&u)) {
                    Some(user) => challenge(reader, writer, "334 UGFzc3dvcmQ6")
                        .await?
                        .and_then(|p| decode(&p))
                        .map(|pass| (String::from_utf8_lossy(&user).into_owned(), String::from_utf8_lossy(&pass).into_owned())),
                    None => None,
                }
            }
            _ => return Ok("504 5.5.4 mechanism not supported"),
        };
        Ok(match given {
            Some((u, p)) if u == username && p == password => {
                self.authenticated = true;
                self.shared.record().logins.push(u);
                "235 2.7.0 authenticated"
            }
            Some(_) => "535 5.7.8 authentication credentials invalid",
            None => "501 5.5.2 cannot decode the response",
        })
    }
}

/// Sends a `334` challenge and reads the client's answer; `None` when the client cancels (`*`)
/// or sends garbage.
async fn challenge<R: AsyncBufRead + Unpin>(reader: &mut R, writer: &mut OwnedWriteHalf, prompt: &str) -> io::Result<Option<String>> {
    reply(writer, prompt).await?;
    Ok(match read_line(reader, MAX_COMMAND_LINE).await? {
        Line::Text(line) => Some(String::from_utf8_lossy(trim_eol(&line)).into_owned()).filter(|l| l != "*"),
        Line::TooLong => None,
        Line::Eof => return Err(io::ErrorKind::UnexpectedEof.into()),
    })
}

fn decode(b64: &str) -> Option<Vec<u8>> {
    if b64 == "=" {
        return Some(Vec::new());
    }
    BASE64.decode(b64.trim()).ok()
}

/// The address in `FROM:<a@b> PARAMS` / `TO:<a@b>`; `Some("")` for the null path `<>`.
fn path_argument(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some(inner[..end].to_string())
    } else {
        let addr = rest.split_whitespace().next()?;
        Some(addr.to_string())
    }
}

/// One write per reply, as real servers do: a line split in two writes would have its end held
/// back until the client's delayed ACK, tens of milliseconds per reply.
async fn reply(writer: &mut OwnedWriteHalf, text: &str) -> io::Result<()> {
    writer.write_all(format!("{text}\r\n").as_bytes()).await?;
    writer.flush().await
}
