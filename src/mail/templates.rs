//! Email templates that sales ops can reword: `config/templates/`, rendered with minijinja.
//!
//! Each email kind has three templates: `<kind>.subject.txt` (one line), `<kind>.txt` (plain
//! text) and `<kind>.html`; `recap.txt` and `recap.html` hold the recap they include, and
//! `layout.html` the HTML frame. A missing template directory means the copies compiled into
//! the binary; a present one may override any file and add partials of its own (`*.txt`,
//! `*.html`), the rest come from the compiled-in copies.
//!
//! Escaping follows the file name: `.html` escapes every value for HTML (CRM text can hold
//! anything), `.subject.txt` turns line breaks in values into spaces (a header must stay one
//! line), other `.txt` prints values as they are. Printing an undefined value is an error, so
//! a misspelt field fails `firstcall config check` instead of vanishing from an email.

mod context;
mod filters;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, escape_formatter};
use sha2::Digest;

pub use context::{
    AlertInfo, CoverInfo, EmailContext, EmailKind, EscalationInfo, PromiseInfo, RecipientRole, days_from, duration_in_words, local_date,
    local_time, overdue_in_words,
};

use crate::recap::Recap;

/// The templates compiled into the binary, by file name.
const BUILT_IN: &[(&str, &str)] = &[
    ("layout.html", include_str!("../../config/templates/layout.html")),
    ("recap.html", include_str!("../../config/templates/recap.html")),
    ("recap.txt", include_str!("../../config/templates/recap.txt")),
    ("first_call.subject.txt", include_str!("../../config/templates/first_call.subject.txt")),
    ("first_call.txt", include_str!("../../config/templates/first_call.txt")),
    ("first_call.html", include_str!("../../config/templates/first_call.html")),
    ("reminder.subject.txt", include_str!("../../config/templates/reminder.subject.txt")),
    ("reminder.txt", include_str!("../../config/templates/reminder.txt")),
    ("reminder.html", include_str!("../../config/templates/reminder.html")),
    ("escalation.subject.txt", include_str!("../../config/templates/escalation.subject.txt")),
    ("escalation.txt", include_str!("../../config/templates/escalation.txt")),
    ("escalation.html", include_str!("../../config/templates/escalation.html")),
    ("cancellation.subject.txt", include_str!("../../config/templates/cancellation.subject.txt")),
    ("cancellation.txt", include_str!("../../config/templates/cancellation.txt")),
    ("cancellation.html", include_str!("../../config/templates/cancellation.html")),
    ("reassigned.subject.txt", include_str!("../../config/templates/reassigned.subject.txt")),
    ("reassigned.txt", include_str!("../../config/templates/reassigned.txt")),
    ("reassigned.html", include_str!("../../config/templates/reassigned.html")),
    ("context_update.subject.txt", include_str!("../../config/templates/context_update.subject.txt")),
    ("context_update.txt", include_str!("../../config/templates/context_update.txt")),
    ("context_update.html", include_str!("../../config/templates/context_update.html")),
    ("promise_reminder.subject.txt", include_str!("../../config/templates/promise_reminder.subject.txt")),
    ("promise_reminder.txt", include_str!("../../config/templates/promise_reminder.txt")),
    ("promise_reminder.html", include_str!("../../config/templates/promise_reminder.html")),
    ("promise_escalation.subject.txt", include_str!("../../config/templates/promise_escalation.subject.txt")),
    ("promise_escalation.txt", include_str!("../../config/templates/promise_escalation.txt")),
    ("promise_escalation.html", include_str!("../../config/templates/promise_escalation.html")),
    ("manager_alert.subject.txt", include_str!("../../config/templates/manager_alert.subject.txt")),
    ("manager_alert.txt", include_str!("../../config/templates/manager_alert.txt")),
    ("manager_alert.html", include_str!("../../config/templates/manager_alert.html")),
    ("check_in.subject.txt", include_str!("../../config/templates/check_in.subject.txt")),
    ("check_in.txt", include_str!("../../config/templates/check_in.txt")),
    ("check_in.html", include_str!("../../config/templates/check_in.html")),
];

/// The escaping mode of subject templates: values lose their line breaks.
const SUBJECT_ESCAPE: &str = "subject";
/// Longest subject sent; longer ones are cut with an ellipsis.
const SUBJECT_MAX_CHARS: usize = 200;

