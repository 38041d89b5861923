//! Typed settings, loaded in layers: the built-in defaults, `config/default.toml`,
//! `config/$FIRSTCALL_ENV.toml`, then environment variables `FIRSTCALL__SECTION__KEY`.
//! Everything is checked at load; an invalid value stops start-up with the file, key and reason.

pub mod changes;
pub mod crm;
pub mod retention;
pub mod schedule;
pub mod secrets;

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};

use crate::domain::{Currency, EmailAddress, Timezone};
pub use crm::CrmSettings;
pub use retention::RetentionSettings;
pub use schedule::{Schedule, ScheduleSettings};
pub use secrets::{Secret, SecretList};

/// The compiled-in defaults, used when no `config/default.toml` is on disk.
pub const BUILTIN_DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub mail: MailSettings,
    pub engine: EngineSettings,
    pub api: ApiSettings,
    pub links: LinkSettings,
    pub webhooks: WebhookSettings,
    pub defaults: DefaultsSettings,
    /// How long old data is kept; a configuration without the section keeps the defaults.
    #[serde(default)]
    pub retention: RetentionSettings,
    /// The CRM connectors; off until their credentials are set.
    #[serde(default)]
    pub crm: CrmSettings,
    /// The promise ledger kept after the first call.
    #[serde(default)]
    pub promises: PromiseSettings,
    /// How far a rep may move their own call (booking it, snoozing its reminders).
    #[serde(default)]
    pub controls: ControlSettings,
    /// When the proposal or the order changes after the recap went out.
    #[serde(default)]
    pub recap_changes: RecapChangeSettings,
    /// Who may sign in to the pages with a link sent by email, and for how long.
    #[serde(default)]
    pub sign_in: SignInSettings,
    #[serde(default)]
    pub schedules: Vec<ScheduleSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
    /// The address reps' links point to, e.g. `https://firstcall.example.com`.
    pub public_url: String,
    pub body_limit_bytes: usize,
    /// A client that has not sent its whole request in this time is cut off.
    pub client_timeout_secs: u64,
    /// Requests per minute a CRM source may make before getting 429 (0: no limit).
    pub rate_limit_per_minute: u32,
    /// Failed authentication attempts (webhook signatures, API tokens, dashboard logins) one
    /// client address may make within `failed_auth_window_secs` before its further failures get
    /// 429 (0: no limit). Successful requests are not counted.
    #[serde(default = "default_failed_auth_limit")]
    pub failed_auth_limit: u32,
    #[serde(default = "default_failed_auth_window_secs")]
    pub failed_auth_window_secs: u64,
    pub workers: usize,
}

fn default_io_concurrency() -> usize {
    2
}

fn default_failed_auth_limit() -> u32 {
    20
}

