//! Email: the outbox (rows written with the state change that causes them), transports
//! (SMTP, `.eml` files), templates, calendar invites, the composer that workflows render their
//! emails with, and the mailer that delivers with retries.

pub mod composer;
pub mod ics;
pub mod mailer;
pub mod message;
pub mod outbox;
pub mod templates;
pub mod transport;