/// A template that cannot be read, compiled or rendered: which file, which line, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TemplateError {
    /// The file on disk, or `built-in <name>` for a compiled-in copy.
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// Where a template came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateOrigin {
    Disk(PathBuf),
    BuiltIn,
}

/// One email, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, no CR or LF.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The compiled templates, ready to render. Cheap to share (`Arc`) between workers.
pub struct Templates {
    env: Environment<'static>,
    origins: BTreeMap<String, TemplateOrigin>,
    /// SHA-256 of every template's name and source, in name order: what the configuration
    /// version covers of the wording.
    digest: [u8; 32],
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates").field("origins", &self.origins).finish_non_exhaustive()
    }
}

impl Templates {
    /// Loads `dir/*.html` and `dir/*.txt`, with the compiled-in copy for any template the
    /// directory lacks, or only compiled-in copies when `dir` does not exist. Every template is
    /// compiled here, so a syntax error stops start-up (or `config check`) with file and line.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let mut sources: BTreeMap<String, (String, TemplateOrigin)> = BTreeMap::new();
        if dir.exists() {
            let read_err =
                |path: &Path, e: std::io::Error| TemplateError { file: path.display().to_string(), line: None, reason: e.to_string() };
            let mut paths = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
                let path = entry.map_err(|e| read_err(dir, e))?.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
                if name.starts_with('.') || !(name.ends_with(".html") || name.ends_with(".txt")) || !path.is_file() {
                    continue;
                }
                paths.push((name, path));
            }
            for (name, path) in paths {
                let source = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
                sources.insert(name, (source, TemplateOrigin::Disk(path)));
            }
        }
        for (name, source) in BUILT_IN {
            sources.entry(name.to_string()).or_insert_with(|| (source.to_string(), TemplateOrigin::BuiltIn));
        }

        let mut digest = sha2::Sha256::new();
        for (name, (source, _)) in &sources {
            for part in [name.as_bytes(), source.as_bytes()] {
                digest.update((part.len() as u64).to_be_bytes());
                digest.update(part);
            }
        }
        let mut templates = Templates { env: environment(), origins: BTreeMap::new(), digest: digest.finalize().into() };
        for (name, (source, origin)) in sources {
            templates.origins.insert(name.clone(), origin);
            if let Err(e) = templates.env.add_template_owned(name, source) {
                return Err(templates.error(e));
            }
        }
        Ok(templates)
    }

    /// Only the compiled-in templates.
    pub fn builtin() -> Result<Templates, TemplateError> {
        Templates::load(Path::new("/nonexistent/firstcall/templates"))
    }

    /// SHA-256 of the templates' names and sources.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Where each template came from, by name.
    pub fn origins(&self) -> &BTreeMap<String, TemplateOrigin> {
        &self.origins
    }

    /// Renders the subject, text and HTML of `ctx.kind`.
    pub fn render(&self, ctx: &EmailContext) -> Result<RenderedEmail, TemplateError> {
        let kind = ctx.kind.as_str();
        let value = Value::from(Serde(ctx));
        let subject = self.render_named(&format!("{kind}.subject.txt"), &value)?;
        Ok(RenderedEmail {
            subject: one_line(&subject),
            text: self.render_named(&format!("{kind}.txt"), &value)?,
            html: self.render_named(&format!("{kind}.html"), &value)?,
        })
    }

    /// The recap as an HTML fragment (a `<div>`, no `<html>` frame) for the call page to embed:
    /// the same `recap.html` the emails include, escaped the same way.
    pub fn render_recap_html_fragment(&self, recap: &Recap) -> Result<String, TemplateError> {
        let value = minijinja::context! { recap => Serde(recap) };
        self.render_named("recap.html", &value)
    }

    /// The recap as plain text (`recap.txt`), as the emails include it.
    pub fn render_recap_text(&self, recap: &Recap) -> Result<String, TemplateError> {
        let value = minijinja::context! { recap => Serde(recap) };
        self.render_named("recap.txt", &value)
    }

    /// Loads the templates from `dir` and renders each against the sample recaps: what start-up,
    /// a reload and `config check` accept.
    pub fn load_checked(dir: &Path) -> Result<Templates, TemplateError> {
        let templates = Templates::load(dir)?;
        templates.check()?;
        Ok(templates)
    }

    /// Renders every email kind, and the recap fragment, with the sample deal (with and without
    /// a proposal): what `firstcall config check` runs after an edit.
    pub fn check(&self) -> Result<(), TemplateError> {
        for ctx in sample_contexts() {
            self.render(&ctx)?;
            // As sales ops get it when the CRM named an address firstcall may not email.
            let fallback_reason = Some("the owner address eve@elsewhere.example is not in the rep directory".into());
            self.render(&EmailContext { fallback_reason, ..ctx.clone() })?;
            // As the delegate gets it while the rep is out of office.
            self.render(&EmailContext { covering: Some(sample_cover()), ..ctx })?;
        }
        for recap in [sample_recap(), sample_recap_without_proposal()] {
            self.render_recap_html_fragment(&recap)?;
        }
        Ok(())
    }

    fn render_named(&self, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        let template = self.env.get_template(name).map_err(|e| self.error(e))?;
        template.render(ctx).map_err(|e| self.error(e))
    }

    /// Reports the innermost template error (an error inside an included or extended template
    /// is wrapped by the one that includes it), and where it was included from.
    fn error(&self, e: minijinja::Error) -> TemplateError {
        let mut chain = vec![&e];
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            if let Some(inner) = s.downcast_ref::<minijinja::Error>() {
                chain.push(inner);
            }
            source = s.source();
        }
        let located: Vec<&minijinja::Error> = chain.iter().copied().filter(|e| e.name().is_some()).collect();
        let cause = located.last().copied().unwrap_or(&e);
        let mut reason = match cause.detail() {
            Some(detail) => format!("{}: {detail}", cause.kind()),
            None => cause.kind().to_string(),
        };
        if located.len() > 1 {
            let outer = located[0];
            let at = outer.line().map_or_else(String::new, |l| format!(":{l}"));
            reason.push_str(&format!(" (included from {}{at})", self.file_of(outer.name())));
        }
        TemplateError { file: self.file_of(cause.name()), line: cause.line(), reason }
    }

    fn file_of(&self, name: Option<&str>) -> String {
        match name {
            Some(name) => match self.origins.get(name) {
                Some(TemplateOrigin::Disk(path)) => path.display().to_string(),
                Some(TemplateOrigin::BuiltIn) => format!("built-in {name}"),
                None => name.to_string(),
            },
            None => "templates".to_string(),
        }
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_debug(false);
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // Text templates are easier to lay out when block tags leave no blank lines behind.
    if let Ok(syntax) = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build() {
        env.set_syntax(syntax);
    }
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".subject.txt") {
            AutoEscape::Custom(SUBJECT_ESCAPE.into())
        } else if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(|out, state, value| match state.auto_escape() {
        AutoEscape::Custom(mode) if mode == SUBJECT_ESCAPE => {
            let text = if value.is_none() { String::new() } else { value.to_string() };
            out.write_str(&one_line(&text)).map_err(minijinja::Error::from)
        }
        // Like minijinja's HTML escaping, but `/` stays as it is: every attribute here is
        // quoted, and links and timezone names read better unmangled.
        AutoEscape::Html if !value.is_safe() => out.write_str(&escape_html(&value.to_string())).map_err(minijinja::Error::from),
        _ => escape_formatter(out, state, value),
    });
    filters::register(&mut env);
    env
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// A subject is one line of at most [`SUBJECT_MAX_CHARS`].
fn one_line(s: &str) -> String {
    crate::recap::format::one_line(s, SUBJECT_MAX_CHARS)
}

