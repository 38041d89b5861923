//! The notes markup: requirements and commitments typed as tagged lines in CRM notes, read into
//! the proposal model ([`Requirement`], [`Commitment`]). Pure: no I/O, no clock.
//!
//! ```text
//! #need <label> [must|should|nice] [by YYYY-MM-DD]: <text>
//! #promise <label>[,<label>...] [by YYYY-MM-DD]: <text>
//! ```
//!
//! A line may start with white space and a list bullet (`- `, `* `, `• `, `1. `). Tags, labels and
//! the words before `:` are case-insensitive; labels are stored lower-cased. A line whose first
//! word is not a tag is ordinary note text. The README ("Requirements and commitments in CRM
//! notes") is the contract for reps.
//!
//! *Invariants:* nothing is dropped silently: a line that starts with a tag, or with a near-miss
//! of one (`#needs`, `#commitment`), is either an item or an [`Unreadable`] with a reason a rep
//! understands. Notes are read in time order; a later item of the same kind and label replaces
//! the earlier one in its first position, so the output order is deterministic. No input panics.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::printable;
pub use crate::proposals::model::Unreadable;
use crate::proposals::model::{Commitment, Priority, Requirement, TEXT_MAX};

/// One CRM note (or multi-line deal property) as plain text; see [`super::text_of_html`] for
/// rich-text notes.
#[derive(Debug, Clone, PartialEq)]
pub struct Note<'a> {
    pub text: &'a str,
    /// When the note was written (or last edited): notes are read in this order.
    pub at: DateTime<Utc>,
    /// Where the customer said it, e.g. "HubSpot note, 2 Oct 2026": becomes the requirements'
    /// `stated_in` and is reported with the unreadable lines.
    pub stated_in: String,
}

/// What the notes say, in the order each item first appeared.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Items {
    pub requirements: Vec<Requirement>,
    pub commitments: Vec<Commitment>,
    pub unreadable: Vec<Unreadable>,
}

/// The longest label, in characters.
pub const LABEL_MAX: usize = 64;
/// The longest line quoted back in an [`Unreadable`], in characters (a longer one is cut).
pub const LINE_MAX: usize = 200;

/// Reads the tagged lines of every note. Notes are sorted by `at` first (stable, so notes of the
/// same time keep the given order), then read line by line; a later item with the kind and label
/// of an earlier one replaces it (text, priority, dates, covers, `stated_in`) where it first
/// appeared.
pub fn read_notes<'a>(notes: impl IntoIterator<Item = Note<'a>>) -> Items {
    let mut notes: Vec<Note<'a>> = notes.into_iter().collect();
    notes.sort_by_key(|n| n.at);
    let mut items = Items::default();
    let mut need_at: HashMap<String, usize> = HashMap::new();
    let mut promise_at: HashMap<String, usize> = HashMap::new();
    for note in &notes {
        let stated_in = Some(note.stated_in.trim()).filter(|s| !s.is_empty()).map(String::from);
        for raw in note.text.split(is_line_break) {
            match read_line(raw) {
                Ok(None) => {}
                Ok(Some(Item::Need(mut r))) => {
                    r.stated_in = stated_in.clone();
                    upsert(&mut items.requirements, &mut need_at, r.id.clone(), r);
                }
                Ok(Some(Item::Promise(c))) => upsert(&mut items.commitments, &mut promise_at, c.id.clone(), c),
                Err(reason) => items.unreadable.push(Unreadable {
                    line: crate::domain::printable_up_to(raw.trim(), LINE_MAX),
                    reason,
                    stated_in: note.stated_in.clone(),
                }),
            }
        }
    }
    items
}

/// Puts `item` in place of the one with the same id, or at the end.
fn upsert<T>(list: &mut Vec<T>, index: &mut HashMap<String, usize>, id: String, item: T) {
    match index.get(&id) {
        Some(&i) => list[i] = item,
        None => {
            index.insert(id, list.len());
            list.push(item);
        }
    }
}

/// Line ends: `\n`, `\r` (so CRLF and old Mac text too) and Unicode's other line terminators.
fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Need,
    Promise,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Need => "#need",
            Kind::Promise => "#promise",
        }
    }
}

enum Item {
    Need(Requirement),
    Promise(Commitment),
}