fn default_failed_auth_window_secs() -> u64 {
    60
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://data/firstcall.db` (embedded default) or `postgres://user@host/db`.
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
    /// Run pending migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// Connections that write webhook events, each committing a group of requests at once
    /// (0: automatic).
    #[serde(default)]
    pub intake_writers: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `firstcall=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// `file` writes `.eml` files to `outbox_dir`; `smtp` sends through `[mail.smtp]`.
    pub transport: MailTransportKind,
    /// The sender, e.g. `firstcall <firstcall@example.com>`.
    pub from: String,
    pub outbox_dir: String,
    /// The domains whose addresses may receive firstcall's mail besides the rep directory's,
    /// lower-case (`seller.example`; subdomains are not included). Empty: only the directory.
    /// A TOML array, or one comma-separated string (handy in an environment variable).
    #[serde(default, deserialize_with = "list_or_commas")]
    pub allowed_recipient_domains: Vec<String>,
    pub max_attempts: u32,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    /// Concurrent deliveries.
    pub concurrency: usize,
    /// How long one delivery may take before its outcome counts as unknown.
    pub send_timeout_secs: u64,
    pub smtp: SmtpSettings,
}

/// Email addresses written as a TOML array or as one comma-separated string (an environment
/// variable).
fn addresses_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<EmailAddress>, D::Error> {
    list_or_commas(d)?.iter().map(|a| EmailAddress::parse(a).map_err(serde::de::Error::custom)).collect()
}

/// A list of strings written as a TOML array or as one comma-separated string.
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        One(String),
    }
    Ok(match List::deserialize(d)? {
        List::Many(v) => v,
        List::One(s) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
    })
}

impl MailSettings {
    /// Whether `email`'s domain is one of `allowed_recipient_domains` (exactly: a subdomain is
    /// another domain).
    pub fn allows_domain_of(&self, email: &EmailAddress) -> bool {
        self.allowed_recipient_domains.iter().any(|d| d == email.domain())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    File,
    Smtp,
}

/// Printed with `{:?}` without its password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: SmtpTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub pool_size: u32,
    pub connect_timeout_secs: u64,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// Run the worker inside `serve`.
    pub enabled: bool,
    /// Longest wait between looks for due work, when nothing signals new work.
    pub poll_interval_ms: u64,
    /// Jobs claimed per round trip.
    pub batch_size: u32,
    /// Claim loops running at once in one process.
    pub concurrency: usize,
    /// Claim loops for jobs with work outside the database (requests to a CRM), besides
    /// `concurrency`; each runs a small batch's requests at once.
    #[serde(default = "default_io_concurrency")]
    pub io_concurrency: usize,
    /// How long a claimed job belongs to its worker; after that another worker may take it.
    pub lease_secs: u64,
    pub max_attempts: u32,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Bearer tokens for the API and dashboard (secret: set from the environment).
    #[serde(default)]
    pub tokens: SecretList,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSettings {
    /// Keys that sign reps' links; the first signs, all unexpired verify (secret).
    #[serde(default)]
    pub signing_keys: SecretList,
    /// How long a link in an email stays valid.
    pub ttl_hours: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Events whose time lies further back than this many days are refused (422); 1 to 365.
    #[serde(default = "default_max_event_age_days")]
    pub max_event_age_days: u32,
    /// Stored events the engine applies in one transaction; 1 to 5000.
    #[serde(default = "default_apply_batch_size")]
    pub apply_batch_size: u32,
    pub generic: GenericWebhook,
    pub hubspot: HubspotWebhook,
    pub pipedrive: PipedriveWebhook,
    pub salesforce: SalesforceWebhook,
}

fn default_max_event_age_days() -> u32 {
    30
}

fn default_apply_batch_size() -> u32 {
    250
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericWebhook {
    #[serde(default)]
    pub secrets: SecretList,
    pub tolerance_secs: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotWebhook {
    /// The HubSpot app's client secret(s) (secret).
    #[serde(default)]
    pub client_secrets: SecretList,
    /// Deal stages that mean closed-won (internal stage ids).
    pub closed_won_stages: Vec<String>,
    pub tolerance_secs: i64,
    /// The portal's currency: HubSpot's amount-change events carry no currency, so an amount is
    /// taken only when this is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_currency: Option<Currency>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipedriveWebhook {
    /// `user:password` pairs for HTTP basic auth (secret).
    #[serde(default)]
    pub basic_auth: SecretList,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceWebhook {
    /// Accepted 15- or 18-character org ids; outbound messages from other orgs are refused.
    #[serde(default)]
    pub organization_ids: Vec<String>,
    /// Secret URL path segments: with one set, outbound messages are accepted only at
    /// `/webhooks/salesforce/<secret>` (secret: set from the environment).
    #[serde(default)]
    pub path_secrets: SecretList,
    /// The Opportunity field that holds the owner's email, if the message includes one.
    pub owner_email_field: String,
    /// The currency of amounts in orgs without multi-currency (no `CurrencyIsoCode` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_currency: Option<Currency>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsSettings {
    /// Timezone for reps not in the directory.
    pub timezone: Timezone,
    /// Who gets calls whose rep is unknown (no rep on the order or proposal).
    pub unassigned_email: EmailAddress,
    /// Length of the call in the calendar invite.
    pub call_minutes: u32,
    /// Holidays for every schedule (`YYYY-MM-DD`).
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// `[promises]`: how the promises made to a customer are followed after the first call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromiseSettings {
    /// Business days before a promise's date that its owner is reminded, at the start of the
    /// owner's business day (the call's schedule's hours, in the owner's timezone); the day
    /// itself always gets one.
    pub remind_business_days_before: Vec<u32>,
    /// Days after the last promise of a call is delivered that the rep is asked to check in
    /// with the customer (at the start of the rep's next business day from then).
    pub check_in_after_days: u32,
}

impl Default for PromiseSettings {
    fn default() -> Self {
        PromiseSettings { remind_business_days_before: vec![5, 1], check_in_after_days: 7 }
    }
}

impl PromiseSettings {
    /// The first problem, as (key under `promises.`, reason).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let days = &self.remind_business_days_before;
        if let Some(d) = days.iter().find(|d| !(1..=60).contains(*d)) {
            return Some(("remind_business_days_before", format!("holds {d}; each lead time is between 1 and 60 business days")));
        }
        if let Some(d) = days.iter().enumerate().find_map(|(i, d)| days[..i].contains(d).then_some(d)) {
            return Some(("remind_business_days_before", format!("holds {d} twice")));
        }
        if self.check_in_after_days > 90 {
            return Some(("check_in_after_days", format!("is {}; write a number of days up to 90", self.check_in_after_days)));
        }
        None
    }
}

/// `[controls]`: what a rep may change of their own call without their manager hearing of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSettings {
    /// Business days (the call's schedule's, in the rep's timezone) past the due time the call
    /// had first that a booking or snooze may move it; the due time still follows a later one,
    /// and the rep's manager is told at once.
    pub move_business_days: u32,
    /// The furthest ahead, in days, a call may be booked or its reminders snoozed.
    pub max_days_ahead: u32,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings { move_business_days: 3, max_days_ahead: 60 }
    }
}

impl ControlSettings {
    /// The first problem, as (key under `controls.`, reason).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.move_business_days > 60 {
            return Some(("move_business_days", format!("is {}; write a number of business days up to 60", self.move_business_days)));
        }
        if !(1..=365).contains(&self.max_days_ahead) {
            return Some(("max_days_ahead", format!("is {}; write a number of days from 1 to 365", self.max_days_ahead)));
        }
        None
    }
}

/// `[recap_changes]`: how changes of the proposal or the order after the rep's recap went out
/// are gathered into one short email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecapChangeSettings {
    /// The email goes once no change has come for this many minutes...
    pub quiet_minutes: u32,
    /// ...and at the latest this many minutes after the first change.
    pub max_wait_minutes: u32,
}

impl Default for RecapChangeSettings {
    fn default() -> Self {
        RecapChangeSettings { quiet_minutes: 10, max_wait_minutes: 60 }
    }
}

impl RecapChangeSettings {
    /// The first problem, as (key under `recap_changes.`, reason).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.quiet_minutes > 1440 {
            return Some(("quiet_minutes", format!("is {}; write a number of minutes up to 1440 (a day)", self.quiet_minutes)));
        }
        if self.max_wait_minutes < self.quiet_minutes || self.max_wait_minutes > 10080 {
            return Some((
                "max_wait_minutes",
                format!(
                    "is {}; write a number of minutes from quiet_minutes ({}) up to 10080 (a week)",
                    self.max_wait_minutes, self.quiet_minutes
                ),
            ));
        }
        None
    }
}

/// `[sign_in]`: people sign in to the pages with a one-time link sent to their address: reps
/// and managers of the rep directory, and the sales-ops addresses listed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignInSettings {
    /// Sales ops: they see every call, retry jobs and emails, and preview schedule edits.
    #[serde(deserialize_with = "addresses_or_commas")]
    pub sales_ops: Vec<EmailAddress>,
    /// How long a link works (it works once).
    pub link_minutes: u32,
    /// How long a session lasts once signed in.
    pub session_hours: u32,
    /// Links asked for one address in an hour; more are refused until the hour has passed.
    pub per_address_per_hour: u32,
    /// Links asked for from one client address in an hour.
    pub per_client_per_hour: u32,
}

impl Default for SignInSettings {
    fn default() -> Self {
        SignInSettings { sales_ops: Vec::new(), link_minutes: 15, session_hours: 12, per_address_per_hour: 5, per_client_per_hour: 20 }
    }
}

impl SignInSettings {
    /// The first problem, as (key under `sign_in.`, reason).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !(1..=1440).contains(&self.link_minutes) {
            return Some(("link_minutes", format!("is {}; write a number of minutes from 1 to 1440 (a day)", self.link_minutes)));
        }
        if !(1..=720).contains(&self.session_hours) {
            return Some(("session_hours", format!("is {}; write a number of hours from 1 to 720 (30 days)", self.session_hours)));
        }
        if !(1..=1000).contains(&self.per_address_per_hour) {
            return Some(("per_address_per_hour", format!("is {}; write a number from 1 to 1000", self.per_address_per_hour)));
        }
        if !(1..=10000).contains(&self.per_client_per_hour) {
            return Some(("per_client_per_hour", format!("is {}; write a number from 1 to 10000", self.per_client_per_hour)));
        }
        None
    }

    /// Whether `email` is one of the sales-ops addresses.
    pub fn is_sales_ops(&self, email: &str) -> bool {
        self.sales_ops.iter().any(|s| s.as_str() == email)
    }
}

/// A configuration problem, located: which file (or environment variable), which key, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {key}: {reason}")]
pub struct ConfigError {
    pub origin: String,
    pub key: String,
    pub reason: String,
}

/// Settings plus the parsed pieces built from them.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub schedules: Vec<Schedule>,
    /// `mail.from`, parsed once here rather than at every send.
    pub mail_from: lettre::message::Mailbox,
    pub dir: PathBuf,
    /// Where `serve` keeps the development credentials it runs with (loopback and SQLite only,
    /// when no API token or generic webhook secret is configured); `None` otherwise.
    pub dev_credentials: Option<PathBuf>,
}

/// Where to find the config directory and which environment layer to add.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub dir: PathBuf,
    pub env_name: Option<String>,
    /// Read `FIRSTCALL__…` variables (tests turn this off).
    pub use_env: bool,
}

impl Default for ConfigSource {
    fn default() -> Self {
        ConfigSource {
            dir: std::env::var_os("FIRSTCALL_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("config")),
            env_name: std::env::var("FIRSTCALL_ENV").ok().filter(|s| !s.is_empty()),
            use_env: true,
        }
    }
}

impl ConfigSource {
    /// The layers, lowest first.
    pub fn figment(&self) -> Figment {
        let default_path = self.dir.join("default.toml");
        let mut f = if default_path.exists() {
            Figment::from(Toml::file_exact(&default_path))
        } else {
            Figment::from(Toml::string(BUILTIN_DEFAULT_TOML))
        };
        if let Some(env) = &self.env_name {
            let p = self.dir.join(format!("{env}.toml"));
            if p.exists() {
                f = f.merge(Toml::file_exact(p));
            }
        }
        if self.use_env {
            f = f.merge(Env::prefixed("FIRSTCALL__").split("__").lowercase(true));
        }
        f
    }

    pub fn load(&self) -> Result<Config, ConfigError> {
        self.load_with(self.figment())
    }

    /// Loads from `figment` (the layers plus anything a caller merged on top).
    pub fn load_with(&self, figment: Figment) -> Result<Config, ConfigError> {
        let mut settings: Settings = figment.extract().map_err(|e| from_figment(&figment, e))?;
        let locate = |key: &str, reason: String| ConfigError { origin: origin_of(&figment, key), key: key.to_string(), reason };
        validate(&settings, &figment)?;
        settings.mail.allowed_recipient_domains = recipient_domains(&settings.mail.allowed_recipient_domains)
            .map_err(|reason| locate("mail.allowed_recipient_domains", reason))?;
        let mail_from = settings
            .mail
            .from
            .parse()
            .map_err(|_| locate("mail.from", "is not a mailbox such as `firstcall <firstcall@example.com>`".into()))?;
        let schedules = parse_schedules(&settings.schedules, &settings.defaults.holidays).map_err(|reason| locate("schedules", reason))?;
        Ok(Config { settings, schedules, mail_from, dir: self.dir.clone(), dev_credentials: None })
    }
}

/// The schedules as written, parsed and checked: each one valid, names unique, one that applies
/// to every order.
fn parse_schedules(list: &[ScheduleSettings], holidays: &[String]) -> Result<Vec<Schedule>, String> {
    let mut schedules = Vec::with_capacity(list.len());
    let mut names = std::collections::HashSet::new();
    for (i, s) in list.iter().enumerate() {
        let parsed = s.parse(holidays).map_err(|e| format!("[{i}] ({}): {}: {}", s.name, e.key, e.reason))?;
        if !names.insert(parsed.name.clone()) {
            return Err(format!("[{i}]: the name '{}' is used twice", parsed.name));
        }
        schedules.push(parsed);
    }
    if !schedules.iter().any(|s| s.rule.is_catch_all()) {
        return Err("no schedule applies to every order; add one without [match] (usually named \"default\") last".into());
    }
    Ok(schedules)
}

/// An edit of the schedules as pasted for a preview: `[[schedules]]` tables as written in
/// `default.toml`, and optionally `[defaults]` with `holidays`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleEdit {
    #[serde(default)]
    schedules: Vec<ScheduleSettings>,
    defaults: Option<HolidaysEdit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidaysEdit {
    holidays: Vec<String>,
}

fn validate(s: &Settings, figment: &Figment) -> Result<(), ConfigError> {
    let fail = |key: &str, reason: &str| Err(ConfigError { origin: origin_of(figment, key), key: key.into(), reason: reason.into() });
    if !(s.database.url.starts_with("sqlite:") || s.database.url.starts_with("postgres://") || s.database.url.starts_with("postgresql://"))
    {
        return fail("database.url", "must start with sqlite: or postgres://");
    }
    if s.database.max_connections == 0 {
        return fail("database.max_connections", "must be at least 1");
    }
    if !(s.http.public_url.starts_with("http://") || s.http.public_url.starts_with("https://")) {
        return fail("http.public_url", "must start with http:// or https://");
    }
    if s.http.body_limit_bytes < 1024 {
        return fail("http.body_limit_bytes", "must be at least 1024");
    }
    if s.mail.max_attempts == 0 || s.engine.max_attempts == 0 {
        return fail(if s.mail.max_attempts == 0 { "mail.max_attempts" } else { "engine.max_attempts" }, "must be at least 1");
    }
    if s.engine.batch_size == 0 || s.engine.batch_size > 5000 {
        return fail("engine.batch_size", "must be between 1 and 5000");
    }
    if s.webhooks.apply_batch_size == 0 || s.webhooks.apply_batch_size > 5000 {
        return fail("webhooks.apply_batch_size", "must be between 1 and 5000");
    }
    if s.engine.lease_secs < 2 {
        return fail("engine.lease_secs", "must be at least 2");
    }
    if s.mail.concurrency == 0 {
        return fail("mail.concurrency", "must be at least 1");
    }
    if s.links.ttl_hours == 0 {
        return fail("links.ttl_hours", "must be at least 1");
    }
    if !(1..=365).contains(&s.webhooks.max_event_age_days) {
        return fail("webhooks.max_event_age_days", "must be between 1 and 365");
    }
    if let Some((key, reason)) = s.retention.problem() {
        return fail(&format!("retention.{key}"), &reason);
    }
    if let Some((key, reason)) = s.promises.problem() {
        return fail(&format!("promises.{key}"), &reason);
    }
    if let Some((key, reason)) = s.controls.problem() {
        return fail(&format!("controls.{key}"), &reason);
    }
    if let Some((key, reason)) = s.recap_changes.problem() {
        return fail(&format!("recap_changes.{key}"), &reason);
    }
    if let Some((key, reason)) = s.sign_in.problem() {
        return fail(&format!("sign_in.{key}"), &reason);
    }
    for (key, value) in s.crm.credentials() {
        if value.is_some()
            && let Some(file) = file_origin(figment, key)
        {
            return Err(secret_in_file(file, key));
        }
    }
    if let Some((key, reason)) = s.crm.problem() {
        return fail(&format!("crm.{key}"), &reason);
    }
    // Secrets come from the environment, never from files that get committed.
    for (key, list) in [
        ("api.tokens", &s.api.tokens),
        ("links.signing_keys", &s.links.signing_keys),
        ("webhooks.generic.secrets", &s.webhooks.generic.secrets),
        ("webhooks.hubspot.client_secrets", &s.webhooks.hubspot.client_secrets),
        ("webhooks.pipedrive.basic_auth", &s.webhooks.pipedrive.basic_auth),
        ("webhooks.salesforce.path_secrets", &s.webhooks.salesforce.path_secrets),
    ] {
        if list.is_empty() {
            continue;
        }
        if let Some(file) = file_origin(figment, key)
            && has_plain_value(list)
        {
            return Err(secret_in_file(file, key));
        }
        if let Err(reason) = list.secrets() {
            return fail(key, &reason);
        }
    }
    if let Err(reason) = path_segments(&s.webhooks.salesforce.path_secrets) {
        return fail("webhooks.salesforce.path_secrets", &reason);
    }
    let smtp = &s.mail.smtp;
    if s.mail.transport == MailTransportKind::Smtp
        && smtp.tls == SmtpTls::None
        && (smtp.username.is_some() || smtp.password.is_some())
        && !is_loopback_host(&smtp.host)
    {
        return fail(
            "mail.smtp.tls",
            &format!(
                "is \"none\", so the SMTP username and password would cross the network to {} in clear text; \
                 set mail.smtp.tls to \"starttls\" or \"tls\" (or relay through a server on this machine)",
                smtp.host
            ),
        );
    }
    if s.mail.smtp.password.is_some()
        && let Some(file) = file_origin(figment, "mail.smtp.password")
    {
        return Err(secret_in_file(file, "mail.smtp.password"));
    }
    Ok(())
}

/// A secret written in config file `file` at `key`: refused, naming the variable to use instead.
fn secret_in_file(file: String, key: &str) -> ConfigError {
    ConfigError {
        origin: file,
        key: key.into(),
        reason: format!(
            "secrets must not be written in config files; set FIRSTCALL__{} in the environment",
            key.replace('.', "__").to_uppercase()
        ),
    }
}

/// `mail.allowed_recipient_domains`, lower-cased, each checked to be a domain name: an address,
/// a wildcard or a URL is refused with the reason, so a typo cannot quietly let nobody (or
/// everybody) through.
fn recipient_domains(list: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let d = raw.trim().to_lowercase();
        let shown = crate::domain::printable(raw);
        let reason = if d.is_empty() {
            Some("is empty".to_string())
        } else if d.contains('@') {
            Some(format!("'{shown}' is an address; write its domain only, e.g. seller.example"))
        } else if d.contains('*') {
            Some(format!("'{shown}': wildcards are not supported; list each domain (subdomains are not included)"))
        } else if d.len() > 253
            || !d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
        {
            Some(format!("'{shown}' is not a domain name such as seller.example"))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(format!("[{i}]: {reason}"));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// A path secret is a URL path segment as written: characters that need no percent-encoding.
fn path_segments(list: &SecretList) -> Result<(), String> {
    let values: Vec<String> = match list {
        SecretList::None => vec![],
        SecretList::One(s) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        SecretList::Many(v) => v
            .iter()
            .filter_map(|e| match e {
                secrets::SecretEntry::Plain(p) | secrets::SecretEntry::Full { value: Some(p), .. } => Some(p.clone()),
                _ => None,
            })
            .collect(),
    };
    for (i, v) in values.iter().enumerate() {
        if !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')) {
            return Err(format!(
                "entry {i} has characters other than letters, digits, '-', '.', '_' and '~', which a URL path would encode"
            ));
        }
    }
    Ok(())
}

/// Whether `host` names this machine: `localhost`, 127.0.0.0/8 or ::1. Traffic to it never
/// leaves the machine, so plain SMTP with a password stays private.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn has_plain_value(list: &SecretList) -> bool {
    match list {
        SecretList::None => false,
        SecretList::One(_) => true,
        SecretList::Many(v) => v.iter().any(|e| !matches!(e, secrets::SecretEntry::Full { value: None, .. })),
    }
}

fn file_origin(figment: &Figment, key: &str) -> Option<String> {
    let md = figment.find_metadata(key)?;
    match &md.source {
        Some(figment::Source::File(p)) => Some(display_path(p)),
        _ => None,
    }
}

fn display_path(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

/// Names where a key's value came from: a file path, an environment variable or the defaults.
fn origin_of(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => display_path(p),
            _ if md.name.contains("environment") => format!("environment variable FIRSTCALL__{}", key.replace('.', "__").to_uppercase()),
            _ if md.name.contains("TOML") => "built-in defaults".into(),
            _ => md.name.to_string(),
        },
        None => "configuration".into(),
    }
}

fn from_figment(figment: &Figment, e: figment::Error) -> ConfigError {
    let e = e.into_iter().next().unwrap_or_else(|| figment::Error::from("unknown error".to_string()));
    let key = e.path.join(".");
    let origin = match &e.metadata {
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => display_path(p),
            _ if md.name.contains("environment") => format!("environment variable FIRSTCALL__{}", key.replace('.', "__").to_uppercase()),
            _ => md.name.to_string(),
        },
        None => origin_of(figment, &key),
    };
    ConfigError { origin, key: if key.is_empty() { "(top level)".into() } else { key }, reason: e.kind.to_string() }
}

/// What a configuration version covers of the schedules: the `[[schedules]]` as written and the
/// holidays every schedule shares. Kept with the version in the database, so what a process ran
/// can be compared with an edit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleContent {
    pub schedules: Vec<ScheduleSettings>,
    pub holidays: Vec<String>,
}

impl Config {
    /// The schedules as written, with the shared holidays.
    pub fn schedule_content(&self) -> ScheduleContent {
        ScheduleContent { schedules: self.settings.schedules.clone(), holidays: self.settings.defaults.holidays.clone() }
    }

    /// The configuration's version: `v` and 12 hex digits of the SHA-256 of the schedules as
    /// written ([`Config::schedule_content`]) and the templates' digest. Processes with the same
    /// schedules and wording have the same version, whatever else of their settings differs
    /// (secrets, addresses, pool sizes).
    pub fn version(&self, templates_digest: &[u8]) -> String {
        use sha2::Digest;
        let content = serde_json::to_vec(&self.schedule_content()).expect("schedule settings serialize");
        let mut h = sha2::Sha256::new();
        h.update((content.len() as u64).to_be_bytes());
        h.update(&content);
        h.update(templates_digest);
        format!("v{}", &hex::encode(h.finalize())[..12])
    }

    /// This configuration with the schedules (and the shared holidays, if given) of `toml` in
    /// place of its own, checked as at load: an edit pasted on the dashboard to preview. Errors
    /// name the key as in `default.toml`; `origin` is `the pasted schedules`.
    pub fn with_schedules_from(&self, toml: &str) -> Result<Config, ConfigError> {
        const ORIGIN: &str = "the pasted schedules";
        let figment = Figment::from(Toml::string(toml));
        let edit: ScheduleEdit = figment.extract().map_err(|e| ConfigError { origin: ORIGIN.into(), ..from_figment(&figment, e) })?;
        let fail = |reason: String| ConfigError { origin: ORIGIN.into(), key: "schedules".into(), reason };
        if edit.schedules.is_empty() {
            return Err(fail("no [[schedules]] table: paste the schedules as written in config/default.toml".into()));
        }
        let holidays = edit.defaults.map_or_else(|| self.settings.defaults.holidays.clone(), |d| d.holidays);
        let schedules = parse_schedules(&edit.schedules, &holidays).map_err(fail)?;
        let mut config = self.clone();
        config.settings.schedules = edit.schedules;
        config.settings.defaults.holidays = holidays;
        config.schedules = schedules;
        Ok(config)
    }

    /// Loads exactly as `serve` does (defaults, files, environment).
    pub fn load() -> Result<Config, ConfigError> {
        ConfigSource::default().load()
    }

    /// The schedule that applies to an order: the first whose rule matches.
    pub fn schedule_for(&self, source: crate::domain::Source, amount: Option<&crate::domain::Money>, segment: Option<&str>) -> &Schedule {
        self.schedules
            .iter()
            .find(|s| s.rule.matches(source, amount, segment))
            .or_else(|| self.schedules.iter().find(|s| s.rule.is_catch_all()))
            .expect("config load guarantees a catch-all schedule")
    }

    pub fn schedule_named(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name == name)
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.dir.join("templates")
    }

    /// A provider that overrides single keys, for tests and the CLI.
    pub fn overrides(pairs: &[(&str, serde_json::Value)]) -> impl Provider {
        let mut root = serde_json::Map::new();
        for (key, value) in pairs {
            let mut cur = &mut root;
            let parts: Vec<&str> = key.split('.').collect();
            for p in &parts[..parts.len() - 1] {
                cur = cur
                    .entry(p.to_string())
                    .or_insert_with(|| serde_json::Value::Object(Default::default()))
                    .as_object_mut()
                    .expect("override path crosses a non-table value");
            }
            cur.insert(parts[parts.len() - 1].to_string(), value.clone());
        }
        figment::providers::Serialized::defaults(serde_json::Value::Object(root))
    }
}

#[cfg(test)]
mod tests;
