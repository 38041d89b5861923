//! What every email needs besides its data: the sales-ops templates, the signer of links to
//! the call page, the public address those links point to, and the sender. Workflows compose
//! their emails with it; it holds no database and no state.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use lettre::message::Mailbox;

use super::ics;
use super::templates::{EmailContext, RenderedEmail, TemplateError, Templates};
use crate::links::LinkSigner;

pub struct Composer {
    pub templates: Arc<Templates>,
    pub links: Arc<LinkSigner>,
    /// The address reps' links point to (`http.public_url`).
    pub public_url: String,
    /// How long a link in an email works.
    pub link_ttl: TimeDelta,
    /// The sender, also the invite's organizer.
    pub from: Mailbox,
}

impl Composer {
    /// The signed link to a call's page, valid for the link lifetime from `now`.
    pub fn call_url(&self, call_id: i64, now: DateTime<Utc>) -> String {
        let token = self.links.sign(call_id, now + self.link_ttl);
        format!("{}/calls/{call_id}?t={token}", self.public_url.trim_end_matches('/'))
    }

    /// The host part of invite UIDs and Message-IDs.
    pub fn host(&self) -> String {
        ics::uid_host(&self.public_url)
    }

    pub fn render(&self, ctx: &EmailContext) -> Result<RenderedEmail, TemplateError> {
        self.templates.render(ctx)
    }
}