/// `Ok(None)` for ordinary text, the item for a tagged line, the reason for one that cannot be read.
fn read_line(raw: &str) -> Result<Option<Item>, String> {
    let Some(after_hash) = strip_bullet(raw).strip_prefix('#') else {
        return Ok(None);
    };
    let end = after_hash.find(|c: char| c.is_whitespace() || c == ':').unwrap_or(after_hash.len());
    let (tag, rest) = after_hash.split_at(end);
    let kind = match tag.to_lowercase().as_str() {
        "need" => Kind::Need,
        "promise" => Kind::Promise,
        other => {
            return match near_miss(other) {
                Some(kind) => Err(format!("'#{}' is not a tag: did you mean {}?", printable(tag), kind.tag())),
                None => Ok(None),
            };
        }
    };
    read_item(kind, rest).map(Some)
}

/// The line without leading white space (and invisible characters that pasting leaves) and
/// without one list bullet: `-`, `*`, `•` or a number with `.` or `)`.
fn strip_bullet(line: &str) -> &str {
    let blank = |c: char| c.is_whitespace() || matches!(c, '\u{feff}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}');
    let line = line.trim_start_matches(blank);
    let after = if let Some(rest) = line.strip_prefix(['-', '*', '•']) {
        rest
    } else {
        let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match line[digits..].strip_prefix(['.', ')']) {
            Some(rest) if (1..=3).contains(&digits) => rest,
            _ => line,
        }
    };
    after.trim_start_matches(blank)
}

/// A hashtag that is probably a mistyped tag, and the tag meant: a word of the same stem
/// (`#needs`, `#requirement`, `#promised`, `#commitment`), `#req`, `#reqs` or `#must`, or one
/// typo away from `need` or two from `promise` with the same first letter (`#ned`, `#promsie`).
/// Other hashtags (`#q3`, `#followup`, `#next`, `#seed`) are ordinary text.
fn near_miss(tag: &str) -> Option<Kind> {
    let same_start = |word: &str| word.chars().next() == tag.chars().next();
    if ["need", "requir"].iter().any(|stem| tag.starts_with(stem)) || matches!(tag, "req" | "reqs" | "must") {
        Some(Kind::Need)
    } else if ["promis", "commit"].iter().any(|stem| tag.starts_with(stem)) {
        Some(Kind::Promise)
    } else if same_start("need") && strsim::osa_distance(tag, "need") <= 1 {
        Some(Kind::Need)
    } else if same_start("promise") && strsim::osa_distance(tag, "promise") <= 2 {
        Some(Kind::Promise)
    } else {
        None
    }
}

/// The words a `#need` may put between its label and `:`; none of them can be a label.
const KEYWORDS: [&str; 4] = ["must", "should", "nice", "by"];

/// Reads what follows the tag: `<labels> [options]: <text>`.
fn read_item(kind: Kind, rest: &str) -> Result<Item, String> {
    let tag = kind.tag();
    let (head, text) = match rest.split_once(':') {
        Some((head, text)) => (head, Some(text)),
        None => (rest, None),
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    let Some(&first) = words.first() else {
        return Err(format!("missing label: write {tag} <label>: <text>"));
    };
    let first_lower = first.to_lowercase();
    if KEYWORDS.contains(&first_lower.as_str()) {
        let example = match (kind, first_lower.as_str()) {
            (_, "by") => " by YYYY-MM-DD",
            (Kind::Need, priority) => &format!(" {priority}"),
            (Kind::Promise, _) => "",
        };
        return Err(format!("missing label before '{}': write {tag} <label>{example}: <text>", printable(first)));
    }
    let Some(text) = text else {
        return Err("missing ':' before the text".to_string());
    };

    // The labels: the first word, and more joined by commas (`sso,scim`, `sso, scim`).
    let mut labels_text = first.to_string();
    let mut used = 1;
    while let Some(next) = words.get(used) {
        let joined = labels_text.ends_with(',') || next.starts_with(',');
        if !joined || KEYWORDS.contains(&next.trim_start_matches(',').to_lowercase().as_str()) {
            break;
        }
        labels_text.push_str(next);
        used += 1;
    }
    let labels = read_labels(labels_text.trim_end_matches(','))?;
    if kind == Kind::Need && labels.len() > 1 {
        return Err(format!("a #need names one label (found {})", printable(&labels.join(","))));
    }

    let options = read_options(kind, &words[used..])?;
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let text = text.trim();
    if text.is_empty() {
        return Err("no text after ':'".to_string());
    }
    if text.chars().count() > TEXT_MAX {
        return Err(format!("the text is longer than {TEXT_MAX} characters"));
    }
    let text = text.to_string();
    let mut labels = labels.into_iter();
    let id = labels.next().unwrap_or_default();
    Ok(match kind {
        Kind::Need => {
            Item::Need(Requirement { id, text, priority: options.priority.unwrap_or(Priority::Must), need_by: options.by, stated_in: None })
        }
        Kind::Promise => {
            let mut covers = vec![id.clone()];
            for label in labels {
                if !covers.contains(&label) {
                    covers.push(label);
                }
            }
            Item::Promise(Commitment { id, text, covers, deliver_by: options.by, owner: None })
        }
    })
}

/// `sso` or `sso,scim`: each label checked and lower-cased; at least one.
fn read_labels(list: &str) -> Result<Vec<String>, String> {
    let mut labels = Vec::new();
    for label in list.split(',') {
        if label.is_empty() {
            return Err(format!("a label is missing in '{}' (write labels as sso,scim)", printable(list)));
        }
        if label.chars().count() > LABEL_MAX {
            return Err(format!("label '{}' is longer than {LABEL_MAX} characters", printable(label)));
        }
        if !label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("label '{}' may only use letters, digits, - and _", printable(label)));
        }
        if label.starts_with(['-', '_']) {
            return Err(format!("label '{}' must start with a letter or a digit", printable(label)));
        }
        labels.push(label.to_lowercase());
    }
    Ok(labels)
}

