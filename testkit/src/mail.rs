//! A captured message taken apart the way a mail client would see it, built on `mail-parser`.

use mail_parser::{Address, MessageParser, MessagePart, MimeHeaders, PartType};

/// One mailbox from `From` or `To`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAddress {
    pub name: Option<String>,
    pub address: String,
}

/// The `text/calendar` body part (the invite inside `multipart/alternative`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarPart {
    /// The `method` parameter of the content type (`REQUEST`, `CANCEL`).
    pub method: Option<String>,
    /// The whole content type, e.g. `text/calendar; method=REQUEST; charset=utf-8`.
    pub content_type: String,
    pub body: String,
}

/// A part sent as an attachment (or with a file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentPart {
    pub filename: Option<String>,
    /// `type/subtype`, lower-case, without parameters.
    pub content_type: String,
    /// Decoded content.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// Without angle brackets.
    pub message_id: Option<String>,
    /// Decoded (RFC 2047 words resolved).
    pub subject: Option<String>,
    pub from: Vec<MailAddress>,
    pub to: Vec<MailAddress>,
    pub cc: Vec<MailAddress>,
    /// Top-level headers in order: name as written, value as written (folding removed, not decoded).
    pub headers: Vec<(String, String)>,
    /// The MIME tree, e.g. `multipart/mixed[multipart/alternative[text/plain,text/html],application/ics]`.
    pub structure: String,
    /// The first `text/plain` body part that is not an attachment.
    pub text: Option<String>,
    /// The first `text/html` body part that is not an attachment.
    pub html: Option<String>,
    pub calendar: Option<CalendarPart>,
    pub attachments: Vec<AttachmentPart>,
}

impl ParsedMail {
    /// The first top-level header with this name (case-insensitive), raw.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// How many top-level headers have this name (case-insensitive).
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }
}

/// Parses a message; panics with a clear message when the bytes are not a message at all.
pub fn parse(raw: &[u8]) -> ParsedMail {
    try_parse(raw).unwrap_or_else(|| panic!("not a parseable message: {:?}", String::from_utf8_lossy(&raw[..raw.len().min(500)])))
}

/// Parses a message; `None` when the bytes are not a message at all.
pub fn try_parse(raw: &[u8]) -> Option<ParsedMail> {
    let message = MessageParser::default().parse(raw)?;
    let headers = message.headers_raw().map(|(name, value)| (name.to_string(), unfold(value))).collect();
    let mut parsed = ParsedMail {
        message_id: message.message_id().map(str::to_string),
        subject: message.subject().map(str::to_string),
        from: addresses(message.from()),
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        headers,
        structure: structure(&message.parts, 0, 0),
        text: None,
        html: None,
        calendar: None,
        attachments: Vec::new(),
    };
    for part in &message.parts {
        if matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
            continue;
        }
        let ctype = content_type(part);
        let is_attachment = part.content_disposition().is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        if is_attachment || part.attachment_name().is_some() {
            parsed.attachments.push(AttachmentPart {
                filename: part.attachment_name().map(str::to_string),
                content_type: ctype,
                bytes: part.contents().to_vec(),
            });
            continue;
        }
        let text = || String::from_utf8_lossy(part.contents()).into_owned();
        match ctype.as_str() {
            "text/plain" if parsed.text.is_none() => parsed.text = Some(text()),
            "text/html" if parsed.html.is_none() => parsed.html = Some(text()),
            "text/calendar" if parsed.calendar.is_none() => {
                parsed.calendar = Some(CalendarPart {
                    method: part.content_type().and_then(|c| c.attribute("method")).map(str::to_string),
                    content_type: full_content_type(part),
                    body: text(),
                })
            }
            _ => {}
        }
    }
    Some(parsed)
}

fn addresses(address: Option<&Address<'_>>) -> Vec<MailAddress> {
    address
        .map(|a| {
            a.iter()
                .map(|addr| MailAddress { name: addr.name().map(str::to_string), address: addr.address().unwrap_or_default().to_string() })
                .collect()
        })
        .unwrap_or_default()
}

fn content_type(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(c) => match c.subtype() {
            Some(sub) => format!("{}/{}", c.ctype(), sub).to_ascii_lowercase(),
            None => c.ctype().to_ascii_lowercase(),
        },
        None => "text/plain".to_string(),
    }
}

fn full_content_type(part: &MessagePart<'_>) -> String {
    let mut s = content_type(part);
    if let Some(attributes) = part.content_type().and_then(|c| c.attributes()) {
        for a in attributes {
            s.push_str(&format!("; {}={}", a.name, a.value));
        }
    }
    s
}

fn structure(parts: &[MessagePart<'_>], index: usize, depth: usize) -> String {
    let Some(part) = parts.get(index) else {
        return "?".into();
    };
    match &part.body {
        PartType::Multipart(children) if depth < 32 => {
            let inner: Vec<String> = children.iter().map(|&c| structure(parts, c as usize, depth + 1)).collect();
            format!("{}[{}]", content_type(part), inner.join(","))
        }
        _ => content_type(part),
    }
}

fn unfold(value: &str) -> String {
    value.replace("\r\n", "").replace('\n', "").trim().to_string()
}