fn sample_recap() -> Recap {
    crate::recap::build(&crate::recap::sample::sample_input())
}

fn sample_recap_without_proposal() -> Recap {
    crate::recap::build(&crate::recap::sample::sample_input_without_proposal())
}

/// One context per email kind, built from the sample deal, plus a first-call email without a
/// proposal: what [`Templates::check`] renders and the golden files hold.
pub fn sample_contexts() -> Vec<EmailContext> {
    use chrono::Duration;
    let url = "https://firstcall.example/calls/42?t=signed-token";
    vec![
        EmailContext::first_call(sample_recap(), url),
        EmailContext::first_call(sample_recap_without_proposal(), url),
        EmailContext::reminder(sample_recap(), url, 2, Some(Duration::minutes(200))),
        EmailContext::escalation(
            sample_recap(),
            url,
            EscalationInfo { level: 1, recipient_role: RecipientRole::Manager, recipient_name: Some("Morgan Reyes".into()), note: None },
            Some(Duration::hours(27)),
        ),
        EmailContext::cancellation(sample_recap(), url),
        // The call moved from Jordan Park to Ana Lima; the email goes to Jordan.
        EmailContext::reassigned(sample_recap(), url, "Jordan Park"),
        EmailContext::context_update(
            sample_recap(),
            url,
            Some("HubSpot".into()),
            vec![
                "New requirement: Audit log export (should)".into(),
                "Decision maker on file: Dana Whitfield (COO)".into(),
                "Gap closed: No proposal is on file for this deal.".into(),
            ],
        ),
        EmailContext::promise_reminder(sample_recap(), url, 2, sample_promise(None)),
        EmailContext::promise_escalation(
            sample_recap(),
            url,
            EscalationInfo { level: 1, recipient_role: RecipientRole::Manager, recipient_name: Some("Morgan Reyes".into()), note: None },
            sample_promise(Some("3 days")),
        ),
        EmailContext::manager_alert(
            sample_recap(),
            url,
            AlertInfo {
                headline: "A promise to Northwind Health slipped past the date the customer needs it by (Tue 15 Dec 2026)".into(),
                changes: vec!["New date: Mon 11 Jan 2027 (was Mon 14 Dec 2026)".into(), "Why: Okta tenant not provisioned yet".into()],
                by: "ana.lima@seller.example".into(),
                recipient_name: Some("Morgan Reyes".into()),
                note: None,
            },
            Some(sample_promise(None)),
        ),
        EmailContext::check_in(
            sample_recap(),
            "https://firstcall.example/calls/42?t=signed-token#check-in",
            vec![
                "Delivered Fri 11 Dec 2026, promised for Mon 14 Dec 2026: SAML single sign-on with Okta, live for all 40 users".into(),
                "Dropped Tue 15 Dec 2026, promised for Fri 18 Dec 2026: Weekly usage report (why: replaced by the built-in dashboard)"
                    .into(),
            ],
        ),
        // The proposal and the order changed after the recap went out.
        EmailContext::context_update(
            sample_recap(),
            url,
            None,
            vec![
                "Requirement changed: Audit log export (must, needed by Fri 15 Jan 2027) (was: Audit log export (should))".into(),
                "Commitment moved: SAML SSO with the Okta connector: Mon 1 Feb 2027 → Mon 15 Feb 2027".into(),
                "Ordered item changed: Platform seats, 50 × 299.00 USD (was 40 × 299.00 USD)".into(),
            ],
        ),
        // Ana Lima is out of office: the reminder goes to Jordan Park, who covers.
        EmailContext { covering: Some(sample_cover()), ..EmailContext::reminder(sample_recap(), url, 1, None) },
        // Ana Lima owes the promise and is out of office: its reminder goes to Jordan Park.
        EmailContext { covering: Some(sample_cover()), ..EmailContext::promise_reminder(sample_recap(), url, 1, sample_promise(None)) },
    ]
}

/// The sample rep is out of office and Jordan Park covers.
fn sample_cover() -> CoverInfo {
    CoverInfo { rep_name: "Ana Lima".into(), delegate_name: "Jordan Park".into(), until: "Fri 18 Dec 2026".into() }
}

/// The sample promise of the promise emails; `overdue_by` makes it an overdue one.
fn sample_promise(overdue_by: Option<&str>) -> PromiseInfo {
    PromiseInfo {
        text: "SAML single sign-on with Okta, live for all 40 users".into(),
        deliver_by: Some("Mon 14 Dec 2026".into()),
        due_in: Some(if overdue_by.is_some() { "3 days ago" } else { "tomorrow" }.into()),
        overdue_by: overdue_by.map(String::from),
        answers: vec!["Single sign-on through our Okta tenant".into()],
        must_have: true,
        need_by: Some("Tue 15 Dec 2026".into()),
        state: "open".into(),
        reason: None,
        owner_name: "Sam Okafor".into(),
        url: "https://firstcall.example/calls/42?t=signed-token#promises".into(),
    }
}

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod tests;