#[derive(Default)]
struct Options {
    priority: Option<Priority>,
    by: Option<NaiveDate>,
}

/// The words between the labels and `:`, in any order, each at most once. Two or more words
/// that mean nothing here are most likely text that belongs after a missing `:`.
fn read_options(kind: Kind, words: &[&str]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut problems: Vec<String> = Vec::new();
    let mut unknown = 0;
    let mut words = words.iter().map(|w| w.trim_end_matches(',')).filter(|w| !w.is_empty());
    while let Some(word) = words.next() {
        let lower = word.to_lowercase();
        let priority = match lower.as_str() {
            "must" => Some(Priority::Must),
            "should" => Some(Priority::Should),
            "nice" => Some(Priority::Nice),
            _ => None,
        };
        if let Some(p) = priority {
            match (kind, options.priority) {
                (Kind::Promise, _) => problems.push(format!("a #promise has no priority ('{}' belongs on the #need)", printable(word))),
                (Kind::Need, Some(before)) => {
                    problems.push(format!("the priority is given twice ('{}' and '{}')", before.as_str(), p.as_str()))
                }
                (Kind::Need, None) => options.priority = Some(p),
            }
        } else if lower == "by" {
            match words.next() {
                None => problems.push("'by' needs a date after it".to_string()),
                Some(date) => match (read_date(date), options.by) {
                    (Err(e), _) => problems.push(e),
                    (Ok(_), Some(_)) => problems.push("'by' is given twice".to_string()),
                    (Ok(d), None) => options.by = Some(d),
                },
            }
        } else if word.starts_with(|c: char| c.is_ascii_digit()) && word.contains(['-', '/', '.']) {
            problems.push(format!("write 'by' before the date '{}'", printable(word)));
        } else {
            unknown += 1;
            problems.push(match kind {
                Kind::Need => format!("'{}' is not a priority (must, should or nice)", printable(word)),
                Kind::Promise => format!(
                    "'{}' is not understood before ':' (separate labels with commas; only 'by YYYY-MM-DD' may follow them)",
                    printable(word)
                ),
            });
        }
    }
    if unknown >= 2 {
        return Err("missing ':' before the text".to_string());
    }
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(options),
    }
}

/// Exactly `YYYY-MM-DD`, and a real day.
fn read_date(word: &str) -> Result<NaiveDate, String> {
    let b = word.as_bytes();
    let shaped = b.len() == 10 && b[4] == b'-' && b[7] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let date = shaped.then(|| NaiveDate::parse_from_str(word, "%Y-%m-%d").ok()).flatten();
    date.ok_or_else(|| format!("'{}' is not a date (write YYYY-MM-DD)", printable(word)))
}

#[cfg(test)]
#[path = "markup_tests.rs"]
mod tests;
